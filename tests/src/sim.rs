//! A simulated SQS + consumer fleet over the in-memory store: N workers pull batches of up to
//! 10, the inbox-writer handler decides, retries go back on the queue. Used by the randomized
//! model test (thousands of notifications, injected faults) and by the scaling benchmark
//! (injected latency). It says nothing about AWS throughput; it shows the algorithm's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::consumer::{BatchHandler, Disposition, QueueMessage};

/// An in-memory queue with SQS's at-least-once shape: received messages are in flight until
/// acked or returned.
#[derive(Default)]
pub struct SimQueue {
    visible: Mutex<VecDeque<QueueMessage>>,
    in_flight: AtomicUsize,
    next_id: AtomicU64,
    /// Round trip of one receive or ack call.
    pub latency: Duration,
    pub receives: AtomicU64,
    /// SendMessageBatch calls (10 messages each at most) made through `QueueSender`.
    pub sends: AtomicU64,
    /// Messages handed back for another delivery (unfinished work).
    pub retries: AtomicU64,
    pub poisoned: Mutex<Vec<(String, String)>>,
}

impl SimQueue {
    pub fn new(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    /// Enqueues a body as a new message (a duplicate send is just another push).
    pub fn push(&self, body: String) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = QueueMessage {
            message_id: format!("sim-{id}"),
            receipt_handle: format!("rh-{id}"),
            body,
            receive_count: 1,
            trace_header: None,
        };
        self.lock().push_back(message);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<QueueMessage>> {
        self.visible.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn receive(&self, max: usize) -> Vec<QueueMessage> {
        self.receives.fetch_add(1, Ordering::Relaxed);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut visible = self.lock();
        let n = visible.len().min(max);
        self.in_flight.fetch_add(n, Ordering::SeqCst);
        visible.drain(..n).collect()
    }

    fn settle(&self, message: QueueMessage, disposition: Disposition) {
        match disposition {
            Disposition::Done => {}
            Disposition::Retry(_) => {
                self.retries.fetch_add(1, Ordering::Relaxed);
                let mut again = message;
                again.receive_count += 1;
                self.lock().push_back(again);
            }
            Disposition::Poison(reason) => {
                self.poisoned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((message.message_id, reason));
            }
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Nothing visible and nothing in flight.
    pub fn drained(&self) -> bool {
        let visible = self.lock();
        visible.is_empty() && self.in_flight.load(Ordering::SeqCst) == 0
    }
}

/// Producers send to it as to SQS: batches of 10, each a round trip. Delays are not kept
/// (a message is visible at once).
#[async_trait::async_trait]
impl herald::ports::QueueSender for SimQueue {
    async fn send(
        &self,
        messages: &[herald::ports::OutgoingMessage],
    ) -> Vec<Result<(), herald::ports::QueueError>> {
        for chunk in messages.chunks(10) {
            self.sends.fetch_add(1, Ordering::Relaxed);
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
            for m in chunk {
                self.push(m.body.clone());
            }
        }
        messages.iter().map(|_| Ok(())).collect()
    }
}

/// Runs `workers` consumers until the queue is drained.
pub async fn drain(queue: Arc<SimQueue>, handler: Arc<dyn BatchHandler>, workers: usize) {
    drain_in_batches(queue, handler, workers, 10).await
}

/// Runs `workers` consumers, `batch_size` messages at a time, until the queue is drained.
pub async fn drain_in_batches(
    queue: Arc<SimQueue>,
    handler: Arc<dyn BatchHandler>,
    workers: usize,
    batch_size: usize,
) {
    let no_producers = Arc::new(std::sync::atomic::AtomicBool::new(true));
    drain_fed_by(queue, handler, workers, batch_size, no_producers).await
}

/// Like `drain_in_batches` for a queue that others still send to: the workers stop once
/// `producers_done` is set and the queue is drained.
pub async fn drain_fed_by(
    queue: Arc<SimQueue>,
    handler: Arc<dyn BatchHandler>,
    workers: usize,
    batch_size: usize,
    producers_done: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (queue, handler, done) = (queue.clone(), handler.clone(), producers_done.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let batch = queue.receive(batch_size).await;
                if batch.is_empty() {
                    if done.load(Ordering::SeqCst) && queue.drained() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let dispositions = handler.handle(&batch).await;
                if !queue.latency.is_zero() {
                    tokio::time::sleep(queue.latency).await; // DeleteMessageBatch
                }
                for (message, disposition) in batch.into_iter().zip(dispositions) {
                    queue.settle(message, disposition);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
