//! The inbox routes: unread counts, the message list, mark a room or everything read.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use herald::auth::{Scope, VerifiedToken};
use herald::domain::counters::Unread;
use herald::domain::mark_read::{mark_all_read, mark_room_read};
use herald::http::ApiError;
use herald::ports::MessagePage;
use herald::RoomId;

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

    Ok(Json(
        deps.messages
            .list_messages(&user, room.as_ref(), limit, cursor)
            .await?,
    ))
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
