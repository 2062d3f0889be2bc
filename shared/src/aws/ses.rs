//! SES v2 adapter: plain emails as Simple content; marketing emails with List-Unsubscribe
//! headers as Raw MIME (Simple content cannot carry custom headers everywhere).

use async_trait::async_trait;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, RawMessage};
use aws_sdk_sesv2::Client;
use base64::Engine;

use super::send_error;
use crate::ports::{Email, EmailSender, SendError};

#[derive(Debug, Clone)]
pub struct SesEmail {
    client: Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesEmail {
    pub fn new(client: Client, from: impl Into<String>, configuration_set: Option<String>) -> Self {
        Self {
            client,
            from: from.into(),
            configuration_set,
        }
    }

    fn content(&self, email: &Email) -> Result<EmailContent, SendError> {
        let build = |e: aws_sdk_sesv2::error::BuildError| {
            SendError::Other(crate::error::CallError::message(e.to_string()))
        };
        Ok(match &email.list_unsubscribe {
            None => {
                let text = |t: &str| {
                    Content::builder()
                        .data(t)
                        .charset("UTF-8")
                        .build()
                        .map_err(build)
                };
                let message = Message::builder()
                    .subject(text(&email.subject)?)
                    .body(Body::builder().text(text(&email.text)?).build())
                    .build();
                EmailContent::builder().simple(message).build()
            }
            Some(url) => {
                let raw = RawMessage::builder()
                    .data(Blob::new(self.mime(email, url)))
                    .build()
                    .map_err(build)?;
                EmailContent::builder().raw(raw).build()
            }
        })
    }

    /// A minimal RFC 5322 message with RFC 8058 one-click unsubscribe headers.
    fn mime(&self, email: &Email, unsubscribe: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "From: {from}\r\nTo: {to}\r\nSubject: =?UTF-8?B?{subject}?=\r\nMIME-Version: 1.0\r\n\
             List-Unsubscribe: <{unsubscribe}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
             Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n",
            from = self.from,
            to = email.to,
            subject = b64.encode(&email.subject),
            body = b64.encode(&email.text),
        )
        .into_bytes()
    }
}

/// SES v2 codes meaning "not now": sending paused or a quota reached; retried later.
const THROTTLING: &[&str] = &[
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

#[async_trait]
impl EmailSender for SesEmail {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        let out = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(self.content(email)?)
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| send_error(e, THROTTLING, REJECTED))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}
