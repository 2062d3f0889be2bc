//! `cargo xtask outbox`: what herald sent through the running local stack (`cargo xtask
//! dev`): email with its decoded subject and text, SMS, push, each with its time, tenant,
//! user, address and notification id, newest first; `--follow` prints new sends as they go.

use anyhow::Result;
use local::outbox::{Filter, Sent, Source};

/// Options of `cargo xtask outbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only what went to this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this tenant's.
    #[arg(long)]
    pub tenant: Option<String>,
    /// At most this many, the newest.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Keep watching: print each new send as it goes (Ctrl-C stops).
    #[arg(long)]
    pub follow: bool,
    /// One JSON object a line instead of text (for scripts).
    #[arg(long)]
    pub json: bool,
    /// The emulator's endpoint; by default the one `cargo xtask dev` runs
    /// (127.0.0.1:$HERALD_EMULATOR_PORT, 4566 when that is not set).
    #[arg(long, env = "HERALD_EMULATOR_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The directory table (where delivery records are).
    #[arg(long, default_value = "herald-DirectoryTable")]
    pub table: String,
}

/// The emulator `cargo xtask dev` runs: `--endpoint`, else the port it was started on.
fn emulator_endpoint(explicit: Option<&str>, port: Option<&str>) -> String {
    match (explicit, port.map(str::trim).filter(|p| !p.is_empty())) {
        (Some(endpoint), _) => endpoint.to_owned(),
        (None, Some(port)) => format!("http://127.0.0.1:{port}"),
        (None, None) => "http://127.0.0.1:4566".to_owned(),
    }
}

pub fn run(args: &Args) -> Result<()> {
    let endpoint = emulator_endpoint(
        args.endpoint.as_deref(),
        std::env::var("HERALD_EMULATOR_PORT").ok().as_deref(),
    );
    let filter = Filter {
        user: args.user.clone(),
        tenant: args.tenant.clone(),
        limit: None,
    };
    let show = |sent: &Sent| {
        if args.json {
            println!("{}", serde_json::to_string(sent).unwrap_or_default());
        } else {
            println!("{}", sent.line());
            if let Some(text) = sent.subject.as_ref().map(|_| sent.text.trim()) {
                for line in text.lines().filter(|l| !l.trim().is_empty()).take(3) {
                    println!("    {line}");
                }
            }
        }
    };
    tokio::runtime::Runtime::new()?.block_on(async {
        let source = Source {
            sdk: local::emulator::sdk_config(&endpoint).await,
            endpoint: endpoint.clone(),
            directory_table: args.table.clone(),
        };
        let entries = source.read(&filter).await.map_err(|e| {
            e.context(format!(
                "is `cargo xtask dev` running (emulator at {endpoint})? Started on another \
                 port: --endpoint http://127.0.0.1:PORT, or HERALD_EMULATOR_PORT"
            ))
        })?;
        if entries.is_empty() && !args.follow && !args.json {
            eprintln!("nothing sent yet");
        }
        // Oldest first, so the newest ends up at the bottom of the terminal.
        for sent in entries.iter().take(args.limit).rev() {
            show(sent);
        }
        let seen = entries.iter().map(Sent::key).collect();
        if args.follow {
            let stop = tokio_util::sync::CancellationToken::new();
            let stopper = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                stopper.cancel();
            });
            source.follow(&filter, seen, stop, show).await?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    /// Regression: `HERALD_EMULATOR_PORT` moved `cargo xtask dev`'s emulator, but the outbox
    /// kept looking on 4566.
    #[test]
    fn the_outbox_finds_the_emulator_where_dev_started_it() {
        let endpoint = super::emulator_endpoint;
        assert_eq!(endpoint(None, None), "http://127.0.0.1:4566");
        assert_eq!(endpoint(None, Some("4680")), "http://127.0.0.1:4680");
        assert_eq!(
            endpoint(Some("http://127.0.0.1:9"), Some("4680")),
            "http://127.0.0.1:9"
        );
    }
}
