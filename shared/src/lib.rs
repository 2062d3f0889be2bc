//! herald's shared library: domain (model, validation, counter algorithm), ports and their
//! AWS and in-memory adapters, the SQS consumer core, config, telemetry and HTTP edge helpers.

pub mod auth;
pub mod aws;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod error;
#[cfg(any(test, feature = "fakes"))]
pub mod fake;
pub mod http;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod ports;
pub mod progress;
pub mod telemetry;

pub use domain::counters::{Unread, UserKey};
pub use domain::ids::{NotificationId, RoomId, TenantId, UserId};
pub use domain::notification::{Channel, Notification};
pub use error::{FieldError, StoreError};
