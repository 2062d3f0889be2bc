//! `RecordingSender`: records emails (and, in `fake/sns.rs`, SMS and pushes).

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::CallError;
use crate::ports::*;

/// Records emails, SMS and pushes; `throttle` makes every send fail as throttled.
#[derive(Default)]
pub struct RecordingSender {
    pub emails: Mutex<Vec<Email>>,
    pub sms: Mutex<Vec<(String, String)>>,
    pub pushes: Mutex<Vec<(String, String)>>,
    pub throttle: std::sync::atomic::AtomicBool,
    /// The next this many sends go out but their answer is lost (`SendError::Unknown`).
    pub lose_answers: std::sync::atomic::AtomicU32,
    /// SMS answer `OptedOut` (the number replied STOP).
    pub opted_out: std::sync::atomic::AtomicBool,
}

impl RecordingSender {
    pub(super) fn check(&self) -> Result<(), SendError> {
        if self.throttle.load(Ordering::Relaxed) {
            return Err(SendError::Throttled(CallError::message(
                "injected TooManyRequestsException",
            )));
        }
        Ok(())
    }

    /// After a send went out: its answer, or a lost one.
    pub(super) fn answer(&self) -> Result<String, SendError> {
        let lost = self
            .lose_answers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if lost {
            return Err(SendError::Unknown(CallError::message(
                "injected timeout: the answer never arrived",
            )));
        }
        Ok(ulid::Ulid::new().to_string())
    }
}

#[async_trait]
impl EmailSender for RecordingSender {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        self.check()?;
        self.emails.lock().map(|mut e| e.push(email.clone())).ok();
        self.answer()
    }
}
