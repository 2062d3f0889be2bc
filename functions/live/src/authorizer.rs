//! `$connect`'s REQUEST authorizer. Browsers cannot set headers on a WebSocket, so the
//! user's token rides the query string (`?token=<JWT>`, the route's identity source). The
//! token is checked as the HTTP API checks it (signature against the issuer's JWKS, issuer,
//! audience, expiry), then its tenant and user are read with the same claims the HTTP API
//! uses. A token that does not pass gets a `Deny` policy: API Gateway answers 403 and opens
//! no socket, and a refusal is an answer, not a function error (the error alarm, which also
//! rolls deploys back, stays for real failures: the issuer's keys out of reach).

use std::sync::Arc;

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use herald::auth::{AuthSettings, Scope, VerifiedToken};
use herald::jwt::TokenError;
use herald::UserId;
use serde::Serialize;

use crate::jwks::{CachedKeys, HttpKeySource, KeySource};
use crate::AuthorizerConfig;

/// The issuer's keys could not be had: the invocation fails (API Gateway answers 500).
#[derive(Debug, thiserror::Error)]
#[error("the issuer's keys are unavailable: {0}")]
pub struct KeysUnavailable(String);

/// The authorizer's answer: an IAM policy for this connection, with whose it is as the
/// context when it allows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub principal_id: String,
    pub policy_document: serde_json::Value,
    /// `tenant` and `user`: what every later route of this connection reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<ConnectionContext>,
}

impl Policy {
    fn new(
        principal: &str,
        effect: &str,
        resource: &str,
        context: Option<ConnectionContext>,
    ) -> Self {
        Self {
            principal_id: principal.to_owned(),
            policy_document: serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]
            }),
            context,
        }
    }

    /// The connection's owner when the policy allows it.
    pub fn allowed(&self) -> Option<&ConnectionContext> {
        self.context.as_ref()
    }
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

    /// The issuer's keys fetched from `JWKS_URL`, or found by OIDC discovery.
    pub fn from_config(config: &AuthorizerConfig) -> Self {
        let source = match &config.jwks_url {
            Some(url) => HttpKeySource::at(url),
            None => HttpKeySource::discovered(&config.issuer),
        };
        Self::new(config, Arc::new(source))
    }

    pub async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<Policy, KeysUnavailable> {
        let resource = request.method_arn.as_deref().unwrap_or("*");
        let deny = |reason: &str| {
            tracing::info!(reason, "live connection refused");
            Ok(Policy::new("anonymous", "Deny", resource, None))
        };
        let Some(token) = request.query_string_parameters.first("token") else {
            return deny("no token");
        };
        let claims = match self.keys.verify(token).await {
            Ok(claims) => claims,
            Err(TokenError::Jwks(e)) => return Err(KeysUnavailable(e)),
            Err(e) => return deny(&e.to_string()),
        };
        let Ok(caller) = self.auth.caller(&VerifiedToken {
            claims,
            scopes: None,
        }) else {
            return deny("no valid tenant claim");
        };
        // The feed is one user's: a service's token (it holds herald's scopes) or one that
        // names no valid user id opens nothing.
        if Scope::ALL.iter().any(|scope| caller.has(*scope)) {
            return deny("a service token");
        }
        let Some(user) = caller
            .subject
            .as_deref()
            .and_then(|s| UserId::parse(s, "user").ok())
        else {
            return deny("the token names no user");
        };
        Ok(Policy::new(
            user.as_str(),
            "Allow",
            resource,
            Some(ConnectionContext {
                tenant: caller.tenant.to_string(),
                user: user.to_string(),
            }),
        ))
    }
}
