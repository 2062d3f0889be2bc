//! `cargo xtask token`: prints a signed token that `cargo xtask dev` accepts, made with the
//! local issuer's key in `.herald/jwt/` (created on first use, by either command).

use anyhow::Result;
use herald::auth::Scope;
use local::auth::LocalIssuer;

/// Options of `cargo xtask token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tenant the token belongs to.
    #[arg(long)]
    pub tenant: String,
    /// A user's token: the subject is this user (their own inbox only).
    #[arg(long, required_unless_present = "service", conflicts_with = "service")]
    pub user: Option<String>,
    /// A service's token, with every scope (or only those given with --scope).
    #[arg(long)]
    pub service: bool,
    /// With --service: grant only this scope (repeatable), e.g. herald/send.
    #[arg(long, requires = "service", value_parser = parse_scope)]
    pub scope: Vec<String>,
    /// Seconds until the token expires.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    pub ttl: i64,
}

pub fn run(args: &Args) -> Result<()> {
    herald::TenantId::parse(&args.tenant, "--tenant").map_err(|e| anyhow::anyhow!(e.message))?;
    let issuer = LocalIssuer::load_or_create(&local::workspace_root().join(".herald/jwt"))?;
    let mut spec = match &args.user {
        Some(user) => {
            herald::UserId::parse(user, "--user").map_err(|e| anyhow::anyhow!(e.message))?;
            issuer.user(&args.tenant, user)
        }
        None => issuer.service(&args.tenant),
    };
    if !args.scope.is_empty() {
        spec.scopes = args.scope.clone();
    }
    spec.expires_in = args.ttl;
    // The token alone on stdout, so that `$(cargo xtask token ...)` captures it.
    println!("{}", issuer.sign(&spec));
    Ok(())
}

fn parse_scope(raw: &str) -> Result<String, String> {
    Scope::ALL
        .iter()
        .find(|s| s.as_str() == raw)
        .map(|s| s.as_str().to_owned())
        .ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown scope; one of {}", known.join(", "))
        })
}
