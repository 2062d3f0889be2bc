//! Lambda entry point of the WebSocket API's routes (`$connect`, `$disconnect`, `$default`).

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init_tracing();
    let config = live::SocketConfig::from_vars(&herald::config::Vars::from_env())?;
    let aws = herald::aws::sdk_config().await;
    let socket = &live::socket::Socket::from_aws(&config, &aws);
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<live::socket::RouteEvent>| async move {
            socket
                .handle(&event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}
