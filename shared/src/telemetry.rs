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
        // Colours only for a terminal: a log redirected to a file stays plain text.
        use std::io::IsTerminal;
        builder
            .compact()
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
    // A second init (tests, local runner) keeps the first subscriber.
    let _ = result;
}

/// One metric of an EMF record: one value, or many (CloudWatch keeps every value, so
/// percentiles of a distribution such as a latency come out right).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    pub values: Vec<f64>,
}

impl<'a> Metric<'a> {
    pub fn count(name: &'a str, value: usize) -> Self {
        Self {
            name,
            unit: "Count",
            values: vec![value as f64],
        }
    }

    pub fn milliseconds(name: &'a str, values: Vec<f64>) -> Self {
        Self {
            name,
            unit: "Milliseconds",
            values,
        }
    }
}

/// EMF takes at most 100 values per metric in one record.
const MAX_VALUES: usize = 100;

/// One EMF record: CloudWatch turns the line into metrics without an API call.
pub fn emit_metrics(function: &str, metrics: &[(&str, f64, &str)]) {
    let metrics: Vec<Metric> = metrics
        .iter()
        .map(|(name, value, unit)| Metric {
            name,
            unit,
            values: vec![*value],
        })
        .collect();
    emit(function, &[], &metrics);
}

/// EMF records of `metrics` under the dimension `function`, and also under `function` plus
/// `dimensions` when there are any (e.g. a channel): one line per 100 values.
pub fn emit(function: &str, dimensions: &[(&str, &str)], metrics: &[Metric]) {
    // EMF lines only mean something to CloudWatch; elsewhere they would drown the logs.
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return;
    }
    let timestamp = jiff::Timestamp::now().as_millisecond();
    let mut out = std::io::stdout().lock();
    for record in emf_records(function, dimensions, metrics, timestamp) {
        // EMF must be its own stdout line, so it bypasses the log formatter.
        let _ = out.write_all(format!("{record}\n").as_bytes());
    }
}

/// The EMF records `emit` writes (pure, for tests).
pub fn emf_records(
    function: &str,
    dimensions: &[(&str, &str)],
    metrics: &[Metric],
    timestamp: i64,
) -> Vec<Value> {
    let metrics: Vec<&Metric> = metrics.iter().filter(|m| !m.values.is_empty()).collect();
    let rounds = metrics
        .iter()
        .map(|m| m.values.len().div_ceil(MAX_VALUES))
        .max()
        .unwrap_or(0);
    let mut dimension_sets = vec![json!(["function"])];
    if !dimensions.is_empty() {
        let mut set = vec!["function"];
        set.extend(dimensions.iter().map(|(k, _)| *k));
        dimension_sets.push(json!(set));
    }
    (0..rounds)
        .map(|round| {
            let mut root = Map::new();
            let mut defs = Vec::new();
            for metric in &metrics {
                let chunk: Vec<f64> = metric
                    .values
                    .iter()
                    .skip(round * MAX_VALUES)
                    .take(MAX_VALUES)
                    .copied()
                    .collect();
                let value = match chunk.as_slice() {
                    [] => continue,
                    [one] => json!(one),
                    many => json!(many),
                };
                defs.push(json!({"Name": metric.name, "Unit": metric.unit}));
                root.insert(metric.name.into(), value);
            }
            root.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp,
                    "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": dimension_sets, "Metrics": defs}]
                }),
            );
            root.insert("function".into(), json!(function));
            for (k, v) in dimensions {
                root.insert((*k).into(), json!(v));
            }
            Value::Object(root)
        })
        .collect()
}

/// Milliseconds from `then` (a notification's `created_at`) until now; 0 for a time ahead.
pub fn ms_since(then: jiff::Timestamp) -> f64 {
    let elapsed = jiff::Timestamp::now().duration_since(then);
    (elapsed.as_secs_f64() * 1000.0).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_records_carry_dimensions_and_split_distributions_by_100() {
        let latencies: Vec<f64> = (0..250).map(f64::from).collect();
        let records = emf_records(
            "deliver",
            &[("channel", "email")],
            &[
                Metric::count("DeliveriesSent", 3),
                Metric::milliseconds("IngestToSend", latencies),
                Metric::milliseconds("Empty", Vec::new()),
            ],
            7,
        );
        assert_eq!(records.len(), 3);
        let first = &records[0];
        assert_eq!(first["function"], "deliver");
        assert_eq!(first["channel"], "email");
        assert_eq!(first["DeliveriesSent"], 3.0);
        assert_eq!(first["IngestToSend"].as_array().unwrap().len(), 100);
        assert!(first.get("Empty").is_none());
        let aws = &first["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(aws["Namespace"], "herald");
        assert_eq!(
            aws["Dimensions"],
            json!([["function"], ["function", "channel"]])
        );
        assert_eq!(records[2]["IngestToSend"].as_array().unwrap().len(), 50);
        assert!(
            records[1].get("DeliveriesSent").is_none(),
            "a count is emitted once"
        );
        let total: usize = records
            .iter()
            .map(|r| r["IngestToSend"].as_array().map_or(1, Vec::len))
            .sum();
        assert_eq!(total, 250);
    }

    #[test]
    fn latency_since_an_rfc3339_time() {
        let earlier = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(2);
        let ms = ms_since(earlier);
        assert!((1_900.0..60_000.0).contains(&ms), "{ms}");
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
        assert_eq!(ms_since(later), 0.0, "a clock ahead is no latency");
    }
}
