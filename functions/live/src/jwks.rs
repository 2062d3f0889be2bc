//! The issuer's keys: fetched over HTTPS (the TLS stack the SDKs already link) from
//! `JWKS_URL`, or found by OIDC discovery from the issuer, when first needed; kept for an
//! hour, and fetched again early when a token names a key the set does not hold (the issuer
//! rotated), at most once a minute so bad tokens cannot make us hammer the issuer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald::jwt::{JwtVerifier, TokenError};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use jiff::Timestamp;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::Mutex;

/// How long a fetched key set is trusted.
const KEYS_FOR: Duration = Duration::from_secs(3600);
/// The soonest a token with an unknown key fetches the set again.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// A JWKS larger than this is not a JWKS.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Where the key set comes from.
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn fetch(&self) -> Result<JwkSet, TokenError>;
}

/// The keys over HTTPS (or HTTP, for the local issuer): from a JWKS URL, or found as API
/// Gateway's JWT authorizer finds them, by OIDC discovery (`<issuer>/.well-known/
/// openid-configuration`'s `jwks_uri`).
pub struct HttpKeySource {
    at: KeysAt,
}

enum KeysAt {
    Jwks(String),
    Issuer(String),
}

impl HttpKeySource {
    /// The JWKS at `url`.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            at: KeysAt::Jwks(url.into()),
        }
    }

    /// The JWKS `issuer`'s discovery document names.
    pub fn discovered(issuer: &str) -> Self {
        Self {
            at: KeysAt::Issuer(issuer.trim_end_matches('/').to_owned()),
        }
    }
}

/// `GET url` as JSON, bounded in time and size.
async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, TokenError> {
    let failed = |e: &dyn std::fmt::Display| TokenError::Jwks(format!("{url}: {e}"));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| failed(&e))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(https);
    let uri: hyper::Uri = url.parse().map_err(|e| failed(&e))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .map_err(|e| failed(&e))?
        .map_err(|e| failed(&e))?;
    if !response.status().is_success() {
        return Err(failed(&response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| failed(&e))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| failed(&e))
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<JwkSet, TokenError> {
        match &self.at {
            KeysAt::Jwks(url) => get_json(url).await,
            KeysAt::Issuer(issuer) => {
                #[derive(serde::Deserialize)]
                struct Discovery {
                    jwks_uri: String,
                }
                let discovery: Discovery =
                    get_json(&format!("{issuer}/.well-known/openid-configuration")).await?;
                get_json(&discovery.jwks_uri).await
            }
        }
    }
}

struct Fetched {
    verifier: JwtVerifier,
    at: Timestamp,
}

/// A verifier over the issuer's current keys.
pub struct CachedKeys {
    source: Arc<dyn KeySource>,
    issuer: String,
    audiences: Vec<String>,
    current: Mutex<Option<Fetched>>,
}

impl CachedKeys {
    pub fn new(source: Arc<dyn KeySource>, issuer: &str, audiences: &[String]) -> Self {
        Self {
            source,
            issuer: issuer.to_owned(),
            audiences: audiences.to_vec(),
            current: Mutex::new(None),
        }
    }

    /// The token's claims, flattened as API Gateway passes them.
    pub async fn verify(
        &self,
        token: &str,
    ) -> Result<std::collections::HashMap<String, String>, TokenError> {
        let mut current = self.current.lock().await;
        let now = Timestamp::now();
        let age = |f: &Fetched| now.duration_since(f.at).unsigned_abs();
        if current.as_ref().is_none_or(|f| age(f) > KEYS_FOR) {
            *current = Some(self.fetch(now).await?);
        }
        let fetched = current.as_ref().expect("fetched above");
        match fetched.verifier.verify(token) {
            Err(TokenError::UnknownKey) if age(fetched) > REFETCH_AFTER => {
                *current = Some(self.fetch(now).await?);
                current.as_ref().expect("fetched").verifier.verify(token)
            }
            verified => verified,
        }
    }

    async fn fetch(&self, now: Timestamp) -> Result<Fetched, TokenError> {
        let jwks = self.source.fetch().await?;
        Ok(Fetched {
            verifier: JwtVerifier::new(&jwks, &self.issuer, &self.audiences)?,
            at: now,
        })
    }
}
