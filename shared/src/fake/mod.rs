//! In-memory adapters for fast tests and simulations, with injectable faults and latency,
//! one file per port (`ports/`). They keep DynamoDB's semantics that matter here: a
//! transaction is all-or-nothing, a duplicate Put cancels it, conditions compare versions.

pub mod campaigns;
pub mod clock;
pub mod counters;
pub mod devices;
pub mod digests;
pub mod directory;
pub mod fixtures;
pub mod live;
pub mod messages;
pub mod s3;
pub mod scheduler;
pub mod secrets;
pub mod ses;
pub mod sns;
pub mod sqs;
pub mod users;
pub mod workflows;

pub use campaigns::*;
pub use clock::*;
pub use counters::*;
pub use devices::*;
pub use digests::*;
pub use directory::*;
pub use live::*;
pub use s3::*;
pub use scheduler::*;
pub use secrets::*;
pub use ses::*;
pub use sns::InMemoryEndpoints;
pub use sqs::*;
pub use workflows::*;
