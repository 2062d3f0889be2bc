//! Email (`aws/ses.rs`, `fake/ses.rs`).

use async_trait::async_trait;

use super::SendError;

/// An email ready for SES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The HTML part (both parts are rendered from `templates/email/`).
    pub html: String,
    /// SES message tags; they come back in the SES events (the tenant, for suppression).
    pub tags: Vec<(String, String)>,
    /// One-click unsubscribe for marketing mail (RFC 8058).
    pub list_unsubscribe: Option<String>,
}

/// Recipients one bulk send takes (SES v2 `SendBulkEmail`'s limit).
pub const MAX_BULK_RECIPIENTS: usize = 50;

#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Returns the provider's message id.
    async fn send_email(&self, email: &Email) -> Result<String, SendError>;

    /// Sends `emails` (at most [`MAX_BULK_RECIPIENTS`]), which share one
    /// `domain::email::bulk_template`, in as few provider calls as it can: one result per
    /// email, in order. By default one by one, as [`one_by_one`] does.
    async fn send_bulk(&self, emails: &[Email]) -> Vec<Result<String, SendError>> {
        one_by_one(self, emails).await
    }
}

/// Each email in its own `send_email`: what a provider without a bulk call does.
pub async fn one_by_one<S: EmailSender + ?Sized>(
    sender: &S,
    emails: &[Email],
) -> Vec<Result<String, SendError>> {
    let mut results = Vec::with_capacity(emails.len());
    for email in emails {
        results.push(sender.send_email(email).await);
    }
    results
}
