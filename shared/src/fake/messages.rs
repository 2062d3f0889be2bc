//! `InMemoryInbox` as the message log.

use async_trait::async_trait;

use super::counters::InMemoryInbox;
use crate::domain::counters::UserKey;
use crate::domain::ids::RoomId;
use crate::domain::notification::{Channel, Notification};
use crate::error::StoreError;
use crate::ports::*;

#[async_trait]
impl MessageLog for InMemoryInbox {
    async fn list_messages_where(
        &self,
        user: &UserKey,
        room: Option<&RoomId>,
        limit: u32,
        cursor: Option<&str>,
        archived: Option<bool>,
    ) -> Result<MessagePage, StoreError> {
        let state = self.lock();
        let mut mine: Vec<&(Notification, u64)> = state
            .messages
            .iter()
            .filter(|((u, id), (n, _))| {
                u == user
                    && n.wants(Channel::Inbox)
                    && room.is_none_or(|r| &n.room_id == r)
                    && archived
                        .is_none_or(|a| state.archived.contains(&(u.clone(), (*id).clone())) == a)
            })
            .map(|(_, m)| m)
            .collect();
        mine.sort_by(|(a, _), (b, _)| b.log_key().cmp(a.log_key()));
        // Cursors name their list, as the DynamoDB adapter's do.
        let list = room.map_or("*", RoomId::as_str);
        let start = match cursor {
            None => 0,
            Some(c) => c
                .strip_prefix(list)
                .and_then(|rest| rest.strip_prefix('|'))
                .and_then(|i| i.parse::<usize>().ok())
                .ok_or(StoreError::BadCursor)?,
        };
        let page: Vec<MessageView> = mine
            .iter()
            .skip(start)
            .take(limit as usize)
            .map(|(n, stamp)| {
                let r = state.message_ref(user, n, *stamp);
                MessageView {
                    id: n.id.to_string(),
                    room_id: n.room_id.to_string(),
                    title: n.title.clone(),
                    body: n.body.clone(),
                    created_at: crate::domain::time::millis(n.created_at),
                    read: state.is_read(user, &n.room_id, *stamp),
                    seen: r.seen,
                    archived: r.archived,
                    data: n.data.clone(),
                }
            })
            .collect();
        let end = start + page.len();
        Ok(MessagePage {
            messages: page,
            next_cursor: (end < mine.len()).then(|| format!("{list}|{end}")),
        })
    }

    async fn read_state(
        &self,
        user: &UserKey,
        room: &RoomId,
        log_key: &str,
    ) -> Result<Option<ReadState>, StoreError> {
        let state = self.lock();
        Ok(state
            .messages
            .iter()
            .find(|((u, _), (n, _))| {
                u == user && &n.room_id == room && n.wants(Channel::Inbox) && n.log_key() == log_key
            })
            .map(|(_, (n, stamp))| ReadState {
                read: state.is_read(user, room, *stamp),
                seen: state.message_ref(user, n, *stamp).seen,
            }))
    }

    async fn find_messages(
        &self,
        user: &UserKey,
        ids: &[String],
    ) -> Result<Vec<Option<MessageRef>>, StoreError> {
        let state = self.lock();
        Ok(ids
            .iter()
            .map(|id| {
                state
                    .messages
                    .iter()
                    .find(|((u, nid), (n, _))| {
                        u == user && nid.as_str() == id && n.wants(Channel::Inbox)
                    })
                    .map(|(_, (n, stamp))| state.message_ref(user, n, *stamp))
            })
            .collect())
    }

    async fn set_archived(
        &self,
        user: &UserKey,
        log_key: &str,
        archived: bool,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(id) = state
            .messages
            .iter()
            .find(|((u, _), (n, _))| u == user && n.log_key() == log_key && n.wants(Channel::Inbox))
            .map(|((_, id), _)| id.clone())
        else {
            return Ok(false);
        };
        if archived {
            state.archived.insert((user.clone(), id));
        } else {
            state.archived.remove(&(user.clone(), id));
        }
        Ok(true)
    }
}
