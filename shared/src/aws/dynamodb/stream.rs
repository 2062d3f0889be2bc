//! The inbox table's stream (`NEW_AND_OLD_IMAGES`) read back as the changes a user's live
//! feed shows: a message item inserted is a new message, its `seen` or `archived` flag set is
//! that mark, a room's `read_at` or `seen_at` moved is that room read or seen; a counter's
//! own move (a commit's `ADD`, reconcile's repair) changes only the counts.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;

use super::messages::message_view;
use super::{number, parse_user_pk, text, TOTAL_SK};
use crate::aws::item::flag;
use crate::domain::live::{Change, ItemChange};

type Item = HashMap<String, AttributeValue>;

/// Which item prefixes of a user's partition the pusher reads: inbox messages, rooms and
/// TOTAL (`L#` and `I#` items change no count and show nowhere). The template's
/// `FilterCriteria` says the same, so the other records never invoke it.
pub const PUSHED_SORT_KEYS: [&str; 3] = ["M#", "R#", TOTAL_SK];

/// The change one stream record stands for; `None` when it is not a user's message, room
/// or TOTAL, or when it removed the item (retention's TTL changes no count).
pub fn item_change(record: &EventRecord) -> Option<ItemChange> {
    let keys = image(&record.change.keys);
    let user = parse_user_pk(&text(&keys, "pk"))?;
    let sk = text(&keys, "sk");
    let new = image(&record.change.new_image);
    let old = image(&record.change.old_image);
    let change = match record.event_name.as_str() {
        "REMOVE" => return None,
        _ if sk == TOTAL_SK => None,
        "INSERT" if sk.starts_with("M#") => Some(Change::Message {
            message: crate::ports::MessageView {
                seen: flag(&new, "seen"),
                archived: flag(&new, "archived"),
                ..message_view(&new)
            },
        }),
        "MODIFY" if sk.starts_with("M#") => message_mark(&old, &new),
        _ if sk.starts_with("R#") => {
            let room = sk.trim_start_matches("R#").to_owned();
            if number(&new, "read_at") > number(&old, "read_at") {
                Some(Change::Read { room })
            } else if number(&new, "seen_at") > number(&old, "seen_at") {
                Some(Change::Seen { room, id: None })
            } else {
                None
            }
        }
        _ => return None,
    };
    Some(ItemChange { user, change })
}

/// The user whose counters a record changed: a TOTAL item written (inserted or modified),
/// which every counter change writes. The change log's consumer reads only these.
pub fn changed_total(record: &EventRecord) -> Option<crate::domain::counters::UserKey> {
    if record.event_name == "REMOVE" {
        return None;
    }
    let keys = image(&record.change.keys);
    if text(&keys, "sk") != TOTAL_SK {
        return None;
    }
    parse_user_pk(&text(&keys, "pk"))
}

/// A record's image (DynamoDB JSON, as Lambda delivers it) as the SDK's attribute values.
fn image(item: &serde_dynamo::Item) -> Item {
    item.clone().into()
}

/// A message item modified: seen, or archived / unarchived.
fn message_mark(old: &Item, new: &Item) -> Option<Change> {
    let (id, room) = (text(new, "id"), text(new, "room_id"));
    if flag(new, "archived") != flag(old, "archived") {
        Some(Change::Archived {
            id,
            room,
            archived: flag(new, "archived"),
        })
    } else if flag(new, "seen") && !flag(old, "seen") {
        Some(Change::Seen { room, id: Some(id) })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(
        event: &str,
        keys: serde_json::Value,
        old: serde_json::Value,
        new: serde_json::Value,
    ) -> EventRecord {
        serde_json::from_value(json!({
            "eventID": "1",
            "eventName": event,
            "eventSource": "aws:dynamodb",
            "eventVersion": "1.1",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/inbox/stream/x",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_765_000_000,
                "Keys": keys, "OldImage": old, "NewImage": new,
                "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        }))
        .unwrap()
    }

    fn keys(sk: &str) -> serde_json::Value {
        json!({"pk": {"S": "T#t1#U#alice"}, "sk": {"S": sk}})
    }

    #[test]
    fn a_message_inserted_is_a_new_message_with_its_fields() {
        let new = json!({"pk": {"S": "T#t1#U#alice"}, "sk": {"S": "M#01J"}, "id": {"S": "n1"},
            "room_id": {"S": "general"}, "title": {"S": "Hi"}, "body": {"S": "there"},
            "created_at": {"S": "2026-12-06T09:00:00Z"}, "data": {"S": "{\"k\":1}"}, "stamp": {"N": "5"}});
        let change = item_change(&record("INSERT", keys("M#01J"), json!({}), new)).unwrap();
        assert_eq!(change.user.user.as_str(), "alice");
        let Some(Change::Message { message }) = change.change else {
            panic!("{change:?}")
        };
        assert_eq!(
            (message.id.as_str(), message.room_id.as_str()),
            ("n1", "general")
        );
        assert_eq!(message.data, Some(json!({"k": 1})));
        assert!(!message.read && !message.seen && !message.archived);
    }

    #[test]
    fn marks_on_messages_and_rooms_are_their_changes_and_counter_moves_are_counts_only() {
        let message = |seen: bool, archived: bool| json!({"id": {"S": "n1"}, "room_id": {"S": "general"}, "seen": {"BOOL": seen}, "archived": {"BOOL": archived}});
        let seen = item_change(&record(
            "MODIFY",
            keys("M#01J"),
            message(false, false),
            message(true, false),
        ))
        .unwrap();
        assert_eq!(
            seen.change,
            Some(Change::Seen {
                room: "general".into(),
                id: Some("n1".into())
            })
        );
        let archived = item_change(&record(
            "MODIFY",
            keys("M#01J"),
            message(true, false),
            message(true, true),
        ))
        .unwrap();
        assert_eq!(
            archived.change,
            Some(Change::Archived {
                id: "n1".into(),
                room: "general".into(),
                archived: true
            })
        );

        let room = |read_at: u64, seen_at: u64, unread: u64| json!({"unread": {"N": unread.to_string()}, "read_at": {"N": read_at.to_string()}, "seen_at": {"N": seen_at.to_string()}});
        let read = item_change(&record(
            "MODIFY",
            keys("R#general"),
            room(0, 0, 3),
            room(9, 0, 0),
        ))
        .unwrap();
        assert_eq!(
            read.change,
            Some(Change::Read {
                room: "general".into()
            })
        );
        let seen_all = item_change(&record(
            "MODIFY",
            keys("R#general"),
            room(9, 0, 1),
            room(9, 12, 1),
        ))
        .unwrap();
        assert_eq!(
            seen_all.change,
            Some(Change::Seen {
                room: "general".into(),
                id: None
            })
        );
        let commit = item_change(&record(
            "MODIFY",
            keys("R#general"),
            room(9, 12, 1),
            room(9, 12, 2),
        ))
        .unwrap();
        assert_eq!(commit.change, None, "a commit's ADD: counts only");
        let total = item_change(&record("MODIFY", keys("TOTAL"), json!({}), json!({}))).unwrap();
        assert_eq!((total.user.tenant.as_str(), total.change), ("t1", None));
    }

    #[test]
    fn other_items_and_removals_are_no_change() {
        for (event, sk) in [("INSERT", "I#x"), ("INSERT", "L#01J"), ("REMOVE", "M#01J")] {
            assert_eq!(
                item_change(&record(event, keys(sk), json!({}), json!({}))),
                None,
                "{event} {sk}"
            );
        }
        let checkpoint = json!({"pk": {"S": "RECONCILE"}, "sk": {"S": "CHECKPOINT#hourly"}});
        assert_eq!(
            item_change(&record("MODIFY", checkpoint, json!({}), json!({}))),
            None
        );
    }
}
