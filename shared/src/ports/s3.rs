//! Audience files, read in ranges (`aws/s3.rs`, `fake/s3.rs`).

use async_trait::async_trait;

pub use crate::domain::campaign::{AudienceFile, AudienceRead, AudienceUnreadable};
use crate::error::StoreError;

/// Audience files in S3, read in ranges (never whole into memory).
#[async_trait]
pub trait AudienceFiles: Send + Sync {
    /// `Ok(None)`: no such object. The file's version (`etag`) is the one its header was
    /// read from.
    async fn inspect(&self, bucket: &str, key: &str) -> Result<Option<AudienceFile>, StoreError>;
    /// Up to `max` users from byte `cursor` on (the header line skipped at 0 for a CSV), of
    /// version `etag` only (`None`: whatever is there).
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        etag: Option<&str>,
        column: Option<usize>,
        cursor: u64,
        max: usize,
    ) -> Result<AudienceRead, AudienceError>;
    /// Stores a file (the console's upload); returns its ETag.
    async fn upload(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<String, StoreError>;
}

/// Reading an audience file failed.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    /// The file cannot be read as the campaign pinned it (gone, changed, denied): retrying
    /// does not help, the campaign fails.
    #[error(transparent)]
    Unreadable(#[from] AudienceUnreadable),
    /// Anything else: retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}
