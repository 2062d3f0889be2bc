//! Lambda entry point of inbox-writer (SQS event source with ReportBatchItemFailures).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init_tracing();
    let config = inbox_writer::Config::from_vars(&herald::config::Vars::from_env())?;
    let aws = herald::aws::sdk_config().await;
    let writer = inbox_writer::InboxWriter::from_aws(&config, &aws);
    let binding = herald::aws::sqs::binding(&config.queue, &aws);
    herald::consumer::run_sqs_lambda(writer, binding).await
}
