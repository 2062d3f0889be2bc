//! AWS adapters: one module per service, each implementing ports from `crate::ports`.
//! Every client takes its endpoint from the SDK's own `AWS_ENDPOINT_URL[_<SERVICE>]`.

pub mod directory;
pub mod dynamodb;
pub mod ses;
pub mod sns;
pub mod sqs;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Loads region, credentials and endpoint the standard way.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Error codes that mean "slow down and try again".
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

/// Maps an SDK error onto the store error classes.
pub(crate) fn store_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: SdkError<E, HttpResponse>,
) -> crate::error::StoreError {
    if is_transient(&err) {
        crate::error::StoreError::Transient(describe(&err))
    } else {
        crate::error::StoreError::Fatal(describe(&err))
    }
}
