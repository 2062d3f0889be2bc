//! The HTTP contract as `openapi.yaml` states it: every operation, with who may call it
//! (its `security`), for the tests that hold the routers and the template to it.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde_norway::Value;

/// One operation of the API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub method: String,
    pub path: String,
    /// A user's own token may call it (for the user in the path).
    pub user_token: bool,
    /// The scopes a service token may call it with.
    pub service_scopes: Vec<String>,
    /// No token at all (`security: []`): the signed unsubscribe link.
    pub public: bool,
}

/// Every operation of `openapi.yaml`.
pub fn operations() -> Result<Vec<Operation>> {
    let text = std::fs::read_to_string(crate::workspace_root().join("openapi.yaml"))?;
    let doc: Value = serde_norway::from_str(&text)?;
    let mut operations = Vec::new();
    for (path, ops) in doc["paths"].as_mapping().context("openapi paths")? {
        for (method, op) in ops.as_mapping().context("openapi operations")? {
            let security = op["security"]
                .as_sequence()
                .with_context(|| format!("{method:?} {path:?} states no security"))?;
            let mut user_token = false;
            let mut service_scopes = Vec::new();
            for requirement in security {
                if requirement.get("userToken").is_some() {
                    user_token = true;
                }
                if let Some(scopes) = requirement.get("serviceToken").and_then(Value::as_sequence) {
                    service_scopes
                        .extend(scopes.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            }
            operations.push(Operation {
                method: method.as_str().context("method")?.to_uppercase(),
                path: path.as_str().context("path")?.to_owned(),
                user_token,
                public: security.is_empty(),
                service_scopes,
            });
        }
    }
    Ok(operations)
}

/// The (method, path) pairs of `openapi.yaml`.
pub fn routes() -> Result<BTreeSet<(String, String)>> {
    Ok(operations()?
        .into_iter()
        .map(|op| (op.method, op.path))
        .collect())
}
