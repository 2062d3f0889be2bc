//! The WebSocket API's routes. `$connect` records the connection under the user the
//! authorizer named, `$disconnect` forgets it (API Gateway calls it best effort; the record's
//! TTL covers the rest), `$default` takes the client's frames: `ping` is answered `pong`
//! (the heartbeat that keeps an idle socket open), anything else an error frame naming the
//! field. Every route of a connection carries the authorizer's context, so nothing here
//! trusts what the client sends about who it is.

use std::sync::Arc;

use herald::domain::counters::UserKey;
use herald::domain::live::{parse_action, ClientAction, Connection, Frame};
use herald::ports::clock::{Clock, SystemClock};
use herald::ports::live::Connections;
use herald::{TenantId, UserId};
use serde::{Deserialize, Serialize};

use crate::authorizer::ConnectionContext;

/// A WebSocket route's event (API Gateway's Lambda proxy format for WebSocket APIs).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteEvent {
    pub request_context: RouteContext,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteContext {
    pub route_key: String,
    pub connection_id: String,
    /// The authorizer's context (`$connect` and every later route of the connection).
    #[serde(default)]
    pub authorizer: Option<ConnectionContext>,
}

/// What the route answers; for `$default` the body is the frame sent back to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteResponse {
    pub status_code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl RouteResponse {
    fn ok(body: Option<String>) -> Self {
        Self {
            status_code: 200,
            body,
        }
    }
}

/// A route failed; the gateway closes a `$connect` that fails.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("no authorizer context: the route was reached without the authorizer")]
    Unauthorized,
    #[error("{0}")]
    Store(#[from] herald::StoreError),
}

pub struct Socket {
    pub connections: Arc<dyn Connections>,
    pub clock: Arc<dyn Clock>,
}

impl Socket {
    pub fn from_aws(config: &crate::SocketConfig, aws: &aws_config::SdkConfig) -> Self {
        Self {
            connections: Arc::new(herald::aws::connections::DynamoConnections::new(
                aws_sdk_dynamodb::Client::new(aws),
                &config.connections_table,
            )),
            clock: Arc::new(SystemClock),
        }
    }

    pub async fn handle(&self, event: &RouteEvent) -> Result<RouteResponse, RouteError> {
        let context = &event.request_context;
        let user = context
            .authorizer
            .as_ref()
            .and_then(user_of)
            .ok_or(RouteError::Unauthorized)?;
        match context.route_key.as_str() {
            "$connect" => {
                self.connections
                    .add(&Connection {
                        id: context.connection_id.clone(),
                        user,
                        connected_at: self.clock.now(),
                    })
                    .await?;
                Ok(RouteResponse::ok(None))
            }
            "$disconnect" => {
                self.connections
                    .remove(&user, &context.connection_id)
                    .await?;
                Ok(RouteResponse::ok(None))
            }
            _ => {
                let body = event.body.as_deref().unwrap_or_default();
                let frame = match parse_action(body) {
                    Ok(ClientAction::Ping) => Frame::Pong,
                    Err(error) => Frame::Error { error },
                };
                Ok(RouteResponse::ok(Some(frame.to_json())))
            }
        }
    }
}

fn user_of(context: &ConnectionContext) -> Option<UserKey> {
    Some(UserKey {
        tenant: TenantId::parse(&context.tenant, "tenant").ok()?,
        user: UserId::parse(&context.user, "user").ok()?,
    })
}
