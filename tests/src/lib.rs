//! herald's test kit, shared by the integration tests and `cargo xtask bench`: harness
//! helpers (a fresh stack per test), the fixtures of events/, openapi.yaml's contract, an SDK
//! call meter, in-memory queue simulations and the campaign simulation. The local stack
//! (emulator, provisioning, runner, local tokens) is the `herald-local` crate, re-exported
//! here under its old paths.

pub mod campaign_sim;
pub mod contract;
pub mod counters_kit;
pub mod fixtures;
pub mod graph;
pub mod harness;
pub mod meter;
pub mod sim;

pub use local::{auth, chaos, emulator, outbox, runner, stack, template, tools, workspace_root};
