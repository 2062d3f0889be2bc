//! `cargo xtask template`: rewrites the generated sections of `template.yaml` from the table
//! in `table.rs` (functions, queues) and the dashboard in `xtask/template/dashboard.json`.
//! SAM still deploys one plain file; a unit test fails when the file is stale (as
//! rust-analyzer does for its generated code). A section sits between
//! `# BEGIN GENERATED <name>` and `# END GENERATED <name>` lines; everything else is
//! hand-written.

mod table;

use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use table::{Function, FUNCTIONS, QUEUES};

/// The dashboard's hand-written widgets; `"metrics": "generated: <what>"` marks the lists
/// the table fills in.
const DASHBOARD: &str = include_str!("../../template/dashboard.json");

/// Writes one generated section.
type Render = fn() -> Result<String>;

/// Each generated section, in the order it appears in the file.
const SECTIONS: [(&str, Render); 5] = [
    ("queues", queues),
    ("codedeploy-role", codedeploy_role),
    ("log-groups", log_groups),
    ("alarms", alarms),
    ("dashboard", dashboard),
];

pub fn run() -> Result<()> {
    let path = local::workspace_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).context("reading template.yaml")?;
    let fresh = regenerate(&text)?;
    if fresh == text {
        eprintln!("template.yaml is up to date");
    } else {
        std::fs::write(&path, &fresh).context("writing template.yaml")?;
        eprintln!("template.yaml rewritten from xtask/src/template/table.rs and dashboard.json");
    }
    Ok(())
}

/// `text` with every generated section written anew.
pub fn regenerate(text: &str) -> Result<String> {
    let mut out = text.to_owned();
    for (name, render) in SECTIONS {
        let begin = format!("  # BEGIN GENERATED {name}");
        let end = format!("  # END GENERATED {name}\n");
        let start = out
            .find(&begin)
            .with_context(|| format!("template.yaml has no `{begin}` line"))?;
        let body_start = start
            + out[start..]
                .find('\n')
                .context("a BEGIN line without a newline")?
            + 1;
        let Some(body_len) = out[body_start..].find(&end) else {
            bail!("template.yaml has no `{}` after its BEGIN line", end.trim());
        };
        out.replace_range(body_start..body_start + body_len, &render()?);
    }
    Ok(out)
}

/// A YAML double-quoted scalar.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn queues() -> Result<String> {
    let mut out = String::new();
    for q in QUEUES {
        for line in q.comment {
            writeln!(out, "  # {line}")?;
        }
        let name = q.logical;
        write!(
            out,
            "  {name}Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: {visibility}
      MessageRetentionPeriod: 1209600
      SqsManagedSseEnabled: !If [UseKmsKey, !Ref AWS::NoValue, true]
      KmsMasterKeyId: !If [UseKmsKey, !Ref KmsKeyArn, !Ref AWS::NoValue]
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt {name}DLQ.Arn
        maxReceiveCount: !Ref MaxReceiveCount

  {name}DLQ:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
      SqsManagedSseEnabled: !If [UseKmsKey, !Ref AWS::NoValue, true]
      KmsMasterKeyId: !If [UseKmsKey, !Ref KmsKeyArn, !Ref AWS::NoValue]

",
            visibility = q.visibility_timeout,
        )?;
    }
    Ok(out)
}

fn codedeploy_role() -> Result<String> {
    let mut aliases = String::new();
    for f in FUNCTIONS {
        writeln!(
            aliases,
            "                  - !Sub \"${{{}Function.Arn}}:*\"",
            f.logical
        )?;
    }
    Ok(format!(
        "  CodeDeployRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: \"2012-10-17\"
        Statement:
          - Effect: Allow
            Principal: {{ Service: codedeploy.amazonaws.com }}
            Action: sts:AssumeRole
      Policies:
        - PolicyName: herald-deployments
          PolicyDocument:
            Version: \"2012-10-17\"
            Statement:
              - Effect: Allow
                Action: [lambda:GetAlias, lambda:UpdateAlias, lambda:GetProvisionedConcurrencyConfig]
                Resource:
{aliases}              - Effect: Allow
                Action: lambda:InvokeFunction
                Resource:
{aliases}              - Effect: Allow
                Action: cloudwatch:DescribeAlarms
                Resource: \"*\"

"
    ))
}

fn log_groups() -> Result<String> {
    let mut out = String::new();
    for f in FUNCTIONS {
        write!(
            out,
            "  {logical}LogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub /aws/lambda/${{AWS::StackName}}-{name}
      RetentionInDays: !Ref LogRetentionDays
      KmsKeyId: !If [UseLogsKmsKey, !Ref LogsKmsKeyArn, !Ref AWS::NoValue]

",
            logical = f.logical,
            name = f.name,
        )?;
    }
    Ok(out)
}

/// One alarm on one metric that fires above `threshold`, notifying the alarm topic.
struct Alarm<'a> {
    id: String,
    description: String,
    namespace: &'a str,
    metric: &'a str,
    dimension: (&'a str, String),
    statistic: &'a str,
    period: u32,
    evaluation_periods: u32,
    datapoints: Option<u32>,
    threshold: u32,
}

impl Alarm<'_> {
    fn render(&self, out: &mut String) -> Result<()> {
        write!(
            out,
            "  {id}:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: {description}
      Namespace: {namespace}
      MetricName: {metric}
      Dimensions: [{{ Name: {dim_name}, Value: {dim_value} }}]
      Statistic: {statistic}
      Period: {period}
      EvaluationPeriods: {evaluation_periods}
",
            id = self.id,
            description = quoted(&self.description),
            namespace = self.namespace,
            metric = self.metric,
            dim_name = self.dimension.0,
            dim_value = self.dimension.1,
            statistic = self.statistic,
            period = self.period,
            evaluation_periods = self.evaluation_periods,
        )?;
        if let Some(n) = self.datapoints {
            writeln!(out, "      DatapointsToAlarm: {n}")?;
        }
        write!(
            out,
            "      Threshold: {threshold}
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref AlarmTopic]
      OKActions: [!Ref AlarmTopic]

",
            threshold = self.threshold,
        )?;
        Ok(())
    }
}

fn alarms() -> Result<String> {
    let mut out = String::new();
    for q in QUEUES {
        Alarm {
            id: format!("{}DLQAlarm", q.logical),
            description: q.dead_letter.to_owned(),
            namespace: "AWS/SQS",
            metric: "ApproximateNumberOfMessagesVisible",
            dimension: ("QueueName", format!("!GetAtt {}DLQ.QueueName", q.logical)),
            statistic: "Maximum",
            period: 60,
            evaluation_periods: 1,
            datapoints: None,
            threshold: 0,
        }
        .render(&mut out)?;
    }
    for q in QUEUES {
        Alarm {
            id: format!("{}QueueAgeAlarm", q.logical),
            description: format!(
                "The oldest message on {}Queue waited longer than {} s: consumers fall behind or fail.",
                q.logical, q.age_alarm_seconds
            ),
            namespace: "AWS/SQS",
            metric: "ApproximateAgeOfOldestMessage",
            dimension: ("QueueName", format!("!GetAtt {}Queue.QueueName", q.logical)),
            statistic: "Maximum",
            period: 300,
            evaluation_periods: 2,
            datapoints: None,
            threshold: q.age_alarm_seconds,
        }
        .render(&mut out)?;
    }
    for f in FUNCTIONS {
        let function = ("FunctionName", format!("!Ref {}Function", f.logical));
        Alarm {
            id: format!("{}FunctionErrorsAlarm", f.logical),
            description: format!(
                "{} failed invocations (also rolls back its deployment).",
                f.name
            ),
            namespace: "AWS/Lambda",
            metric: "Errors",
            dimension: function.clone(),
            statistic: "Sum",
            period: 60,
            evaluation_periods: 3,
            datapoints: Some(2),
            threshold: 0,
        }
        .render(&mut out)?;
        Alarm {
            id: format!("{}FunctionThrottlesAlarm", f.logical),
            description: format!(
                "{} invocations throttled (account or reserved concurrency).",
                f.name
            ),
            namespace: "AWS/Lambda",
            metric: "Throttles",
            dimension: function,
            statistic: "Sum",
            period: 300,
            evaluation_periods: 1,
            datapoints: None,
            threshold: 0,
        }
        .render(&mut out)?;
    }
    Ok(out)
}

/// The metric lists the dashboard's `"generated: <what>"` placeholders stand for.
fn generated_metrics(what: &str) -> Result<Value> {
    let queue_metric = |metric: &str, resource: String, label: String| json!(["AWS/SQS", metric, "QueueName", format!("${{{resource}.QueueName}}"), {"label": label}]);
    let function_metric = |metric: &str, f: &Function, label: String| json!(["AWS/Lambda", metric, "FunctionName", format!("${{{}Function}}", f.logical), {"label": label}]);
    let depth = "ApproximateNumberOfMessagesVisible";
    let age = "ApproximateAgeOfOldestMessage";
    let metrics: Vec<Value> = match what {
        "queue-depth" => QUEUES
            .iter()
            .map(|q| queue_metric(depth, format!("{}Queue", q.logical), q.label.to_owned()))
            .chain(QUEUES.iter().map(|q| {
                queue_metric(
                    depth,
                    format!("{}DLQ", q.logical),
                    format!("{} DLQ", q.label),
                )
            }))
            .collect(),
        "queue-age" => QUEUES
            .iter()
            .map(|q| queue_metric(age, format!("{}Queue", q.logical), q.label.to_owned()))
            .collect(),
        "function-errors" => FUNCTIONS
            .iter()
            .flat_map(|f| {
                [
                    function_metric("Errors", f, format!("{} errors", f.name)),
                    function_metric("Throttles", f, format!("{} throttles", f.name)),
                ]
            })
            .collect(),
        "function-duration" => FUNCTIONS
            .iter()
            .map(|f| function_metric("Duration", f, f.name.to_owned()))
            .collect(),
        other => bail!("dashboard.json asks for unknown generated metrics {other:?}"),
    };
    Ok(Value::Array(metrics))
}

fn dashboard() -> Result<String> {
    let mut body: Value =
        serde_json::from_str(DASHBOARD).context("xtask/template/dashboard.json")?;
    let widgets = body["widgets"]
        .as_array_mut()
        .context("dashboard.json has no widgets list")?;
    let mut lines = Vec::with_capacity(widgets.len());
    for widget in widgets.iter_mut() {
        // `get_mut`, not indexing: indexing would add `"metrics": null` to text widgets.
        if let Some(metrics) = widget.pointer_mut("/properties/metrics") {
            if let Some(what) = metrics.as_str().and_then(|m| m.strip_prefix("generated: ")) {
                *metrics = generated_metrics(what)?;
            }
        }
        lines.push(format!("          {}", serde_json::to_string(widget)?));
    }
    Ok(format!(
        "  HeraldDashboard:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardName: !Sub ${{AWS::StackName}}-herald
      DashboardBody: !Sub |
        {{\"widgets\": [
{}
        ]}}

",
        lines.join(",\n")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The file is what the table makes it: edit `table.rs` or `dashboard.json`, then run
    /// `cargo xtask template`.
    #[test]
    fn template_yaml_is_up_to_date_with_its_table() {
        let path = local::workspace_root().join("template.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let fresh = regenerate(&text).unwrap();
        assert!(
            fresh == text,
            "template.yaml is stale: run `cargo xtask template` (first difference at line {})",
            fresh
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .map_or(0, |i| i + 1)
        );
    }

    /// Every function and queue of the template is in the table, and nothing else is: a new
    /// one cannot miss its alarms, log group or deploy permissions.
    #[test]
    fn the_table_lists_every_function_and_queue_of_the_template() {
        let template = local::template::Template::project().unwrap();
        let mut functions: Vec<String> = template
            .resources_of("AWS::Serverless::Function")
            .into_iter()
            .map(|(id, _)| id.trim_end_matches("Function").to_owned())
            .collect();
        functions.sort();
        let mut listed: Vec<String> = FUNCTIONS.iter().map(|f| f.logical.to_owned()).collect();
        listed.sort();
        assert_eq!(functions, listed);
        let mut queues: Vec<String> = template
            .resources_of("AWS::SQS::Queue")
            .into_iter()
            .filter_map(|(id, _)| id.strip_suffix("Queue").map(str::to_owned))
            .collect();
        queues.sort();
        let mut listed: Vec<String> = QUEUES.iter().map(|q| q.logical.to_owned()).collect();
        listed.sort();
        assert_eq!(queues, listed);
    }

    /// The dead-letter routes know every queue pair of the table (`DEAD_LETTER_QUEUES`: the
    /// name, the DLQ, its source), and inbox-api's role may read each DLQ and send to each
    /// source: a queue added to the table cannot be missing from the console.
    #[test]
    fn the_dead_letter_routes_know_every_queue_pair() {
        let template = local::template::Template::project().unwrap();
        let env = template.function_env("InboxApiFunction").unwrap();
        let listed = local::template::sub_text(&env["DEAD_LETTER_QUEUES"]).unwrap();
        let expected: Vec<String> = QUEUES
            .iter()
            .map(|q| format!("{} ${{{}DLQ}} ${{{}Queue}}", q.label, q.logical, q.logical))
            .collect();
        assert_eq!(listed, expected.join(","));
        let text = std::fs::read_to_string(local::workspace_root().join("template.yaml")).unwrap();
        let role = text
            .split("\n  InboxApiRole:\n")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap();
        for q in QUEUES {
            for needed in [
                format!("!GetAtt {}DLQ.Arn", q.logical),
                format!("!GetAtt {}Queue.Arn", q.logical),
            ] {
                assert!(role.contains(&needed), "InboxApiRole lacks {needed}");
            }
        }
    }

    /// A stale section is found and rewritten; text outside the markers is kept.
    #[test]
    fn regenerating_rewrites_only_the_marked_sections() {
        let mut text = String::from("Resources:\n  Kept: 1\n");
        for (name, _) in SECTIONS {
            text.push_str(&format!(
                "  # BEGIN GENERATED {name}\n  Stale: 1\n  # END GENERATED {name}\n"
            ));
        }
        text.push_str("  Also: kept\n");
        let fresh = regenerate(&text).unwrap();
        assert!(!fresh.contains("Stale"), "{fresh}");
        assert!(fresh.starts_with("Resources:\n  Kept: 1\n") && fresh.ends_with("  Also: kept\n"));
        assert!(fresh.contains("  FeedbackQueueAgeAlarm:"));
        assert_eq!(
            regenerate(&fresh).unwrap(),
            fresh,
            "a second run changes nothing"
        );
        assert!(
            regenerate("Resources: {}\n").is_err(),
            "markers are required"
        );
    }
}
