//! feedback: consumes the feedback queue (the feedback topic's subscription): SES events
//! from the configuration set and inbound SMS replies. Hard bounces, complaints and SMS
//! STOPs put the address on the suppression list, so `deliver` never sends to it again;
//! the rest is counted. Anything that is not such an event goes to the DLQ with the reason.

use std::sync::Arc;

use async_trait::async_trait;
use herald::config::{ConfigError, Vars};
use herald::consumer::{BatchHandler, Disposition, QueueConfig, QueueMessage};
use herald::domain::feedback::{parse, Feedback};
use herald::ports::Directory;
use herald::telemetry::Metric;

#[derive(Debug, Clone)]
pub struct Config {
    pub directory_table: String,
    /// The feedback queue this function consumes.
    pub queue: QueueConfig,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            directory_table: vars.required("DIRECTORY_TABLE")?,
            queue: QueueConfig::from_vars(vars, "FEEDBACK_QUEUE_URL", "FEEDBACK_DLQ_URL")?,
        })
    }
}

/// The handler: where suppressions go.
pub struct FeedbackHandler {
    pub directory: Arc<dyn Directory>,
}

impl FeedbackHandler {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        Self {
            directory: Arc::new(herald::aws::directory::DynamoDirectory::new(
                aws_sdk_dynamodb::Client::new(aws),
                &config.directory_table,
            )),
        }
    }
}

#[async_trait]
impl BatchHandler for FeedbackHandler {
    async fn handle(&self, batch: &[QueueMessage]) -> Vec<Disposition> {
        let (mut suppressed, mut noted) = (0, 0);
        let mut out = Vec::with_capacity(batch.len());
        for message in batch {
            let events = match parse(&message.body) {
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
}
