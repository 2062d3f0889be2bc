//! DynamoDB adapter of the connections table: each user's open WebSockets.
//!
//! Layout: `pk = T#<tenant>#U#<user>`, `sk = C#<connection id>`, `connected_at` and
//! `expires_at` (epoch seconds, the table's TTL: API Gateway closes every socket within
//! 2 hours, and `$disconnect` is best effort). A user's connections are one Query; expired
//! records DynamoDB has not yet deleted are left out.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use jiff::Timestamp;

use super::dynamodb::user_pk;
use super::item::{key, n, number, s, text};
use super::store_error;
use crate::domain::counters::UserKey;
use crate::domain::live::Connection;
use crate::error::StoreError;
use crate::ports::clock::{Clock, SystemClock};
use crate::ports::live::Connections;

/// The connections table.
#[derive(Clone)]
pub struct DynamoConnections {
    client: Client,
    table: String,
    clock: std::sync::Arc<dyn Clock>,
}

impl DynamoConnections {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            clock: std::sync::Arc::new(SystemClock),
        }
    }
}

#[async_trait]
impl Connections for DynamoConnections {
    async fn add(&self, connection: &Connection) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(user_pk(&connection.user)))
            .item("sk", s(format!("C#{}", connection.id)))
            .item("id", s(&connection.id))
            .item("connected_at", n(connection.connected_at.as_second()))
            .item("expires_at", n(connection.expires_at().as_second()))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn remove(&self, user: &UserKey, connection_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), format!("C#{connection_id}"))))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn of_user(&self, user: &UserKey) -> Result<Vec<Connection>, StoreError> {
        let now = self.clock.now().as_second();
        let mut connections = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
                .expression_attribute_values(":pk", s(user_pk(user)))
                .expression_attribute_values(":c", s("C#"))
                .projection_expression("id, connected_at, expires_at")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in page.items() {
                if number(item, "expires_at") as i64 <= now {
                    continue;
                }
                let Some(id) = text(item, "id") else { continue };
                connections.push(Connection {
                    id,
                    user: user.clone(),
                    connected_at: Timestamp::from_second(number(item, "connected_at") as i64)
                        .unwrap_or_default(),
                });
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(connections);
            }
        }
    }
}
