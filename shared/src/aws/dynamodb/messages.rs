//! The message list: newest first from the table itself, or one room from `by_room`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    decode_key, encode_key, number, room_pk, s, text, user_pk, DynamoInbox, BY_ROOM_INDEX,
};
use crate::aws::store_error;
use crate::domain::counters::UserKey;
use crate::domain::ids::{check_id, RoomId};
use crate::error::StoreError;
use crate::ports::{MessageLog, MessagePage, MessageView};

impl DynamoInbox {
    /// Each room's `read_at` stamp: messages stamped at or before it were cleared.
    async fn rooms_read_at(&self, pk: &str) -> Result<HashMap<String, u64>, StoreError> {
        let items = self.counter_items(pk, "sk, read_at").await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let room = item.get("sk")?.as_s().ok()?.strip_prefix("R#")?;
                Some((room.to_owned(), number(item, "read_at")))
            })
            .collect())
    }
}

#[async_trait]
impl MessageLog for DynamoInbox {
    async fn list_messages(
        &self,
        user: &UserKey,
        room: Option<&RoomId>,
        limit: u32,
        cursor: Option<&str>,
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
        let read_at = self.rooms_read_at(&pk).await?;
        let messages = page
            .items()
            .iter()
            .map(|item| {
                let room_id = text(item, "room_id");
                // Read exactly when a mark-read of its room committed after it (CommitStamp).
                let read = read_at
                    .get(&room_id)
                    .is_some_and(|at| number(item, "stamp") <= *at);
                MessageView {
                    id: text(item, "id"),
                    title: text(item, "title"),
                    body: text(item, "body"),
                    data: item
                        .get("data")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|d| serde_json::from_str(d).ok()),
                    created_at: text(item, "created_at"),
                    room_id,
                    read,
                }
            })
            .collect();
        Ok(MessagePage {
            messages,
            next_cursor: page
                .last_evaluated_key()
                .map(|key| client_cursor(key, room)),
        })
    }

    async fn is_read(
        &self,
        user: &UserKey,
        room: &RoomId,
        log_key: &str,
    ) -> Result<Option<bool>, StoreError> {
        let pk = user_pk(user);
        let message_sk = format!("M#{log_key}");
        let items = crate::aws::item::batch_get(
            &self.client,
            &self.table,
            [
                (pk.clone(), message_sk.clone()),
                (pk.clone(), format!("R#{room}")),
            ],
            Some("sk, stamp, read_at"),
            3,
        )
        .await?;
        let of = |sk: &str| items.iter().find(|i| text(i, "sk") == sk);
        let Some(message) = of(&message_sk) else {
            return Ok(None);
        };
        let read_at = of(&format!("R#{room}")).map_or(0, |r| number(r, "read_at"));
        Ok(Some(read_at > 0 && number(message, "stamp") <= read_at))
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
