//! A campaign end to end through herald's own code (the campaign runner, the inbox-writer
//! and the email deliverer) over in-memory adapters, in simulated time, with the faults a
//! 9 a.m. burst brings. Used by `tests/tests/campaign_at_scale.rs` (bounded) and by
//! `cargo xtask bench campaign --recipients N` (a million).
//!
//! Queues keep SQS's shape: delays and visibility timeouts in simulated time, sends that are
//! duplicated (a producer's retry), handled messages that come back (a lost ack), and a
//! message received five times goes to its DLQ. Invocations are killed at random points (the
//! handler's future is dropped at one of its calls, as a crashed or timed-out Lambda stops):
//! its message comes back after the visibility timeout. The inbox store fails commits before
//! and after applying them, contact reads are throttled, SES throttles sends and loses the
//! answers of some it accepted. Recipients live in 30 time zones (`local_time`: release
//! schedules fire in simulated time), one in ten withheld marketing consent, and the campaign
//! is cancelled half-way. Nothing here is AWS's speed: the modelled times are labelled so.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use async_trait::async_trait;
use herald::consumer::{BatchHandler, Disposition, QueueMessage};
use herald::domain::campaign::{
    release_schedule_name, start_schedule_name, AudienceSpec, Campaign, CampaignRequest,
    CampaignStatus, CampaignWork, Progress, INLINE_CHUNK,
};
use herald::domain::contact::Contact;
use herald::domain::counters::commit::Packing;
use herald::domain::counters::UserKey;
use herald::domain::ids::CampaignId;
use herald::fake::{
    InMemoryCampaigns, InMemoryDirectory, InMemoryInbox, ManualClock, RecordingScheduler,
    RecordingSender, StaticKeys,
};
use herald::ports::{
    CampaignStore, Clock, Directory, Email, EmailSender, OutgoingMessage, QueueError, QueueSender,
    Scheduler, SendError,
};
use herald::progress::CampaignGate;
use herald::{TenantId, UserId};
use serde::Serialize;
use serde_json::json;

/// How often each fault happens, per call (queues: per message).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FaultRates {
    pub duplicate_sends: f64,
    pub lost_acks: f64,
    /// Invocations stopped at a random call.
    pub kills: f64,
    /// Inbox commits failing before applying, and (as many) after.
    pub store_conflicts: f64,
    pub contact_throttles: f64,
    pub provider_throttles: f64,
    /// Sends the provider accepted whose answer never arrived.
    pub provider_lost_answers: f64,
}

impl FaultRates {
    /// What the suite and the benchmark inject: at least 5 % of store and provider calls.
    pub fn burst() -> Self {
        Self {
            duplicate_sends: 0.05,
            lost_acks: 0.05,
            kills: 0.02,
            store_conflicts: 0.05,
            contact_throttles: 0.05,
            provider_throttles: 0.05,
            provider_lost_answers: 0.002,
        }
    }
}

/// One run's shape.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    pub recipients: usize,
    /// Time zones the recipients live in (`local_time`).
    pub zones: usize,
    /// Cancel once this share of the eligible users have it in their inbox.
    pub cancel_at: Option<f64>,
    pub faults: FaultRates,
    pub seed: u64,
}

impl SimConfig {
    pub fn new(recipients: usize) -> Self {
        Self {
            recipients,
            zones: ZONES.len(),
            cancel_at: Some(0.5),
            faults: FaultRates::burst(),
            seed: 0x5eed,
        }
    }
}

/// The most one invocation of a stage did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Work {
    pub invocations: u64,
    /// SendMessageBatch calls (10 messages each at most).
    pub sqs_calls: u64,
    /// Calls to the tables (campaign store, directory, inbox), as DynamoDB requests.
    pub store_calls: u64,
    /// Bytes of message bodies it enqueued (what it held to send).
    pub bytes_enqueued: u64,
}

/// Per stage: the largest invocation, and the totals (for the model).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageWork {
    pub max: Work,
    pub total: Work,
}

impl StageWork {
    fn add(&mut self, w: Work) {
        self.total.invocations += 1;
        self.total.sqs_calls += w.sqs_calls;
        self.total.store_calls += w.store_calls;
        self.total.bytes_enqueued += w.bytes_enqueued;
        self.max.invocations = 1;
        self.max.sqs_calls = self.max.sqs_calls.max(w.sqs_calls);
        self.max.store_calls = self.max.store_calls.max(w.store_calls);
        self.max.bytes_enqueued = self.max.bytes_enqueued.max(w.bytes_enqueued);
    }

    /// Modelled Lambda time of all its invocations: 10 ms per table call, 5 ms per SQS call.
    fn modelled_seconds(&self) -> f64 {
        (self.total.store_calls as f64 * 0.010) + (self.total.sqs_calls as f64 * 0.005)
    }
}

/// What a run found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: SimConfig,
    pub eligible: usize,
    /// Users with the campaign in their inbox at the end, and when the cancel took effect.
    pub in_inbox: usize,
    pub in_inbox_at_cancel: Option<usize>,
    pub emails: usize,
    pub emails_at_cancel: Option<usize>,
    /// Promises broken (each a sentence); empty when all held.
    pub violations: Vec<String>,
    pub progress: Progress,
    /// Progress reads made during the run, and the item counts they touched.
    pub progress_reads: u64,
    pub progress_items: BTreeSet<u64>,
    /// Committed notifications whose message went to the DLQ before their progress mark.
    pub unmarked_in_dlq: usize,
    /// Delivery records at the end, by state.
    pub records: std::collections::BTreeMap<String, usize>,
    pub dead_letters: usize,
    /// Why, for the first few.
    pub dead_reasons: Vec<String>,
    pub kills: u64,
    pub lost_acks: u64,
    pub fan_out: StageWork,
    pub writer: StageWork,
    pub deliver: StageWork,
    pub simulated_hours: f64,
    pub model: Model,
}

/// Fan-out time at the template's default concurrency, modelled from the calls counted.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub note: &'static str,
    /// The page chain is one item at a time per campaign.
    pub pages_seconds: f64,
    /// MarketingMaxConcurrency 10 writers.
    pub writers_seconds: f64,
    /// EmailMaxConcurrency 10 deliverers (SES's own sending rate not included).
    pub deliverers_seconds: f64,
}

/// Thirty zones, from UTC+14 to UTC-10, half-hour and quarter-hour offsets included.
pub const ZONES: [&str; 30] = [
    "Pacific/Kiritimati",
    "Pacific/Auckland",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Bangkok",
    "Asia/Yangon",
    "Asia/Dhaka",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "Asia/Karachi",
    "Asia/Dubai",
    "Asia/Tehran",
    "Europe/Moscow",
    "Europe/Athens",
    "Europe/Berlin",
    "Europe/London",
    "Atlantic/Azores",
    "Atlantic/South_Georgia",
    "America/Sao_Paulo",
    "America/St_Johns",
    "America/Halifax",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "UTC",
];

/// SQS's visibility timeout for a message whose invocation died or asked for a retry.
const VISIBILITY_SECONDS: i64 = 60;

/// A small deterministic generator (xorshift).
pub struct Dice(Mutex<u64>);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(seed.max(1)))
    }

    fn next(&self) -> u64 {
        let mut x = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// True with probability `p`.
    pub fn roll(&self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }

    pub fn below(&self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Entry {
    at: i64,
    seq: u64,
    message: QueueMessage,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A queue in simulated time.
pub struct SimQueue {
    name: &'static str,
    clock: Arc<ManualClock>,
    dice: Arc<Dice>,
    faults: FaultRates,
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    next_seq: AtomicU64,
    pub send_calls: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub lost_acks: AtomicU64,
    pub dead: Mutex<Vec<(String, String)>>,
}

impl SimQueue {
    fn new(
        name: &'static str,
        clock: Arc<ManualClock>,
        dice: Arc<Dice>,
        faults: FaultRates,
    ) -> Self {
        Self {
            name,
            clock,
            dice,
            faults,
            heap: Mutex::new(BinaryHeap::new()),
            next_seq: AtomicU64::new(0),
            send_calls: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            lost_acks: AtomicU64::new(0),
            dead: Mutex::new(Vec::new()),
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    fn put(&self, message: QueueMessage, at: i64) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.heap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Reverse(Entry { at, seq, message }));
    }

    fn push(&self, body: &str, delay_seconds: i64) {
        let seq = self.next_seq.load(Ordering::Relaxed);
        let message = QueueMessage {
            message_id: format!("{}-{seq}", self.name),
            receipt_handle: format!("rh-{seq}"),
            body: body.to_owned(),
            receive_count: 1,
            trace_header: None,
        };
        self.put(message, self.now_ms() + delay_seconds * 1000);
    }

    fn receive(&self, max: usize) -> Vec<QueueMessage> {
        let now = self.now_ms();
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        while out.len() < max && heap.peek().is_some_and(|e| e.0.at <= now) {
            if let Some(Reverse(e)) = heap.pop() {
                out.push(e.message);
            }
        }
        out
    }

    /// The message back after the visibility timeout, or dead after its fifth receive.
    fn again(&self, mut message: QueueMessage, why: &str) {
        if message.receive_count >= 5 {
            self.dead
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((message.body, format!("received 5 times: {why}")));
            return;
        }
        message.receive_count += 1;
        self.put(message, self.now_ms() + VISIBILITY_SECONDS * 1000);
    }

    fn settle(&self, message: QueueMessage, disposition: Option<Disposition>) {
        match disposition {
            None => self.again(message, "invocation killed"),
            Some(Disposition::Done) => {
                if self.dice.roll(self.faults.lost_acks) {
                    self.lost_acks.fetch_add(1, Ordering::Relaxed);
                    self.again(message, "ack lost");
                }
            }
            Some(Disposition::Retry(why)) => self.again(message, &why),
            Some(Disposition::Poison(why)) => self
                .dead
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((message.body, why)),
        }
    }

    fn next_visible(&self) -> Option<i64> {
        self.heap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek()
            .map(|e| e.0.at)
    }
}

#[async_trait]
impl QueueSender for SimQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        for chunk in messages.chunks(10) {
            // A call: an invocation can die before it.
            tokio::task::yield_now().await;
            self.send_calls.fetch_add(1, Ordering::Relaxed);
            for m in chunk {
                let delay = i64::from(m.delay_seconds.unwrap_or(0).max(0));
                self.bytes_sent
                    .fetch_add(m.body.len() as u64, Ordering::Relaxed);
                self.push(&m.body, delay);
                if self.dice.roll(self.faults.duplicate_sends) {
                    self.push(&m.body, delay);
                }
            }
        }
        messages.iter().map(|_| Ok(())).collect()
    }
}

/// SES as a burst finds it: some sends throttled, some accepted with the answer lost; a
/// call is a point where the invocation can die (after the provider took it: the window).
struct FlakyProvider {
    inner: Arc<RecordingSender>,
    dice: Arc<Dice>,
    faults: FaultRates,
}

#[async_trait]
impl EmailSender for FlakyProvider {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        if self.dice.roll(self.faults.provider_throttles) {
            return Err(SendError::Throttled(herald::error::CallError::message(
                "injected TooManyRequestsException",
            )));
        }
        let id = self.inner.send_email(email).await?;
        tokio::task::yield_now().await;
        if self.dice.roll(self.faults.provider_lost_answers) {
            return Err(SendError::Unknown(herald::error::CallError::message(
                "injected timeout after the provider accepted it",
            )));
        }
        Ok(id)
    }
}

/// Runs one invocation; with `polls`, it is stopped after that many pauses (at a call), as
/// a crash would: `None` then.
async fn invoke(
    handler: &dyn BatchHandler,
    batch: &[QueueMessage],
    polls: Option<u64>,
) -> Option<Vec<Disposition>> {
    let mut future: Pin<Box<dyn Future<Output = Vec<Disposition>> + Send + '_>> =
        handler.handle(batch);
    let mut budget = polls;
    std::future::poll_fn(move |cx| match future.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => match &mut budget {
            Some(0) => Poll::Ready(None),
            Some(left) => {
                *left -= 1;
                Poll::Pending
            }
            None => Poll::Pending,
        },
    })
    .await
}

/// Runs the campaign to the end and reports.
pub async fn run(config: &SimConfig) -> Report {
    let faults = config.faults;
    let dice = Arc::new(Dice::new(config.seed));
    let tenant = TenantId::parse("acme", "tenant").unwrap_or_else(|_| unreachable!());
    let created = jiff::Timestamp::from_second(1_796_515_200).unwrap_or_default(); // 2026-12-06
    let clock = Arc::new(ManualClock::new(created));

    let inbox = Arc::new(InMemoryInbox::new(herald::fake::Faults {
        conflict: faults.store_conflicts,
        lost_ack: faults.store_conflicts,
        ..herald::fake::Faults::default()
    }));
    let directory = Arc::new(InMemoryDirectory::default());
    let campaigns = Arc::new(InMemoryCampaigns::default());
    let scheduler = Arc::new(RecordingScheduler::default());
    let provider = Arc::new(RecordingSender::default());
    let queue = |name| Arc::new(SimQueue::new(name, clock.clone(), dice.clone(), faults));
    let (work, marketing, delivery) = (queue("work"), queue("marketing"), queue("delivery"));

    // Every user has an email and a zone; one in ten withheld marketing consent.
    let users: Vec<UserId> = (0..config.recipients)
        .map(|i| UserId::parse(format!("user-{i:07}"), "user").unwrap_or_else(|_| unreachable!()))
        .collect();
    let zones = config.zones.clamp(1, ZONES.len());
    let mut opted_out = HashSet::new();
    for (i, user) in users.iter().enumerate() {
        let mut contact = Contact {
            email: Some(format!("{user}@example.com")),
            timezone: Some(ZONES[i % zones].to_owned()),
            ..Contact::default()
        };
        if i % 10 == 3 {
            contact.preferences.marketing = false;
            opted_out.insert(format!("{user}@example.com"));
        }
        let _ = directory
            .put_contact(&tenant, user, &contact, user.as_str(), 0)
            .await;
    }
    let eligible = users.len() - opted_out.len();

    let gate = || Some(Arc::new(CampaignGate::new(campaigns.clone())));
    let runner = Arc::new(campaigns::CampaignRunner {
        campaigns: campaigns.clone(),
        directory: directory.clone(),
        audiences: Arc::new(herald::fake::InMemoryAudiences::default()),
        scheduler: scheduler.clone(),
        work: work.clone(),
        notifications: marketing.clone(),
        clock: clock.clone(),
    });
    let writer = Arc::new(inbox_writer::InboxWriter {
        store: inbox.clone(),
        delivery: delivery.clone(),
        channel_queues: Vec::new(),
        policy: Default::default(),
        packing: Packing::default(),
        campaigns: gate(),
        preferences: Some(directory.clone()),
        step_schedulers: Vec::new(),
        digests: None,
    });
    let deliverer = Arc::new(deliver::Deliverer {
        directory: directory.clone(),
        email: Arc::new(FlakyProvider {
            inner: provider.clone(),
            dice: dice.clone(),
            faults,
        }),
        mobile: provider.clone(),
        requeue: delivery.clone(),
        unsubscribe: Some((
            "https://example.com/unsub".into(),
            Arc::new(StaticKeys::default()),
        )),
        clock: clock.clone(),
        give_up_after: std::time::Duration::from_secs(24 * 3600),
        batch_budget: std::time::Duration::from_secs(20),
        inbox: None,
        caps: None,
        digests: None,
        devices: None,
        campaigns: gate(),
    });

    // The campaign as POST /v1/campaigns stores it: 09:00 tomorrow in each recipient's zone,
    // at 1,000 a second; its schedule fires when the first zone reaches 09:00.
    let request = CampaignRequest::parse(
        &json!({"name": "burst", "title": "Sale", "body": "30% off", "channels": ["inbox", "email"],
            "audience": {"users": ["placeholder"]}, "send_at": "2026-12-07T09:00:00+00:00",
            "local_time": true, "rate_per_second": 1000}),
        created,
    )
    .unwrap_or_else(|e| panic!("campaign request: {}", e.message));
    let chunks: Vec<Vec<UserId>> = users.chunks(INLINE_CHUNK).map(<[_]>::to_vec).collect();
    let campaign = Campaign::new(
        tenant.clone(),
        CampaignId::generate(),
        &request,
        AudienceSpec::Inline {
            users: users.len() as u64,
            chunks: chunks.len() as u32,
        },
        created,
    );
    let _ = campaigns.create_campaign(&campaign, &chunks, None).await;
    let start = CampaignWork::Start {
        tenant: tenant.clone(),
        campaign: campaign.id.clone(),
    };
    let first = campaign.first_instant().unwrap_or(created);
    let _ = scheduler
        .schedule_once(
            &start_schedule_name(&campaign.id),
            first,
            &serde_json::to_string(&start).unwrap_or_default(),
        )
        .await;

    let mut report = Report {
        config: config.clone(),
        eligible,
        in_inbox: 0,
        in_inbox_at_cancel: None,
        emails: 0,
        emails_at_cancel: None,
        violations: Vec::new(),
        progress: Progress::default(),
        progress_reads: 0,
        progress_items: BTreeSet::new(),
        unmarked_in_dlq: 0,
        records: std::collections::BTreeMap::new(),
        dead_letters: 0,
        dead_reasons: Vec::new(),
        kills: 0,
        lost_acks: 0,
        fan_out: StageWork::default(),
        writer: StageWork::default(),
        deliver: StageWork::default(),
        simulated_hours: 0.0,
        model: Model {
            note: "",
            pages_seconds: 0.0,
            writers_seconds: 0.0,
            deliverers_seconds: 0.0,
        },
    };
    let calls = || {
        campaigns.calls.load(Ordering::Relaxed)
            + directory.calls.load(Ordering::Relaxed)
            + inbox.calls.load(Ordering::Relaxed)
    };
    let sqs = || {
        [&work, &marketing, &delivery]
            .iter()
            .map(|q| {
                (
                    q.send_calls.load(Ordering::Relaxed),
                    q.bytes_sent.load(Ordering::Relaxed),
                )
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let check_every = (config.recipients as u64 / 40).max(50);
    let mut last_committed = 0;
    let mut rounds = 0u64;
    loop {
        rounds += 1;
        let mut idle = true;
        for stage in 0..3 {
            let (queue, handler, batch_size): (&Arc<SimQueue>, &dyn BatchHandler, usize) =
                match stage {
                    0 => (&work, runner.as_ref(), 1),
                    1 => (&marketing, writer.as_ref(), 100),
                    _ => (&delivery, deliverer.as_ref(), 10),
                };
            let batch = queue.receive(batch_size);
            if batch.is_empty() {
                continue;
            }
            idle = false;
            if dice.roll(faults.contact_throttles) {
                directory.fail_contact_reads.store(1, Ordering::Relaxed);
            }
            let (calls_before, (sqs_before, bytes_before)) = (calls(), sqs());
            let polls = dice.roll(faults.kills).then(|| dice.below(6));
            let out = invoke(handler, &batch, polls).await;
            let (sqs_after, bytes_after) = sqs();
            let done = Work {
                invocations: 1,
                sqs_calls: sqs_after - sqs_before,
                store_calls: calls() - calls_before,
                bytes_enqueued: bytes_after - bytes_before,
            };
            match stage {
                0 => report.fan_out.add(done),
                1 => report.writer.add(done),
                _ => report.deliver.add(done),
            }
            match out {
                Some(dispositions) => {
                    for (message, disposition) in batch.into_iter().zip(dispositions) {
                        queue.settle(message, Some(disposition));
                    }
                }
                None => {
                    report.kills += 1;
                    for message in batch {
                        queue.settle(message, None);
                    }
                }
            }
        }
        if rounds.is_multiple_of(check_every) {
            let truth = check(
                &mut report,
                &campaigns,
                &campaign,
                &inbox,
                &provider,
                &mut last_committed,
            )
            .await;
            let due = config
                .cancel_at
                .is_some_and(|share| truth as f64 >= share * eligible as f64);
            if due && report.in_inbox_at_cancel.is_none() {
                cancel(&campaigns, &scheduler, &campaign, clock.now()).await;
                // Consumers trust a campaign's status for a few seconds: wait them out.
                tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
                report.in_inbox_at_cancel = Some(inbox.inbox_message_count());
                report.emails_at_cancel = Some(provider.emails.lock().map_or(0, |e| e.len()));
            }
        }
        if !idle {
            continue;
        }
        // Nothing visible: time moves to the next message or schedule.
        let next_schedule = scheduler
            .schedules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, at, _)| at.as_millisecond())
            .min();
        let next = [&work, &marketing, &delivery]
            .iter()
            .filter_map(|q| q.next_visible())
            .chain(next_schedule)
            .min();
        let Some(next) = next else {
            break;
        };
        let now = clock.now().as_millisecond();
        if next > now {
            clock.advance(std::time::Duration::from_millis((next - now) as u64));
        }
        // Due schedules put their payload on the campaign queue, then are deleted.
        let due: Vec<(String, String)> = scheduler
            .schedules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, at, _)| *at <= clock.now())
            .map(|(name, _, payload)| (name.clone(), payload.clone()))
            .collect();
        for (name, payload) in due {
            work.push(&payload, 0);
            let _ = scheduler.delete_schedule(&name).await;
        }
    }

    check(
        &mut report,
        &campaigns,
        &campaign,
        &inbox,
        &provider,
        &mut last_committed,
    )
    .await;
    // Jobs the queue dead-lettered after five receives never settled: their claims may
    // have sent (the DLQ holds them, with the reason).
    let unsettled = delivery.dead.lock().map_or(0, |d| {
        d.iter()
            .filter(|(_, why)| why.starts_with("received 5 times"))
            .count()
    });
    // Notifications committed whose message then went to the DLQ before its progress mark:
    // counted once the DLQ is redriven (the writer marks a duplicate it finds applied).
    report.unmarked_in_dlq = marketing.dead.lock().map_or(0, |d| {
        d.iter()
            .filter_map(|(body, _)| serde_json::from_str::<herald::Notification>(body).ok())
            .filter(|n| {
                inbox.has_message(
                    &UserKey {
                        tenant: n.tenant.clone(),
                        user: n.user_id.clone(),
                    },
                    &n.id,
                )
            })
            .map(|n| (n.user_id, n.id))
            .collect::<HashSet<_>>()
            .len()
    });
    finish(
        &mut report,
        &inbox,
        &provider,
        &tenant,
        &users,
        &opted_out,
        unsettled,
    )
    .await;
    for record in directory
        .records
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default()
    {
        *report
            .records
            .entry(record.state.as_str().to_owned())
            .or_default() += 1;
    }
    report.dead_letters = [&work, &marketing, &delivery]
        .iter()
        .map(|q| q.dead.lock().map_or(0, |d| d.len()))
        .sum();
    report.dead_reasons = [&work, &marketing, &delivery]
        .iter()
        .flat_map(|q| {
            q.dead
                .lock()
                .map(|d| {
                    d.iter()
                        .map(|(body, why)| format!("{}: {why} ({body:.120})", q.name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .take(20)
        .collect();
    report.lost_acks = [&work, &marketing, &delivery]
        .iter()
        .map(|q| q.lost_acks.load(Ordering::Relaxed))
        .sum();
    report.simulated_hours = clock.now().duration_since(created).as_secs_f64() / 3600.0;
    report.model = Model {
        note: "MODEL: 10 ms per table call and 5 ms per SQS call, counted in this run; pages \
               one at a time, 10 writers (MarketingMaxConcurrency), 10 email deliverers \
               (EmailMaxConcurrency); pacing, local time and SES's sending quota left out",
        pages_seconds: report.fan_out.modelled_seconds(),
        writers_seconds: report.writer.modelled_seconds() / 10.0,
        deliverers_seconds: report.deliver.modelled_seconds() / 10.0,
    };
    report
}

/// One progress read, held against the truth: the users with it in their inbox, returned.
async fn check(
    report: &mut Report,
    campaigns: &InMemoryCampaigns,
    campaign: &Campaign,
    inbox: &InMemoryInbox,
    provider: &RecordingSender,
    last_committed: &mut u64,
) -> usize {
    let truth = inbox.inbox_message_count();
    let Ok(Some(stored)) = campaigns.campaign(&campaign.tenant, &campaign.id).await else {
        report.violations.push("the campaign is gone".into());
        return truth;
    };
    let Ok(progress) = campaigns.progress(&stored).await else {
        report.violations.push("progress could not be read".into());
        return truth;
    };
    report.progress_reads += 1;
    report
        .progress_items
        .insert(campaigns.progress_items.load(Ordering::Relaxed));
    if progress.committed > truth as u64 {
        report.violations.push(format!(
            "progress ahead of the inbox: {} committed, {truth} in inboxes",
            progress.committed
        ));
    }
    if progress.committed < *last_committed {
        report.violations.push("progress went back".into());
    }
    *last_committed = progress.committed;
    let emails = provider.emails.lock().map_or(0, |e| e.len()) as u64;
    let sent = progress
        .sent
        .get(&herald::Channel::Email)
        .copied()
        .unwrap_or(0);
    if sent > emails {
        report.violations.push(format!(
            "progress says {sent} emails sent, SES has {emails}"
        ));
    }
    report.progress = progress;
    truth
}

/// What `DELETE /v1/campaigns/{id}` does: the status first, then its schedules.
async fn cancel(
    campaigns: &InMemoryCampaigns,
    scheduler: &RecordingScheduler,
    campaign: &Campaign,
    now: jiff::Timestamp,
) {
    let _ = campaigns
        .transition(
            &campaign.tenant,
            &campaign.id,
            &[CampaignStatus::Scheduled, CampaignStatus::Running],
            CampaignStatus::Cancelled,
            now,
            None,
        )
        .await;
    let releases = campaigns
        .campaign(&campaign.tenant, &campaign.id)
        .await
        .ok()
        .flatten()
        .map(|c| c.releases)
        .unwrap_or_default();
    let _ = scheduler
        .delete_schedule(&start_schedule_name(&campaign.id))
        .await;
    for at in releases {
        let _ = scheduler
            .delete_schedule(&release_schedule_name(&campaign.id, at))
            .await;
    }
}

/// The end state against the promises.
async fn finish(
    report: &mut Report,
    inbox: &InMemoryInbox,
    provider: &RecordingSender,
    tenant: &TenantId,
    users: &[UserId],
    opted_out: &HashSet<String>,
    unsettled: usize,
) {
    let emails: Vec<String> = provider
        .emails
        .lock()
        .map(|e| e.iter().map(|e| e.to.clone()).collect())
        .unwrap_or_default();
    let distinct: HashSet<&String> = emails.iter().collect();
    if distinct.len() != emails.len() {
        report.violations.push(format!(
            "{} emails went to an address that already had one",
            emails.len() - distinct.len()
        ));
    }
    let reached_opted_out = emails.iter().filter(|e| opted_out.contains(*e)).count();
    if reached_opted_out > 0 {
        report
            .violations
            .push(format!("{reached_opted_out} opted-out users got an email"));
    }
    let mut in_inbox = 0;
    for (i, user) in users.iter().enumerate() {
        let key = UserKey {
            tenant: tenant.clone(),
            user: user.clone(),
        };
        let unread = inbox.unread_total(&key);
        if unread > 1 {
            report
                .violations
                .push(format!("{user} counted {unread} times"));
        }
        if unread > 0 && i % 10 == 3 {
            report
                .violations
                .push(format!("{user} opted out but has a badge"));
        }
        in_inbox += unread as usize;
    }
    report.in_inbox = in_inbox;
    report.emails = emails.len();
    if let (Some(at_cancel), Some(emails_at_cancel)) =
        (report.in_inbox_at_cancel, report.emails_at_cancel)
    {
        if in_inbox != at_cancel {
            report.violations.push(format!(
                "{} reached the inbox after the cancel took effect",
                in_inbox.saturating_sub(at_cancel)
            ));
        }
        if emails.len() != emails_at_cancel {
            report.violations.push(format!(
                "{} emails went out after the cancel took effect",
                emails.len().saturating_sub(emails_at_cancel)
            ));
        }
    }
    let p = &report.progress;
    let unmarked = report.unmarked_in_dlq as u64;
    if p.committed > in_inbox as u64 || p.committed + unmarked < in_inbox as u64 {
        report.violations.push(format!(
            "progress says {} committed at the end, {in_inbox} in inboxes ({unmarked} unmarked in the DLQ)",
            p.committed
        ));
    }
    let sent = p.sent.get(&herald::Channel::Email).copied().unwrap_or(0);
    // A send whose answer was lost is `failed` (never resent) though SES may have taken it,
    // and a job dead-lettered unsettled may have sent.
    if sent > emails.len() as u64 || emails.len() as u64 > sent + p.failed + unsettled as u64 {
        report.violations.push(format!(
            "progress: {sent} sent and {} failed ({unsettled} unsettled in the DLQ), SES has {}",
            p.failed,
            emails.len()
        ));
    }
    if report.progress_items.len() > 1 {
        report.violations.push(format!(
            "progress reads touched different numbers of items: {:?}",
            report.progress_items
        ));
    }
}
