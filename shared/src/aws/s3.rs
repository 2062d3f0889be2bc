//! S3 adapter of audience files: a range at a time, never the whole object in memory.

use async_trait::async_trait;
use aws_sdk_s3::Client;

use super::store_error;
use crate::domain::campaign::{audience_header, read_audience, AudienceFile, AudienceRead};
use crate::error::StoreError;
use crate::ports::AudienceFiles;

/// Bytes read per range request: a page of 128-character ids fits several times over.
const WINDOW: u64 = 256 * 1024;
/// A line longer than this is not a user id (nor a sane CSV row): reading stops there.
const MAX_LINE: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct S3Audiences {
    client: Client,
}

/// An S3 client; against a local endpoint (`AWS_ENDPOINT_URL`), with path-style addressing,
/// since `bucket.127.0.0.1` does not resolve.
pub fn client(aws: &aws_config::SdkConfig) -> Client {
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(aws.endpoint_url().is_some())
            .build(),
    )
}

impl S3Audiences {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn from_aws(aws: &aws_config::SdkConfig) -> Self {
        Self::new(client(aws))
    }

    /// Bytes `[from, from + len)` (fewer at the end of the object) and whether they reach it.
    async fn range(
        &self,
        bucket: &str,
        key: &str,
        from: u64,
        len: u64,
    ) -> Result<(Vec<u8>, bool), StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={from}-{}", from + len - 1))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            // Reading from the very end of the object: nothing left.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Ok((Vec::new(), true))
            }
            Err(e) => return Err(store_error(e)),
        };
        let total = out
            .content_range()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|t| t.parse::<u64>().ok());
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Transient(format!("reading s3://{bucket}/{key}: {e}")))?
            .into_bytes()
            .to_vec();
        let at_end = match total {
            Some(total) => from + bytes.len() as u64 >= total,
            None => (bytes.len() as u64) < len,
        };
        Ok((bytes, at_end))
    }
}

#[async_trait]
impl AudienceFiles for S3Audiences {
    async fn inspect(&self, bucket: &str, key: &str) -> Result<Option<AudienceFile>, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await;
        let size = match head {
            Ok(head) => head.content_length().unwrap_or(0).max(0) as u64,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Ok(None)
            }
            Err(e) => return Err(store_error(e)),
        };
        if size == 0 {
            return Ok(Some(AudienceFile { column: None, size }));
        }
        let (leading, _) = self.range(bucket, key, 0, WINDOW.min(size)).await?;
        Ok(Some(AudienceFile {
            column: audience_header(&leading),
            size,
        }))
    }

    async fn read(
        &self,
        bucket: &str,
        key: &str,
        column: Option<usize>,
        cursor: u64,
        max: usize,
    ) -> Result<AudienceRead, StoreError> {
        let mut read = AudienceRead {
            next: cursor,
            ..AudienceRead::default()
        };
        let mut window = WINDOW;
        while read.users.len() < max {
            let (bytes, at_end) = self.range(bucket, key, read.next, window).await?;
            let part = read_audience(&bytes, read.next, at_end, column, max - read.users.len());
            let progressed = part.next > read.next;
            read.users.extend(part.users);
            read.invalid.extend(part.invalid);
            read.next = part.next;
            if part.end || (at_end && !progressed) {
                read.end = true;
                break;
            }
            if !progressed {
                // No whole line in the window: a long line; widen the window, up to a point.
                if window >= MAX_LINE {
                    return Err(StoreError::Fatal(format!(
                        "s3://{bucket}/{key}: a line at byte {} is longer than {MAX_LINE} bytes",
                        read.next
                    )));
                }
                window *= 2;
            }
        }
        Ok(read)
    }
}
