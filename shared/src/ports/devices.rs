//! Push devices: the registry of tokens and their endpoints (`aws/devices.rs`,
//! `fake/devices.rs`), and the SNS platform endpoints behind them (`aws/sns.rs`,
//! `fake/sns.rs`).

use async_trait::async_trait;

use crate::domain::device::Device;
use crate::domain::ids::{TenantId, UserId};
use crate::error::StoreError;

/// What a registration changed besides the device itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registered {
    /// The token was not this user's before.
    pub created: bool,
    /// The user the token belonged to until now (a phone that changed hands).
    pub moved_from: Option<UserId>,
    /// Devices dropped to stay within `MAX_DEVICES_PER_USER` (the oldest; their endpoints
    /// stay, SNS disables them once the provider refuses the token).
    pub evicted: Vec<Device>,
}

/// Which devices each user has; a token belongs to one user of a tenant at a time.
#[async_trait]
pub trait DeviceRegistry: Send + Sync {
    /// The user's devices, oldest first.
    async fn devices(&self, tenant: &TenantId, user: &UserId) -> Result<Vec<Device>, StoreError>;
    /// Registers `device` as `user`'s, taking its token from any other user, and dropping
    /// the user's oldest devices past the limit, in one transaction. `VersionConflict`: the
    /// token or the user's devices changed meanwhile (read again and retry).
    async fn register(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &Device,
    ) -> Result<Registered, StoreError>;
    /// Removes the user's device with `token`; `None` when the user has none.
    async fn remove(
        &self,
        tenant: &TenantId,
        user: &UserId,
        token: &str,
    ) -> Result<Option<Device>, StoreError>;
}

/// SNS platform endpoints: one per token and platform application, shared by every tenant
/// of the stack that registers the token (so herald never deletes one).
#[async_trait]
pub trait PushEndpoints: Send + Sync {
    /// The enabled endpoint of `token` on `application_arn`: created, or the existing one
    /// (re-enabled, its token set again, when SNS had disabled it).
    async fn endpoint_for(&self, application_arn: &str, token: &str) -> Result<String, StoreError>;
}
