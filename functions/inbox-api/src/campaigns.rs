//! The campaign routes: create (scheduled or now), read with exact progress, list newest
//! first, cancel. Every route needs a service token with the `herald/campaigns` scope; the
//! tenant is the token's. The fan-out itself is the `campaigns` function's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use herald::auth::{AuthSettings, Scope, VerifiedToken};
use herald::config::{ConfigError, Vars};
use herald::domain::campaign::audience::{
    check_audience_key, check_audience_retention, DEFAULT_RETENTION_DAYS,
};
use herald::domain::campaign::{
    release_schedule_name, start_schedule_name, Audience, AudienceSpec, Campaign, CampaignRequest,
    CampaignStatus, CampaignWork, Progress, INLINE_CHUNK,
};
use herald::domain::ids::{check_id, CampaignId};
use herald::domain::time;
use herald::http::{parse_json, ApiError, RequestMeta};
use herald::ports::{
    AudienceFiles, CampaignStore, Clock, OutgoingMessage, QueueSender, Scheduler, SystemClock,
};
use herald::{FieldError, StoreError, TenantId};
use serde_json::{json, Value};

/// A campaign due within this many seconds goes straight on the queue (with a delay)
/// instead of through a schedule.
const DIRECT_START_SECONDS: i64 = 60;

#[derive(Debug, Clone)]
pub struct CampaignConfig {
    pub directory_table: String,
    pub campaign_queue_url: String,
    /// Campaign schedules: their group, target queue and role.
    pub schedules: herald::aws::scheduler::ScheduleTarget,
    /// S3 audiences must be in this bucket (the only one the functions may read).
    pub audience_bucket: String,
    /// `AUDIENCE_RETENTION_DAYS`: the bucket deletes a file this many days after its upload
    /// (default 30, the template's `AudienceRetentionDays`).
    pub audience_retention_days: u32,
}

impl CampaignConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            directory_table: vars.required("DIRECTORY_TABLE")?,
            campaign_queue_url: vars.required("CAMPAIGN_QUEUE_URL")?,
            schedules: herald::aws::scheduler::ScheduleTarget::from_vars(vars)?,
            audience_bucket: vars.required("AUDIENCE_BUCKET")?,
            audience_retention_days: vars
                .parsed_or("AUDIENCE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?,
        })
    }
}

pub struct CampaignDeps {
    pub campaigns: Arc<dyn CampaignStore>,
    pub audiences: Arc<dyn AudienceFiles>,
    pub scheduler: Arc<dyn Scheduler>,
    /// The campaign queue: campaigns due now start here directly.
    pub queue: Arc<dyn QueueSender>,
    pub audience_bucket: String,
    /// Days the bucket keeps a file after its upload: a campaign must be done reading it
    /// a day before.
    pub audience_retention_days: u32,
    pub auth: AuthSettings,
    pub clock: Arc<dyn Clock>,
}

impl CampaignDeps {
    pub fn from_aws(
        config: &CampaignConfig,
        auth: &AuthSettings,
        aws: &aws_config::SdkConfig,
    ) -> Self {
        Self {
            campaigns: Arc::new(herald::aws::campaigns::DynamoCampaigns::new(
                aws_sdk_dynamodb::Client::new(aws),
                &config.directory_table,
            )),
            audiences: Arc::new(herald::aws::s3::S3Audiences::from_aws(aws)),
            scheduler: Arc::new(herald::aws::scheduler::EventBridgeScheduler::new(
                aws_sdk_scheduler::Client::new(aws),
                &config.schedules,
            )),
            queue: Arc::new(herald::aws::sqs::SqsSender::new(
                aws_sdk_sqs::Client::new(aws),
                &config.campaign_queue_url,
            )),
            audience_bucket: config.audience_bucket.clone(),
            audience_retention_days: config.audience_retention_days,
            auth: auth.clone(),
            clock: Arc::new(SystemClock),
        }
    }

    fn tenant(&self, token: &VerifiedToken) -> Result<TenantId, ApiError> {
        Ok(self.auth.caller(token)?.require(Scope::Campaigns)?.clone())
    }
}

pub fn routes(deps: Arc<CampaignDeps>) -> Router {
    Router::new()
        .route("/v1/campaigns", get(list).post(create))
        .route("/v1/campaigns/{id}", get(read).delete(cancel))
        .route(
            "/v1/audiences",
            axum::routing::post(upload_audience)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .method_not_allowed_fallback(herald::http::method_not_allowed)
        // 10,000 inline ids of up to 128 characters, and the rest of the body.
        .layer(axum::extract::DefaultBodyLimit::max(2 * 1024 * 1024))
        .layer(axum::middleware::map_response(herald::http::problem_json))
        .with_state(deps)
}

/// The largest audience file the API takes: Lambda bounds a request at 6 MB with its JSON
/// envelope, in which a text body's line breaks and quotes grow when escaped. About 300,000
/// user ids; larger files go to the bucket directly.
pub const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;
/// A file name as the upload keeps it: what a browser's file picker gives, within reason.
const MAX_UPLOAD_NAME: usize = 100;

/// `POST /v1/audiences?name=users.csv` with the file as the body (one user id a line, or a
/// CSV with a `user_id` column): stores it under the tenant's prefix of the AudienceBucket
/// and answers `201 {"s3", "bytes", "users_estimate"}`; `s3` is what a campaign's
/// `audience.s3` takes. The console's upload, and any script's.
async fn upload_audience(
    State(deps): State<Arc<CampaignDeps>>,
    token: VerifiedToken,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = deps.tenant(&token)?;
    // A list or a CSV is text: another declared type is another kind of file.
    let media = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if let Some(media) = media.filter(|m| m != "text/csv" && m != "text/plain") {
        return Ok((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"error": FieldError::new(
                "unsupported_media_type",
                "Content-Type",
                format!(
                    "an audience file is text/csv or text/plain, not {}",
                    media.chars().take(64).collect::<String>()
                ),
            )})),
        ));
    }
    let name = query
        .get("name")
        .map(String::as_str)
        .unwrap_or("audience.csv");
    let plain = !name.is_empty()
        && name.chars().count() <= MAX_UPLOAD_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain {
        return Err(FieldError::new(
            "invalid_value",
            "name",
            format!(
                "name is 1-{MAX_UPLOAD_NAME} letters, digits, '.', '-' or '_', not starting with '.'"
            ),
        )
        .into());
    }
    if body.is_empty() {
        return Err(FieldError::body("invalid_body", "the file is empty").into());
    }
    // Upload order within the tenant's prefix, and never over another upload.
    let key = format!(
        "{tenant}/uploads/{}-{name}",
        herald::domain::ids::NotificationId::generate()
            .as_str()
            .to_ascii_lowercase()
    );
    let bytes = body.len();
    // Lines, less a CSV's header.
    let header = u64::from(herald::domain::campaign::audience_header(&body).is_some());
    let estimate = herald::domain::campaign::audience::estimate_users(&body, body.len() as u64)
        .saturating_sub(header);
    deps.audiences
        .upload(&deps.audience_bucket, &key, body.to_vec())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "s3": format!("s3://{}/{key}", deps.audience_bucket),
            "bytes": bytes,
            "users_estimate": estimate,
        })),
    ))
}

/// `POST /v1/campaigns`: validates, stores the campaign (and an inline audience), then
/// schedules its start. A retry under the same `Idempotency-Key` answers the same campaign.
async fn create(
    State(deps): State<Arc<CampaignDeps>>,
    token: VerifiedToken,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Json<Value>), ApiError> {
    let tenant = deps.tenant(&token)?;
    let key = idempotency_key(&headers)?;
    let now = deps.clock.now();
    let request = CampaignRequest::parse(&parse_json(&body)?, now)?;
    let (audience, chunks) = match &request.audience {
        Audience::Users(users) => (
            AudienceSpec::Inline {
                users: users.len() as u64,
                chunks: users.len().div_ceil(INLINE_CHUNK) as u32,
            },
            users.chunks(INLINE_CHUNK).map(<[_]>::to_vec).collect(),
        ),
        Audience::S3 { bucket, key } => (
            s3_audience(&deps, &tenant, &request, bucket, key).await?,
            Vec::new(),
        ),
    };
    let campaign = Campaign::new(tenant, CampaignId::generate(), &request, audience, now);
    let stored = deps
        .campaigns
        .create_campaign(&campaign, &chunks, key.as_deref())
        .await?;
    if stored.status == CampaignStatus::Scheduled {
        // Also on a retry: the first attempt may have stored it and died before scheduling
        // (schedules are named after the campaign, and a start is recognised twice). The
        // stored campaign's time, not this body's: a retry's body may differ.
        schedule_start(
            &deps,
            &stored,
            stored.first_instant(),
            meta.trace_header.as_deref(),
        )
        .await?;
    }
    tracing::info!(campaign = %stored.id, tenant = %stored.tenant, "campaign created");
    let mut out = HeaderMap::new();
    if let Ok(location) = format!("/v1/campaigns/{}", stored.id).parse() {
        out.insert(axum::http::header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, out, Json(created_view(&stored))))
}

/// An S3 audience must be in the audience bucket, under the tenant's prefix, and exist; its
/// first line decides whether it is a CSV (a `user_id` column) or a plain list. The campaign
/// pins the version seen (its ETag), and must be done reading it a day before the bucket's
/// lifecycle rule deletes it.
async fn s3_audience(
    deps: &CampaignDeps,
    tenant: &TenantId,
    request: &CampaignRequest,
    bucket: &str,
    key: &str,
) -> Result<AudienceSpec, ApiError> {
    if bucket != deps.audience_bucket {
        return Err(FieldError::new(
            "invalid_value",
            "audience.s3",
            format!(
                "audience files must be in the bucket {} (the stack's AudienceBucket)",
                deps.audience_bucket
            ),
        )
        .into());
    }
    // Before any S3 call: another tenant's file is refused whether or not it exists.
    check_audience_key(tenant, key)?;
    match deps.audiences.inspect(bucket, key).await? {
        None => Err(FieldError::new(
            "not_found",
            "audience.s3",
            format!("s3://{bucket}/{key} does not exist"),
        )
        .into()),
        Some(file) if file.size == 0 => Err(FieldError::new(
            "empty",
            "audience.s3",
            format!("s3://{bucket}/{key} is empty"),
        )
        .into()),
        Some(file) => {
            let now = deps.clock.now();
            check_audience_retention(
                &file,
                request.first_instant().unwrap_or(now),
                request.rate_per_second,
                deps.audience_retention_days,
                now,
            )?;
            Ok(AudienceSpec::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                column: file.column,
                etag: file.etag,
            })
        }
    }
}

/// Starts the campaign: on the queue when it is due within a minute (in this request's
/// trace), else by a one-time schedule (a new trace when it fires).
async fn schedule_start(
    deps: &CampaignDeps,
    campaign: &Campaign,
    at: Option<jiff::Timestamp>,
    trace_header: Option<&str>,
) -> Result<(), ApiError> {
    let start = CampaignWork::Start {
        tenant: campaign.tenant.clone(),
        campaign: campaign.id.clone(),
    };
    let mut message =
        OutgoingMessage::json("start", &start).map_err(|e| StoreError::Fatal(e.to_string()))?;
    let now = deps.clock.now();
    let wait = at.map_or(0, |at| now.duration_until(at).as_secs());
    if wait > DIRECT_START_SECONDS {
        let at = at.unwrap_or(now);
        deps.scheduler
            .schedule_once(&start_schedule_name(&campaign.id), at, &message.body)
            .await?;
        return Ok(());
    }
    message.delay_seconds = (wait > 0).then_some(wait as i32);
    message.trace_header = trace_header.map(str::to_owned);
    for result in deps.queue.send(&[message]).await {
        result.map_err(|e| ApiError::Unavailable(format!("campaign queue: {e}")))?;
    }
    Ok(())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().to_owned();
    check_id(&key, "Idempotency-Key")?;
    Ok(Some(key))
}

/// `GET /v1/campaigns/{id}`: the campaign, its status and exact progress.
async fn read(
    State(deps): State<Arc<CampaignDeps>>,
    token: VerifiedToken,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = deps.tenant(&token)?;
    let (campaign, progress) = load_with_progress(&deps, &tenant, &id).await?;
    Ok(Json(view(&campaign, Some(&progress))))
}

/// `GET /v1/campaigns?limit=&cursor=`: newest first, without progress.
async fn list(
    State(deps): State<Arc<CampaignDeps>>,
    token: VerifiedToken,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = deps.tenant(&token)?;
    let limit = match query.get("limit") {
        None => 20,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                FieldError::new("invalid_value", "limit", "limit must be an integer 1-100")
            })?,
    };
    let cursor = crate::page_cursor(&query);
    let (campaigns, next) = deps.campaigns.campaigns(&tenant, limit, cursor).await?;
    // A running campaign may be done by now: that takes its progress (stored status stays
    // `running` until then), read for those only.
    let mut views = Vec::with_capacity(campaigns.len());
    for campaign in &campaigns {
        let status = match campaign.status {
            CampaignStatus::Running => {
                let progress = deps.campaigns.progress(campaign).await?;
                campaign.status_now(&progress)
            }
            stored => stored,
        };
        let mut out = view(campaign, None);
        out["status"] = json!(status);
        views.push(out);
    }
    Ok(Json(json!({
        "campaigns": views,
        "next_cursor": next,
    })))
}

/// `DELETE /v1/campaigns/{id}`: cancel. A scheduled campaign never sends; a running one
/// stops its fan-out, its held recipients are never released (their schedules are deleted),
/// and its notifications still queued are skipped as cancelled. Every read here costs the
/// same for 100 users or 10 M. The answer's progress says how many had gone out, and
/// `cancelled` how many were still pending (enqueued, not yet taken by the writer: they
/// become skipped, or committed if already in flight) and held.
async fn cancel(
    State(deps): State<Arc<CampaignDeps>>,
    token: VerifiedToken,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = deps.tenant(&token)?;
    let (campaign, before) = load_with_progress(&deps, &tenant, &id).await?;
    if campaign.status_now(&before) == CampaignStatus::Done {
        return Err(ApiError::Conflict(format!(
            "campaign {id} is done and can no longer be cancelled"
        )));
    }
    let now = deps.clock.now();
    let cancelled = deps
        .campaigns
        .transition(
            &tenant,
            &campaign.id,
            &[CampaignStatus::Scheduled, CampaignStatus::Running],
            CampaignStatus::Cancelled,
            now,
            None,
        )
        .await?;
    let (campaign, progress) = load_with_progress(&deps, &tenant, &id).await?;
    if !cancelled && campaign.status != CampaignStatus::Cancelled {
        return Err(ApiError::Conflict(format!(
            "campaign {id} is {} and can no longer be cancelled",
            campaign.status_now(&progress).as_str()
        )));
    }
    // Its schedules are no longer needed (a late one would find it cancelled anyway).
    let names = std::iter::once(start_schedule_name(&campaign.id)).chain(
        campaign
            .releases
            .iter()
            .map(|at| release_schedule_name(&campaign.id, *at)),
    );
    for name in names {
        if let Err(e) = deps.scheduler.delete_schedule(&name).await {
            tracing::warn!(error = %e, schedule = %name, "cancelled, but a schedule stays until it fires");
        }
    }
    tracing::info!(campaign = %campaign.id, "campaign cancelled");
    let mut out = view(&campaign, Some(&progress));
    out["cancelled"] = json!({"pending": progress.pending(), "held": before.held});
    Ok(Json(out))
}

/// The tenant's campaign `id` (404 when it has none) and its progress.
async fn load_with_progress(
    deps: &CampaignDeps,
    tenant: &TenantId,
    id: &str,
) -> Result<(Campaign, Progress), ApiError> {
    let id = CampaignId::parse(id, "id")?;
    let campaign = deps
        .campaigns
        .campaign(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no campaign {id}")))?;
    let progress = deps.campaigns.progress(&campaign).await?;
    Ok((campaign, progress))
}

/// The JSON of a campaign; with progress, the status is the one it implies (`done`).
fn view(campaign: &Campaign, progress: Option<&Progress>) -> Value {
    let status = progress.map_or(campaign.status, |p| campaign.status_now(p));
    let mut out = json!({
        "id": campaign.id,
        "name": campaign.name,
        "status": status,
        "title": campaign.title,
        "body": campaign.body,
        "channels": campaign.channels,
        "category": campaign.category,
        "room_id": campaign.room_id,
        "send_at": time::compact(campaign.send_at),
        "local_time": campaign.local_time,
        "timezone": campaign.timezone,
        "rate_per_second": campaign.rate_per_second,
        "audience": match &campaign.audience {
            AudienceSpec::Inline { users, .. } => json!({"users": users}),
            AudienceSpec::S3 { bucket, key, .. } => json!({"s3": format!("s3://{bucket}/{key}")}),
        },
        "created_at": time::millis(campaign.created_at),
        "started_at": campaign.started_at.map(time::millis),
        "fanned_out_at": campaign.fanned_out_at.map(time::millis),
        "cancelled_at": campaign.cancelled_at.map(time::millis),
        "notification_id": campaign.notification_id(),
    });
    if !campaign.releases.is_empty() {
        let releases: Vec<String> = campaign
            .releases
            .iter()
            .map(|at| time::compact(*at))
            .collect();
        out["releases"] = json!(releases);
    }
    if let Some(p) = progress {
        out["progress"] = json!({
            "audience": p.audience,
            "enqueued": p.enqueued,
            "held": p.held,
            "committed": p.committed,
            "sent": p.sent,
            "skipped": p.skipped,
            "skipped_by": p.skipped_by,
            "failed": p.failed,
            "invalid": p.invalid,
        });
    }
    if campaign.local_time {
        out["local_send_at"] = json!(campaign.send_at_wall.to_string());
    }
    if let Some(failure) = &campaign.failure {
        out["failure"] = json!(failure);
    }
    out
}

/// The answer to a create: with `local_time`, `local_send_at` is the wall-clock time each
/// recipient gets it at (`send_at` is that time at the offset the request gave).
fn created_view(campaign: &Campaign) -> Value {
    let mut out = json!({
        "id": campaign.id,
        "status": campaign.status,
        "send_at": time::compact(campaign.send_at),
    });
    if campaign.local_time {
        out["local_send_at"] = json!(campaign.send_at_wall.to_string());
    }
    out
}
