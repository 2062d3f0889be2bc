//! inbox-api: what apps call for a user's inbox: unread counts, the message list, mark a
//! room or everything read, the user's contact, and a notification's delivery status.
//! Every route reads the caller from the verified token (`herald::auth`): a user's own
//! token or the `herald/inbox` scope for inbox routes, `herald/contacts` for contacts,
//! `herald/send` for delivery status; the tenant is always the token's. The one public
//! route is the signed one-click unsubscribe link (`/v1/unsubscribe`).

use std::sync::Arc;

pub mod campaigns;
pub mod console;
pub mod contacts;
pub mod dead_letters;
pub mod devices;
pub mod import;
mod inbox;
mod status;
mod suppressions;
mod unsubscribe;
mod workflows;

pub(crate) use contacts::write_contact;

use axum::routing::{get, post};
use axum::Router;
use herald::auth::{AuthSettings, Caller, VerifiedToken};
use herald::config::{ConfigError, Vars};
use herald::domain::backoff::BackoffPolicy;
use herald::http::{not_found, ApiError};
use herald::ports::{
    CounterStore, DeviceRegistry, Directory, FrequencyCaps, LinkKeys, MessageLog, PushEndpoints,
    SuppressionList, Workflows,
};

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

/// A list route's `?limit=`: `DEFAULT_PAGE` when absent, else 1-`MAX_PAGE`.
pub(crate) fn page_limit(
    query: &std::collections::HashMap<String, String>,
) -> Result<u32, herald::FieldError> {
    limit_within(query, DEFAULT_PAGE, MAX_PAGE)
}

/// `?limit=`: `default` when absent, else 1-`max`.
pub(crate) fn limit_within(
    query: &std::collections::HashMap<String, String>,
    default: u32,
    max: u32,
) -> Result<u32, herald::FieldError> {
    match query.get("limit") {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| {
                herald::FieldError::new(
                    "invalid_value",
                    "limit",
                    format!("limit must be an integer 1-{max}"),
                )
            }),
    }
}

/// A list route's `?cursor=`: none when absent or empty (the first page).
pub(crate) fn page_cursor(query: &std::collections::HashMap<String, String>) -> Option<&str> {
    query
        .get("cursor")
        .map(String::as_str)
        .filter(|c| !c.is_empty())
}

#[derive(Debug, Clone)]
pub struct Config {
    pub inbox_table: String,
    pub directory_table: String,
    pub auth: AuthSettings,
    pub retention_days: u32,
    /// `UNSUBSCRIBE_SECRET_ARN`: the secret behind contacts' pseudonyms and unsubscribe links.
    pub unsubscribe_secret: String,
    /// `MARKETING_CONSENT_DEFAULT`: `granted` (default) or `withheld`: a new contact's
    /// marketing consent when its first write does not say.
    pub marketing_default: bool,
    /// The SNS platform applications devices are registered on.
    pub push_apps: devices::PushApps,
    /// The stack's dead-letter queues and their sources.
    pub dead_letters: dead_letters::DeadLetterConfig,
    /// How the console signs operators in.
    pub console: console::ConsoleConfig,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            inbox_table: vars.required("INBOX_TABLE")?,
            directory_table: vars.required("DIRECTORY_TABLE")?,
            auth: AuthSettings::from_vars(vars)?,
            retention_days: vars.retention_days()?,
            unsubscribe_secret: vars.required("UNSUBSCRIBE_SECRET_ARN")?,
            marketing_default: marketing_default(vars)?,
            push_apps: devices::PushApps::from_vars(vars),
            dead_letters: dead_letters::DeadLetterConfig::from_vars(vars)?,
            console: console::ConsoleConfig::from_vars(vars),
        })
    }
}

/// `write` again after a version conflict or a transient fault (another transaction, or
/// throttling), at most `attempts` times, waiting as the deps' backoff says: the writes of
/// one item a caller may race (a suppression's lift, a device's registration).
pub(crate) async fn retry_contended<T, F, Fut>(
    deps: &Deps,
    attempts: usize,
    mut write: F,
) -> Result<T, herald::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, herald::StoreError>>,
{
    let mut retry = deps.policy.start();
    let mut attempt = 1;
    loop {
        match write().await {
            Err(herald::StoreError::VersionConflict | herald::StoreError::Transient(_))
                if attempt < attempts && retry.wait().await =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn marketing_default(vars: &Vars) -> Result<bool, ConfigError> {
    match vars.optional("MARKETING_CONSENT_DEFAULT").as_deref() {
        None | Some("granted") => Ok(true),
        Some("withheld") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            name: "MARKETING_CONSENT_DEFAULT".into(),
            value: other.into(),
            reason: "use granted or withheld".into(),
        }),
    }
}

pub struct Deps {
    pub counters: Arc<dyn CounterStore>,
    pub messages: Arc<dyn MessageLog>,
    pub directory: Arc<dyn Directory>,
    /// The suppression list as the API manages it (the same table as `directory`).
    pub suppressions: Arc<dyn SuppressionList>,
    pub auth: AuthSettings,
    pub policy: BackoffPolicy,
    pub keys: Arc<dyn LinkKeys>,
    pub marketing_default: bool,
    /// Registered push devices, and the SNS endpoints behind them.
    pub devices: Arc<dyn DeviceRegistry>,
    pub endpoints: Arc<dyn PushEndpoints>,
    pub push_apps: devices::PushApps,
    /// The tenant's named workflows and frequency caps (the directory table).
    pub workflows: Arc<dyn Workflows>,
    pub caps: Arc<dyn FrequencyCaps>,
    /// The stack's dead-letter queues, for its operators.
    pub dead_letters: dead_letters::DeadLetterQueues,
    /// What the console's page is told about signing in.
    pub console: console::ConsoleConfig,
}

impl Deps {
    pub fn from_aws(config: &Config, aws: &aws_config::SdkConfig) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let rules = Arc::new(herald::aws::workflows::DynamoWorkflows::new(
            ddb.clone(),
            &config.directory_table,
        ));
        let inbox = Arc::new(herald::aws::dynamodb::DynamoInbox::new(
            ddb.clone(),
            &config.inbox_table,
            config.retention_days,
        ));
        Self {
            counters: inbox.clone(),
            messages: inbox,
            directory: Arc::new(herald::aws::directory::DynamoDirectory::new(
                ddb.clone(),
                &config.directory_table,
            )),
            suppressions: Arc::new(herald::aws::suppressions::DynamoSuppressions::new(
                ddb.clone(),
                &config.directory_table,
            )),
            devices: Arc::new(herald::aws::devices::DynamoDevices::new(
                ddb.clone(),
                &config.directory_table,
            )),
            workflows: rules.clone(),
            caps: rules,
            endpoints: Arc::new(herald::aws::sns::SnsEndpoints::new(
                aws_sdk_sns::Client::new(aws),
            )),
            push_apps: config.push_apps.clone(),
            auth: config.auth.clone(),
            policy: BackoffPolicy::default(),
            keys: Arc::new(herald::aws::secrets::SecretsManagerKeys::new(
                aws_sdk_secretsmanager::Client::new(aws),
                &config.unsubscribe_secret,
            )),
            marketing_default: config.marketing_default,
            dead_letters: dead_letters::DeadLetterQueues {
                queues: config
                    .dead_letters
                    .queues
                    .iter()
                    .map(|(name, dlq, source)| dead_letters::NamedDeadLetterQueue {
                        name: name.clone(),
                        queue: Arc::new(herald::aws::sqs::SqsDeadLetterQueue::new(
                            sqs.clone(),
                            dlq,
                            source,
                        )),
                    })
                    .collect(),
                clock: Arc::new(herald::ports::SystemClock),
            },
            console: config.console.clone(),
        }
    }

    fn caller(&self, token: &VerifiedToken) -> Result<Caller, ApiError> {
        self.auth.caller(token)
    }
}

/// The inbox API as Lambda serves it, campaigns included.
pub fn app(deps: Arc<Deps>, campaign_deps: Arc<campaigns::CampaignDeps>) -> Router {
    routes(deps.clone())
        .merge(campaigns::routes(campaign_deps))
        .merge(public_routes(deps))
        .fallback(not_found)
}

/// The routes without a token: the signed unsubscribe link (`GET` shows a confirmation
/// page: link scanners fetch links, and a GET must change nothing; `POST` is RFC 8058's
/// one-click unsubscribe that mail providers send), and the console's static page, which
/// signs in and calls the API with the operator's token.
pub fn public_routes(deps: Arc<Deps>) -> Router {
    Router::new()
        .route(
            "/v1/unsubscribe",
            get(unsubscribe::unsubscribe_page).post(unsubscribe::unsubscribe),
        )
        .route("/console", get(console::index))
        .route("/console/{file}", get(console::file))
        .method_not_allowed_fallback(herald::http::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::map_response(herald::http::problem_json))
        .with_state(deps)
}

/// The routes alone, for the local runner to merge with the other APIs.
pub fn routes(deps: Arc<Deps>) -> Router {
    Router::new()
        .route("/v1/users/{user}/unread", get(inbox::unread))
        .route("/v1/users/{user}/messages", get(inbox::messages))
        .route("/v1/users/{user}/rooms/{room}/read", post(inbox::read_room))
        .route("/v1/users/{user}/read-all", post(inbox::read_all))
        .route("/v1/users/{user}/seen-all", post(inbox::seen_all))
        .route("/v1/users/{user}/messages/seen", post(inbox::seen))
        .route("/v1/users/{user}/messages/archive", post(inbox::archive))
        .route(
            "/v1/users/{user}/messages/unarchive",
            post(inbox::unarchive),
        )
        .route(
            "/v1/users/{user}/contact",
            get(contacts::get_contact)
                .put(contacts::put_contact)
                .patch(contacts::patch_contact),
        )
        .route("/v1/notifications/{id}", get(status::delivery_status))
        .route(
            "/v1/suppressions",
            get(suppressions::list_suppressions).delete(suppressions::lift_suppression),
        )
        .route(
            "/v1/suppressions/removals",
            get(suppressions::list_removals),
        )
        .route("/v1/users/{user}/devices", get(devices::list_devices))
        .route(
            "/v1/users/{user}/devices/{token}",
            axum::routing::put(devices::put_device).delete(devices::delete_device),
        )
        .route("/v1/contacts/import", post(import::import_contacts))
        .route(
            "/v1/workflows/{name}",
            get(workflows::get_workflow)
                .put(workflows::put_workflow)
                .delete(workflows::delete_workflow),
        )
        .route(
            "/v1/frequency-caps",
            get(workflows::get_caps).put(workflows::put_caps),
        )
        .route("/v1/dead-letters", get(dead_letters::list_queues))
        .route("/v1/dead-letters/{queue}", get(dead_letters::list_messages))
        .route(
            "/v1/dead-letters/{queue}/redrive",
            post(dead_letters::redrive),
        )
        .method_not_allowed_fallback(herald::http::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            herald::http::MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::map_response(herald::http::problem_json))
        .with_state(deps)
}

#[cfg(test)]
mod tests;
