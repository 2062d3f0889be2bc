//! The operator console's page (`/console`): static HTML, CSS and JS modules from
//! `console/` compiled into the function, served without a token (the page signs in and
//! calls the API with the operator's token, so it holds no secret), and `config.json`, which
//! tells the page how to sign in: through the stack's Cognito hosted UI when the stack made
//! the user pool, else a pasted token.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use herald::config::Vars;
use herald::http::ApiError;
use serde_json::json;

use crate::Deps;

/// `CONSOLE_AUTH_DOMAIN` (the Cognito hosted UI's base URL, `https://<prefix>.auth.<region>.amazoncognito.com`)
/// and `CONSOLE_CLIENT_ID` (the console's app client): both set, the page signs in through
/// the hosted UI (authorization code with PKCE); else it asks for a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub auth_domain: Option<String>,
    pub client_id: Option<String>,
}

impl ConsoleConfig {
    pub fn from_vars(vars: &Vars) -> Self {
        let set = |name: &str| vars.optional(name).filter(|v| !v.trim().is_empty());
        Self {
            auth_domain: set("CONSOLE_AUTH_DOMAIN").map(|d| d.trim_end_matches('/').to_owned()),
            client_id: set("CONSOLE_CLIENT_ID"),
        }
    }

    fn hosted_ui(&self) -> Option<(&str, &str)> {
        Some((self.auth_domain.as_deref()?, self.client_id.as_deref()?))
    }
}

/// The console's files: name, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../../console/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../../console/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/api.js"),
    ),
    (
        "sign-in.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/sign-in.js"),
    ),
    (
        "campaigns.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/campaigns.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/chart.js"),
    ),
    (
        "dead-letters.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/dead-letters.js"),
    ),
    (
        "lookup.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/lookup.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/ui.js"),
    ),
];

/// The page may talk to this API and, to finish a sign-in, to the hosted UI's token
/// endpoint; nothing else, and no other site may frame it.
fn security_headers(config: &ConsoleConfig, response: &mut Response) {
    let connect = match config.hosted_ui() {
        Some((domain, _)) => format!("'self' {domain}"),
        None => "'self'".to_owned(),
    };
    let policy = format!(
        "default-src 'self'; connect-src {connect}; img-src 'self' data:; style-src 'self'; \
         script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A deploy shows at once; the files are small.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn served(config: &ConsoleConfig, content_type: &'static str, body: String) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    security_headers(config, &mut response);
    response
}

/// `GET /console`: the page (its files are `/console/<file>`).
pub(crate) async fn index(State(deps): State<Arc<Deps>>) -> Response {
    let (_, content_type, body) = FILES[0];
    served(&deps.console, content_type, body.to_owned())
}

/// `GET /console/{file}`: one of the page's files, or `config.json`.
pub(crate) async fn file(State(deps): State<Arc<Deps>>, Path(name): Path<String>) -> Response {
    if name == "config.json" {
        let sign_in = deps.console.hosted_ui().map(|(domain, client_id)| {
            json!({
                "authorize_url": format!("{domain}/oauth2/authorize"),
                "token_url": format!("{domain}/oauth2/token"),
                "logout_url": format!("{domain}/logout"),
                "client_id": client_id,
                "scopes": "openid email profile",
            })
        });
        return served(
            &deps.console,
            "application/json",
            json!({ "sign_in": sign_in }).to_string(),
        );
    }
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => served(&deps.console, content_type, (*body).to_owned()),
        None => ApiError::NotFound(format!(
            "the console has no file {}",
            name.chars().take(64).collect::<String>()
        ))
        .into_response(),
    }
}
