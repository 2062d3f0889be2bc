//! `cargo xtask dev`: herald running locally against moto.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use local::auth::LocalIssuer;
use local::emulator::Emulator;
use local::runner::LocalApp;
use local::stack::Stack;
use local::template::Template;
use tokio_util::sync::CancellationToken;

/// Options of `cargo xtask dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port of the emulator on 127.0.0.1.
    #[arg(long, env = "HERALD_EMULATOR_PORT", default_value_t = 4566)]
    pub port: u16,
    /// Port of the HTTP APIs on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    pub http_port: u16,
    /// Workers per queue (concurrent consumers). By default each queue's as deployed: its
    /// event source's MaximumConcurrency in the template; `--workers 1` for one each.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Inject faults as AWS does under load: throttling of DynamoDB, SQS, SES and SNS calls,
    /// DynamoDB writes meeting another transaction, schedules firing twice and up to a
    /// minute late. Bare: a few percent each; or rates, e.g.
    /// `--chaos dynamodb=0.2,sqs=0.1,ses=0.3,sns=0.3,conflict=0.2,scheduler=0.5,seed=7`.
    #[arg(long, num_args = 0..=1, default_missing_value = "default", value_parser = parse_chaos)]
    pub chaos: Option<local::chaos::Chaos>,
}

fn parse_chaos(spec: &str) -> Result<local::chaos::Chaos, String> {
    if spec == "default" {
        return Ok(local::chaos::Chaos::default_rates());
    }
    local::chaos::Chaos::parse(spec).map_err(|e| format!("{e:#}"))
}

pub fn run(args: &Args) -> Result<()> {
    let (port, http_port, workers) = (args.port, args.http_port, args.workers);
    let root = local::workspace_root();
    let venv = local::tools::dev_venv(&root)?;
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        anyhow::bail!("port {port} is taken; stop what runs there or pass --port N");
    }
    std::fs::create_dir_all(root.join(".herald"))?;
    let log = root.join(".herald/moto.log");
    let emulator = Emulator::start(&venv, port, &log)?;
    eprintln!(
        "emulator: moto on {} (log: {})",
        emulator.endpoint,
        log.display()
    );

    let runtime = tokio::runtime::Runtime::new()?;
    let chaos = args.chaos.clone();
    let result = runtime.block_on(serve(&emulator.endpoint, http_port, workers, chaos));
    drop(emulator);
    result
}

async fn serve(
    endpoint: &str,
    http_port: u16,
    workers: Option<u16>,
    chaos: Option<local::chaos::Chaos>,
) -> Result<()> {
    herald::telemetry::init_tracing();
    let stack = Stack::provision(
        endpoint,
        local::stack::DEV_PREFIX,
        Template::project()?,
        &[],
    )
    .await?;
    // After provisioning: faults meet herald's calls, not the setup's.
    if let Some(chaos) = &chaos {
        local::chaos::set(endpoint, chaos)?;
        eprintln!(
            "chaos: {:?} of herald's calls fail as AWS fails under load, {} of schedule firings are doubled and all up to a minute late (GET {endpoint}/herald/chaos: what was injected)",
            chaos.rates, chaos.scheduler
        );
    }
    let env_file = local::workspace_root().join("env.local.json");
    std::fs::write(
        &env_file,
        serde_json::to_string_pretty(&stack.sam_env_json()?)?,
    )?;
    let lambda_env = local::workspace_root().join(".herald/lambda.env");
    std::fs::write(&lambda_env, stack.dotenv()?)?;
    for (id, r) in &stack.resources {
        eprintln!("  {id:<22} {}", r.reference);
    }
    eprintln!("  env for sam local invoke: {}", env_file.display());
    eprintln!(
        "  env for cargo lambda watch --env-file: {}",
        lambda_env.display()
    );

    // Tokens are really signed: a key pair made on first start, its JWKS served by the API.
    let issuer = LocalIssuer::load_or_create(&local::workspace_root().join(".herald/jwt"))?;
    let public_url = format!("http://127.0.0.1:{http_port}");
    let mut app = LocalApp::with_issuer(&stack, issuer, &public_url)?;
    if let Some(chaos) = chaos.as_ref().filter(|c| c.scheduler > 0.0) {
        app.schedule_faults = local::runner::ScheduleFaults {
            duplicate: chaos.scheduler,
            late_by: local::chaos::SCHEDULE_LATE_BY,
        };
    }
    let app = std::sync::Arc::new(app);
    let shutdown = CancellationToken::new();
    let workers_said = match workers {
        Some(n) => format!("{n} worker(s) per queue"),
        None => "each queue's deployed MaximumConcurrency of workers".to_owned(),
    };
    let mut handles = match workers {
        Some(n) => app.spawn_workers(usize::from(n), 2, &shutdown),
        None => app.spawn_deployed_workers(2, &shutdown),
    };
    // The live feed's pusher posts to this server's management API.
    handles.extend(app.spawn_live_push(&public_url, &shutdown));
    let addr = SocketAddr::from(([127, 0, 0, 1], http_port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}; pass --http-port N"))?;
    // The API, plus the outbox page (what herald sent), which only the local stack has.
    let router = local::outbox::Source::of(&stack)?
        .routes()
        .merge(local::live::demo_routes(local::workspace_root()))
        .merge(app.router());
    let server = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        })
    };
    // A line per campaign progress change, while it runs.
    let watcher = tokio::spawn(local::devlog::watch_campaigns(
        app.campaign_api.campaigns.clone(),
        app.campaigns_seen.clone(),
        std::time::Duration::from_secs(2),
        shutdown.clone(),
    ));
    // The outbox command finds the default emulator port by itself; another one it is told.
    let outbox_endpoint = if endpoint == "http://127.0.0.1:4566" {
        String::new()
    } else {
        format!(" --endpoint {endpoint}")
    };
    eprintln!(
        "\nherald is up: API on http://{addr} (JWKS at /.well-known/jwks.json), {workers_said}. Try:\n\n  \
         SERVICE=$(cargo xtask token --tenant acme --service)\n  \
         USER_TOKEN=$(cargo xtask token --tenant acme --user u1)\n  \
         curl -X PUT localhost:{http_port}/v1/users/u1/contact -H \"Authorization: Bearer $SERVICE\" -d '{{\"email\":\"u1@example.com\"}}'\n  \
         curl -X POST localhost:{http_port}/v1/notifications -H \"Authorization: Bearer $SERVICE\" -d '{{\"notifications\":[{{\"user_id\":\"u1\",\"room_id\":\"r1\",\"title\":\"Hi\",\"body\":\"Hello from herald\",\"channels\":[\"inbox\",\"email\"]}}]}}'\n  \
         curl localhost:{http_port}/v1/users/u1/unread -H \"Authorization: Bearer $USER_TOKEN\"\n  \
         curl localhost:{http_port}/v1/users/u1/messages -H \"Authorization: Bearer $USER_TOKEN\"\n  \
         cargo xtask outbox{outbox_endpoint}   # what herald sent (or http://{addr}/outbox)\n\n\
         The live feed: ws://{addr}/live?token=$USER_TOKEN; a demo inbox that updates itself:\n  \
         echo \"http://{addr}/demo#user=u1&token=$USER_TOKEN\"   # open it in a browser\n\n\
         The operator console (campaigns, dead letters, look-ups), signed in with the service token:\n  \
         echo \"http://{addr}/console#token=$SERVICE\"   # open it in a browser\n\nCtrl-C stops everything."
    );
    stop_requested().await?;
    eprintln!("\nstopping...");
    shutdown.cancel();
    for h in handles {
        let _ = h.await;
    }
    let _ = watcher.await;
    server.await??;
    Ok(())
}

/// Ctrl-C, or SIGTERM (`kill`, a process manager): either stops herald and its emulator.
async fn stop_requested() -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupt = tokio::signal::ctrl_c() => interrupt?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
