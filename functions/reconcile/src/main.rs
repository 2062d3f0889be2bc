//! Lambda entry point of reconcile (EventBridge schedule).

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init_tracing();
    let config = reconcile::Config::from_vars(&herald::config::Vars::from_env())?;
    let store = reconcile::store_from_aws(&config, &herald::aws::sdk_config().await);
    let store = &store;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let request = reconcile::Request::from_event(&event.payload);
            let deadline = reconcile::deadline(event.context.deadline());
            let report = reconcile::reconcile(store, &request, deadline).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}
