//! Notifications as clients send them, validated into what flows through the queues.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::digest::Digest;
use super::ids::{check_id, NotificationId, RoomId, TenantId, UserId, MAX_ID_LEN};
use super::workflow::{Step, Workflow, WorkflowRef};
use crate::error::FieldError;

/// Most notifications one `POST /v1/notifications` may carry.
pub const MAX_ITEMS_PER_REQUEST: usize = 500;
/// Keeps one queue message well under SQS's 256 KiB.
pub const MAX_DATA_BYTES: usize = 8 * 1024;

pub use super::channel::{Category, Channel};
pub use super::text::{check_text, MAX_BODY_CHARS, MAX_TITLE_CHARS, NONBLANK_PATTERN};

/// One notification after validation: what ingest puts on the notifications queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub tenant: TenantId,
    pub id: NotificationId,
    pub user_id: UserId,
    pub room_id: RoomId,
    pub title: String,
    pub body: String,
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Assigned at ingest (RFC 3339 UTC with milliseconds on the wire).
    #[serde(with = "super::time::as_millis")]
    pub created_at: jiff::Timestamp,
    /// Time-ordered key of this notification in its user's message log (a ULID assigned at
    /// ingest), so the inbox lists newest first straight from the table. Absent when herald
    /// chose `id` itself: that ULID is the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
    /// Ties every log line about this notification together, from the API call to the
    /// provider: the caller's `X-Correlation-Id`, or API Gateway's request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Sent by a campaign: which one, and where in its fan-out (for cancel and progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<super::ids::CampaignRef>,
    /// The name of the tenant's workflow it follows (for the logs and the status), when it
    /// named one; its steps are copied into `steps` at ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Its channels as workflow steps (delays and conditions); absent: every channel at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// Bundles its outside channels with the user's other events of the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

impl Notification {
    /// Follows `workflow`: its steps, and its channels as the notification's.
    pub fn follow(&mut self, workflow: &Workflow) {
        self.channels = workflow.channels();
        self.steps = Some(workflow.steps.clone());
    }

    /// The step of `channel`: its own when a workflow set one, else at once, unconditionally.
    pub fn step(&self, channel: Channel) -> Step {
        self.steps
            .iter()
            .flatten()
            .find(|s| s.channel == channel)
            .cloned()
            .unwrap_or(Step {
                channel,
                delay_seconds: 0,
                unless: None,
                digest: None,
            })
    }

    /// The digest `channel` goes out in, if any: its step's, else the notification's (every
    /// channel but the inbox).
    pub fn digest_for(&self, channel: Channel) -> Option<Digest> {
        if channel == Channel::Inbox {
            return None;
        }
        self.step(channel).digest.or_else(|| self.digest.clone())
    }

    /// The digest this notification joins, if any (a notification has at most one).
    pub fn any_digest(&self) -> Option<Digest> {
        self.digest
            .clone()
            .or_else(|| self.steps.iter().flatten().find_map(|s| s.digest.clone()))
    }

    pub fn wants(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }

    /// The message log's sort key for this notification (see `log_key`).
    pub fn log_key(&self) -> &str {
        self.log_key.as_deref().unwrap_or(self.id.as_str())
    }

    /// The client chose the id (or an `Idempotency-Key` derived it): the log key is not the
    /// id, so a separate idempotency record must catch a retry that got a new log key.
    pub fn has_client_id(&self) -> bool {
        self.log_key() != self.id.as_str()
    }

    /// Re-checks what ids' types cannot: for queue messages that did not come through ingest.
    pub fn check(&self) -> Result<(), FieldError> {
        if let Some(key) = &self.log_key {
            check_id(key, "log_key")?;
        }
        check_text(&self.title, "title", MAX_TITLE_CHARS)?;
        check_text(&self.body, "body", MAX_BODY_CHARS)?;
        if self.channels.is_empty() {
            return Err(FieldError::new(
                "empty",
                "channels",
                "channels must name at least one channel",
            ));
        }
        if let Some(steps) = &self.steps {
            let workflow = Workflow {
                steps: steps.clone(),
            };
            workflow.check("")?;
            if workflow.channels() != self.channels {
                return Err(FieldError::new(
                    "invalid_value",
                    "steps",
                    "steps must name exactly the notification's channels",
                ));
            }
        }
        if self
            .data
            .as_ref()
            .is_some_and(|d| d.to_string().len() > MAX_DATA_BYTES)
        {
            return Err(FieldError::new("too_large", "data", "data is too large"));
        }
        Ok(())
    }
}

/// Where a notification's id comes from when the client gives none.
#[derive(Debug, Clone, Copy)]
pub enum IdSource<'a> {
    /// No id and no Idempotency-Key: a fresh ULID.
    Generate,
    /// `Idempotency-Key` header: an item gets `<key>.<hash of its content>`, stable across
    /// retries of the whole request or of some of its items.
    IdempotencyKey(&'a str),
}

/// One item of `POST /v1/notifications` as sent: types checked by serde (an error names the
/// field by its path), bounds and ids checked by `parse_notification`. Absent and `null`
/// are the same; `channels` and `data` are read on from JSON to keep their own errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    room_id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    channels: Option<Value>,
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    workflow: Option<Value>,
    #[serde(default)]
    digest: Option<Value>,
}

/// Validates one JSON item of the request; `index` locates it in error field paths.
pub fn parse_notification(
    item: &Value,
    index: usize,
    tenant: &TenantId,
    ids: IdSource<'_>,
    created_at: jiff::Timestamp,
) -> Result<Notification, FieldError> {
    let item_at = format!("notifications[{index}]");
    let at = |name: &str| format!("{item_at}.{name}");
    let request: NotificationRequest = FieldError::from_json(item, &item_at)?;
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| {
            FieldError::new(
                "missing_field",
                &at(name),
                format!("{} is required", at(name)),
            )
        })
    };

    let id = match (request.id, ids) {
        (Some(id), _) => NotificationId::parse(id, &at("id"))?,
        // From the item's content, not its position: a retry of only some items (or in another
        // order) gets the same ids. Identical items under one key are one notification.
        (None, IdSource::IdempotencyKey(key)) => {
            NotificationId::parse(derived_id(key, item), "Idempotency-Key")?
        }
        (None, IdSource::Generate) => NotificationId::generate(),
    };
    // A client-chosen id says nothing about time: the log gets its own time-ordered key.
    let log_key = match ids {
        IdSource::Generate if item.get("id").is_none_or(Value::is_null) => None,
        _ => Some(super::ids::time_ordered_key()),
    };
    let user_id = UserId::parse(required(request.user_id, "user_id")?, &at("user_id"))?;
    let room_id = RoomId::parse(required(request.room_id, "room_id")?, &at("room_id"))?;
    let title = required(request.title, "title")?;
    check_text(&title, &at("title"), MAX_TITLE_CHARS)?;
    let body = required(request.body, "body")?;
    check_text(&body, &at("body"), MAX_BODY_CHARS)?;
    // Channels come from `channels` or from a workflow's steps, never both.
    let workflow = match (&request.workflow, &request.channels) {
        (Some(Value::Null) | None, _) => None,
        // Even `channels: null` beside a workflow: one of the two names the channels.
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "conflict",
                &at("workflow"),
                format!(
                    "{} and {} are exclusive: a workflow's steps name its channels",
                    at("workflow"),
                    at("channels")
                ),
            ))
        }
        (Some(w), _) => Some(WorkflowRef::parse(w, &at("workflow"))?),
    };
    let (channels, workflow, steps) = match workflow {
        None if request.channels.is_none() => {
            return Err(FieldError::new(
                "missing_field",
                &at("channels"),
                format!(
                    "{} is required (inbox, email, sms, push), or a workflow instead",
                    at("channels")
                ),
            ))
        }
        None => (
            parse_channels(request.channels.as_ref(), &at("channels"))?,
            None,
            None,
        ),
        // Resolved by the caller (`follow`), which can look the name up.
        Some(WorkflowRef::Named(name)) => (Vec::new(), Some(name), None),
        Some(WorkflowRef::Inline(w)) => (w.channels(), None, Some(w.steps)),
    };
    let digest = match request.digest.as_ref().filter(|d| !d.is_null()) {
        None => None,
        Some(_) if request.workflow.as_ref().is_some_and(|w| !w.is_null()) => {
            return Err(FieldError::new(
                "conflict",
                &at("digest"),
                format!(
                    "{}: with a workflow, the digest goes on one of its steps (steps[i].digest)",
                    at("digest")
                ),
            ))
        }
        Some(_) if channels.iter().all(|c| *c == Channel::Inbox) => {
            return Err(FieldError::new(
                "invalid_value",
                &at("digest"),
                format!(
                    "{}: a digest bundles email, SMS or push; the inbox gets every event",
                    at("digest")
                ),
            ))
        }
        Some(d) => Some(Digest::parse(d, &at("digest"))?),
    };
    let category = request.category.unwrap_or_default();
    let data = parse_data(request.data.as_ref(), &at("data"))?;
    Ok(Notification {
        tenant: tenant.clone(),
        id,
        user_id,
        room_id,
        title,
        body,
        channels,
        category,
        data,
        created_at: created_at.to_owned(),
        log_key,
        correlation_id: None,
        campaign: None,
        workflow,
        steps,
        digest,
    })
}

/// Optional `data`: a JSON object of at most `MAX_DATA_BYTES` serialised.
pub(crate) fn parse_data(value: Option<&Value>, field: &str) -> Result<Option<Value>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(data @ Value::Object(_)) => {
            let size = data.to_string().len();
            if size > MAX_DATA_BYTES {
                return Err(FieldError::new(
                    "too_large",
                    field,
                    format!("{field} is {size} bytes serialised; at most {MAX_DATA_BYTES}"),
                ));
            }
            Ok(Some(data.clone()))
        }
        Some(_) => Err(FieldError::new(
            "invalid_type",
            field,
            format!("{field} must be a JSON object"),
        )),
    }
}

/// `<key>.<content hash>` while that fits an id; a longer key is shortened and its full text
/// hashed in, so every key the header accepts derives a valid, stable id.
fn derived_id(key: &str, item: &Value) -> String {
    let content = content_hash(item.to_string().as_bytes());
    let id = format!("{key}.{content:016x}");
    if id.len() <= MAX_ID_LEN {
        return id;
    }
    let prefix = &key[..MAX_ID_LEN - 2 * 17];
    format!(
        "{prefix}.{:016x}.{content:016x}",
        content_hash(key.as_bytes())
    )
}

/// FNV-1a (over an item's JSON, serde_json sorts object keys, so equal items hash equal).
pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(crate) fn parse_channels(
    value: Option<&Value>,
    field: &str,
) -> Result<Vec<Channel>, FieldError> {
    let Some(Value::Array(items)) = value else {
        return Err(FieldError::new(
            if value.is_none() {
                "missing_field"
            } else {
                "invalid_type"
            },
            field,
            format!("{field} must be a non-empty array of inbox, email, sms, push"),
        ));
    };
    let mut channels = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let channel = item.as_str().and_then(Channel::parse).ok_or_else(|| {
            FieldError::new(
                "invalid_value",
                &format!("{field}[{i}]"),
                format!("{item} is not a channel; expected inbox, email, sms or push"),
            )
        })?;
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    if channels.is_empty() {
        return Err(FieldError::new(
            "empty",
            field,
            format!("{field} must name at least one channel"),
        ));
    }
    channels.sort();
    Ok(channels)
}

/// Checks an `Idempotency-Key` header so derived ids stay within the id contract.
pub fn check_idempotency_key(key: &str) -> Result<(), FieldError> {
    check_id(key, "Idempotency-Key")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("t1", "tenant").unwrap()
    }

    fn parse(item: Value) -> Result<Notification, FieldError> {
        parse_notification(
            &item,
            3,
            &tenant(),
            IdSource::Generate,
            "2026-11-23T00:00:00Z".parse().unwrap(),
        )
    }

    fn valid() -> Value {
        json!({"user_id":"u1","room_id":"r1","title":"Hi","body":"there","channels":["email","inbox","email"]})
    }

    #[test]
    fn valid_item_parses_with_defaults_and_deduplicated_channels() {
        let n = parse(valid()).unwrap();
        assert_eq!(n.user_id.as_str(), "u1");
        assert_eq!(n.channels, vec![Channel::Inbox, Channel::Email]);
        assert_eq!(n.category, Category::Transactional);
        assert_eq!(n.id.as_str().len(), 26, "a ULID");
    }

    #[test]
    fn each_bad_field_is_named_with_its_index() {
        let cases = [
            ("user_id", json!(null), "missing_field"),
            ("room_id", json!(7), "invalid_type"),
            ("title", json!("  "), "empty"),
            ("body", json!("x".repeat(MAX_BODY_CHARS + 1)), "too_long"),
            ("channels", json!([]), "empty"),
            ("category", json!("promo"), "invalid_value"),
            ("data", json!([1]), "invalid_type"),
            ("id", json!("a b"), "invalid_id"),
        ];
        for (field, value, code) in cases {
            let mut item = valid();
            item[field] = value;
            let err = parse(item).unwrap_err();
            assert_eq!(err.code, code, "{field}");
            assert_eq!(
                err.field.as_deref(),
                Some(format!("notifications[3].{field}").as_str())
            );
        }
    }

    #[test]
    fn unknown_channel_names_its_position() {
        let mut item = valid();
        item["channels"] = json!(["inbox", "fax"]);
        let err = parse(item).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("notifications[3].channels[1]"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let mut item = valid();
        item["titel"] = json!("typo");
        assert_eq!(parse(item).unwrap_err().code, "unknown_field");
    }

    #[test]
    fn idempotency_key_gives_stable_ids_and_explicit_id_wins() {
        let key = IdSource::IdempotencyKey("order-42");
        let a =
            parse_notification(&valid(), 0, &tenant(), key, jiff::Timestamp::UNIX_EPOCH).unwrap();
        // The same item at another position (a partial retry) keeps its id.
        let b =
            parse_notification(&valid(), 3, &tenant(), key, jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(a.id, b.id);
        assert!(a.id.as_str().starts_with("order-42."));
        let mut other = valid();
        other["body"] = json!("different");
        assert_ne!(
            parse_notification(&other, 0, &tenant(), key, jiff::Timestamp::UNIX_EPOCH)
                .unwrap()
                .id,
            a.id
        );
        let mut item = valid();
        item["id"] = json!("mine");
        assert_eq!(
            parse_notification(&item, 0, &tenant(), key, jiff::Timestamp::UNIX_EPOCH)
                .unwrap()
                .id
                .as_str(),
            "mine"
        );
    }

    #[test]
    fn every_key_length_the_header_accepts_derives_a_valid_stable_id() {
        for len in [1, 110, 111, 112, 119, 120, 128] {
            let key = "k".repeat(len);
            check_idempotency_key(&key).unwrap();
            let source = IdSource::IdempotencyKey(&key);
            let a = parse_notification(&valid(), 0, &tenant(), source, jiff::Timestamp::UNIX_EPOCH)
                .unwrap();
            let b = parse_notification(&valid(), 1, &tenant(), source, jiff::Timestamp::UNIX_EPOCH)
                .unwrap();
            assert_eq!(a.id, b.id, "stable at {len}");
            assert!(a.id.as_str().len() <= MAX_ID_LEN, "{len}: {}", a.id);
        }
        // Long keys that share a prefix still derive different ids.
        let (k1, k2) = ("a".repeat(127) + "1", "a".repeat(127) + "2");
        let id = |k: &str| {
            parse_notification(
                &valid(),
                0,
                &tenant(),
                IdSource::IdempotencyKey(k),
                jiff::Timestamp::UNIX_EPOCH,
            )
            .unwrap()
            .id
        };
        assert_ne!(id(&k1), id(&k2));
        assert!(check_idempotency_key(&"k".repeat(129)).is_err());
    }

    #[test]
    fn log_key_is_the_id_unless_the_client_chose_the_id() {
        let generated = parse(valid()).unwrap();
        assert_eq!(generated.log_key(), generated.id.as_str());
        assert!(!generated.has_client_id());
        let mut item = valid();
        item["id"] = json!("mine");
        let chosen = parse(item).unwrap();
        assert_eq!(chosen.log_key().len(), 26, "a ULID");
        assert!(chosen.has_client_id());
        // A message queued before log keys existed keeps its id as the key.
        let mut old = serde_json::to_value(&chosen).unwrap();
        old.as_object_mut().unwrap().remove("log_key");
        let old: Notification = serde_json::from_value(old).unwrap();
        assert_eq!(old.log_key(), "mine");
    }

    #[test]
    fn queue_message_round_trips() {
        let n = parse(valid()).unwrap();
        let back: Notification = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
    }
}
