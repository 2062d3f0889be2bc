//! `InMemoryInbox` as reconcile's user index.

use async_trait::async_trait;

use super::counters::InMemoryInbox;
use crate::domain::counters::UserKey;
use crate::domain::reconcile::{logged_mark, shard_mark};
use crate::error::StoreError;
use crate::ports::*;

#[async_trait]
impl ChangeLog for InMemoryInbox {
    async fn log_changes(&self, entry: &ChangeLogEntry) -> Result<(), StoreError> {
        self.enter().await.map_err(StoreError::Transient)?;
        let mut state = self.lock();
        for user in &entry.users {
            state
                .changed
                .insert(user.clone(), logged_mark(user, &entry.hour));
        }
        Ok(())
    }
}

#[async_trait]
impl UserIndex for InMemoryInbox {
    async fn users_page(
        &self,
        set: &UserSet,
        cursor: Option<String>,
    ) -> Result<UsersPage, StoreError> {
        self.enter().await.map_err(StoreError::Transient)?;
        let state = self.lock();
        let members: Vec<UserKey> = match set {
            UserSet::Segment { segment, segments } => state
                .totals
                .keys()
                .enumerate()
                .filter(|(i, _)| *i as u32 % segments == *segment)
                .map(|(_, u)| u.clone())
                .collect(),
            UserSet::Changed { hour, shard } => {
                let wanted = shard_mark(hour, *shard);
                state
                    .changed
                    .iter()
                    .filter(|(_, mark)| **mark == wanted)
                    .map(|(u, _)| u.clone())
                    .collect()
            }
        };
        let start = match cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| StoreError::BadCursor)?,
        };
        let end = (start + self.page_size).min(members.len());
        Ok(UsersPage {
            users: members.get(start..end).unwrap_or_default().to_vec(),
            next: (end < members.len()).then(|| end.to_string()),
        })
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().checkpoints.get(name).cloned())
    }

    async fn save_checkpoint(&self, name: &str, json: &str) -> Result<(), StoreError> {
        self.enter().await.map_err(StoreError::Transient)?;
        self.lock()
            .checkpoints
            .insert(name.to_owned(), json.to_owned());
        Ok(())
    }
}
