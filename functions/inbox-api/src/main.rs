//! Lambda entry point of inbox-api.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init_tracing();
    let vars = herald::config::Vars::from_env();
    let config = inbox_api::Config::from_vars(&vars)?;
    let aws = herald::aws::sdk_config().await;
    let deps = Arc::new(inbox_api::Deps::from_aws(&config, &aws));
    let campaigns = inbox_api::campaigns::CampaignConfig::from_vars(&vars)?;
    let campaigns = Arc::new(inbox_api::campaigns::CampaignDeps::from_aws(
        &campaigns,
        &config.auth,
        &aws,
    ));
    lambda_http::run(inbox_api::app(deps, campaigns)).await
}
