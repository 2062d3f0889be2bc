//! The change log's consumer: the inbox table's stream, its TOTAL records only (the
//! template's `FilterCriteria`), each batch's changed users logged as change-log items for
//! reconcile's hourly run. It replaces a mark on TOTAL and a sparse index that every counter
//! write used to move: the writers' transactions write nothing for reconcile, and the log
//! costs one small item per batch instead of an index write per notification.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use herald::aws::dynamodb::stream::changed_total;
use herald::domain::backoff::BackoffPolicy;
use herald::domain::reconcile::change_log_entries;
use herald::ports::{ChangeLog, Clock, SystemClock};
use herald::telemetry::Metric;
use herald::StoreError;

use crate::Config;

pub struct ChangeLogger {
    pub log: Arc<dyn ChangeLog>,
    pub clock: Arc<dyn Clock>,
    pub backoff: BackoffPolicy,
}

impl ChangeLogger {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        Self {
            log: Arc::new(crate::store_from_aws(config, aws)),
            clock: Arc::new(SystemClock),
            backoff: BackoffPolicy::default(),
        }
    }

    /// `handle` as the function answers Lambda: a batch not logged is a function error, not
    /// only an item failure, so Lambda hands it over again (bisected) and the function's
    /// error alarm sees it.
    pub async fn invoke(&self, event: &Event) -> Result<DynamoDbEventResponse, StoreError> {
        let (_, response) = self.handle(event).await;
        if response.batch_item_failures.is_empty() {
            Ok(response)
        } else {
            Err(StoreError::Transient(
                "the change log was not written; the batch comes again".into(),
            ))
        }
    }

    /// Logs the batch's changed users; returns how many, and the batch item failures: none,
    /// or, when the log could not be written (after backing off from throttling), the
    /// batch's first record, so Lambda hands the batch over again and the same items are
    /// written again.
    pub async fn handle(&self, event: &Event) -> (usize, DynamoDbEventResponse) {
        let Some(first) = event
            .records
            .first()
            .and_then(|r| r.change.sequence_number.clone())
        else {
            return (0, DynamoDbEventResponse::default());
        };
        let users: Vec<_> = event.records.iter().filter_map(changed_total).collect();
        let entries = change_log_entries(&first, users, self.clock.now());
        let mut logged = 0;
        for entry in &entries {
            let mut retry = self.backoff.start();
            loop {
                match self.log.log_changes(entry).await {
                    Ok(()) => break,
                    Err(e) if e.is_transient() && retry.wait().await => continue,
                    Err(error) => {
                        tracing::error!(%error, batch = %first, "change log not written; the batch comes again");
                        herald::telemetry::emit(
                            "change-log",
                            &[],
                            &[Metric::count("ChangeLogRetries", 1)],
                        );
                        let mut failure = DynamoDbBatchItemFailure::default();
                        failure.item_identifier = Some(first);
                        let mut response = DynamoDbEventResponse::default();
                        response.batch_item_failures = vec![failure];
                        return (logged, response);
                    }
                }
            }
            logged += entry.users.len();
        }
        tracing::info!(
            users = logged,
            records = event.records.len(),
            "changes logged"
        );
        (logged, DynamoDbEventResponse::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald::domain::counters::UserKey;
    use herald::domain::reconcile::hour_of;
    use herald::fake::FixedClock;
    use herald::ports::ChangeLogEntry;
    use herald::ports::UserSet;
    use std::sync::Mutex;

    /// Keeps what it is given; fails the first `failures` writes as throttled.
    #[derive(Default)]
    struct Recorded {
        entries: Mutex<Vec<ChangeLogEntry>>,
        failures: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl ChangeLog for Recorded {
        async fn log_changes(&self, entry: &ChangeLogEntry) -> Result<(), StoreError> {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(StoreError::Transient("throttled".into()));
            }
            self.entries.lock().unwrap().push(entry.clone());
            Ok(())
        }
    }

    fn record(sk: &str, user: &str, event: &str, sequence: &str) -> serde_json::Value {
        serde_json::json!({
            "eventID": sequence, "eventName": event, "eventSource": "aws:dynamodb",
            "eventVersion": "1.1", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/inbox/stream/x",
            "dynamodb": {
                "Keys": {"pk": {"S": format!("T#t1#U#{user}")}, "sk": {"S": sk}},
                "SequenceNumber": sequence, "SizeBytes": 10,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        })
    }

    fn event(records: Vec<serde_json::Value>) -> Event {
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    fn logger(log: Arc<dyn ChangeLog>) -> ChangeLogger {
        ChangeLogger {
            log,
            clock: Arc::new(FixedClock("2026-12-06T10:15:00Z".parse().unwrap())),
            backoff: BackoffPolicy {
                base: std::time::Duration::from_millis(1),
                cap: std::time::Duration::from_millis(1),
                budget: std::time::Duration::from_millis(20),
            },
        }
    }

    #[tokio::test]
    async fn a_batch_logs_each_changed_user_once_and_only_totals() {
        let log = Arc::new(Recorded::default());
        let batch = event(vec![
            record("TOTAL", "u1", "MODIFY", "100"),
            record("R#r1", "u2", "MODIFY", "101"),
            record("TOTAL", "u3", "INSERT", "102"),
            record("TOTAL", "u1", "MODIFY", "103"),
            record("TOTAL", "u4", "REMOVE", "104"),
        ]);
        let (logged, response) = logger(log.clone()).handle(&batch).await;
        assert_eq!(logged, 2);
        assert!(response.batch_item_failures.is_empty());
        let entries = log.entries.lock().unwrap().clone();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].hour, "2026120610");
        assert_eq!(entries[0].id, "100#0");
        let users: Vec<&str> = entries[0].users.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(users, ["u1", "u3"]);
    }

    #[tokio::test]
    async fn a_log_it_cannot_write_hands_the_batch_back_from_its_first_record() {
        let log = Arc::new(Recorded::default());
        *log.failures.lock().unwrap() = 10_000;
        let batch = event(vec![
            record("TOTAL", "u1", "MODIFY", "200"),
            record("TOTAL", "u2", "MODIFY", "201"),
        ]);
        let (_, response) = logger(log.clone()).handle(&batch).await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, [Some("200".to_owned())]);
        assert!(
            logger(log.clone()).invoke(&batch).await.is_err(),
            "a function error"
        );
        // Throttled a few times only: backed off, then written.
        *log.failures.lock().unwrap() = 2;
        let (logged, response) = logger(log.clone()).handle(&batch).await;
        assert_eq!(logged, 2);
        assert!(response.batch_item_failures.is_empty());
    }

    /// What the consumer logs, reconcile's hourly sets find: on the in-memory store, the
    /// users of the hour's shards are the batch's.
    #[tokio::test]
    async fn what_is_logged_is_what_the_hours_sets_list() {
        use herald::ports::UserIndex;
        let store = Arc::new(herald::fake::InMemoryInbox::default());
        let batch = event(
            (0..40)
                .map(|i| record("TOTAL", &format!("u{i}"), "MODIFY", &format!("{}", 300 + i)))
                .collect(),
        );
        logger(store.clone()).handle(&batch).await;
        let hour = hour_of("2026-12-06T10:15:00Z".parse().unwrap());
        let mut found: Vec<UserKey> = Vec::new();
        for shard in 0..herald::domain::reconcile::CHANGE_SHARDS {
            let mut cursor = None;
            loop {
                let set = UserSet::Changed {
                    hour: hour.clone(),
                    shard,
                };
                let page = store.users_page(&set, cursor).await.unwrap();
                found.extend(page.users);
                cursor = page.next;
                if cursor.is_none() {
                    break;
                }
            }
        }
        assert_eq!(found.len(), 40);
    }
}
