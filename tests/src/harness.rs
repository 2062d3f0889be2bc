//! Test harness: a fresh, uniquely named stack per test, and helpers to look at its state.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::emulator::test_endpoint;
use crate::stack::Stack;
use crate::template::Template;

/// A stack of the project's template with its own tables and queues.
pub async fn test_stack(overrides: &[(&str, &str)]) -> Result<Stack> {
    let endpoint = test_endpoint()?;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let prefix = format!("t{}", &id[id.len() - 10..]);
    Stack::provision(&endpoint, &prefix, Template::project()?, overrides).await
}

/// A stack in an emulator of its own (stopped when the returned `Emulator` drops), for tests
/// that write a lot: the emulator copies every table for each transaction, so their data
/// would slow down every other test sharing one.
pub async fn private_stack(
    overrides: &[(&str, &str)],
) -> Result<(crate::emulator::Emulator, Stack)> {
    let root = crate::workspace_root();
    let venv = crate::tools::dev_venv(&root)?;
    let port = crate::emulator::free_port()?;
    let log = std::env::temp_dir().join(format!("herald-moto-{port}.log"));
    let emulator = crate::emulator::Emulator::start(&venv, port, &log)?;
    let stack = Stack::provision(
        &emulator.endpoint,
        "private",
        Template::project()?,
        overrides,
    )
    .await?;
    Ok((emulator, stack))
}

/// Visible + in-flight + delayed messages of a queue of the stack.
pub async fn queue_depth(stack: &Stack, logical_id: &str) -> Result<u64> {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let out = sqs
        .get_queue_attributes()
        .queue_url(&stack.resource(logical_id)?.reference)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?;
    let attrs = out.attributes.unwrap_or_default();
    let count = |name: QueueAttributeName| {
        attrs
            .get(&name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        + count(QueueAttributeName::ApproximateNumberOfMessagesDelayed))
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One real HTTP call (blocking client on a worker thread) with `token` as the bearer token
/// when given: (status, JSON body or Null).
pub async fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let (method, url) = (method.to_owned(), url.to_owned());
    let authorization = token.map(|t| format!("Bearer {t}"));
    tokio::task::spawn_blocking(move || {
        let mut req = ureq::request(&method, &url).timeout(Duration::from_secs(30));
        if let Some(authorization) = &authorization {
            req = req.set("authorization", authorization);
        }
        let result = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow::Error::from(e)),
        };
        let status = response.status();
        let text = response.into_string()?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    })
    .await?
}

/// One request to `router` in-process (no socket), with `token` as the bearer token when
/// given: (status, JSON body or Null).
pub async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map_or(axum::body::Body::empty(), |b| {
        axum::body::Body::from(b.to_string())
    });
    let response = router.clone().oneshot(request.body(body)?).await?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Emails moto recorded as sent (Simple and Raw) to `address`.
pub fn emails_to(endpoint: &str, address: &str) -> Result<Vec<Value>> {
    let data = crate::emulator::sent_data(endpoint)?;
    let mut out = Vec::new();
    for m in data["ses"]["Message"].as_array().into_iter().flatten() {
        if m["destinations"]["ToAddresses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t == address))
        {
            out.push(m.clone());
        }
    }
    for m in data["ses"]["RawMessage"].as_array().into_iter().flatten() {
        let to_me = m["destinations"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t == address))
            || m["raw_data"]
                .as_str()
                .is_some_and(|r| r.contains(&format!("To: {address}")));
        if to_me {
            out.push(m.clone());
        }
    }
    Ok(out)
}

/// SMS moto recorded as sent to `phone`.
pub fn sms_to(endpoint: &str, phone: &str) -> Result<Vec<Value>> {
    let data = crate::emulator::sent_data(endpoint)?;
    Ok(data["sns"]["SMS"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["phone_number"] == phone)
        .cloned()
        .collect())
}

/// ReceiveMessage on a queue of the stack, as the consumer core sees messages.
pub async fn receive(
    stack: &Stack,
    logical_id: &str,
    visibility_seconds: i32,
) -> Result<Vec<herald::consumer::QueueMessage>> {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let out = sqs
        .receive_message()
        .queue_url(&stack.resource(logical_id)?.reference)
        .max_number_of_messages(10)
        .visibility_timeout(visibility_seconds)
        .wait_time_seconds(1)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(herald::consumer::QueueMessage::from)
        .collect())
}

/// The `herald-reason` attributes of `expected` messages on a DLQ (SQS may return fewer
/// than are there per call, so this keeps receiving; what it read stays hidden for a minute).
pub async fn dlq_reasons(stack: &Stack, logical_id: &str, expected: usize) -> Result<Vec<String>> {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let url = stack.resource(logical_id)?.reference.clone();
    let mut reasons = Vec::new();
    let started = Instant::now();
    while reasons.len() < expected && started.elapsed() < Duration::from_secs(10) {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await?;
        for m in out.messages.unwrap_or_default() {
            let reason = m
                .message_attributes()
                .and_then(|a| a.get(herald::consumer::DLQ_REASON_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .unwrap_or("<no reason attribute>");
            reasons.push(reason.to_owned());
        }
    }
    Ok(reasons)
}

/// An SQS event as Lambda would deliver these messages.
pub fn sqs_event(
    messages: &[herald::consumer::QueueMessage],
) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes.insert(
                "ApproximateReceiveCount".into(),
                m.receive_count.to_string(),
            );
            record
        })
        .collect();
    event
}
