//! `cargo xtask bench campaign`: three tenants' campaigns starting at the same moment, one
//! large and two small. Two parts, reported separately:
//! - SIMULATION (the default 100,000 users): the real campaign runner and inbox writer over
//!   in-memory stores and queues with injected latency per call. It shows the fan-out's shape
//!   (requests per notification, interleaving of tenants), not AWS's speed.
//! - against the emulator (`--emulator-users`, default 5,000 in all): the local runner end to
//!   end, through `POST /v1/campaigns` with S3 audiences; wall time and notifications/s there
//!   are the emulator's (one Python process), not AWS's.
//!
//! Writes target/bench/campaign.json and campaign-progress.svg (each tenant's committed share
//! over time in the simulation).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use herald::domain::campaign::{AudienceSpec, Campaign, CampaignRequest, CampaignWork};
use herald::domain::counters::commit::Packing;
use herald::domain::ids::CampaignId;
use herald::fake::{
    Faults, InMemoryAudiences, InMemoryCampaigns, InMemoryDirectory, InMemoryInbox, RecordingQueue,
    RecordingScheduler,
};
use herald::ports::{CampaignStore, OutgoingMessage, QueueSender, SystemClock};
use herald::progress::CampaignGate;
use herald::TenantId;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use testkit::sim::{drain_fed_by, SimQueue};

use super::SIM_LATENCY;

/// The three tenants and their share of the users: one big campaign, two small ones.
const TENANTS: [(&str, f64); 3] = [
    ("big-retailer", 0.8),
    ("small-shop", 0.1),
    ("tiny-app", 0.1),
];
/// Workers per queue, as the template's defaults (CampaignMaxConcurrency,
/// MarketingMaxConcurrency).
const CAMPAIGN_WORKERS: usize = 5;
const WRITER_WORKERS: usize = 10;
const WRITER_BATCH: usize = 100;

/// Options of `cargo xtask bench campaign`.
#[derive(Debug, clap::Args)]
pub struct CampaignArgs {
    /// Users in the simulation, over the three tenants.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Users against the emulator, over the three tenants (0: skip).
    #[arg(long, default_value_t = 5_000)]
    emulator_users: usize,
    /// Recipients of the one campaign of the fault simulation (testkit::campaign_sim: 30
    /// time zones, killed invocations, duplicates, lost acks, throttling, lost provider
    /// answers, 10 % opted out, a cancel half-way; 0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    recipients: usize,
    /// Recipients of an S3 campaign on the emulator that is cancelled half-way (0: skip).
    #[arg(long, default_value_t = 10_000)]
    cancel_users: usize,
    /// Campaign emails sent through deliver and the SES adapter on a stubbed SDK client, to
    /// count SES calls one by one and in bulk (0: skip).
    #[arg(long, default_value_t = 1_000)]
    email_recipients: usize,
}

pub fn run(args: &CampaignArgs) -> Result<()> {
    // The handlers log every delivery: at a million, only errors are worth the terminal.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "error");
    }
    herald::telemetry::init_tracing();
    let runtime = tokio::runtime::Runtime::new()?;
    let faults = if args.recipients > 0 {
        Some(runtime.block_on(under_faults(args.recipients))?)
    } else {
        None
    };
    let simulation = runtime.block_on(simulate(args.users))?;
    let emulator = if args.emulator_users > 0 {
        Some(runtime.block_on(against_emulator(args.emulator_users))?)
    } else {
        None
    };
    let cancelled = if args.cancel_users > 0 {
        Some(runtime.block_on(cancel_on_emulator(args.cancel_users))?)
    } else {
        None
    };
    let email = if args.email_recipients > 0 {
        Some(runtime.block_on(email_calls(args.email_recipients))?)
    } else {
        None
    };
    let out_dir = super::out_dir();
    std::fs::create_dir_all(&out_dir)?;
    let result = json!({"faults": faults, "simulation": simulation, "emulator": emulator,
        "cancel_on_emulator": cancelled, "email": email});
    std::fs::write(
        out_dir.join("campaign.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    std::fs::write(
        out_dir.join("campaign-progress.svg"),
        progress_svg(&simulation),
    )?;
    summarize(&result);
    eprintln!(
        "\nwrote {} and campaign-progress.svg",
        out_dir.join("campaign.json").display()
    );
    Ok(())
}

fn summarize(result: &Value) {
    if let Some(e) = result["email"].as_object() {
        eprintln!("\n== campaign email: SES calls (deliver + the SES adapter and SDK, against an HTTP stub of SES v2)");
        for (label, how) in [
            ("one_by_one", "one SendEmail each"),
            ("bulk", "SendBulkEmail"),
        ] {
            let c = &e["calls"][label];
            eprintln!(
                "  {how:<20} {} recipients, batches of {}: {} SendEmail + {} SendBulkEmail = {:.0} calls per 1,000",
                e["recipients"], e["batch"], c["send_email"], c["send_bulk_email"],
                c["ses_calls_per_1000"].as_f64().unwrap_or(0.0)
            );
        }
    }
    if let Some(f) = result["faults"].as_object() {
        let big = &f["run"];
        eprintln!(
            "\n== SIMULATION under faults (testkit::campaign_sim; in-memory, simulated time)"
        );
        eprintln!(
            "  {} recipients, {} eligible: {} in inboxes ({} when the cancel took effect), {} emails; {:.1} s wall, {:.1} h simulated",
            big["config"]["recipients"], big["eligible"], big["in_inbox"], big["in_inbox_at_cancel"],
            big["emails"], f["seconds"].as_f64().unwrap_or(0.0), big["simulated_hours"].as_f64().unwrap_or(0.0)
        );
        eprintln!(
            "  faults met: {} invocations killed, {} acks lost, {} dead letters; promises broken: {}",
            big["kills"], big["lost_acks"], big["dead_letters"],
            big["violations"].as_array().map_or(0, Vec::len)
        );
        eprintln!(
            "  items a progress read touched: {} at {} recipients, {} at 1,000",
            big["progress_items"], big["config"]["recipients"], f["small"]["progress_items"]
        );
        for stage in ["fan_out", "writer", "deliver"] {
            let m = &big[stage]["max"];
            eprintln!(
                "  most one {stage} invocation did: {} SQS calls, {} table calls, {} bytes enqueued ({} invocations)",
                m["sqs_calls"], m["store_calls"], m["bytes_enqueued"], big[stage]["total"]["invocations"]
            );
        }
        let model = &big["model"];
        eprintln!(
            "  MODEL ({}): page chain {:.0} s, writers {:.0} s, deliverers {:.0} s",
            model["note"].as_str().unwrap_or(""),
            model["pages_seconds"].as_f64().unwrap_or(0.0),
            model["writers_seconds"].as_f64().unwrap_or(0.0),
            model["deliverers_seconds"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(c) = result["cancel_on_emulator"].as_object() {
        eprintln!("\n== against the emulator: an S3 campaign cancelled half-way");
        eprintln!(
            "  {} users: DELETE answered with {} committed ({} pending); {} committed at the end, {} skipped as cancelled; {:.1} s",
            c["users"], c["committed_at_delete"], c["pending_at_delete"], c["committed_final"],
            c["skipped_cancelled"], c["seconds"].as_f64().unwrap_or(0.0)
        );
    }
    let s = &result["simulation"];
    eprintln!("\n== {}", s["label"].as_str().unwrap_or(""));
    eprintln!(
        "  {} users over 3 tenants in {:.1} s: {:.0} notifications/s",
        s["users"],
        s["seconds"].as_f64().unwrap_or(0.0),
        s["notifications_per_s"].as_f64().unwrap_or(0.0)
    );
    eprintln!(
        "  per notification: {:.3} SQS requests, {:.3} DynamoDB requests (inbox {:.3}, campaign {:.3})",
        s["sqs_requests_per_notification"].as_f64().unwrap_or(0.0),
        s["dynamodb_requests_per_notification"].as_f64().unwrap_or(0.0),
        s["inbox_requests_per_notification"].as_f64().unwrap_or(0.0),
        s["campaign_requests_per_notification"].as_f64().unwrap_or(0.0),
    );
    for t in s["tenants"].as_array().into_iter().flatten() {
        eprintln!(
            "  {:<14} {:>7} users, all committed after {:.1} s",
            t["tenant"].as_str().unwrap_or(""),
            t["users"],
            t["finished_s"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(e) = result["emulator"].as_object() {
        eprintln!("\n== against the emulator (its speed is one Python process's, not AWS's)");
        eprintln!(
            "  {} users over 3 tenants in {:.1} s: {:.1} notifications/s",
            e["users"],
            e["seconds"].as_f64().unwrap_or(0.0),
            e["notifications_per_s"].as_f64().unwrap_or(0.0)
        );
    }
}

/// The fault simulation at `recipients`, and at 1,000 for the cost of a progress read.
async fn under_faults(recipients: usize) -> Result<Value> {
    let clock = Instant::now();
    let run = testkit::campaign_sim::run(&testkit::campaign_sim::SimConfig::new(recipients)).await;
    let seconds = clock.elapsed().as_secs_f64();
    let small = testkit::campaign_sim::run(&testkit::campaign_sim::SimConfig::new(1_000)).await;
    if !run.violations.is_empty() || !small.violations.is_empty() {
        bail!(
            "promises broken: {:?} {:?}",
            run.violations,
            small.violations
        );
    }
    Ok(json!({
        "label": "SIMULATION under faults: the real runner, writer and deliverer over in-memory adapters in simulated time",
        "seconds": seconds,
        "run": run,
        "small": {"progress_items": small.progress_items, "progress_reads": small.progress_reads},
    }))
}

/// A stack on an emulator of its own, the local runner's app and its workers.
struct EmulatorApp {
    _emulator: testkit::emulator::Emulator,
    app: Arc<testkit::runner::LocalApp>,
    bucket: String,
    s3: aws_sdk_s3::Client,
    shutdown: tokio_util::sync::CancellationToken,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl EmulatorApp {
    async fn start(name: &str) -> Result<Self> {
        use testkit::emulator::{free_port, Emulator};
        let root = testkit::workspace_root();
        let venv = testkit::tools::dev_venv(&root)?;
        let emulator = Emulator::start(
            &venv,
            free_port()?,
            &root.join(format!(".herald/moto-{name}.log")),
        )?;
        let stack = testkit::stack::Stack::provision(
            &emulator.endpoint,
            name,
            testkit::template::Template::project()?,
            &[],
        )
        .await?;
        let app = Arc::new(testkit::runner::LocalApp::new(&stack)?);
        let bucket = stack.resource("AudienceBucket")?.reference.clone();
        let s3 = herald::aws::s3::client(&stack.sdk);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let workers = app.spawn_workers(1, 1, &shutdown);
        Ok(Self {
            _emulator: emulator,
            app,
            bucket,
            s3,
            shutdown,
            workers,
        })
    }
}

/// One campaign from an S3 file on the emulator, cancelled once half its users have it:
/// what `DELETE` answers, and that nothing more is committed once the cancel took effect.
async fn cancel_on_emulator(users: usize) -> Result<Value> {
    use testkit::harness::call;
    let EmulatorApp {
        _emulator,
        app,
        bucket,
        s3,
        shutdown,
        workers,
    } = EmulatorApp::start("bench-cancel").await?;
    let router = app.router();
    let tenant = "acme";
    let token = app.service_token(tenant);
    let key = format!("{tenant}/cancel.csv");
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(audience_file(tenant, users).into())
        .send()
        .await?;
    let clock = Instant::now();
    let (status, created) = call(
        &router,
        "POST",
        "/v1/campaigns",
        Some(&token),
        Some(
            json!({"name": "cancel", "title": "Sale", "body": "30% off", "channels": ["inbox"],
            "audience": {"s3": format!("s3://{bucket}/{key}")}, "send_at": "now"}),
        ),
    )
    .await?;
    if status != 201 {
        bail!("creating the campaign: {status} {created}");
    }
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let progress = |c: &Value, field: &str| c["progress"][field].as_u64().unwrap_or(0);
    loop {
        let (_, c) = call(
            &router,
            "GET",
            &format!("/v1/campaigns/{id}"),
            Some(&token),
            None,
        )
        .await?;
        if progress(&c, "committed") as usize >= users / 2 {
            break;
        }
        if clock.elapsed() > Duration::from_secs(1800) {
            bail!("the campaign stalled at {}", progress(&c, "committed"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, answer) = call(
        &router,
        "DELETE",
        &format!("/v1/campaigns/{id}"),
        Some(&token),
        None,
    )
    .await?;
    if status != 200 {
        bail!("cancel: {status} {answer}");
    }
    // The consumers trust a status for 3 s; after that nothing more may be committed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, settled) = call(
        &router,
        "GET",
        &format!("/v1/campaigns/{id}"),
        Some(&token),
        None,
    )
    .await?;
    let committed_after_ttl = progress(&settled, "committed");
    // Let the queue drain: what is left is skipped.
    loop {
        let (_, c) = call(
            &router,
            "GET",
            &format!("/v1/campaigns/{id}"),
            Some(&token),
            None,
        )
        .await?;
        let p = &c["progress"];
        let settled_all = progress(&c, "committed")
            + p["skipped_by"]["cancelled"].as_u64().unwrap_or(0)
            >= progress(&c, "enqueued");
        if settled_all || clock.elapsed() > Duration::from_secs(1800) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (_, last) = call(
        &router,
        "GET",
        &format!("/v1/campaigns/{id}"),
        Some(&token),
        None,
    )
    .await?;
    shutdown.cancel();
    futures_util::future::join_all(workers).await;
    if progress(&last, "committed") != committed_after_ttl {
        bail!(
            "committed grew after the cancel took effect: {committed_after_ttl} then {}",
            progress(&last, "committed")
        );
    }
    Ok(json!({
        "label": "against the emulator: an S3 campaign, DELETE once half its users have it",
        "users": users,
        "seconds": clock.elapsed().as_secs_f64(),
        "committed_at_delete": progress(&answer, "committed"),
        "pending_at_delete": answer["cancelled"]["pending"],
        "committed_final": progress(&last, "committed"),
        "skipped_cancelled": last["progress"]["skipped_by"]["cancelled"],
        "enqueued": progress(&last, "enqueued"),
        "status": last["status"],
    }))
}

/// Splits `users` over the tenants: (tenant, first user number, count).
fn shares(users: usize) -> Vec<(&'static str, usize)> {
    TENANTS
        .iter()
        .map(|(t, share)| (*t, ((users as f64) * share).round().max(1.0) as usize))
        .collect()
}

fn audience_file(tenant: &str, count: usize) -> Vec<u8> {
    let mut file = String::from("user_id\n");
    for i in 0..count {
        file.push_str(&format!("{tenant}-u{i}\n"));
    }
    file.into_bytes()
}

async fn simulate(users: usize) -> Result<Value> {
    let campaigns = Arc::new(InMemoryCampaigns::with_latency(SIM_LATENCY));
    let audiences = Arc::new(InMemoryAudiences::default());
    let inbox = Arc::new(InMemoryInbox::new(Faults {
        latency: SIM_LATENCY,
        ..Faults::default()
    }));
    let work = Arc::new(SimQueue::new(SIM_LATENCY));
    let marketing = Arc::new(SimQueue::new(SIM_LATENCY));
    let runner = Arc::new(campaigns::CampaignRunner {
        campaigns: campaigns.clone(),
        directory: Arc::new(InMemoryDirectory::default()),
        audiences: audiences.clone(),
        scheduler: Arc::new(RecordingScheduler::default()),
        work: work.clone(),
        notifications: marketing.clone(),
        clock: Arc::new(SystemClock),
    });
    let writer = Arc::new(inbox_writer::InboxWriter {
        store: inbox.clone(),
        delivery: Arc::new(RecordingQueue::default()),
        channel_queues: Vec::new(),
        campaigns: Some(Arc::new(CampaignGate::new(campaigns.clone()))),
        policy: Default::default(),
        packing: Packing::default(),
        preferences: None,
        step_schedulers: Vec::new(),
        digests: None,
    });

    // The three campaigns, stored and started at once (as their schedules would).
    let now = jiff::Timestamp::now();
    let mut started = Vec::new();
    for (tenant, count) in shares(users) {
        let key = format!("{tenant}/audience.csv"); // under the tenant's prefix
        audiences
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                ("audiences".into(), key.clone()),
                audience_file(tenant, count),
            );
        let request = CampaignRequest::parse(
            &json!({"name": tenant, "title": "Sale", "body": "30% off", "channels": ["inbox"],
                "audience": {"s3": format!("s3://audiences/{key}")}, "send_at": "now"}),
            now,
        )
        .map_err(|e| anyhow::anyhow!(e.message))?;
        let campaign = Campaign::new(
            TenantId::parse(tenant, "tenant")?,
            CampaignId::generate(),
            &request,
            AudienceSpec::S3 {
                bucket: "audiences".into(),
                key,
                column: Some(0),
                etag: None,
            },
            now,
        );
        campaigns.create_campaign(&campaign, &[], None).await?;
        let start = CampaignWork::Start {
            tenant: campaign.tenant.clone(),
            campaign: campaign.id.clone(),
        };
        work.send(&[OutgoingMessage::json("start", &start)?]).await;
        started.push((campaign, count));
    }

    let bar = ProgressBar::new(users as u64).with_style(ProgressStyle::with_template(
        "simulation {msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    )?);
    let clock = Instant::now();
    let fanned_out = Arc::new(AtomicBool::new(false));
    let no_producers = Arc::new(AtomicBool::new(true));
    let fan_out = tokio::spawn(drain_fed_by(
        work.clone(),
        runner.clone(),
        CAMPAIGN_WORKERS,
        1,
        no_producers,
    ));
    let writers = tokio::spawn(drain_fed_by(
        marketing.clone(),
        writer.clone(),
        WRITER_WORKERS,
        WRITER_BATCH,
        fanned_out.clone(),
    ));

    // Each tenant's committed share, sampled every 50 ms.
    let mut samples: Vec<(f64, Vec<f64>)> = Vec::new();
    let mut finished = vec![None; started.len()];
    // The sampler's own reads are not herald's: they are left out of the request counts.
    let mut sampler_calls = 0;
    loop {
        let t = clock.elapsed().as_secs_f64();
        let mut shares = Vec::new();
        let mut total = 0;
        for (i, (campaign, count)) in started.iter().enumerate() {
            let p = campaigns.progress(campaign).await?;
            sampler_calls += 1;
            total += p.committed;
            shares.push(p.committed as f64 / *count as f64);
            if p.committed as usize >= *count && finished[i].is_none() {
                finished[i] = Some(t);
            }
        }
        samples.push((t, shares));
        bar.set_position(total);
        if fan_out.is_finished() {
            fanned_out.store(true, Ordering::SeqCst);
        }
        if writers.is_finished() {
            break;
        }
        if t > 1800.0 {
            bail!("the simulation stalled at {total} of {users}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fan_out.await?;
    writers.await?;
    bar.finish_and_clear();
    let seconds = clock.elapsed().as_secs_f64();
    let total: usize = started.iter().map(|(_, c)| c).sum();
    if inbox.message_count() != total {
        bail!(
            "the simulation lost work: {} of {total} stored",
            inbox.message_count()
        );
    }
    let sqs = work.receives.load(Ordering::Relaxed)
        + work.sends.load(Ordering::Relaxed)
        + marketing.receives.load(Ordering::Relaxed)
        + marketing.sends.load(Ordering::Relaxed);
    let inbox_calls = inbox.calls.load(Ordering::Relaxed);
    let campaign_calls = campaigns.calls.load(Ordering::Relaxed) - sampler_calls;
    let per = |x: u64| x as f64 / total as f64;
    Ok(json!({
        "label": "SIMULATION: the campaign runner and inbox writer over in-memory stores and queues, 2 ms per call; not AWS, not the emulator",
        "users": total,
        "seconds": seconds,
        "notifications_per_s": total as f64 / seconds,
        "sqs_requests_per_notification": per(sqs),
        "sqs_note": "receives and sends of the campaign and marketing queues; deletes are the event source mapping's",
        "dynamodb_requests_per_notification": per(inbox_calls + campaign_calls),
        "inbox_requests_per_notification": per(inbox_calls),
        "campaign_requests_per_notification": per(campaign_calls),
        "workers": {"campaign": CAMPAIGN_WORKERS, "writer": WRITER_WORKERS, "writer_batch": WRITER_BATCH},
        "tenants": started.iter().zip(&finished).map(|((c, count), f)| json!({
            "tenant": c.tenant, "users": count, "finished_s": f,
        })).collect::<Vec<_>>(),
        "samples": samples.iter().map(|(t, s)| json!([t, s])).collect::<Vec<_>>(),
    }))
}

/// The same three campaigns end to end on the emulator: audiences uploaded to its S3,
/// `POST /v1/campaigns`, the local runner's workers, until every campaign is done.
async fn against_emulator(users: usize) -> Result<Value> {
    use testkit::harness::call;
    let EmulatorApp {
        _emulator,
        app,
        bucket,
        s3,
        shutdown,
        workers,
    } = EmulatorApp::start("bench-campaign").await?;
    let router = app.router();
    let clock = Instant::now();
    let mut ids = Vec::new();
    for (tenant, count) in shares(users) {
        let key = format!("{tenant}/audience.csv"); // under the tenant's prefix
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(audience_file(tenant, count).into())
            .send()
            .await?;
        let (status, created) = call(
            &router,
            "POST",
            "/v1/campaigns",
            Some(&app.service_token(tenant)),
            Some(
                json!({"name": tenant, "title": "Sale", "body": "30% off", "channels": ["inbox"],
                "audience": {"s3": format!("s3://{bucket}/{key}")}, "send_at": "now"}),
            ),
        )
        .await?;
        if status != 201 {
            bail!("creating {tenant}'s campaign: {status} {created}");
        }
        ids.push((
            tenant,
            created["id"].as_str().unwrap_or_default().to_owned(),
            count,
        ));
    }
    let bar = ProgressBar::new(users as u64).with_style(ProgressStyle::with_template(
        "emulator   [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    )?);
    loop {
        let mut committed = 0;
        let mut done = true;
        for (tenant, id, _) in &ids {
            let (_, c) = call(
                &router,
                "GET",
                &format!("/v1/campaigns/{id}"),
                Some(&app.service_token(tenant)),
                None,
            )
            .await?;
            committed += c["progress"]["committed"].as_u64().unwrap_or(0);
            done &= c["status"] == "done";
        }
        bar.set_position(committed);
        if done {
            break;
        }
        if clock.elapsed() > Duration::from_secs(3600) {
            bail!("the emulator run stalled at {committed} of {users}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    bar.finish_and_clear();
    let seconds = clock.elapsed().as_secs_f64();
    shutdown.cancel();
    futures_util::future::join_all(workers).await;
    let total: usize = ids.iter().map(|(_, _, c)| c).sum();
    Ok(json!({
        "label": "against the emulator: POST /v1/campaigns with S3 audiences, the local runner's workers (one per queue)",
        "users": total,
        "seconds": seconds,
        "notifications_per_s": total as f64 / seconds,
    }))
}

/// Each tenant's committed share over time: three lines, 0-100 %.
fn progress_svg(simulation: &Value) -> String {
    let samples = simulation["samples"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let end = samples
        .last()
        .and_then(|s| s[0].as_f64())
        .unwrap_or(1.0)
        .max(0.001);
    let (w, h, left, bottom) = (640.0, 360.0, 50.0, 40.0);
    let x = |t: f64| left + t / end * (w - left - 20.0);
    let y = |share: f64| h - bottom - share * (h - bottom - 20.0);
    let colours = ["#1f77b4", "#ff7f0e", "#2ca02c"];
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<text x="{left}" y="14">SIMULATION: each tenant's campaign, share committed over time (three start at once)</text>
<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{left}" y1="20" x2="{left}" y2="{}" stroke="black"/>
<text x="{}" y="{}">{end:.1} s</text><text x="5" y="24">100 %</text><text x="20" y="{}">0</text>
"#,
        h - bottom,
        w - 20.0,
        h - bottom,
        h - bottom,
        w - 60.0,
        h - bottom + 16.0,
        h - bottom
    );
    for (i, (tenant, _)) in TENANTS.iter().enumerate() {
        let points: Vec<String> = samples
            .iter()
            .filter_map(|s| {
                Some(format!(
                    "{:.1},{:.1}",
                    x(s[0].as_f64()?),
                    y(s[1][i].as_f64()?)
                ))
            })
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n<text x=\"{}\" y=\"{}\" fill=\"{}\">{tenant}</text>\n",
            colours[i],
            points.join(" "),
            w - 200.0,
            h - bottom - 60.0 + 16.0 * i as f64,
            colours[i]
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// SES calls per `recipients` campaign emails: the real deliver handler in batches of the
/// template's email batch size (50), over in-memory stores, sending through the real SES
/// adapter and SDK to an HTTP stub of SES v2 on 127.0.0.1 (the emulator has no
/// `SendBulkEmail`) that answers every recipient `SUCCESS` and counts the calls. Once one
/// `SendEmail` each (bulk off, as before and as the local stack still sends), once in bulk.
async fn email_calls(recipients: usize) -> Result<Value> {
    use herald::consumer::{BatchHandler, QueueMessage};
    use herald::domain::campaign::CampaignRef;
    use herald::domain::contact::Contact;
    use herald::domain::delivery::DeliveryJob;
    use herald::domain::notification::Category;
    use herald::fake::{FixedClock, StaticKeys};
    use herald::ports::{Directory, MAX_BULK_RECIPIENTS};
    use herald::{Channel, UserId};

    let stub = SesStub::start().await?;
    let mut figures = serde_json::Map::new();
    for bulk in [false, true] {
        let before = stub.calls();
        let client = aws_sdk_sesv2::Client::from_conf(
            aws_sdk_sesv2::config::Builder::from(&local::emulator::sdk_config(&stub.url).await)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build(),
        );
        let tenant = TenantId::parse("acme", "tenant")?;
        let directory = Arc::new(InMemoryDirectory::default());
        let campaigns = Arc::new(InMemoryCampaigns::default());
        let request = CampaignRequest::parse(
            &json!({"name": "sale", "title": "Sale", "body": "30% off", "channels": ["email"],
                "audience": {"users": ["u0"]}, "send_at": "now"}),
            jiff::Timestamp::now(),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut campaign = Campaign::new(
            tenant.clone(),
            CampaignId::generate(),
            &request,
            AudienceSpec::Inline {
                users: recipients as u64,
                chunks: 1,
            },
            jiff::Timestamp::now(),
        );
        campaign.status = herald::domain::campaign::CampaignStatus::Running;
        campaigns.create_campaign(&campaign, &[], None).await?;
        let mut messages = Vec::with_capacity(recipients);
        for slot in 0..recipients {
            let user = UserId::parse(format!("u{slot}"), "user")?;
            let contact = Contact {
                email: Some(format!("u{slot}@example.com")),
                ..Contact::default()
            };
            directory
                .put_contact(&tenant, &user, &contact, &format!("v{slot}"), 0)
                .await?;
            let job = DeliveryJob {
                tenant: tenant.clone(),
                user_id: user,
                campaign: Some(CampaignRef {
                    id: campaign.id.clone(),
                    page: 0,
                    slot: slot as u32,
                }),
                record_per_user: true,
                title: "Sale".into(),
                body: "30% off".into(),
                ..herald::fake::fixtures::delivery_job(Channel::Email, Category::Marketing)
            };
            messages.push(QueueMessage {
                message_id: format!("m{slot}"),
                receipt_handle: format!("r{slot}"),
                body: serde_json::to_string(&job)?,
                receive_count: 1,
                trace_header: None,
            });
        }
        let deliverer = deliver::Deliverer {
            directory: directory.clone(),
            email: Arc::new(
                herald::aws::ses::SesEmail::new(client, "news@example.com", None).with_bulk(bulk),
            ),
            mobile: Arc::new(herald::fake::RecordingSender::default()),
            requeue: Arc::new(RecordingQueue::default()),
            unsubscribe: Some((
                "https://example.com/v1/unsubscribe".into(),
                Arc::new(StaticKeys::default()),
            )),
            clock: Arc::new(FixedClock(jiff::Timestamp::now())),
            give_up_after: Duration::from_secs(24 * 3600),
            batch_budget: Duration::from_secs(20),
            campaigns: Some(Arc::new(CampaignGate::new(campaigns.clone()))),
            devices: None,
            inbox: None,
            caps: None,
            digests: None,
        };
        let mut sent = 0;
        for batch in messages.chunks(MAX_BULK_RECIPIENTS) {
            let done = deliverer.handle(batch).await;
            sent += done
                .iter()
                .filter(|d| **d == herald::consumer::Disposition::Done)
                .count();
        }
        if sent != recipients {
            bail!("{sent} of {recipients} campaign emails settled");
        }
        let (single, many) = stub.calls();
        let (single, many) = (single - before.0, many - before.1);
        figures.insert(
            if bulk { "bulk" } else { "one_by_one" }.into(),
            json!({"send_email": single, "send_bulk_email": many,
                "ses_calls_per_1000": (single + many) as f64 * 1000.0 / recipients as f64}),
        );
    }
    Ok(json!({"recipients": recipients, "batch": MAX_BULK_RECIPIENTS, "calls": figures}))
}

/// SES v2 as far as sending goes, on 127.0.0.1: `SendEmail` and `SendBulkEmail` (REST-JSON)
/// answered with success for every recipient, each call counted.
struct SesStub {
    url: String,
    counts: Arc<[std::sync::atomic::AtomicUsize; 2]>,
}

impl SesStub {
    async fn start() -> Result<Self> {
        use axum::routing::post;
        use std::sync::atomic::AtomicUsize;
        let counts: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let (single, bulk) = (counts.clone(), counts.clone());
        let app = axum::Router::new()
            .route(
                "/v2/email/outbound-emails",
                post(move || async move {
                    single[0].fetch_add(1, Ordering::Relaxed);
                    axum::Json(json!({"MessageId": "stub"}))
                }),
            )
            .route(
                "/v2/email/outbound-bulk-emails",
                post(move |axum::Json(request): axum::Json<Value>| async move {
                    bulk[1].fetch_add(1, Ordering::Relaxed);
                    let entries = request["BulkEmailEntries"].as_array().map_or(0, Vec::len);
                    let ok = json!({"Status": "SUCCESS", "MessageId": "stub"});
                    axum::Json(json!({"BulkEmailEntryResults": vec![ok; entries]}))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, counts })
    }

    /// `SendEmail` and `SendBulkEmail` calls so far.
    fn calls(&self) -> (usize, usize) {
        (
            self.counts[0].load(Ordering::Relaxed),
            self.counts[1].load(Ordering::Relaxed),
        )
    }
}
