//! `cargo xtask bench workflows`: what a workflow costs in DynamoDB, on the emulator with an
//! interceptor on the real clients: per escalated notification (inbox now, email after 15
//! minutes and SMS after an hour, each unless read) against the same notification with
//! plain channels, in the writer and per step in deliver; and per digested event and per
//! digest window. Writes target/bench/workflows.json.

use std::sync::Arc;

use anyhow::{bail, Result};
use herald::aws::digests::DynamoDigests;
use herald::aws::directory::DynamoDirectory;
use herald::aws::dynamodb::DynamoInbox;
use herald::aws::sqs::SqsSender;
use herald::consumer::{BatchHandler, Disposition, QueueMessage};
use herald::domain::contact::Contact;
use herald::domain::delivery::DeliveryJob;
use herald::fake::{FixedClock, RecordingQueue, RecordingScheduler, RecordingSender, StaticKeys};
use herald::ports::{Directory, Scheduler};
use herald::{Channel, TenantId, UserId};
use serde_json::{json, Value};
use testkit::meter::{metered_dynamodb, metered_sqs, CallMeter, Counts};
use testkit::stack::Stack;
use testkit::template::Template;

/// Options of `cargo xtask bench workflows`.
#[derive(Debug, clap::Args)]
pub struct WorkflowsArgs {
    /// Notifications of each kind (one user each).
    #[arg(long, default_value_t = 100)]
    notifications: usize,
    /// Events per digest window (one window per user).
    #[arg(long, default_value_t = 10)]
    events_per_window: usize,
}

/// DynamoDB requests and write units per unit of work.
fn per(counts: &Counts, units: usize) -> Value {
    let n = units.max(1) as f64;
    let requests: u64 = counts
        .attempts
        .iter()
        .filter(|(k, _)| k.starts_with("DynamoDB"))
        .map(|(_, v)| v)
        .sum();
    json!({
        "dynamodb_requests": requests as f64 / n,
        "write_units": (counts.dynamodb_write_units
            + counts.dynamodb_index_write_units
            + counts.dynamodb_standard_write_units)
            / n,
        "operations": counts.attempts.iter()
            .filter(|(k, _)| k.starts_with("DynamoDB"))
            .map(|(k, v)| (k.clone(), json!(*v as f64 / n)))
            .collect::<serde_json::Map<_, _>>(),
    })
}

fn message(i: usize, body: Value) -> QueueMessage {
    QueueMessage {
        message_id: format!("m{i}"),
        receipt_handle: "h".into(),
        body: body.to_string(),
        receive_count: 1,
        trace_header: None,
    }
}

fn notification(kind: &str, i: usize, extra: Value) -> Value {
    let mut n = json!({"tenant": "bench", "id": format!("{kind}-{i}"), "user_id": format!("{kind}-u{i}"),
        "room_id": "r1", "title": "Order shipped", "body": "On its way",
        "created_at": herald::domain::time::millis(jiff::Timestamp::now())});
    for (k, v) in extra.as_object().into_iter().flatten() {
        n[k] = v.clone();
    }
    n
}

pub fn run(args: &WorkflowsArgs) -> Result<()> {
    super::measure_on_emulator("workflows", |endpoint| async move {
        measure(&endpoint, args).await
    })
}

async fn measure(endpoint: &str, args: &WorkflowsArgs) -> Result<Value> {
    let n = args.notifications;
    let stack = Stack::provision(endpoint, "bench-wf", Template::project()?, &[]).await?;
    let meter = CallMeter::default();
    let ddb = metered_dynamodb(&stack.sdk, &meter);
    let config = inbox_writer::Config::from_vars(&stack.function_vars("InboxWriterFunction")?)?;
    let directory_table = config.directory_table.clone().unwrap_or_default();
    let inbox = Arc::new(DynamoInbox::new(
        ddb.clone(),
        &config.inbox_table,
        config.retention_days,
    ));
    let digests = Arc::new(DynamoDigests::new(ddb.clone(), &directory_table));
    let jobs = Arc::new(RecordingQueue::default());
    let scheduler: Arc<dyn Scheduler> = Arc::new(RecordingScheduler::default());
    let writer = inbox_writer::InboxWriter {
        store: inbox.clone(),
        delivery: jobs.clone(),
        channel_queues: Vec::new(),
        policy: config.policy,
        packing: config.packing,
        campaigns: None,
        preferences: None,
        step_schedulers: vec![(Channel::Email, scheduler)],
        digests: Some(digests.clone()),
    };

    // The writer: plain channels, then the same with an escalation.
    let escalation = json!({"channels": ["inbox", "email", "sms"], "steps": [
        {"channel": "inbox"},
        {"channel": "email", "delay_seconds": 900, "unless": "read"},
        {"channel": "sms", "delay_seconds": 3600, "unless": "read"}
    ]});
    let mut writer_costs = serde_json::Map::new();
    for (kind, extra) in [
        ("plain", json!({"channels": ["inbox", "email", "sms"]})),
        ("escalated", escalation),
    ] {
        meter.reset();
        for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
            let batch: Vec<QueueMessage> = chunk
                .iter()
                .map(|i| message(*i, notification(kind, *i, extra.clone())))
                .collect();
            if writer
                .handle(&batch)
                .await
                .iter()
                .any(|d| *d != Disposition::Done)
            {
                bail!("the writer did not take every {kind} notification");
            }
        }
        writer_costs.insert(kind.into(), per(&meter.counts(), n));
    }

    // Deliver: each step job of the escalated notifications, due (the clock a day on), the
    // user with an address, against the same job without a condition.
    let directory = Arc::new(DynamoDirectory::new(ddb.clone(), &directory_table));
    for i in 0..n {
        for kind in ["escalated", "digested"] {
            let contact = Contact {
                email: Some(format!("{kind}-{i}@example.com")),
                ..Contact::default()
            };
            directory
                .put_contact(
                    &TenantId::parse("bench", "t")?,
                    &UserId::parse(format!("{kind}-u{i}"), "u")?,
                    &contact,
                    &format!("{kind}-p{i}"),
                    0,
                )
                .await?;
        }
    }
    let sender = Arc::new(RecordingSender::default());
    let deliverer = deliver::Deliverer {
        directory: directory.clone(),
        email: sender.clone(),
        mobile: sender.clone(),
        requeue: Arc::new(SqsSender::new(
            metered_sqs(&stack.sdk, &meter),
            &config.delivery_queue_url,
        )),
        unsubscribe: Some((
            "https://example.com/u".into(),
            Arc::new(StaticKeys::default()),
        )),
        clock: Arc::new(FixedClock(
            jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
        )),
        give_up_after: std::time::Duration::from_secs(3600),
        batch_budget: std::time::Duration::from_secs(600),
        campaigns: None,
        devices: None,
        inbox: Some(inbox.clone()),
        caps: None,
        digests: Some(digests.clone()),
    };
    let email_jobs: Vec<DeliveryJob> = jobs
        .sent
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .filter_map(|m| serde_json::from_str::<DeliveryJob>(&m.body).ok())
        .filter(|j| j.channel == Channel::Email && j.user_id.as_str().starts_with("escalated"))
        .collect();
    let mut deliver_costs = serde_json::Map::new();
    for (kind, conditional) in [("plain step", false), ("step unless read", true)] {
        meter.reset();
        for job in &email_jobs {
            let job = DeliveryJob {
                unless: job.unless.filter(|_| conditional),
                notification_id: herald::NotificationId::parse(
                    format!("{}-{}", job.notification_id, u8::from(conditional)),
                    "id",
                )?,
                ..job.clone()
            };
            deliverer.deliver(&job).await;
        }
        deliver_costs.insert(kind.into(), per(&meter.counts(), email_jobs.len()));
    }

    // Digests: `events_per_window` events per user in one window each.
    let per_window = args.events_per_window;
    meter.reset();
    jobs.sent
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clear();
    let mut events = 0;
    for user in 0..n / per_window.max(1) {
        let batch: Vec<QueueMessage> = (0..per_window)
            .map(|e| {
                events += 1;
                let mut body = notification(
                    "digested",
                    user,
                    json!({"channels": ["inbox", "email"],
                    "digest": {"key": "post-1", "window_seconds": 300}}),
                );
                body["id"] = json!(format!("digested-{user}-{e}"));
                message(e, body)
            })
            .collect();
        writer.handle(&batch).await;
    }
    let digest_writer = meter.counts();
    let window_jobs: Vec<DeliveryJob> = jobs
        .sent
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .filter_map(|m| serde_json::from_str::<DeliveryJob>(&m.body).ok())
        .collect();
    meter.reset();
    for job in &window_jobs {
        deliverer.deliver(job).await;
    }
    let digest_deliver = meter.counts();
    // The same events without a digest, for comparison.
    meter.reset();
    for user in 0..n / per_window.max(1) {
        let batch: Vec<QueueMessage> = (0..per_window)
            .map(|e| {
                let mut body =
                    notification("undigested", user, json!({"channels": ["inbox", "email"]}));
                body["id"] = json!(format!("undigested-{user}-{e}"));
                message(e, body)
            })
            .collect();
        writer.handle(&batch).await;
    }
    let plain_writer = meter.counts();

    Ok(json!({
        "notifications": n,
        "writer_per_notification": writer_costs,
        "deliver_per_email_step": deliver_costs,
        "digest": {
            "events": events,
            "windows": window_jobs.len(),
            "writer_per_digested_event": per(&digest_writer, events),
            "writer_per_plain_event": per(&plain_writer, events),
            "deliver_per_window": per(&digest_deliver, window_jobs.len()),
            "emails_sent": sender.emails.lock().map(|e| e.len()).unwrap_or(0),
        },
    }))
}
