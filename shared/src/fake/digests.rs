//! Digest windows in memory: each transaction's conditions checked and applied under one
//! lock, as DynamoDB's TransactWriteItems does; a read yields first, so concurrent events
//! interleave between reading a window and writing to it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::counters::UserKey;
use crate::domain::digest::{DigestEvent, JoinPlan, Joined, OpenWindow};
use crate::error::StoreError;
use crate::ports::{CommitError, Digests};

type Key = (UserKey, String);

#[derive(Default)]
struct State {
    open: BTreeMap<Key, OpenWindow>,
    /// Events per (user, key, window), in the order they joined.
    events: BTreeMap<(UserKey, String, String), Vec<DigestEvent>>,
    joins: BTreeMap<(UserKey, String, String), Joined>,
}

#[derive(Default)]
pub struct InMemoryDigests {
    state: Mutex<State>,
    /// Simulated latency of each call, so a race between a read and a write is likely.
    latency: std::time::Duration,
}

impl InMemoryDigests {
    pub fn with_latency(latency: std::time::Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every window that has events, with their event ids: (key, window) → ids.
    pub fn windows(&self, user: &UserKey) -> BTreeMap<(String, String), Vec<String>> {
        self.lock()
            .events
            .iter()
            .filter(|((u, _, _), _)| u == user)
            .map(|((_, key, window), events)| {
                (
                    (key.clone(), window.clone()),
                    events.iter().map(|e| e.id.clone()).collect(),
                )
            })
            .collect()
    }
}

#[async_trait]
impl Digests for InMemoryDigests {
    async fn open_window(
        &self,
        user: &UserKey,
        key: &str,
    ) -> Result<Option<OpenWindow>, StoreError> {
        let found = self
            .lock()
            .open
            .get(&(user.clone(), key.to_owned()))
            .cloned();
        tokio::task::yield_now().await;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Ok(found)
    }

    async fn add_event(
        &self,
        user: &UserKey,
        key: &str,
        plan: &JoinPlan,
        event: &DigestEvent,
        now: jiff::Timestamp,
        _window_seconds: u32,
    ) -> Result<(), CommitError> {
        // The request's way to the table: what it read may change meanwhile.
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut state = self.lock();
        let join_key = (user.clone(), key.to_owned(), event.id.clone());
        if state.joins.contains_key(&join_key) {
            return Err(CommitError::Duplicates(Vec::new()));
        }
        let open_key = (user.clone(), key.to_owned());
        let stored = state.open.get(&open_key);
        let joined = match plan {
            JoinPlan::Join(open) => {
                let holds = stored
                    .is_some_and(|s| s.window == open.window && !s.sealed && s.closes_at > now);
                if !holds {
                    return Err(CommitError::Retryable("the window changed".into()));
                }
                Joined {
                    window: open.window.clone(),
                    closes_at: open.closes_at,
                    opened: false,
                }
            }
            JoinPlan::Open {
                replacing,
                closes_at,
            } => {
                if stored.map(|s| &s.window) != replacing.as_ref() {
                    return Err(CommitError::Retryable("the window changed".into()));
                }
                state.open.insert(
                    open_key,
                    OpenWindow {
                        window: event.id.clone(),
                        closes_at: *closes_at,
                        sealed: false,
                    },
                );
                Joined {
                    window: event.id.clone(),
                    closes_at: *closes_at,
                    opened: true,
                }
            }
        };
        state
            .events
            .entry((user.clone(), key.to_owned(), joined.window.clone()))
            .or_default()
            .push(event.clone());
        state.joins.insert(join_key, joined);
        Ok(())
    }

    async fn joined(
        &self,
        user: &UserKey,
        key: &str,
        event_id: &str,
    ) -> Result<Option<Joined>, StoreError> {
        Ok(self
            .lock()
            .joins
            .get(&(user.clone(), key.to_owned(), event_id.to_owned()))
            .cloned())
    }

    async fn seal(&self, user: &UserKey, key: &str, window: &str) -> Result<(), StoreError> {
        if let Some(open) = self.lock().open.get_mut(&(user.clone(), key.to_owned())) {
            if open.window == window {
                open.sealed = true;
            }
        }
        Ok(())
    }

    async fn events(
        &self,
        user: &UserKey,
        key: &str,
        window: &str,
        limit: usize,
    ) -> Result<(Vec<DigestEvent>, u64), StoreError> {
        let state = self.lock();
        let all = state
            .events
            .get(&(user.clone(), key.to_owned(), window.to_owned()))
            .cloned()
            .unwrap_or_default();
        let mut listed = all.clone();
        listed.sort_by_key(|e| e.created_at);
        listed.truncate(limit);
        Ok((listed, all.len() as u64))
    }
}
