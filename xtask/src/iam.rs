//! The IAM check of `cargo xtask test`: every AWS call a function made during the suite (the
//! emulator's call log: the local runner signs each function's calls with its logical id)
//! must be allowed by that function's role in template.yaml. The emulator ignores IAM, so
//! without this a function that gains a call without its permission passes locally and fails
//! deployed. A call passes when one `Allow` statement of the role names its action
//! (wildcards and `!If` branches included) and its resource: the statement's resources are
//! the template resources it references (`!GetAtt X.Arn`, `!Ref X`, `${X}` in a `!Sub`, an
//! index or object path below them included), or any resource for `"*"` and ARNs built
//! from no resource of the template; the call's resource (a table, queue, topic, secret,
//! bucket, schedule group or role, as the emulator logs it) is the template resource whose
//! physical name it is. Calls the log names no resource for (SES sends) are held to the
//! action only; policy conditions are not evaluated (herald's roles have none).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use local::template::{intrinsic, Intrinsic, Template};
use serde_norway::Value;

/// One call the emulator logged.
#[derive(Debug, serde::Deserialize)]
struct Call {
    key: String,
    action: String,
    #[serde(default)]
    resource: String,
}

/// One `Allow` statement: its actions, and the template resources it names (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub actions: Vec<String>,
    pub resources: Option<BTreeSet<String>>,
}

/// The grants of each function's role, by the function's logical id.
pub fn grants(template: &Template) -> Result<BTreeMap<String, Vec<Grant>>> {
    let roles: BTreeMap<String, Value> = template
        .resources_of("AWS::IAM::Role")
        .into_iter()
        .collect();
    let mut allowed = BTreeMap::new();
    for (function, props) in template.resources_of("AWS::Serverless::Function") {
        let Some(Intrinsic::GetAtt(role, _)) = props.get("Role").and_then(intrinsic) else {
            continue;
        };
        let role = roles
            .get(&role)
            .with_context(|| format!("{function}'s role {role} is not in the template"))?;
        let mut grants = Vec::new();
        for policy in role
            .get("Policies")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let statements = policy
                .get("PolicyDocument")
                .and_then(|d| d.get("Statement"))
                .and_then(Value::as_sequence);
            for statement in statements.into_iter().flatten() {
                collect_grants(statement, &mut grants);
            }
        }
        allowed.insert(function, grants);
    }
    Ok(allowed)
}

/// The grant of an `Allow` statement; an `!If` grants what either branch does.
fn collect_grants(statement: &Value, into: &mut Vec<Grant>) {
    if let Value::Tagged(tagged) = statement {
        if tagged.tag.to_string().trim_start_matches('!') == "If" {
            for branch in tagged.value.as_sequence().into_iter().flatten().skip(1) {
                collect_grants(branch, into);
            }
        }
        return;
    }
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return;
    }
    let actions = match statement.get("Action") {
        Some(Value::String(action)) => vec![action.clone()],
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    into.push(Grant {
        actions,
        resources: statement.get("Resource").and_then(named_resources),
    });
}

/// The template resources a policy's `Resource` names; `None` when it allows any (`"*"`, or
/// an ARN built from no template resource).
fn named_resources(value: &Value) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let items: Vec<&Value> = match value {
        Value::Sequence(list) => list.iter().collect(),
        other => vec![other],
    };
    for item in items {
        match intrinsic(item) {
            Some(Intrinsic::Ref(name) | Intrinsic::GetAtt(name, _)) => {
                names.insert(name);
            }
            None => {
                let sub = match item {
                    Value::Tagged(t) if t.tag.to_string().trim_start_matches('!') == "Sub" => {
                        t.value.as_str()
                    }
                    _ => None,
                };
                let referenced: Vec<String> = sub
                    .map(|text| {
                        text.split("${")
                            .skip(1)
                            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
                            .filter(|name| !name.starts_with("AWS::"))
                            .map(|name| name.split('.').next().unwrap_or(name).to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                if referenced.is_empty() {
                    return None;
                }
                names.extend(referenced);
            }
        }
    }
    Some(names)
}

/// The template resource a logged resource is the physical name of (`<prefix>-<LogicalId>`,
/// an ARN ending so, a bucket's lower-case name, a role's logical id), if any.
fn logical_of<'a>(logged: &str, logical_ids: &'a BTreeSet<String>) -> Option<&'a String> {
    let name = logged.rsplit(':').next().unwrap_or(logged);
    let unprefixed = name.split_once('-').map_or(name, |(_, rest)| rest);
    logical_ids.iter().find(|id| {
        [name, unprefixed].iter().any(|candidate| {
            candidate.eq_ignore_ascii_case(id)
                || candidate
                    .to_ascii_lowercase()
                    .starts_with(&format!("{}-", id.to_ascii_lowercase()))
        })
    })
}

/// Whether `pattern` (an IAM action, `*` a wildcard) allows `action`, case-insensitively.
fn matches(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_lowercase(), action.to_lowercase());
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == action;
    };
    let Some(mut rest) = action.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Each call of the log (`HERALD_CALL_LOG` lines) that its function's role does not allow,
/// once per function and action, with the resources it touched.
pub fn violations(template: &Template, log: &str) -> Result<Vec<String>> {
    let grants = grants(template)?;
    let logical_ids: BTreeSet<String> = template.resource_ids().into_iter().collect();
    let mut denied: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let call: Call = serde_json::from_str(line).with_context(|| format!("call log: {line}"))?;
        // Calls signed by anything else (the tests' own setup, provisioning) are no function's.
        let Some(role) = grants.get(&call.key) else {
            continue;
        };
        let target = logical_of(&call.resource, &logical_ids);
        let allowed = role.iter().any(|grant| {
            grant.actions.iter().any(|p| matches(p, &call.action))
                && (call.resource.is_empty()
                    || match &grant.resources {
                        None => true,
                        Some(named) => target.is_some_and(|t| named.contains(t)),
                    })
        });
        if !allowed {
            denied
                .entry((call.key, call.action))
                .or_default()
                .insert(call.resource);
        }
    }
    Ok(denied
        .into_iter()
        .map(|((function, action), resources)| {
            let resources: Vec<String> = resources.into_iter().filter(|r| !r.is_empty()).collect();
            format!(
                "{function} called {action} on {} but its role does not allow it there",
                resources.join(", ")
            )
        })
        .collect())
}

/// The check over the log the suite's emulator wrote: an error naming every call its role
/// does not allow.
pub fn check(log: &Path) -> Result<usize> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let template = Template::project()?;
    let found = violations(&template, &text)?;
    anyhow::ensure!(
        found.is_empty(),
        "calls the deployed roles would refuse:\n  {}",
        found.join("\n  ")
    );
    Ok(text.lines().count())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn policy_resources_name_template_resources_or_any() {
        let yaml = |text: &str| -> Value { serde_norway::from_str(text).unwrap() };
        let named = |text: &str| named_resources(&yaml(text));
        let set = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(named("!GetAtt InboxTable.Arn"), set(&["InboxTable"]));
        assert_eq!(
            named("[!GetAtt A.Arn, !Ref B, !Sub '${C.Arn}/index/*']"),
            set(&["A", "B", "C"])
        );
        assert_eq!(named("'*'"), None);
        assert_eq!(
            named("!Sub 'arn:${AWS::Partition}:sns:${AWS::Region}:*'"),
            None
        );
        let ids: BTreeSet<String> = ["InboxTable", "AudienceBucket", "SchedulerRole"]
            .map(String::from)
            .into();
        assert_eq!(
            logical_of("x1-InboxTable", &ids).map(String::as_str),
            Some("InboxTable")
        );
        assert_eq!(
            logical_of("x1-audiencebucket", &ids).map(String::as_str),
            Some("AudienceBucket")
        );
        assert_eq!(
            logical_of("SchedulerRole", &ids).map(String::as_str),
            Some("SchedulerRole")
        );
        assert_eq!(logical_of("arn:aws:sns:r:1:endpoint/GCM/app/u", &ids), None);
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(matches("sqs:SendMessage", "sqs:sendmessage"));
        assert!(matches("dynamodb:*", "dynamodb:PutItem"));
        assert!(matches("dynamodb:Get*", "dynamodb:GetItem"));
        assert!(matches("*", "s3:GetObject"));
        assert!(!matches("dynamodb:Get*", "dynamodb:PutItem"));
        assert!(!matches("sqs:SendMessage", "sqs:SendMessageBatch"));
    }

    /// A call the function's role allows passes; one it does not is named; calls signed by
    /// no function (test setup) are not held to any role.
    #[test]
    fn a_call_outside_the_functions_role_is_named() {
        let template = Template::project().unwrap();
        let log = [
            r#"{"key":"IngestFunction","action":"sqs:SendMessage","resource":"q1-NotificationsQueue"}"#,
            r#"{"key":"IngestFunction","action":"dynamodb:DeleteTable","resource":"InboxTable"}"#,
            r#"{"key":"test","action":"dynamodb:DeleteTable","resource":"t"}"#,
        ]
        .join("\n");
        let found = violations(&template, &log).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("IngestFunction called dynamodb:DeleteTable"),
            "{found:?}"
        );
        // The right action on another resource than the role names is refused too.
        let elsewhere = [
            r#"{"key":"IngestFunction","action":"sqs:SendMessage","resource":"abc-NotificationsQueue"}"#,
            r#"{"key":"IngestFunction","action":"sqs:SendMessage","resource":"abc-CampaignQueue"}"#,
            r#"{"key":"InboxApiFunction","action":"dynamodb:Query","resource":"abc-DirectoryTable"}"#,
            r#"{"key":"InboxApiFunction","action":"secretsmanager:GetSecretValue","resource":"arn:aws:secretsmanager:us-east-1:1:secret:abc-UnsubscribeSecret-Xy12Ab"}"#,
            r#"{"key":"CampaignsFunction","action":"s3:GetObject","resource":"abc-audiencebucket"}"#,
        ]
        .join("\n");
        let found = violations(&template, &elsewhere).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("abc-CampaignQueue"), "{found:?}");
        let grants = grants(&template).unwrap();
        assert!(grants["CampaignsFunction"]
            .iter()
            .any(|g| g.actions.iter().any(|a| a == "scheduler:CreateSchedule")));
    }
}
