//! reconcile: on a schedule, recomputes every user's TOTAL from their rooms, repairs drift
//! under the version condition and reports it as the `CounterDrift` metric (it must read 0).

use herald::config::{ConfigError, Vars};
use herald::domain::backoff::BackoffPolicy;
use herald::domain::counters::{reconcile_all, ReconcileReport};
use herald::ports::CounterStore;
use herald::StoreError;

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

/// One pass over the table; the scheduled event's content does not matter.
pub async fn reconcile(store: &dyn CounterStore) -> Result<ReconcileReport, StoreError> {
    let report = reconcile_all(store, &BackoffPolicy::default()).await?;
    tracing::info!(
        users = report.users,
        drifted = report.drifted_users,
        drift = report.drift,
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
