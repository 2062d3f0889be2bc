//! `GET /v1/notifications/{id}`: a notification's delivery records, per user and channel.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use herald::auth::{Scope, VerifiedToken};
use herald::http::ApiError;
use herald::NotificationId;
use serde_json::{json, Value};

use crate::Deps;

/// `?user=` reads that user's records directly by key (what a sender that knows the user
/// should ask); without it, one query of the notification's own records.
pub(crate) async fn delivery_status(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let caller = deps.caller(&token)?;
    let tenant = caller.require(Scope::Send)?;
    let id = NotificationId::parse(id, "id")?;
    let records = match query.get("user") {
        Some(user) => {
            let user = herald::UserId::parse(user, "user")?;
            deps.directory
                .user_delivery_status(tenant, &id, &user)
                .await?
        }
        None => deps.directory.delivery_status(tenant, &id).await?,
    };
    if records.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no delivery recorded for notification {id} (yet)"
        )));
    }
    // Client ids are unique per user: one id may name notifications of several users.
    let mut users: std::collections::BTreeMap<String, serde_json::Map<String, Value>> =
        std::collections::BTreeMap::new();
    for r in records {
        let mut channel = json!({"state": r.state, "detail": r.detail, "updated_at": herald::domain::time::millis(r.updated_at)});
        // Why a skipped send was skipped: `capped`, `read` (a workflow step), `opted_out`…
        if let Some(skip) = r
            .skip
            .filter(|_| r.state == herald::ports::DeliveryState::Skipped)
        {
            channel["reason"] = json!(skip.as_str());
        }
        users
            .entry(r.user_id.to_string())
            .or_default()
            .insert(r.channel.as_str().to_owned(), channel);
    }
    let deliveries: Vec<Value> = users
        .iter()
        .map(|(user, channels)| json!({"user_id": user, "channels": channels}))
        .collect();
    // `channels` at the top for the usual case of one user per id.
    let channels = if users.len() == 1 {
        users.into_values().next()
    } else {
        None
    };
    Ok(Json(
        json!({"id": id, "channels": channels, "deliveries": deliveries}),
    ))
}
