//! Ports: the small traits the domain and handlers use, one file per capability; `aws/`
//! implements them against AWS and `fake/` in memory, each at the same file name.

pub mod campaigns;
pub mod clock;
pub mod counters;
pub mod devices;
pub mod digests;
pub mod directory;
pub mod live;
pub mod messages;
pub mod s3;
pub mod scheduler;
pub mod secrets;
pub mod ses;
pub mod sns;
pub mod sqs;
pub mod suppressions;
pub mod users;
pub mod workflows;

pub use campaigns::*;
pub use clock::*;
pub use counters::*;
pub use devices::*;
pub use digests::*;
pub use directory::*;
pub use live::*;
pub use messages::*;
pub use s3::*;
pub use scheduler::*;
pub use secrets::*;
pub use ses::*;
pub use sns::*;
pub use sqs::*;
pub use suppressions::*;
pub use users::*;
pub use workflows::*;

use crate::error::CallError;

/// Why a send failed; the provider's error (code, text and the SDK error as `source`)
/// inside. Only `Unknown` may have gone out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The provider answered "not now": certainly not sent, retry later.
    #[error("throttled: {0}")]
    Throttled(#[source] CallError),
    /// The provider refused it for good (this message or address).
    #[error("rejected: {0}")]
    Rejected(#[source] CallError),
    /// The recipient opted out at the provider (SNS `OptedOut`): a suppression, not an error.
    #[error("opted out: {0}")]
    OptedOut(#[source] CallError),
    /// Not sent: it failed before the request left, or the provider answered with an error
    /// that is neither of the above.
    #[error("{0}")]
    Other(#[source] CallError),
    /// The answer was lost (timeout, connection dropped, 5xx): the provider may have
    /// accepted it. Never sent again automatically.
    #[error("outcome unknown: {0}")]
    Unknown(#[source] CallError),
}
