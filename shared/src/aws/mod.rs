//! AWS adapters: one module per service, each implementing ports from `crate::ports`.
//! Every client takes its endpoint from the SDK's own `AWS_ENDPOINT_URL[_<SERVICE>]`.

#[cfg(feature = "dynamodb")]
pub mod campaigns;
#[cfg(feature = "dynamodb")]
pub mod connections;
#[cfg(feature = "dynamodb")]
pub mod devices;
#[cfg(feature = "dynamodb")]
pub mod digests;
#[cfg(feature = "dynamodb")]
pub mod directory;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "dynamodb")]
mod item;
#[cfg(feature = "live")]
pub mod live;
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
#[cfg(feature = "dynamodb")]
pub mod suppressions;
#[cfg(feature = "dynamodb")]
pub mod workflows;

#[cfg(feature = "sdk")]
use aws_smithy_runtime_api::{client::result::SdkError, http::Response as HttpResponse};
#[cfg(feature = "sdk")]
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[cfg(feature = "sdk")]
use crate::error::CallError;
#[cfg(feature = "store-sdk")]
use crate::error::StoreError;
#[cfg(feature = "sender-sdk")]
use crate::ports::SendError;

/// Loads region, credentials and endpoint the standard way, over [`http_client`].
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await
}

/// The SDKs' HTTPS client: the one their `default-https-client` feature builds (hyper 1,
/// rustls, the platform's roots) but with ring as rustls' crypto provider instead of
/// aws-lc-rs, whose C library was the largest part of every function's zip.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

// Each helper below serves the adapters of some features only.

/// Error codes that mean "slow down and try again".
#[cfg(feature = "store-sdk")]
/// Codes that mean "not now, nothing done": throttling, and a plain write that met an
/// in-flight transaction on its item (`TransactionConflictException`).
const THROTTLING_CODES: [&str; 10] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionInProgressException",
    "TransactionConflictException",
    "InternalServerError",
];

/// True for errors worth retrying: network, timeouts, throttling, 5xx.
#[cfg(feature = "store-sdk")]
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
#[cfg(feature = "sdk")]
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
#[cfg(feature = "sdk")]
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
#[cfg(feature = "store-sdk")]
pub(crate) fn store_error<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    StoreError::Call {
        transient: is_transient(&err),
        error: call_error(err),
    }
}

/// Classifies a failed send. Only an answer from the provider proves a send did not go out:
/// a lost answer (timeout, dropped connection, unreadable response, 5xx) is `Unknown`, since
/// the provider may have accepted it; an error before the request left (construction, no
/// connection) is `Other`. Among answers, `throttling` codes are retried later, `opted_out`
/// codes are a suppression, `rejected` codes are final for this address.
#[cfg(feature = "sender-sdk")]
pub(crate) fn send_error<E>(err: SdkError<E, HttpResponse>, codes: &SendCodes) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let answered = match &err {
        SdkError::ServiceError(e) => Some(e.raw().status().is_server_error()),
        _ => None,
    };
    let never_left = never_left(&err);
    let error = call_error(err);
    let code = error.code.as_deref().unwrap_or_default();
    let explicit_throttle = codes.throttling.contains(&code);
    match answered {
        _ if explicit_throttle => SendError::Throttled(error),
        Some(false) if codes.opted_out.contains(&code) => SendError::OptedOut(error),
        Some(false) if codes.rejected.contains(&code) => SendError::Rejected(error),
        Some(false) => SendError::Other(error),
        None if never_left => SendError::Other(error),
        // A 5xx without a throttling code, or no answer at all.
        Some(true) | None => SendError::Unknown(error),
    }
}

/// A provider's error codes, by what they mean for the send.
#[cfg(feature = "sender-sdk")]
pub(crate) struct SendCodes {
    pub throttling: &'static [&'static str],
    pub rejected: &'static [&'static str],
    pub opted_out: &'static [&'static str],
}

/// True when the request certainly never reached the provider: it could not be built, or
/// no connection was made (DNS, refused). Anything else after dispatch may have arrived.
#[cfg(feature = "sender-sdk")]
fn never_left<E: std::error::Error + 'static>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ConstructionFailure(_) => true,
        SdkError::DispatchFailure(e) if e.is_io() => {
            let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
            while let Some(source) = next {
                if let Some(io) = source.downcast_ref::<std::io::Error>() {
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::AddrNotAvailable
                    ) {
                        return true;
                    }
                }
                // hyper-util's connect failures and the SDK's DNS failures say so.
                let text = source.to_string();
                if text.contains("(Connect)") || text.contains("dns error") {
                    return true;
                }
                next = source.source();
            }
            false
        }
        _ => false,
    }
}

#[cfg(all(test, feature = "sns"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aws_sdk_sns::operation::publish::PublishError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    const CODES: SendCodes = SendCodes {
        throttling: &["Throttled"],
        rejected: &["InvalidParameter"],
        opted_out: &["OptedOut"],
    };

    fn answered(status: u16, code: &str) -> SdkError<PublishError, HttpResponse> {
        SdkError::service_error(
            PublishError::generic(ErrorMetadata::builder().code(code).build()),
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn only_an_answer_proves_a_send_did_not_go_out() {
        let lost = SdkError::<PublishError, HttpResponse>::timeout_error("read timed out");
        assert!(matches!(send_error(lost, &CODES), SendError::Unknown(_)));
        assert!(matches!(
            send_error(answered(500, "InternalError"), &CODES),
            SendError::Unknown(_)
        ));
        assert!(matches!(
            send_error(answered(400, "Throttled"), &CODES),
            SendError::Throttled(_)
        ));
        assert!(matches!(
            send_error(answered(400, "OptedOut"), &CODES),
            SendError::OptedOut(_)
        ));
        assert!(matches!(
            send_error(answered(400, "InvalidParameter"), &CODES),
            SendError::Rejected(_)
        ));
        assert!(matches!(
            send_error(answered(403, "AuthorizationError"), &CODES),
            SendError::Other(_)
        ));
        let unbuilt = SdkError::<PublishError, HttpResponse>::construction_failure("no region");
        assert!(matches!(send_error(unbuilt, &CODES), SendError::Other(_)));
    }
}
