//! The local outbox: what herald sent through the emulator, one entry per email, SMS or push
//! device, newest first, with the tenant, user and notification it was for. It joins the two
//! records of a send: herald's delivery record in the directory table (state `sent`, the
//! provider's message ids in `detail`) and what the emulator's SES and SNS kept under those
//! ids (address, subject, text). `cargo xtask outbox` prints it, the dev log follows it, and
//! `cargo xtask dev` serves it as a page at `/outbox`.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use herald::ports::{DeliveryRecord, DeliveryState};
use herald::Channel;
use serde_json::Value;

/// One message herald handed to SES or SNS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    /// When the delivery record says it was sent.
    #[serde(with = "herald::domain::time::as_millis")]
    pub at: jiff::Timestamp,
    pub tenant: String,
    pub user: String,
    pub notification_id: String,
    pub channel: Channel,
    /// The email address, phone number or push endpoint ARN.
    pub to: String,
    /// Email only: the decoded subject.
    pub subject: Option<String>,
    /// The text as sent: the email's text part, the SMS, the push payload's text.
    pub text: String,
    /// The provider's message id (SES, SNS).
    pub message_id: String,
}

impl Sent {
    /// What makes two entries the same send (a follower prints each once).
    pub fn key(&self) -> (String, String) {
        (self.message_id.clone(), self.to.clone())
    }

    /// One readable line: `email → u1@example.com "Hi"  acme/u1  n=…`.
    pub fn line(&self) -> String {
        let what = match &self.subject {
            Some(subject) => format!("{subject:?}"),
            None => format!("{:?}", clip(&self.text, 60)),
        };
        format!(
            "{} {} → {} {}  {}/{}  notification {}",
            self.at.strftime("%H:%M:%S"),
            self.channel.as_str(),
            self.to,
            what,
            self.tenant,
            self.user,
            self.notification_id
        )
    }
}

fn clip(text: &str, chars: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Which entries to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user: Option<String>,
    pub tenant: Option<String>,
    /// At most this many (the newest); `None`: all.
    pub limit: Option<usize>,
}

impl Filter {
    fn admits(&self, sent: &Sent) -> bool {
        self.user.as_ref().is_none_or(|u| *u == sent.user)
            && self.tenant.as_ref().is_none_or(|t| *t == sent.tenant)
    }
}

/// What the emulator's SES and SNS kept, by message id: (address, subject, text).
#[derive(Debug, Default)]
struct Provided {
    by_id: HashMap<String, Vec<(String, Option<String>, String)>>,
}

impl Provided {
    /// From moto's `/moto-api/data.json`.
    fn from_emulator(data: &Value) -> Self {
        let mut by_id: HashMap<String, Vec<(String, Option<String>, String)>> = HashMap::new();
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        for m in list(&data["ses"]["Message"]) {
            let (Some(id), Some(to)) = (
                m["id"].as_str(),
                m["destinations"]["ToAddresses"][0].as_str(),
            ) else {
                continue;
            };
            // moto keeps one body of a text + HTML email: the HTML.
            by_id.entry(id.to_owned()).or_default().push((
                to.to_owned(),
                m["subject"].as_str().map(str::to_owned),
                text_of(m["body"].as_str().unwrap_or_default()),
            ));
        }
        for m in list(&data["ses"]["RawMessage"]) {
            let (Some(id), Some(raw)) = (m["id"].as_str(), m["raw_data"].as_str()) else {
                continue;
            };
            let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes());
            let header_to = parsed.as_ref().and_then(|p| {
                p.to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .map(str::to_owned)
            });
            let to = m["destinations"][0]
                .as_str()
                .map(str::to_owned)
                .or(header_to)
                .unwrap_or_default();
            by_id.entry(id.to_owned()).or_default().push((
                to,
                parsed.as_ref().and_then(|p| p.subject()).map(str::to_owned),
                parsed
                    .as_ref()
                    .and_then(|p| p.body_text(0))
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
            ));
        }
        for m in list(&data["sns"]["SMS"]) {
            let (Some(id), Some(to)) = (m["message_id"].as_str(), m["phone_number"].as_str())
            else {
                continue;
            };
            by_id.entry(id.to_owned()).or_default().push((
                to.to_owned(),
                None,
                m["message"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        for endpoint in list(&data["sns"]["PlatformEndpoint"]) {
            let Some(arn) = endpoint["arn"].as_str() else {
                continue;
            };
            for (id, message) in endpoint["messages"].as_object().into_iter().flatten() {
                by_id.entry(id.clone()).or_default().push((
                    arn.to_owned(),
                    None,
                    push_text(message.as_str().unwrap_or_default()),
                ));
            }
        }
        Self { by_id }
    }
}

/// Readable text of an email body: HTML without its head, tags and entities, one line per
/// block; plain text as it is.
fn text_of(body: &str) -> String {
    if !body.trim_start().starts_with('<') {
        return body.to_owned();
    }
    let without_head = match (body.find("<head"), body.find("</head>")) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{}", &body[..start], &body[end + "</head>".len()..])
        }
        _ => body.to_owned(),
    };
    let mut text = String::new();
    let mut in_tag = false;
    for c in without_head.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push('\n');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of a push as published: SNS's JSON message structure (the `default` text, or a
/// platform's notification title and body), else the message itself.
fn push_text(message: &str) -> String {
    let Ok(structure) = serde_json::from_str::<Value>(message) else {
        return message.to_owned();
    };
    if let Some(default) = structure["default"].as_str() {
        return default.to_owned();
    }
    for platform in ["GCM", "APNS", "APNS_SANDBOX"] {
        let Some(payload) = structure[platform]
            .as_str()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
        else {
            continue;
        };
        let note = if platform == "GCM" {
            &payload["notification"]
        } else {
            &payload["aps"]["alert"]
        };
        if let (Some(title), Some(body)) = (note["title"].as_str(), note["body"].as_str()) {
            return format!("{title}: {body}");
        }
    }
    message.to_owned()
}

/// The tenant of a delivery record's partition key (`T#<tenant>#N#…`).
fn tenant_of(pk: &str) -> Option<&str> {
    pk.strip_prefix("T#")?.split_once("#N#").map(|(t, _)| t)
}

/// The outbox, newest first: every sent delivery record joined with what the emulator kept.
/// A record whose message the emulator does not hold (it was restarted) is left out.
pub fn join(records: &[(String, DeliveryRecord)], emulator: &Value, filter: &Filter) -> Vec<Sent> {
    let provided = Provided::from_emulator(emulator);
    let mut out = Vec::new();
    for (tenant, record) in records {
        if record.state != DeliveryState::Sent || record.channel == Channel::Inbox {
            continue;
        }
        let ids = record.detail.as_deref().unwrap_or_default();
        for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            for (to, subject, text) in provided.by_id.get(id).into_iter().flatten() {
                let sent = Sent {
                    at: record.updated_at,
                    tenant: tenant.clone(),
                    user: record.user_id.to_string(),
                    notification_id: record.notification_id.to_string(),
                    channel: record.channel,
                    to: to.clone(),
                    subject: subject.clone(),
                    text: text.trim_end().to_owned(),
                    message_id: id.to_owned(),
                };
                if filter.admits(&sent) {
                    out.push(sent);
                }
            }
        }
    }
    out.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.to.cmp(&b.to)));
    if let Some(limit) = filter.limit {
        out.truncate(limit);
    }
    out
}

/// Every delivery record in state `sent` of the directory table, with its tenant.
pub async fn sent_records(
    sdk: &aws_config::SdkConfig,
    directory_table: &str,
) -> Result<Vec<(String, DeliveryRecord)>> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(directory_table)
            .filter_expression("#state = :sent")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", AttributeValue::S("sent".into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .with_context(|| format!("scanning {directory_table}"))?;
        for item in page.items() {
            let (Some(pk), Some(json)) = (
                item.get("pk").and_then(|v| v.as_s().ok()),
                item.get("json").and_then(|v| v.as_s().ok()),
            ) else {
                continue;
            };
            let (Some(tenant), Ok(record)) = (tenant_of(pk), serde_json::from_str(json)) else {
                continue;
            };
            out.push((tenant.to_owned(), record));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(out);
        }
    }
}

/// Where a stack's outbox is: its emulator and its directory table.
#[derive(Debug, Clone)]
pub struct Source {
    pub sdk: aws_config::SdkConfig,
    /// The emulator's endpoint (`http://127.0.0.1:4566`).
    pub endpoint: String,
    pub directory_table: String,
}

impl Source {
    /// The outbox of a stack provisioned here.
    pub fn of(stack: &crate::stack::Stack) -> Result<Self> {
        Ok(Self {
            sdk: stack.sdk.clone(),
            endpoint: stack.endpoint.clone(),
            directory_table: stack.resource("DirectoryTable")?.reference.clone(),
        })
    }

    /// What was sent, newest first.
    pub async fn read(&self, filter: &Filter) -> Result<Vec<Sent>> {
        let records = sent_records(&self.sdk, &self.directory_table).await?;
        let endpoint = self.endpoint.clone();
        let emulator = tokio::task::spawn_blocking(move || crate::emulator::sent_data(&endpoint))
            .await
            .context("reading the emulator's state")??;
        Ok(join(&records, &emulator, filter))
    }

    /// Calls `each` once for every send not in `seen` yet, oldest first, every second,
    /// until `stop`.
    pub async fn follow(
        &self,
        filter: &Filter,
        mut seen: BTreeSet<(String, String)>,
        stop: tokio_util::sync::CancellationToken,
        mut each: impl FnMut(&Sent),
    ) -> Result<()> {
        let everything = Filter {
            limit: None,
            ..filter.clone()
        };
        loop {
            match self.read(&everything).await {
                Ok(entries) => {
                    for sent in entries.iter().rev() {
                        if seen.insert(sent.key()) {
                            each(sent);
                        }
                    }
                }
                // The table or the emulator may be going away (Ctrl-C): try again, or stop.
                Err(error) => tracing::debug!(%error, "outbox not read"),
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }

    /// `GET /outbox[?user=&tenant=&limit=]`: the page (no token: the local stack listens on
    /// 127.0.0.1 only).
    pub fn routes(self) -> axum::Router {
        let source = std::sync::Arc::new(self);
        axum::Router::new().route(
            "/outbox",
            axum::routing::get(
                move |axum::extract::Query(query): axum::extract::Query<
                    HashMap<String, String>,
                >| {
                    let source = source.clone();
                    async move {
                        let filter = Filter {
                            user: query.get("user").filter(|u| !u.is_empty()).cloned(),
                            tenant: query.get("tenant").filter(|t| !t.is_empty()).cloned(),
                            limit: Some(
                                query
                                    .get("limit")
                                    .and_then(|l| l.parse().ok())
                                    .unwrap_or(200),
                            ),
                        };
                        match source.read(&filter).await {
                            Ok(entries) => axum::response::Html(page(&entries, &filter)),
                            Err(e) => axum::response::Html(format!(
                                "<!doctype html><p>the outbox could not be read: {e:#}</p>"
                            )),
                        }
                    }
                },
            ),
        )
    }
}

/// The outbox as a plain HTML page (what `cargo xtask dev` serves at `/outbox`).
pub fn page(entries: &[Sent], filter: &Filter) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut rows = String::new();
    for e in entries {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b><pre>{}</pre></td></tr>\n",
            escape(&herald::domain::time::millis(e.at)),
            e.channel.as_str(),
            escape(&e.tenant),
            escape(&e.user),
            escape(&e.to),
            escape(&e.notification_id),
            escape(e.subject.as_deref().unwrap_or_default()),
            escape(&e.text),
        ));
    }
    let shown = match &filter.user {
        Some(user) => format!(" for user {}", escape(user)),
        None => String::new(),
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>herald outbox</title>\
         <meta http-equiv=\"refresh\" content=\"5\"><style>body{{font-family:sans-serif}}\
         td{{vertical-align:top;padding:4px 8px;border-bottom:1px solid #ddd}}\
         pre{{white-space:pre-wrap;margin:0}}</style></head><body>\
         <h1>What herald sent{shown}</h1><p>{} entries, newest first; <code>?user=</code> \
         filters. Refreshes every 5 s.</p><table><tr><th>at</th><th>channel</th><th>tenant</th>\
         <th>user</th><th>to</th><th>notification</th><th>subject / text</th></tr>\n{rows}\
         </table></body></html>",
        entries.len()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn record(user: &str, channel: Channel, detail: &str, at: &str) -> DeliveryRecord {
        DeliveryRecord {
            notification_id: herald::NotificationId::parse("n1", "id").unwrap(),
            user_id: herald::UserId::parse(user, "user").unwrap(),
            channel,
            state: DeliveryState::Sent,
            detail: Some(detail.into()),
            updated_at: at.parse().unwrap(),
            claim: None,
            sent_to: Vec::new(),
            skip: None,
            per_user: false,
        }
    }

    #[test]
    fn sends_are_joined_with_what_the_emulator_kept_newest_first() {
        let raw = herald::domain::email::mime(
            "from@example.com",
            "u2@example.com",
            "Winter sale ✓",
            "30% off",
            "<p>30% off</p>",
            &[("List-Unsubscribe", "<https://x.example/u>")],
        );
        let emulator = json!({
            "ses": {
                "Message": [{"id": "m1", "subject": "Hi", "body": "Hello",
                    "destinations": {"ToAddresses": ["u1@example.com"]}}],
                "RawMessage": [{"id": "m2", "destinations": ["u2@example.com"], "raw_data": raw}],
            },
            "sns": {
                "SMS": [{"message_id": "s1", "phone_number": "+15550100", "message": "Hi: code 1"}],
                "PlatformEndpoint": [
                    {"arn": "arn:aws:sns:us-east-1:1:endpoint/GCM/app/a", "messages": {"p1": "{\"default\":\"Hi: push\"}"}},
                    {"arn": "arn:aws:sns:us-east-1:1:endpoint/GCM/app/b", "messages": {"p2": "{\"default\":\"Hi: push\"}"}},
                ],
            },
        });
        let records = vec![
            (
                "acme".to_owned(),
                record("u1", Channel::Email, "m1", "2026-12-06T10:00:00Z"),
            ),
            (
                "acme".to_owned(),
                record("u2", Channel::Email, "m2", "2026-12-06T10:00:01Z"),
            ),
            (
                "acme".to_owned(),
                record("u1", Channel::Sms, "s1", "2026-12-06T10:00:02Z"),
            ),
            (
                "acme".to_owned(),
                record("u1", Channel::Push, "p1,p2", "2026-12-06T10:00:03Z"),
            ),
            // Not a send: no entry. A message the emulator lost: no entry.
            (
                "acme".to_owned(),
                record("u1", Channel::Inbox, "", "2026-12-06T10:00:04Z"),
            ),
            (
                "acme".to_owned(),
                record("u3", Channel::Email, "gone", "2026-12-06T10:00:05Z"),
            ),
        ];
        let all = join(&records, &emulator, &Filter::default());
        let seen: Vec<(&str, &str)> = all
            .iter()
            .map(|s| (s.channel.as_str(), s.to.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("push", "arn:aws:sns:us-east-1:1:endpoint/GCM/app/a"),
                ("push", "arn:aws:sns:us-east-1:1:endpoint/GCM/app/b"),
                ("sms", "+15550100"),
                ("email", "u2@example.com"),
                ("email", "u1@example.com"),
            ]
        );
        assert_eq!(all[3].subject.as_deref(), Some("Winter sale ✓"), "decoded");
        assert_eq!(all[3].text, "30% off");
        assert_eq!(all[0].text, "Hi: push");
        assert!(
            all[4]
                .line()
                .contains("email → u1@example.com \"Hi\"  acme/u1"),
            "{}",
            all[4].line()
        );

        let u2 = join(
            &records,
            &emulator,
            &Filter {
                user: Some("u2".into()),
                ..Filter::default()
            },
        );
        assert_eq!(u2.len(), 1);
        assert_eq!(u2[0].user, "u2");
        let newest = join(
            &records,
            &emulator,
            &Filter {
                limit: Some(2),
                ..Filter::default()
            },
        );
        assert_eq!(newest.len(), 2);
        assert!(page(&u2, &Filter::default()).contains("Winter sale ✓"));
    }

    #[test]
    fn an_html_body_reads_as_its_text() {
        let html = "<!doctype html>\n<html><head><title>Hi</title></head><body><h1>Hi</h1>\n<p>Tom &amp; Jerry</p></body></html>";
        assert_eq!(text_of(html), "Hi\nTom & Jerry");
        assert_eq!(text_of("plain\ntext"), "plain\ntext");
    }

    #[test]
    fn push_text_reads_sns_message_structures() {
        assert_eq!(push_text("plain"), "plain");
        assert_eq!(push_text(r#"{"default":"a: b"}"#), "a: b");
        let gcm = json!({"GCM": json!({"notification": {"title": "T", "body": "B"}}).to_string()});
        assert_eq!(push_text(&gcm.to_string()), "T: B");
    }
}
