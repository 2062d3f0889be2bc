//! A queue that records what was sent.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::*;

/// A queue that records what was sent; `fail_all` makes every send fail.
#[derive(Default)]
pub struct RecordingQueue {
    pub sent: Mutex<Vec<OutgoingMessage>>,
    pub fail_all: std::sync::atomic::AtomicBool,
}

impl RecordingQueue {
    pub fn bodies(&self) -> Vec<String> {
        self.sent
            .lock()
            .map(|s| s.iter().map(|m| m.body.clone()).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl QueueSender for RecordingQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        if self.fail_all.load(Ordering::Relaxed) {
            return vec![Err(QueueError::Invalid("injected queue outage".into())); messages.len()];
        }
        if let Ok(mut sent) = self.sent.lock() {
            sent.extend_from_slice(messages);
        }
        vec![Ok(()); messages.len()]
    }
}
