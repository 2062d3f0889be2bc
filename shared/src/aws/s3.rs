//! S3 adapter of audience files: a range at a time, never the whole object in memory, each
//! range of the version the campaign pinned (`If-Match` its ETag). A file gone, replaced or
//! not readable is an `AudienceUnreadable`: the campaign fails with it.

use async_trait::async_trait;
use aws_sdk_s3::Client;

use super::store_error;
use crate::domain::campaign::audience::estimate_users;
use crate::domain::campaign::{
    audience_header, read_audience, AudienceFile, AudienceRead, AudienceUnreadable,
};
use crate::error::StoreError;
use crate::ports::{AudienceError, AudienceFiles};

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

    /// Bytes `[from, from + len)` (fewer at the end of the object) of version `etag`, and
    /// whether they reach the end.
    async fn range(
        &self,
        bucket: &str,
        key: &str,
        etag: Option<&str>,
        from: u64,
        len: u64,
    ) -> Result<(Vec<u8>, bool), AudienceError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_if_match(etag.map(str::to_owned))
            .range(format!("bytes={from}-{}", from + len - 1))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // Reading from the very end of the object: nothing left.
                if status == Some(416) {
                    return Ok((Vec::new(), true));
                }
                let uri = format!("s3://{bucket}/{key}");
                return Err(
                    match status.and_then(|s| AudienceUnreadable::from_status(s, &uri, etag)) {
                        Some(unreadable) => unreadable.into(),
                        None => store_error(e).into(),
                    },
                );
            }
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
    async fn upload(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("text/csv; charset=utf-8")
            .body(bytes.into())
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    async fn inspect(&self, bucket: &str, key: &str) -> Result<Option<AudienceFile>, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await;
        let head = match head {
            Ok(head) => head,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Ok(None)
            }
            Err(e) => return Err(store_error(e)),
        };
        let mut file = AudienceFile {
            size: head.content_length().unwrap_or(0).max(0) as u64,
            etag: head.e_tag().map(str::to_owned),
            modified: head
                .last_modified()
                .and_then(|t| jiff::Timestamp::from_second(t.secs()).ok()),
            ..AudienceFile::default()
        };
        if file.size == 0 {
            return Ok(Some(file));
        }
        // The header of the version HEAD saw (replaced in between: try again).
        let leading = match self
            .range(bucket, key, file.etag.as_deref(), 0, WINDOW.min(file.size))
            .await
        {
            Ok((leading, _)) => leading,
            Err(AudienceError::Unreadable(AudienceUnreadable::Gone { .. })) => return Ok(None),
            Err(AudienceError::Unreadable(why)) => {
                return Err(StoreError::Transient(why.to_string()))
            }
            Err(AudienceError::Store(e)) => return Err(e),
        };
        file.column = audience_header(&leading);
        file.users_estimate = estimate_users(&leading, file.size);
        Ok(Some(file))
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
        let mut read = AudienceRead {
            next: cursor,
            ..AudienceRead::default()
        };
        let mut window = WINDOW;
        while read.users.len() < max {
            let (bytes, at_end) = self.range(bucket, key, etag, read.next, window).await?;
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
                    return Err(AudienceUnreadable::LineTooLong {
                        uri: format!("s3://{bucket}/{key}"),
                        offset: read.next,
                        max: MAX_LINE,
                    }
                    .into());
                }
                window *= 2;
            }
        }
        Ok(read)
    }
}
