//! inbox-api's routers on in-memory adapters: every route's answers, its errors naming
//! the field, and what it writes.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use herald::auth::{claims, jwt_request_context};
use herald::domain::counters::commit::apply_to_counters;
use herald::domain::notification::{parse_notification, IdSource};
use herald::fake::{InMemoryDirectory, InMemoryInbox, StaticKeys};
use herald::TenantId;
use tower::ServiceExt;

use super::*;
use herald::domain::contact::Contact;
use herald::{NotificationId, StoreError};
use serde_json::{json, Value};

/// FCM and APNs configured, the APNs sandbox not.
fn test_push_apps() -> crate::devices::PushApps {
    crate::devices::PushApps {
        apns: Some("arn:aws:sns:us-east-1:1:app/APNS/herald".into()),
        apns_sandbox: None,
        fcm: Some("arn:aws:sns:us-east-1:1:app/GCM/herald".into()),
    }
}

fn deps() -> (Arc<Deps>, Arc<InMemoryInbox>) {
    deps_with(crate::dead_letters::DeadLetterQueues::none())
}

fn deps_with(
    dead_letters: crate::dead_letters::DeadLetterQueues,
) -> (Arc<Deps>, Arc<InMemoryInbox>) {
    let inbox = Arc::new(InMemoryInbox::default());
    let directory = Arc::new(InMemoryDirectory::default());
    let deps = Arc::new(Deps {
        counters: inbox.clone(),
        messages: inbox.clone(),
        directory: directory.clone(),
        suppressions: directory,
        auth: AuthSettings::from_vars(&Vars::default()).unwrap(),
        policy: BackoffPolicy::default(),
        keys: Arc::new(StaticKeys::default()),
        marketing_default: true,
        devices: Arc::new(herald::fake::InMemoryDevices::default()),
        endpoints: Arc::new(herald::fake::InMemoryEndpoints::default()),
        push_apps: test_push_apps(),
        workflows: Arc::new(herald::fake::InMemoryWorkflows::default()),
        caps: Arc::new(herald::fake::InMemoryWorkflows::default()),
        dead_letters,
        console: Default::default(),
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
    send(deps, req).await
}

/// `req` through the API's routers; the status and the JSON answer (null when none).
async fn send(deps: &Arc<Deps>, req: Request<Body>) -> (StatusCode, Value) {
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
            (i, parse_notification(&item, i, &tenant, IdSource::Generate, format!("2026-11-23T00:00:0{i}Z").parse().unwrap()).unwrap())
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

/// A directory where another writer changes the contact right before our first write, and
/// whose first `conflicts` writes meet another transaction (AWS's `TransactionConflict`).
struct Racing {
    inner: InMemoryDirectory,
    raced: std::sync::atomic::AtomicBool,
    conflicts: std::sync::atomic::AtomicU32,
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
        let left = self.conflicts.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.conflicts
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(StoreError::Transient(
                "TransactionCanceledException: TransactionConflict".into(),
            ));
        }
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
        stale: jiff::Timestamp,
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

/// Concurrent writers on AWS meet each other's transactions: the write is retried, and the
/// caller gets its 200; only a conflict that outlasts the retries is a 503, never a 500.
#[tokio::test]
async fn a_contact_write_that_meets_another_transaction_is_retried() {
    let deps = |conflicts: u32| {
        let inbox = Arc::new(InMemoryInbox::default());
        Arc::new(Deps {
            counters: inbox.clone(),
            messages: inbox,
            directory: Arc::new(Racing {
                inner: InMemoryDirectory::default(),
                raced: true.into(),
                conflicts: conflicts.into(),
            }),
            suppressions: Arc::new(InMemoryDirectory::default()),
            auth: AuthSettings::from_vars(&Vars::default()).unwrap(),
            policy: BackoffPolicy {
                base: std::time::Duration::from_millis(1),
                ..BackoffPolicy::default()
            },
            keys: Arc::new(StaticKeys::default()),
            marketing_default: true,
            devices: Arc::new(herald::fake::InMemoryDevices::default()),
            endpoints: Arc::new(herald::fake::InMemoryEndpoints::default()),
            push_apps: test_push_apps(),
            workflows: Arc::new(herald::fake::InMemoryWorkflows::default()),
            caps: Arc::new(herald::fake::InMemoryWorkflows::default()),
            dead_letters: crate::dead_letters::DeadLetterQueues::none(),
            console: Default::default(),
        })
    };
    let body = json!({"email": "a@b.co"});
    let (status, answer) = call(&deps(2), "PUT", "/v1/users/u1/contact", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["email"], "a@b.co");
    let (status, answer) = call(&deps(100), "PUT", "/v1/users/u1/contact", Some(body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable");
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
            conflicts: Default::default(),
        }),
        suppressions: Arc::new(InMemoryDirectory::default()),
        auth: AuthSettings::from_vars(&Vars::default()).unwrap(),
        policy: BackoffPolicy::default(),
        keys: Arc::new(StaticKeys::default()),
        marketing_default: true,
        devices: Arc::new(herald::fake::InMemoryDevices::default()),
        endpoints: Arc::new(herald::fake::InMemoryEndpoints::default()),
        push_apps: test_push_apps(),
        workflows: Arc::new(herald::fake::InMemoryWorkflows::default()),
        caps: Arc::new(herald::fake::InMemoryWorkflows::default()),
        dead_letters: crate::dead_letters::DeadLetterQueues::none(),
        console: Default::default(),
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
    assert_eq!(
        body,
        json!({"version": 0, "total": 0, "rooms": {}, "unseen": {"total": 0, "rooms": {}}})
    );
}

#[tokio::test]
async fn read_room_then_read_all() {
    let (deps, inbox) = deps();
    deliver(&inbox, "u1", &["r1", "r1", "r2"]).await;
    // Every change of the counts moves the version (a client keeps the newest answer).
    let mut versions = Vec::new();
    let mut without_version = |mut body: serde_json::Value| {
        versions.push(body["version"].as_u64().expect("a version"));
        body.as_object_mut().unwrap().remove("version");
        body
    };
    let (_, body) = call(&deps, "GET", "/v1/users/u1/unread", None).await;
    let unseen = |total: u64, rooms: serde_json::Value| json!({"total": total, "rooms": rooms});
    assert_eq!(
        without_version(body),
        json!({"total": 3, "rooms": {"r1": 2, "r2": 1}, "unseen": unseen(3, json!({"r1": 2, "r2": 1}))})
    );
    let (status, body) = call(&deps, "POST", "/v1/users/u1/rooms/r1/read", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        without_version(body),
        json!({"total": 1, "rooms": {"r2": 1}, "unseen": unseen(1, json!({"r2": 1}))})
    );
    let (_, body) = call(&deps, "POST", "/v1/users/u1/read-all", None).await;
    assert_eq!(
        without_version(body),
        json!({"total": 0, "rooms": {}, "unseen": unseen(0, json!({}))})
    );
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions grow: {versions:?}"
    );
}

#[tokio::test]
async fn messages_page_newest_first_with_limit_checks() {
    let (deps, inbox) = deps();
    deliver(&inbox, "u1", &["r1", "r2", "r1"]).await;
    let (_, page) = call(&deps, "GET", "/v1/users/u1/messages?limit=2", None).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["messages"][0]["created_at"],
        "2026-11-23T00:00:02.000Z"
    );
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

/// A contact write with `If-Match`, as a service.
async fn write_contact_if_match(
    deps: &Arc<Deps>,
    method: &str,
    body: &Value,
    if_match: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri("/v1/users/u1/contact")
        .header("If-Match", if_match)
        .extension(jwt_request_context(claims(SERVICE), None))
        .body(Body::from(body.to_string()))
        .unwrap();
    send(deps, req).await
}

/// openapi.yaml's order: a body the contract refuses is a 400 naming its field whatever
/// `If-Match` says (400 wins over 412), and only a valid body meets the version check; a
/// field a contact does not have is refused even as null (in PUT and in a PATCH).
#[tokio::test]
async fn an_invalid_contact_body_is_a_400_before_the_version_check() {
    let (deps, _) = deps();
    let (status, _) = call(
        &deps,
        "PUT",
        "/v1/users/u1/contact",
        Some(json!({"email": "a@b.co"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stale = "\"7\"";
    for (method, body, field) in [
        (
            "PUT",
            json!({"quiet_hours": {"start": "22:00", "end": {}}}),
            json!("quiet_hours.end"),
        ),
        ("PUT", json!({"nickname": null}), json!("nickname")),
        ("PUT", json!({"email": "nope"}), json!("email")),
        ("PATCH", json!({"": null}), json!("")),
        (
            "PATCH",
            json!({"preferences": {"colour": null}}),
            json!("preferences.colour"),
        ),
        ("PATCH", json!({"phone": "555"}), json!("phone")),
        ("PATCH", json!([null, null]), Value::Null),
    ] {
        let (status, answer) = write_contact_if_match(&deps, method, &body, stale).await;
        assert_eq!(
            (status, answer["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, field),
            "{method} {body}"
        );
    }
    for method in ["PUT", "PATCH"] {
        let (status, _) =
            write_contact_if_match(&deps, method, &json!({"locale": "de"}), stale).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{method}");
    }
    // Half of quiet_hours merges onto the stored other half.
    let (status, _) = call(
        &deps,
        "PATCH",
        "/v1/users/u1/contact",
        Some(json!({"quiet_hours": {"start": "22:00", "end": "06:00"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &deps,
        "PATCH",
        "/v1/users/u1/contact",
        Some(json!({"quiet_hours": {"end": "07:00"}})),
    )
    .await;
    assert_eq!(
        (status, body["quiet_hours"]["start"].clone()),
        (StatusCode::OK, json!("22:00"))
    );
}

/// Query parameters as openapi.yaml states them: an empty cursor is the first page, a
/// page limit is checked even where `address` answers one entry, and `first_line` stops at
/// u32::MAX.
#[tokio::test]
async fn query_parameters_are_checked_as_the_contract_states() {
    let (deps, _) = deps();
    for uri in [
        "/v1/suppressions?cursor=",
        "/v1/suppressions/removals?cursor=",
        "/v1/users/u1/messages?cursor=&room=",
    ] {
        let (status, _) = call(&deps, "GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    for (uri, field) in [
        ("/v1/suppressions?address=a@b.co&limit=0", "limit"),
        ("/v1/suppressions?address=a@b.co&limit=", "limit"),
        ("/v1/suppressions?address=%C3%A9@b.co", "address"),
        ("/v1/suppressions?address=a%20b", "address"),
    ] {
        let (status, body) = call(&deps, "GET", uri, None).await;
        assert_eq!(
            (status, body["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!(field)),
            "{uri}"
        );
    }
    let (status, body) = call(
        &deps,
        "POST",
        "/v1/contacts/import?first_line=4294967296",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("first_line"))
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

/// The suppression routes: a service lists its entries, looks one up (the global one too),
/// lifts its own with who and why on record; a global STOP is a 409, an unknown address a
/// 404, a bad one a 400 naming `address`; none of it is open to a user's token or to
/// another tenant.
#[tokio::test]
async fn suppressions_are_listed_looked_up_and_lifted_with_an_audit_trail() {
    let (deps, _) = deps();
    let t1 = TenantId::parse("t1", "t").unwrap();
    let t2 = TenantId::parse("t2", "t").unwrap();
    for address in ["B@example.com", "a@example.com", "c@example.com"] {
        deps.directory
            .suppress(Some(&t1), address, "hard bounce")
            .await
            .unwrap();
    }
    deps.directory
        .suppress(Some(&t2), "other@example.com", "complaint")
        .await
        .unwrap();
    deps.directory
        .suppress(None, "+15550100", "sms STOP")
        .await
        .unwrap();

    // Listed by address, paged, the tenant's own only (no global entry, no other tenant's).
    let (status, page) = call(&deps, "GET", "/v1/suppressions?limit=2", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let addresses = |page: &Value| -> Vec<String> {
        page["suppressions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["address"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(addresses(&page), ["a@example.com", "b@example.com"]);
    assert_eq!(page["suppressions"][0]["reason"], "hard bounce");
    assert_eq!(page["suppressions"][0]["scope"], "tenant");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = call(
        &deps,
        "GET",
        &format!("/v1/suppressions?limit=2&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(addresses(&rest), ["c@example.com"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    // A lookup normalises the address and shows a global entry too.
    let (_, found) = call(
        &deps,
        "GET",
        "/v1/suppressions?address=b%40EXAMPLE.com",
        None,
    )
    .await;
    assert_eq!(found["suppressed"], true, "{found}");
    assert_eq!(found["address"], "b@example.com");
    let (_, stop) = call(&deps, "GET", "/v1/suppressions?address=%2B15550100", None).await;
    assert_eq!(stop["suppressions"][0]["scope"], "global", "{stop}");

    // Lifting: the entry goes, deliver may send again, the removal is on record.
    let (status, lifted) = call(
        &deps,
        "DELETE",
        "/v1/suppressions?address=b%40example.com&note=mailbox%20fixed",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{lifted}");
    assert_eq!(lifted["removed"]["removed_by"], "svc");
    assert_eq!(lifted["removed"]["reason"], "hard bounce");
    assert_eq!(lifted["removed"]["note"], "mailbox fixed");
    assert!(!deps
        .directory
        .is_suppressed(&t1, "b@example.com")
        .await
        .unwrap());
    let (_, found) = call(
        &deps,
        "GET",
        "/v1/suppressions?address=b%40example.com",
        None,
    )
    .await;
    assert_eq!(found["suppressed"], false, "{found}");
    assert_eq!(found["removals"][0]["note"], "mailbox fixed");
    let (_, log) = call(&deps, "GET", "/v1/suppressions/removals", None).await;
    assert_eq!(log["removals"].as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log["removals"][0]["address"], "b@example.com");

    // Lifting again: nothing there. A global STOP: 409, and it stays.
    let (status, body) = call(
        &deps,
        "DELETE",
        "/v1/suppressions?address=b%40example.com",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &deps,
        "DELETE",
        "/v1/suppressions?address=%2B15550100",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["field"], "address");
    assert!(deps
        .directory
        .is_suppressed(&t1, "+15550100")
        .await
        .unwrap());

    // Bad input names the field and changes nothing.
    for (method, uri, field) in [
        ("DELETE", "/v1/suppressions", "address"),
        ("DELETE", "/v1/suppressions?address=a%20b", "address"),
        ("GET", "/v1/suppressions?address=", "address"),
        ("GET", "/v1/suppressions?limit=0", "limit"),
        ("GET", "/v1/suppressions?cursor=%21%21", "cursor"),
        (
            "DELETE",
            "/v1/suppressions?address=a%40example.com&note=%07",
            "note",
        ),
    ] {
        let (status, body) = call(&deps, method, uri, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {body}");
        assert_eq!(body["error"]["field"], field, "{method} {uri}");
    }
    assert!(deps
        .directory
        .is_suppressed(&t1, "a@example.com")
        .await
        .unwrap());

    // A user's own token may not manage the list; another tenant sees none of t1's.
    let u1 = &[("custom:tenant", "t1"), ("sub", "u1")][..];
    for (method, uri) in [
        ("GET", "/v1/suppressions"),
        ("DELETE", "/v1/suppressions?address=a%40example.com"),
        ("GET", "/v1/suppressions/removals"),
    ] {
        let (status, _) = call_as(&deps, u1, method, uri, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}");
    }
    let other = &[
        ("custom:tenant", "t2"),
        ("sub", "svc2"),
        ("scope", "herald/contacts"),
    ][..];
    let (status, _) = call_as(
        &deps,
        other,
        "DELETE",
        "/v1/suppressions?address=a%40example.com",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, log) = call_as(&deps, other, "GET", "/v1/suppressions/removals", None).await;
    assert_eq!(log["removals"], json!([]));
    assert!(deps
        .directory
        .is_suppressed(&t1, "a@example.com")
        .await
        .unwrap());
}

/// Devices: an app registers its token with the user's own token; the same token again is
/// the same device (200, one endpoint), on another user it moves, past the limit the oldest
/// goes (its endpoint deleted); bad input names the field; nobody touches another's devices.
#[tokio::test]
async fn devices_register_once_move_between_users_and_stay_within_the_limit() {
    let (deps, _) = deps();
    let u1 = &[("custom:tenant", "t1"), ("sub", "u1")][..];
    let u2 = &[("custom:tenant", "t1"), ("sub", "u2")][..];
    let fcm = json!({"platform": "fcm", "app": "com.example.app"});

    let (status, first) = call_as(
        &deps,
        u1,
        "PUT",
        "/v1/users/u1/devices/tok-a",
        Some(fcm.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let endpoint = first["device"]["endpoint_arn"].as_str().unwrap().to_owned();
    assert!(endpoint.contains(":endpoint/GCM/"), "{endpoint}");
    let (status, again) = call_as(
        &deps,
        u1,
        "PUT",
        "/v1/users/u1/devices/tok-a",
        Some(fcm.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again["device"]["endpoint_arn"],
        endpoint.as_str(),
        "one endpoint per token"
    );
    let (_, listed) = call_as(&deps, u1, "GET", "/v1/users/u1/devices", None).await;
    assert_eq!(listed["devices"].as_array().unwrap().len(), 1, "{listed}");

    // The phone changes hands: the token leaves u1 for u2.
    let (status, _) = call_as(
        &deps,
        u2,
        "PUT",
        "/v1/users/u2/devices/tok-a",
        Some(fcm.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, mine) = call_as(&deps, u1, "GET", "/v1/users/u1/devices", None).await;
    assert_eq!(mine["devices"], json!([]), "{mine}");

    // At most ten: the eleventh drops the oldest, and its endpoint is deleted.
    for i in 0..herald::domain::device::MAX_DEVICES_PER_USER + 1 {
        let (status, body) = call_as(
            &deps,
            u1,
            "PUT",
            &format!("/v1/users/u1/devices/tok-{i}"),
            Some(json!({"platform": "apns"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let (_, mine) = call_as(&deps, u1, "GET", "/v1/users/u1/devices", None).await;
    let tokens: Vec<&str> = mine["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens.len(), herald::domain::device::MAX_DEVICES_PER_USER);
    assert!(!tokens.contains(&"tok-0"), "the oldest went: {tokens:?}");

    // Removing: the device and its endpoint go; again is a 404.
    let (status, removed) = call_as(&deps, u1, "DELETE", "/v1/users/u1/devices/tok-5", None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    let (status, _) = call_as(&deps, u1, "DELETE", "/v1/users/u1/devices/tok-5", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bad input names the field and registers nothing.
    for (uri, body, field) in [
        (
            "/v1/users/u1/devices/bad%20token",
            json!({"platform": "fcm"}),
            "token",
        ),
        (
            "/v1/users/u1/devices/tok-x",
            json!({"platform": "blackberry"}),
            "platform",
        ),
        (
            "/v1/users/u1/devices/tok-x",
            json!({"platform": "apns_sandbox"}),
            "platform",
        ),
        (
            "/v1/users/u1/devices/tok-x",
            json!({"platform": "fcm", "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, answer) = call_as(&deps, u1, "PUT", uri, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{uri}: {answer}");
    }
    let (_, mine) = call_as(&deps, u1, "GET", "/v1/users/u1/devices", None).await;
    assert_eq!(mine["devices"].as_array().unwrap().len(), 9);

    // Another user's token touches nothing of u1's; a service with contacts may.
    for (method, body) in [("PUT", Some(fcm.clone())), ("DELETE", None), ("GET", None)] {
        let uri = if method == "GET" {
            "/v1/users/u1/devices"
        } else {
            "/v1/users/u1/devices/tok-9"
        };
        let (status, _) = call_as(&deps, u2, method, uri, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
    }
    let (status, _) = call(&deps, "DELETE", "/v1/users/u1/devices/tok-9", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_defines_reads_replaces_and_deletes_a_workflow() {
    let (deps, _) = deps();
    let escalate = json!({"steps": [
        {"channel": "inbox"},
        {"channel": "email", "delay_seconds": 900, "unless": "read"}
    ]});
    let (status, answer) = call(&deps, "PUT", "/v1/workflows/escalate", Some(escalate)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["name"], "escalate");
    assert_eq!(answer["steps"][1]["delay_seconds"], 900);
    let (_, read) = call(&deps, "GET", "/v1/workflows/escalate", None).await;
    assert_eq!(read, answer);
    // Another tenant does not see it.
    let t2 = &[("custom:tenant", "t2"), ("scope", "herald/send")][..];
    let (status, _) = call_as(&deps, t2, "GET", "/v1/workflows/escalate", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A user's token, or a service without herald/send, may not define workflows.
    let user = &[("custom:tenant", "t1"), ("sub", "u1")][..];
    let contacts = &[("custom:tenant", "t1"), ("scope", "herald/contacts")][..];
    for token in [user, contacts] {
        let (status, _) = call_as(&deps, token, "GET", "/v1/workflows/escalate", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Bad bodies name their field and change nothing.
    for (body, field) in [
        (json!({"steps": []}), "steps"),
        (
            json!({"steps": [{"channel": "email", "unless": "read"}]}),
            "steps[0].unless",
        ),
        (
            json!({"steps": [{"channel": "sms", "delay_seconds": 2_592_001}]}),
            "steps[0].delay_seconds",
        ),
        (json!({"steps": [{"channel": "sms"}], "name": "x"}), "name"),
    ] {
        let (status, err) = call(&deps, "PUT", "/v1/workflows/escalate", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (status, err) = call(
        &deps,
        "PUT",
        "/v1/workflows/a%20b",
        Some(json!({"steps": [{"channel": "sms"}]})),
    )
    .await;
    assert_eq!(
        (status, err["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("name"))
    );
    let (_, still) = call(&deps, "GET", "/v1/workflows/escalate", None).await;
    assert_eq!(still, answer);
    let (status, _) = call(&deps, "DELETE", "/v1/workflows/escalate", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&deps, "DELETE", "/v1/workflows/escalate", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tenant_sets_and_reads_its_frequency_caps() {
    let (deps, _) = deps();
    let (status, none) = call(&deps, "GET", "/v1/frequency-caps", None).await;
    assert_eq!((status, none), (StatusCode::OK, json!({"caps": []})));
    let caps = json!({"caps": [
        {"category": "marketing", "channel": "push", "limit": 3, "window_seconds": 86400}
    ]});
    let (status, answer) = call(&deps, "PUT", "/v1/frequency-caps", Some(caps.clone())).await;
    assert_eq!((status, &answer), (StatusCode::OK, &caps));
    let bad = json!({"caps": [
        {"category": "marketing", "channel": "inbox", "limit": 3, "window_seconds": 86400}
    ]});
    let (status, err) = call(&deps, "PUT", "/v1/frequency-caps", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["field"], "caps[0].channel");
    let (_, read) = call(&deps, "GET", "/v1/frequency-caps", None).await;
    assert_eq!(read, caps, "a refused write changed nothing");
    let user = &[("custom:tenant", "t1"), ("sub", "u1")][..];
    let (status, _) = call_as(&deps, user, "PUT", "/v1/frequency-caps", Some(caps)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn dead_letter(
    id: &str,
    reason: Option<&str>,
    sent_at: jiff::Timestamp,
) -> herald::ports::DeadLetter {
    herald::ports::DeadLetter {
        message_id: id.into(),
        body: format!("{{\"id\":\"{id}\"}}"),
        reason: reason.map(str::to_owned),
        sent_at: Some(sent_at),
        receive_count: 1,
        attributes: vec![("campaign".into(), "c1".into())],
    }
}

/// Two DLQs, the first holding three messages sent 30, 20 and 10 minutes before the clock.
fn dead_letter_deps() -> (Arc<Deps>, Arc<herald::fake::InMemoryDeadLetters>) {
    let now: jiff::Timestamp = "2026-12-06T09:00:00Z".parse().unwrap();
    let minutes = |m: i64| now - jiff::SignedDuration::from_mins(m);
    let notifications = Arc::new(herald::fake::InMemoryDeadLetters::holding(vec![
        dead_letter(
            "m-1",
            Some("invalid notification: missing field `user_id`"),
            minutes(30),
        ),
        dead_letter("m-2", None, minutes(20)),
        dead_letter("m-3", Some("unknown workflow"), minutes(10)),
    ]));
    let queues = crate::dead_letters::DeadLetterQueues {
        queues: vec![
            crate::dead_letters::NamedDeadLetterQueue {
                name: "notifications".into(),
                queue: notifications.clone(),
            },
            crate::dead_letters::NamedDeadLetterQueue {
                name: "delivery".into(),
                queue: Arc::new(herald::fake::InMemoryDeadLetters::default()),
            },
        ],
        clock: Arc::new(herald::fake::FixedClock(now)),
    };
    (deps_with(queues).0, notifications)
}

const OPERATOR: &[(&str, &str)] = &[
    ("custom:tenant", "t1"),
    ("sub", "ops"),
    ("scope", "herald/dead-letters"),
];

#[tokio::test]
async fn dead_letter_queues_show_their_depth_and_oldest_age() {
    let (deps, _) = dead_letter_deps();
    let (status, answer) = call_as(&deps, OPERATOR, "GET", "/v1/dead-letters", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["queues"][0]["queue"], "notifications");
    assert_eq!(answer["queues"][0]["messages"], 3);
    assert_eq!(answer["queues"][0]["oldest_age_seconds"], 1800);
    assert_eq!(answer["queues"][1]["messages"], 0);
    assert_eq!(answer["queues"][1]["oldest_age_seconds"], Value::Null);

    let (status, answer) = call_as(
        &deps,
        OPERATOR,
        "GET",
        "/v1/dead-letters/notifications?limit=2",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let messages = answer["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["id"], "m-1");
    assert_eq!(
        messages[0]["reason"],
        "invalid notification: missing field `user_id`"
    );
    assert_eq!(messages[0]["age_seconds"], 1800);
    assert_eq!(messages[1]["reason"], Value::Null);
    assert_eq!(answer["depth"]["messages"], 3);
}

#[tokio::test]
async fn dead_letters_need_the_operator_scope_and_a_known_queue() {
    let (deps, queue) = dead_letter_deps();
    // Every other scope of a service token: still 403, and nothing moves.
    let (status, answer) = call(&deps, "GET", "/v1/dead-letters", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, _) = call(
        &deps,
        "POST",
        "/v1/dead-letters/notifications/redrive",
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let user = &[("custom:tenant", "t1"), ("sub", "u1")];
    let (status, _) = call_as(&deps, user, "GET", "/v1/dead-letters/notifications", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = call_as(&deps, OPERATOR, "GET", "/v1/dead-letters/nowhere", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) = call_as(
        &deps,
        OPERATOR,
        "GET",
        "/v1/dead-letters/notifications?limit=51",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["field"], "limit");
    let (status, answer) = call_as(
        &deps,
        OPERATOR,
        "POST",
        "/v1/dead-letters/notifications/redrive",
        Some(json!({"ids": ["m 1"]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["field"], "ids[0]");
    assert_eq!(queue.letters.lock().unwrap().len(), 3);
    assert!(queue.source.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_redrive_moves_the_chosen_messages_back_with_their_attributes_but_not_the_reason() {
    let (deps, queue) = dead_letter_deps();
    let (status, answer) = call_as(
        &deps,
        OPERATOR,
        "POST",
        "/v1/dead-letters/notifications/redrive",
        Some(json!({"ids": ["m-3", "m-9"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["moved"], json!(["m-3"]));
    assert_eq!(answer["not_found"], json!(["m-9"]));
    assert_eq!(answer["remaining"], 2);
    let sent = queue.source.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body, "{\"id\":\"m-3\"}");
    assert_eq!(
        sent[0].attributes,
        vec![("campaign".to_owned(), "c1".to_owned())]
    );

    let (status, answer) = call_as(
        &deps,
        OPERATOR,
        "POST",
        "/v1/dead-letters/notifications/redrive",
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["moved"], json!(["m-1", "m-2"]));
    assert_eq!(answer["remaining"], 0);
    assert!(queue.letters.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_console_is_served_without_a_token_and_says_how_to_sign_in() {
    let (deps, _) = deps();
    let router = crate::public_routes(deps);
    let get = |uri: &str| {
        router
            .clone()
            .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
    };
    let page = get("/console").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = axum::body::to_bytes(page.into_body(), 1 << 20)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&html).contains("/console/app.js"));
    let script = get("/console/app.js").await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let config = get("/console/config.json").await.unwrap();
    let config: Value = serde_json::from_slice(
        &axum::body::to_bytes(config.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    // No hosted UI configured: the page asks for a token.
    assert_eq!(config["sign_in"], Value::Null);
    assert_eq!(
        get("/console/secrets.txt").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/console/..%2Fmain.rs").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn with_the_stacks_user_pool_the_console_signs_in_through_its_hosted_ui() {
    let (plain, _) = deps();
    let mut deps = Arc::try_unwrap(plain).ok().unwrap();
    let mut vars = Vars::default();
    vars.0.insert(
        "CONSOLE_AUTH_DOMAIN".into(),
        "https://herald-1.auth.eu-west-1.amazoncognito.com/".into(),
    );
    vars.0.insert("CONSOLE_CLIENT_ID".into(), "client-1".into());
    deps.console = crate::console::ConsoleConfig::from_vars(&vars);
    let response = crate::public_routes(Arc::new(deps))
        .oneshot(
            Request::builder()
                .uri("/console/config.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("connect-src 'self' https://herald-1.auth.eu-west-1.amazoncognito.com;"),
        "{policy}"
    );
    let config: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["sign_in"]["authorize_url"],
        "https://herald-1.auth.eu-west-1.amazoncognito.com/oauth2/authorize"
    );
    assert_eq!(config["sign_in"]["client_id"], "client-1");
}
