//! API Gateway's management API: frames to open WebSockets (`POST @connections/{id}`). The
//! endpoint is the WebSocket API's stage (`https://<api>.execute-api.<region>.amazonaws.com/
//! <stage>`); locally, `cargo xtask dev`'s own management endpoint.

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::call_error;
use crate::ports::live::{PostError, Sockets};

#[derive(Debug, Clone)]
pub struct ApiGatewaySockets {
    client: Client,
}

impl ApiGatewaySockets {
    /// The management API of the stage at `endpoint`.
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

#[async_trait]
impl Sockets for ApiGatewaySockets {
    async fn post(&self, connection_id: &str, frame: &str) -> Result<(), PostError> {
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame.as_bytes()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                Err(PostError::Gone)
            }
            Err(e) if e.code() == Some("GoneException") => Err(PostError::Gone),
            Err(e) => Err(PostError::Failed(call_error(e))),
        }
    }
}
