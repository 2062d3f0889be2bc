//! Lambda entry point of inbox-writer (SQS event source with ReportBatchItemFailures).

use aws_lambda_events::event::sqs::SqsEvent;
use herald::consumer::{handle_sqs_event, QueueBinding};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init_tracing();
    let vars = herald::config::Vars::from_env();
    let config = inbox_writer::Config::from_vars(&vars)?;
    let aws = herald::aws::sdk_config().await;
    let writer = inbox_writer::InboxWriter::from_aws(&config, &aws);
    let binding = QueueBinding::from_vars(
        &vars,
        aws_sdk_sqs::Client::new(&aws),
        "NOTIFICATIONS_QUEUE_URL",
        "NOTIFICATIONS_DLQ_URL",
    )?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(handle_sqs_event(&writer, &binding, event.payload).await)
    }))
    .await
}
