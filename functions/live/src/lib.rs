//! live: the live feed. Three Lambdas share this library:
//! - `authorizer` — the WebSocket API's `$connect` REQUEST authorizer: the user's own token
//!   (`?token=`), checked against the issuer's JWKS as the HTTP API's JWT authorizer checks
//!   it; the tenant and user go on in the connection's context; anything else is denied.
//! - `socket` — the routes: `$connect` records the connection, `$disconnect` forgets it,
//!   `$default` answers `ping` and names anything else in an error frame.
//! - `push` — the inbox table's stream: after each commit that changed a user's inbox, one
//!   `update` frame (their counts, read strongly consistent, and the changes) to each of the
//!   user's connections; a connection gone (410) is forgotten.

pub mod authorizer;
pub mod jwks;
pub mod push;
pub mod socket;

#[cfg(test)]
mod tests;

use herald::config::{ConfigError, Vars};

/// The authorizer's settings.
#[derive(Debug, Clone)]
pub struct AuthorizerConfig {
    /// `JWKS_URL`: where the issuer publishes its keys; absent: OIDC discovery from the
    /// issuer, as API Gateway's JWT authorizer does.
    pub jwks_url: Option<String>,
    /// `JWT_ISSUER`: the `iss` tokens must carry.
    pub issuer: String,
    /// `JWT_AUDIENCE`: comma-separated; a token's `aud` or `client_id` must be one of them.
    pub audiences: Vec<String>,
    pub auth: herald::auth::AuthSettings,
}

impl AuthorizerConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            jwks_url: vars.optional("JWKS_URL").filter(|u| !u.trim().is_empty()),
            issuer: vars.required("JWT_ISSUER")?,
            audiences: vars
                .required("JWT_AUDIENCE")?
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
            auth: herald::auth::AuthSettings::from_vars(vars)?,
        })
    }
}

/// The routes' settings.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// `CONNECTIONS_TABLE`.
    pub connections_table: String,
}

impl SocketConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            connections_table: vars.required("CONNECTIONS_TABLE")?,
        })
    }
}

/// The pusher's settings.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// `CONNECTIONS_TABLE`.
    pub connections_table: String,
    /// `INBOX_TABLE`: where the counts are read.
    pub inbox_table: String,
    /// `LIVE_ENDPOINT`: the WebSocket API's stage, where the management API posts frames.
    pub live_endpoint: String,
}

impl PushConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            connections_table: vars.required("CONNECTIONS_TABLE")?,
            inbox_table: vars.required("INBOX_TABLE")?,
            live_endpoint: vars.required("LIVE_ENDPOINT")?,
        })
    }
}
