//! Validated identifiers: the core never sees an id that breaks the contract's charset.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// Longest id the API accepts (the HTTP contract: 1–128 chars of `[A-Za-z0-9._:@-]`).
pub const MAX_ID_LEN: usize = 128;
/// openapi.yaml's `Id` pattern (`tests/tests/api_constraints.rs` holds it to `check_id`).
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:@-]+$";

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')
}

/// Checks one id against the contract; `field` names the JSON path for the error.
pub fn check_id(value: &str, field: &str) -> Result<(), FieldError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            "invalid_id",
            field,
            format!("{field} must be 1-{MAX_ID_LEN} characters long"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !is_id_char(*c)) {
        return Err(FieldError::new(
            "invalid_id",
            field,
            format!("{field} contains {bad:?}; allowed are A-Z a-z 0-9 . _ : @ -"),
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates; `field` names the JSON path in the error.
            pub fn parse(value: impl Into<String>, field: &str) -> Result<Self, FieldError> {
                let value = value.into();
                check_id(&value, field)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value, stringify!($name))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The customer account a notification belongs to; every key is scoped by it.
    TenantId
);
id_type!(
    /// An end user who receives notifications.
    UserId
);
id_type!(
    /// A room (conversation, topic) a user's unread count is kept per.
    RoomId
);
id_type!(
    /// A notification id: client-chosen (idempotent retries) or a ULID herald assigns.
    NotificationId
);

id_type!(
    /// A campaign: a ULID herald assigns, so campaigns list newest first.
    CampaignId
);

impl CampaignId {
    pub fn generate() -> Self {
        Self(time_ordered_key())
    }
}

impl NotificationId {
    /// A new time-ordered id.
    pub fn generate() -> Self {
        Self(time_ordered_key())
    }
}

/// A ULID that sorts after every other one this process made: ids of one request keep its
/// order in the inbox even within one millisecond.
pub fn time_ordered_key() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Overflow needs 2^80 ids in one millisecond; a plain ULID is then still time-ordered.
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// Which campaign (and where in its fan-out) a notification or delivery job came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CampaignRef {
    pub id: CampaignId,
    pub page: u32,
    pub slot: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_contract_charset() {
        assert!(UserId::parse("user.1_a:b@c-d", "user_id").is_ok());
        assert!(UserId::parse("x".repeat(128), "user_id").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_foreign_chars_naming_the_field() {
        let err = UserId::parse("", "notifications[0].user_id").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("notifications[0].user_id"));
        assert!(RoomId::parse("x".repeat(129), "room_id").is_err());
        let err = RoomId::parse("a/b", "room_id").unwrap_err();
        assert!(err.message.contains("'/'"), "{}", err.message);
        assert!(
            TenantId::parse("a#b", "tenant").is_err(),
            "# would break key layout"
        );
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = NotificationId::generate();
        let b = NotificationId::generate();
        assert_ne!(a, b);
        assert!(a < b, "later ids sort after earlier ones");
        assert!(NotificationId::parse(a.as_str(), "id").is_ok());
    }
}
