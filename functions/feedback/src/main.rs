//! Lambda entry point of feedback (SQS event source with ReportBatchItemFailures).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init_tracing();
    let config = feedback::Config::from_vars(&herald::config::Vars::from_env())?;
    let aws = herald::aws::sdk_config().await;
    let handler = feedback::FeedbackHandler::from_aws(&config, &aws);
    let binding = herald::aws::sqs::binding(&config.queue, &aws);
    herald::consumer::run_sqs_lambda(handler, binding).await
}
