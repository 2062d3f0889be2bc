//! The live feed locally, run by the same handler code as on AWS. The gateway plays API
//! Gateway's WebSocket API: `GET /live?token=` runs the authorizer (a refusal is a 403 and
//! no socket), then `$connect`; each client frame goes to `$default` and its answer back on
//! the socket; a close runs `$disconnect`. Its management API (`POST /@connections/{id}`,
//! SigV4-signed as on AWS) takes the pusher's frames to the socket, and answers 410 Gone for
//! a connection it does not hold. The stream poller plays Lambda's event source mapping on
//! the inbox table's stream in the emulator, for each of its consumers (the pusher, the change
//! log): records in order, the template's batch size and filter, a consumer's batch item
//! failures retried as `MaximumRetryAttempts` says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use live::authorizer::Authorizer;
use live::push::Pusher;
use live::socket::{RouteContext, RouteEvent, Socket};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The local WebSocket API: the authorizer and routes, and the open sockets by connection id.
#[derive(Clone)]
pub struct LiveGateway {
    authorizer: Arc<Authorizer>,
    socket: Arc<Socket>,
    open: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>>,
}

impl LiveGateway {
    pub fn new(authorizer: Authorizer, socket: Socket) -> Self {
        Self {
            authorizer: Arc::new(authorizer),
            socket: Arc::new(socket),
            open: Arc::default(),
        }
    }

    /// `GET /live` (the WebSocket) and the management API (`/@connections/{id}`).
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/live", get(upgrade))
            .route(
                "/@connections/{id}",
                post(post_to_connection).delete(delete_connection),
            )
            .with_state(self.clone())
    }

    /// The authorizer, as the gateway runs it on `$connect`.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// The routes' function.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// How many sockets are open (tests).
    pub fn open_connections(&self) -> usize {
        self.sockets().len()
    }

    fn sockets(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Message>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open socket `id`, for the management API; `None` answers 410 Gone.
    fn socket_of(&self, id: &str) -> Option<mpsc::UnboundedSender<Message>> {
        self.sockets().get(id).cloned()
    }
}

async fn upgrade(
    State(gateway): State<LiveGateway>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // The REQUEST authorizer's event, as API Gateway sends it for $connect.
    let request = json!({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:local/live/$connect",
        "headers": headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect::<HashMap<_, _>>(),
        "queryStringParameters": query,
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT"},
    });
    let policy = match serde_json::from_value(request) {
        Ok(request) => gateway.authorizer.authorize(&request).await,
        Err(e) => {
            tracing::warn!(error = %e, "the authorizer's event");
            return gateway_error(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    // As API Gateway answers: a Deny policy is a 403, a failed authorizer a 500.
    let context = match policy {
        Ok(policy) => match policy.allowed() {
            Some(context) => context.clone(),
            None => return gateway_error(StatusCode::FORBIDDEN),
        },
        Err(e) => {
            tracing::warn!(error = %e, "the authorizer failed");
            return gateway_error(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let Ok(ws) = ws else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "a WebSocket upgrade is expected here"})),
        )
            .into_response();
    };
    let connection_id = new_connection_id();
    let connect = route_event("$connect", &connection_id, &context, None);
    if let Err(e) = gateway.socket.handle(&connect).await {
        tracing::warn!(error = %e, "$connect failed");
        return gateway_error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    ws.on_upgrade(move |socket| run_connection(gateway, socket, connection_id, context))
}

/// API Gateway's own answers before a socket opens.
fn gateway_error(status: StatusCode) -> Response {
    let message = match status {
        StatusCode::FORBIDDEN => "Forbidden",
        _ => "Internal server error",
    };
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// One open socket: the client's frames to `$default` and its answers back; the pusher's
/// frames (through the management API) out; `$disconnect` when it closes.
async fn run_connection(
    gateway: LiveGateway,
    mut socket: WebSocket,
    connection_id: String,
    context: live::authorizer::ConnectionContext,
) {
    let (sender, mut outgoing) = mpsc::unbounded_channel();
    gateway.sockets().insert(connection_id.clone(), sender);
    loop {
        tokio::select! {
            frame = outgoing.recv() => match frame {
                Some(Message::Close(_)) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
                Some(frame) => {
                    if socket.send(frame).await.is_err() {
                        break;
                    }
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let event = route_event("$default", &connection_id, &context, Some(text.to_string()));
                    match gateway.socket.handle(&event).await {
                        Ok(answer) => {
                            if let Some(body) = answer.body {
                                if socket.send(Message::Text(body.into())).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "$default failed"),
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    gateway.sockets().remove(&connection_id);
    let disconnect = route_event("$disconnect", &connection_id, &context, None);
    if let Err(e) = gateway.socket.handle(&disconnect).await {
        tracing::warn!(error = %e, "$disconnect failed");
    }
}

fn route_event(
    route_key: &str,
    connection_id: &str,
    context: &live::authorizer::ConnectionContext,
    body: Option<String>,
) -> RouteEvent {
    RouteEvent {
        request_context: RouteContext {
            route_key: route_key.to_owned(),
            connection_id: connection_id.to_owned(),
            authorizer: Some(context.clone()),
        },
        body,
        is_base64_encoded: false,
    }
}

/// An id of API Gateway's shape (`L0SM9cOFvHcCIhw=`).
fn new_connection_id() -> String {
    use base64::Engine;
    let bytes: [u8; 10] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// API Gateway answers a management call without SigV4 with 403; so does this.
fn signed(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "))
}

fn management_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-errortype", kind)],
        axum::Json(json!({"message": message})),
    )
        .into_response()
}

async fn post_to_connection(
    State(gateway): State<LiveGateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !signed(&headers) {
        return management_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    match gateway.socket_of(&id) {
        Some(sender) if sender.send(Message::Text(text.into())).is_ok() => {
            StatusCode::OK.into_response()
        }
        _ => management_error(StatusCode::GONE, "GoneException", "Gone"),
    }
}

async fn delete_connection(
    State(gateway): State<LiveGateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !signed(&headers) {
        return management_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
    }
    match gateway.socket_of(&id) {
        Some(sender) => {
            let _ = sender.send(Message::Close(None));
            StatusCode::NO_CONTENT.into_response()
        }
        None => management_error(StatusCode::GONE, "GoneException", "Gone"),
    }
}

/// The demo page (`/demo`: `clients/js/demo/index.html`) and the browser client's files
/// (`/clients/js/<file>`), read from the workspace on each request so edits show at once.
pub fn demo_routes(root: std::path::PathBuf) -> Router {
    let js = root.join("clients/js");
    let demo = js.join("demo/index.html");
    Router::new()
        .route(
            "/demo",
            get(move || {
                let demo = demo.clone();
                async move { static_file(&demo, "text/html; charset=utf-8").await }
            }),
        )
        .route(
            "/clients/js/{file}",
            get(move |Path(file): Path<String>| {
                let js = js.clone();
                async move {
                    let plain = !file.is_empty()
                        && !file.starts_with('.')
                        && file
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
                    if !plain || !(file.ends_with(".js") || file.ends_with(".ts")) {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    static_file(&js.join(file), "text/javascript; charset=utf-8").await
                }
            }),
        )
}

async fn static_file(path: &std::path::Path, content_type: &'static str) -> Response {
    match tokio::fs::read(path).await {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A DynamoDB event source as the template declares it.
#[derive(Debug, Clone)]
pub struct StreamEventSource {
    pub batch_size: i32,
    pub maximum_retry_attempts: u32,
    /// `FilterCriteria.Filters[].Pattern`, parsed.
    pub filters: Vec<Value>,
}

/// Lambda's event filtering, for what herald's patterns use: nested objects, and arrays of
/// accepted values (exact strings, or `{"prefix": …}`).
pub fn matches_pattern(pattern: &Value, record: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, wanted)| {
            record
                .get(key)
                .is_some_and(|value| matches_pattern(wanted, value))
        }),
        Value::Array(accepted) => accepted.iter().any(|one| match one {
            Value::Object(rule) => match (rule.get("prefix"), record.as_str()) {
                (Some(Value::String(prefix)), Some(value)) => value.starts_with(prefix.as_str()),
                _ => false,
            },
            exact => exact == record,
        }),
        exact => exact == record,
    }
}

/// A function on the inbox table's stream, as Lambda hands it batches.
#[async_trait::async_trait]
pub trait StreamConsumer: Send + Sync {
    /// One batch; the sequence number of the record to hand it over again from, if any.
    async fn consume(&self, event: &aws_lambda_events::event::dynamodb::Event) -> Option<String>;
}

#[async_trait::async_trait]
impl StreamConsumer for Pusher {
    async fn consume(&self, event: &aws_lambda_events::event::dynamodb::Event) -> Option<String> {
        let (_, response) = self.handle(event).await;
        response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.clone())
    }
}

#[async_trait::async_trait]
impl StreamConsumer for reconcile::change_log::ChangeLogger {
    async fn consume(&self, event: &aws_lambda_events::event::dynamodb::Event) -> Option<String> {
        let (_, response) = self.handle(event).await;
        response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.clone())
    }
}

/// Reads the stream at `stream_arn` from its start and hands each batch to `consumer`,
/// until `shutdown`. Signed as the consuming function (its role must allow the reads).
pub async fn run_stream(
    sdk: aws_config::SdkConfig,
    stream_arn: String,
    source: StreamEventSource,
    consumer: Arc<dyn StreamConsumer>,
    shutdown: CancellationToken,
) {
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let mut iterator = None;
    while !shutdown.is_cancelled() {
        if iterator.is_none() {
            iterator = match first_iterator(&streams, &stream_arn).await {
                Ok(it) => Some(it),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the inbox stream");
                    None
                }
            };
        }
        let mut idle = true;
        if let Some(current) = iterator.clone() {
            match streams
                .get_records()
                .shard_iterator(current)
                .limit(source.batch_size)
                .send()
                .await
            {
                Ok(page) => {
                    iterator = page.next_shard_iterator().map(str::to_owned);
                    let records: Vec<Value> = page
                        .records()
                        .iter()
                        .map(|r| lambda_record(r, &stream_arn))
                        .filter(|r| source.filters.iter().any(|f| matches_pattern(f, r)))
                        .collect();
                    if !page.records().is_empty() {
                        idle = false;
                    }
                    if !records.is_empty() {
                        deliver(consumer.as_ref(), records, source.maximum_retry_attempts).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e), "reading the inbox stream");
                    iterator = None;
                }
            }
        }
        if idle {
            // Lambda polls a shard four times a second.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

/// Reads the stream from its start to its current end, each batch (of the source's size and
/// filter) through `consumer`: the records read, and the batches handed over (`cargo xtask
/// bench live`, which counts what the pusher costs per notification).
pub async fn drain_stream(
    sdk: &aws_config::SdkConfig,
    stream_arn: &str,
    source: &StreamEventSource,
    consumer: &dyn StreamConsumer,
) -> Result<(usize, usize)> {
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let mut iterator = Some(first_iterator(&streams, stream_arn).await?);
    let (mut read, mut batches) = (0, 0);
    while let Some(current) = iterator {
        let page = streams
            .get_records()
            .shard_iterator(current)
            .limit(source.batch_size)
            .send()
            .await?;
        if page.records().is_empty() {
            break;
        }
        read += page.records().len();
        let records: Vec<Value> = page
            .records()
            .iter()
            .map(|r| lambda_record(r, stream_arn))
            .filter(|r| source.filters.iter().any(|f| matches_pattern(f, r)))
            .collect();
        if !records.is_empty() {
            deliver(consumer, records, source.maximum_retry_attempts).await;
            batches += 1;
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    Ok((read, batches))
}

/// One batch to the consumer; a reported failure runs again from that record, up to
/// `retries` times (then the rest is skipped, as `MaximumRetryAttempts` does).
async fn deliver(consumer: &dyn StreamConsumer, mut records: Vec<Value>, retries: u32) {
    for attempt in 0..=retries {
        let event: aws_lambda_events::event::dynamodb::Event =
            match serde_json::from_value(json!({ "Records": records })) {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "a stream record the consumer cannot read");
                    return;
                }
            };
        let Some(failed) = consumer.consume(&event).await else {
            return;
        };
        tracing::warn!(attempt, sequence = %failed, "the consumer asked for a retry");
        let from = records
            .iter()
            .position(|r| r["dynamodb"]["SequenceNumber"] == Value::String(failed.clone()))
            .unwrap_or(0);
        records.drain(..from);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn first_iterator(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Result<String> {
    let stream = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await?;
    let shard = stream
        .stream_description()
        .and_then(|d| d.shards().first())
        .and_then(|s| s.shard_id())
        .context("the stream has no shard")?
        .to_owned();
    // The table is as new as the local stack: from its start, nothing is missed.
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
        .send()
        .await?;
    iterator
        .shard_iterator()
        .map(str::to_owned)
        .context("no shard iterator")
}

/// A GetRecords record as Lambda hands it to a function (DynamoDB JSON images).
fn lambda_record(record: &aws_sdk_dynamodbstreams::types::Record, stream_arn: &str) -> Value {
    let change = record.dynamodb();
    let image = |item: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        let item: serde_dynamo::Item = item.cloned().unwrap_or_default().into();
        serde_json::to_value(item).unwrap_or_default()
    };
    json!({
        "eventID": record.event_id().unwrap_or_default(),
        "eventName": record.event_name().map(|e| e.as_str()).unwrap_or_default(),
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "awsRegion": crate::emulator::REGION,
        "eventSourceARN": stream_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": change
                .and_then(|c| c.approximate_creation_date_time())
                .map(|t| t.secs())
                .unwrap_or_default(),
            "Keys": image(change.and_then(|c| c.keys.as_ref())),
            "NewImage": image(change.and_then(|c| c.new_image.as_ref())),
            "OldImage": image(change.and_then(|c| c.old_image.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number()).unwrap_or_default(),
            "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or_default(),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_lambdas_filtering_does_for_prefixes_and_values() {
        let pattern: Value = serde_json::from_str(
            r#"{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "M#"}, {"prefix": "R#"}, "TOTAL"]}}}}"#,
        )
        .unwrap();
        let record = |event: &str, sk: &str| json!({"eventName": event, "dynamodb": {"Keys": {"sk": {"S": sk}}}});
        assert!(matches_pattern(&pattern, &record("INSERT", "M#01J")));
        assert!(matches_pattern(&pattern, &record("MODIFY", "R#general")));
        assert!(matches_pattern(&pattern, &record("MODIFY", "TOTAL")));
        assert!(!matches_pattern(&pattern, &record("MODIFY", "TOTALLY")));
        assert!(!matches_pattern(&pattern, &record("INSERT", "I#key")));
        assert!(!matches_pattern(&pattern, &record("REMOVE", "M#01J")));
        assert!(!matches_pattern(&pattern, &json!({"eventName": "INSERT"})));
    }
}
