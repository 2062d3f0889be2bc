//! SMS and mobile push (`aws/sns.rs`, `fake/sns.rs`).

use async_trait::async_trait;

use super::SendError;

/// One SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// E.164.
    pub to: String,
    /// At most 1,600 characters (what SNS takes).
    pub text: String,
    /// Marketing goes as SNS's Promotional type (cheaper, may be delayed, honours quiet
    /// hours at the carrier); the rest as Transactional (highest delivery priority).
    pub promotional: bool,
}

/// SMS and mobile push, both through SNS.
#[async_trait]
pub trait MobileSender: Send + Sync {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError>;
    async fn send_push(
        &self,
        endpoint_arn: &str,
        title: &str,
        body: &str,
    ) -> Result<String, SendError>;
}
