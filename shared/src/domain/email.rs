//! Email as providers accept it: the text and HTML parts rendered from the templates in
//! `templates/email/` for the contact's locale (falling back to its language, then English),
//! HTML-escaped; and, when herald builds the MIME itself (marketing email with
//! `List-Unsubscribe`), a message whose lines stay within RFC 5322's 998 characters: base64
//! bodies wrapped at 76, the subject as RFC 2047 encoded-words.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use minijinja::{context, Environment};

/// The templates, compiled in: (locale, text template, HTML template).
const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "en",
        include_str!("../../../templates/email/en/notification.txt"),
        include_str!("../../../templates/email/en/notification.html"),
    ),
    (
        "de",
        include_str!("../../../templates/email/de/notification.txt"),
        include_str!("../../../templates/email/de/notification.html"),
    ),
];

const FALLBACK: &str = "en";

/// The parts of one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub locale: &'static str,
    pub text: String,
    pub html: String,
}

/// Renders the notification email for `locale` (e.g. `de-CH` → `de-ch`, else `de`, else
/// `en`).
pub fn render(
    locale: Option<&str>,
    title: &str,
    body: &str,
    unsubscribe_url: Option<&str>,
) -> Result<Rendered, minijinja::Error> {
    render_digest(locale, title, body, unsubscribe_url, &[], 0)
}

/// `render` for a digest: the templates get its `events` as a list (each with `id`,
/// `title`, `body`, `created_at`), and `more`, how many it counts beyond those listed.
pub fn render_digest(
    locale: Option<&str>,
    title: &str,
    body: &str,
    unsubscribe_url: Option<&str>,
    events: &[crate::domain::digest::DigestEvent],
    more: u64,
) -> Result<Rendered, minijinja::Error> {
    let (locale, text, html) = pick(locale);
    let mut env = Environment::new();
    env.add_template("notification.txt", text)?;
    env.add_template("notification.html", html)?;
    let events: Vec<minijinja::Value> = events
        .iter()
        .map(|e| {
            minijinja::Value::from_pairs([
                ("id", minijinja::Value::from(e.id.as_str())),
                ("title", minijinja::Value::from(e.title.as_str())),
                ("body", minijinja::Value::from(e.body.as_str())),
                (
                    "created_at",
                    minijinja::Value::from(crate::domain::time::millis(e.created_at)),
                ),
            ])
        })
        .collect();
    let ctx = context! { title, body, unsubscribe_url, events, more };
    Ok(Rendered {
        locale,
        text: env.get_template("notification.txt")?.render(&ctx)?,
        html: env.get_template("notification.html")?.render(&ctx)?,
    })
}

fn pick(locale: Option<&str>) -> (&'static str, &'static str, &'static str) {
    let wanted = locale
        .unwrap_or(FALLBACK)
        .to_ascii_lowercase()
        .replace('_', "-");
    let language = wanted.split('-').next().unwrap_or(FALLBACK).to_owned();
    [wanted, language, FALLBACK.to_owned()]
        .iter()
        .find_map(|l| TEMPLATES.iter().find(|(name, _, _)| name == l))
        .or_else(|| TEMPLATES.first())
        .copied()
        .unwrap_or(("en", "", ""))
}

/// The variable of a bulk template that each recipient's unsubscribe link fills.
pub const UNSUBSCRIBE_VARIABLE: &str = "unsubscribe";

/// What the recipients of one bulk send share: an email's content with its unsubscribe
/// link replaced by `{{unsubscribe}}` (the provider fills in each recipient's), and its tags.
/// Emails with equal templates can go out in one call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BulkTemplate {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub tags: Vec<(String, String)>,
    /// Each recipient has a link: `{{unsubscribe}}` and the List-Unsubscribe headers.
    pub unsubscribe: bool,
}

/// `email` as a template to share, or `None` when a substitution template cannot carry it
/// as rendered: its subject or parts hold `{{` or `}}` of their own, which the provider
/// would read as variables. Such an email goes out alone, exactly as rendered.
pub fn bulk_template(email: &crate::ports::Email) -> Option<BulkTemplate> {
    let braces = |t: &str| t.contains("{{") || t.contains("}}");
    let link = email.list_unsubscribe.as_deref();
    if [&email.subject, &email.text, &email.html]
        .iter()
        .any(|t| braces(t))
        || link.is_some_and(braces)
    {
        return None;
    }
    let variable = format!("{{{{{UNSUBSCRIBE_VARIABLE}}}}}");
    // The HTML part holds the link as the template escaped it (`/` as `&#x2f;`); the
    // provider fills in the link as is, which is the same HTML when the link has no
    // character that HTML must escape (else the parts are left alone: a template of one).
    let html_safe = |url: &str| !url.contains(['&', '<', '>', '"', '\'']);
    let fill = |t: &str, html: bool| match link {
        Some(url) if !url.is_empty() && !html => t.replace(url, &variable),
        Some(url) if !url.is_empty() && html_safe(url) => t
            .replace(&minijinja::HtmlEscape(url).to_string(), &variable)
            .replace(url, &variable),
        _ => t.to_owned(),
    };
    Some(BulkTemplate {
        subject: email.subject.clone(),
        text: fill(&email.text, false),
        html: fill(&email.html, true),
        tags: email.tags.clone(),
        unsubscribe: link.is_some(),
    })
}

/// One raw message: `From`, `To`, `Subject`, the extra `headers`, and a
/// multipart/alternative body of `text` and `html`, every line at most 78 characters but
/// the extra headers (which must stay under 998 themselves).
pub fn mime(
    from: &str,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
    headers: &[(&str, &str)],
) -> String {
    let boundary = format!("herald-{}", ulid::Ulid::new());
    let mut out = String::new();
    out.push_str(&format!("From: {from}\r\nTo: {to}\r\n"));
    out.push_str(&format!("Subject: {}\r\n", encoded_words(subject)));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n\r\n"
    ));
    for (kind, content) in [("plain", text), ("html", html)] {
        out.push_str(&format!("--{boundary}\r\n"));
        out.push_str(&format!(
            "Content-Type: text/{kind}; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        out.push_str(&wrapped_base64(content.as_bytes()));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// Base64 in lines of 76 characters (RFC 2045).
fn wrapped_base64(bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// RFC 2047 `=?UTF-8?B?…?=` words of 64 characters at most (39 bytes of UTF-8 each, cut at
/// character boundaries), folded onto continuation lines: `Subject:` and a word fit in 78.
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 39).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?UTF-8?B?{}?=",
            STANDARD.encode(&text[start..end])
        ));
        start = end;
    }
    if words.is_empty() {
        return String::new();
    }
    words.join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locale_falls_back_to_its_language_then_english_and_html_is_escaped() {
        let de = render(
            Some("de-CH"),
            "Hallo",
            "<b>Tschüss</b> & so",
            Some("https://u/x?t=1&a=2"),
        )
        .unwrap();
        assert_eq!(de.locale, "de");
        assert!(de.text.contains("Abbestellen: https://u/x?t=1&a=2"));
        assert!(de.html.contains("&lt;b&gt;Tschüss&lt;") && de.html.contains("&amp; so"));
        assert!(!de.html.contains("<b>"), "{}", de.html);
        assert!(de.html.contains("t=1&amp;a=2\""), "{}", de.html);
        assert_eq!(render(Some("pt_BR"), "t", "b", None).unwrap().locale, "en");
        assert_eq!(render(None, "t", "b", None).unwrap().locale, "en");
        let plain = render(Some("en"), "t", "b", None).unwrap();
        assert!(!plain.text.contains("Unsubscribe") && !plain.html.contains("Unsubscribe"));
    }

    #[test]
    fn a_digest_lists_its_events_escaped_and_counts_the_rest() {
        let event = |i: u32| crate::domain::digest::DigestEvent {
            id: format!("e{i}"),
            title: format!("<Comment {i}>"),
            body: format!("body {i}"),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            data: None,
        };
        let parts = render_digest(
            Some("en"),
            "3 new",
            "ignored",
            None,
            &[event(1), event(2)],
            1,
        )
        .unwrap();
        assert!(
            parts
                .text
                .contains("- <Comment 1>\n  body 1\n- <Comment 2>"),
            "{}",
            parts.text
        );
        assert!(parts.text.contains("and 1 more"), "{}", parts.text);
        assert!(!parts.text.contains("ignored"));
        assert!(
            parts
                .html
                .contains("<li><strong>&lt;Comment 2&gt;</strong>"),
            "{}",
            parts.html
        );
        let de = render_digest(Some("de"), "2 neu", "x", None, &[event(1)], 0).unwrap();
        assert!(de.text.contains("- <Comment 1>") && !de.text.contains("weitere"));
    }

    #[test]
    fn raw_mime_keeps_lines_short_and_round_trips() {
        let subject = "Größte Rabatte des Jahres — nur heute! 🎉 ".repeat(6);
        let body = "x".repeat(5_000);
        let raw = mime(
            "n@example.com",
            "u@example.com",
            &subject,
            &body,
            "<p>hi</p>",
            &[("List-Unsubscribe", "<https://u/unsub?token=t>")],
        );
        assert!(raw
            .split("\r\n")
            .all(|line| line.len() <= 78 || line.starts_with("List-")));
        assert!(raw.split("\r\n").all(|line| line.len() <= 998));
        // The subject decodes back, word by word.
        let header: String = raw
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Subject:"))
            .take_while(|l| l.starts_with("Subject:") || l.starts_with(' '))
            .collect();
        let decoded: Vec<u8> = header
            .trim_start_matches("Subject: ")
            .split_whitespace()
            .flat_map(|w| {
                STANDARD
                    .decode(w.trim_start_matches("=?UTF-8?B?").trim_end_matches("?="))
                    .unwrap()
            })
            .collect();
        assert_eq!(String::from_utf8(decoded).unwrap(), subject);
        assert!(raw.contains("Content-Type: text/plain; charset=UTF-8"));
        assert!(raw.contains("Content-Type: text/html; charset=UTF-8"));
        assert!(raw.contains("List-Unsubscribe: <https://u/unsub?token=t>\r\n"));
    }

    fn email_to(to: &str, locale: &str, title: &str, link: Option<&str>) -> crate::ports::Email {
        let parts = render(Some(locale), title, "50% off today", link).unwrap();
        crate::ports::Email {
            to: to.into(),
            subject: title.into(),
            text: parts.text,
            html: parts.html,
            tags: vec![("herald-tenant".into(), "acme".into())],
            list_unsubscribe: link.map(str::to_owned),
        }
    }

    #[test]
    fn recipients_of_one_content_share_a_template_with_their_link_as_a_variable() {
        let a = email_to("a@x.test", "en", "Sale", Some("https://u/unsub?token=aaa"));
        let b = email_to(
            "b@x.test",
            "en-GB",
            "Sale",
            Some("https://u/unsub?token=bbb"),
        );
        let (ta, tb) = (bulk_template(&a).unwrap(), bulk_template(&b).unwrap());
        assert_eq!(ta, tb);
        assert!(ta.unsubscribe);
        for part in [&ta.text, &ta.html] {
            assert!(part.contains("{{unsubscribe}}"), "{part}");
            assert!(!part.contains("token=aaa"), "{part}");
        }
        // Another locale renders other words: another template.
        let de = email_to("c@x.test", "de", "Sale", Some("https://u/unsub?token=ccc"));
        assert_ne!(bulk_template(&de).unwrap(), ta);
        // No link: no variable, and not the same template as one with links.
        let plain = bulk_template(&email_to("d@x.test", "en", "Sale", None)).unwrap();
        assert!(!plain.unsubscribe && !plain.text.contains("{{"));
        assert_ne!(plain, ta);
    }

    #[test]
    fn content_with_braces_of_its_own_is_never_a_template() {
        let braces = email_to(
            "a@x.test",
            "en",
            "Hi {{name}}",
            Some("https://u/unsub?token=a"),
        );
        assert_eq!(bulk_template(&braces), None);
        let mut body = email_to("a@x.test", "en", "Sale", None);
        body.html.push_str("}}");
        assert_eq!(bulk_template(&body), None);
    }
}
