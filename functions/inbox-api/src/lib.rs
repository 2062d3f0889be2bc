//! inbox-api: what apps call for a user's inbox: unread counts, the message list, mark a
//! room or everything read, the user's contact, and a notification's delivery status.
//! Every route reads the caller from the verified token (`herald::auth`): a user's own
//! token or the `herald/inbox` scope for inbox routes, `herald/contacts` for contacts,
//! `herald/send` for delivery status; the tenant is always the token's. The one public
//! route is the signed one-click unsubscribe link (`/v1/unsubscribe`).

use std::collections::HashMap;
use std::sync::Arc;

pub mod campaigns;
pub mod import;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald::auth::{AuthSettings, Caller, Scope, VerifiedToken};
use herald::config::{ConfigError, Vars};
use herald::domain::backoff::BackoffPolicy;
use herald::domain::contact::Contact;
use herald::domain::counters::Unread;
use herald::domain::mark_read::{mark_all_read, mark_room_read};
use herald::domain::unsubscribe::Unsubscribe;
use herald::http::{not_found, parse_json, ApiError};
use herald::ports::{CounterStore, Directory, LinkKeys, MessageLog, MessagePage};
use herald::{FieldError, NotificationId, RoomId, StoreError, UserKey};
use serde_json::{json, Value};

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

#[derive(Debug, Clone)]
pub struct Config {
    pub inbox_table: String,
    pub directory_table: String,
    pub auth: AuthSettings,
    pub retention_days: u32,
    /// `UNSUBSCRIBE_SECRET_ARN`: the secret behind contacts' pseudonyms and unsubscribe links.
    pub unsubscribe_secret: String,
    /// `MARKETING_CONSENT_DEFAULT`: `granted` (default) or `withheld`: a new contact's
    /// marketing consent when its first write does not say.
    pub marketing_default: bool,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            inbox_table: vars.required("INBOX_TABLE")?,
            directory_table: vars.required("DIRECTORY_TABLE")?,
            auth: AuthSettings::from_vars(vars)?,
            retention_days: vars.retention_days()?,
            unsubscribe_secret: vars.required("UNSUBSCRIBE_SECRET_ARN")?,
            marketing_default: marketing_default(vars)?,
        })
    }
}

fn marketing_default(vars: &Vars) -> Result<bool, ConfigError> {
    match vars.optional("MARKETING_CONSENT_DEFAULT").as_deref() {
        None | Some("granted") => Ok(true),
        Some("withheld") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            name: "MARKETING_CONSENT_DEFAULT".into(),
            value: other.into(),
            reason: "use granted or withheld".into(),
        }),
    }
}

pub struct Deps {
    pub counters: Arc<dyn CounterStore>,
    pub messages: Arc<dyn MessageLog>,
    pub directory: Arc<dyn Directory>,
    pub auth: AuthSettings,
    pub policy: BackoffPolicy,
    pub keys: Arc<dyn LinkKeys>,
    pub marketing_default: bool,
}

impl Deps {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let inbox = Arc::new(herald::aws::dynamodb::DynamoInbox::new(
            ddb.clone(),
            &config.inbox_table,
            config.retention_days,
        ));
        Self {
            counters: inbox.clone(),
            messages: inbox,
            directory: Arc::new(herald::aws::directory::DynamoDirectory::new(
                ddb,
                &config.directory_table,
            )),
            auth: config.auth.clone(),
            policy: BackoffPolicy::default(),
            keys: Arc::new(herald::aws::secrets::SecretsManagerKeys::new(
                aws_sdk_secretsmanager::Client::new(aws),
                &config.unsubscribe_secret,
            )),
            marketing_default: config.marketing_default,
        }
    }

    fn caller(&self, token: &VerifiedToken) -> Result<Caller, ApiError> {
        self.auth.caller(token)
    }
}

/// The inbox API as Lambda serves it, campaigns included.
pub fn app(deps: Arc<Deps>, campaign_deps: Arc<campaigns::CampaignDeps>) -> Router {
    routes(deps.clone())
        .merge(campaigns::routes(campaign_deps))
        .merge(public_routes(deps))
        .fallback(not_found)
}

/// The routes without a token: the signed unsubscribe link. `GET` shows a confirmation
/// page (link scanners fetch links; a GET must change nothing), `POST` is RFC 8058's
/// one-click unsubscribe that mail providers send.
pub fn public_routes(deps: Arc<Deps>) -> Router {
    Router::new()
        .route("/v1/unsubscribe", get(unsubscribe_page).post(unsubscribe))
        .method_not_allowed_fallback(herald::http::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::map_response(herald::http::problem_json))
        .with_state(deps)
}

/// The routes alone, for the local runner to merge with the other APIs.
pub fn routes(deps: Arc<Deps>) -> Router {
    Router::new()
        .route("/v1/users/{user}/unread", get(unread))
        .route("/v1/users/{user}/messages", get(messages))
        .route("/v1/users/{user}/rooms/{room}/read", post(read_room))
        .route("/v1/users/{user}/read-all", post(read_all))
        .route(
            "/v1/users/{user}/contact",
            get(get_contact).put(put_contact).patch(patch_contact),
        )
        .route("/v1/notifications/{id}", get(delivery_status))
        .route("/v1/contacts/import", post(import::import_contacts))
        .method_not_allowed_fallback(herald::http::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            herald::http::MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::map_response(herald::http::problem_json))
        .with_state(deps)
}

async fn unread(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Result<Json<Unread>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    Ok(Json(deps.counters.read_counters(&user).await?.unread()))
}

async fn messages(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<MessagePage>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    let room = query
        .get("room")
        .filter(|r| !r.is_empty())
        .map(|r| RoomId::parse(r, "room"))
        .transpose()?;
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| {
                FieldError::new(
                    "invalid_value",
                    "limit",
                    format!("limit must be an integer 1-{MAX_PAGE}"),
                )
            })?,
    };
    let cursor = query.get("cursor").filter(|c| !c.is_empty());

    Ok(Json(
        deps.messages
            .list_messages(&user, room.as_ref(), limit, cursor.map(String::as_str))
            .await?,
    ))
}

async fn read_room(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path((user, room)): Path<(String, String)>,
) -> Result<Json<Unread>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    let room = RoomId::parse(room, "room")?;
    Ok(Json(
        mark_room_read(deps.counters.as_ref(), &user, &room, &deps.policy)
            .await?
            .after
            .unread(),
    ))
}

async fn read_all(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Result<Json<Unread>, ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Inbox)?;
    Ok(Json(
        mark_all_read(deps.counters.as_ref(), &user, &deps.policy)
            .await?
            .after
            .unread(),
    ))
}

/// A user may read their own contact; services need `herald/contacts`.
async fn get_contact(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Result<(ETag, Json<Contact>), ApiError> {
    let user = deps.caller(&token)?.user(&user, Scope::Contacts)?;
    match deps
        .directory
        .contact_versioned(&user.tenant, &user.user)
        .await?
    {
        (Some(contact), version) => Ok((etag(version), Json(contact))),
        (None, _) => Err(ApiError::NotFound(format!(
            "user {} has no contact",
            user.user
        ))),
    }
}

/// `PUT` replaces the contact.
async fn put_contact(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(ETag, Json<Contact>), ApiError> {
    change_contact(&deps, &token, &user, &headers, &body, false).await
}

/// `PATCH` merges the body into the contact (JSON merge patch: `null` clears a field).
async fn patch_contact(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(ETag, Json<Contact>), ApiError> {
    change_contact(&deps, &token, &user, &headers, &body, true).await
}

/// Only services write contacts: a user token must never repoint its own email or phone
/// (that is how one-time codes are stolen).
async fn change_contact(
    deps: &Deps,
    token: &VerifiedToken,
    user: &str,
    headers: &HeaderMap,
    body: &[u8],
    merge: bool,
) -> Result<(ETag, Json<Contact>), ApiError> {
    let user = deps
        .caller(token)?
        .user_for_service(user, Scope::Contacts)?;
    let body = parse_json(body)?;
    let default = deps.marketing_default;
    let (version, contact) = write_contact(deps, &user, if_match(headers)?, |stored| {
        Contact::apply(stored, &body, merge, default)
    })
    .await?;
    Ok((etag(version), Json(contact)))
}

/// Read, change, write only over the version read. With `If-Match` the caller names the
/// version and another one is a 412; without it a concurrent write is not lost: the change
/// is applied again on top of it.
pub(crate) async fn write_contact(
    deps: &Deps,
    user: &UserKey,
    if_match: Option<u64>,
    change: impl Fn(Option<&Contact>) -> Result<Contact, FieldError>,
) -> Result<(u64, Contact), ApiError> {
    let pseudonym = deps
        .keys
        .signer()
        .await?
        .pseudonym(&user.tenant, &user.user);
    for _ in 0..MAX_CONTACT_WRITE_ATTEMPTS {
        let (stored, version) = deps
            .directory
            .contact_versioned(&user.tenant, &user.user)
            .await?;
        if if_match.is_some_and(|expected| expected != version) {
            return Err(ApiError::PreconditionFailed(format!(
                "the contact is at version {version}"
            )));
        }
        let next = change(stored.as_ref())?;
        match deps
            .directory
            .put_contact(&user.tenant, &user.user, &next, &pseudonym, version)
            .await
        {
            Ok(version) => return Ok((version, next)),
            Err(StoreError::VersionConflict) if if_match.is_none() => continue,
            Err(StoreError::VersionConflict) => {
                return Err(ApiError::PreconditionFailed(
                    "the contact changed meanwhile".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::VersionConflict.into())
}

const MAX_CONTACT_WRITE_ATTEMPTS: usize = 5;

/// A contact version as an entity tag, for `If-Match`.
type ETag = [(axum::http::HeaderName, String); 1];

fn etag(version: u64) -> ETag {
    [(axum::http::header::ETAG, format!("\"{version}\""))]
}

/// The version `If-Match` names (`"3"` or `3`), when given.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            FieldError::new(
                "invalid_value",
                "If-Match",
                "If-Match must be the ETag a contact answer carried, e.g. \"3\"",
            )
            .into()
        })
}

/// The request a link makes; 400 naming `token` for a forged, altered or missing one.
async fn verified_link(
    deps: &Deps,
    query: &HashMap<String, String>,
) -> Result<(Unsubscribe, String), ApiError> {
    let token = query
        .get("token")
        .ok_or_else(|| FieldError::new("missing_field", "token", "the link's token is missing"))?;
    let request = deps.keys.signer().await?.verify(token)?;
    Ok((request, token.clone()))
}

async fn unsubscribe_page(
    State(deps): State<Arc<Deps>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Html<String>, ApiError> {
    // The token's characters are all URL- and HTML-safe: it verified.
    let (_, token) = verified_link(&deps, &query).await?;
    Ok(Html(format!(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
         <form method=post action=\"?token={token}\">\
         <input type=hidden name=List-Unsubscribe value=One-Click>\
         <p>Stop marketing messages to this address?</p>\
         <button type=submit>Unsubscribe</button></form>"
    )))
}

async fn unsubscribe(
    State(deps): State<Arc<Deps>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (request, _) = verified_link(&deps, &query).await?;
    let user = deps
        .directory
        .user_of_pseudonym(&request.tenant, &request.pseudonym)
        .await?
        .ok_or_else(|| ApiError::NotFound("nobody is subscribed under this link".into()))?;
    let user = UserKey {
        tenant: request.tenant.clone(),
        user,
    };
    write_contact(&deps, &user, None, |stored| {
        let mut contact = stored.cloned().unwrap_or_default();
        contact.preferences.marketing = false;
        Ok(contact)
    })
    .await?;
    tracing::info!(tenant = %request.tenant, "unsubscribed from marketing");
    Ok(Json(json!({"unsubscribed": true, "category": "marketing"})))
}

/// `?user=` reads that user's records directly by key (what a sender that knows the user
/// should ask); without it, one query of the notification's own records.
async fn delivery_status(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let caller = deps.caller(&token)?;
    let tenant = caller.require(Scope::Send)?;
    let id = NotificationId::parse(id, "id")?;
    let records = match query.get("user") {
        Some(user) => {
            let user = herald::UserId::parse(user, "user")?;
            deps.directory
                .user_delivery_status(tenant, &id, &user)
                .await?
        }
        None => deps.directory.delivery_status(tenant, &id).await?,
    };
    if records.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no delivery recorded for notification {id} (yet)"
        )));
    }
    // Client ids are unique per user: one id may name notifications of several users.
    let mut users: std::collections::BTreeMap<String, serde_json::Map<String, Value>> =
        std::collections::BTreeMap::new();
    for r in records {
        users.entry(r.user_id.to_string()).or_default().insert(
            r.channel.as_str().to_owned(),
            json!({"state": r.state, "detail": r.detail, "updated_at": r.updated_at}),
        );
    }
    let deliveries: Vec<Value> = users
        .iter()
        .map(|(user, channels)| json!({"user_id": user, "channels": channels}))
        .collect();
    // `channels` at the top for the usual case of one user per id.
    let channels = if users.len() == 1 {
        users.into_values().next()
    } else {
        None
    };
    Ok(Json(
        json!({"id": id, "channels": channels, "deliveries": deliveries}),
    ))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use herald::auth::{claims, jwt_request_context};
    use herald::domain::counters::commit::apply_to_counters;
    use herald::domain::notification::{parse_notification, IdSource};
    use herald::fake::{InMemoryDirectory, InMemoryInbox, StaticKeys};
    use herald::TenantId;
    use tower::ServiceExt;

    use super::*;

    fn deps() -> (Arc<Deps>, Arc<InMemoryInbox>) {
        let inbox = Arc::new(InMemoryInbox::default());
        let deps = Arc::new(Deps {
            counters: inbox.clone(),
            messages: inbox.clone(),
            directory: Arc::new(InMemoryDirectory::default()),
            auth: AuthSettings::from_vars(&Vars::default()).unwrap(),
            policy: BackoffPolicy::default(),
            keys: Arc::new(StaticKeys::default()),
            marketing_default: true,
        });
        (deps, inbox)
    }

    /// A service token of tenant t1 with every scope.
    const SERVICE: &[(&str, &str)] = &[
        ("custom:tenant", "t1"),
        ("sub", "svc"),
        ("scope", "herald/send herald/contacts herald/inbox"),
    ];

    async fn call(
        deps: &Arc<Deps>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call_as(deps, SERVICE, method, uri, body).await
    }

    async fn call_as(
        deps: &Arc<Deps>,
        token: &[(&str, &str)],
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .extension(jwt_request_context(claims(token), None))
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        let router = routes(deps.clone()).merge(public_routes(deps.clone()));
        let resp = router.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn deliver(inbox: &InMemoryInbox, user: &str, rooms: &[&str]) {
        let tenant = TenantId::parse("t1", "t").unwrap();
        let batch = rooms
            .iter()
            .enumerate()
            .map(|(i, room)| {
                let item = json!({"user_id": user, "room_id": room, "title": "t", "body": "b", "channels": ["inbox"]});
                (i, parse_notification(&item, i, &tenant, IdSource::Generate, &format!("2026-11-23T00:00:0{i}Z")).unwrap())
            })
            .collect();
        apply_to_counters(inbox, batch, &BackoffPolicy::default()).await;
    }

    #[tokio::test]
    async fn users_read_their_own_inbox_and_only_services_write_contacts() {
        let (deps, inbox) = deps();
        deliver(&inbox, "u1", &["r1"]).await;
        let u1 = &[("custom:tenant", "t1"), ("sub", "u1")][..];
        let (status, body) = call_as(&deps, u1, "GET", "/v1/users/u1/unread", None).await;
        assert_eq!((status, body["total"].clone()), (StatusCode::OK, json!(1)));
        for (method, uri) in [
            ("GET", "/v1/users/u2/unread"),
            ("GET", "/v1/users/u2/messages"),
            ("POST", "/v1/users/u2/read-all"),
            ("PUT", "/v1/users/u1/contact"),
            ("GET", "/v1/notifications/n1"),
        ] {
            let (status, body) = call_as(
                &deps,
                u1,
                method,
                uri,
                Some(json!({"email": "me@evil.example"})),
            )
            .await;
            assert_eq!(
                (status, body["error"]["code"].clone()),
                (StatusCode::FORBIDDEN, json!("forbidden")),
                "{method} {uri}"
            );
        }
        let other_tenant = &[("custom:tenant", "t2"), ("sub", "u1")][..];
        let (_, body) = call_as(&deps, other_tenant, "GET", "/v1/users/u1/unread", None).await;
        assert_eq!(
            body["total"], 0,
            "same user id, other tenant: nothing shared"
        );
    }

    /// A directory where another writer changes the contact right before our first write.
    struct Racing {
        inner: InMemoryDirectory,
        raced: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Directory for Racing {
        async fn contact(
            &self,
            t: &herald::TenantId,
            u: &herald::UserId,
        ) -> Result<Option<Contact>, StoreError> {
            self.inner.contact(t, u).await
        }
        async fn contact_versioned(
            &self,
            t: &herald::TenantId,
            u: &herald::UserId,
        ) -> Result<(Option<Contact>, u64), StoreError> {
            self.inner.contact_versioned(t, u).await
        }
        async fn put_contact(
            &self,
            t: &herald::TenantId,
            u: &herald::UserId,
            c: &Contact,
            p: &str,
            expected: u64,
        ) -> Result<u64, StoreError> {
            if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let (stored, version) = self.inner.contact_versioned(t, u).await?;
                let mut theirs = stored.unwrap_or_default();
                theirs.locale = Some("de-DE".into());
                self.inner.put_contact(t, u, &theirs, p, version).await?;
            }
            self.inner.put_contact(t, u, c, p, expected).await
        }
        async fn user_of_pseudonym(
            &self,
            t: &herald::TenantId,
            p: &str,
        ) -> Result<Option<herald::UserId>, StoreError> {
            self.inner.user_of_pseudonym(t, p).await
        }
        async fn delivery_status(
            &self,
            t: &herald::TenantId,
            id: &NotificationId,
        ) -> Result<Vec<herald::ports::DeliveryRecord>, StoreError> {
            self.inner.delivery_status(t, id).await
        }
        async fn user_delivery_status(
            &self,
            t: &herald::TenantId,
            id: &NotificationId,
            u: &herald::UserId,
        ) -> Result<Vec<herald::ports::DeliveryRecord>, StoreError> {
            self.inner.user_delivery_status(t, id, u).await
        }
        async fn settle_delivery(
            &self,
            t: &herald::TenantId,
            r: &herald::ports::DeliveryRecord,
        ) -> Result<bool, StoreError> {
            self.inner.settle_delivery(t, r).await
        }
        async fn claim_delivery(
            &self,
            t: &herald::TenantId,
            r: &herald::ports::DeliveryRecord,
            stale: &str,
        ) -> Result<herald::ports::Claim, StoreError> {
            self.inner.claim_delivery(t, r, stale).await
        }
        async fn is_suppressed(&self, t: &herald::TenantId, a: &str) -> Result<bool, StoreError> {
            self.inner.is_suppressed(t, a).await
        }
        async fn suppress(
            &self,
            t: Option<&herald::TenantId>,
            a: &str,
            r: &str,
        ) -> Result<(), StoreError> {
            self.inner.suppress(t, a, r).await
        }
    }

    #[tokio::test]
    async fn a_concurrent_contact_write_is_not_lost() {
        let inbox = Arc::new(InMemoryInbox::default());
        let deps = Arc::new(Deps {
            counters: inbox.clone(),
            messages: inbox,
            directory: Arc::new(Racing {
                inner: InMemoryDirectory::default(),
                raced: Default::default(),
            }),
            auth: AuthSettings::from_vars(&Vars::default()).unwrap(),
            policy: BackoffPolicy::default(),
            keys: Arc::new(StaticKeys::default()),
            marketing_default: true,
        });
        let (status, body) = call(
            &deps,
            "PATCH",
            "/v1/users/u1/contact",
            Some(json!({"email": "a@b.co"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], "a@b.co");
        assert_eq!(
            body["locale"], "de-DE",
            "the other writer's change survives"
        );
    }

    #[tokio::test]
    async fn unknown_user_has_zero_unread() {
        let (deps, _) = deps();
        let (status, body) = call(&deps, "GET", "/v1/users/nobody/unread", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"total": 0, "rooms": {}}));
    }

    #[tokio::test]
    async fn read_room_then_read_all() {
        let (deps, inbox) = deps();
        deliver(&inbox, "u1", &["r1", "r1", "r2"]).await;
        let (_, body) = call(&deps, "GET", "/v1/users/u1/unread", None).await;
        assert_eq!(body, json!({"total": 3, "rooms": {"r1": 2, "r2": 1}}));
        let (status, body) = call(&deps, "POST", "/v1/users/u1/rooms/r1/read", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"total": 1, "rooms": {"r2": 1}}));
        let (_, body) = call(&deps, "POST", "/v1/users/u1/read-all", None).await;
        assert_eq!(body, json!({"total": 0, "rooms": {}}));
    }

    #[tokio::test]
    async fn messages_page_newest_first_with_limit_checks() {
        let (deps, inbox) = deps();
        deliver(&inbox, "u1", &["r1", "r2", "r1"]).await;
        let (_, page) = call(&deps, "GET", "/v1/users/u1/messages?limit=2", None).await;
        assert_eq!(page["messages"].as_array().unwrap().len(), 2);
        assert_eq!(page["messages"][0]["created_at"], "2026-11-23T00:00:02Z");
        let cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let (_, rest) = call(
            &deps,
            "GET",
            &format!("/v1/users/u1/messages?limit=2&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(rest["messages"].as_array().unwrap().len(), 1);
        let (_, room) = call(&deps, "GET", "/v1/users/u1/messages?room=r2", None).await;
        assert_eq!(room["messages"].as_array().unwrap().len(), 1);
        let (status, err) = call(&deps, "GET", "/v1/users/u1/messages?limit=0", None).await;
        assert_eq!(
            (status, err["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("limit"))
        );
    }

    #[tokio::test]
    async fn contact_round_trip_and_validation() {
        let (deps, _) = deps();
        let (status, _) = call(&deps, "GET", "/v1/users/u1/contact", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = call(
            &deps,
            "PUT",
            "/v1/users/u1/contact",
            Some(json!({"email": "a@b.co"})),
        )
        .await;
        assert_eq!(
            (status, body["email"].clone()),
            (StatusCode::OK, json!("a@b.co"))
        );
        let (_, body) = call(&deps, "GET", "/v1/users/u1/contact", None).await;
        assert_eq!(body["email"], "a@b.co");
        let (status, body) = call(
            &deps,
            "PUT",
            "/v1/users/u1/contact",
            Some(json!({"email": "nope"})),
        )
        .await;
        assert_eq!(
            (status, body["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("email"))
        );
    }

    #[tokio::test]
    async fn bad_ids_and_routes_are_json_errors() {
        let (deps, _) = deps();
        let (status, body) = call(&deps, "GET", "/v1/users/a%23b/unread", None).await;
        assert_eq!(
            (status, body["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("user"))
        );
        let (status, body) = call(&deps, "GET", "/v2/nothing", None).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (StatusCode::NOT_FOUND, json!("not_found"))
        );
        let (status, body) = call(&deps, "DELETE", "/v1/users/u1/unread", None).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed"))
        );
        let (status, body) = call(&deps, "GET", "/v1/users/u1/messages?cursor=nope", None).await;
        assert_eq!(
            (status, body["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("cursor"))
        );
    }

    #[tokio::test]
    async fn a_cursor_from_another_list_is_a_400_naming_the_cursor() {
        let (deps, inbox) = deps();
        deliver(&inbox, "u1", &["r1", "r1", "r2", "r2"]).await;
        let (_, page) = call(&deps, "GET", "/v1/users/u1/messages?room=r1&limit=1", None).await;
        let r1 = page["next_cursor"].as_str().unwrap().to_owned();
        let (_, page) = call(&deps, "GET", "/v1/users/u1/messages?limit=1", None).await;
        let all = page["next_cursor"].as_str().unwrap().to_owned();
        for uri in [
            format!("/v1/users/u1/messages?room=r2&cursor={r1}"),
            format!("/v1/users/u1/messages?cursor={r1}"),
            format!("/v1/users/u1/messages?room=r1&cursor={all}"),
        ] {
            let (status, body) = call(&deps, "GET", &uri, None).await;
            assert_eq!(
                (status, body["error"]["field"].clone()),
                (StatusCode::BAD_REQUEST, json!("cursor")),
                "{uri}"
            );
        }
    }
}
