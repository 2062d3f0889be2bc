//! `cargo xtask import-pinpoint FILE`: an Amazon Pinpoint endpoint export (newline-delimited
//! JSON, plain or .gz) into herald's contacts, through `POST /v1/contacts/import` in chunks,
//! read streamed (never the whole file in memory). Prints what was skipped and refused by line
//! number; `--audience PATH` also writes the imported user ids, one a line, ready to upload as
//! a campaign audience (under the tenant's prefix of the AudienceBucket, as it says).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use herald::domain::pinpoint::{parse_endpoint, EndpointLine};
use local::auth::LocalIssuer;
use serde_json::Value;

/// Lines per request (the route's limit).
const CHUNK: usize = 1_000;

/// Options of `cargo xtask import-pinpoint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The export: newline-delimited JSON endpoints, optionally gzip-compressed (.gz).
    pub file: PathBuf,
    /// The tenant the contacts belong to (a local service token is made for it).
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// The herald API (deployed: its ApiUrl output, with --token).
    #[arg(long, env = "HERALD_API", default_value = "http://127.0.0.1:3000")]
    pub api: String,
    /// A service token with herald/contacts (default: one signed by the local issuer, which
    /// `cargo xtask dev` accepts).
    #[arg(long, env = "HERALD_TOKEN")]
    pub token: Option<String>,
    /// Also write the user ids imported, one a line, to this file (a campaign audience).
    #[arg(long)]
    pub audience: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    herald::TenantId::parse(&args.tenant, "--tenant").map_err(|e| anyhow::anyhow!(e.message))?;
    let token = match &args.token {
        Some(token) => token.clone(),
        None => {
            let issuer = LocalIssuer::load_or_create(&local::workspace_root().join(".herald/jwt"))?;
            issuer.sign(&issuer.service(&args.tenant))
        }
    };
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let reader: Box<dyn Read> = if args.file.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let url = format!("{}/v1/contacts/import", args.api.trim_end_matches('/'));
    let mut users = BTreeSet::new();
    let (mut totals, mut chunk, mut first_line) = (Totals::default(), Vec::new(), 1);
    let mut lines = BufReader::new(reader).lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        chunk.push(line.with_context(|| format!("reading line {}", i + 1))?);
        if chunk.len() == CHUNK || lines.peek().is_none() {
            let answer = send(&url, &token, first_line, &chunk)?;
            let refused = totals.add(&answer);
            // The audience: users of the lines the API took.
            for (offset, line) in chunk.iter().enumerate() {
                if refused.contains(&((first_line + offset) as u64)) {
                    continue;
                }
                if let Ok(EndpointLine::Apply { user, .. } | EndpointLine::Device { user, .. }) =
                    parse_endpoint(line)
                {
                    users.insert(user.to_string());
                }
            }
            first_line += chunk.len();
            chunk.clear();
        }
    }
    eprintln!(
        "{} lines: {} endpoints imported for {} users ({} as push devices), {} skipped, {} refused",
        totals.lines,
        totals.imported,
        users.len(),
        totals.devices,
        totals.skipped.len(),
        totals.errors.len()
    );
    for (line, reason) in &totals.skipped {
        eprintln!("  line {line}: skipped: {reason}");
    }
    for (line, error) in &totals.errors {
        eprintln!("  line {line}: refused: {error}");
    }
    if let Some(path) = &args.audience {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for user in &users {
            writeln!(out, "{user}")?;
        }
        out.flush()?;
        let name = path
            .file_name()
            .map_or_else(|| "audience.txt".into(), |n| n.to_string_lossy());
        eprintln!(
            "wrote {} user ids to {}: upload it under the tenant's prefix, as \
             s3://<AudienceBucket>/{}/{name}, and use that as the campaign's audience.s3",
            users.len(),
            path.display(),
            args.tenant
        );
    }
    if !totals.errors.is_empty() {
        bail!(
            "{} lines were refused (listed above); the rest were imported",
            totals.errors.len()
        );
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    lines: u64,
    imported: u64,
    devices: u64,
    skipped: Vec<(u64, String)>,
    errors: Vec<(u64, String)>,
}

impl Totals {
    /// Adds one answer; returns the numbers of the lines it refused.
    fn add(&mut self, answer: &Value) -> BTreeSet<u64> {
        self.lines += answer["lines"].as_u64().unwrap_or(0);
        self.imported += answer["imported"].as_u64().unwrap_or(0);
        self.devices += answer["devices"].as_u64().unwrap_or(0);
        let listed = |key: &str, field: &str| -> Vec<(u64, String)> {
            answer[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    (
                        e["line"].as_u64().unwrap_or(0),
                        e[field].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        };
        self.skipped.extend(listed("skipped", "reason"));
        let errors = listed("errors", "error");
        let refused = errors.iter().map(|(line, _)| *line).collect();
        self.errors.extend(errors);
        refused
    }
}

fn send(url: &str, token: &str, first_line: usize, lines: &[String]) -> Result<Value> {
    let response = ureq::post(url)
        .query("first_line", &first_line.to_string())
        .timeout(Duration::from_secs(120))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", "application/x-ndjson")
        .send_string(&lines.join("\n"));
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(status, r)) => {
            bail!(
                "{url} answered {status}: {}",
                r.into_string().unwrap_or_default()
            )
        }
        Err(e) => bail!("{url}: {e} (is `cargo xtask dev` running?)"),
    };
    Ok(serde_json::from_str(&response.into_string()?)?)
}
