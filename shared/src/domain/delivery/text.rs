//! Texts cut to what each provider takes: SMS in characters, push in bytes, at character
//! boundaries and with an ellipsis (herald truncates, never refuses: docs/delivery.md).

/// The most an SMS may hold: SNS refuses longer messages (1,600 characters, 10 parts).
pub const MAX_SMS_CHARS: usize = 1_600;

/// "title: body", cut cleanly at a character boundary to fit one SMS send, with an
/// ellipsis when cut (documented in docs/delivery.md: herald truncates, never refuses).
pub fn sms_text(title: &str, body: &str) -> String {
    clip_chars(&format!("{title}: {body}"), MAX_SMS_CHARS)
}

/// APNs and FCM take 4 KB payloads; title and body are cut (at character boundaries) to
/// leave room for the envelope: 200 and 2,000 bytes at most.
pub fn push_text(title: &str, body: &str) -> (String, String) {
    (clip_bytes(title, 200), clip_bytes(body, 2_000))
}

fn clip_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let cut = text.char_indices().nth(max - 1).map_or(0, |(i, _)| i);
            format!("{}…", &text[..cut])
        }
    }
}

fn clip_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max - '…'.len_utf8();
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_and_push_texts_fit_their_limits_at_character_boundaries() {
        let long = "é".repeat(2_000);
        let sms = sms_text("Title", &long);
        assert_eq!(sms.chars().count(), MAX_SMS_CHARS);
        assert!(sms.ends_with('…'));
        assert_eq!(sms_text("T", "short"), "T: short");
        let (title, body) = push_text(&"ü".repeat(300), &"😀".repeat(1_000));
        assert!(title.len() <= 200 && body.len() <= 2_000);
        assert!(title.ends_with('…') && body.ends_with('…'));
        assert_eq!(push_text("a", "b"), ("a".to_owned(), "b".to_owned()));
    }
}
