//! The suppression routes (`herald/contacts`, services only): list the tenant's entries,
//! look up one address (its tenant and global entries and its removals), lift a tenant
//! entry with who and why on record, and list those removals. The address travels in the
//! query (`?address=`): push endpoint ARNs hold `/`, which a path segment cannot.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use herald::auth::{Scope, VerifiedToken};
use herald::domain::suppression::{parse_address, parse_note, SuppressionScope};
use herald::http::ApiError;
use herald::ports::Lifted;
use herald::{FieldError, StoreError};
use serde_json::{json, Value};

use crate::{page_limit, retry_contended, Deps};

/// How often a removal that met a concurrent change (a new bounce, another removal) reads
/// the entry again before answering 409.
const LIFT_ATTEMPTS: usize = 3;

/// `GET /v1/suppressions`: the tenant's entries by address, paged; with `?address=`, that
/// address's entries (the global one too) and its removals.
pub(crate) async fn list_suppressions(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = deps.caller(&token)?.require(Scope::Contacts)?.clone();
    // Checked with or without `address` (which answers one entry, unpaged).
    let limit = page_limit(&query)?;
    let cursor = crate::page_cursor(&query);
    if let Some(raw) = query.get("address") {
        let address = parse_address(raw, "address")?;
        let found = deps.suppressions.lookup(&tenant, &address).await?;
        return Ok(Json(json!({
            "address": address,
            "suppressed": !found.entries.is_empty(),
            "suppressions": found.entries,
            "removals": found.removals,
        })));
    }
    let page = deps
        .suppressions
        .suppressions(&tenant, limit, cursor)
        .await?;
    Ok(Json(
        json!({"suppressions": page.items, "next_cursor": page.next_cursor}),
    ))
}

/// `DELETE /v1/suppressions?address=…[&note=…]`: lifts the tenant's entry; the removal
/// (what the entry said, who lifted it, the note) is kept. A global entry (an SMS STOP) is
/// the recipient's own opt-out: no tenant lifts it, so that is a 409 naming the address.
pub(crate) async fn lift_suppression(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let caller = deps.caller(&token)?;
    let tenant = caller.require(Scope::Contacts)?.clone();
    let raw = query.get("address").ok_or_else(|| {
        FieldError::new(
            "missing_field",
            "address",
            "address is required (?address=, the suppressed email address, number or endpoint)",
        )
    })?;
    let address = parse_address(raw, "address")?;
    let note = parse_note(query.get("note").map(String::as_str), "note")?;
    let removed_by = caller
        .subject
        .clone()
        .unwrap_or_else(|| "unknown".to_owned());
    let lifted = match retry_contended(&deps, LIFT_ATTEMPTS, || {
        deps.suppressions
            .lift(&tenant, &address, &removed_by, note.as_deref())
    })
    .await
    {
        Err(StoreError::VersionConflict) => {
            return Err(ApiError::FieldConflict(FieldError::new(
                "conflict",
                "address",
                "the entry changed while it was being lifted (suppressed again?); read it and try again",
            )))
        }
        other => other?,
    };
    match lifted {
        Lifted::Removed(removal) => {
            tracing::info!(
                tenant = %tenant,
                removed_by = %removal.removed_by,
                reason = %removal.reason,
                "suppression lifted"
            );
            Ok(Json(json!({ "removed": removal })))
        }
        Lifted::NotSuppressed => {
            let found = deps.suppressions.lookup(&tenant, &address).await?;
            if found
                .entries
                .iter()
                .any(|e| e.scope == SuppressionScope::Global)
            {
                Err(ApiError::FieldConflict(FieldError::new(
                    "suppressed_for_every_tenant",
                    "address",
                    "the address is suppressed for every tenant (an SMS STOP: the recipient's own \
                     opt-out); only the recipient can lift it",
                )))
            } else {
                Err(ApiError::NotFound(
                    "the address is not on this tenant's suppression list".into(),
                ))
            }
        }
    }
}

/// `GET /v1/suppressions/removals`: the tenant's removals, newest first, paged.
pub(crate) async fn list_removals(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = deps.caller(&token)?.require(Scope::Contacts)?.clone();
    let limit = page_limit(&query)?;
    let page = deps
        .suppressions
        .removals(&tenant, limit, crate::page_cursor(&query))
        .await?;
    Ok(Json(
        json!({"removals": page.items, "next_cursor": page.next_cursor}),
    ))
}
