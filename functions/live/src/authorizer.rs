//! `$connect`'s REQUEST authorizer. Browsers cannot set headers on a WebSocket, so the
//! user's token rides the query string (`?token=<JWT>`); an `Authorization: Bearer` header
//! is taken too. The token is checked as the HTTP API checks it (signature against the
//! issuer's JWKS, issuer, audience, expiry), then its tenant and user are read with the same
//! claims the HTTP API uses. Anything else is `Unauthorized` (API Gateway answers 401 and
//! never opens the socket).

use std::sync::Arc;

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use herald::auth::{AuthSettings, Scope, VerifiedToken};
use herald::UserId;
use serde::Serialize;

use crate::jwks::{CachedKeys, HttpKeySource, KeySource};
use crate::AuthorizerConfig;

/// The one error API Gateway turns into a 401 for a Lambda authorizer.
#[derive(Debug, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;

/// The authorizer's answer: allow this connection, with whose it is as its context.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allow {
    pub principal_id: String,
    pub policy_document: serde_json::Value,
    /// `tenant` and `user`: what every later route of this connection reads.
    pub context: ConnectionContext,
}

/// Whose connection it is; API Gateway hands it to `$connect`, `$default` and
/// `$disconnect` as `requestContext.authorizer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConnectionContext {
    pub tenant: String,
    pub user: String,
}

pub struct Authorizer {
    keys: CachedKeys,
    auth: AuthSettings,
}

impl Authorizer {
    pub fn new(config: &AuthorizerConfig, source: Arc<dyn KeySource>) -> Self {
        Self {
            keys: CachedKeys::new(source, &config.issuer, &config.audiences),
            auth: config.auth.clone(),
        }
    }

    /// The issuer's keys fetched from `JWKS_URL`.
    pub fn from_config(config: &AuthorizerConfig) -> Self {
        Self::new(config, Arc::new(HttpKeySource::new(&config.jwks_url)))
    }

    pub async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<Allow, Unauthorized> {
        let token = request
            .query_string_parameters
            .first("token")
            .map(str::to_owned)
            .or_else(|| {
                request
                    .headers
                    .get("authorization")
                    .and_then(|h| h.to_str().ok())
                    .and_then(herald::jwt::bearer)
                    .map(str::to_owned)
            })
            .ok_or(Unauthorized)?;
        let claims = self.keys.verify(&token).await.map_err(|e| {
            tracing::info!(reason = %e, "live connection refused");
            Unauthorized
        })?;
        let caller = self
            .auth
            .caller(&VerifiedToken {
                claims,
                scopes: None,
            })
            .map_err(|e| {
                tracing::info!(reason = %e, "live connection refused: no tenant");
                Unauthorized
            })?;
        // The feed is one user's: a service's token (it holds herald's scopes) or one that
        // names no valid user id opens nothing.
        if Scope::ALL.iter().any(|scope| caller.has(*scope)) {
            tracing::info!("live connection refused: a service token");
            return Err(Unauthorized);
        }
        let user = caller
            .subject
            .as_deref()
            .and_then(|s| UserId::parse(s, "user").ok())
            .ok_or_else(|| {
                tracing::info!("live connection refused: the token names no user");
                Unauthorized
            })?;
        let resource = request.method_arn.clone().unwrap_or_else(|| "*".into());
        Ok(Allow {
            principal_id: user.to_string(),
            policy_document: serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}]
            }),
            context: ConnectionContext {
                tenant: caller.tenant.to_string(),
                user: user.to_string(),
            },
        })
    }
}
