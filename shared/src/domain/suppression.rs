//! The suppression list as the API shows it: entries (an address herald never sends to
//! again, for one tenant or for every tenant), removals (who lifted which entry, when, and
//! why it had been there), and the address a caller names, checked and normalised.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// Longer than any email address (RFC 5321: 254), E.164 number or SNS endpoint ARN.
pub const MAX_ADDRESS_LEN: usize = 512;
/// openapi.yaml's `Address` pattern: printable ASCII, no spaces. SES and SNS addresses are
/// ASCII (an internationalised domain is written in punycode).
pub const ADDRESS_PATTERN: &str = "^[!-~]+$";

/// Whom an entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionScope {
    /// This tenant only (a bounce or complaint tagged with the tenant, a dead push device).
    Tenant,
    /// Every tenant (an SMS STOP: the number's owner opted out of the sending number).
    Global,
}

/// One entry of the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub address: String,
    pub scope: SuppressionScope,
    pub reason: String,
    #[serde(with = "crate::domain::time::as_millis")]
    pub suppressed_at: Timestamp,
}

/// A tenant entry lifted through the API: the audit trail keeps every one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub address: String,
    /// Why the address had been suppressed, and since when.
    pub reason: String,
    #[serde(with = "crate::domain::time::as_millis")]
    pub suppressed_at: Timestamp,
    #[serde(with = "crate::domain::time::as_millis")]
    pub removed_at: Timestamp,
    /// The token's subject (a service's client id), or `unknown` when it carried none.
    pub removed_by: String,
    /// What the caller said (`?note=`), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The longest note a removal keeps.
pub const MAX_NOTE_LEN: usize = 500;

/// `raw` as the suppression list stores addresses (lower case, as `suppress` writes them),
/// or a 400 naming `field`: empty, too long, or holding anything but printable ASCII.
pub fn parse_address(raw: &str, field: &str) -> Result<String, FieldError> {
    if raw.is_empty() || raw.len() > MAX_ADDRESS_LEN {
        return Err(FieldError::new(
            "invalid_address",
            field,
            format!(
                "{field} must be 1-{MAX_ADDRESS_LEN} bytes long (an email address, an E.164 \
                 number or a push endpoint ARN)"
            ),
        ));
    }
    if let Some(bad) = raw.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(FieldError::new(
            "invalid_address",
            field,
            format!(
                "{field} contains {bad:?}; an address is printable ASCII without spaces \
                 (a domain in punycode)"
            ),
        ));
    }
    Ok(raw.to_ascii_lowercase())
}

/// The caller's note on a removal, checked: at most `MAX_NOTE_LEN` characters, no control
/// characters.
pub fn parse_note(raw: Option<&str>, field: &str) -> Result<Option<String>, FieldError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    // Checked as sent (the contract's bounds), kept trimmed.
    if raw.chars().count() > MAX_NOTE_LEN || raw.chars().any(char::is_control) {
        return Err(FieldError::new(
            "invalid_note",
            field,
            format!(
                "{field} must be at most {MAX_NOTE_LEN} characters, without control characters"
            ),
        ));
    }
    let note = raw.trim();
    Ok((!note.is_empty()).then(|| note.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn addresses_are_stored_lower_case_and_bad_ones_name_the_field() {
        assert_eq!(
            parse_address("Ada@Example.COM", "address").unwrap(),
            "ada@example.com"
        );
        assert_eq!(parse_address("+15550100", "address").unwrap(), "+15550100");
        for bad in [
            "",
            "a b@example.com",
            "a\u{7}@x",
            &"x".repeat(MAX_ADDRESS_LEN + 1),
        ] {
            let e = parse_address(bad, "address").unwrap_err();
            assert_eq!(e.field.as_deref(), Some("address"), "{bad:?}");
            assert_eq!(e.code, "invalid_address");
        }
    }

    #[test]
    fn a_note_is_optional_trimmed_and_bounded() {
        assert_eq!(parse_note(None, "note").unwrap(), None);
        assert_eq!(parse_note(Some("  "), "note").unwrap(), None);
        assert_eq!(
            parse_note(Some(" asked by support #12 "), "note").unwrap(),
            Some("asked by support #12".to_owned())
        );
        let long = "n".repeat(MAX_NOTE_LEN + 1);
        assert_eq!(
            parse_note(Some(&long), "note")
                .unwrap_err()
                .field
                .as_deref(),
            Some("note")
        );
    }
}
