//! Logs (tracing; JSON inside Lambda) and metrics as CloudWatch Embedded Metric Format.

use std::io::Write;

use serde_json::{json, Map, Value};
use tracing_subscriber::EnvFilter;

/// Namespace of every herald metric.
pub const NAMESPACE: &str = "herald";

/// Installs the global subscriber: JSON inside Lambda, compact text elsewhere.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder
            .json()
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests, local runner) keeps the first subscriber.
    let _ = result;
}

/// One EMF record: CloudWatch turns the line into metrics without an API call.
pub fn emit_metrics(function: &str, metrics: &[(&str, f64, &str)]) {
    // EMF lines only mean something to CloudWatch; elsewhere they would drown the logs.
    if metrics.is_empty() || std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return;
    }
    let mut root = Map::new();
    let defs: Vec<Value> = metrics
        .iter()
        .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": jiff::Timestamp::now().as_millisecond(),
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["function"]], "Metrics": defs}]
        }),
    );
    root.insert("function".into(), json!(function));
    for (name, value, _) in metrics {
        root.insert((*name).into(), json!(value));
    }
    let mut line = Value::Object(root).to_string();
    line.push('\n');
    // EMF must be its own stdout line, so it bypasses the log formatter.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// RFC 3339 UTC timestamp with milliseconds: sorts as text.
pub fn now_rfc3339() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}
