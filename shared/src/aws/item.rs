//! Reading and writing DynamoDB items and their attributes, shared by the table adapters.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::{client::result::SdkError, http::Response as HttpResponse};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use base64::Engine;

use super::store_error;
use crate::error::StoreError;

/// One DynamoDB item: attribute name to value.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A count attribute: 0 when absent, not a number, or negative.
pub(crate) fn number(item: &Item, key: &str) -> u64 {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(0, |v| v.max(0) as u64)
}

/// A boolean attribute: false when absent or not a boolean.
pub(crate) fn flag(item: &Item, key: &str) -> bool {
    item.get(key)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

/// A string attribute, when present.
pub(crate) fn text(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

/// Strongly consistent reads of `(pk, sk)` keys by BatchGetItem, 100 keys a request (with
/// `projection`, only those attributes). Keys DynamoDB did not get to (throttling) are asked
/// again for up to `rounds` requests in all; still unread, they make a transient error, never
/// a silent miss.
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    keys: impl IntoIterator<Item = (String, String)>,
    projection: Option<&str>,
    rounds: usize,
) -> Result<Vec<Item>, StoreError> {
    let keys: Vec<Item> = keys
        .into_iter()
        .map(|(pk, sk)| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]))
        .collect();
    let mut items = Vec::new();
    for chunk in keys.chunks(100) {
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .set_projection_expression(projection.map(str::to_owned))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Fatal(e.to_string()))?,
        );
        let mut round = 0;
        while let Some(request) = pending.take() {
            round += 1;
            let out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(store_error)?;
            items.extend(
                out.responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default(),
            );
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .filter(|k| !k.keys().is_empty());
            if pending.is_some() && round >= rounds {
                return Err(StoreError::Transient("batch read unprocessed".into()));
            }
        }
    }
    Ok(items)
}

/// A conditional write's outcome: `true` written, `false` its condition did not hold.
pub(crate) fn written<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(store_error(e)),
    }
}

/// A `(pk, sk)` key.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// An error that is herald's own, not DynamoDB's (a request that could not be built, JSON
/// that could not be written): never worth a retry.
pub(crate) fn fatal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Fatal(e.to_string())
}

/// A TransactWriteItems outcome as the store's errors: a condition that did not hold is a
/// `VersionConflict` (read again), a cancellation by contention is `Transient` (`what` was
/// cancelled: retry as it is), anything else as any call's error.
pub(crate) fn transaction_outcome<T>(
    result: Result<
        T,
        SdkError<
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
            HttpResponse,
        >,
    >,
    what: &str,
) -> Result<T, StoreError> {
    match result {
        Ok(out) => Ok(out),
        Err(e) if condition_failed(&e) => Err(StoreError::VersionConflict),
        Err(e) if cancelled_by_contention(&e) => Err(StoreError::Transient(format!(
            "{what} cancelled by contention: {}",
            store_error(e)
        ))),
        Err(e) => Err(store_error(e)),
    }
}

/// A transaction cancelled because a condition did not hold.
pub(crate) fn condition_failed<R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    match e.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

/// A transaction cancelled by contention, not by its conditions: another transaction on one
/// of its items (`TransactionConflict`) or throttling. Worth retrying as it is.
pub(crate) fn cancelled_by_contention<R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e.as_service_error() {
        Some(E::TransactionCanceledException(c)) => {
            let codes: Vec<&str> = c
                .cancellation_reasons()
                .iter()
                .filter_map(|r| r.code())
                .collect();
            !codes.contains(&"ConditionalCheckFailed")
                && codes.iter().any(|code| {
                    matches!(
                        *code,
                        "TransactionConflict"
                            | "ThrottlingError"
                            | "ProvisionedThroughputExceeded"
                            | "RequestLimitExceeded"
                    )
                })
        }
        Some(E::TransactionInProgressException(_)) => true,
        _ => false,
    }
}

/// A LastEvaluatedKey as an opaque string (its string attributes as URL-safe base64 JSON).
pub(crate) fn encode_key(key: &HashMap<String, AttributeValue>) -> String {
    let plain: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_s().ok()?.as_str())))
        .collect();
    let json = serde_json::to_vec(&plain).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// A cursor back into the key it was made from, or `BadCursor`.
pub(crate) fn decode_key(cursor: &str) -> Result<HashMap<String, String>, StoreError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_zero_when_missing_malformed_or_negative() {
        let item = Item::from([
            ("a".to_owned(), n(7)),
            ("b".to_owned(), n(-3)),
            ("c".to_owned(), s("x")),
        ]);
        assert_eq!(number(&item, "a"), 7);
        assert_eq!(number(&item, "b"), 0);
        assert_eq!(number(&item, "c"), 0);
        assert_eq!(number(&item, "missing"), 0);
        assert_eq!(text(&item, "c").as_deref(), Some("x"));
        assert_eq!(text(&item, "a"), None);
    }
}
