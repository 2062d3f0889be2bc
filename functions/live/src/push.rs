//! The pusher: the inbox table's stream (every path that changes an inbox writes there:
//! the writers' commits, mark-read, seen, archive, reconcile's repairs) into frames. Per
//! batch, `live::plan` groups the changes by user in commit order; each user with an open
//! connection gets one `update` frame: the counts read strongly consistent after the change
//! (so they are the truth, with TOTAL's version) and what changed. A user with no connection
//! costs one Query of the connections table. A socket gone (410) is forgotten; a frame that
//! fails otherwise is dropped, since the next carries the counts again and a client re-reads
//! them when it reconnects. Only a failed read asks the stream to redeliver (from the first
//! record of the users it could not serve).

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures_util::{stream, StreamExt};
use herald::aws::dynamodb::stream::item_change;
use herald::domain::counters::UserKey;
use herald::domain::live::{plan, update_frame, Change, ItemChange};
use herald::ports::live::{Connections, PostError, Sockets};
use herald::ports::CounterStore;
use herald::telemetry::Metric;
use herald::StoreError;

use crate::PushConfig;

/// Users served at once within a batch.
const USERS_AT_ONCE: usize = 16;

pub struct Pusher {
    pub connections: Arc<dyn Connections>,
    pub counters: Arc<dyn CounterStore>,
    pub sockets: Arc<dyn Sockets>,
}

/// What one batch did, for metrics and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Users the batch changed.
    pub users: usize,
    /// Frames that reached a socket.
    pub frames: usize,
    /// Connections found gone and forgotten.
    pub gone: usize,
    /// Frames lost to a failed post.
    pub failed: usize,
}

enum UserOutcome {
    Served(Pushed),
    /// Reading connections or counts failed: redeliver from this user's first record.
    Failed(StoreError),
}

impl Pusher {
    pub fn from_aws(config: &PushConfig, aws: &aws_config::SdkConfig) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        Self {
            connections: Arc::new(herald::aws::connections::DynamoConnections::new(
                dynamodb.clone(),
                &config.connections_table,
            )),
            // Retention only matters to writes; the pusher reads.
            counters: Arc::new(herald::aws::dynamodb::DynamoInbox::new(
                dynamodb,
                &config.inbox_table,
                0,
            )),
            sockets: Arc::new(herald::aws::live::ApiGatewaySockets::new(
                aws,
                &config.live_endpoint,
            )),
        }
    }

    /// The stream batch's frames; the records to redeliver, as batch item failures.
    pub async fn handle(&self, event: &Event) -> (Pushed, DynamoDbEventResponse) {
        // Each user's first record: where a redelivery for that user starts.
        let mut first_record: Vec<(UserKey, String)> = Vec::new();
        let changes: Vec<ItemChange> = event
            .records
            .iter()
            .filter_map(|record| {
                let change = item_change(record)?;
                if !first_record.iter().any(|(u, _)| u == &change.user) {
                    first_record.push((change.user.clone(), sequence_number(record)));
                }
                Some(change)
            })
            .collect();
        let planned = plan(changes);
        let outcomes: Vec<(UserKey, UserOutcome)> = stream::iter(planned)
            .map(|(user, changes)| async move {
                let outcome = self.serve(&user, changes).await;
                (user, outcome)
            })
            .buffered(USERS_AT_ONCE)
            .collect()
            .await;
        let mut pushed = Pushed::default();
        let mut failures = Vec::new();
        for (user, outcome) in outcomes {
            pushed.users += 1;
            match outcome {
                UserOutcome::Served(one) => {
                    pushed.frames += one.frames;
                    pushed.gone += one.gone;
                    pushed.failed += one.failed;
                }
                UserOutcome::Failed(e) => {
                    tracing::warn!(tenant = %user.tenant, user = %user.user, error = %e, "live push: reading failed, the stream redelivers");
                    if let Some((_, sequence)) = first_record.iter().find(|(u, _)| u == &user) {
                        failures.push(sequence.clone());
                    }
                }
            }
        }
        herald::telemetry::emit(
            "live-push",
            &[],
            &[
                Metric::count("LiveFramesPushed", pushed.frames),
                Metric::count("LiveConnectionsGone", pushed.gone),
                Metric::count("LiveFramesLost", pushed.failed),
                Metric::count("LivePushRetries", failures.len()),
            ],
        );
        let mut response = DynamoDbEventResponse::default();
        // The stream retries from the lowest failed sequence number; one is enough.
        if let Some(first) = failures
            .into_iter()
            .min_by(|a, b| sequence_order(a).cmp(&sequence_order(b)))
        {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(first);
            response.batch_item_failures.push(failure);
        }
        (pushed, response)
    }

    async fn serve(&self, user: &UserKey, changes: Vec<Change>) -> UserOutcome {
        let connections = match self.connections.of_user(user).await {
            Ok(connections) if connections.is_empty() => {
                return UserOutcome::Served(Pushed::default())
            }
            Ok(connections) => connections,
            Err(e) => return UserOutcome::Failed(e),
        };
        let counts = match self.counters.read_counters(user).await {
            Ok(counters) => counters.unread(),
            Err(e) => return UserOutcome::Failed(e),
        };
        let frame = update_frame(counts, changes);
        let mut served = Pushed::default();
        for connection in connections {
            match self.sockets.post(&connection.id, &frame).await {
                Ok(()) => served.frames += 1,
                Err(PostError::Gone) => {
                    served.gone += 1;
                    if let Err(e) = self.connections.remove(user, &connection.id).await {
                        // Its TTL removes it anyway.
                        tracing::warn!(error = %e, "forgetting a gone connection");
                    }
                }
                Err(PostError::Failed(e)) => {
                    served.failed += 1;
                    tracing::warn!(connection = %connection.id, error = %e, "live frame lost");
                }
            }
        }
        UserOutcome::Served(served)
    }
}

fn sequence_number(record: &EventRecord) -> String {
    record.change.sequence_number.clone().unwrap_or_default()
}

/// Stream sequence numbers are decimal strings of up to 40 digits: shorter is smaller.
fn sequence_order(sequence: &str) -> (usize, &str) {
    (sequence.len(), sequence)
}
