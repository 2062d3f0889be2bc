//! Errors shared by every crate: field-level validation errors that map to HTTP 4xx.

use serde::Serialize;

/// A validation error about one field (or the whole body when `field` is None).
/// Serialises as the `error` object of the API's problem JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl FieldError {
    pub fn new(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// An error about the request as a whole.
    pub fn body(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            field: None,
        }
    }

    /// `value` as a `T`, or a 400 naming the field at fault by its path from the
    /// deserializer, below `at` (`notifications[3]`; empty: the body): `missing_field`,
    /// `unknown_field`, `invalid_type` or `invalid_value`.
    pub fn from_json<T: serde::de::DeserializeOwned>(
        value: &serde_json::Value,
        at: &str,
    ) -> Result<T, FieldError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let mut path = e.path().to_string();
            if path == "." {
                path.clear();
            }
            let message = e.inner().to_string();
            // serde names a missing field in its message, `like this`, and the path stops at
            // the object that lacks it; an unknown field's path ends with it.
            let named = message.split('`').nth(1).unwrap_or_default();
            let (code, field) = if message.starts_with("missing field") {
                ("missing_field", join(&path, named))
            } else if message.starts_with("unknown field") {
                ("unknown_field", path)
            } else if message.starts_with("invalid type") {
                ("invalid_type", path)
            } else {
                ("invalid_value", path)
            };
            // serde quotes what it read (a value `"…"`, a key `` `…` ``): cut, so an error never
            // echoes more than a few dozen characters of the input.
            let message = clip_quoted(&clip_quoted(&message, '"'), '`');
            let field = clip(&join(at, &field), MAX_FIELD_CHARS);
            if field.is_empty() {
                return FieldError::body(code, message);
            }
            FieldError::new(code, &field, format!("{field}: {message}"))
        })
    }
}

/// The most of one input value an error repeats.
const MAX_QUOTED_CHARS: usize = 64;
/// The longest field path an error names (a path ends with the key a client sent).
const MAX_FIELD_CHARS: usize = 200;

/// `text` cut to `max` characters, marked with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `text` with each part between two `quote`s cut to `MAX_QUOTED_CHARS`.
fn clip_quoted(text: &str, quote: char) -> String {
    let parts: Vec<String> = text
        .split(quote)
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                clip(part, MAX_QUOTED_CHARS)
            } else {
                part.to_owned()
            }
        })
        .collect();
    parts.join(&quote.to_string())
}

/// `outer.inner`, or `outer[0]` when `inner` is an index; either alone when the other is empty.
fn join(outer: &str, inner: &str) -> String {
    match (outer.is_empty(), inner.is_empty()) {
        (_, true) => outer.to_owned(),
        (true, false) => inner.to_owned(),
        (false, false) if inner.starts_with('[') => format!("{outer}{inner}"),
        (false, false) => format!("{outer}.{inner}"),
    }
}

/// A failed call to an AWS service: its error code, a line for logs and DLQ reasons, and
/// the SDK's error itself as the `source`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{description}")]
pub struct CallError {
    /// The service's error code (`ThrottlingException`, `MessageRejected`, …), if any.
    pub code: Option<String>,
    pub description: String,
    #[source]
    pub source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl CallError {
    /// An error with no SDK cause (fakes, injected faults).
    pub fn message(description: impl Into<String>) -> Self {
        Self {
            code: None,
            description: description.into(),
            source: None,
        }
    }
}

/// Failures of a storage or messaging adapter, classified for retry decisions.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, transaction conflicts, timeouts: worth retrying with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Anything else: a bug, missing table, bad permissions.
    #[error("{0}")]
    Fatal(String),
    /// A page cursor this API did not hand out (or for another query): the client's fault.
    #[error("invalid cursor")]
    BadCursor,
    /// A versioned write found another version than the one it read (a concurrent write).
    #[error("the item changed since it was read")]
    VersionConflict,
    /// A DynamoDB call failed; `transient` when it is worth retrying.
    #[error("{error}")]
    Call {
        transient: bool,
        #[source]
        error: CallError,
    },
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Transient(_)
                | StoreError::Call {
                    transient: true,
                    ..
                }
        )
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read by the deserializer only
    struct Item {
        title: String,
        tags: Option<Vec<String>>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        start: u32,
    }

    fn error(value: serde_json::Value) -> (String, Option<String>) {
        let e = FieldError::from_json::<Item>(&value, "items[2]").unwrap_err();
        (e.code, e.field)
    }

    /// The field is the path the deserializer reached, unquoted, below the caller's prefix;
    /// a missing or unknown field is named itself, not by its parent.
    #[test]
    fn a_serde_error_names_the_field_by_its_path() {
        let at = |f: &str| Some(format!("items[2]{f}"));
        assert_eq!(error(json!({})), ("missing_field".into(), at(".title")));
        assert_eq!(
            error(json!({"title": "t", "titel": 1})),
            ("unknown_field".into(), at(".titel"))
        );
        assert_eq!(
            error(json!({"title": 5})),
            ("invalid_type".into(), at(".title"))
        );
        assert_eq!(
            error(json!({"title": "t", "tags": ["a", 7]})),
            ("invalid_type".into(), at(".tags[1]"))
        );
        assert_eq!(
            error(json!({"title": "t", "inner": {"start": -1}})),
            ("invalid_value".into(), at(".inner.start"))
        );
        assert_eq!(
            error(json!({"title": "t", "inner": {}})),
            ("missing_field".into(), at(".inner.start"))
        );
        assert_eq!(error(json!("x")), ("invalid_type".into(), at("")));
        let body = FieldError::from_json::<Item>(&json!(3), "").unwrap_err();
        assert_eq!((body.code.as_str(), body.field), ("invalid_type", None));
    }

    /// Neither a huge value nor a huge unknown key comes back whole.
    #[test]
    fn an_error_never_echoes_a_long_input() {
        let long = "x".repeat(100_000);
        for body in [
            json!({ "title": 1, "tags": long }),
            json!({ "title": "t", long.clone(): 1 }),
        ] {
            let e = FieldError::from_json::<Item>(&body, "").unwrap_err();
            assert!(e.message.len() < 600, "{}", e.message.len());
            assert!(e.field.unwrap_or_default().len() < 300);
        }
    }
}
