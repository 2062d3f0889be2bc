//! reconcile: on a schedule, recomputes TOTAL from the rooms of every user whose counters
//! changed since the last run (or of every user, on request), repairs drift under the version
//! condition and reports it as the `CounterDrift` metric (it must read 0). Runs resume from
//! a checkpoint, so a table of any size is covered across invocations.

use std::time::{Duration, Instant};

pub mod change_log;

use herald::config::{ConfigError, Vars};
use herald::domain::backoff::BackoffPolicy;
use herald::domain::reconcile::{self, Mode, ReconcileReport, Run};
use herald::ports::{CounterStore, UserIndex};
use herald::StoreError;
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct Config {
    pub inbox_table: String,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            inbox_table: vars.required("INBOX_TABLE")?,
        })
    }
}

/// The scheduled event's input: `{"mode": "full"}` visits every user; anything else (the
/// hourly schedule sends nothing) visits the users whose counters changed.
#[derive(Debug, Default, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub mode: Option<Mode>,
}

impl Request {
    pub fn from_event(event: &serde_json::Value) -> Self {
        serde_json::from_value(event.clone()).unwrap_or_default()
    }
}

/// Time kept back from the function's deadline to save the checkpoint and report.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);

/// When to stop taking pages, given the invocation's deadline.
pub fn deadline(invocation_deadline: std::time::SystemTime) -> Instant {
    let left = invocation_deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}

/// The store this function reconciles.
pub fn store_from_aws(
    config: &Config,
    aws: &aws_config::SdkConfig,
) -> herald::aws::dynamodb::DynamoInbox {
    // Retention is irrelevant here: reconcile writes no messages.
    herald::aws::dynamodb::DynamoInbox::new(
        aws_sdk_dynamodb::Client::new(aws),
        &config.inbox_table,
        0,
    )
}

/// One run, until its pass is done or `deadline`; metrics are emitted either way.
pub async fn reconcile<S: CounterStore + UserIndex>(
    store: &S,
    request: &Request,
    deadline: Instant,
) -> Result<ReconcileReport, StoreError> {
    let run = Run {
        mode: request.mode.unwrap_or(Mode::Changed),
        deadline,
        now: jiff::Timestamp::now(),
        policy: BackoffPolicy::default(),
    };
    let report = reconcile::reconcile(store, store, run).await?;
    tracing::info!(
        mode = ?run.mode,
        users = report.users,
        drifted = report.drifted_users,
        drift = report.drift,
        errors = report.errors,
        pages = report.pages,
        complete = report.complete,
        "reconciled"
    );
    herald::telemetry::emit_metrics(
        "reconcile",
        &[
            ("CounterDrift", report.drift as f64, "Count"),
            ("UsersReconciled", report.users as f64, "Count"),
            ("ReconcileErrors", report.errors as f64, "Count"),
        ],
    );
    Ok(report)
}
