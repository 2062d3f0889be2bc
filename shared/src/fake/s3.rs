//! Audience files in memory, read through the same reader as S3's.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::campaign::{AudienceFile, AudienceRead, AudienceUnreadable};
use crate::error::StoreError;
use crate::ports::*;

/// Audience files in memory, read through the same reader as S3's. A file's ETag is a hash
/// of its bytes (as S3's of a simple upload): replacing it with other bytes changes it.
#[derive(Default)]
pub struct InMemoryAudiences {
    pub files: Mutex<HashMap<(String, String), Vec<u8>>>,
    /// Upload times (by default none: unknown).
    pub modified: Mutex<HashMap<(String, String), jiff::Timestamp>>,
    /// Files herald may not read (S3's 403).
    pub denied: Mutex<HashSet<(String, String)>>,
}

impl InMemoryAudiences {
    /// The ETag of `bytes`, quoted as S3 writes it.
    pub fn etag(bytes: &[u8]) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(bytes);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    }
}

#[async_trait]
impl AudienceFiles for InMemoryAudiences {
    async fn upload(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
        let etag = Self::etag(&bytes);
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((bucket.to_owned(), key.to_owned()), bytes);
        Ok(etag)
    }

    async fn inspect(&self, bucket: &str, key: &str) -> Result<Option<AudienceFile>, StoreError> {
        let at = (bucket.to_owned(), key.to_owned());
        let modified = self
            .modified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&at)
            .copied();
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        Ok(files.get(&at).map(|bytes| AudienceFile {
            column: crate::domain::campaign::audience_header(bytes),
            size: bytes.len() as u64,
            etag: Some(Self::etag(bytes)),
            modified,
            users_estimate: crate::domain::campaign::audience::estimate_users(
                bytes,
                bytes.len() as u64,
            ),
        }))
    }

    async fn read(
        &self,
        bucket: &str,
        key: &str,
        etag: Option<&str>,
        column: Option<usize>,
        cursor: u64,
        max: usize,
    ) -> Result<AudienceRead, AudienceError> {
        let at = (bucket.to_owned(), key.to_owned());
        let uri = format!("s3://{bucket}/{key}");
        let status = |status| {
            AudienceUnreadable::from_status(status, &uri, etag).map_or_else(
                || StoreError::Fatal(uri.clone()).into(),
                AudienceError::from,
            )
        };
        if self
            .denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&at)
        {
            return Err(status(403));
        }
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = files.get(&at).ok_or_else(|| status(404))?;
        if etag.is_some_and(|etag| etag != Self::etag(bytes)) {
            return Err(status(412));
        }
        let from = (cursor as usize).min(bytes.len());
        Ok(crate::domain::campaign::read_audience(
            &bytes[from..],
            cursor,
            true,
            column,
            max,
        ))
    }
}
