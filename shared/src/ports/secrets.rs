//! The unsubscribe links' signing secret (`aws/secrets.rs`, `fake/secrets.rs`).

use async_trait::async_trait;

use crate::domain::unsubscribe::LinkSigner;
use crate::error::StoreError;

/// The secret that signs unsubscribe links: fetched once, then kept.
#[async_trait]
pub trait LinkKeys: Send + Sync {
    async fn signer(&self) -> Result<LinkSigner, StoreError>;
}
