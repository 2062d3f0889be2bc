//! Bearer tokens checked as API Gateway's JWT authorizer checks them: RS256 signature
//! against the issuer's JWKS, issuer, audience, expiry. The WebSocket authorizer (API
//! Gateway has JWT authorizers for HTTP APIs only) and the local authorizer both use it.

use std::collections::HashMap;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Why a token was refused (the text goes to logs, never to the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token")]
    Missing,
    #[error("not a JWT: {0}")]
    Malformed(String),
    /// Its `kid` is not in the JWKS (a rotated key: fetch the JWKS again).
    #[error("the token's key is not in the JWKS")]
    UnknownKey,
    #[error("the token did not verify: {0}")]
    Invalid(String),
    #[error("the JWKS is unusable: {0}")]
    Jwks(String),
}

/// The keys and rules tokens are checked against.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl JwtVerifier {
    /// Keys from `jwks`; tokens must name `issuer` and one of `audiences` (`aud`, or the
    /// `client_id` of a Cognito access token, as API Gateway accepts either).
    pub fn new(jwks: &JwkSet, issuer: &str, audiences: &[String]) -> Result<Self, TokenError> {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // Tokens are RS256: only RSA keys can verify them.
            if !matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
            ) {
                continue;
            }
            // A key of a kind this verifier does not use (an encryption key, another
            // algorithm) is left out; the rest of the set still verifies.
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(e) => tracing::warn!(kid, error = %e, "a JWKS key left out"),
            }
        }
        if keys.is_empty() {
            return Err(TokenError::Jwks("no usable key (RS256 with a kid)".into()));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        // The audience is checked below, against `aud` or `client_id`.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.aud = Some(audiences.iter().cloned().collect());
        Ok(Self { keys, validation })
    }

    /// The verified claims, flattened to strings as API Gateway passes them on.
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Malformed(e.to_string()))?
            .kid
            .ok_or_else(|| TokenError::Malformed("the token names no key (kid)".into()))?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let wanted = self.validation.aud.as_ref();
        let audience_ok = wanted.is_none_or(|wanted| {
            let named = |claim: &str| match data.claims.get(claim) {
                Some(Value::String(one)) => wanted.contains(one),
                Some(Value::Array(many)) => many
                    .iter()
                    .any(|a| a.as_str().is_some_and(|a| wanted.contains(a))),
                _ => false,
            };
            named("aud") || named("client_id")
        });
        if !audience_ok {
            return Err(TokenError::Invalid("InvalidAudience".into()));
        }
        Ok(data
            .claims
            .into_iter()
            .map(|(name, value)| (name, flatten_claim(&value)))
            .collect())
    }
}

/// `Authorization: Bearer <JWT>`'s token.
pub fn bearer(header: &str) -> Option<&str> {
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}

/// API Gateway's rendering of a claim: strings as they are, arrays as `[a b]`, the rest as
/// JSON text.
fn flatten_claim(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(flatten_claim)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_without_a_usable_key_is_refused_and_unusable_keys_are_left_out() {
        let symmetric: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "", "y": ""}
        ]}))
        .unwrap();
        let refused = JwtVerifier::new(&symmetric, "https://issuer", &["aud".into()]);
        assert!(matches!(refused, Err(TokenError::Jwks(_))));
        assert_eq!(
            bearer("Bearer abc.def.ghi"),
            Some("abc.def.ghi"),
            "the header's token"
        );
        assert_eq!(bearer("Basic xyz"), None);
    }
}
