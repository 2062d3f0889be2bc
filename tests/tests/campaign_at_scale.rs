//! A campaign under the faults of a burst, through herald's own code over in-memory adapters
//! (`testkit::campaign_sim`): recipients in 30 time zones, one in ten opted out, duplicated
//! and redelivered messages, killed invocations, store and provider throttling, lost provider
//! answers, and a cancel half-way. Every promise is checked by the simulation itself and
//! reported as a violation; this test wants none, and checks the run met its faults.
//!
//! The suite runs it at `HERALD_SIM_RECIPIENTS` recipients (default 100,000); `cargo xtask
//! bench campaign --recipients 1000000` runs the same simulation at a million and reports it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use testkit::campaign_sim::{run, SimConfig};

fn recipients() -> usize {
    std::env::var("HERALD_SIM_RECIPIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

#[tokio::test]
async fn a_campaign_under_faults_reaches_each_recipient_at_most_once_and_stops_when_cancelled() {
    let report = run(&SimConfig::new(recipients())).await;
    let summary = serde_json::to_string_pretty(&report).unwrap();
    assert!(report.violations.is_empty(), "{summary}");
    // The run met what it is about.
    assert!(report.kills > 0, "no invocation was killed: {summary}");
    assert!(report.lost_acks > 0, "no ack was lost: {summary}");
    assert!(
        report.in_inbox_at_cancel.is_some(),
        "never cancelled: {summary}"
    );
    assert!(
        report.simulated_hours > 20.0,
        "local time spans the zones: {summary}"
    );
    let skipped = |reason: &str| report.progress.skipped_by.get(reason).copied().unwrap_or(0);
    assert!(skipped("opted_out") > 0, "{summary}");
    assert!(skipped("cancelled") > 0, "{summary}");
    assert!(report.in_inbox > 0 && report.emails > 0, "{summary}");
    // The same few items per progress read, whatever the audience.
    assert_eq!(
        report.progress_items.iter().copied().collect::<Vec<_>>(),
        vec![17],
        "{summary}"
    );
}

#[tokio::test]
async fn a_progress_read_touches_the_same_items_for_a_hundred_users() {
    let mut config = SimConfig::new(100);
    config.cancel_at = None;
    let report = run(&config).await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(
        report.progress_items.iter().copied().collect::<Vec<_>>(),
        vec![17]
    );
}
