//! HTTP edge helpers shared by the API functions: problem JSON errors and body parsing.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::{FieldError, StoreError};

/// Everything an API handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0}")]
    NotFound(String),
    #[error("payload too large: {0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = match &self {
            ApiError::Invalid(e) => (StatusCode::BAD_REQUEST, e.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, FieldError::body("not_found", m)),
            ApiError::TooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                FieldError::body("too_large", m),
            ),
            ApiError::Store(StoreError::Transient(_))
            | ApiError::Store(StoreError::Call {
                transient: true, ..
            })
            | ApiError::Unavailable(_) => {
                tracing::warn!(error = %self, "answering 503");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    FieldError::body("unavailable", "temporarily unavailable; retry with backoff"),
                )
            }
            ApiError::Store(StoreError::BadCursor) => (
                StatusCode::BAD_REQUEST,
                FieldError::new(
                    "invalid_cursor",
                    "cursor",
                    "cursor must be a next_cursor this API returned for the same query",
                ),
            ),
            ApiError::Store(StoreError::Fatal(_)) | ApiError::Store(StoreError::Call { .. }) => {
                tracing::error!(error = %self, "answering 500");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    FieldError::body("internal", "internal error"),
                )
            }
        };
        (status, Json(json!({ "error": error }))).into_response()
    }
}

/// Parses a request body as a JSON value, with a 400 that says what is wrong.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(
            FieldError::body("invalid_body", "request body is empty; expected JSON").into(),
        );
    }
    serde_json::from_slice(body).map_err(|e| {
        FieldError::body(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
        .into()
    })
}

/// Answers 404 with problem JSON for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// Answers 405 with problem JSON for a known route and the wrong method.
pub async fn method_not_allowed() -> axum::response::Response {
    let error = FieldError::body("method_not_allowed", "this route does not take that method");
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": error })),
    )
        .into_response()
}

/// Largest request body: Lambda's 6 MB payload limit (500 notifications fit well within).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
