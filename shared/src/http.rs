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
    /// No token, or one that did not verify: 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A verified token that may not do this: 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// `If-Match` named another version than the stored one: 412.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// The resource is in a state that does not allow this (cancel a finished campaign): 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The same, about one field (its code and message say what): 409.
    #[error("conflict: {}", .0.message)]
    FieldConflict(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = match &self {
            ApiError::Invalid(e) => (StatusCode::BAD_REQUEST, e.clone()),
            ApiError::Unauthorized(m) => (
                StatusCode::UNAUTHORIZED,
                FieldError::body("unauthorized", m),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, FieldError::body("forbidden", m)),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, FieldError::body("not_found", m)),
            ApiError::PreconditionFailed(m) => (
                StatusCode::PRECONDITION_FAILED,
                FieldError::new("precondition_failed", "If-Match", m),
            ),
            ApiError::TooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                FieldError::body("too_large", m),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, FieldError::body("conflict", m)),
            ApiError::FieldConflict(e) => (StatusCode::CONFLICT, e.clone()),
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
            ApiError::Store(StoreError::VersionConflict) => (
                StatusCode::CONFLICT,
                FieldError::body(
                    "conflict",
                    "changed by someone else meanwhile; read it and retry",
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

/// Rewrites an error answer that is not JSON into problem JSON: axum's own rejections (a
/// path or query that is not valid UTF-8 or percent-encoding, a body over the limit) answer
/// plain text, and clients are promised `{"error": {...}}` on every 4xx. Layer it on every
/// router with `axum::middleware::map_response(problem_json)`.
pub async fn problem_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| {
            String::from_utf8_lossy(&b)
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    (
        status,
        Json(json!({ "error": FieldError::body(code, message) })),
    )
        .into_response()
}

/// Where a request comes from, for the logs and traces of everything it causes: a
/// correlation id (the caller's `X-Correlation-Id`, else API Gateway's request id, else a new
/// one) and the X-Ray trace header of this invocation, when there is one.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub correlation_id: String,
    pub trace_header: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let correlation_id = match parts.headers.get("x-correlation-id") {
            Some(value) => {
                let id = value.to_str().unwrap_or_default();
                crate::domain::ids::check_id(id, "X-Correlation-Id")?;
                id.to_owned()
            }
            None => match parts
                .extensions
                .get::<lambda_http::request::RequestContext>()
            {
                Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context
                    .request_id
                    .clone()
                    .unwrap_or_else(|| ulid::Ulid::new().to_string()),
                _ => ulid::Ulid::new().to_string(),
            },
        };
        let trace_header = parts
            .extensions
            .get::<lambda_http::Context>()
            .and_then(|c| c.xray_trace_id.clone())
            .or_else(|| header("x-amzn-trace-id").map(str::to_owned));
        Ok(Self {
            correlation_id,
            trace_header,
        })
    }
}

/// Largest request body: Lambda's 6 MB payload limit (500 notifications fit well within).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
