//! Lambda entry point of the WebSocket API's `$connect` authorizer.

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init_tracing();
    let config = live::AuthorizerConfig::from_vars(&herald::config::Vars::from_env())?;
    let authorizer = &live::authorizer::Authorizer::from_config(&config);
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<
            aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest,
        >| async move {
            authorizer
                .authorize(&event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}
