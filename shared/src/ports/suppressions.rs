//! Managing the suppression list: list, look up, lift an entry with an audit trail
//! (`aws/directory.rs`, `fake/directory.rs`). Checking and adding entries is
//! `Directory::is_suppressed` / `Directory::suppress`, on the delivery path.

use async_trait::async_trait;

use crate::domain::ids::TenantId;
use crate::domain::suppression::{Removal, Suppression};
use crate::error::StoreError;

/// One page of a list; `next_cursor` continues it (opaque to callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// What an address's lookup finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressSuppressions {
    /// The tenant's entry and the global one, those that exist.
    pub entries: Vec<Suppression>,
    /// The tenant's removals of this address, newest first.
    pub removals: Vec<Removal>,
}

/// What lifting a tenant's entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifted {
    /// Removed, and the removal recorded.
    Removed(Removal),
    /// The tenant has no entry for the address (a global one, if any, stays).
    NotSuppressed,
}

#[async_trait]
pub trait SuppressionList: Send + Sync {
    /// The tenant's own entries, by address (global entries are not listed: they name other
    /// tenants' recipients; a lookup shows the one of an address).
    async fn suppressions(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Suppression>, StoreError>;
    /// Everything about one (normalised) address: the tenant's and the global entry, and
    /// the tenant's removals of it.
    async fn lookup(
        &self,
        tenant: &TenantId,
        address: &str,
    ) -> Result<AddressSuppressions, StoreError>;
    /// Lifts the tenant's entry for `address` and records who did, in one transaction: the
    /// entry gone without its removal on record cannot happen.
    async fn lift(
        &self,
        tenant: &TenantId,
        address: &str,
        removed_by: &str,
        note: Option<&str>,
    ) -> Result<Lifted, StoreError>;
    /// The tenant's removals, newest first.
    async fn removals(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Removal>, StoreError>;
}
