//! The device routes: an app registers the token APNs or FCM gave it
//! (`PUT /v1/users/{user}/devices/{token}`), lists (`GET …/devices`) and removes
//! (`DELETE …/devices/{token}`) them. A user's own token or a service's with
//! `herald/contacts` may. herald makes (or reuses, or re-enables) the SNS platform endpoint
//! on the application configured for the platform, and keeps token → endpoint. Endpoints are
//! never deleted here: one token has one endpoint per application, which another tenant of
//! the stack may have registered too.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use herald::auth::{Scope, VerifiedToken};
use herald::domain::device::{check_token, Device, Platform, Registration};
use herald::http::{parse_json, ApiError};
use herald::ports::{Lifted, Registered};
use herald::{FieldError, StoreError, UserKey};
use serde_json::{json, Value};

use crate::Deps;

/// How often a registration that met a concurrent one reads again before answering 409.
const REGISTER_ATTEMPTS: usize = 3;

/// The SNS platform applications devices are registered on (`APNS_APPLICATION_ARN`,
/// `APNS_SANDBOX_APPLICATION_ARN`, `FCM_APPLICATION_ARN`; empty: not configured).
#[derive(Debug, Clone, Default)]
pub struct PushApps {
    pub apns: Option<String>,
    pub apns_sandbox: Option<String>,
    pub fcm: Option<String>,
}

impl PushApps {
    pub fn from_vars(vars: &herald::config::Vars) -> Self {
        let arn = |name: &str| vars.optional(name).filter(|v| !v.trim().is_empty());
        Self {
            apns: arn("APNS_APPLICATION_ARN"),
            apns_sandbox: arn("APNS_SANDBOX_APPLICATION_ARN"),
            fcm: arn("FCM_APPLICATION_ARN"),
        }
    }

    /// The application of `platform`, or a 400 naming `field` when the stack has none.
    pub fn of(&self, platform: Platform, field: &str) -> Result<&str, FieldError> {
        let (arn, parameter) = match platform {
            Platform::Apns => (&self.apns, "ApnsApplicationArn"),
            Platform::ApnsSandbox => (&self.apns_sandbox, "ApnsSandboxApplicationArn"),
            Platform::Fcm => (&self.fcm, "FcmApplicationArn"),
        };
        arn.as_deref().ok_or_else(|| {
            FieldError::new(
                "platform_not_configured",
                field,
                format!(
                    "no SNS platform application for {} is configured (the stack's {parameter})",
                    platform.as_str()
                ),
            )
        })
    }
}

/// Registers `token` as `user`'s device on `platform`: the SNS endpoint first (made or
/// reused, enabled), then the registry, retried when a concurrent registration moved it.
/// An endpoint enabled again leaves the tenant's suppression list too (deliver suppressed it
/// when the provider refused the token; the app now has a valid one).
pub(crate) async fn register_device(
    deps: &Deps,
    user: &UserKey,
    token: &str,
    registration: Registration,
) -> Result<(Device, Registered), ApiError> {
    let application = deps.push_apps.of(registration.platform, "platform")?;
    let endpoint_arn = deps
        .endpoints
        .endpoint_for(application, token)
        .await
        .map_err(refused_token)?;
    let device = Device {
        token: token.to_owned(),
        platform: registration.platform,
        app: registration.app,
        endpoint_arn,
        registered_at: jiff::Timestamp::now(),
    };
    let registered = crate::retry_contended(deps, REGISTER_ATTEMPTS, || {
        deps.devices.register(&user.tenant, &user.user, &device)
    })
    .await?;
    let address = device.endpoint_arn.to_ascii_lowercase();
    if let Lifted::Removed(_) = deps
        .suppressions
        .lift(
            &user.tenant,
            &address,
            "device-registration",
            Some("the device registered again; its endpoint is enabled"),
        )
        .await?
    {
        tracing::info!(tenant = %user.tenant, "a re-registered device's endpoint is no longer suppressed");
    }
    Ok((device, registered))
}

/// A token the platform refused (SNS `InvalidParameter`: not a token of that platform) is
/// bad input, not a fault.
fn refused_token(error: StoreError) -> ApiError {
    match &error {
        StoreError::Call { error: call, .. }
            if call
                .code
                .as_deref()
                .is_some_and(|c| c.starts_with("InvalidParameter")) =>
        {
            FieldError::new(
                "invalid_token",
                "token",
                format!("the platform refused this token: {}", call.description),
            )
            .into()
        }
        _ => error.into(),
    }
}

/// `PUT /v1/users/{user}/devices/{token}`: 201 when the token is new to the user, else 200.
pub(crate) async fn put_device(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path((user, device_token)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Contacts)?;
    check_token(&device_token, "token")?;
    let registration = Registration::parse(&parse_json(&body)?)?;
    let (device, registered) = register_device(&deps, &user, &device_token, registration).await?;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"device": device, "evicted": registered.evicted.len()})),
    ))
}

/// `GET /v1/users/{user}/devices`: the user's devices, oldest first.
pub(crate) async fn list_devices(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Contacts)?;
    let devices = deps.devices.devices(&user.tenant, &user.user).await?;
    Ok(Json(json!({ "devices": devices })))
}

/// `DELETE /v1/users/{user}/devices/{token}`: the device is gone (its endpoint stays, as
/// another tenant may push to the same token).
pub(crate) async fn delete_device(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path((user, device_token)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Contacts)?;
    check_token(&device_token, "token")?;
    let Some(device) = deps
        .devices
        .remove(&user.tenant, &user.user, &device_token)
        .await?
    else {
        return Err(ApiError::NotFound(format!(
            "user {} has no such device",
            user.user
        )));
    };
    Ok(Json(json!({ "removed": device })))
}
