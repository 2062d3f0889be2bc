//! herald's local stack, a product feature of its own: the AWS emulator (moto on 127.0.0.1,
//! started through `local/emulator/moto_server.py`), provisioning from template.yaml (the one
//! list of tables, queues and topics; each function's environment resolved from it), the
//! local token issuer and the authorizer that checks its tokens, and the runner that serves
//! the APIs and runs the queue workers. `cargo xtask dev` is built on it; so are the tests
//! (`testkit` re-exports it).

pub mod auth;
pub mod chaos;
pub mod devlog;
pub mod emulator;
pub mod live;
pub mod outbox;
pub mod runner;
pub mod stack;
pub mod template;
pub mod tools;

use std::path::PathBuf;

/// The workspace root (where template.yaml lives).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}
