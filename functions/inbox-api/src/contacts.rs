//! The contact routes: GET, PUT, PATCH of a user's contact, written only over the version
//! read (`If-Match` names it; without, a concurrent write is applied again on top).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use herald::auth::{Scope, VerifiedToken};
use herald::domain::contact::Contact;
use herald::http::{parse_json, ApiError};
use herald::{FieldError, StoreError, UserKey};

use crate::Deps;

/// A user may read their own contact; services need `herald/contacts`.
pub(crate) async fn get_contact(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Result<(ETag, Json<Contact>), ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Contacts)?;
    match deps
        .directory
        .contact_versioned(&user.tenant, &user.user)
        .await?
    {
        (Some(contact), version) => Ok((etag(version), Json(contact))),
        (None, _) => Err(ApiError::NotFound(format!(
            "user {} has no contact",
            user.user
        ))),
    }
}

/// `PUT` replaces the contact.
pub(crate) async fn put_contact(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(ETag, Json<Contact>), ApiError> {
    change_contact(&deps, &token, &user, &headers, &body, false).await
}

/// `PATCH` merges the body into the contact (JSON merge patch: `null` clears a field).
pub(crate) async fn patch_contact(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(ETag, Json<Contact>), ApiError> {
    change_contact(&deps, &token, &user, &headers, &body, true).await
}

/// Only services write contacts: a user token must never repoint its own email or phone
/// (that is how one-time codes are stolen).
pub(crate) async fn change_contact(
    deps: &Deps,
    token: &VerifiedToken,
    user: &str,
    headers: &HeaderMap,
    body: &[u8],
    merge: bool,
) -> Result<(ETag, Json<Contact>), ApiError> {
    let user = deps
        .caller(token)?
        .user_for_service(user, Scope::Contacts)?;
    let body = parse_json(body)?;
    let default = deps.marketing_default;
    // A body the contract refuses is a 400 whatever the version (400 wins over 412): checked
    // before the stored contact is read.
    if merge {
        Contact::check_patch(&body)?;
    } else {
        Contact::apply(None, &body, false, default)?;
    }
    let (version, contact) = write_contact(deps, &user, if_match(headers)?, |stored| {
        Contact::apply(stored, &body, merge, default)
    })
    .await?;
    Ok((etag(version), Json(contact)))
}

/// Read, change, write only over the version read. With `If-Match` the caller names the
/// version and another one is a 412; without it a concurrent write is not lost: the change
/// is applied again on top of it.
pub(crate) async fn write_contact(
    deps: &Deps,
    user: &UserKey,
    if_match: Option<u64>,
    change: impl Fn(Option<&Contact>) -> Result<Contact, FieldError>,
) -> Result<(u64, Contact), ApiError> {
    let pseudonym = deps
        .keys
        .signer()
        .await?
        .pseudonym(&user.tenant, &user.user);
    // A version conflict re-reads at once; a transient fault (throttling, a transaction
    // that met another) waits with jitter first. Either kind is retried a few times before
    // the caller hears of it (409 or 503, never 500).
    let mut retry = deps.policy.start();
    let mut last = StoreError::VersionConflict;
    for _ in 0..MAX_CONTACT_WRITE_ATTEMPTS {
        let (stored, version) = match deps
            .directory
            .contact_versioned(&user.tenant, &user.user)
            .await
        {
            Ok(read) => read,
            Err(e) if e.is_transient() && retry.wait().await => {
                last = e;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if if_match.is_some_and(|expected| expected != version) {
            return Err(ApiError::PreconditionFailed(format!(
                "the contact is at version {version}"
            )));
        }
        let next = change(stored.as_ref())?;
        match deps
            .directory
            .put_contact(&user.tenant, &user.user, &next, &pseudonym, version)
            .await
        {
            Ok(version) => return Ok((version, next)),
            Err(StoreError::VersionConflict) if if_match.is_none() => {
                last = StoreError::VersionConflict;
                continue;
            }
            Err(StoreError::VersionConflict) => {
                return Err(ApiError::PreconditionFailed(
                    "the contact changed meanwhile".into(),
                ))
            }
            Err(e) if e.is_transient() && retry.wait().await => {
                last = e;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.into())
}

const MAX_CONTACT_WRITE_ATTEMPTS: usize = 5;

/// A contact version as an entity tag, for `If-Match`.
type ETag = [(axum::http::HeaderName, String); 1];

pub(crate) fn etag(version: u64) -> ETag {
    [(axum::http::header::ETAG, format!("\"{version}\""))]
}

/// openapi.yaml's `If-Match` pattern: `"3"`, `W/"3"` or `3`.
pub const IF_MATCH_PATTERN: &str = r#"^(W/)?("[0-9]{1,19}"|[0-9]{1,19})$"#;

/// The version an entity tag names, in `IF_MATCH_PATTERN`'s forms only.
pub fn parse_etag(value: &str) -> Option<u64> {
    // HTTP has already taken the white space around a field's value.
    let value = value.strip_prefix("W/").unwrap_or(value);
    let digits = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    ((1..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The version `If-Match` names (`"3"` or `3`), when given.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(parse_etag)
        .map(Some)
        .ok_or_else(|| {
            FieldError::new(
                "invalid_value",
                "If-Match",
                "If-Match must be the ETag a contact answer carried, e.g. \"3\"",
            )
            .into()
        })
}
