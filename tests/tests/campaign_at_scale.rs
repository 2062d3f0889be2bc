//! A campaign end to end through herald's own code (the campaign runner, the inbox-writer and
//! the deliverer) over in-memory adapters, with the faults a burst brings: duplicated sends,
//! redeliveries of handled messages (lost acks), throttled and conflicting store calls,
//! throttled provider calls and provider answers that never arrive, 10 % of users opted out,
//! and a cancel half-way. It checks the promises: each eligible recipient at most once in the
//! inbox and on each channel (exactly once before the cancel), no opted-out user reached,
//! nothing reached after the cancel has taken effect, progress never ahead of the truth and
//! exact at the end, and a progress read that touches the same few items at any size.
//!
//! The suite runs it at `HERALD_SIM_RECIPIENTS` recipients (default 10,000); the same test at
//! a million is `HERALD_SIM_RECIPIENTS=1000000 cargo test --release -p herald-tests --test
//! campaign_at_scale`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald::consumer::{BatchHandler, Disposition, QueueMessage};
use herald::domain::campaign::{
    AudienceSpec, Campaign, CampaignRequest, CampaignStatus, CampaignWork, INLINE_CHUNK,
};
use herald::domain::contact::Contact;
use herald::domain::counters::{Packing, UserKey};
use herald::domain::ids::CampaignId;
use herald::fake::{
    Faults, FixedClock, InMemoryCampaigns, InMemoryDirectory, InMemoryInbox, RecordingScheduler,
    RecordingSender, StaticKeys,
};
use herald::ports::{
    CampaignStore, CounterStore, Directory, Email, EmailSender, OutgoingMessage, QueueError,
    QueueSender, SendError,
};
use herald::progress::CampaignGate;
use herald::{TenantId, UserId};
use serde_json::json;

/// A small deterministic generator (xorshift): the same faults on every run.
struct Dice(Mutex<u64>);

impl Dice {
    fn new(seed: u64) -> Self {
        Self(Mutex::new(seed.max(1)))
    }

    /// True with probability `p`.
    fn roll(&self, p: f64) -> bool {
        let mut x = self.0.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x % 1_000_000) as f64 / 1_000_000.0 < p
    }
}

/// A queue with SQS's at-least-once shape: a send may be duplicated (a producer retry), a
/// handled message may come back (its ack lost), a message received too often is
/// dead-lettered. Delays are not kept: everything is visible at once.
struct FaultyQueue {
    name: &'static str,
    visible: Mutex<VecDeque<QueueMessage>>,
    next_id: AtomicU64,
    dice: Arc<Dice>,
    duplicate_sends: f64,
    lost_acks: f64,
    dead: Mutex<Vec<(String, String)>>,
}

impl FaultyQueue {
    fn new(name: &'static str, dice: Arc<Dice>, duplicate_sends: f64, lost_acks: f64) -> Self {
        Self {
            name,
            visible: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
            dice,
            duplicate_sends,
            lost_acks,
            dead: Mutex::new(Vec::new()),
        }
    }

    fn push(&self, body: &str) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.visible.lock().unwrap().push_back(QueueMessage {
            message_id: format!("{}-{id}", self.name),
            receipt_handle: format!("rh-{id}"),
            body: body.to_owned(),
            receive_count: 1,
            trace_header: None,
        });
    }

    fn receive(&self, max: usize) -> Vec<QueueMessage> {
        let mut visible = self.visible.lock().unwrap();
        let n = visible.len().min(max);
        visible.drain(..n).collect()
    }

    fn settle(&self, message: QueueMessage, disposition: Disposition) {
        let again = match disposition {
            Disposition::Done => self.dice.roll(self.lost_acks),
            Disposition::Retry(_) => true,
            Disposition::Poison(reason) => {
                self.dead.lock().unwrap().push((message.body, reason));
                return;
            }
        };
        if again {
            if message.receive_count >= 5 {
                let reason = "received 5 times".to_owned();
                self.dead.lock().unwrap().push((message.body, reason));
                return;
            }
            let mut again = message;
            again.receive_count += 1;
            self.visible.lock().unwrap().push_back(again);
        }
    }

    fn is_empty(&self) -> bool {
        self.visible.lock().unwrap().is_empty()
    }
}

#[async_trait]
impl QueueSender for FaultyQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        for m in messages {
            self.push(&m.body);
            if self.dice.roll(self.duplicate_sends) {
                self.push(&m.body);
            }
        }
        messages.iter().map(|_| Ok(())).collect()
    }
}

/// The email provider: records what it accepted; throttles some calls, and loses the answer
/// of some sends it accepted.
struct FlakyProvider {
    inner: Arc<RecordingSender>,
    dice: Arc<Dice>,
}

#[async_trait]
impl EmailSender for FlakyProvider {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        if self.dice.roll(0.05) {
            return Err(SendError::Throttled(herald::error::CallError::message(
                "injected TooManyRequestsException",
            )));
        }
        let id = self.inner.send_email(email).await?;
        if self.dice.roll(0.002) {
            return Err(SendError::Unknown(herald::error::CallError::message(
                "injected timeout after the provider accepted it",
            )));
        }
        Ok(id)
    }
}

fn recipients() -> usize {
    std::env::var("HERALD_SIM_RECIPIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

#[tokio::test]
async fn a_campaign_under_faults_reaches_each_recipient_at_most_once_and_stops_when_cancelled() {
    let total = recipients();
    let dice = Arc::new(Dice::new(0x5eed));
    let tenant = TenantId::parse("acme", "tenant").unwrap();
    let now = jiff::Timestamp::from_second(1_795_435_200).unwrap();

    let inbox = Arc::new(InMemoryInbox::new(Faults {
        conflict: 0.05,
        lost_ack: 0.05,
        ..Faults::default()
    }));
    let directory = Arc::new(InMemoryDirectory::default());
    let campaigns = Arc::new(InMemoryCampaigns::default());
    let provider = Arc::new(RecordingSender::default());
    let work = Arc::new(FaultyQueue::new("work", dice.clone(), 0.05, 0.05));
    let marketing = Arc::new(FaultyQueue::new("marketing", dice.clone(), 0.05, 0.05));
    let delivery = Arc::new(FaultyQueue::new("delivery", dice.clone(), 0.05, 0.05));

    // Every user has an email; one in ten withheld marketing consent.
    let users: Vec<UserId> = (0..total)
        .map(|i| UserId::parse(format!("user-{i:07}"), "user").unwrap())
        .collect();
    let mut opted_out = HashSet::new();
    for (i, user) in users.iter().enumerate() {
        let mut contact = Contact {
            email: Some(format!("{user}@example.com")),
            ..Contact::default()
        };
        if i % 10 == 3 {
            contact.preferences.marketing = false;
            opted_out.insert(format!("{user}@example.com"));
        }
        directory
            .put_contact(&tenant, user, &contact, user.as_str(), 0)
            .await
            .unwrap();
    }

    let gate = || Some(Arc::new(CampaignGate::new(campaigns.clone())));
    let runner = Arc::new(campaigns::CampaignRunner {
        campaigns: campaigns.clone(),
        directory: directory.clone(),
        audiences: Arc::new(herald::fake::InMemoryAudiences::default()),
        scheduler: Arc::new(RecordingScheduler::default()),
        work: work.clone(),
        notifications: marketing.clone(),
        clock: Arc::new(FixedClock(now)),
    });
    let writer = Arc::new(inbox_writer::InboxWriter {
        store: inbox.clone(),
        delivery: delivery.clone(),
        channel_queues: Vec::new(),
        policy: Default::default(),
        packing: Packing::default(),
        campaigns: gate(),
        preferences: Some(directory.clone()),
    });
    let deliverer = Arc::new(deliver::Deliverer {
        directory: directory.clone(),
        email: Arc::new(FlakyProvider {
            inner: provider.clone(),
            dice: dice.clone(),
        }),
        mobile: provider.clone(),
        requeue: delivery.clone(),
        unsubscribe: Some((
            "https://example.com/unsub".into(),
            Arc::new(StaticKeys::default()),
        )),
        clock: Arc::new(FixedClock(now)),
        give_up_after: std::time::Duration::from_secs(24 * 3600),
        campaigns: gate(),
    });

    // The campaign, stored as POST /v1/campaigns stores it, and started by its schedule.
    let request = CampaignRequest::parse(
        &json!({"name": "burst", "title": "Sale", "body": "30% off", "channels": ["inbox", "email"],
            "audience": {"users": ["placeholder"]}, "send_at": "now"}),
        now,
    )
    .unwrap();
    let chunks: Vec<Vec<UserId>> = users.chunks(INLINE_CHUNK).map(<[_]>::to_vec).collect();
    let campaign = Campaign::new(
        tenant.clone(),
        CampaignId::generate(),
        &request,
        AudienceSpec::Inline {
            users: total as u64,
            chunks: chunks.len() as u32,
        },
        now,
    );
    campaigns
        .create_campaign(&campaign, &chunks, None)
        .await
        .unwrap();
    let start = CampaignWork::Start {
        tenant: tenant.clone(),
        campaign: campaign.id.clone(),
    };
    work.send(&[OutgoingMessage::json("start", &start).unwrap()])
        .await;

    // Drive the three queues round-robin until all are empty; cancel once half the
    // eligible users have their notification.
    let eligible = total - opted_out.len();
    let mut cancelled_at: Option<(u64, usize)> = None;
    let mut progress_items = Vec::new();
    let mut last_committed = 0;
    let queues: [(&Arc<FaultyQueue>, Arc<dyn BatchHandler>, usize); 3] = [
        (&work, runner.clone(), 1),
        (&marketing, writer.clone(), 10),
        (&delivery, deliverer.clone(), 10),
    ];
    let mut rounds = 0u64;
    loop {
        rounds += 1;
        assert!(rounds < 50_000_000, "the queues never drain");
        let mut idle = true;
        for (queue, handler, batch_size) in &queues {
            let batch = queue.receive(*batch_size);
            if batch.is_empty() {
                continue;
            }
            idle = false;
            // Some store reads are throttled, as in a burst.
            if dice.roll(0.05) {
                directory.fail_contact_reads.store(1, Ordering::Relaxed);
            }
            let dispositions = handler.handle(&batch).await;
            for (message, disposition) in batch.into_iter().zip(dispositions) {
                queue.settle(message, disposition);
            }
        }
        if idle {
            break;
        }
        if rounds.is_multiple_of(500) {
            let stored = campaigns
                .campaign(&tenant, &campaign.id)
                .await
                .unwrap()
                .unwrap();
            let progress = campaigns.progress(&stored).await.unwrap();
            progress_items.push(campaigns.progress_items.load(Ordering::Relaxed));
            let truth = inbox_count(&inbox, &tenant, &users).await;
            assert!(
                progress.committed <= truth as u64,
                "progress never ahead of the inbox: {} > {truth}",
                progress.committed
            );
            assert!(progress.committed >= last_committed, "progress only grows");
            last_committed = progress.committed;
            if cancelled_at.is_none() && truth >= eligible / 2 {
                campaigns
                    .transition(
                        &tenant,
                        &campaign.id,
                        &[CampaignStatus::Running],
                        CampaignStatus::Cancelled,
                        "2026-12-01T00:00:00Z",
                        None,
                    )
                    .await
                    .unwrap();
                // Consumers trust a campaign's status for a few seconds: wait them out.
                tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
                cancelled_at = Some((
                    inbox_count(&inbox, &tenant, &users).await as u64,
                    provider.emails.lock().unwrap().len(),
                ));
            }
        }
    }
    assert!(work.is_empty() && marketing.is_empty() && delivery.is_empty());

    // At most once per channel, no opted-out user, nothing after the cancel took effect.
    let emails: Vec<String> = provider
        .emails
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.to.clone())
        .collect();
    let distinct: HashSet<&String> = emails.iter().collect();
    assert_eq!(distinct.len(), emails.len(), "an address got two emails");
    assert!(
        emails.iter().all(|e| !opted_out.contains(e)),
        "an opted-out user got an email"
    );
    let in_inbox = inbox_count(&inbox, &tenant, &users).await;
    for (i, user) in users.iter().enumerate().filter(|(i, _)| i % 10 == 3) {
        let unread = read(&inbox, &key(&tenant, user)).await;
        assert_eq!(unread.unread().total, 0, "opted-out user {i} got a badge");
    }
    let (inbox_at_cancel, emails_at_cancel) = cancelled_at.expect("the cancel happened");
    assert_eq!(
        in_inbox as u64, inbox_at_cancel,
        "inbox grew after the cancel"
    );
    // Emails of notifications committed before the cancel may still go; none of later ones.
    assert!(
        emails.len() <= in_inbox,
        "emails only for committed notifications"
    );
    assert!(emails.len() >= emails_at_cancel);

    // Progress is exact once everything settled, and reading it touched a constant number
    // of items all along.
    let stored = campaigns
        .campaign(&tenant, &campaign.id)
        .await
        .unwrap()
        .unwrap();
    let progress = campaigns.progress(&stored).await.unwrap();
    assert_eq!(progress.committed, in_inbox as u64, "{progress:?}");
    let sent_email = progress
        .sent
        .get(&herald::Channel::Email)
        .copied()
        .unwrap_or(0);
    // A send whose answer was lost counts as failed (to the DLQ, never resent), though the
    // provider may have taken it: the provider holds the sent ones and at most those.
    assert!(
        sent_email <= emails.len() as u64 && emails.len() as u64 <= sent_email + progress.failed,
        "{progress:?} against {} emails",
        emails.len()
    );
    assert!(
        progress.skipped_by.get("opted_out").copied().unwrap_or(0) > 0,
        "{progress:?}"
    );
    let items: HashSet<u64> = progress_items.iter().copied().collect();
    assert_eq!(
        items.len(),
        1,
        "a progress read touches the same items: {items:?}"
    );
    let dead = delivery.dead.lock().unwrap().len()
        + marketing.dead.lock().unwrap().len()
        + work.dead.lock().unwrap().len();
    tracing_report(total, &progress, dead, &items);
}

fn key(tenant: &TenantId, user: &UserId) -> UserKey {
    UserKey {
        tenant: tenant.clone(),
        user: user.clone(),
    }
}

/// A user's counters, read past the injected conflicts (the checks are not under test).
async fn read(inbox: &InMemoryInbox, user: &UserKey) -> herald::domain::counters::Counters {
    loop {
        if let Ok(counters) = inbox.read_counters(user).await {
            return counters;
        }
    }
}

/// Users with the campaign's notification in their inbox (unread: nobody reads here).
async fn inbox_count(inbox: &InMemoryInbox, tenant: &TenantId, users: &[UserId]) -> usize {
    let mut n = 0;
    for user in users {
        let counters = read(inbox, &key(tenant, user)).await;
        n += usize::from(counters.unread().total > 0);
        assert!(counters.unread().total <= 1, "{user}: counted twice");
    }
    n
}

/// What the run did, for whoever runs it by hand (`--nocapture`).
fn tracing_report(
    total: usize,
    progress: &herald::domain::campaign::Progress,
    dead: usize,
    items: &HashSet<u64>,
) {
    let summary: HashMap<&str, String> = HashMap::from([
        ("recipients", total.to_string()),
        ("progress", format!("{progress:?}")),
        ("dead_lettered", dead.to_string()),
        ("items_per_progress_read", format!("{items:?}")),
    ]);
    eprintln!("campaign_at_scale: {summary:?}");
}
