//! feedback: consumes the feedback queue (the feedback topic's subscription): SES events
//! from the configuration set and inbound SMS replies. Hard bounces, complaints and SMS
//! STOPs put the address on the suppression list, so `deliver` never sends to it again;
//! the rest is counted. A bounce or complaint without the tenant tag is only logged and
//! counted (`UntaggedFeedback`) unless `UNTAGGED_BOUNCES=global`. Anything that is not
//! such an event goes to the DLQ with the reason.

use std::sync::Arc;

use async_trait::async_trait;
use herald::config::{ConfigError, Vars};
use herald::consumer::{BatchHandler, Disposition, QueueConfig, QueueMessage};
use herald::domain::feedback::{address_digest, parse, Feedback, UntaggedPolicy};
use herald::ports::Directory;
use herald::telemetry::Metric;

#[derive(Debug, Clone)]
pub struct Config {
    pub directory_table: String,
    /// The feedback queue this function consumes.
    pub queue: QueueConfig,
    /// `UNTAGGED_BOUNCES`: `record` (default) or `global`: what a hard bounce or complaint
    /// without a valid tenant tag does.
    pub untagged: UntaggedPolicy,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            directory_table: vars.required("DIRECTORY_TABLE")?,
            queue: QueueConfig::from_vars(vars, "FEEDBACK_QUEUE_URL", "FEEDBACK_DLQ_URL")?,
            untagged: vars.parsed_or("UNTAGGED_BOUNCES", UntaggedPolicy::Record)?,
        })
    }
}

/// The handler: where suppressions go, and what untagged ones do.
pub struct FeedbackHandler {
    pub directory: Arc<dyn Directory>,
    pub untagged: UntaggedPolicy,
}

impl FeedbackHandler {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        Self {
            directory: Arc::new(herald::aws::directory::DynamoDirectory::new(
                aws_sdk_dynamodb::Client::new(aws),
                &config.directory_table,
            )),
            untagged: config.untagged,
        }
    }
}

#[async_trait]
impl BatchHandler for FeedbackHandler {
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
        let (mut suppressed, mut noted, mut untagged) = (0, 0, 0);
        let mut out = Vec::with_capacity(batch.len());
        for message in batch {
            let events = match parse(&message.body, self.untagged) {
                Ok(events) => events,
                Err(reason) => {
                    out.push(Disposition::Poison(format!(
                        "not provider feedback: {reason}"
                    )));
                    continue;
                }
            };
            let mut disposition = Disposition::Done;
            for event in events {
                match event {
                    Feedback::Suppress {
                        tenant,
                        address,
                        reason,
                    } => match self
                        .directory
                        .suppress(tenant.as_ref(), &address, &reason)
                        .await
                    {
                        Ok(()) => {
                            suppressed += 1;
                            tracing::info!(
                                message_id = %message.message_id,
                                tenant = tenant.as_ref().map_or("*", |t| t.as_str()),
                                %reason,
                                "address suppressed"
                            );
                        }
                        Err(e) => disposition = Disposition::Retry(e.to_string()),
                    },
                    Feedback::Noted { kind } => {
                        noted += 1;
                        tracing::info!(message_id = %message.message_id, %kind, "feedback noted");
                    }
                    Feedback::Untagged {
                        address,
                        reason,
                        mail_id,
                    } => {
                        untagged += 1;
                        tracing::warn!(
                            message_id = %message.message_id,
                            ses_message_id = mail_id.as_deref().unwrap_or("-"),
                            address_sha256 = %address_digest(&address),
                            %reason,
                            "feedback without a tenant tag: nothing suppressed (UNTAGGED_BOUNCES=record)"
                        );
                    }
                }
            }
            out.push(disposition);
        }
        herald::telemetry::emit(
            "feedback",
            &[],
            &[
                Metric::count("AddressesSuppressed", suppressed),
                Metric::count("FeedbackNoted", noted),
                Metric::count("UntaggedFeedback", untagged),
            ],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use herald::domain::feedback::{tenant_tag, TENANT_TAG};
    use herald::fake::InMemoryDirectory;
    use herald::TenantId;
    use serde_json::json;

    use super::*;

    fn message(body: String) -> QueueMessage {
        QueueMessage {
            message_id: "m1".into(),
            receipt_handle: "r1".into(),
            body,
            receive_count: 1,
            trace_header: None,
        }
    }

    #[tokio::test]
    async fn a_bounce_suppresses_and_junk_is_poison() {
        let directory = Arc::new(InMemoryDirectory::default());
        let handler = FeedbackHandler {
            directory: directory.clone(),
            untagged: UntaggedPolicy::Record,
        };
        let tenant = TenantId::parse("t1", "t").unwrap();
        let bounce = json!({"eventType": "Bounce", "mail": {"tags": {TENANT_TAG: [tenant_tag(&tenant)]}},
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "gone@example.com"}]}});
        let stop = json!({"originationNumber": "+15555550100", "messageBody": "STOP"});
        let out = handler
            .handle(&[
                message(bounce.to_string()),
                message("junk".into()),
                message(stop.to_string()),
            ])
            .await;
        assert_eq!(out[0], Disposition::Done);
        assert!(matches!(out[1], Disposition::Poison(_)));
        assert_eq!(out[2], Disposition::Done);
        assert!(directory
            .is_suppressed(&tenant, "gone@example.com")
            .await
            .unwrap());
        let other = TenantId::parse("t2", "t").unwrap();
        assert!(!directory
            .is_suppressed(&other, "gone@example.com")
            .await
            .unwrap());
        assert!(
            directory
                .is_suppressed(&other, "+15555550100")
                .await
                .unwrap(),
            "STOP is for every tenant"
        );
    }

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = Vars::from([
            ("DIRECTORY_TABLE", "d"),
            ("FEEDBACK_QUEUE_URL", "q"),
            ("FEEDBACK_DLQ_URL", "dlq"),
        ]);
        all.0
            .extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Config::from_vars(&all)
    }

    /// Regression: a hard bounce without the tenant tag used to suppress the address for
    /// every tenant. By default it now suppresses nothing (it is logged and counted).
    #[tokio::test]
    async fn an_untagged_bounce_suppresses_for_no_tenant_unless_the_operator_asks() {
        let bounce = json!({"eventType": "Bounce", "mail": {"messageId": "ses-1"},
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "gone@example.com"}]}});
        let tenants = ["t1", "t2"].map(|t| TenantId::parse(t, "t").unwrap());
        let by_default = config(&[]).unwrap().untagged;
        assert_eq!(by_default, UntaggedPolicy::Record);
        for (policy, suppressed) in [(by_default, false), (UntaggedPolicy::Global, true)] {
            let directory = Arc::new(InMemoryDirectory::default());
            let handler = FeedbackHandler {
                directory: directory.clone(),
                untagged: policy,
            };
            let out = handler.handle(&[message(bounce.to_string())]).await;
            assert_eq!(out, [Disposition::Done], "recorded, never retried");
            for tenant in &tenants {
                assert_eq!(
                    directory
                        .is_suppressed(tenant, "gone@example.com")
                        .await
                        .unwrap(),
                    suppressed,
                    "{policy:?}: {tenant}"
                );
            }
        }
        assert_eq!(
            config(&[("UNTAGGED_BOUNCES", "global")]).unwrap().untagged,
            UntaggedPolicy::Global
        );
        let bad = config(&[("UNTAGGED_BOUNCES", "all")]).unwrap_err();
        assert!(bad.to_string().contains("UNTAGGED_BOUNCES"), "{bad}");
    }
}
