//! A tenant's sending rules: named workflows (`/v1/workflows/{name}`) that notifications
//! follow by name, and frequency caps (`/v1/frequency-caps`). Both need `herald/send`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use herald::auth::{Scope, VerifiedToken};
use herald::domain::caps::CapSettings;
use herald::domain::ids::check_id;
use herald::domain::workflow::Workflow;
use herald::http::{parse_json, ApiError};
use serde_json::{json, Value};

use crate::Deps;

fn answer(name: &str, workflow: &Workflow) -> Json<Value> {
    Json(json!({"name": name, "steps": workflow.steps}))
}

/// `PUT /v1/workflows/{name}`: defines or replaces a workflow. Notifications accepted after
/// this follow the new steps; those accepted before keep the steps they were accepted with.
pub(crate) async fn put_workflow(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = deps.caller(&token)?;
    let tenant = caller.require(Scope::Send)?;
    check_id(&name, "name")?;
    let workflow = Workflow::parse(&parse_json(&body)?, "")?;
    deps.workflows
        .put_workflow(tenant, &name, &workflow)
        .await?;
    Ok(answer(&name, &workflow))
}

/// `GET /v1/workflows/{name}`.
pub(crate) async fn get_workflow(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = deps.caller(&token)?;
    let tenant = caller.require(Scope::Send)?;
    check_id(&name, "name")?;
    match deps.workflows.workflow(tenant, &name).await? {
        Some(workflow) => Ok(answer(&name, &workflow)),
        None => Err(ApiError::NotFound(format!("no workflow {name:?}"))),
    }
}

/// `DELETE /v1/workflows/{name}`: later notifications naming it are refused; those accepted
/// before go on with their steps.
pub(crate) async fn delete_workflow(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = deps.caller(&token)?;
    let tenant = caller.require(Scope::Send)?;
    check_id(&name, "name")?;
    if deps.workflows.delete_workflow(tenant, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no workflow {name:?}")))
    }
}

/// `PUT /v1/frequency-caps`: replaces the tenant's caps; sends from now on are held to them.
pub(crate) async fn put_caps(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    body: Bytes,
) -> Result<Json<CapSettings>, ApiError> {
    let caller = deps.caller(&token)?;
    let tenant = caller.require(Scope::Send)?;
    let settings = CapSettings::parse(&parse_json(&body)?)?;
    deps.caps.set_caps(tenant, &settings).await?;
    Ok(Json(settings))
}

/// `GET /v1/frequency-caps`: the tenant's caps (none: an empty list).
pub(crate) async fn get_caps(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
) -> Result<Json<CapSettings>, ApiError> {
    let caller = deps.caller(&token)?;
    let tenant = caller.require(Scope::Send)?;
    Ok(Json(deps.caps.caps(tenant).await?))
}
