//! The IAM check of `cargo xtask test`: every AWS call a function made during the suite (the
//! emulator's call log: the local runner signs each function's calls with its logical id)
//! must be allowed by that function's role in template.yaml. The emulator ignores IAM, so
//! without this a function that gains a call without its permission passes locally and fails
//! deployed. Actions are checked (wildcards and `!If` branches included); the resources of
//! the calls are logged for the reader.

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

/// The actions each function's role allows, by the function's logical id.
pub fn allowed_actions(template: &Template) -> Result<BTreeMap<String, Vec<String>>> {
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
        let mut actions = Vec::new();
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
                collect_actions(statement, &mut actions);
            }
        }
        allowed.insert(function, actions);
    }
    Ok(allowed)
}

/// The actions an `Allow` statement grants; an `!If` grants what either branch does.
fn collect_actions(statement: &Value, into: &mut Vec<String>) {
    if let Value::Tagged(tagged) = statement {
        if tagged.tag.to_string().trim_start_matches('!') == "If" {
            for branch in tagged.value.as_sequence().into_iter().flatten().skip(1) {
                collect_actions(branch, into);
            }
        }
        return;
    }
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return;
    }
    match statement.get("Action") {
        Some(Value::String(action)) => into.push(action.clone()),
        Some(Value::Sequence(list)) => {
            into.extend(list.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        _ => {}
    }
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
    let allowed = allowed_actions(template)?;
    let mut denied: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let call: Call = serde_json::from_str(line).with_context(|| format!("call log: {line}"))?;
        // Calls signed by anything else (the tests' own setup, provisioning) are no function's.
        let Some(actions) = allowed.get(&call.key) else {
            continue;
        };
        if !actions.iter().any(|pattern| matches(pattern, &call.action)) {
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
                "{function} called {action} ({}) but its role does not allow it",
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
            r#"{"key":"IngestFunction","action":"sqs:SendMessage","resource":"q"}"#,
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
        let allowed = allowed_actions(&template).unwrap();
        assert!(allowed["CampaignsFunction"]
            .iter()
            .any(|a| a == "scheduler:CreateSchedule"));
    }
}
