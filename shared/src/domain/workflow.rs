//! Workflows: a notification's channels as ordered steps, each with an optional delay and a
//! condition (`unless: read`), inline on a notification or defined once per tenant by name.
//!
//! A step's job is due `delay_seconds` after the notification was accepted; the condition is
//! checked when the job is due, just before its delivery is claimed, so a read committed by
//! then cancels it (`skipped: read`) and nothing after the claim sends twice.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::channel::Channel;
use super::digest::Digest;
use super::ids::check_id;
use crate::error::FieldError;

/// The longest delay a step may have: 30 days. Longer ones are refused, never dropped.
pub const MAX_DELAY_SECONDS: u32 = 30 * 24 * 3600;
/// SQS's longest message delay: shorter delays ride on the delivery queue itself, longer
/// ones on a one-time EventBridge Scheduler schedule.
pub const MAX_QUEUE_DELAY_SECONDS: u32 = 900;

/// What cancels a step: the notification was read, or seen, by the time the step is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// The notification's inbox message is read (its room was marked read after it landed).
    Read,
    /// It is seen: read, marked seen, or seen with everything (`seen-all`).
    Seen,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Read => "read",
            Condition::Seen => "seen",
        }
    }
}

/// One step: a channel, when (after the notification was accepted), unless what, and
/// whether it goes out as a digest of the user's events of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<Condition>,
    /// This step's channel bundles the user's events of the digest's key: the window's one
    /// message goes out when it closes, and not before the step's delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An ordered list of steps, at most one per channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub steps: Vec<Step>,
}

/// What a notification's `workflow` field names: a tenant's workflow, or steps inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowRef {
    Named(String),
    Inline(Workflow),
}

impl Workflow {
    /// The channels of its steps, sorted (a notification's `channels`).
    pub fn channels(&self) -> Vec<Channel> {
        let mut channels: Vec<Channel> = self.steps.iter().map(|s| s.channel).collect();
        channels.sort();
        channels
    }

    /// Reads and checks a workflow object; errors name the field below `at`.
    pub fn parse(value: &Value, at: &str) -> Result<Workflow, FieldError> {
        let workflow: Workflow = FieldError::from_json(value, at)?;
        workflow.check(at)?;
        Ok(workflow)
    }

    /// 1-4 steps, each channel once, delays at most 30 days and never shorter than the step
    /// before; inbox only first and at once; `unless: read` needs an inbox step to read.
    pub fn check(&self, at: &str) -> Result<(), FieldError> {
        let steps_at = join(at, "steps");
        if self.steps.is_empty() || self.steps.len() > Channel::ALL.len() {
            return Err(FieldError::new(
                "invalid_length",
                &steps_at,
                format!("{steps_at} must have 1 to {} steps", Channel::ALL.len()),
            ));
        }
        let has_inbox = self.steps.iter().any(|s| s.channel == Channel::Inbox);
        let mut digests = 0;
        let mut previous_delay = 0;
        for (i, step) in self.steps.iter().enumerate() {
            let step_at = format!("{steps_at}[{i}]");
            if self.steps[..i].iter().any(|s| s.channel == step.channel) {
                return Err(FieldError::new(
                    "duplicate",
                    &format!("{step_at}.channel"),
                    format!("{step_at}.channel: each channel may appear in one step only"),
                ));
            }
            if step.delay_seconds > MAX_DELAY_SECONDS {
                return Err(FieldError::new(
                    "out_of_range",
                    &format!("{step_at}.delay_seconds"),
                    format!(
                        "{step_at}.delay_seconds must be at most {MAX_DELAY_SECONDS} (30 days)"
                    ),
                ));
            }
            if step.delay_seconds < previous_delay {
                return Err(FieldError::new(
                    "out_of_order",
                    &format!("{step_at}.delay_seconds"),
                    format!("{step_at}.delay_seconds must not be shorter than the step before"),
                ));
            }
            previous_delay = step.delay_seconds;
            if step.channel == Channel::Inbox && (i > 0 || step.delay_seconds > 0) {
                return Err(FieldError::new(
                    "invalid_value",
                    &format!("{step_at}.channel"),
                    format!("{step_at}: the inbox step must be the first, without a delay"),
                ));
            }
            if step.channel == Channel::Inbox && step.unless.is_some() {
                return Err(FieldError::new(
                    "invalid_value",
                    &format!("{step_at}.unless"),
                    format!("{step_at}.unless: the inbox step has no condition"),
                ));
            }
            if let Some(digest) = &step.digest {
                let digest_at = format!("{step_at}.digest");
                digest.check(&digest_at)?;
                digests += 1;
                let refusal = if step.channel == Channel::Inbox {
                    Some("the inbox gets every event; a digest bundles email, SMS or push")
                } else if step.unless.is_some() {
                    Some("a digest's message lists many events: a step with one has no unless")
                } else if digests > 1 {
                    Some("one step of a workflow may be a digest")
                } else {
                    None
                };
                if let Some(why) = refusal {
                    return Err(FieldError::new(
                        "invalid_value",
                        &digest_at,
                        format!("{digest_at}: {why}"),
                    ));
                }
            }
            if step.unless.is_some() && !has_inbox {
                return Err(FieldError::new(
                    "invalid_value",
                    &format!("{step_at}.unless"),
                    format!(
                        "{step_at}.unless: a notification is read and seen in the inbox; add an inbox step"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl WorkflowRef {
    /// A notification's `workflow`: a name (a string) or a workflow object.
    pub fn parse(value: &Value, at: &str) -> Result<WorkflowRef, FieldError> {
        match value {
            Value::String(name) => {
                check_id(name, at)?;
                Ok(WorkflowRef::Named(name.clone()))
            }
            Value::Object(_) => Workflow::parse(value, at).map(WorkflowRef::Inline),
            _ => Err(FieldError::new(
                "invalid_type",
                at,
                format!("{at} must be a workflow's name or an object with steps"),
            )),
        }
    }
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(steps: Value) -> Result<Workflow, FieldError> {
        Workflow::parse(&json!({ "steps": steps }), "workflow")
    }

    #[test]
    fn an_escalation_parses_and_names_its_channels() {
        let w = parse(json!([
            {"channel": "inbox"},
            {"channel": "email", "delay_seconds": 900, "unless": "read"},
            {"channel": "sms", "delay_seconds": 3600, "unless": "read"}
        ]))
        .unwrap();
        assert_eq!(
            w.channels(),
            vec![Channel::Inbox, Channel::Email, Channel::Sms]
        );
        assert_eq!(w.steps[1].unless, Some(Condition::Read));
        assert_eq!(w.steps[2].delay_seconds, 3600);
    }

    #[test]
    fn each_bad_workflow_names_its_field() {
        let cases = [
            (json!([]), "workflow.steps", "invalid_length"),
            (
                json!([{"channel": "email"}, {"channel": "email", "delay_seconds": 5}]),
                "workflow.steps[1].channel",
                "duplicate",
            ),
            (
                json!([{"channel": "inbox"}, {"channel": "email", "delay_seconds": MAX_DELAY_SECONDS + 1}]),
                "workflow.steps[1].delay_seconds",
                "out_of_range",
            ),
            (
                json!([{"channel": "email", "delay_seconds": 60}, {"channel": "sms", "delay_seconds": 30}]),
                "workflow.steps[1].delay_seconds",
                "out_of_order",
            ),
            (
                json!([{"channel": "email"}, {"channel": "inbox"}]),
                "workflow.steps[1].channel",
                "invalid_value",
            ),
            (
                json!([{"channel": "inbox", "unless": "read"}]),
                "workflow.steps[0].unless",
                "invalid_value",
            ),
            (
                json!([{"channel": "email", "unless": "read"}]),
                "workflow.steps[0].unless",
                "invalid_value",
            ),
            (
                json!([{"channel": "email", "unless": "opened"}]),
                "workflow.steps[0].unless",
                "invalid_value",
            ),
            (
                json!([{"channel": "email", "delay": 5}]),
                "workflow.steps[0].delay",
                "unknown_field",
            ),
            (
                json!([{"channel": "fax"}]),
                "workflow.steps[0].channel",
                "invalid_value",
            ),
        ];
        for (steps, field, code) in cases {
            let err = parse(steps.clone()).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{steps}");
            assert_eq!(err.code, code, "{steps}");
        }
    }

    #[test]
    fn one_step_may_be_a_digest_but_not_the_inbox_nor_one_with_a_condition() {
        let digest = json!({"key": "post-1", "window_seconds": 300});
        let w = parse(json!([
            {"channel": "inbox"},
            {"channel": "email", "delay_seconds": 600, "digest": digest}
        ]))
        .unwrap();
        assert_eq!(w.steps[1].digest.as_ref().unwrap().window_seconds, 300);
        for (steps, field) in [
            (
                json!([{"channel": "inbox", "digest": digest}]),
                "workflow.steps[0].digest",
            ),
            (
                json!([{"channel": "inbox"}, {"channel": "email", "unless": "read", "digest": digest}]),
                "workflow.steps[1].digest",
            ),
            (
                json!([{"channel": "email", "digest": digest}, {"channel": "sms", "digest": digest}]),
                "workflow.steps[1].digest",
            ),
            (
                json!([{"channel": "email", "digest": {"key": "a b", "window_seconds": 5}}]),
                "workflow.steps[0].digest.key",
            ),
        ] {
            let err = parse(steps.clone()).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{steps}");
        }
    }

    #[test]
    fn the_longest_delay_is_accepted() {
        let w = parse(json!([
            {"channel": "inbox"},
            {"channel": "push", "delay_seconds": MAX_DELAY_SECONDS, "unless": "read"}
        ]));
        assert!(w.is_ok());
    }

    #[test]
    fn a_reference_is_a_name_or_an_object() {
        assert_eq!(
            WorkflowRef::parse(&json!("escalate"), "w").unwrap(),
            WorkflowRef::Named("escalate".into())
        );
        assert_eq!(
            WorkflowRef::parse(&json!("a b"), "w").unwrap_err().code,
            "invalid_id"
        );
        assert_eq!(
            WorkflowRef::parse(&json!(3), "w").unwrap_err().code,
            "invalid_type"
        );
    }
}
