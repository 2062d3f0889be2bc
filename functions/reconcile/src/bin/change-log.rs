//! Lambda entry point of the change log (the inbox table's stream, TOTAL records,
//! ReportBatchItemFailures).

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init_tracing();
    let config = reconcile::Config::from_vars(&herald::config::Vars::from_env())?;
    let logger =
        &reconcile::change_log::ChangeLogger::from_aws(&config, &herald::aws::sdk_config().await);
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::dynamodb::Event>| async move {
            Ok::<_, lambda_runtime::Error>(logger.invoke(&event.payload).await?)
        },
    ))
    .await
}
