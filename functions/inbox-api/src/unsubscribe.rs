//! The public unsubscribe link: GET shows a confirmation page, POST (RFC 8058 one-click)
//! records the opt-out; a forged or altered token is a 400 naming `token`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Html;
use axum::Json;
use herald::domain::unsubscribe::Unsubscribe;
use herald::http::ApiError;
use herald::{FieldError, UserKey};
use serde_json::{json, Value};

use crate::{write_contact, Deps};

/// The request a link makes; 400 naming `token` for a forged, altered or missing one.
pub(crate) async fn verified_link(
    deps: &Deps,
    query: &HashMap<String, String>,
) -> Result<(Unsubscribe, String), ApiError> {
    let token = query
        .get("token")
        .ok_or_else(|| FieldError::new("missing_field", "token", "the link's token is missing"))?;
    let request = deps.keys.signer().await?.verify(token)?;
    Ok((request, token.clone()))
}

pub(crate) async fn unsubscribe_page(
    State(deps): State<Arc<Deps>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Html<String>, ApiError> {
    // The token's characters are all URL- and HTML-safe: it verified.
    let (_, token) = verified_link(&deps, &query).await?;
    Ok(Html(format!(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
         <form method=post action=\"?token={token}\">\
         <input type=hidden name=List-Unsubscribe value=One-Click>\
         <p>Stop marketing messages to this address?</p>\
         <button type=submit>Unsubscribe</button></form>"
    )))
}

pub(crate) async fn unsubscribe(
    State(deps): State<Arc<Deps>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (request, _) = verified_link(&deps, &query).await?;
    let user = deps
        .directory
        .user_of_pseudonym(&request.tenant, &request.pseudonym)
        .await?
        .ok_or_else(|| ApiError::NotFound("nobody is subscribed under this link".into()))?;
    let user = UserKey {
        tenant: request.tenant.clone(),
        user,
    };
    write_contact(&deps, &user, None, |stored| {
        let mut contact = stored.cloned().unwrap_or_default();
        contact.preferences.marketing = false;
        Ok(contact)
    })
    .await?;
    tracing::info!(tenant = %request.tenant, "unsubscribed from marketing");
    Ok(Json(json!({"unsubscribed": true, "category": "marketing"})))
}
