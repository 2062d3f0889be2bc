//! ingest: `POST /v1/notifications` validates, assigns ids and puts each accepted
//! notification on the notifications queue; answers 202 with per-item results. Needs a
//! token with the `herald/send` scope; the tenant comes from the token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use herald::auth::{AuthSettings, Scope, VerifiedToken};
use herald::config::{ConfigError, Vars};
use herald::domain::notification::{
    check_idempotency_key, parse_notification, IdSource, MAX_ITEMS_PER_REQUEST,
};
use herald::domain::workflow::Workflow;
use herald::http::{not_found, parse_json, ApiError, RequestMeta};
use herald::ports::{OutgoingMessage, QueueSender, Workflows};
use herald::{FieldError, Notification, TenantId};
use serde_json::{json, Value};

/// Environment of the ingest function.
#[derive(Debug, Clone)]
pub struct Config {
    pub notifications_queue_url: String,
    pub auth: AuthSettings,
    /// `DIRECTORY_TABLE`: the tenants' named workflows (without it, a notification naming
    /// one is refused as unknown).
    pub directory_table: Option<String>,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            notifications_queue_url: vars.required("NOTIFICATIONS_QUEUE_URL")?,
            auth: AuthSettings::from_vars(vars)?,
            directory_table: vars.optional("DIRECTORY_TABLE"),
        })
    }
}

/// What the handler needs, built once at cold start.
pub struct Deps {
    pub queue: Arc<dyn QueueSender>,
    pub auth: AuthSettings,
    /// Named workflows, looked up once per name and request.
    pub workflows: Option<Arc<dyn Workflows>>,
}

impl Deps {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        let sqs = aws_sdk_sqs::Client::new(aws);
        Self {
            queue: Arc::new(herald::aws::sqs::SqsSender::new(
                sqs,
                &config.notifications_queue_url,
            )),
            auth: config.auth.clone(),
            workflows: config.directory_table.as_ref().map(|table| {
                let workflows: Arc<dyn Workflows> =
                    Arc::new(herald::aws::workflows::DynamoWorkflows::new(
                        aws_sdk_dynamodb::Client::new(aws),
                        table,
                    ));
                workflows
            }),
        }
    }
}

/// The ingest API as Lambda serves it.
pub fn app(deps: Arc<Deps>) -> Router {
    routes(deps).fallback(not_found)
}

/// The routes alone, for the local runner to merge with the other APIs.
pub fn routes(deps: Arc<Deps>) -> Router {
    Router::new()
        .route("/v1/notifications", post(accept_notifications))
        .method_not_allowed_fallback(herald::http::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            herald::http::MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::map_response(herald::http::problem_json))
        .with_state(deps)
}

async fn accept_notifications(
    State(deps): State<Arc<Deps>>,
    token: VerifiedToken,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, [(&'static str, String); 1], Json<Value>), ApiError> {
    let caller = deps.auth.caller(&token)?;
    let tenant = caller.require(Scope::Send)?;
    let request = parse_json(&body)?;
    let items = notification_items(&request)?;
    let ids = idempotency_source(&headers)?;
    // To the millisecond: what the queue message carries.
    let created_at =
        herald::domain::time::truncated(jiff::Timestamp::now(), jiff::Unit::Millisecond);

    let mut valid: Vec<(usize, Notification)> = Vec::new();
    let mut rejected: Vec<(usize, FieldError)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match parse_notification(item, index, tenant, ids, created_at) {
            Ok(mut n) => {
                n.correlation_id = Some(meta.correlation_id.clone());
                valid.push((index, n));
            }
            Err(e) => rejected.push((index, e)),
        }
    }
    let (valid, unknown) = follow_workflows(&deps, tenant, valid).await?;
    rejected.extend(unknown);
    if valid.is_empty() {
        // Nothing valid: a plain 400 naming the first bad field; nothing was enqueued.
        let (_, first) = rejected.swap_remove(0);
        return Err(first.into());
    }

    let messages = to_queue_messages(&valid, meta.trace_header.as_deref())?;
    let results = deps.queue.send(&messages).await;
    let mut accepted = Vec::new();
    for ((index, n), result) in valid.iter().zip(results) {
        match result {
            Ok(()) => {
                tracing::info!(
                    tenant = %n.tenant,
                    notification_id = %n.id,
                    correlation_id = %meta.correlation_id,
                    "accepted"
                );
                accepted.push(json!({"index": index, "id": n.id}));
            }
            Err(reason) => {
                tracing::error!(id = %n.id, %reason, "enqueue failed");
                rejected.push((
                    *index,
                    FieldError::body(
                        "enqueue_failed",
                        "could not queue this notification; retry it",
                    ),
                ));
            }
        }
    }
    if accepted.is_empty() {
        return Err(ApiError::Unavailable(
            "notifications queue unavailable".into(),
        ));
    }
    rejected.sort_by_key(|(i, _)| *i);
    let rejected: Vec<Value> = rejected
        .into_iter()
        .map(|(index, error)| json!({"index": index, "error": error}))
        .collect();
    herald::telemetry::emit_metrics(
        "ingest",
        &[
            ("NotificationsAccepted", accepted.len() as f64, "Count"),
            ("NotificationsRejected", rejected.len() as f64, "Count"),
        ],
    );
    Ok((
        StatusCode::ACCEPTED,
        [("x-correlation-id", meta.correlation_id)],
        Json(json!({"accepted": accepted, "rejected": rejected})),
    ))
}

/// Copies each named workflow's steps into the notifications that name it (one read per
/// name); a name the tenant has not defined rejects its item.
async fn follow_workflows(
    deps: &Deps,
    tenant: &TenantId,
    items: Vec<(usize, Notification)>,
) -> Result<(Vec<(usize, Notification)>, Vec<(usize, FieldError)>), ApiError> {
    let mut known: HashMap<String, Option<Workflow>> = HashMap::new();
    let (mut valid, mut rejected) = (Vec::new(), Vec::new());
    for (index, mut n) in items {
        let Some(name) = n.workflow.clone().filter(|_| n.steps.is_none()) else {
            valid.push((index, n));
            continue;
        };
        if !known.contains_key(&name) {
            let found = match &deps.workflows {
                Some(store) => store.workflow(tenant, &name).await?,
                None => None,
            };
            known.insert(name.clone(), found);
        }
        match &known[&name] {
            Some(workflow) => {
                n.follow(workflow);
                valid.push((index, n));
            }
            None => {
                let field = format!("notifications[{index}].workflow");
                rejected.push((
                    index,
                    FieldError::new(
                        "unknown_workflow",
                        &field,
                        format!(
                            "{field}: no workflow {name:?}; PUT /v1/workflows/{name} defines it"
                        ),
                    ),
                ));
            }
        }
    }
    Ok((valid, rejected))
}

fn notification_items(request: &Value) -> Result<&Vec<Value>, ApiError> {
    let items = request
        .get("notifications")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            FieldError::new(
                "missing_field",
                "notifications",
                "body must be {\"notifications\": [ ... ]}",
            )
        })?;
    if items.is_empty() || items.len() > MAX_ITEMS_PER_REQUEST {
        return Err(FieldError::new(
            "invalid_length",
            "notifications",
            format!(
                "notifications must hold 1-{MAX_ITEMS_PER_REQUEST} items; got {}",
                items.len()
            ),
        )
        .into());
    }
    Ok(items)
}

fn idempotency_source(headers: &HeaderMap) -> Result<IdSource<'_>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(IdSource::Generate),
        Some(value) => {
            let key = value.to_str().map_err(|_| {
                FieldError::new(
                    "invalid_id",
                    "Idempotency-Key",
                    "Idempotency-Key must be ASCII",
                )
            })?;
            check_idempotency_key(key)?;
            Ok(IdSource::IdempotencyKey(key))
        }
    }
}

/// The queue messages, each carrying this invocation's X-Ray trace to the consumer.
fn to_queue_messages(
    valid: &[(usize, Notification)],
    trace_header: Option<&str>,
) -> Result<Vec<OutgoingMessage>, ApiError> {
    valid
        .iter()
        .map(|(index, n)| {
            let mut message = OutgoingMessage::json(index.to_string(), n)
                .map_err(|e| ApiError::Store(herald::StoreError::Fatal(e.to_string())))?;
            message.trace_header = trace_header.map(str::to_owned);
            Ok(message)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use herald::auth::{claims, jwt_request_context};
    use herald::fake::RecordingQueue;
    use herald::Channel;
    use tower::ServiceExt;

    use super::*;

    fn deps() -> (Arc<Deps>, Arc<RecordingQueue>) {
        let queue = Arc::new(RecordingQueue::default());
        let deps = Arc::new(Deps {
            queue: queue.clone(),
            auth: AuthSettings::from_vars(&Vars::default()).unwrap(),
            workflows: Some(Arc::new(herald::fake::InMemoryWorkflows::default())),
        });
        (deps, queue)
    }

    const SERVICE: &[(&str, &str)] = &[
        ("custom:tenant", "t1"),
        ("sub", "svc"),
        ("scope", "herald/send"),
    ];

    async fn post(deps: Arc<Deps>, body: Value, key: Option<&str>) -> (StatusCode, Value) {
        post_as(deps, Some(SERVICE), body, key).await
    }

    async fn post_as(
        deps: Arc<Deps>,
        token: Option<&[(&str, &str)]>,
        body: Value,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::post("/v1/notifications").header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        if let Some(pairs) = token {
            req = req.extension(jwt_request_context(claims(pairs), None));
        }
        let resp = app(deps)
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn item(user: &str) -> Value {
        json!({"user_id": user, "room_id": "r1", "title": "Hi", "body": "b", "channels": ["inbox"]})
    }

    #[tokio::test]
    async fn a_named_workflow_is_copied_into_each_notification_that_names_it() {
        let (deps, queue) = deps();
        let steps = json!({"steps": [
            {"channel": "inbox"},
            {"channel": "email", "delay_seconds": 900, "unless": "read"}
        ]});
        let workflow = herald::domain::workflow::Workflow::parse(&steps, "").unwrap();
        let t1 = TenantId::parse("t1", "t").unwrap();
        deps.workflows
            .as_ref()
            .unwrap()
            .put_workflow(&t1, "escalate", &workflow)
            .await
            .unwrap();
        let named = |user: &str, name: &str| {
            let mut i = item(user);
            i.as_object_mut().unwrap().remove("channels");
            i["workflow"] = json!(name);
            i
        };
        let inline = {
            let mut i = item("u3");
            i.as_object_mut().unwrap().remove("channels");
            i["workflow"] = steps.clone();
            i
        };
        let both = {
            let mut i = item("u4");
            i["workflow"] = json!("escalate");
            i
        };
        let body = json!({"notifications": [
            named("u1", "escalate"), named("u2", "nope"), inline, both, named("u5", "escalate")
        ]});
        let (status, answer) = post(deps, body, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let rejected = answer["rejected"].as_array().unwrap();
        let codes: Vec<(u64, &str, &str)> = rejected
            .iter()
            .map(|r| {
                (
                    r["index"].as_u64().unwrap(),
                    r["error"]["code"].as_str().unwrap(),
                    r["error"]["field"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                (1, "unknown_workflow", "notifications[1].workflow"),
                (3, "conflict", "notifications[3].workflow"),
            ]
        );
        let sent: Vec<Notification> = queue
            .bodies()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        assert_eq!(sent.len(), 3);
        for n in &sent {
            assert_eq!(n.channels, vec![Channel::Inbox, Channel::Email]);
            assert_eq!(n.steps.as_ref(), Some(&workflow.steps));
            n.check().unwrap();
        }
        assert_eq!(sent[0].workflow.as_deref(), Some("escalate"));
        assert_eq!(sent[1].workflow, None, "inline");
    }

    #[tokio::test]
    async fn sending_needs_a_verified_token_with_the_send_scope_and_its_tenant_is_used() {
        let body = json!({"notifications": [item("u1")]});
        let (deps, queue) = deps();
        let (status, err) = post_as(deps.clone(), None, body.clone(), None).await;
        assert_eq!(
            (status, err["error"]["code"].clone()),
            (StatusCode::UNAUTHORIZED, json!("unauthorized"))
        );
        let user = &[("custom:tenant", "t1"), ("sub", "u1")][..];
        let (status, err) = post_as(deps.clone(), Some(user), body.clone(), None).await;
        assert_eq!(
            (status, err["error"]["code"].clone()),
            (StatusCode::FORBIDDEN, json!("forbidden"))
        );
        assert!(queue.bodies().is_empty(), "nothing enqueued");
        let other = &[("custom:tenant", "t2"), ("scope", "herald/send")][..];
        let (status, _) = post_as(deps, Some(other), body, None).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let sent: Notification = serde_json::from_str(&queue.bodies()[0]).unwrap();
        assert_eq!(sent.tenant.as_str(), "t2");
    }

    #[tokio::test]
    async fn the_correlation_id_and_trace_go_with_each_notification() {
        let (deps, queue) = deps();
        let mut req = Request::post("/v1/notifications")
            .header("x-correlation-id", "order-42")
            .header(
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            )
            .extension(jwt_request_context(claims(SERVICE), None));
        let body = json!({"notifications": [item("u1")]}).to_string();
        let resp = app(deps.clone())
            .oneshot(req.body(Body::from(body.clone())).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert_eq!(resp.headers()["x-correlation-id"], "order-42");
        let sent: Notification = serde_json::from_str(&queue.bodies()[0]).unwrap();
        assert_eq!(sent.correlation_id.as_deref(), Some("order-42"));
        assert_eq!(
            queue.sent.lock().unwrap()[0].trace_header.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
        );
        req = Request::post("/v1/notifications")
            .header("x-correlation-id", "not ok")
            .extension(jwt_request_context(claims(SERVICE), None));
        let resp = app(deps)
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(queue.bodies().len(), 1, "nothing more enqueued");
    }

    #[tokio::test]
    async fn accepts_valid_items_and_enqueues_them() {
        let (deps, queue) = deps();
        let (status, body) = post(
            deps,
            json!({"notifications": [item("u1"), item("u2")]}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["accepted"].as_array().unwrap().len(), 2);
        let sent: Vec<Notification> = queue
            .bodies()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        assert_eq!(sent[1].user_id.as_str(), "u2");
        assert_eq!(body["accepted"][1]["id"], json!(sent[1].id));
    }

    #[tokio::test]
    async fn all_invalid_is_a_400_naming_the_field_and_enqueues_nothing() {
        let (deps, queue) = deps();
        let (status, body) = post(deps, json!({"notifications": [item("bad user")]}), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "notifications[0].user_id");
        assert!(queue.bodies().is_empty());
    }

    #[tokio::test]
    async fn mixed_batch_accepts_the_valid_and_lists_the_rejected() {
        let (deps, queue) = deps();
        let (status, body) = post(
            deps,
            json!({"notifications": [item("ok"), {"user_id": "u"}]}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["rejected"][0]["index"], 1);
        assert_eq!(
            body["rejected"][0]["error"]["field"],
            "notifications[1].room_id"
        );
        assert_eq!(queue.bodies().len(), 1);
    }

    #[tokio::test]
    async fn malformed_bodies_are_400s() {
        for body in [
            json!({}),
            json!({"notifications": []}),
            json!({"notifications": "x"}),
        ] {
            let (deps, _) = deps();
            let (status, resp) = post(deps, body, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(resp["error"]["field"], "notifications");
        }
        let (deps, _) = deps();
        let resp = app(deps)
            .oneshot(
                Request::post("/v1/notifications")
                    .extension(jwt_request_context(claims(SERVICE), None))
                    .body(Body::from("{oops"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn idempotency_key_makes_ids_stable() {
        let (deps, _) = deps();
        let (_, a) = post(
            deps.clone(),
            json!({"notifications": [item("u1")]}),
            Some("req-1"),
        )
        .await;
        let (_, b) = post(deps, json!({"notifications": [item("u1")]}), Some("req-1")).await;
        assert!(a["accepted"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("req-1."));
        assert_eq!(a["accepted"], b["accepted"]);
    }

    #[tokio::test]
    async fn idempotency_keys_up_to_128_characters_are_accepted_and_stable() {
        for len in [112, 120, 128] {
            let (deps, queue) = deps();
            let key = "k".repeat(len);
            let body = json!({"notifications": [item("u1")]});
            let (status, a) = post(deps.clone(), body.clone(), Some(&key)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{len}: {a}");
            let (_, b) = post(deps, body, Some(&key)).await;
            assert_eq!(a["accepted"], b["accepted"], "{len}");
            assert_eq!(queue.bodies().len(), 2);
        }
        let (deps, queue) = deps();
        let (status, err) = post(
            deps,
            json!({"notifications": [item("u1")]}),
            Some(&"k".repeat(129)),
        )
        .await;
        assert_eq!(
            (status, err["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("Idempotency-Key"))
        );
        assert!(queue.bodies().is_empty(), "nothing enqueued");
    }

    #[tokio::test]
    async fn queue_outage_is_a_503_not_an_acceptance() {
        let (deps, queue) = deps();
        queue
            .fail_all
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (status, body) = post(deps, json!({"notifications": [item("u1")]}), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.get("accepted").is_none());
    }
}
