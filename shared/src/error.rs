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
