//! The local runner: the same handler code the Lambdas run, wired to a local stack. HTTP APIs
//! are served from one router behind the local JWT authorizer (as API Gateway's would be);
//! queue consumers run as long-polling workers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use herald::consumer::{run_worker, BatchHandler, QueueBinding};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::LocalIssuer;
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
    pub notifications: QueueBinding,
    pub delivery: QueueBinding,
    pub sms_delivery: QueueBinding,
    pub push_delivery: QueueBinding,
    pub feedback_queue: QueueBinding,
    /// Signs the tokens this runner accepts.
    pub issuer: LocalIssuer,
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
        let ingest_vars = stack.function_vars("IngestFunction")?;
        let api_vars = stack.function_vars("InboxApiFunction")?;
        let mut writer_config =
            inbox_writer::Config::from_vars(&stack.function_vars("InboxWriterFunction")?)?;
        // moto rolls a cancelled transaction back by restoring a snapshot of the whole table,
        // which can erase a concurrent commit: locally, one pack at a time.
        writer_config.packing.concurrency = 1;
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
        let mut notifications = herald::aws::sqs::binding(&writer_config.queue, sdk);
        let mut delivery = herald::aws::sqs::binding(&email_config.queue, sdk);
        let mut sms_delivery = herald::aws::sqs::binding(&sms_config.queue, sdk);
        let mut push_delivery = herald::aws::sqs::binding(&push_config.queue, sdk);
        let mut feedback_queue = herald::aws::sqs::binding(&feedback_config.queue, sdk);
        // Locally, retries come back within a second rather than after minutes.
        for binding in [
            &mut notifications,
            &mut delivery,
            &mut sms_delivery,
            &mut push_delivery,
            &mut feedback_queue,
        ] {
            binding.rules.backoff.base = Duration::from_secs(1);
            binding.rules.backoff.cap = Duration::from_secs(2);
        }
        Ok(Self {
            ingest: Arc::new(ingest::Deps::from_aws(
                &ingest::Config::from_vars(&ingest_vars)?,
                sdk,
            )),
            inbox_api: Arc::new(inbox_api::Deps::from_aws(
                &inbox_api::Config::from_vars(&api_vars)?,
                sdk,
            )),
            writer: Arc::new(inbox_writer::InboxWriter::from_aws(&writer_config, sdk)),
            deliverer: Arc::new(deliver::Deliverer::from_aws(&email_config, sdk)),
            sms_deliverer: Arc::new(deliver::Deliverer::from_aws(&sms_config, sdk)),
            push_deliverer: Arc::new(deliver::Deliverer::from_aws(&push_config, sdk)),
            feedback: Arc::new(feedback::FeedbackHandler::from_aws(&feedback_config, sdk)),
            notifications,
            delivery,
            sms_delivery,
            push_delivery,
            feedback_queue,
            issuer,
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
        ingest::routes(self.ingest.clone())
            .merge(inbox_api::routes(self.inbox_api.clone()))
            .layer(axum::middleware::from_fn(move |request, next| {
                authorizer.clone().layer(request, next)
            }))
            .merge(inbox_api::public_routes(self.inbox_api.clone()))
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            )
            .fallback(herald::http::not_found)
    }

    /// `workers` long-polling consumers per queue, until `shutdown`.
    pub fn spawn_workers(
        &self,
        workers: usize,
        wait_seconds: i32,
        shutdown: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let pairs: [(Arc<dyn BatchHandler>, &QueueBinding); 5] = [
            (self.writer.clone(), &self.notifications),
            (self.deliverer.clone(), &self.delivery),
            (self.sms_deliverer.clone(), &self.sms_delivery),
            (self.push_deliverer.clone(), &self.push_delivery),
            (self.feedback.clone(), &self.feedback_queue),
        ];
        let mut handles = Vec::new();
        for (handler, binding) in pairs {
            for _ in 0..workers {
                handles.push(tokio::spawn(run_worker(
                    handler.clone(),
                    binding.clone(),
                    wait_seconds,
                    shutdown.clone(),
                )));
            }
        }
        handles
    }

    /// Serves the router on `listener` until `shutdown`.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    }
}
