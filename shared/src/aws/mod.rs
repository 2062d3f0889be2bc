//! AWS adapters: one module per service, each implementing ports from `crate::ports`.
//! Every client takes its endpoint from the SDK's own `AWS_ENDPOINT_URL[_<SERVICE>]`.

#[cfg(feature = "dynamodb")]
pub mod campaigns;
#[cfg(feature = "dynamodb")]
pub mod directory;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "dynamodb")]
mod item;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "scheduler")]
pub mod scheduler;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;

#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "ses",
    feature = "sns",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
use aws_smithy_runtime_api::{client::result::SdkError, http::Response as HttpResponse};
#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "ses",
    feature = "sns",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "ses",
    feature = "sns",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
use crate::error::CallError;
#[cfg(any(
    feature = "dynamodb",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
use crate::error::StoreError;
#[cfg(any(feature = "ses", feature = "sns"))]
use crate::ports::SendError;

/// Loads region, credentials and endpoint the standard way.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

// Each helper below serves the adapters of some features only.

/// Error codes that mean "slow down and try again".
#[cfg(any(
    feature = "dynamodb",
    feature = "ses",
    feature = "sns",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
const THROTTLING_CODES: [&str; 9] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionInProgressException",
    "InternalServerError",
];

/// True for errors worth retrying: network, timeouts, throttling, 5xx.
#[cfg(any(
    feature = "dynamodb",
    feature = "ses",
    feature = "sns",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
pub(crate) fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            e.raw().status().is_server_error()
                || e.err()
                    .code()
                    .is_some_and(|c| THROTTLING_CODES.contains(&c))
        }
        _ => false,
    }
}

/// "Code: message" of an SDK error, for logs and DLQ reasons.
#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "ses",
    feature = "sns",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
pub(crate) fn describe<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    err: &SdkError<E, R>,
) -> String {
    match err {
        SdkError::ServiceError(e) => format!(
            "{}: {}",
            e.err().code().unwrap_or("ServiceError"),
            e.err().message().unwrap_or_default()
        ),
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

/// An SDK error with its code and description, the error itself kept as the source.
#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "ses",
    feature = "sns",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
pub(crate) fn call_error<E>(err: SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = match &err {
        SdkError::ServiceError(e) => e.err().code().map(str::to_owned),
        _ => None,
    };
    CallError {
        code,
        description: describe(&err),
        source: Some(std::sync::Arc::new(err)),
    }
}

/// Maps an SDK error onto the store error classes.
#[cfg(any(
    feature = "dynamodb",
    feature = "secrets",
    feature = "s3",
    feature = "scheduler"
))]
pub(crate) fn store_error<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    StoreError::Call {
        transient: is_transient(&err),
        error: call_error(err),
    }
}

/// Classifies a failed send by the service's error code: transient errors and
/// `throttling` codes are retried later, `rejected` codes are final for this address.
#[cfg(any(feature = "ses", feature = "sns"))]
pub(crate) fn send_error<E>(
    err: SdkError<E, HttpResponse>,
    throttling: &[&str],
    rejected: &[&str],
) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = is_transient(&err);
    let error = call_error(err);
    let code = error.code.as_deref().unwrap_or_default();
    if transient || throttling.contains(&code) {
        SendError::Throttled(error)
    } else if rejected.contains(&code) {
        SendError::Rejected(error)
    } else {
        SendError::Other(error)
    }
}
