//! The message list: newest first from the table itself, or one room from `by_room`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    decode_key, encode_key, number, room_pk, s, text, user_pk, DynamoInbox, BY_ROOM_INDEX,
};
use crate::aws::item::flag;
use crate::aws::store_error;
use crate::domain::counters::UserKey;
use crate::domain::ids::{check_id, RoomId};
use crate::error::StoreError;
use crate::ports::{MessageLog, MessagePage, MessageRef, MessageView, ReadState};

/// A room's marks: messages stamped at or before `read_at` are read (and seen), at or
/// before `seen_at` seen.
#[derive(Debug, Clone, Copy, Default)]
struct RoomMarks {
    read_at: u64,
    seen_at: u64,
}

impl RoomMarks {
    fn read(&self, stamp: u64) -> bool {
        self.read_at > 0 && stamp <= self.read_at
    }

    fn seen(&self, stamp: u64, flagged: bool) -> bool {
        flagged || self.read(stamp) || (self.seen_at > 0 && stamp <= self.seen_at)
    }
}

/// A message item as the list shows it, unread, unseen and unarchived until its marks say.
pub(super) fn message_view(item: &HashMap<String, AttributeValue>) -> MessageView {
    MessageView {
        id: text(item, "id"),
        room_id: text(item, "room_id"),
        title: text(item, "title"),
        body: text(item, "body"),
        created_at: text(item, "created_at"),
        read: false,
        seen: false,
        archived: false,
        data: item
            .get("data")
            .and_then(|v| v.as_s().ok())
            .and_then(|d| serde_json::from_str(d).ok()),
    }
}

impl DynamoInbox {
    /// Each room's read and seen marks.
    async fn room_marks(&self, pk: &str) -> Result<HashMap<String, RoomMarks>, StoreError> {
        let items = self.counter_items(pk, "sk, read_at, seen_at").await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let room = item.get("sk")?.as_s().ok()?.strip_prefix("R#")?;
                let marks = RoomMarks {
                    read_at: number(item, "read_at"),
                    seen_at: number(item, "seen_at"),
                };
                Some((room.to_owned(), marks))
            })
            .collect())
    }

    /// Each listed message's `seen` and `archived` flags, which the room index does not
    /// project: read from the table by key.
    async fn flags(
        &self,
        pk: &str,
        items: &[HashMap<String, AttributeValue>],
    ) -> Result<HashMap<String, (bool, bool)>, StoreError> {
        let keys = items.iter().map(|i| (pk.to_owned(), text(i, "sk")));
        let found = crate::aws::item::batch_get(
            &self.client,
            &self.table,
            keys,
            Some("sk, seen, archived"),
            3,
        )
        .await?;
        Ok(found
            .iter()
            .map(|i| (text(i, "sk"), (flag(i, "seen"), flag(i, "archived"))))
            .collect())
    }
}

#[async_trait]
impl MessageLog for DynamoInbox {
    async fn list_messages_where(
        &self,
        user: &UserKey,
        room: Option<&RoomId>,
        limit: u32,
        cursor: Option<&str>,
        archived: Option<bool>,
    ) -> Result<MessagePage, StoreError> {
        let pk = user_pk(user);
        let start = cursor.map(|c| resume_key(c, &pk, room)).transpose()?;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start);
        let query = match room {
            Some(room) => query
                .index_name(BY_ROOM_INDEX)
                .key_condition_expression("room_pk = :rpk")
                .expression_attribute_values(":rpk", s(room_pk(&pk, room))),
            None => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :inbox)")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":inbox", s("M#")),
        };
        let page = query.send().await.map_err(store_error)?;
        let marks = self.room_marks(&pk).await?;
        let flags = match room {
            Some(_) if !page.items().is_empty() => self.flags(&pk, page.items()).await?,
            _ => page
                .items()
                .iter()
                .map(|i| (text(i, "sk"), (flag(i, "seen"), flag(i, "archived"))))
                .collect(),
        };
        let messages = page
            .items()
            .iter()
            .filter_map(|item| {
                let room_id = text(item, "room_id");
                let stamp = number(item, "stamp");
                let (seen, is_archived) = flags.get(&text(item, "sk")).copied().unwrap_or_default();
                if archived.is_some_and(|wanted| wanted != is_archived) {
                    return None;
                }
                // Read exactly when a mark-read of its room committed after it (CommitStamp).
                let room_marks = marks.get(&room_id).copied().unwrap_or_default();
                Some(MessageView {
                    read: room_marks.read(stamp),
                    seen: room_marks.seen(stamp, seen),
                    archived: is_archived,
                    ..message_view(item)
                })
            })
            .collect();
        Ok(MessagePage {
            messages,
            next_cursor: page
                .last_evaluated_key()
                .map(|key| client_cursor(key, room)),
        })
    }

    async fn read_state(
        &self,
        user: &UserKey,
        room: &RoomId,
        log_key: &str,
    ) -> Result<Option<ReadState>, StoreError> {
        let pk = user_pk(user);
        let message_sk = format!("M#{log_key}");
        let items = crate::aws::item::batch_get(
            &self.client,
            &self.table,
            [
                (pk.clone(), message_sk.clone()),
                (pk.clone(), format!("R#{room}")),
            ],
            Some("sk, stamp, seen, read_at, seen_at"),
            3,
        )
        .await?;
        let of = |sk: &str| items.iter().find(|i| text(i, "sk") == sk);
        let Some(message) = of(&message_sk) else {
            return Ok(None);
        };
        let marks = of(&format!("R#{room}")).map_or_else(RoomMarks::default, |r| RoomMarks {
            read_at: number(r, "read_at"),
            seen_at: number(r, "seen_at"),
        });
        let stamp = number(message, "stamp");
        Ok(Some(ReadState {
            read: marks.read(stamp),
            seen: marks.seen(stamp, flag(message, "seen")),
        }))
    }

    async fn find_messages(
        &self,
        user: &UserKey,
        ids: &[String],
    ) -> Result<Vec<Option<MessageRef>>, StoreError> {
        let pk = user_pk(user);
        // An id herald chose is its log key; a client's id points to it from `I#<id>`.
        let keys = ids
            .iter()
            .flat_map(|id| {
                [
                    (pk.clone(), format!("M#{id}")),
                    (pk.clone(), format!("I#{id}")),
                ]
            })
            .collect::<std::collections::BTreeSet<_>>();
        let first = crate::aws::item::batch_get(
            &self.client,
            &self.table,
            keys,
            Some("sk, id, room_id, stamp, seen, archived, log_key"),
            3,
        )
        .await?;
        let pointed: std::collections::BTreeSet<(String, String)> = first
            .iter()
            .filter(|i| text(i, "sk").starts_with("I#"))
            .map(|i| (pk.clone(), format!("M#{}", text(i, "log_key"))))
            .collect();
        let second = if pointed.is_empty() {
            Vec::new()
        } else {
            crate::aws::item::batch_get(
                &self.client,
                &self.table,
                pointed,
                Some("sk, id, room_id, stamp, seen, archived"),
                3,
            )
            .await?
        };
        let marks = self.room_marks(&pk).await?;
        let messages: HashMap<String, &HashMap<String, AttributeValue>> = first
            .iter()
            .chain(second.iter())
            .filter(|i| text(i, "sk").starts_with("M#"))
            .map(|i| (text(i, "id"), i))
            .collect();
        Ok(ids
            .iter()
            .map(|id| {
                let item = messages.get(id)?;
                let room = RoomId::parse(text(item, "room_id"), "room").ok()?;
                let stamp = number(item, "stamp");
                let room_marks = marks.get(room.as_str()).copied().unwrap_or_default();
                Some(MessageRef {
                    id: id.clone(),
                    log_key: text(item, "sk").trim_start_matches("M#").to_owned(),
                    stamp,
                    seen: room_marks.seen(stamp, flag(item, "seen")),
                    archived: flag(item, "archived"),
                    room,
                })
            })
            .collect())
    }

    async fn set_archived(
        &self,
        user: &UserKey,
        log_key: &str,
        archived: bool,
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(user)))
            .key("sk", s(format!("M#{log_key}")))
            .condition_expression("attribute_exists(pk)");
        let update = if archived {
            update
                .update_expression("SET archived = :true")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
        } else {
            update.update_expression("REMOVE archived")
        };
        crate::aws::item::written(update.send().await)
    }
}

/// The cursor a client gets: the last message's sort key and the room it lists (the
/// partition keys stay server-side, so a cursor can only continue the caller's own list).
fn client_cursor(key: &HashMap<String, AttributeValue>, room: Option<&RoomId>) -> String {
    let mut plain = HashMap::from([("sk".to_owned(), s(text(key, "sk")))]);
    if let Some(room) = room {
        plain.insert("room".to_owned(), s(room.as_str()));
    }
    encode_key(&plain)
}

/// A client's cursor back into an ExclusiveStartKey for the same list, or BadCursor when it
/// belongs to another list (another room, or all rooms) or was never handed out.
fn resume_key(
    cursor: &str,
    pk: &str,
    room: Option<&RoomId>,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let plain = decode_key(cursor)?;
    let sk = plain.get("sk").ok_or(StoreError::BadCursor)?;
    let log_key = sk.strip_prefix("M#").ok_or(StoreError::BadCursor)?;
    check_id(log_key, "cursor").map_err(|_| StoreError::BadCursor)?;
    if plain.get("room").map(String::as_str) != room.map(RoomId::as_str)
        || plain.len() != 1 + usize::from(room.is_some())
    {
        return Err(StoreError::BadCursor);
    }
    let mut key = HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]);
    if let Some(room) = room {
        key.insert("room_pk".to_owned(), s(room_pk(pk, room)));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(r: &str) -> RoomId {
        RoomId::parse(r, "room").unwrap()
    }

    #[test]
    fn a_cursor_continues_only_the_list_it_came_from() {
        let key = HashMap::from([
            ("pk".to_owned(), s("T#t#U#u")),
            ("sk".to_owned(), s("M#01JDX0000000000000000000AA")),
            ("room_pk".to_owned(), s("T#t#U#u#R#r1")),
        ]);
        let r1 = client_cursor(&key, Some(&room("r1")));
        let all = client_cursor(&key, None);
        assert!(resume_key(&r1, "T#t#U#u", Some(&room("r1"))).is_ok());
        assert!(resume_key(&all, "T#t#U#u", None).is_ok());
        for (cursor, list) in [
            (&r1, Some(room("r2"))),
            (&r1, None),
            (&all, Some(room("r1"))),
        ] {
            assert!(matches!(
                resume_key(cursor, "T#t#U#u", list.as_ref()),
                Err(StoreError::BadCursor)
            ));
        }
        let forged = encode_key(&HashMap::from([("sk".to_owned(), s("TOTAL"))]));
        assert!(resume_key(&forged, "T#t#U#u", None).is_err());
        assert!(resume_key("not base64!", "T#t#U#u", None).is_err());
    }
}
