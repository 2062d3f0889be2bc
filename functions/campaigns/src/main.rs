//! Lambda entry point of campaigns (the campaign queue: starts, pages and releases).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init_tracing();
    let config = campaigns::Config::from_vars(&herald::config::Vars::from_env())?;
    let aws = herald::aws::sdk_config().await;
    let runner = campaigns::CampaignRunner::from_aws(&config, &aws);
    let binding = herald::aws::sqs::binding(&config.queue, &aws);
    herald::consumer::run_sqs_lambda(runner, binding).await
}
