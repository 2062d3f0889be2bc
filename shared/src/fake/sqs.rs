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

/// A dead-letter queue in memory and the source queue its redriven messages reach.
#[derive(Default)]
pub struct InMemoryDeadLetters {
    pub letters: Mutex<Vec<DeadLetter>>,
    pub source: RecordingQueue,
    /// Listings and redrives made (each one call).
    pub calls: std::sync::atomic::AtomicUsize,
}

impl InMemoryDeadLetters {
    pub fn holding(letters: Vec<DeadLetter>) -> Self {
        Self {
            letters: Mutex::new(letters),
            ..Self::default()
        }
    }

    fn snapshot(&self) -> Vec<DeadLetter> {
        self.letters.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl DeadLetterQueue for InMemoryDeadLetters {
    async fn depth(&self) -> Result<DeadLetterDepth, QueueError> {
        Ok(DeadLetterDepth {
            messages: self.snapshot().len() as u64,
            in_flight: 0,
        })
    }

    async fn list(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(self.snapshot().into_iter().take(max).collect())
    }

    async fn redrive(&self, selection: &RedriveSelection) -> Result<Redriven, QueueError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let scan = crate::domain::dead_letter::redrive_scan(selection);
        let received: Vec<DeadLetter> = self.snapshot().into_iter().take(scan).collect();
        let plan = crate::domain::dead_letter::plan_redrive(&received, selection);
        let outgoing = crate::domain::dead_letter::redriven_messages(&received, &plan.moved);
        let mut done = Redriven {
            not_found: plan.not_found,
            ..Redriven::default()
        };
        for (&i, result) in plan.moved.iter().zip(self.source.send(&outgoing).await) {
            let id = received[i].message_id.clone();
            match result {
                Ok(()) => done.moved.push(id),
                Err(error) => done.failed.push(RedriveFailure {
                    id,
                    error: error.to_string(),
                }),
            }
        }
        if let Ok(mut letters) = self.letters.lock() {
            letters.retain(|l| !done.moved.contains(&l.message_id));
        }
        Ok(done)
    }
}
