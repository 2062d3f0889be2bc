//! The live feed in memory: connections by user, and sockets that record every frame they
//! were sent, with closed ones answering 410 Gone and injectable failures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::counters::UserKey;
use crate::domain::live::Connection;
use crate::error::{CallError, StoreError};
use crate::ports::live::{Connections, PostError, Sockets};

/// Connections by user.
#[derive(Default)]
pub struct InMemoryConnections {
    pub by_user: Mutex<BTreeMap<UserKey, Vec<Connection>>>,
}

#[async_trait]
impl Connections for InMemoryConnections {
    async fn add(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut all = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let mine = all.entry(connection.user.clone()).or_default();
        mine.retain(|c| c.id != connection.id);
        mine.push(connection.clone());
        Ok(())
    }

    async fn remove(&self, user: &UserKey, connection_id: &str) -> Result<(), StoreError> {
        let mut all = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mine) = all.get_mut(user) {
            mine.retain(|c| c.id != connection_id);
        }
        Ok(())
    }

    async fn of_user(&self, user: &UserKey) -> Result<Vec<Connection>, StoreError> {
        let all = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        Ok(all.get(user).cloned().unwrap_or_default())
    }
}

/// Sockets that keep what they were sent, by connection id.
#[derive(Default)]
pub struct RecordingSockets {
    pub sent: Mutex<BTreeMap<String, Vec<String>>>,
    /// Connections that are closed: a post answers 410 Gone.
    pub gone: Mutex<BTreeSet<String>>,
    /// Connections whose posts fail (throttled): the frame is lost.
    pub failing: Mutex<BTreeSet<String>>,
}

impl RecordingSockets {
    /// The frames `connection_id` received, parsed.
    pub fn frames(&self, connection_id: &str) -> Vec<serde_json::Value> {
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.get(connection_id)
            .into_iter()
            .flatten()
            .map(|f| serde_json::from_str(f).expect("frames are JSON"))
            .collect()
    }
}

#[async_trait]
impl Sockets for RecordingSockets {
    async fn post(&self, connection_id: &str, frame: &str) -> Result<(), PostError> {
        if self
            .gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(connection_id)
        {
            return Err(PostError::Gone);
        }
        if self
            .failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(connection_id)
        {
            return Err(PostError::Failed(CallError::message(
                "TooManyRequestsException: injected",
            )));
        }
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(connection_id.to_owned())
            .or_default()
            .push(frame.to_owned());
        Ok(())
    }
}
