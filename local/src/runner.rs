//! The local runner: the same handler code the Lambdas run, wired to a local stack. HTTP APIs
//! are served from one router behind the local JWT authorizer (as API Gateway's would be);
//! queue consumers run as long-polling workers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use herald::consumer::{run_worker, BatchHandler, QueueBinding};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::LocalIssuer;
use crate::devlog::{CampaignsSeen, LoggedEmail, LoggedMobile, Noting};
use crate::live::{LiveGateway, StreamEventSource};
use crate::stack::Stack;

/// Every function of the template, built from the environment the template gives it.
pub struct LocalApp {
    pub ingest: Arc<ingest::Deps>,
    pub inbox_api: Arc<inbox_api::Deps>,
    pub writer: Arc<inbox_writer::InboxWriter>,
    /// Email jobs (the delivery queue); `sms` and `push` consume their own queues.
    pub deliverer: Arc<deliver::Deliverer>,
    pub sms_deliverer: Arc<deliver::Deliverer>,
    pub push_deliverer: Arc<deliver::Deliverer>,
    pub feedback: Arc<feedback::FeedbackHandler>,
    /// Campaign notifications (MarketingWriterFunction: the writer on the marketing queue).
    pub marketing_writer: Arc<inbox_writer::InboxWriter>,
    pub campaigns: Arc<campaigns::CampaignRunner>,
    pub campaign_api: Arc<inbox_api::campaigns::CampaignDeps>,
    pub notifications: QueueBinding,
    pub marketing: QueueBinding,
    pub campaign_queue: QueueBinding,
    /// The schedule group campaigns' schedules are in (fired by `fire_due_schedules`).
    pub schedule_group: String,
    /// The schedule group workflow steps due in more than 15 minutes wait in.
    pub step_schedule_group: Option<String>,
    pub sdk: aws_config::SdkConfig,
    pub delivery: QueueBinding,
    pub sms_delivery: QueueBinding,
    pub push_delivery: QueueBinding,
    pub feedback_queue: QueueBinding,
    /// Signs the tokens this runner accepts.
    pub issuer: LocalIssuer,
    /// The campaigns the campaign queue's workers worked on (the dev log's progress lines).
    pub campaigns_seen: CampaignsSeen,
    /// Late and duplicate firings of the local Scheduler (none unless set).
    pub schedule_faults: ScheduleFaults,
    /// The live feed's WebSocket API (`/live`) and its management API.
    pub live: LiveGateway,
    /// What the pusher reads and how (`spawn_live_push` starts it).
    live_push: Option<LivePush>,
    /// The change log's consumer on the same stream (`spawn_change_log` starts it).
    change_log: Option<ChangeLogSource>,
}

/// The change log's consumer, its stream and its event source.
struct ChangeLogSource {
    logger: Arc<reconcile::change_log::ChangeLogger>,
    stream_arn: String,
    source: StreamEventSource,
    sdk: aws_config::SdkConfig,
}

/// The pusher's stream, its event source and its settings but the endpoint (the runner's
/// own address, known once it serves).
struct LivePush {
    config: live::PushConfig,
    stream_arn: String,
    source: StreamEventSource,
    sdk: aws_config::SdkConfig,
}

/// A deliverer whose sends each leave a readable log line (`email → u1@example.com "Hi"`).
fn logged(mut deliverer: deliver::Deliverer) -> Arc<deliver::Deliverer> {
    deliverer.email = Arc::new(LoggedEmail(deliverer.email));
    deliverer.mobile = Arc::new(LoggedMobile(deliverer.mobile));
    Arc::new(deliverer)
}

impl LocalApp {
    /// The runner with this process's in-memory key, as if served at 127.0.0.1:3000 (tests).
    pub fn new(stack: &Stack) -> Result<Self> {
        Self::with_issuer(stack, LocalIssuer::ephemeral(), "http://127.0.0.1:3000")
    }

    /// The runner trusting `issuer`'s tokens (`cargo xtask dev`: the key in `.herald/jwt/`),
    /// served at `public_url` (where unsubscribe links in email point).
    pub fn with_issuer(stack: &Stack, issuer: LocalIssuer, public_url: &str) -> Result<Self> {
        let sdk = &stack.sdk;
        // Each function signs its calls with its own key (its logical id), so the emulator's
        // call log says which function made which call (`cargo xtask test`'s IAM check).
        let as_fn = |function: &str| signed_as(sdk, function);
        let ingest_vars = stack.function_vars("IngestFunction")?;
        let api_vars = stack.function_vars("InboxApiFunction")?;
        // Packs commit concurrently as deployed (CommitConcurrency): the emulator launcher
        // runs each transaction under its item lock and rolls back only the items it touched.
        let writer_config =
            inbox_writer::Config::from_vars(&stack.function_vars("InboxWriterFunction")?)?;
        let marketing_config =
            inbox_writer::Config::from_vars(&stack.function_vars("MarketingWriterFunction")?)?;
        let campaigns_config =
            campaigns::Config::from_vars(&stack.function_vars("CampaignsFunction")?)?;
        // Deployed, links point at the API Gateway URL; locally, at this runner.
        let deliver_config = |function: &str| -> Result<deliver::Config> {
            let mut config = deliver::Config::from_vars(&stack.function_vars(function)?)?;
            config.unsubscribe_url = Some(format!("{public_url}/v1/unsubscribe"));
            Ok(config)
        };
        let (email_config, sms_config, push_config) = (
            deliver_config("DeliverFunction")?,
            deliver_config("DeliverSmsFunction")?,
            deliver_config("DeliverPushFunction")?,
        );
        let feedback_config =
            feedback::Config::from_vars(&stack.function_vars("FeedbackFunction")?)?;
        // The live feed: the authorizer checks this issuer's tokens as deployed it checks the
        // pool's (its keys handed over in memory instead of fetched from JWKS_URL).
        let authorizer = live::authorizer::Authorizer::new(
            &live::AuthorizerConfig {
                jwks_url: Some(format!("{public_url}/.well-known/jwks.json")),
                issuer: crate::auth::LOCAL_ISSUER.into(),
                audiences: vec![crate::auth::LOCAL_AUDIENCE.into()],
                auth: herald::auth::AuthSettings::from_vars(&api_vars)?,
            },
            Arc::new(StaticKeys(issuer.jwks().clone())),
        );
        let live_gateway = LiveGateway::new(
            authorizer,
            live::socket::Socket::from_aws(
                &live::SocketConfig::from_vars(&stack.function_vars("LiveSocketFunction")?)?,
                &as_fn("LiveSocketFunction"),
            ),
        );
        let live_push = match stack.stream_event_source("LivePushFunction")? {
            Some((table, source)) => Some(LivePush {
                config: live::PushConfig::from_vars(&stack.function_vars("LivePushFunction")?)?,
                stream_arn: stack
                    .streams
                    .get(&table)
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("{table} has no stream locally"))?,
                source,
                sdk: as_fn("LivePushFunction"),
            }),
            None => None,
        };
        let change_log = match stack.stream_event_source("ChangeLogFunction")? {
            Some((table, source)) => {
                let sdk = as_fn("ChangeLogFunction");
                let config =
                    reconcile::Config::from_vars(&stack.function_vars("ChangeLogFunction")?)?;
                Some(ChangeLogSource {
                    logger: Arc::new(reconcile::change_log::ChangeLogger::from_aws(&config, &sdk)),
                    stream_arn: stack
                        .streams
                        .get(&table)
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("{table} has no stream locally"))?,
                    source,
                    sdk,
                })
            }
            None => None,
        };
        let mut notifications =
            herald::aws::sqs::binding(&writer_config.queue, &as_fn("InboxWriterFunction"));
        let mut marketing =
            herald::aws::sqs::binding(&marketing_config.queue, &as_fn("MarketingWriterFunction"));
        let mut campaign_queue =
            herald::aws::sqs::binding(&campaigns_config.queue, &as_fn("CampaignsFunction"));
        let mut delivery =
            herald::aws::sqs::binding(&email_config.queue, &as_fn("DeliverFunction"));
        let mut sms_delivery =
            herald::aws::sqs::binding(&sms_config.queue, &as_fn("DeliverSmsFunction"));
        let mut push_delivery =
            herald::aws::sqs::binding(&push_config.queue, &as_fn("DeliverPushFunction"));
        let mut feedback_queue =
            herald::aws::sqs::binding(&feedback_config.queue, &as_fn("FeedbackFunction"));
        for (binding, function) in [
            (&mut notifications, "InboxWriterFunction"),
            (&mut marketing, "MarketingWriterFunction"),
            (&mut campaign_queue, "CampaignsFunction"),
            (&mut delivery, "DeliverFunction"),
            (&mut sms_delivery, "DeliverSmsFunction"),
            (&mut push_delivery, "DeliverPushFunction"),
            (&mut feedback_queue, "FeedbackFunction"),
        ] {
            // Batches as the template's event source makes them (campaign work one message
            // at a time, campaign notifications in large batches for packed commits), over
            // its batching window, stopped at the function's timeout.
            if let Some(source) = stack.sqs_event_source(function)? {
                if let Some(size) = source.batch_size {
                    binding.batch_size = size;
                }
                binding.batching_window = source.batching_window;
                binding.max_concurrency = source.max_concurrency.unwrap_or(1).max(1);
            }
            binding.timeout = Some(stack.function_timeout(function)?);
            // Locally, retries come back within a second rather than after minutes.
            binding.rules.backoff.base = Duration::from_secs(1);
            binding.rules.backoff.cap = Duration::from_secs(2);
        }
        Ok(Self {
            ingest: Arc::new(ingest::Deps::from_aws(
                &ingest::Config::from_vars(&ingest_vars)?,
                &as_fn("IngestFunction"),
            )),
            inbox_api: Arc::new(inbox_api::Deps::from_aws(
                &inbox_api::Config::from_vars(&api_vars)?,
                &as_fn("InboxApiFunction"),
            )),
            writer: Arc::new(inbox_writer::InboxWriter::from_aws(
                &writer_config,
                &as_fn("InboxWriterFunction"),
            )),
            deliverer: logged(deliver::Deliverer::from_aws(
                &email_config,
                &as_fn("DeliverFunction"),
            )),
            sms_deliverer: logged(deliver::Deliverer::from_aws(
                &sms_config,
                &as_fn("DeliverSmsFunction"),
            )),
            push_deliverer: logged(deliver::Deliverer::from_aws(
                &push_config,
                &as_fn("DeliverPushFunction"),
            )),
            feedback: Arc::new(feedback::FeedbackHandler::from_aws(
                &feedback_config,
                &as_fn("FeedbackFunction"),
            )),
            marketing_writer: Arc::new(inbox_writer::InboxWriter::from_aws(
                &marketing_config,
                &as_fn("MarketingWriterFunction"),
            )),
            campaigns: Arc::new(campaigns::CampaignRunner::from_aws(
                &campaigns_config,
                &as_fn("CampaignsFunction"),
            )),
            campaign_api: Arc::new(inbox_api::campaigns::CampaignDeps::from_aws(
                &inbox_api::campaigns::CampaignConfig::from_vars(&api_vars)?,
                &herald::auth::AuthSettings::from_vars(&api_vars)?,
                &as_fn("InboxApiFunction"),
            )),
            schedule_group: campaigns_config.schedules.group.clone(),
            step_schedule_group: writer_config
                .step_schedules
                .as_ref()
                .map(|s| s.group.clone()),
            sdk: sdk.clone(),
            notifications,
            marketing,
            campaign_queue,
            delivery,
            sms_delivery,
            push_delivery,
            feedback_queue,
            issuer,
            campaigns_seen: CampaignsSeen::default(),
            schedule_faults: ScheduleFaults::default(),
            live: live_gateway,
            live_push,
            change_log,
        })
    }

    /// A user's token for this runner.
    pub fn user_token(&self, tenant: &str, user: &str) -> String {
        self.issuer.sign(&self.issuer.user(tenant, user))
    }

    /// A service token with every scope for this runner.
    pub fn service_token(&self, tenant: &str) -> String {
        self.issuer.sign(&self.issuer.service(tenant))
    }

    /// Both HTTP APIs on one router, as API Gateway routes them: every route behind the JWT
    /// authorizer but the signed unsubscribe link, plus the issuer's JWKS.
    pub fn router(&self) -> Router {
        let authorizer = self.issuer.authorizer();
        let jwks = serde_json::to_value(self.issuer.jwks()).unwrap_or_default();
        // OIDC discovery, as an issuer publishes it (the WebSocket authorizer's default way
        // to its keys), naming the JWKS at the address it was asked on.
        let discovery = |headers: axum::http::HeaderMap| async move {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1:3000")
                .to_owned();
            axum::Json(serde_json::json!({
                "issuer": crate::auth::LOCAL_ISSUER,
                "jwks_uri": format!("http://{host}/.well-known/jwks.json"),
            }))
        };
        ingest::routes(self.ingest.clone())
            .merge(inbox_api::routes(self.inbox_api.clone()))
            .merge(inbox_api::campaigns::routes(self.campaign_api.clone()))
            .layer(axum::middleware::from_fn(move |request, next| {
                authorizer.clone().layer(request, next)
            }))
            .merge(inbox_api::public_routes(self.inbox_api.clone()))
            .merge(self.live.routes())
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            )
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(discovery),
            )
            .fallback(herald::http::not_found)
    }

    /// As many long-polling consumers per queue as its deployed event source runs at most
    /// (`ScalingConfig.MaximumConcurrency`), until `shutdown`.
    pub fn spawn_deployed_workers(
        &self,
        wait_seconds: i32,
        shutdown: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        self.spawn(None, wait_seconds, shutdown)
    }

    /// `workers` long-polling consumers per queue, until `shutdown` (tests that need one
    /// worker say so here).
    pub fn spawn_workers(
        &self,
        workers: usize,
        wait_seconds: i32,
        shutdown: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        self.spawn(Some(workers), wait_seconds, shutdown)
    }

    fn spawn(
        &self,
        workers: Option<usize>,
        wait_seconds: i32,
        shutdown: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let pairs: [(Arc<dyn BatchHandler>, &QueueBinding); 7] = [
            (self.writer.clone(), &self.notifications),
            (self.marketing_writer.clone(), &self.marketing),
            (
                Arc::new(Noting {
                    inner: self.campaigns.clone(),
                    seen: self.campaigns_seen.clone(),
                }),
                &self.campaign_queue,
            ),
            (self.deliverer.clone(), &self.delivery),
            (self.sms_deliverer.clone(), &self.sms_delivery),
            (self.push_deliverer.clone(), &self.push_delivery),
            (self.feedback.clone(), &self.feedback_queue),
        ];
        let mut handles = Vec::new();
        for (handler, binding) in pairs {
            for _ in 0..workers.unwrap_or(binding.max_concurrency) {
                handles.push(tokio::spawn(run_worker(
                    handler.clone(),
                    binding.clone(),
                    wait_seconds,
                    shutdown.clone(),
                )));
            }
        }
        // EventBridge Scheduler's part: the emulator stores schedules but never fires them.
        let (sdk, shutdown, faults) = (self.sdk.clone(), shutdown.clone(), self.schedule_faults);
        let groups: Vec<String> = std::iter::once(self.schedule_group.clone())
            .chain(self.step_schedule_group.clone())
            .collect();
        handles.push(tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                let now = jiff::Timestamp::now();
                for group in &groups {
                    if let Err(e) = fire_due_schedules_with(&sdk, group, now, &faults).await {
                        tracing::warn!(error = %e, group, "firing schedules");
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }));
        handles
    }

    /// The pusher on the inbox table's stream, posting frames to the management API at
    /// `endpoint` (where this runner serves), until `shutdown`.
    pub fn spawn_live_push(
        &self,
        endpoint: &str,
        shutdown: &CancellationToken,
    ) -> Option<JoinHandle<()>> {
        let push = self.live_push.as_ref()?;
        let pusher = Arc::new(self.live_pusher(endpoint)?);
        Some(tokio::spawn(crate::live::run_stream(
            push.sdk.clone(),
            push.stream_arn.clone(),
            push.source.clone(),
            pusher,
            shutdown.clone(),
        )))
    }

    /// The change log's consumer on the inbox table's stream, until `shutdown`.
    pub fn spawn_change_log(&self, shutdown: &CancellationToken) -> Option<JoinHandle<()>> {
        let log = self.change_log.as_ref()?;
        Some(tokio::spawn(crate::live::run_stream(
            log.sdk.clone(),
            log.stream_arn.clone(),
            log.source.clone(),
            log.logger.clone(),
            shutdown.clone(),
        )))
    }

    /// Logs every counter change the stream holds so far, as the change log's function would
    /// have by now (tests and benches that run reconcile's hourly mode without `serve`).
    pub async fn drain_change_log(&self) -> Result<(usize, usize)> {
        let log = self
            .change_log
            .as_ref()
            .context("the template has no change log")?;
        crate::live::drain_stream(&log.sdk, &log.stream_arn, &log.source, log.logger.as_ref()).await
    }

    /// The pusher as deployed, posting to the management API at `endpoint`.
    pub fn live_pusher(&self, endpoint: &str) -> Option<live::push::Pusher> {
        let push = self.live_push.as_ref()?;
        let mut config = push.config.clone();
        config.live_endpoint = endpoint.to_owned();
        Some(live::push::Pusher::from_aws(&config, &push.sdk))
    }

    /// Serves the router on `listener` until `shutdown`, the live feed's pusher included.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let url = format!("http://{}", listener.local_addr()?);
        let push = self.spawn_live_push(&url, &shutdown);
        let change_log = self.spawn_change_log(&shutdown);
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        for consumer in [push, change_log].into_iter().flatten() {
            let _ = consumer.await;
        }
        Ok(())
    }
}

/// The local issuer's keys, handed to the authorizer in memory.
struct StaticKeys(jsonwebtoken::jwk::JwkSet);

#[async_trait::async_trait]
impl live::jwks::KeySource for StaticKeys {
    async fn fetch(&self) -> Result<jsonwebtoken::jwk::JwkSet, herald::jwt::TokenError> {
        Ok(self.0.clone())
    }
}

/// Fires every one-time schedule of `group` due at `now`, as EventBridge Scheduler does: its
/// input goes to its target queue, and the schedule is deleted (`ActionAfterCompletion:
/// DELETE`). Returns how many fired. The same campaign code then runs as on AWS; only the
/// trigger differs.
pub async fn fire_due_schedules(
    sdk: &aws_config::SdkConfig,
    group: &str,
    now: jiff::Timestamp,
) -> Result<usize> {
    fire_due_schedules_with(sdk, group, now, &ScheduleFaults::default()).await
}

/// How EventBridge Scheduler keeps its promise loosely, on demand: "at least once" (a share
/// of firings sends its input twice) and "within a minute" (each schedule fires up to
/// `late_by` after its time, by an amount fixed per schedule).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScheduleFaults {
    /// Share of firings that deliver twice (0 to 1).
    pub duplicate: f64,
    /// The most a firing is late.
    pub late_by: Duration,
}

impl ScheduleFaults {
    /// This schedule's lateness: a fraction of `late_by` that depends on its name only.
    fn lateness(&self, name: &str) -> Duration {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        self.late_by.mul_f64((hash % 1000) as f64 / 1000.0)
    }

    fn copies(&self) -> usize {
        if self.duplicate > 0.0 && rand::random::<f64>() < self.duplicate {
            2
        } else {
            1
        }
    }
}

/// `fire_due_schedules` with `faults`.
pub async fn fire_due_schedules_with(
    sdk: &aws_config::SdkConfig,
    group: &str,
    now: jiff::Timestamp,
    faults: &ScheduleFaults,
) -> Result<usize> {
    let scheduler = aws_sdk_scheduler::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    // Every page of the group (the emulator, as AWS, answers a page at a time): a schedule
    // beyond the first page must fire too.
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = scheduler
            .list_schedules()
            .group_name(group)
            .set_next_token(token)
            .send()
            .await?;
        names.extend(
            page.schedules()
                .iter()
                .filter_map(|s| s.name().map(str::to_owned)),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut fired = 0;
    for name in &names {
        let name = name.as_str();
        let schedule = scheduler
            .get_schedule()
            .group_name(group)
            .name(name)
            .send()
            .await?;
        let expression = schedule.schedule_expression().unwrap_or_default();
        let Some(at) = expression
            .strip_prefix("at(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|wall| wall.parse::<jiff::civil::DateTime>().ok())
        else {
            continue;
        };
        let zone = schedule.schedule_expression_timezone().unwrap_or("UTC");
        let due = jiff::tz::TimeZone::get(zone)?
            .to_ambiguous_timestamp(at)
            .compatible()?;
        let late = jiff::SignedDuration::try_from(faults.lateness(name)).unwrap_or_default();
        if due + late > now {
            continue;
        }
        let Some(target) = schedule.target() else {
            continue;
        };
        let queue_name = target.arn().rsplit(':').next().unwrap_or_default();
        let url = sqs
            .get_queue_url()
            .queue_name(queue_name)
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        for _ in 0..faults.copies() {
            sqs.send_message()
                .queue_url(&url)
                .message_body(target.input().unwrap_or("{}"))
                .send()
                .await?;
        }
        scheduler
            .delete_schedule()
            .group_name(group)
            .name(name)
            .send()
            .await?;
        tracing::info!(schedule = name, "fired a due schedule");
        fired += 1;
    }
    Ok(fired)
}

/// `sdk` signing with the key `function` (the emulator takes any key; its call log records
/// which one signed each call).
pub fn signed_as(sdk: &aws_config::SdkConfig, function: &str) -> aws_config::SdkConfig {
    let credentials =
        aws_sdk_sqs::config::Credentials::new(function, "local", None, None, "herald-local");
    sdk.to_builder()
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .build()
}
