//! Lambda entry point of ingest.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init_tracing();
    let vars = herald::config::Vars::from_env();
    let config = ingest::Config::from_vars(&vars)?;
    let aws = herald::aws::sdk_config().await;
    let deps = Arc::new(ingest::Deps::from_aws(&config, &aws));
    lambda_http::run(ingest::app(deps)).await
}
