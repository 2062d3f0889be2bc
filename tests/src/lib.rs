//! herald's test kit, shared by the integration tests and `cargo xtask`:
//! the local AWS emulator (moto), template-driven provisioning (template.yaml is the one
//! list of tables, queues and topics), each function's environment resolved from the
//! template, local tokens and the authorizer that checks them, and the local runner that
//! serves the APIs and runs the queue workers.

pub mod auth;
pub mod campaign_sim;
pub mod contract;
pub mod counters_kit;
pub mod emulator;
pub mod fixtures;
pub mod harness;
pub mod meter;
pub mod runner;
pub mod sim;
pub mod stack;
pub mod template;
pub mod tools;

use std::path::PathBuf;

/// The workspace root (where template.yaml lives).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}
