//! Lambda entry point of the pusher (the inbox table's stream, ReportBatchItemFailures).

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init_tracing();
    let config = live::PushConfig::from_vars(&herald::config::Vars::from_env())?;
    let aws = herald::aws::sdk_config().await;
    let pusher = &live::push::Pusher::from_aws(&config, &aws);
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::dynamodb::Event>| async move {
            Ok::<_, lambda_runtime::Error>(pusher.handle(&event.payload).await.1)
        },
    ))
    .await
}
