//! `POST /v1/contacts/import`: a Pinpoint endpoint export (newline-delimited JSON) into
//! contacts. Each line is checked on its own: a malformed one is reported by its line number
//! and writes nothing; the others are merged into their users' contacts (one versioned write
//! per user). `cargo xtask import-pinpoint` sends a file of any size in chunks.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use futures_util::{stream, StreamExt};
use herald::auth::{Scope, VerifiedToken};
use herald::domain::contact::Contact;
use herald::domain::device::{Platform, Registration};
use herald::domain::pinpoint::{parse_endpoint, with_stored_push, EndpointLine};
use herald::http::ApiError;
use herald::{FieldError, UserId, UserKey};
use serde_json::{json, Value};

use crate::{write_contact, Deps};

/// Lines one request may carry (the xtask sends larger files in chunks of this).
pub const MAX_IMPORT_LINES: usize = 1_000;

pub(crate) async fn import_contacts(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Query(query): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = deps.caller(&token)?.require(Scope::Contacts)?.clone();
    // 1 to u32::MAX, as openapi.yaml states it.
    let first_line: usize = match query.get("first_line") {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n as usize)
            .ok_or_else(|| {
                FieldError::new(
                    "invalid_value",
                    "first_line",
                    "first_line must be an integer from 1 to 4294967295",
                )
            })?,
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| FieldError::body("invalid_body", "the export must be UTF-8 text"))?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err(FieldError::body("invalid_body", "the export is empty").into());
    }
    if lines.len() > MAX_IMPORT_LINES {
        return Err(FieldError::body(
            "too_many",
            format!(
                "{} lines; at most {MAX_IMPORT_LINES} per request (cargo xtask import-pinpoint sends a file in chunks)",
                lines.len()
            ),
        )
        .into());
    }
    let (mut skipped, mut errors, mut devices) = (Vec::new(), Vec::new(), Vec::new());
    let mut by_user: BTreeMap<UserId, Vec<Value>> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let number = first_line + i;
        match parse_endpoint(line) {
            Ok(EndpointLine::Apply { user, patch }) => {
                // Checked alone first: a line whose contact would not validate writes nothing.
                match Contact::apply(None, &patch, true, deps.marketing_default) {
                    Ok(_) => by_user.entry(user).or_default().push(patch),
                    Err(e) => errors.push(json!({"line": number, "error": e.message})),
                }
            }
            Ok(EndpointLine::Device {
                user,
                platform,
                token,
                patch,
            }) => {
                if patch.as_object().is_some_and(|p| !p.is_empty()) {
                    by_user.entry(user.clone()).or_default().push(patch);
                }
                devices.push((number, user, platform, token));
            }
            Ok(EndpointLine::Skip(reason)) if reason == "blank line" => {}
            Ok(EndpointLine::Skip(reason)) => {
                skipped.push(json!({"line": number, "reason": reason}))
            }
            Err(error) => errors.push(json!({"line": number, "error": error})),
        }
    }
    let patches: usize = by_user.values().map(Vec::len).sum();
    // Nothing importable and something wrong: the request as a whole is bad.
    if patches + devices.len() == 0 {
        if let Some(first) = errors.first() {
            let line = first["line"].as_u64().unwrap_or(0);
            return Err(FieldError::new(
                "invalid_line",
                &format!("line {line}"),
                format!(
                    "line {line}: {} ({} lines refused, none imported)",
                    first["error"].as_str().unwrap_or_default(),
                    errors.len()
                ),
            )
            .into());
        }
    }
    let users = by_user
        .keys()
        .chain(devices.iter().map(|(_, user, _, _)| user))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let default = deps.marketing_default;
    let results: Vec<Result<(), ApiError>> = stream::iter(by_user)
        .map(|(user, patches)| {
            let (deps, tenant) = (deps.clone(), tenant.clone());
            async move {
                let key = UserKey { tenant, user };
                write_contact(&deps, &key, None, |stored| {
                    let mut contact = stored.cloned();
                    for patch in &patches {
                        let mut patch = patch.clone();
                        with_stored_push(
                            &mut patch,
                            contact.as_ref().map_or(&[][..], |c| c.push.as_slice()),
                        );
                        contact = Some(Contact::apply(contact.as_ref(), &patch, true, default)?);
                    }
                    contact.ok_or_else(|| FieldError::body("empty", "nothing to import"))
                })
                .await
                .map(|_| ())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for result in results {
        result?;
    }
    // Device tokens become registered devices (an SNS endpoint each), where the stack has a
    // platform application for them.
    let mut registered = 0;
    let mut configured = Vec::new();
    for (number, user, platform, token) in devices {
        match deps.push_apps.of(platform, "platform") {
            Ok(_) => configured.push((number, user, platform, token)),
            Err(e) => skipped.push(json!({"line": number, "reason": e.message})),
        }
    }
    // A few users at once, as the contacts (each device is an SNS endpoint and a
    // transaction); one user's devices in order, so the device limit holds.
    let mut by_owner: BTreeMap<UserId, Vec<(usize, Platform, String)>> = BTreeMap::new();
    for (number, user, platform, token) in configured {
        by_owner
            .entry(user)
            .or_default()
            .push((number, platform, token));
    }
    let outcomes: Vec<(usize, Result<(), ApiError>)> = stream::iter(by_owner)
        .map(|(user, owned)| {
            let (deps, tenant) = (deps.clone(), tenant.clone());
            async move {
                let key = UserKey { tenant, user };
                let mut done = Vec::new();
                for (number, platform, token) in owned {
                    let registration = Registration {
                        platform,
                        app: None,
                    };
                    let result = crate::devices::register_device(&deps, &key, &token, registration)
                        .await
                        .map(|_| ());
                    done.push((number, result));
                }
                done
            }
        })
        .buffer_unordered(8)
        .flat_map(stream::iter)
        .collect()
        .await;
    for (number, outcome) in outcomes {
        match outcome {
            Ok(()) => registered += 1,
            Err(e) => errors.push(json!({"line": number, "error": e.to_string()})),
        }
    }
    // By line, whichever registration finished first.
    skipped.sort_by_key(|e| e["line"].as_u64());
    errors.sort_by_key(|e| e["line"].as_u64());
    let imported = patches + registered;
    tracing::info!(tenant = %tenant, users, imported, devices = registered, errors = errors.len(), "contacts imported");
    Ok(Json(json!({
        "lines": lines.len(),
        "imported": imported,
        "users": users,
        "devices": registered,
        "skipped": skipped,
        "errors": errors,
    })))
}
