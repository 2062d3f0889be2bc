//! SES v2 adapter: plain emails as Simple content; marketing emails with List-Unsubscribe
//! headers as Raw MIME (Simple content cannot carry custom headers everywhere).

use async_trait::async_trait;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{
    Body, Content, Destination, EmailContent, Message, MessageTag, RawMessage,
};
use aws_sdk_sesv2::Client;

use super::{send_error, SendCodes};
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

#[async_trait]
impl EmailSender for SesEmail {
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
