//! Configuration from environment variables, parsed once at cold start, with errors that
//! name the variable. `Vars` is the environment as a map, so the local runner and tests can
//! hand each function the variables the template gives it without touching the process env.

use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; see README.md#configuration")]
    Missing(String),
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

/// `MESSAGE_RETENTION_DAYS` when unset: ten years.
pub const DEFAULT_RETENTION_DAYS: u32 = 3650;

/// A set of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Vars(pub HashMap<String, String>);

impl Vars {
    /// The process environment.
    pub fn from_env() -> Self {
        Self(std::env::vars().collect())
    }

    /// A required, non-empty variable.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::Missing(name.to_owned()))
    }

    /// An optional variable; empty counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }

    /// A variable parsed with `FromStr`, or `default` when unset.
    pub fn parsed_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name: name.to_owned(),
                reason: e.to_string(),
                value,
            }),
        }
    }

    /// `DEFAULT_TENANT` (the tenant until authentication supplies one), `default` when unset.
    pub fn default_tenant(&self) -> Result<crate::TenantId, ConfigError> {
        let value = self
            .optional("DEFAULT_TENANT")
            .unwrap_or_else(|| "default".into());
        crate::TenantId::parse(&value, "DEFAULT_TENANT").map_err(|e| ConfigError::Invalid {
            name: "DEFAULT_TENANT".into(),
            value,
            reason: e.message,
        })
    }

    /// `MAX_RECEIVE_COUNT`: the queue's redrive maxReceiveCount (default 5).
    pub fn max_receive_count(&self) -> Result<u32, ConfigError> {
        self.parsed_or("MAX_RECEIVE_COUNT", 5)
    }

    /// `MESSAGE_RETENTION_DAYS`: how long the message log is kept (default 10 years).
    pub fn retention_days(&self) -> Result<u32, ConfigError> {
        self.parsed_or("MESSAGE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
    }
}

impl<const N: usize> From<[(&str, &str); N]> for Vars {
    fn from(pairs: [(&str, &str); N]) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_invalid_variables_are_named() {
        let vars = Vars::from([("N", "x"), ("EMPTY", " ")]);
        assert!(vars
            .required("EMPTY")
            .unwrap_err()
            .to_string()
            .contains("EMPTY"));
        assert!(vars
            .parsed_or("N", 1u32)
            .unwrap_err()
            .to_string()
            .contains("N=\"x\""));
        assert_eq!(vars.parsed_or("UNSET", 7u32).unwrap(), 7);
        assert_eq!(vars.default_tenant().unwrap().as_str(), "default");
    }
}
