//! The dead-letter routes (`herald/dead-letters`, the stack's operators): each DLQ's depth
//! and the age of its oldest messages, a DLQ's messages with herald's reason, and a redrive
//! of all or chosen messages back to the queue they came from. The queues are the stack's,
//! shared by its tenants, so no tenant's scope opens them. Every call looks at a bounded
//! number of messages; a redrive of everything answers how many remain, to call again.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use herald::auth::{Scope, VerifiedToken};
use herald::config::{ConfigError, Vars};
use herald::domain::dead_letter::{parse_redrive, DEFAULT_LIST, MAX_LIST};
use herald::http::{parse_json, ApiError};
use herald::ports::{Clock, DeadLetter, DeadLetterQueue, QueueError};
use serde_json::{json, Value};

use crate::Deps;

/// Messages the overview samples in a non-empty DLQ for the age of its oldest.
const AGE_SAMPLE: usize = 10;
/// A listed body longer than this is cut (a DLQ message may hold 256 KiB; a listing of 50
/// must stay within Lambda's 6 MB answer).
const BODY_SHOWN: usize = 4096;

/// One dead-letter queue as the routes name it (`notifications`, `delivery`, …).
pub struct NamedDeadLetterQueue {
    pub name: String,
    pub queue: Arc<dyn DeadLetterQueue>,
}

/// `DEAD_LETTER_QUEUES`: `<name> <dlq url> <source queue url>` triples, separated by commas
/// (the template writes one per queue pair). Unset: the routes list no queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterConfig {
    pub queues: Vec<(String, String, String)>,
}

impl DeadLetterConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let Some(raw) = vars.optional("DEAD_LETTER_QUEUES") else {
            return Ok(Self::default());
        };
        let mut queues = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parts: Vec<&str> = entry.split_whitespace().collect();
            let [name, dlq, source] = parts.as_slice() else {
                return Err(ConfigError::Invalid {
                    name: "DEAD_LETTER_QUEUES".into(),
                    value: entry.chars().take(64).collect(),
                    reason: "each entry is `<name> <dlq url> <source queue url>`".into(),
                });
            };
            queues.push((name.to_string(), dlq.to_string(), source.to_string()));
        }
        Ok(Self { queues })
    }
}

pub struct DeadLetterQueues {
    pub queues: Vec<NamedDeadLetterQueue>,
    pub clock: Arc<dyn Clock>,
}

impl DeadLetterQueues {
    /// No queue (a stack without `DEAD_LETTER_QUEUES`, and tests of other routes).
    pub fn none() -> Self {
        Self {
            queues: Vec::new(),
            clock: Arc::new(herald::ports::SystemClock),
        }
    }

    fn named(&self, name: &str) -> Result<&NamedDeadLetterQueue, ApiError> {
        self.queues.iter().find(|q| q.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.queues.iter().map(|q| q.name.as_str()).collect();
            ApiError::NotFound(format!(
                "no dead-letter queue {}; the stack's are: {}",
                name.chars().take(64).collect::<String>(),
                known.join(", ")
            ))
        })
    }
}

fn unavailable(error: QueueError) -> ApiError {
    ApiError::Unavailable(format!("the queue did not answer: {error}"))
}

/// Seconds since `at`, never negative.
fn age_seconds(clock: &dyn Clock, at: jiff::Timestamp) -> i64 {
    clock.now().duration_since(at).as_secs().max(0)
}

fn letter_json(clock: &dyn Clock, letter: &DeadLetter) -> Value {
    let cut = letter.body.len() > BODY_SHOWN;
    let body: String = if cut {
        let mut end = BODY_SHOWN;
        while !letter.body.is_char_boundary(end) {
            end -= 1;
        }
        letter.body[..end].to_owned()
    } else {
        letter.body.clone()
    };
    json!({
        "id": letter.message_id,
        "reason": letter.reason,
        "sent_at": letter.sent_at.map(|t| t.to_string()),
        "age_seconds": letter.sent_at.map(|t| age_seconds(clock, t)),
        "receive_count": letter.receive_count,
        "body": body,
        "body_truncated": cut,
    })
}

/// `GET /v1/dead-letters`: every DLQ with its depth and, when it holds messages, the age of
/// the oldest of up to 10 sampled (exact for a DLQ of 10 or fewer).
pub(crate) async fn list_queues(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
) -> Result<Json<Value>, ApiError> {
    deps.caller(&token)?.require(Scope::DeadLetters)?;
    let dlqs = &deps.dead_letters;
    let mut queues = Vec::with_capacity(dlqs.queues.len());
    for named in &dlqs.queues {
        let depth = named.queue.depth().await.map_err(unavailable)?;
        let oldest = if depth.messages > 0 {
            let sample = named.queue.list(AGE_SAMPLE).await.map_err(unavailable)?;
            sample.iter().filter_map(|l| l.sent_at).min()
        } else {
            None
        };
        queues.push(json!({
            "queue": named.name,
            "messages": depth.messages,
            "in_flight": depth.in_flight,
            "oldest_sent_at": oldest.map(|t| t.to_string()),
            "oldest_age_seconds": oldest.map(|t| age_seconds(dlqs.clock.as_ref(), t)),
        }));
    }
    Ok(Json(json!({ "queues": queues })))
}

/// `GET /v1/dead-letters/{queue}?limit=`: up to `limit` (1-50, default 20) of its messages,
/// left in the queue.
pub(crate) async fn list_messages(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(queue): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    deps.caller(&token)?.require(Scope::DeadLetters)?;
    let limit = crate::limit_within(&query, DEFAULT_LIST, MAX_LIST)? as usize;
    let dlqs = &deps.dead_letters;
    let named = dlqs.named(&queue)?;
    let depth = named.queue.depth().await.map_err(unavailable)?;
    let letters = named.queue.list(limit).await.map_err(unavailable)?;
    let clock = dlqs.clock.as_ref();
    Ok(Json(json!({
        "queue": named.name,
        "depth": depth,
        "messages": letters.iter().map(|l| letter_json(clock, l)).collect::<Vec<_>>(),
    })))
}

/// `POST /v1/dead-letters/{queue}/redrive` with `{"all": true}` or `{"ids": [...]}`: moves
/// them back to the queue they came from. Answers what moved, what was not found, what the
/// source queue refused (left in the DLQ), and how many remain.
pub(crate) async fn redrive(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(queue): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = deps.caller(&token)?;
    caller.require(Scope::DeadLetters)?;
    let dlqs = &deps.dead_letters;
    let named = dlqs.named(&queue)?;
    let selection = parse_redrive(&parse_json(&body)?)?;
    let done = named.queue.redrive(&selection).await.map_err(unavailable)?;
    tracing::info!(
        queue = %named.name,
        moved = done.moved.len(),
        not_found = done.not_found.len(),
        failed = done.failed.len(),
        by = caller.subject.as_deref().unwrap_or("unknown"),
        "dead letters redriven"
    );
    let depth = named.queue.depth().await.map_err(unavailable)?;
    Ok(Json(json!({
        "queue": named.name,
        "moved": done.moved,
        "not_found": done.not_found,
        "failed": done.failed,
        // In flight too: what a concurrent listing or redrive holds is still there.
        "remaining": depth.messages + depth.in_flight,
    })))
}
