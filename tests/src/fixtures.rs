//! The fixtures in events/, the function each belongs to, and what each must do. One
//! definition serves the in-process fixture test and the `sam local invoke` check, so both
//! hold every fixture to the same answer and the same effect in the emulator.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use herald::ports::CounterStore;
use herald::{TenantId, Unread, UserId, UserKey};
use serde_json::Value;

use crate::harness::{emails_to, queue_depth, sms_to};
use crate::stack::Stack;

/// (file in events/, template logical id of its function), in the order they run.
pub const ORDER: [(&str, &str); 24] = [
    ("inbox-api-put-contact.json", "InboxApiFunction"),
    ("inbox-api-put-device.json", "InboxApiFunction"),
    ("ingest-notification.json", "IngestFunction"),
    ("ingest-invalid.json", "IngestFunction"),
    ("inbox-writer-batch.json", "InboxWriterFunction"),
    ("deliver-email.json", "DeliverFunction"),
    ("deliver-sms.json", "DeliverSmsFunction"),
    ("deliver-push.json", "DeliverPushFunction"),
    ("inbox-api-unread.json", "InboxApiFunction"),
    ("inbox-api-unread-other-user.json", "InboxApiFunction"),
    ("inbox-api-messages.json", "InboxApiFunction"),
    ("inbox-api-read-room.json", "InboxApiFunction"),
    ("live-authorizer-no-token.json", "LiveAuthorizerFunction"),
    ("live-socket-connect.json", "LiveSocketFunction"),
    ("live-socket-ping.json", "LiveSocketFunction"),
    ("live-socket-unknown-action.json", "LiveSocketFunction"),
    ("live-socket-disconnect.json", "LiveSocketFunction"),
    ("live-push-inbox-changes.json", "LivePushFunction"),
    ("inbox-api-unsubscribe-forged.json", "InboxApiFunction"),
    ("feedback-bounce.json", "FeedbackFunction"),
    ("feedback-sms-stop.json", "FeedbackFunction"),
    ("inbox-api-list-suppressions.json", "InboxApiFunction"),
    ("inbox-api-create-campaign.json", "InboxApiFunction"),
    ("campaigns-unknown-campaign.json", "CampaignsFunction"),
];

pub const FIXTURE_EMAIL: &str = "fixture-user@example.com";
pub const FIXTURE_PHONE: &str = "+15555550100";

/// A function's answer to a fixture, whichever way it was invoked.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Http {
        status: u16,
        body: Value,
    },
    Batch {
        failures: Vec<String>,
    },
    /// An authorizer's IAM policy: whether it allows the connection.
    Policy {
        allowed: bool,
    },
    /// The function failed the invocation with this message.
    Refused {
        message: String,
    },
}

impl Answer {
    /// Reads a Lambda response: an API Gateway proxy response or an SQS batch response.
    pub fn from_lambda_response(response: &Value) -> Result<Answer> {
        if let Some(status) = response.get("statusCode").and_then(Value::as_u64) {
            let body = response.get("body").and_then(Value::as_str).unwrap_or("");
            let body = serde_json::from_str(body).unwrap_or(Value::Null);
            return Ok(Answer::Http {
                status: status as u16,
                body,
            });
        }
        if let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) {
            let failures = failures
                .iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(String::from))
                .collect();
            return Ok(Answer::Batch { failures });
        }
        if let Some(statements) = response["policyDocument"]["Statement"].as_array() {
            return Ok(Answer::Policy {
                allowed: !statements.is_empty()
                    && statements.iter().all(|s| s["Effect"] == "Allow"),
            });
        }
        if let Some(message) = response.get("errorMessage").and_then(Value::as_str) {
            return Ok(Answer::Refused {
                message: message.to_owned(),
            });
        }
        bail!("not an HTTP, batch, policy or error response: {response}")
    }
}

pub fn read(name: &str) -> Result<String> {
    let path = crate::workspace_root().join("events").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// What the checks remember between fixtures (counters before a re-invocation, sent counts).
#[derive(Debug, Default)]
pub struct Progress {
    unread_after_batch: Option<Unread>,
    emails_before: usize,
    sms_before: usize,
}

fn fixture_user() -> UserKey {
    UserKey {
        tenant: TenantId::parse("default", "tenant").expect("valid"),
        user: UserId::parse("fixture-user", "user").expect("valid"),
    }
}

/// The fixture user's open connections, as the connections table holds them.
async fn connections(stack: &Stack) -> Result<usize> {
    use herald::ports::live::Connections;
    let table = &stack.resource("ConnectionsTable")?.name;
    let store = herald::aws::connections::DynamoConnections::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        table,
    );
    Ok(store.of_user(&fixture_user()).await?.len())
}

async fn unread(stack: &Stack) -> Result<Unread> {
    let table = &stack.resource("InboxTable")?.name;
    let store = herald::aws::dynamodb::DynamoInbox::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        table,
        1,
    );
    Ok(store.read_counters(&fixture_user()).await?.unread())
}

impl Progress {
    /// Call before invoking `name`: notes what the check compares against afterwards.
    pub fn before(&mut self, stack: &Stack, name: &str) -> Result<()> {
        match name {
            "deliver-email.json" => {
                self.emails_before = emails_to(&stack.endpoint, FIXTURE_EMAIL)?.len()
            }
            "deliver-sms.json" => self.sms_before = sms_to(&stack.endpoint, FIXTURE_PHONE)?.len(),
            _ => {}
        }
        Ok(())
    }

    /// Checks the answer to `name` and its effect in the emulator.
    pub async fn check(&mut self, stack: &Stack, name: &str, answer: &Answer) -> Result<()> {
        let http = |expected: u16| -> Result<&Value> {
            match answer {
                Answer::Http { status, body } if *status == expected => Ok(body),
                other => bail!("{name}: expected HTTP {expected}, got {other:?}"),
            }
        };
        let no_failures = || -> Result<()> {
            match answer {
                Answer::Batch { failures } if failures.is_empty() => Ok(()),
                other => bail!("{name}: expected no batch item failures, got {other:?}"),
            }
        };
        match name {
            "inbox-api-put-contact.json" => {
                ensure!(
                    http(200)?["email"] == FIXTURE_EMAIL,
                    "{name}: contact not echoed"
                );
            }
            "inbox-api-put-device.json" => {
                // The user's app registers its FCM token: a real endpoint on the stack's
                // platform application.
                let body = http(201)?;
                let endpoint = body["device"]["endpoint_arn"].as_str().unwrap_or_default();
                let attributes = aws_sdk_sns::Client::new(&stack.sdk)
                    .get_endpoint_attributes()
                    .endpoint_arn(endpoint)
                    .send()
                    .await
                    .with_context(|| format!("{name}: no endpoint {endpoint:?}"))?;
                ensure!(
                    attributes
                        .attributes()
                        .and_then(|a| a.get("Token"))
                        .is_some_and(|t| t == "fixture-fcm-token"),
                    "{name}: the endpoint is not the token's"
                );
            }
            "inbox-api-list-suppressions.json" => {
                let listed = http(200)?["suppressions"].clone();
                ensure!(
                    listed
                        .as_array()
                        .is_some_and(|l| l.iter().any(|e| e["address"] == FIXTURE_EMAIL)),
                    "{name}: the bounced address is not listed: {listed}"
                );
            }
            "ingest-notification.json" => {
                ensure!(
                    http(202)?["accepted"].as_array().map(Vec::len) == Some(1),
                    "{name}: not accepted"
                );
                ensure!(
                    queue_depth(stack, "NotificationsQueue").await? == 1,
                    "{name}: not on the queue"
                );
            }
            "ingest-invalid.json" => {
                ensure!(
                    http(400)?["error"]["field"] == "notifications[0].user_id",
                    "{name}: wrong error"
                );
                ensure!(
                    queue_depth(stack, "NotificationsQueue").await? == 1,
                    "{name}: enqueued something"
                );
            }
            "inbox-writer-batch.json" => {
                no_failures()?;
                let now = unread(stack).await?;
                match &self.unread_after_batch {
                    None => {
                        let rooms = BTreeMap::from([
                            ("fixture-room".to_owned(), 2),
                            ("fixture-other-room".to_owned(), 1),
                        ]);
                        ensure!(
                            (now.total, &now.rooms) == (3, &rooms),
                            "{name}: counters {now:?}"
                        );
                        ensure!(
                            queue_depth(stack, "DeliveryQueue").await? == 1,
                            "{name}: expected one email job"
                        );
                        self.unread_after_batch = Some(now);
                    }
                    Some(first) => ensure!(
                        &now == first,
                        "{name}: the second delivery changed counters: {now:?}"
                    ),
                }
            }
            "deliver-email.json" => {
                no_failures()?;
                let emails = emails_to(&stack.endpoint, FIXTURE_EMAIL)?;
                ensure!(
                    emails.len() == self.emails_before + 1,
                    "{name}: no email in SES"
                );
                ensure!(
                    emails
                        .last()
                        .is_some_and(|e| e["subject"] == "Your receipt"),
                    "{name}: wrong email"
                );
            }
            "deliver-sms.json" => {
                no_failures()?;
                ensure!(
                    sms_to(&stack.endpoint, FIXTURE_PHONE)?.len() == self.sms_before + 1,
                    "{name}: no SMS in SNS"
                );
            }
            "deliver-push.json" => {
                // fixture-user's app registered its FCM token (inbox-api-put-device.json): the
                // push went to that device's endpoint, and the record says so.
                no_failures()?;
                let directory = herald::aws::directory::DynamoDirectory::new(
                    aws_sdk_dynamodb::Client::new(&stack.sdk),
                    &stack.resource("DirectoryTable")?.reference,
                );
                let tenant = TenantId::parse("default", "tenant")?;
                let id = herald::NotificationId::parse("fixture-d3", "id")?;
                let records =
                    herald::ports::Directory::delivery_status(&directory, &tenant, &id).await?;
                ensure!(
                    records
                        .iter()
                        .any(|r| r.state == herald::ports::DeliveryState::Sent
                            && r.sent_to.len() == 1
                            && r.sent_to[0].contains(":endpoint/GCM/")),
                    "{name}: {records:?}"
                );
            }
            "inbox-api-unread.json" => {
                let answered: Unread = serde_json::from_value(http(200)?.clone())?;
                let stored = unread(stack).await?;
                ensure!(
                    answered == stored,
                    "{name}: answered {answered:?}, emulator holds {stored:?}"
                );
            }
            "inbox-api-unread-other-user.json" => {
                // fixture-user's own token asking for another user's counts.
                ensure!(
                    http(403)?["error"]["code"] == "forbidden",
                    "{name}: a user read another user's inbox"
                );
            }
            "inbox-api-messages.json" => {
                ensure!(
                    http(200)?["messages"].as_array().map(Vec::len) == Some(3),
                    "{name}: expected 3 messages"
                );
            }
            "inbox-api-read-room.json" => {
                let body = http(200)?;
                ensure!(
                    body["total"] == 1 && body["rooms"]["fixture-other-room"] == 1,
                    "{name}: {body}"
                );
                ensure!(unread(stack).await?.total == 1, "{name}: not stored");
            }
            "live-authorizer-no-token.json" => ensure!(
                *answer == Answer::Policy { allowed: false },
                "{name}: a $connect without a token must be denied, got {answer:?}"
            ),
            "live-socket-connect.json" => {
                http(200)?;
                ensure!(connections(stack).await? == 1, "{name}: not recorded");
            }
            "live-socket-ping.json" => ensure!(
                http(200)? == &serde_json::json!({"type": "pong"}),
                "{name}: {answer:?}"
            ),
            "live-socket-unknown-action.json" => {
                let frame = http(200)?;
                ensure!(
                    frame["type"] == "error"
                        && frame["error"]["code"] == "unknown_action"
                        && frame["error"]["field"] == "action",
                    "{name}: {frame}"
                );
            }
            "live-socket-disconnect.json" => {
                http(200)?;
                ensure!(connections(stack).await? == 0, "{name}: not forgotten");
            }
            // The fixture user has no socket open: read, nothing posted, nothing to retry.
            "live-push-inbox-changes.json" => no_failures()?,
            "feedback-bounce.json" => {
                no_failures()?;
                let directory = herald::aws::directory::DynamoDirectory::new(
                    aws_sdk_dynamodb::Client::new(&stack.sdk),
                    &stack.resource("DirectoryTable")?.reference,
                );
                let tenant = TenantId::parse("default", "tenant")?;
                ensure!(
                    herald::ports::Directory::is_suppressed(&directory, &tenant, FIXTURE_EMAIL)
                        .await?,
                    "{name}: the hard bounce did not suppress the address"
                );
            }
            "feedback-sms-stop.json" => {
                // A STOP reply as AWS End User Messaging SMS publishes it (two-way SMS, raw
                // delivery): the number is suppressed for every tenant.
                no_failures()?;
                let directory = herald::aws::directory::DynamoDirectory::new(
                    aws_sdk_dynamodb::Client::new(&stack.sdk),
                    &stack.resource("DirectoryTable")?.reference,
                );
                for tenant in ["default", "another-tenant"] {
                    let tenant = TenantId::parse(tenant, "tenant")?;
                    ensure!(
                        herald::ports::Directory::is_suppressed(&directory, &tenant, FIXTURE_PHONE)
                            .await?,
                        "{name}: the STOP did not suppress the number for {tenant}"
                    );
                }
            }
            "inbox-api-unsubscribe-forged.json" => {
                // No token (the link is its own credential), and this link is forged.
                ensure!(
                    http(400)?["error"]["field"] == "token",
                    "{name}: a forged unsubscribe link was not refused"
                );
            }
            "inbox-api-create-campaign.json" => {
                let body = http(201)?;
                ensure!(body["status"] == "scheduled", "{name}: {body}");
                // "now": the start goes straight on the campaign queue.
                ensure!(
                    queue_depth(stack, "CampaignQueue").await? == 1,
                    "{name}: no start on the campaign queue"
                );
            }
            "campaigns-unknown-campaign.json" => {
                // Work for a campaign that does not exist: to the DLQ with the reason, acked.
                no_failures()?;
                let reasons = crate::harness::dlq_reasons(stack, "CampaignDLQ", 1).await?;
                ensure!(
                    reasons.iter().any(|r| r.contains("no such campaign")),
                    "{name}: {reasons:?}"
                );
            }
            other => bail!("no expectation for events/{other}: add it to testkit::fixtures"),
        }
        Ok(())
    }
}
