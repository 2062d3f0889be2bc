//! The live feed's model: what a browser sends over the WebSocket (`ping`), what herald
//! pushes (`update` frames: the authoritative counts with their version, and the changes that
//! led there), and `plan`, which turns one batch of inbox-table changes into one frame per
//! user, in commit order. Pure: the stream decoding is in `aws/dynamodb/stream.rs`, the
//! sockets behind `ports::live`.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::domain::counters::{Unread, UserKey};
use crate::error::FieldError;
use crate::ports::MessageView;

/// API Gateway closes a WebSocket after 2 hours whatever happens; `$disconnect` is best
/// effort, so a connection record expires (TTL) a little after that on its own.
pub const CONNECTION_LIFETIME: SignedDuration = SignedDuration::from_secs(2 * 3600 + 10 * 60);

/// A frame larger than this is refused by API Gateway (128 KB per message, 32 KB frames);
/// an update over it goes out without its changes (the counts are what must arrive).
pub const MAX_FRAME_BYTES: usize = 120 * 1024;

/// One open WebSocket of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// API Gateway's `connectionId`.
    pub id: String,
    pub user: UserKey,
    pub connected_at: Timestamp,
}

impl Connection {
    /// When the record may go (TTL): the gateway has closed the socket by then.
    pub fn expires_at(&self) -> Timestamp {
        self.connected_at + CONNECTION_LIFETIME
    }
}

/// What a client may send: `{"action": "ping"}`, the heartbeat that keeps an idle
/// connection open (API Gateway closes one after 10 idle minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    Ping,
}

/// The client's frame, or the error frame's body naming what is wrong.
pub fn parse_action(body: &str) -> Result<ClientAction, FieldError> {
    #[derive(Deserialize)]
    struct Frame {
        action: Option<serde_json::Value>,
    }
    let frame: Frame = serde_json::from_str(body).map_err(|_| {
        FieldError::body(
            "invalid_json",
            "a frame is a JSON object such as {\"action\":\"ping\"}",
        )
    })?;
    match frame.action {
        Some(serde_json::Value::String(action)) if action == "ping" => Ok(ClientAction::Ping),
        Some(serde_json::Value::String(action)) => Err(FieldError::new(
            "unknown_action",
            "action",
            format!("unknown action `{action}`: the one action is `ping`"),
        )),
        Some(_) => Err(FieldError::new(
            "invalid_value",
            "action",
            "action must be a string: `ping`",
        )),
        None => Err(FieldError::new(
            "missing_field",
            "action",
            "a frame names its action: {\"action\":\"ping\"}",
        )),
    }
}

/// What herald pushes. Clients ignore a `type` they do not know.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// The user's counts after a change, and the changes since the previous frame.
    Update(Update),
    /// The answer to `ping`.
    Pong,
    /// A frame the server could not take; nothing changed.
    Error { error: FieldError },
}

impl Frame {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("frames serialize")
    }
}

/// `{version, total, rooms, unseen}` exactly as `GET /unread` answers (read after the
/// change, strongly consistent), plus what changed. A client keeps the counts of the highest
/// `version` it has seen and applies every change (each is idempotent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    #[serde(flatten)]
    pub counts: Unread,
    pub changes: Vec<Change>,
    /// The changes did not fit in one frame and were left out: re-read the list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One change to a user's inbox, as the table recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A new inbox message.
    Message { message: MessageView },
    /// A room was read: its messages are read and seen.
    Read { room: String },
    /// One message seen (`id`), or a whole room (seen-all, no `id`).
    Seen {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// A message archived or unarchived.
    Archived {
        id: String,
        room: String,
        archived: bool,
    },
}

/// One changed item of a user's partition: the change it stands for, if a client shows it
/// (a counter's own move carries none: the counts in the frame say it).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChange {
    pub user: UserKey,
    pub change: Option<Change>,
}

/// The users a batch of changes touched, in the order of their first change, each with its
/// changes in stream order. One frame a user a batch: a burst of 100 messages to one user
/// costs one read of their counts, not 100. A change repeated at once (a record delivered
/// twice in a row) is kept once; a change that comes back later is kept where it is, since
/// order matters (a room read, a message, the room read again).
pub fn plan(changes: impl IntoIterator<Item = ItemChange>) -> Vec<(UserKey, Vec<Change>)> {
    let mut order: Vec<(UserKey, Vec<Change>)> = Vec::new();
    let mut index: HashMap<UserKey, usize> = HashMap::new();
    for ItemChange { user, change } in changes {
        let at = *index.entry(user.clone()).or_insert_with(|| {
            order.push((user, Vec::new()));
            order.len() - 1
        });
        if let Some(change) = change {
            let changes = &mut order[at].1;
            if changes.last() != Some(&change) {
                changes.push(change);
            }
        }
    }
    order
}

/// The frame for one user: their counts and changes, the changes left out (`truncated`)
/// when the frame would exceed what API Gateway carries (the client then re-reads its list;
/// the counts, the part that must be right, always go).
pub fn update_frame(counts: Unread, changes: Vec<Change>) -> String {
    let full = Frame::Update(Update {
        counts: counts.clone(),
        changes,
        truncated: false,
    })
    .to_json();
    if full.len() <= MAX_FRAME_BYTES {
        return full;
    }
    Frame::Update(Update {
        counts,
        changes: Vec::new(),
        truncated: true,
    })
    .to_json()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::counters::Unseen;
    use crate::domain::ids::{TenantId, UserId};

    fn user(tenant: &str, user: &str) -> UserKey {
        UserKey {
            tenant: TenantId::parse(tenant, "tenant").unwrap(),
            user: UserId::parse(user, "user").unwrap(),
        }
    }

    fn message(id: &str) -> MessageView {
        MessageView {
            id: id.into(),
            room_id: "general".into(),
            title: "Hi".into(),
            body: "there".into(),
            created_at: "2026-12-06T09:00:00Z".into(),
            read: false,
            seen: false,
            archived: false,
            data: None,
        }
    }

    #[test]
    fn ping_is_the_one_action_and_the_rest_are_named_errors() {
        assert_eq!(parse_action(r#"{"action":"ping"}"#), Ok(ClientAction::Ping));
        let unknown = parse_action(r#"{"action":"subscribe"}"#).unwrap_err();
        assert_eq!(unknown.code, "unknown_action");
        assert_eq!(unknown.field.as_deref(), Some("action"));
        assert_eq!(
            parse_action(r#"{"action":7}"#).unwrap_err().code,
            "invalid_value"
        );
        assert_eq!(parse_action("{}").unwrap_err().code, "missing_field");
        assert_eq!(parse_action("ping").unwrap_err().code, "invalid_json");
    }

    #[test]
    fn plan_groups_by_user_in_commit_order_and_keeps_counter_only_users() {
        let (a, b, c) = (user("t1", "a"), user("t1", "b"), user("t2", "a"));
        let planned = plan([
            ItemChange {
                user: a.clone(),
                change: Some(Change::Message {
                    message: message("m1"),
                }),
            },
            ItemChange {
                user: b.clone(),
                change: None,
            },
            ItemChange {
                user: a.clone(),
                change: Some(Change::Read {
                    room: "general".into(),
                }),
            },
            // The same user id in another tenant is another user.
            ItemChange {
                user: c.clone(),
                change: Some(Change::Seen {
                    room: "general".into(),
                    id: Some("m9".into()),
                }),
            },
            // A record delivered twice in a row adds nothing.
            ItemChange {
                user: a.clone(),
                change: Some(Change::Read {
                    room: "general".into(),
                }),
            },
        ]);
        assert_eq!(planned.len(), 3);
        assert_eq!(planned[0].0, a);
        assert_eq!(
            planned[0].1,
            vec![
                Change::Message {
                    message: message("m1")
                },
                Change::Read {
                    room: "general".into()
                }
            ]
        );
        assert_eq!((planned[1].0.clone(), planned[1].1.len()), (b, 0));
        assert_eq!(planned[2].0, c);
    }

    /// Regression: `plan` kept the first of two equal changes anywhere in the batch, so a
    /// room read, a message, the room read again became [read, message] (the message left
    /// unread), and archive, unarchive, archive ended unarchived.
    #[test]
    fn a_change_that_comes_back_later_keeps_its_place() {
        let a = user("t1", "a");
        let read = Change::Read {
            room: "general".into(),
        };
        let archived = |archived| Change::Archived {
            id: "m1".into(),
            room: "general".into(),
            archived,
        };
        let changes = [
            read.clone(),
            Change::Message {
                message: message("m2"),
            },
            read.clone(),
            archived(true),
            archived(false),
            archived(true),
        ];
        let planned = plan(changes.iter().cloned().map(|change| ItemChange {
            user: a.clone(),
            change: Some(change),
        }));
        assert_eq!(planned[0].1, changes);
    }

    #[test]
    fn an_update_frame_carries_the_counts_flat_and_drops_changes_that_do_not_fit() {
        let counts = Unread {
            version: Some(7),
            total: 2,
            rooms: BTreeMap::from([("general".to_owned(), 2)]),
            unseen: Some(Unseen {
                total: 1,
                rooms: BTreeMap::from([("general".to_owned(), 1)]),
            }),
        };
        let frame: serde_json::Value = serde_json::from_str(&update_frame(
            counts.clone(),
            vec![Change::Message {
                message: message("m1"),
            }],
        ))
        .unwrap();
        assert_eq!(frame["type"], "update");
        assert_eq!(frame["version"], 7);
        assert_eq!(frame["total"], 2);
        assert_eq!(frame["rooms"]["general"], 2);
        assert_eq!(frame["unseen"]["total"], 1);
        assert_eq!(frame["changes"][0]["kind"], "message");
        assert_eq!(frame["changes"][0]["message"]["id"], "m1");
        assert!(frame.get("truncated").is_none(), "only a cut frame says so");

        let mut big = message("m2");
        big.body = "x".repeat(MAX_FRAME_BYTES);
        let frame: serde_json::Value = serde_json::from_str(&update_frame(
            counts,
            vec![Change::Message { message: big }],
        ))
        .unwrap();
        assert_eq!(frame["total"], 2, "the counts always go");
        assert_eq!(frame["changes"], serde_json::json!([]));
        assert_eq!(frame["truncated"], true, "the client is told to re-read");
    }

    #[test]
    fn a_connection_expires_after_the_gateways_two_hour_limit() {
        let connection = Connection {
            id: "c1".into(),
            user: user("t1", "a"),
            connected_at: Timestamp::from_second(1_000).unwrap(),
        };
        let lifetime = connection
            .expires_at()
            .duration_since(connection.connected_at);
        assert!(lifetime.as_secs() > 2 * 3600);
    }
}
