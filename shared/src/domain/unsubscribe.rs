//! Signed one-click unsubscribe links (RFC 8058) that carry no user id. A link names the
//! tenant, a pseudonym of the user (an HMAC of tenant and user id: nobody without the
//! secret can tell whose it is or make one for a user) and the category, and is signed with
//! HMAC-SHA256 over all three. The directory maps a pseudonym back to its user; it is
//! written with the contact, so every address herald emails has one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{KeyInit, Mac};

use super::ids::{TenantId, UserId};
use super::notification::Category;
use crate::error::FieldError;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The link format's version: a new format gets a new one, old links keep working.
const VERSION: &str = "v1";
/// Separates the parts of a link token; never in an id (`[A-Za-z0-9._:@-]`) or base64url.
const SEPARATOR: char = '~';
/// The least secret we sign with: 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

/// Makes and checks unsubscribe links with one secret.
#[derive(Clone)]
pub struct LinkSigner {
    secret: Vec<u8>,
}

/// What a verified link asks: stop `category` for the user behind `pseudonym`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub tenant: TenantId,
    pub pseudonym: String,
    pub category: Category,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(<secret>)")
    }
}

impl LinkSigner {
    /// `None` when the secret is shorter than 256 bits.
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= MIN_SECRET_BYTES).then(|| Self {
            secret: secret.to_vec(),
        })
    }

    /// The user's pseudonym within the tenant: 128 bits of HMAC, base64url.
    pub fn pseudonym(&self, tenant: &TenantId, user: &UserId) -> String {
        let tag = self.tag(&["pseudonym", tenant.as_str(), user.as_str()]);
        URL_SAFE_NO_PAD.encode(&tag[..16])
    }

    /// The token of the user's link for `category`.
    pub fn token(&self, tenant: &TenantId, user: &UserId, category: Category) -> String {
        let pseudonym = self.pseudonym(tenant, user);
        let category = category_name(category);
        let signature = URL_SAFE_NO_PAD.encode(self.tag(&[
            "unsubscribe",
            VERSION,
            tenant.as_str(),
            &pseudonym,
            category,
        ]));
        [VERSION, tenant.as_str(), &pseudonym, category, &signature].join(&SEPARATOR.to_string())
    }

    /// The request a token makes, if this secret signed it exactly as it is; a 400 naming
    /// `token` for anything forged, altered or malformed.
    pub fn verify(&self, token: &str) -> Result<Unsubscribe, FieldError> {
        let invalid = || {
            FieldError::new(
                "invalid_link",
                "token",
                "this unsubscribe link is not valid; use the link from the email as it is",
            )
        };
        let parts: Vec<&str> = token.split(SEPARATOR).collect();
        let [version, tenant, pseudonym, category, signature] = parts[..] else {
            return Err(invalid());
        };
        if version != VERSION || token.len() > 400 {
            return Err(invalid());
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        let mac = self.mac(&["unsubscribe", version, tenant, pseudonym, category]);
        mac.verify_slice(&signature).map_err(|_| invalid())?;
        Ok(Unsubscribe {
            tenant: TenantId::parse(tenant, "token").map_err(|_| invalid())?,
            pseudonym: pseudonym.to_owned(),
            category: match category {
                "marketing" => Category::Marketing,
                _ => return Err(invalid()),
            },
        })
    }

    fn tag(&self, parts: &[&str]) -> Vec<u8> {
        self.mac(parts).finalize().into_bytes().to_vec()
    }

    /// HMAC over the parts, each length-prefixed so that no two lists sign alike.
    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }
}

fn category_name(category: Category) -> &'static str {
    match category {
        Category::Marketing => "marketing",
        Category::Transactional => "transactional",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> LinkSigner {
        LinkSigner::new(secret.repeat(32).as_bytes()).unwrap()
    }

    fn ids(tenant: &str, user: &str) -> (TenantId, UserId) {
        (
            TenantId::parse(tenant, "t").unwrap(),
            UserId::parse(user, "u").unwrap(),
        )
    }

    #[test]
    fn a_link_verifies_and_names_no_user() {
        let s = signer("k");
        let (tenant, user) = ids("acme", "alice@example.com");
        let token = s.token(&tenant, &user, Category::Marketing);
        assert!(!token.contains("alice"), "{token}");
        let request = s.verify(&token).unwrap();
        assert_eq!(request.tenant, tenant);
        assert_eq!(request.pseudonym, s.pseudonym(&tenant, &user));
        assert_eq!(request.category, Category::Marketing);
    }

    #[test]
    fn forged_altered_and_foreign_links_are_refused() {
        let s = signer("k");
        let (tenant, user) = ids("acme", "u1");
        let token = s.token(&tenant, &user, Category::Marketing);
        let (_, other) = ids("acme", "u2");
        let parts: Vec<&str> = token.split('~').collect();
        let forged = [
            token.replace("acme", "acmf"),
            token.replacen(parts[2], &s.pseudonym(&tenant, &other), 1),
            token.replace("marketing", "transactional"),
            format!("{}A", token),
            token.replace("v1~", "v2~"),
            signer("x").token(&tenant, &user, Category::Marketing),
            String::new(),
            "v1~acme~p~marketing".into(),
            s.token(&tenant, &user, Category::Transactional),
        ];
        for bad in forged {
            let e = s.verify(&bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("token"), "{bad}");
        }
    }

    #[test]
    fn pseudonyms_differ_by_tenant_user_and_secret_and_short_secrets_are_refused() {
        let (t1, u1) = ids("t1", "u1");
        let (t2, u2) = ids("t2", "u2");
        let s = signer("k");
        let all = [
            s.pseudonym(&t1, &u1),
            s.pseudonym(&t2, &u1),
            s.pseudonym(&t1, &u2),
            signer("j").pseudonym(&t1, &u1),
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.len(), 22);
            assert!(all[i + 1..].iter().all(|b| b != a));
        }
        assert!(LinkSigner::new(b"short").is_none());
    }
}
