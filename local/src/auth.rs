//! Local tokens, really signed: the issuer `cargo xtask dev` and `cargo xtask token` share
//! (an RS256 key pair made on first start, kept in `.herald/jwt/`, its JWKS served by the
//! local API), and the local authorizer, which checks a bearer token as API Gateway's JWT
//! authorizer does (signature against the JWKS, issuer, audience, expiry) and hands the
//! handlers the same request context.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use herald::auth::{jwt_request_context, Scope};
use herald::http::ApiError;
use herald::jwt::JwtVerifier;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

/// The issuer of local tokens (a name: nothing is fetched from it).
pub const LOCAL_ISSUER: &str = "https://auth.herald.localhost";
/// The audience local tokens carry and the local authorizer requires.
pub const LOCAL_AUDIENCE: &str = "herald";
/// The claim local tokens name the tenant in (the template's `TenantClaim` default).
pub const TENANT_CLAIM: &str = herald::auth::DEFAULT_TENANT_CLAIM;
/// The subject of local service tokens.
pub const SERVICE_SUBJECT: &str = "local-service";

/// A signing key and its public half as a JWKS.
#[derive(Clone)]
pub struct LocalIssuer {
    key: Arc<EncodingKey>,
    kid: String,
    jwks: JwkSet,
}

/// What a token says; tests bend each field to make a bad one.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    pub tenant: Option<String>,
    pub scopes: Vec<String>,
    /// Seconds from now; negative: already expired.
    pub expires_in: i64,
}

impl LocalIssuer {
    /// The key in `dir`, made there first when there is none (`cargo xtask dev`, `cargo
    /// xtask token`).
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join("private-key.pem");
        if !path.exists() {
            std::fs::create_dir_all(dir)?;
            let pem = pkcs8_pem(&generate_pkcs8()?);
            write_private(&path, &pem)?;
        }
        let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_pem(&pem).with_context(|| format!("{} is not an RSA key", path.display()))
    }

    /// A new key, in memory only.
    pub fn generate() -> Result<Self> {
        Self::from_pem(pkcs8_pem(&generate_pkcs8()?).as_bytes())
    }

    /// One key made per process and kept in memory: tests sign with it, their local
    /// runners trust it.
    pub fn ephemeral() -> Self {
        static ISSUER: OnceLock<LocalIssuer> = OnceLock::new();
        ISSUER
            .get_or_init(|| Self::generate().expect("RSA key generation"))
            .clone()
    }

    fn from_pem(pem: &[u8]) -> Result<Self> {
        let key = EncodingKey::from_rsa_pem(pem)?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)?;
        // The key id: a digest of the public key, so a new key gets a new id.
        let kid = {
            let digest = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                serde_json::to_string(&jwk.algorithm)?.as_bytes(),
            );
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12])
        };
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(Self {
            key: Arc::new(key),
            kid,
            jwks: JwkSet { keys: vec![jwk] },
        })
    }

    /// The public keys, as `/.well-known/jwks.json` serves them.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// A user's token: subject `user`, tenant `tenant`, no scopes; valid for an hour.
    pub fn user(&self, tenant: &str, user: &str) -> TokenSpec {
        TokenSpec {
            issuer: LOCAL_ISSUER.into(),
            audience: LOCAL_AUDIENCE.into(),
            subject: user.into(),
            tenant: Some(tenant.into()),
            scopes: Vec::new(),
            expires_in: 3600,
        }
    }

    /// A service's token of `tenant` with every herald scope; valid for an hour.
    pub fn service(&self, tenant: &str) -> TokenSpec {
        TokenSpec {
            subject: SERVICE_SUBJECT.into(),
            scopes: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
            ..self.user(tenant, SERVICE_SUBJECT)
        }
    }

    /// The signed token (RS256, with this key's id).
    pub fn sign(&self, spec: &TokenSpec) -> String {
        let now = jiff::Timestamp::now().as_second();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(spec.issuer));
        claims.insert("aud".into(), json!(spec.audience));
        claims.insert("sub".into(), json!(spec.subject));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now - 5));
        claims.insert("exp".into(), json!(now + spec.expires_in));
        claims.insert("jti".into(), json!(ulid::Ulid::new().to_string()));
        if let Some(tenant) = &spec.tenant {
            claims.insert(TENANT_CLAIM.into(), json!(tenant));
        }
        if !spec.scopes.is_empty() {
            claims.insert("scope".into(), json!(spec.scopes.join(" ")));
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("RS256 signing with a valid key")
    }

    /// The authorizer that trusts this issuer's keys.
    pub fn authorizer(&self) -> LocalAuthorizer {
        LocalAuthorizer::new(&self.jwks, LOCAL_ISSUER, LOCAL_AUDIENCE)
            .expect("this issuer's own JWKS is usable")
    }
}

/// Checks bearer tokens as API Gateway's JWT authorizer does (`herald::jwt`, which the
/// live feed's WebSocket authorizer uses too).
#[derive(Clone)]
pub struct LocalAuthorizer {
    verifier: Arc<JwtVerifier>,
}

impl LocalAuthorizer {
    pub fn new(jwks: &JwkSet, issuer: &str, audience: &str) -> Result<Self> {
        Ok(Self {
            verifier: Arc::new(JwtVerifier::new(jwks, issuer, &[audience.to_owned()])?),
        })
    }

    /// The verified claims, flattened to strings as API Gateway passes them on.
    pub fn verify(&self, authorization: Option<&str>) -> Result<HashMap<String, String>, String> {
        let header = authorization.ok_or("no Authorization header")?;
        let token = herald::jwt::bearer(header).ok_or("Authorization must be `Bearer <JWT>`")?;
        self.verifier.verify(token).map_err(|e| e.to_string())
    }

    /// Axum middleware: 401 JSON for a token that does not verify; otherwise the request
    /// goes on with the authorizer's request context, as behind API Gateway.
    pub async fn layer(self, mut request: Request, next: Next) -> Response {
        let authorization = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.verify(authorization) {
            Ok(claims) => {
                request
                    .extensions_mut()
                    .insert(jwt_request_context(claims, None));
                next.run(request).await
            }
            Err(reason) => ApiError::Unauthorized(reason).into_response(),
        }
    }
}

fn generate_pkcs8() -> Result<Vec<u8>> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("RSA keygen"))?;
    let der = pair
        .as_der()
        .map_err(|_| anyhow::anyhow!("RSA key encoding"))?;
    Ok(der.as_ref().to_vec())
}

fn pkcs8_pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// Writes the private key readable by its owner only.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// `token` with its tenant claim rewritten (to `other-<tenant>`, or set when absent) and the
/// signature kept: what a caller who edits a token to reach another tenant sends.
pub fn tampered(token: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let payload = engine
        .decode(parts.get(1).copied().unwrap_or_default())
        .unwrap_or_default();
    let mut claims: Map<String, Value> = serde_json::from_slice(&payload).unwrap_or_default();
    let tenant = claims
        .get(TENANT_CLAIM)
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_owned();
    claims.insert(TENANT_CLAIM.into(), json!(format!("other-{tenant}")));
    format!(
        "{}.{}.{}",
        parts.first().copied().unwrap_or_default(),
        engine.encode(Value::Object(claims).to_string()),
        parts.get(2).copied().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_every_defect_is_refused() {
        let issuer = LocalIssuer::ephemeral();
        let authorizer = issuer.authorizer();
        let good = issuer.sign(&issuer.user("t1", "u1"));
        let claims = authorizer.verify(Some(&format!("Bearer {good}"))).unwrap();
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims[TENANT_CLAIM], "t1");
        let service = issuer.sign(&issuer.service("t1"));
        let claims = authorizer
            .verify(Some(&format!("Bearer {service}")))
            .unwrap();
        assert!(claims["scope"].contains("herald/inbox"));

        let bad = [
            issuer.sign(&TokenSpec {
                expires_in: -3600,
                ..issuer.user("t1", "u1")
            }),
            issuer.sign(&TokenSpec {
                issuer: "https://evil.example".into(),
                ..issuer.user("t1", "u1")
            }),
            issuer.sign(&TokenSpec {
                audience: "other".into(),
                ..issuer.user("t1", "u1")
            }),
            tampered(&good),
            "garbage".into(),
        ];
        for token in bad {
            assert!(
                authorizer.verify(Some(&format!("Bearer {token}"))).is_err(),
                "{token}"
            );
        }
        assert!(authorizer.verify(None).is_err());
        assert!(authorizer.verify(Some(&good)).is_err(), "no Bearer prefix");
    }
}
