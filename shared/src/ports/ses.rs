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

#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Returns the provider's message id.
    async fn send_email(&self, email: &Email) -> Result<String, SendError>;
}
