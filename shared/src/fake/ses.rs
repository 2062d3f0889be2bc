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
    /// Each bulk send's size, in the order they were made (a call of one is a bulk send too).
    pub bulk_calls: Mutex<Vec<usize>>,
    /// Addresses whose entry in a bulk send comes back throttled once, as SES answers an
    /// entry `ACCOUNT_THROTTLED` while the rest of the call goes out.
    pub throttle_entries: Mutex<Vec<String>>,
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

    /// One call: each email recorded and answered as `send_email` would be, but an
    /// address in `throttle_entries` is answered throttled (once) and not recorded.
    async fn send_bulk(&self, emails: &[Email]) -> Vec<Result<String, SendError>> {
        self.bulk_calls
            .lock()
            .map(|mut c| c.push(emails.len()))
            .ok();
        if let Err(e) = self.check() {
            return emails.iter().map(|_| Err(e.clone())).collect();
        }
        let mut results = Vec::with_capacity(emails.len());
        for email in emails {
            let throttled = self.throttle_entries.lock().is_ok_and(|mut t| {
                let at = t.iter().position(|a| *a == email.to);
                at.map(|i| t.remove(i)).is_some()
            });
            if throttled {
                results.push(Err(SendError::Throttled(CallError::message(
                    "injected ACCOUNT_THROTTLED entry",
                ))));
                continue;
            }
            self.emails.lock().map(|mut e| e.push(email.clone())).ok();
            results.push(self.answer());
        }
        results
    }
}
