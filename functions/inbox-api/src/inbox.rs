//! The inbox routes: unread and unseen counts, the message list, mark a room or everything
//! read, messages or everything seen, messages archived or not.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use herald::auth::{Scope, VerifiedToken};
use herald::domain::counters::Unread;
use herald::domain::mark_read::{mark_all_read, mark_room_read};
use herald::domain::seen::{mark_all_seen, mark_seen, parse_ids, set_archived};
use herald::http::{parse_json, ApiError};
use herald::ports::MessagePage;
use herald::RoomId;
use serde_json::{json, Value};

use crate::Deps;

pub(crate) async fn unread(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Result<Json<Unread>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    Ok(Json(deps.counters.read_counters(&user).await?.unread()))
}

pub(crate) async fn messages(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<MessagePage>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    let room = query
        .get("room")
        .filter(|r| !r.is_empty())
        .map(|r| RoomId::parse(r, "room"))
        .transpose()?;
    let limit = crate::page_limit(&query)?;
    let cursor = crate::page_cursor(&query);
    let archived = match query.get("archived").map(String::as_str) {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(herald::FieldError::new(
                "invalid_value",
                "archived",
                "archived must be true (archived only) or false (unarchived only)",
            )
            .into())
        }
    };

    Ok(Json(
        deps.messages
            .list_messages_where(&user, room.as_ref(), limit, cursor, archived)
            .await?,
    ))
}

/// `POST /v1/users/{user}/messages/seen` `{"ids": [...]}`: the counts after, and the ids the
/// inbox does not hold.
pub(crate) async fn seen(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    let ids = parse_ids(&parse_json(&body)?)?;
    let outcome = mark_seen(
        deps.counters.as_ref(),
        deps.messages.as_ref(),
        &user,
        &ids,
        &deps.policy,
    )
    .await?;
    let mut answer = serde_json::to_value(outcome.after.unread()).unwrap_or_default();
    answer["not_found"] = json!(outcome.not_found);
    Ok(Json(answer))
}

/// `POST /v1/users/{user}/seen-all`: every message seen; the counts after.
pub(crate) async fn seen_all(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Result<Json<Unread>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    Ok(Json(
        mark_all_seen(deps.counters.as_ref(), &user, &deps.policy)
            .await?
            .unread(),
    ))
}

/// `POST /v1/users/{user}/messages/archive` (or `unarchive`) `{"ids": [...]}`.
async fn archive_as(
    deps: &Deps,
    token: &VerifiedToken,
    user: &str,
    body: &Bytes,
    archived: bool,
) -> Result<Json<Value>, ApiError> {
    let user = deps.caller(token)?.user(user, Scope::Inbox)?;
    let ids = parse_ids(&parse_json(body)?)?;
    let (done, not_found) = set_archived(deps.messages.as_ref(), &user, &ids, archived).await?;
    let key = if archived { "archived" } else { "unarchived" };
    Ok(Json(json!({ key: done, "not_found": not_found })))
}

pub(crate) async fn archive(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    archive_as(&deps, &token, &user, &body, true).await
}

pub(crate) async fn unarchive(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    archive_as(&deps, &token, &user, &body, false).await
}

pub(crate) async fn read_room(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path((user, room)): Path<(String, String)>,
) -> Result<Json<Unread>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    let room = RoomId::parse(room, "room")?;
    Ok(Json(
        mark_room_read(deps.counters.as_ref(), &user, &room, &deps.policy)
            .await?
            .after
            .unread(),
    ))
}

pub(crate) async fn read_all(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Result<Json<Unread>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    Ok(Json(
        mark_all_read(deps.counters.as_ref(), &user, &deps.policy)
            .await?
            .after
            .unread(),
    ))
}
