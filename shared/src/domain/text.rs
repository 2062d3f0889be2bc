//! Texts clients send (titles, bodies, names): the lengths and the check they share
//! (`notification` re-exports them).

use crate::error::FieldError;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 4_000;
/// openapi.yaml's pattern for texts (title, body, a campaign's name): some character that is
/// not white space (Unicode's White_Space, as `str::trim` reads it).
pub const NONBLANK_PATTERN: &str =
    r"[^\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

pub fn check_text(value: &str, field: &str, max: usize) -> Result<(), FieldError> {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        return Err(FieldError::new(
            "empty",
            field,
            format!("{field} must not be empty"),
        ));
    }
    if chars > max {
        return Err(FieldError::new(
            "too_long",
            field,
            format!("{field} has {chars} characters; at most {max}"),
        ));
    }
    Ok(())
}
