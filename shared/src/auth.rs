//! Who is calling. API Gateway's JWT authorizer has already checked the token's signature,
//! issuer, audience and expiry when a request reaches a handler; the handler reads the
//! verified claims from the request context and decides what this caller may do: the
//! tenant always comes from a claim, a user token acts only on its own user, and service
//! routes need their scope. The local runner verifies really signed tokens the same way and
//! hands the handlers the same request context.

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

use crate::config::{ConfigError, Vars};
use crate::http::ApiError;
use crate::{TenantId, UserId, UserKey};

/// The OAuth scopes that gate herald's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /v1/notifications`, a notification's delivery status.
    Send,
    /// Campaigns.
    Campaigns,
    /// Any user's contact.
    Contacts,
    /// Any user's inbox: unread counts, messages, read marks.
    Inbox,
    /// The stack's dead-letter queues: list them, read their messages, redrive them. The
    /// queues are the stack's, not a tenant's: an operator's scope, for nobody a tenant
    /// controls.
    DeadLetters,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Send,
        Scope::Campaigns,
        Scope::Contacts,
        Scope::Inbox,
        Scope::DeadLetters,
    ];

    /// What a tenant's operator may hold: all but the stack's own dead letters.
    pub const TENANT: [Scope; 4] = [Scope::Send, Scope::Campaigns, Scope::Contacts, Scope::Inbox];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "herald/send",
            Scope::Campaigns => "herald/campaigns",
            Scope::Contacts => "herald/contacts",
            Scope::Inbox => "herald/inbox",
            Scope::DeadLetters => "herald/dead-letters",
        }
    }
}

/// Which claims name the tenant and the user, read once from the environment.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `TENANT_CLAIM` (default `custom:tenant`). Empty: a single-tenant deployment where
    /// every caller is in `DEFAULT_TENANT`.
    pub tenant_claim: Option<String>,
    /// `USER_CLAIM` (default `sub`): the claim of a user token that holds the user id.
    pub user_claim: String,
    /// `DEFAULT_TENANT`: the one tenant when `TENANT_CLAIM` is empty.
    pub default_tenant: TenantId,
    /// `OPERATOR_GROUP`: members of this Cognito group (the `cognito:groups` claim of an ID
    /// token, as the console's sign-in gets) hold the tenant scopes ([`Scope::TENANT`]).
    /// Unset: no group grants any.
    pub operator_group: Option<String>,
    /// `STACK_OPERATOR_GROUP`: members hold every scope, the stack's dead letters included.
    pub stack_operator_group: Option<String>,
}

/// A group variable, unset when empty.
fn group(vars: &Vars, name: &str) -> Option<String> {
    vars.optional(name)
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
}

/// The claim Cognito lists a user's groups in.
pub const GROUPS_CLAIM: &str = "cognito:groups";

pub const DEFAULT_TENANT_CLAIM: &str = "custom:tenant";

impl AuthSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let tenant_claim = match vars.0.get("TENANT_CLAIM") {
            None => Some(DEFAULT_TENANT_CLAIM.to_owned()),
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_owned()),
        };
        Ok(Self {
            tenant_claim,
            user_claim: vars.optional("USER_CLAIM").unwrap_or_else(|| "sub".into()),
            default_tenant: vars.default_tenant()?,
            operator_group: group(vars, "OPERATOR_GROUP"),
            stack_operator_group: group(vars, "STACK_OPERATOR_GROUP"),
        })
    }

    /// The caller the verified claims describe, or 403 when they name no valid tenant.
    pub fn caller(&self, token: &VerifiedToken) -> Result<Caller, ApiError> {
        let tenant = match &self.tenant_claim {
            None => self.default_tenant.clone(),
            Some(claim) => {
                let raw = token.claims.get(claim).ok_or_else(|| {
                    ApiError::Forbidden(format!("the token has no tenant claim `{claim}`"))
                })?;
                TenantId::parse(raw, claim).map_err(|e| {
                    ApiError::Forbidden(format!(
                        "the token's tenant claim is invalid: {}",
                        e.message
                    ))
                })?
            }
        };
        let member = |group: &Option<String>| {
            group.as_deref().is_some_and(|group| {
                token
                    .claims
                    .get(GROUPS_CLAIM)
                    .is_some_and(|groups| claim_list(groups).any(|g| g == group))
            })
        };
        let granted: &[Scope] = if member(&self.stack_operator_group) {
            &Scope::ALL
        } else if member(&self.operator_group) {
            &Scope::TENANT
        } else {
            &[]
        };
        let mut scopes = token.scopes();
        for scope in granted {
            if !scopes.iter().any(|s| s == scope.as_str()) {
                scopes.push(scope.as_str().to_owned());
            }
        }
        Ok(Caller {
            tenant,
            subject: token.claims.get(&self.user_claim).cloned(),
            scopes,
        })
    }
}

/// The claims API Gateway's JWT authorizer verified, as the request context carries them:
/// every claim a string, and the scopes when the route asked for some.
#[derive(Debug, Clone, Default)]
pub struct VerifiedToken {
    pub claims: HashMap<String, String>,
    pub scopes: Option<Vec<String>>,
}

impl VerifiedToken {
    /// Scopes from the context, else from the `scope` claim (space separated, OAuth 2.0) or
    /// `scp` (an array, which API Gateway flattens to `[a b]`).
    fn scopes(&self) -> Vec<String> {
        if let Some(scopes) = self.scopes.as_ref().filter(|s| !s.is_empty()) {
            return scopes.clone();
        }
        ["scope", "scp"]
            .iter()
            .filter_map(|name| self.claims.get(*name))
            .flat_map(|raw| claim_list(raw).map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }
}

/// The items of a list claim as API Gateway hands it over: space separated (OAuth 2.0's
/// `scope`), or an array flattened to `[a b]` (or `["a","b"]`).
fn claim_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(|c: char| c.is_whitespace() || c == ',')
        .map(|s| s.trim_matches(|c| c == '[' || c == ']' || c == '"'))
        .filter(|s| !s.is_empty())
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = ApiError;

    /// 401 when the request carries no verified token: never trust a request that did not
    /// pass the authorizer (`sam local start-api`, for one, skips JWT authorizers).
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let jwt: Option<&ApiGatewayRequestAuthorizerJwtDescription> =
            match parts.extensions.get::<RequestContext>() {
                Some(RequestContext::ApiGatewayV2(context)) => {
                    context.authorizer.as_ref().and_then(|a| a.jwt.as_ref())
                }
                _ => None,
            };
        match jwt {
            Some(jwt) if !jwt.claims.is_empty() => Ok(Self {
                claims: jwt.claims.clone(),
                scopes: jwt.scopes.clone(),
            }),
            _ => Err(ApiError::Unauthorized(
                "a valid bearer token is required (Authorization: Bearer <JWT>)".into(),
            )),
        }
    }
}

/// The request context API Gateway hands a function after its JWT authorizer accepted a
/// token: what the local runner attaches once it has verified a token itself, and what
/// unit tests attach to stand for one.
pub fn jwt_request_context(
    claims: HashMap<String, String>,
    scopes: Option<Vec<String>>,
) -> RequestContext {
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = claims;
    jwt.scopes = scopes;
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.authorizer = Some(authorizer);
    RequestContext::ApiGatewayV2(context)
}

/// Claims from `(name, value)` pairs, for tests and fixtures.
pub fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A caller: its tenant, the user its token names (a service token names itself) and the
/// scopes it was granted.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub subject: Option<String>,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s == scope.as_str())
    }

    /// The caller's tenant when it holds `scope`; 403 otherwise.
    pub fn require(&self, scope: Scope) -> Result<&TenantId, ApiError> {
        if self.has(scope) {
            Ok(&self.tenant)
        } else {
            Err(ApiError::Forbidden(format!(
                "this route needs a token with the scope {}",
                scope.as_str()
            )))
        }
    }

    /// The user `raw` of the caller's tenant, when the caller is that user or holds `scope`.
    pub fn user(&self, raw: &str, scope: Scope) -> Result<UserKey, ApiError> {
        let user = UserId::parse(raw, "user")?;
        if self.subject.as_deref() == Some(user.as_str()) || self.has(scope) {
            Ok(UserKey {
                tenant: self.tenant.clone(),
                user,
            })
        } else {
            Err(ApiError::Forbidden(format!(
                "only user {user}'s own token, or a token with the scope {}, may do this",
                scope.as_str()
            )))
        }
    }

    /// The user `raw` when a token with `scope` asks (users themselves may not).
    pub fn user_for_service(&self, raw: &str, scope: Scope) -> Result<UserKey, ApiError> {
        let user = UserId::parse(raw, "user")?;
        self.require(scope)?;
        Ok(UserKey {
            tenant: self.tenant.clone(),
            user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tenant_claim: Option<&str>) -> AuthSettings {
        let mut vars = Vars::default();
        if let Some(claim) = tenant_claim {
            vars.0.insert("TENANT_CLAIM".into(), claim.into());
        }
        AuthSettings::from_vars(&vars).unwrap()
    }

    fn token(pairs: &[(&str, &str)]) -> VerifiedToken {
        VerifiedToken {
            claims: claims(pairs),
            scopes: None,
        }
    }

    #[test]
    fn tenant_comes_from_the_configured_claim_and_nowhere_else() {
        let caller = settings(None)
            .caller(&token(&[("custom:tenant", "acme"), ("sub", "u1")]))
            .unwrap();
        assert_eq!(caller.tenant.as_str(), "acme");
        let missing = settings(None).caller(&token(&[("sub", "u1")]));
        assert!(matches!(missing, Err(ApiError::Forbidden(_))));
        let bad = settings(None).caller(&token(&[("custom:tenant", "a#b"), ("sub", "u1")]));
        assert!(matches!(bad, Err(ApiError::Forbidden(_))));
        let single = settings(Some(""))
            .caller(&token(&[("custom:tenant", "acme"), ("sub", "u1")]))
            .unwrap();
        assert_eq!(single.tenant.as_str(), "default");
        let other_claim = settings(Some("org"))
            .caller(&token(&[("org", "o1")]))
            .unwrap();
        assert_eq!(other_claim.tenant.as_str(), "o1");
    }

    #[test]
    fn a_user_token_acts_only_on_its_own_user_and_scopes_open_service_routes() {
        let s = settings(None);
        let user = s
            .caller(&token(&[("custom:tenant", "t"), ("sub", "u1")]))
            .unwrap();
        assert_eq!(user.user("u1", Scope::Inbox).unwrap().user.as_str(), "u1");
        assert!(matches!(
            user.user("u2", Scope::Inbox),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            user.require(Scope::Send),
            Err(ApiError::Forbidden(_))
        ));
        assert!(user.user_for_service("u1", Scope::Contacts).is_err());

        let service = s
            .caller(&token(&[
                ("custom:tenant", "t"),
                ("sub", "svc"),
                ("scope", "herald/send herald/inbox"),
            ]))
            .unwrap();
        assert_eq!(
            service.user("u2", Scope::Inbox).unwrap().tenant.as_str(),
            "t"
        );
        assert!(service.require(Scope::Send).is_ok());
        assert!(service.require(Scope::Contacts).is_err());
        let scp = s
            .caller(&token(&[
                ("custom:tenant", "t"),
                ("scp", "[herald/contacts herald/send]"),
            ]))
            .unwrap();
        assert!(scp.has(Scope::Contacts) && scp.has(Scope::Send));
        let from_context = VerifiedToken {
            scopes: Some(vec!["herald/campaigns".into()]),
            ..token(&[("custom:tenant", "t")])
        };
        assert!(s.caller(&from_context).unwrap().has(Scope::Campaigns));
    }

    #[test]
    fn operators_hold_the_tenant_scopes_and_stack_operators_the_dead_letters_too() {
        let mut vars = Vars::default();
        vars.0
            .insert("OPERATOR_GROUP".into(), "herald-operators".into());
        vars.0.insert(
            "STACK_OPERATOR_GROUP".into(),
            "herald-stack-operators".into(),
        );
        let s = AuthSettings::from_vars(&vars).unwrap();
        let stack_operator = s
            .caller(&token(&[
                ("custom:tenant", "t"),
                ("cognito:groups", "[herald-stack-operators]"),
            ]))
            .unwrap();
        assert!(Scope::ALL.iter().all(|scope| stack_operator.has(*scope)));
        // Cognito's ID token lists groups as an array, which API Gateway flattens.
        let operator = s
            .caller(&token(&[
                ("custom:tenant", "t"),
                ("sub", "ops-1"),
                ("cognito:groups", "[support herald-operators]"),
            ]))
            .unwrap();
        assert!(Scope::TENANT.iter().all(|scope| operator.has(*scope)));
        // The dead letters hold every tenant's messages: not a tenant operator's.
        assert!(!operator.has(Scope::DeadLetters));
        assert_eq!(operator.tenant.as_str(), "t");
        let other_group = s
            .caller(&token(&[
                ("custom:tenant", "t"),
                ("cognito:groups", "[herald-operators-old]"),
            ]))
            .unwrap();
        assert!(!other_group.has(Scope::DeadLetters));
        // Without OPERATOR_GROUP, a group grants nothing.
        let unset = settings(None)
            .caller(&token(&[
                ("custom:tenant", "t"),
                ("cognito:groups", "[herald-operators]"),
            ]))
            .unwrap();
        assert!(Scope::ALL.iter().all(|scope| !unset.has(*scope)));
    }

    #[test]
    fn a_bad_user_id_is_a_400_naming_the_field() {
        let caller = settings(None)
            .caller(&token(&[("custom:tenant", "t"), ("scope", "herald/inbox")]))
            .unwrap();
        match caller.user("a b", Scope::Inbox) {
            Err(ApiError::Invalid(e)) => assert_eq!(e.field.as_deref(), Some("user")),
            other => panic!("{other:?}"),
        }
    }
}
