//! Dead letters as operators handle them, as pure decisions: which messages a redrive
//! moves and which it leaves, what a redrive request asks for, and what a message takes
//! back to its source queue (its attributes, not herald's note of why it failed).

use serde::Deserialize;

use crate::consumer::{DLQ_REASON_ATTRIBUTE, DLQ_SOURCE_ATTRIBUTE};
use crate::error::FieldError;
use crate::ports::{DeadLetter, OutgoingMessage, RedriveSelection};

/// Messages one listing shows at most (`?limit=`, default 20).
pub const MAX_LIST: u32 = 50;
pub const DEFAULT_LIST: u32 = 20;
/// Messages one `{"all": true}` redrive moves at most; the answer's `remaining` says
/// whether to call again.
pub const MAX_REDRIVE_ALL: usize = 100;
/// How many messages a redrive of chosen ids looks through at most.
pub const REDRIVE_SCAN: usize = 100;
/// Ids one redrive of chosen messages names at most.
pub const MAX_REDRIVE_IDS: usize = 50;
/// An SQS message id is at most 100 characters.
const MAX_ID_LEN: usize = 100;

/// The message attributes a redriven message takes back: all but herald's own notes of its
/// dead-lettering, so that a message that fails again is noted afresh.
pub fn carried_back(attributes: &[(String, String)]) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter(|(name, _)| name != DLQ_REASON_ATTRIBUTE && name != DLQ_SOURCE_ATTRIBUTE)
        .cloned()
        .collect()
}

/// Of the messages a redrive received (by index): those it moves, those it leaves in the
/// DLQ, and the chosen ids it did not receive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedrivePlan {
    pub moved: Vec<usize>,
    pub left: Vec<usize>,
    pub not_found: Vec<String>,
}

/// How many messages a redrive receives: up to its bound for all, the scan for chosen ids.
pub fn redrive_scan(selection: &RedriveSelection) -> usize {
    match selection {
        RedriveSelection::All { max } => *max,
        RedriveSelection::Chosen(_) => REDRIVE_SCAN,
    }
}

pub fn plan_redrive(received: &[DeadLetter], selection: &RedriveSelection) -> RedrivePlan {
    let mut plan = RedrivePlan::default();
    match selection {
        RedriveSelection::All { max } => {
            let mut seen: Vec<&str> = Vec::new();
            for (i, letter) in received.iter().enumerate() {
                // A message SQS gave twice in one scan is moved once.
                if plan.moved.len() < *max && !seen.contains(&letter.message_id.as_str()) {
                    seen.push(&letter.message_id);
                    plan.moved.push(i);
                } else {
                    plan.left.push(i);
                }
            }
        }
        RedriveSelection::Chosen(ids) => {
            let mut found = Vec::new();
            for (i, letter) in received.iter().enumerate() {
                // A message SQS gave twice in one scan is moved once.
                if ids.contains(&letter.message_id) && !found.contains(&letter.message_id) {
                    found.push(letter.message_id.clone());
                    plan.moved.push(i);
                } else {
                    plan.left.push(i);
                }
            }
            plan.not_found = ids
                .iter()
                .filter(|id| !found.contains(id))
                .cloned()
                .collect();
        }
    }
    plan
}

/// What goes back to the source queue for the `moved` letters: each body with the
/// attributes it takes back, under its DLQ id (unique within one send).
pub fn redriven_messages(letters: &[DeadLetter], moved: &[usize]) -> Vec<OutgoingMessage> {
    moved
        .iter()
        .map(|&i| OutgoingMessage {
            id: letters[i].message_id.clone(),
            body: letters[i].body.clone(),
            attributes: letters[i].attributes.clone(),
            delay_seconds: None,
            trace_header: None,
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    all: Option<bool>,
    ids: Option<Vec<String>>,
}

/// `POST /v1/dead-letters/{queue}/redrive`'s body: `{"all": true}` (up to
/// [`MAX_REDRIVE_ALL`] messages a call) or `{"ids": [...]}` (1 to [`MAX_REDRIVE_IDS`]
/// message ids from a listing), not both.
pub fn parse_redrive(body: &serde_json::Value) -> Result<RedriveSelection, FieldError> {
    let parsed: RedriveBody = serde_json::from_value(body.clone()).map_err(|e| {
        FieldError::body(
            "invalid_body",
            format!("a redrive is {{\"all\": true}} or {{\"ids\": [message ids]}}: {e}"),
        )
    })?;
    match (parsed.all, parsed.ids) {
        (Some(true), None) => Ok(RedriveSelection::All {
            max: MAX_REDRIVE_ALL,
        }),
        (Some(false), _) => Err(FieldError::new(
            "invalid_value",
            "all",
            "all must be true (or give ids instead)",
        )),
        (Some(true), Some(_)) => Err(FieldError::new(
            "invalid_value",
            "ids",
            "give either all or ids, not both",
        )),
        (None, None) => Err(FieldError::new(
            "missing_field",
            "ids",
            "give ids (message ids from a listing) or \"all\": true",
        )),
        (None, Some(ids)) => {
            if ids.is_empty() || ids.len() > MAX_REDRIVE_IDS {
                return Err(FieldError::new(
                    "invalid_value",
                    "ids",
                    format!("ids must hold 1-{MAX_REDRIVE_IDS} message ids"),
                ));
            }
            for (i, id) in ids.iter().enumerate() {
                let plain = !id.is_empty()
                    && id.len() <= MAX_ID_LEN
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
                if !plain {
                    return Err(FieldError::new(
                        "invalid_value",
                        &format!("ids[{i}]"),
                        format!(
                            "a message id is 1-{MAX_ID_LEN} letters, digits, '-' or '_' (as a listing shows it)"
                        ),
                    ));
                }
            }
            let mut unique = Vec::with_capacity(ids.len());
            for id in ids {
                if !unique.contains(&id) {
                    unique.push(id);
                }
            }
            Ok(RedriveSelection::Chosen(unique))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn letter(id: &str) -> DeadLetter {
        DeadLetter {
            message_id: id.into(),
            body: "{}".into(),
            reason: Some("bad".into()),
            sent_at: None,
            receive_count: 1,
            attributes: Vec::new(),
        }
    }

    #[test]
    fn herald_notes_stay_behind_and_the_rest_goes_back() {
        let attributes = vec![
            (DLQ_REASON_ATTRIBUTE.to_owned(), "bad json".to_owned()),
            (DLQ_SOURCE_ATTRIBUTE.to_owned(), "m-1".to_owned()),
            ("campaign".to_owned(), "c1".to_owned()),
        ];
        assert_eq!(
            carried_back(&attributes),
            vec![("campaign".to_owned(), "c1".to_owned())]
        );
    }

    #[test]
    fn chosen_ids_move_once_and_the_rest_stays() {
        let received = [letter("a"), letter("b"), letter("a"), letter("c")];
        let plan = plan_redrive(
            &received,
            &RedriveSelection::Chosen(vec!["a".into(), "c".into(), "z".into()]),
        );
        assert_eq!(plan.moved, vec![0, 3]);
        assert_eq!(plan.left, vec![1, 2]);
        assert_eq!(plan.not_found, vec!["z".to_owned()]);
    }

    #[test]
    fn all_moves_up_to_its_bound_and_each_message_once() {
        let received = [letter("a"), letter("b"), letter("a"), letter("c")];
        let plan = plan_redrive(&received, &RedriveSelection::All { max: 2 });
        assert_eq!(plan.moved, vec![0, 1]);
        assert_eq!(plan.left, vec![2, 3]);
        assert!(plan.not_found.is_empty());
        let plan = plan_redrive(&received, &RedriveSelection::All { max: 10 });
        assert_eq!(plan.moved, vec![0, 1, 3]);
        assert_eq!(plan.left, vec![2]);
    }

    #[test]
    fn a_redrive_body_is_all_or_ids_and_names_its_bad_field() {
        assert_eq!(
            parse_redrive(&json!({"all": true})).unwrap(),
            RedriveSelection::All {
                max: MAX_REDRIVE_ALL
            }
        );
        assert_eq!(
            parse_redrive(&json!({"ids": ["a-1", "a-1", "b"]})).unwrap(),
            RedriveSelection::Chosen(vec!["a-1".into(), "b".into()])
        );
        let field = |body| parse_redrive(&body).unwrap_err().field;
        assert_eq!(field(json!({})), Some("ids".into()));
        assert_eq!(field(json!({"all": false})), Some("all".into()));
        assert_eq!(
            field(json!({"all": true, "ids": ["a"]})),
            Some("ids".into())
        );
        assert_eq!(field(json!({"ids": []})), Some("ids".into()));
        assert_eq!(
            field(json!({"ids": ["ok", "no way"]})),
            Some("ids[1]".into())
        );
        assert_eq!(
            field(json!({"ids": vec!["a"; MAX_REDRIVE_IDS + 1]})),
            Some("ids".into())
        );
        assert_eq!(field(json!({"every": true})), None);
    }
}
