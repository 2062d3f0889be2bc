//! SES v2 adapter: plain emails as Simple content; marketing emails with List-Unsubscribe
//! headers as Raw MIME (Simple content cannot carry custom headers everywhere). Emails that
//! share a template go out together through `SendBulkEmail` (up to 50 recipients a call,
//! each with its own unsubscribe link and List-Unsubscribe header), when bulk is on: the
//! emulator (moto) has no `SendBulkEmail`, so the local stack sends them one by one.

use async_trait::async_trait;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{
    Body, BulkEmailContent, BulkEmailEntry, BulkEmailEntryResult, BulkEmailStatus, Content,
    Destination, EmailContent, EmailTemplateContent, Message, MessageHeader, MessageTag,
    RawMessage, ReplacementEmailContent, ReplacementTemplate, Template,
};
use aws_sdk_sesv2::Client;

use super::{send_error, SendCodes};
use crate::domain::email::{bulk_template, BulkTemplate, UNSUBSCRIBE_VARIABLE};
use crate::error::CallError;
use crate::ports::{one_by_one, Email, EmailSender, SendError, MAX_BULK_RECIPIENTS};

#[derive(Debug, Clone)]
pub struct SesEmail {
    client: Client,
    from: String,
    configuration_set: Option<String>,
    bulk: bool,
}

impl SesEmail {
    /// Bulk sends on (`SendBulkEmail`); [`SesEmail::with_bulk`] turns them off.
    pub fn new(client: Client, from: impl Into<String>, configuration_set: Option<String>) -> Self {
        Self {
            client,
            from: from.into(),
            configuration_set,
            bulk: true,
        }
    }

    /// `false`: every email in its own `SendEmail` (an endpoint without `SendBulkEmail`).
    pub fn with_bulk(self, bulk: bool) -> Self {
        Self { bulk, ..self }
    }

    fn content(&self, email: &Email) -> Result<EmailContent, SendError> {
        let build = |e: aws_sdk_sesv2::error::BuildError| {
            SendError::Other(crate::error::CallError::message(e.to_string()))
        };
        let part = |t: &str| {
            Content::builder()
                .data(t)
                .charset("UTF-8")
                .build()
                .map_err(build)
        };
        Ok(match &email.list_unsubscribe {
            // SES builds the MIME: subject and both parts.
            None => {
                let message = Message::builder()
                    .subject(part(&email.subject)?)
                    .body(
                        Body::builder()
                            .text(part(&email.text)?)
                            .html(part(&email.html)?)
                            .build(),
                    )
                    .build();
                EmailContent::builder().simple(message).build()
            }
            // RFC 8058 one-click unsubscribe headers: herald builds the MIME itself.
            Some(url) => {
                let raw = crate::domain::email::mime(
                    &self.from,
                    &email.to,
                    &email.subject,
                    &email.text,
                    &email.html,
                    &[
                        ("List-Unsubscribe", &format!("<{url}>")),
                        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                    ],
                );
                let raw = RawMessage::builder()
                    .data(Blob::new(raw.into_bytes()))
                    .build()
                    .map_err(build)?;
                EmailContent::builder().raw(raw).build()
            }
        })
    }
}

/// SES v2 codes meaning "not now": sending paused or a quota reached; retried later.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "SendingPausedException",
    "TooManyRequestsException",
    "LimitExceededException",
];
/// Codes that are final for this message or address.
const REJECTED: &[&str] = &[
    "MessageRejected",
    "AccountSuspendedException",
    "BadRequestException",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",
];

const CODES: SendCodes = SendCodes {
    throttling: THROTTLING,
    rejected: REJECTED,
    // SES has no opt-out error: its suppression list answers MessageRejected.
    opted_out: &[],
};

/// `BulkEmailStatus` values that mean "not sent, not now": the entry is retried later.
fn entry_throttled(status: &BulkEmailStatus) -> bool {
    matches!(
        status,
        BulkEmailStatus::AccountThrottled
            | BulkEmailStatus::TransientFailure
            | BulkEmailStatus::AccountDailyQuotaExceeded
            | BulkEmailStatus::AccountSendingPaused
            | BulkEmailStatus::ConfigurationSetSendingPaused
    )
}

/// `BulkEmailStatus` values that are final for this message or address.
fn entry_rejected(status: &BulkEmailStatus) -> bool {
    matches!(
        status,
        BulkEmailStatus::MessageRejected
            | BulkEmailStatus::MailFromDomainNotVerified
            | BulkEmailStatus::AccountSuspended
            | BulkEmailStatus::ConfigurationSetNotFound
            | BulkEmailStatus::TemplateNotFound
            | BulkEmailStatus::InvalidParameter
            | BulkEmailStatus::InvalidSendingPoolName
    )
}

/// One recipient's answer in a `SendBulkEmail` result, classified as a single send's error
/// would be: an entry SES answered `FAILED` (or with a status this code does not know) is
/// `Other`, not sent and not retried, like an unclassified answer to `SendEmail`.
fn entry_result(entry: &BulkEmailEntryResult) -> Result<String, SendError> {
    let status = entry.status().cloned().unwrap_or(BulkEmailStatus::Failed);
    if status == BulkEmailStatus::Success {
        return Ok(entry.message_id().unwrap_or_default().to_owned());
    }
    let error = CallError {
        code: Some(status.as_str().to_owned()),
        description: format!(
            "SendBulkEmail entry {}: {}",
            status.as_str(),
            entry.error().unwrap_or("no detail")
        ),
        source: None,
    };
    Err(if entry_throttled(&status) {
        SendError::Throttled(error)
    } else if entry_rejected(&status) {
        SendError::Rejected(error)
    } else {
        SendError::Other(error)
    })
}

impl SesEmail {
    /// One `SendBulkEmail` of `emails`, all of `template`: its content inline, each
    /// recipient's link as replacement data and its own List-Unsubscribe header.
    async fn send_bulk_call(
        &self,
        template: &BulkTemplate,
        emails: &[Email],
    ) -> Vec<Result<String, SendError>> {
        let built = |e: aws_sdk_sesv2::error::BuildError| {
            SendError::Other(CallError::message(e.to_string()))
        };
        let header = |name: &str, value: String| {
            MessageHeader::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(built)
        };
        let request = || -> Result<_, SendError> {
            let mut shared_headers = Vec::new();
            if template.unsubscribe {
                shared_headers.push(header(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".into(),
                )?);
            }
            let content = BulkEmailContent::builder()
                .template(
                    Template::builder()
                        .template_content(
                            EmailTemplateContent::builder()
                                .subject(&template.subject)
                                .text(&template.text)
                                .html(&template.html)
                                .build(),
                        )
                        .template_data("{}")
                        .set_headers(Some(shared_headers).filter(|h| !h.is_empty()))
                        .build(),
                )
                .build();
            let mut entries = Vec::with_capacity(emails.len());
            for email in emails {
                let link = email.list_unsubscribe.as_deref().unwrap_or_default();
                let data = serde_json::json!({ UNSUBSCRIBE_VARIABLE: link }).to_string();
                let headers = match &email.list_unsubscribe {
                    Some(url) => Some(vec![header("List-Unsubscribe", format!("<{url}>"))?]),
                    None => None,
                };
                entries.push(
                    BulkEmailEntry::builder()
                        .destination(Destination::builder().to_addresses(&email.to).build())
                        .replacement_email_content(
                            ReplacementEmailContent::builder()
                                .replacement_template(
                                    ReplacementTemplate::builder()
                                        .replacement_template_data(data)
                                        .build(),
                                )
                                .build(),
                        )
                        .set_replacement_headers(headers)
                        .build(),
                );
            }
            let tags = template
                .tags
                .iter()
                .map(|(name, value)| MessageTag::builder().name(name).value(value).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(built)?;
            Ok((content, entries, tags))
        };
        let (content, entries, tags) = match request() {
            Ok(parts) => parts,
            Err(e) => return emails.iter().map(|_| Err(e.clone())).collect(),
        };
        let answer = self
            .client
            .send_bulk_email()
            .from_email_address(&self.from)
            .default_content(content)
            .set_bulk_email_entries(Some(entries))
            .set_default_email_tags(Some(tags).filter(|t| !t.is_empty()))
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        match answer {
            // One result per recipient, in the entries' order; any other count cannot be
            // matched to recipients, so none is known to be unsent.
            Ok(out) if out.bulk_email_entry_results().len() == emails.len() => out
                .bulk_email_entry_results()
                .iter()
                .map(entry_result)
                .collect(),
            Ok(out) => {
                let lost = SendError::Unknown(CallError::message(format!(
                    "SendBulkEmail answered {} results for {} recipients",
                    out.bulk_email_entry_results().len(),
                    emails.len()
                )));
                emails.iter().map(|_| Err(lost.clone())).collect()
            }
            Err(e) => {
                let error = send_error(e, &CODES);
                emails.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }
}

#[async_trait]
impl EmailSender for SesEmail {
    /// `SendBulkEmail` when bulk is on and the emails share one template (a caller that
    /// grouped them by `bulk_template`); otherwise, or for one email, `SendEmail` each.
    async fn send_bulk(&self, emails: &[Email]) -> Vec<Result<String, SendError>> {
        let template = emails.first().and_then(bulk_template);
        let shared = template.as_ref().filter(|t| {
            emails[1..]
                .iter()
                .all(|e| bulk_template(e).as_ref() == Some(*t))
        });
        match shared {
            Some(template)
                if self.bulk && emails.len() > 1 && emails.len() <= MAX_BULK_RECIPIENTS =>
            {
                self.send_bulk_call(template, emails).await
            }
            _ => one_by_one(self, emails).await,
        }
    }

    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        let out = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(self.content(email)?)
            .set_email_tags(Some(
                email
                    .tags
                    .iter()
                    .map(|(name, value)| {
                        MessageTag::builder()
                            .name(name)
                            .value(value)
                            .build()
                            .map_err(|e| {
                                SendError::Other(crate::error::CallError::message(e.to_string()))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ))
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| send_error(e, &CODES))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

/// The bulk path against a stubbed SDK client: the emulator has no `SendBulkEmail`.
#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_sesv2::config::retry::RetryConfig;
    use aws_sdk_sesv2::error::ErrorMetadata;
    use aws_sdk_sesv2::operation::send_bulk_email::{
        SendBulkEmailError, SendBulkEmailInput, SendBulkEmailOutput,
    };
    use aws_sdk_sesv2::operation::send_email::SendEmailOutput;
    use aws_sdk_sesv2::types::error::TooManyRequestsException;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn email(to: &str, title: &str, link: Option<&str>) -> Email {
        let parts = crate::domain::email::render(Some("en"), title, "50% off", link).unwrap();
        Email {
            to: to.into(),
            subject: title.into(),
            text: parts.text,
            html: parts.html,
            tags: vec![("herald-tenant".into(), "acme".into())],
            list_unsubscribe: link.map(str::to_owned),
        }
    }

    fn campaign(n: usize) -> Vec<Email> {
        (0..n)
            .map(|i| {
                email(
                    &format!("u{i}@x.test"),
                    "Sale",
                    Some(&format!("https://u/unsub?token=t{i}")),
                )
            })
            .collect()
    }

    fn result(status: BulkEmailStatus, id: &str) -> BulkEmailEntryResult {
        BulkEmailEntryResult::builder()
            .status(status)
            .message_id(id)
            .error("detail")
            .build()
    }

    fn ses(client: Client) -> SesEmail {
        SesEmail::new(client, "news@x.test", Some("events".into()))
    }

    #[tokio::test]
    async fn one_templates_emails_are_one_call_with_each_link_and_each_its_own_result() {
        let seen: Arc<Mutex<Option<SendBulkEmailInput>>> = Arc::default();
        let record = seen.clone();
        let rule = mock!(Client::send_bulk_email).then_compute_output(move |request| {
            *record.lock().unwrap() = Some(request.clone());
            SendBulkEmailOutput::builder()
                .bulk_email_entry_results(result(BulkEmailStatus::Success, "m-0"))
                .bulk_email_entry_results(result(BulkEmailStatus::AccountThrottled, ""))
                .bulk_email_entry_results(result(BulkEmailStatus::MessageRejected, ""))
                .bulk_email_entry_results(result(BulkEmailStatus::Failed, ""))
                .build()
                .unwrap()
        });
        let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&rule], |c| c
            .retry_config(RetryConfig::disabled()));
        let emails = campaign(4);
        let results = ses(client).send_bulk(&emails).await;
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(results[0].as_ref().ok().map(String::as_str), Some("m-0"));
        assert!(
            matches!(results[1], Err(SendError::Throttled(_))),
            "{results:?}"
        );
        assert!(
            matches!(results[2], Err(SendError::Rejected(_))),
            "{results:?}"
        );
        assert!(
            matches!(results[3], Err(SendError::Other(_))),
            "{results:?}"
        );

        let request = seen.lock().unwrap().clone().unwrap();
        assert_eq!(request.from_email_address(), Some("news@x.test"));
        assert_eq!(request.configuration_set_name(), Some("events"));
        let tags = request.default_email_tags();
        assert_eq!((tags[0].name(), tags[0].value()), ("herald-tenant", "acme"));
        let template = request
            .default_content()
            .and_then(|c| c.template())
            .unwrap();
        let content = template.template_content().unwrap();
        assert_eq!(content.subject(), Some("Sale"));
        for part in [content.text().unwrap(), content.html().unwrap()] {
            assert!(part.contains("{{unsubscribe}}"), "{part}");
            assert!(!part.contains("token=t0"), "{part}");
        }
        let shared: Vec<_> = template
            .headers()
            .iter()
            .map(|h| (h.name(), h.value()))
            .collect();
        assert_eq!(
            shared,
            vec![("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
        );
        let entries = request.bulk_email_entries();
        assert_eq!(entries.len(), 4);
        for (i, entry) in entries.iter().enumerate() {
            let to = entry.destination().unwrap().to_addresses();
            assert_eq!(to, [format!("u{i}@x.test")]);
            let data = entry
                .replacement_email_content()
                .and_then(|c| c.replacement_template())
                .and_then(|t| t.replacement_template_data())
                .unwrap();
            let data: serde_json::Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["unsubscribe"], format!("https://u/unsub?token=t{i}"));
            let header = &entry.replacement_headers()[0];
            assert_eq!(header.name(), "List-Unsubscribe");
            assert_eq!(header.value(), format!("<https://u/unsub?token=t{i}>"));
        }
    }

    #[tokio::test]
    async fn a_throttled_call_is_throttled_for_every_recipient() {
        let rule = mock!(Client::send_bulk_email).then_error(|| {
            SendBulkEmailError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("slow down")
                    .meta(
                        ErrorMetadata::builder()
                            .code("TooManyRequestsException")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&rule], |c| c
            .retry_config(RetryConfig::disabled()));
        let results = ses(client).send_bulk(&campaign(3)).await;
        assert_eq!(results.len(), 3);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(SendError::Throttled(_)))),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn an_answer_that_cannot_be_matched_to_recipients_is_unknown_for_all() {
        let rule = mock!(Client::send_bulk_email).then_output(|| {
            SendBulkEmailOutput::builder()
                .bulk_email_entry_results(result(BulkEmailStatus::Success, "m-0"))
                .build()
                .unwrap()
        });
        let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&rule], |c| c
            .retry_config(RetryConfig::disabled()));
        let results = ses(client).send_bulk(&campaign(2)).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(SendError::Unknown(_)))),
            "never resent: {results:?}"
        );
    }

    #[tokio::test]
    async fn without_bulk_or_a_shared_template_each_email_goes_alone() {
        let sent = mock!(Client::send_email)
            .sequence()
            .output(|| SendEmailOutput::builder().message_id("single").build())
            .repeatedly()
            .build();
        let bulk = mock!(Client::send_bulk_email).then_output(|| {
            SendBulkEmailOutput::builder()
                .set_bulk_email_entry_results(Some(vec![]))
                .build()
                .unwrap()
        });
        let client = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, [&sent, &bulk], |c| c
            .retry_config(RetryConfig::disabled()));
        // Bulk off (the emulator): two SendEmail calls.
        let off = ses(client.clone()).with_bulk(false);
        let results = off.send_bulk(&campaign(2)).await;
        assert_eq!(results.len(), 2);
        // Content with braces of its own cannot be a template: sent as rendered.
        let mut emails = campaign(2);
        emails[1] = email("u1@x.test", "Hi {{name}}", Some("https://u/unsub?token=t1"));
        ses(client).send_bulk(&emails).await;
        assert_eq!(bulk.num_calls(), 0);
        assert_eq!(sent.num_calls(), 4);
    }
}
