//! The benchmark's report: a summary on stderr and the throughput chart as SVG.

use serde_json::Value;

pub(super) fn summarize(result: &Value) {
    let e = &result["emulator"];
    let s = &result["simulation"];
    eprintln!(
        "\n== against the emulator ({} notifications, {} users, {} workers)",
        e["notifications"], e["users"], e["workers"]
    );
    eprintln!(
        "  DynamoDB write units / 1,000:       {:.0} (table {:.0} + indexes {:.0})",
        e["dynamodb"]["write_units_per_1000"]
            .as_f64()
            .unwrap_or(0.0),
        e["dynamodb"]["table_write_units_per_1000"]
            .as_f64()
            .unwrap_or(0.0),
        e["dynamodb"]["index_write_units_per_1000"]
            .as_f64()
            .unwrap_or(0.0)
    );
    eprintln!(
        "  TransactWriteItems / 1,000:         {:.0}",
        e["dynamodb"]["transact_write_items_per_1000"]
            .as_f64()
            .unwrap_or(0.0)
    );
    eprintln!(
        "  SQS requests / 1,000:               {:.0}",
        e["sqs"]["requests_per_1000"].as_f64().unwrap_or(0.0)
    );
    eprintln!(
        "  herald CPU ms / 1,000:              {:.0} in the handler, {:.0} with local polling",
        e["cpu_ms_per_1000"].as_f64().unwrap_or(0.0),
        e["process_cpu_ms_per_1000"].as_f64().unwrap_or(0.0)
    );
    eprintln!(
        "  ingest->counter latency p50/p99 ms: {:.0} / {:.0} (emulator-bound)",
        e["ingest_to_counter_ms"]["p50"].as_f64().unwrap_or(0.0),
        e["ingest_to_counter_ms"]["p99"].as_f64().unwrap_or(0.0)
    );
    configurations_table(&result["configurations"]);
    eprintln!("\n== tokio runtime, one worker over the in-memory store (herald CPU ms / 1,000)");
    for (flavor, r) in result["runtimes"].as_object().into_iter().flatten() {
        eprintln!(
            "  {flavor:<16} {:>8.0}",
            r["cpu_ms_per_1000"].as_f64().unwrap_or(0.0)
        );
    }
    let c = &result["commit_concurrency"];
    eprintln!("\n== {}", c["label"].as_str().unwrap_or(""));
    for p in c["points"].as_array().into_iter().flatten() {
        eprintln!(
            "  {} pack(s) in flight: {:>7.0} notifications/s",
            p["concurrency"],
            p["notifications_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    eprintln!("\n== {}", s["label"].as_str().unwrap_or(""));
    for p in s["points"].as_array().into_iter().flatten() {
        eprintln!(
            "  {:>2} workers: {:>7.0} notifications/s",
            p["workers"],
            p["notifications_per_s"].as_f64().unwrap_or(0.0)
        );
    }
}

/// One line per emulator configuration.
pub(super) fn configurations_table(configurations: &Value) {
    eprintln!(
        "\n== configurations against the emulator (per notification; CPU and modelled Lambda per 1,000;\n   CPU: the handler's own, then the whole process with the local poller)"
    );
    eprintln!(
        "  {:<22} {:>9} {:>6} {:>6} {:>8} {:>8} {:>10}",
        "", "DynamoDB", "WRU", "SQS", "CPU ms", "process", "model ms"
    );
    for (label, c) in configurations.as_object().into_iter().flatten() {
        let f = |k: &str| c[k].as_f64().unwrap_or(0.0);
        eprintln!(
            "  {label:<22} {:>9.3} {:>6.2} {:>6.3} {:>8.0} {:>8.0} {:>10.0}",
            f("dynamodb_requests_per_notification"),
            f("wru_per_notification"),
            f("sqs_requests_per_notification"),
            f("cpu_ms_per_1000"),
            f("process_cpu_ms_per_1000"),
            f("modelled_lambda_ms_per_1000"),
        );
    }
}

/// Throughput against workers, with the ideal linear line for comparison.
pub(super) fn throughput_svg(sim: &Value) -> String {
    let points: Vec<(f64, f64)> = sim["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["workers"].as_f64().unwrap_or(0.0),
                p["notifications_per_s"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let (w, h, pad) = (640.0, 400.0, 60.0);
    let max_x = 16.0;
    let base = points.first().map_or(1.0, |p| p.1);
    let max_y = points.iter().map(|p| p.1).fold(base * max_x, f64::max) * 1.05;
    let x = |v: f64| pad + (v / max_x) * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v / max_y) * (h - 2.0 * pad);
    let ideal = format!(
        "{:.1},{:.1} {:.1},{:.1}",
        x(1.0),
        y(base),
        x(max_x),
        y(base * max_x)
    );
    let line: Vec<String> = points
        .iter()
        .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
        .collect();
    let dots: String = points
        .iter()
        .map(|(a, b)| {
            format!(
                "<circle cx='{:.1}' cy='{:.1}' r='4' fill='#1f77b4'/><text x='{:.1}' y='{:.1}' font-size='11'>{:.0}/s</text>",
                x(*a), y(*b), x(*a) + 6.0, y(*b) - 6.0, b
            )
        })
        .collect();
    let ticks: String = [1.0, 2.0, 4.0, 8.0, 16.0]
        .iter()
        .map(|t| {
            format!(
                "<text x='{:.1}' y='{:.1}' font-size='12' text-anchor='middle'>{t}</text>",
                x(*t),
                h - pad + 18.0
            )
        })
        .collect();
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif'>\
         <rect width='100%' height='100%' fill='white'/>\
         <text x='{cx}' y='24' font-size='15' text-anchor='middle'>herald inbox-writer: notifications/s vs workers (SIMULATION, {lat} ms/call)</text>\
         <line x1='{pad}' y1='{yb}' x2='{xr}' y2='{yb}' stroke='black'/><line x1='{pad}' y1='{pad}' x2='{pad}' y2='{yb}' stroke='black'/>\
         <polyline points='{ideal}' fill='none' stroke='#999' stroke-dasharray='6,4'/>\
         <polyline points='{line}' fill='none' stroke='#1f77b4' stroke-width='2'/>{dots}{ticks}\
         <text x='{cx}' y='{xl}' font-size='12' text-anchor='middle'>workers</text>\
         <text x='{xr}' y='{yi}' font-size='11' text-anchor='end' fill='#666'>dashed: linear from 1 worker</text></svg>",
        cx = w / 2.0,
        lat = sim["latency_ms_per_call"],
        yb = h - pad,
        xr = w - pad,
        line = line.join(" "),
        xl = h - 12.0,
        yi = pad - 8.0,
    )
}
