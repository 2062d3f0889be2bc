//! The domain: model, validation, counter algebra and backoff. No AWS imports here.

pub mod backoff;
pub mod campaign;
pub mod caps;
pub mod channel;
pub mod contact;
pub mod counters;
pub mod dead_letter;
pub mod delivery;
pub mod device;
pub mod digest;
pub mod email;
pub mod feedback;
pub mod ids;
pub mod live;
pub mod mark_read;
pub mod notification;
pub mod pinpoint;
pub mod reconcile;
pub mod seen;
pub mod suppression;
pub mod text;
pub mod time;
pub mod unsubscribe;
pub mod workflow;
