//! deliver's handler on in-memory adapters: once-only sends under redelivery, duplicates,
//! throttling, lost answers, abandoned claims, partial pushes and opt-outs.

use std::sync::atomic::Ordering;

use herald::domain::contact::Contact;
use herald::fake::fixtures::{delivery_job as job, noon};
use herald::fake::{
    FixedClock, InMemoryDirectory, ManualClock, RecordingQueue, RecordingSender, StaticKeys,
};
use herald::{TenantId, UserId};

use super::*;
use herald::domain::notification::Category;
use herald::ports::{Email, SendError, Sms};

/// The SNS endpoint of device `d`.
fn arn(d: &str) -> String {
    format!("arn:aws:sns:us-east-1:1:endpoint/GCM/app/{d}")
}

struct World {
    deliverer: Deliverer,
    directory: Arc<InMemoryDirectory>,
    sender: Arc<RecordingSender>,
    requeue: Arc<RecordingQueue>,
}

/// A deliverer whose user u1 (tenant t1) has `contact`.
async fn world_with(contact: Contact) -> World {
    let w = world();
    w.directory
        .put_contact(
            &TenantId::parse("t1", "t").unwrap(),
            &UserId::parse("u1", "u").unwrap(),
            &contact,
            "p1",
            0,
        )
        .await
        .unwrap();
    w
}

fn world() -> World {
    let directory = Arc::new(InMemoryDirectory::default());
    let sender = Arc::new(RecordingSender::default());
    let requeue = Arc::new(RecordingQueue::default());
    let deliverer = Deliverer {
        directory: directory.clone(),
        email: sender.clone(),
        mobile: sender.clone(),
        requeue: requeue.clone(),
        unsubscribe: Some((
            "https://example.com/unsub".into(),
            Arc::new(StaticKeys::default()),
        )),
        clock: Arc::new(FixedClock(noon())),
        give_up_after: std::time::Duration::from_secs(24 * 3600),
        batch_budget: std::time::Duration::from_secs(20),
        inbox: None,
        caps: None,
        digests: None,
        devices: None,
        campaigns: None,
    };
    World {
        deliverer,
        directory,
        sender,
        requeue,
    }
}

#[tokio::test]
async fn email_is_sent_once_even_when_redelivered() {
    let w = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    let j = job(Channel::Email, Category::Marketing);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    let emails = w.sender.emails.lock().unwrap().clone();
    assert_eq!(emails.len(), 1);
    let link = emails[0].list_unsubscribe.clone().unwrap();
    let token = link
        .strip_prefix("https://example.com/unsub?token=")
        .unwrap();
    assert!(!token.contains("u1"), "no raw user id in {link}");
    let signer = StaticKeys::default().signer().await.unwrap();
    let request = signer.verify(token).unwrap();
    assert_eq!(
        request.pseudonym,
        signer.pseudonym(&j.tenant, &j.user_id),
        "the link names u1's pseudonym"
    );
}

#[tokio::test]
async fn the_same_client_id_for_two_users_reaches_both() {
    let w = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    let other = UserId::parse("u2", "u").unwrap();
    let contact = Contact {
        email: Some("c@d.co".into()),
        ..Contact::default()
    };
    w.directory
        .put_contact(
            &TenantId::parse("t1", "t").unwrap(),
            &other,
            &contact,
            "p2",
            0,
        )
        .await
        .unwrap();
    let first = job(Channel::Email, Category::Transactional);
    let second = DeliveryJob {
        user_id: other,
        ..first.clone()
    };
    assert_eq!(w.deliverer.deliver(&first).await, Disposition::Done);
    assert_eq!(w.deliverer.deliver(&second).await, Disposition::Done);
    let to: Vec<String> = w
        .sender
        .emails
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.to.clone())
        .collect();
    assert_eq!(to, vec!["a@b.co".to_owned(), "c@d.co".to_owned()]);
}

#[tokio::test]
async fn throttling_requeues_with_a_delay_and_an_attempt_count_without_spending_receives() {
    let w = world_with(Contact {
        phone: Some("+15555550100".into()),
        ..Contact::default()
    })
    .await;
    w.sender.throttle.store(true, Ordering::Relaxed);
    let j = job(Channel::Sms, Category::Transactional);
    assert_eq!(
        w.deliverer.deliver(&j).await,
        Disposition::Done,
        "acked: a copy waits"
    );
    let sent = w.requeue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(
        (1..=2).contains(&sent[0].delay_seconds.unwrap()),
        "{:?}",
        sent[0].delay_seconds
    );
    let next: DeliveryJob = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(next.attempt, 1);
    assert!(next.retrying_since.is_some());
    let records = w.directory.records.lock().unwrap().clone();
    assert_eq!(
        records[0].state,
        DeliveryState::Retrying,
        "the claim is released"
    );
    assert!(w.sender.sms.lock().unwrap().is_empty());
}

/// A sender that throttles until the clock passes `until`.
struct ThrottledUntil {
    inner: Arc<RecordingSender>,
    clock: Arc<ManualClock>,
    until: jiff::Timestamp,
}

#[async_trait]
impl EmailSender for ThrottledUntil {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        if self.clock.now() < self.until {
            return Err(SendError::Throttled(herald::error::CallError::message(
                "TooManyRequestsException: maximum sending rate exceeded",
            )));
        }
        self.inner.send_email(email).await
    }
}

/// Runs every queued job as the queue would hand them out, moving the clock to each
/// job's due time; returns what ended in the DLQ.
async fn drain(w: &World, clock: &ManualClock, mut queue: Vec<(u32, DeliveryJob)>) -> Vec<String> {
    let mut dead = Vec::new();
    let mut rounds = 0;
    while !queue.is_empty() {
        rounds += 1;
        assert!(rounds < 10_000, "the queue never drains");
        queue.sort_by_key(|(delay, _)| *delay);
        let (delay, job) = queue.remove(0);
        clock.advance(std::time::Duration::from_secs(u64::from(delay)));
        for (d, _) in &mut queue {
            *d = d.saturating_sub(delay);
        }
        match w.deliverer.deliver(&job).await {
            Disposition::Done => {}
            Disposition::Poison(reason) => dead.push(reason),
            Disposition::Retry(reason) => panic!("a retry spends receives: {reason}"),
        }
        for m in w.requeue.sent.lock().unwrap().drain(..) {
            queue.push((
                m.delay_seconds.unwrap_or(0) as u32,
                serde_json::from_str(&m.body).unwrap(),
            ));
        }
    }
    dead
}

#[tokio::test]
async fn ses_throttled_for_an_hour_then_every_email_is_sent_and_nothing_is_dead() {
    let clock = Arc::new(ManualClock::new(noon()));
    let mut w = world();
    let recording = w.sender.clone();
    w.deliverer.email = Arc::new(ThrottledUntil {
        inner: recording.clone(),
        clock: clock.clone(),
        until: noon() + jiff::SignedDuration::from_hours(1),
    });
    w.deliverer.clock = clock.clone();
    let tenant = TenantId::parse("t1", "t").unwrap();
    let mut queue = Vec::new();
    for i in 0..20 {
        let user = UserId::parse(format!("u{i}"), "u").unwrap();
        let contact = Contact {
            email: Some(format!("u{i}@example.com")),
            ..Contact::default()
        };
        w.directory
            .put_contact(&tenant, &user, &contact, &format!("p{i}"), 0)
            .await
            .unwrap();
        queue.push((
            0,
            DeliveryJob {
                user_id: user,
                ..job(Channel::Email, Category::Transactional)
            },
        ));
    }
    let dead = drain(&w, &clock, queue).await;
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(
        recording.emails.lock().unwrap().len(),
        20,
        "every email, once"
    );
    assert!(clock.now() >= noon() + jiff::SignedDuration::from_hours(1));
    let records = w.directory.records.lock().unwrap().clone();
    assert!(
        records.iter().all(|r| r.state == DeliveryState::Sent),
        "{records:?}"
    );
}

#[tokio::test]
async fn throttling_gives_up_only_after_the_configured_hours() {
    let clock = Arc::new(ManualClock::new(noon()));
    let mut w = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    w.deliverer.email = Arc::new(ThrottledUntil {
        inner: w.sender.clone(),
        clock: clock.clone(),
        until: noon() + jiff::SignedDuration::from_hours(100),
    });
    w.deliverer.clock = clock.clone();
    w.deliverer.give_up_after = std::time::Duration::from_secs(3 * 3600);
    let dead = drain(
        &w,
        &clock,
        vec![(0, job(Channel::Email, Category::Transactional))],
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].contains("3 h"), "{dead:?}");
    let waited = clock.now().duration_since(noon()).as_secs();
    assert!((3 * 3600..4 * 3600).contains(&waited), "{waited}");
    assert_eq!(
        w.directory.records.lock().unwrap()[0].state,
        DeliveryState::Failed
    );
}

#[tokio::test]
async fn three_copies_of_a_job_in_one_batch_and_across_batches_send_one_email() {
    let w = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    let j = job(Channel::Email, Category::Transactional);
    let copy = |n: usize| QueueMessage {
        message_id: format!("m{n}"),
        receipt_handle: format!("r{n}"),
        body: serde_json::to_string(&j).unwrap(),
        receive_count: 1,
        trace_header: None,
    };
    let batch = [copy(1), copy(2), copy(3)];
    assert_eq!(w.deliverer.handle(&batch).await, vec![Disposition::Done; 3]);
    assert_eq!(
        w.deliverer.handle(&batch[..1]).await,
        vec![Disposition::Done]
    );
    assert_eq!(w.sender.emails.lock().unwrap().len(), 1);
    // Concurrent copies: one claims, the others wait for it and then find it sent.
    let w2 = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    let results = futures_util::future::join_all((0..3).map(|_| w2.deliverer.deliver(&j))).await;
    assert!(
        results.iter().all(|d| *d == Disposition::Done),
        "{results:?}"
    );
    assert_eq!(w2.sender.emails.lock().unwrap().len(), 1);
}

/// Push that throttles one device and refuses another for good.
struct FlakyDevices(Arc<RecordingSender>);

#[async_trait]
impl MobileSender for FlakyDevices {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
        self.0.send_sms(sms).await
    }
    async fn send_push(
        &self,
        endpoint: &str,
        title: &str,
        body: &str,
    ) -> Result<String, SendError> {
        if endpoint.ends_with("/busy") {
            return Err(SendError::Throttled(herald::error::CallError::message(
                "Throttled",
            )));
        }
        if endpoint.ends_with("/dead") {
            let mut e = herald::error::CallError::message("EndpointDisabled: disabled");
            e.code = Some("EndpointDisabled".into());
            return Err(SendError::Rejected(e));
        }
        self.0.send_push(endpoint, title, body).await
    }
}

#[tokio::test]
async fn a_partial_push_retries_only_the_devices_that_did_not_get_it() {
    let mut w = world_with(Contact {
        push: vec![arn("ok"), arn("busy"), arn("dead")],
        ..Contact::default()
    })
    .await;
    w.deliverer.mobile = Arc::new(FlakyDevices(w.sender.clone()));
    let j = job(Channel::Push, Category::Transactional);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    assert_eq!(
        w.sender.pushes.lock().unwrap().len(),
        1,
        "the good device got it"
    );
    let requeued = w.requeue.sent.lock().unwrap().clone();
    let next: DeliveryJob = serde_json::from_str(&requeued[0].body).unwrap();
    assert_eq!(
        next.endpoints,
        Some(vec![arn("busy")]),
        "only the throttled device is left"
    );
    let t1 = TenantId::parse("t1", "t").unwrap();
    assert!(
        w.directory.is_suppressed(&t1, &arn("dead")).await.unwrap(),
        "dead device suppressed"
    );
    // The retry reaches the busy device only (it recovered meanwhile).
    w.deliverer.mobile = w.sender.clone();
    w.requeue.sent.lock().unwrap().clear();
    assert_eq!(w.deliverer.deliver(&next).await, Disposition::Done);
    let pushes = w.sender.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[1].0, arn("busy"));
}

#[tokio::test]
async fn suppressed_and_missing_addresses_are_skipped_with_a_record() {
    let w = world_with(Contact {
        email: Some("A@b.co".into()),
        ..Contact::default()
    })
    .await;
    w.directory
        .suppress(None, "a@b.co", "a test")
        .await
        .unwrap();
    assert_eq!(
        w.deliverer
            .deliver(&job(Channel::Email, Category::Transactional))
            .await,
        Disposition::Done
    );
    assert_eq!(
        w.deliverer
            .deliver(&job(Channel::Push, Category::Transactional))
            .await,
        Disposition::Done
    );
    let records = w.directory.records.lock().unwrap().clone();
    assert!(
        records.iter().all(|r| r.state == DeliveryState::Skipped),
        "{records:?}"
    );
    assert!(w.sender.emails.lock().unwrap().is_empty());
}

#[tokio::test]
async fn quiet_hours_requeue_marketing_with_a_delay() {
    // The fixed clock says 12:00 UTC: inside 11:00-13:00.
    let w = world_with(Contact {
        email: Some("a@b.co".into()),
        quiet_hours: Some(herald::domain::contact::QuietHours {
            start: "11:00".into(),
            end: "13:00".into(),
        }),
        ..Contact::default()
    })
    .await;
    assert_eq!(
        w.deliverer
            .deliver(&job(Channel::Email, Category::Marketing))
            .await,
        Disposition::Done
    );
    let sent = w.requeue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].delay_seconds, Some(900));
    assert!(w.sender.emails.lock().unwrap().is_empty());
}

/// Runs the requeued copies (and what they requeue) until none is left.
async fn run_requeued(w: &World) -> Vec<Disposition> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let queued: Vec<_> = w.requeue.sent.lock().unwrap().drain(..).collect();
        if queued.is_empty() {
            break;
        }
        for m in queued {
            let next: DeliveryJob = serde_json::from_str(&m.body).unwrap();
            out.push(w.deliverer.deliver(&next).await);
        }
    }
    out
}

fn state_of(w: &World) -> DeliveryState {
    w.directory.records.lock().unwrap()[0].state
}

#[tokio::test]
async fn a_duplicate_whose_contact_read_is_throttled_never_overwrites_a_sent_record() {
    let w = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    let j = job(Channel::Email, Category::Transactional);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    assert_eq!(state_of(&w), DeliveryState::Sent);
    // Copy B: its contact read is throttled, so it waits with a delay.
    w.directory.fail_contact_reads.store(1, Ordering::Relaxed);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    assert_eq!(
        state_of(&w),
        DeliveryState::Sent,
        "B holds no claim: writes nothing"
    );
    let later = run_requeued(&w).await;
    assert!(later.iter().all(|d| *d == Disposition::Done), "{later:?}");
    assert_eq!(w.sender.emails.lock().unwrap().len(), 1, "one email");
}

#[tokio::test]
async fn giving_up_without_the_claim_leaves_another_copys_record_alone() {
    let w = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    let j = job(Channel::Email, Category::Transactional);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    // A copy that has waited past the limit, and whose store read fails once more.
    let old = DeliveryJob {
        retrying_since: Some("2026-01-01T00:00:00Z".parse().unwrap()),
        attempt: 40,
        ..j.clone()
    };
    w.directory.fail_contact_reads.store(1, Ordering::Relaxed);
    assert!(matches!(
        w.deliverer.deliver(&old).await,
        Disposition::Poison(_)
    ));
    assert_eq!(
        state_of(&w),
        DeliveryState::Sent,
        "not overwritten as failed"
    );
}

#[tokio::test]
async fn a_send_whose_answer_was_lost_is_never_sent_again() {
    let w = world_with(Contact {
        phone: Some("+15555550100".into()),
        ..Contact::default()
    })
    .await;
    w.sender.lose_answers.store(1, Ordering::Relaxed);
    let j = job(Channel::Sms, Category::Transactional);
    let first = w.deliverer.deliver(&j).await;
    assert!(
        matches!(&first, Disposition::Poison(why) if why.contains("outcome unknown")),
        "to the DLQ with the reason: {first:?}"
    );
    assert_eq!(state_of(&w), DeliveryState::Unknown);
    // Every later copy (an SQS duplicate, a DLQ redrive) finds it settled.
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    assert!(run_requeued(&w).await.is_empty());
    assert_eq!(
        w.sender.sms.lock().unwrap().len(),
        1,
        "the one send the provider took"
    );
}

#[tokio::test]
async fn an_abandoned_claim_is_settled_unknown_not_resent() {
    let w = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    let j = job(Channel::Email, Category::Transactional);
    // A copy claimed it two minutes ago and died (before or after sending: unknown).
    w.directory.records.lock().unwrap().push(DeliveryRecord {
        notification_id: j.notification_id.clone(),
        user_id: j.user_id.clone(),
        channel: j.channel,
        state: DeliveryState::Sending,
        detail: None,
        updated_at: noon() - jiff::SignedDuration::from_mins(2),
        claim: Some("dead-copy".into()),
        sent_to: Vec::new(),
        skip: None,
        per_user: false,
    });
    assert!(matches!(
        w.deliverer.deliver(&j).await,
        Disposition::Poison(_)
    ));
    assert_eq!(state_of(&w), DeliveryState::Unknown);
    assert!(w.sender.emails.lock().unwrap().is_empty(), "not resent");
}

#[tokio::test]
async fn a_duplicate_of_a_partly_sent_push_reaches_only_the_devices_left() {
    let mut w = world_with(Contact {
        push: vec![arn("ok"), arn("busy")],
        ..Contact::default()
    })
    .await;
    w.deliverer.mobile = Arc::new(FlakyDevices(w.sender.clone()));
    let j = job(Channel::Push, Category::Transactional);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    assert_eq!(w.sender.pushes.lock().unwrap().len(), 1);
    // A plain duplicate (no list of devices left) arrives once "busy" recovered.
    w.deliverer.mobile = w.sender.clone();
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    run_requeued(&w).await;
    let pushes: Vec<String> = w
        .sender
        .pushes
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.0.clone())
        .collect();
    assert_eq!(pushes, vec![arn("ok"), arn("busy")], "each device once");
    assert_eq!(state_of(&w), DeliveryState::Sent);
}

#[tokio::test]
async fn an_sms_opt_out_at_the_provider_is_a_suppression_not_a_failure() {
    let w = world_with(Contact {
        phone: Some("+15555550100".into()),
        ..Contact::default()
    })
    .await;
    w.sender.opted_out.store(true, Ordering::Relaxed);
    let j = job(Channel::Sms, Category::Transactional);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done, "no DLQ");
    assert_eq!(state_of(&w), DeliveryState::Skipped);
    let t1 = TenantId::parse("t1", "t").unwrap();
    assert!(w
        .directory
        .is_suppressed(&t1, "+15555550100")
        .await
        .unwrap());
}

/// Push whose first device gets it and whose second meets `second`.
struct SecondDevice {
    inner: Arc<RecordingSender>,
    second: fn() -> SendError,
}

#[async_trait]
impl MobileSender for SecondDevice {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
        self.inner.send_sms(sms).await
    }
    async fn send_push(
        &self,
        endpoint: &str,
        title: &str,
        body: &str,
    ) -> Result<String, SendError> {
        if endpoint.ends_with("/two") {
            return Err((self.second)());
        }
        self.inner.send_push(endpoint, title, body).await
    }
}

fn pushed(w: &World) -> Vec<String> {
    w.sender
        .pushes
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.0.clone())
        .collect()
}

#[tokio::test]
async fn a_store_fault_mid_push_keeps_the_devices_already_reached() {
    let w = world_with(Contact {
        push: vec![arn("one"), arn("two")],
        ..Contact::default()
    })
    .await;
    // "one" is pushed; the suppression read of "two" fails before it is tried.
    w.directory
        .fail_suppression_of
        .lock()
        .unwrap()
        .insert(arn("two"));
    let j = job(Channel::Push, Category::Transactional);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    // A plain duplicate, and the requeued copy: "two" once, "one" never again.
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    run_requeued(&w).await;
    assert_eq!(pushed(&w), vec![arn("one"), arn("two")]);
}

#[tokio::test]
async fn a_device_whose_answer_was_lost_is_never_pushed_again() {
    let mut w = world_with(Contact {
        push: vec![arn("one"), arn("two")],
        ..Contact::default()
    })
    .await;
    // "one" goes out but its answer is lost; "two" is throttled.
    w.sender.lose_answers.store(1, Ordering::Relaxed);
    w.deliverer.mobile = Arc::new(SecondDevice {
        inner: w.sender.clone(),
        second: || SendError::Throttled(herald::error::CallError::message("Throttled")),
    });
    let j = job(Channel::Push, Category::Transactional);
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    w.deliverer.mobile = w.sender.clone();
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    run_requeued(&w).await;
    assert_eq!(pushed(&w), vec![arn("one"), arn("two")], "each device once");
}

/// A copy that finds the job skipped by another (which died before marking its
/// campaign) marks it with the reason the record keeps.
#[tokio::test]
async fn a_skip_found_settled_is_marked_with_its_own_reason() {
    use herald::domain::campaign::{AudienceSpec, Campaign, CampaignRef, CampaignRequest};
    use herald::fake::InMemoryCampaigns;
    use herald::ports::CampaignStore;
    let campaigns = Arc::new(InMemoryCampaigns::default());
    let request = CampaignRequest::parse(
        &serde_json::json!({"name": "n", "title": "T", "body": "B", "channels": ["email"],
            "audience": {"users": ["u1"]}, "send_at": "now"}),
        noon(),
    )
    .unwrap();
    let mut campaign = Campaign::new(
        TenantId::parse("t1", "t").unwrap(),
        herald::domain::ids::CampaignId::generate(),
        &request,
        AudienceSpec::Inline {
            users: 1,
            chunks: 1,
        },
        noon(),
    );
    campaign.status = herald::domain::campaign::CampaignStatus::Running;
    campaigns
        .create_campaign(&campaign, &[], None)
        .await
        .unwrap();
    let mut w = world();
    w.deliverer.campaigns = Some(Arc::new(CampaignGate::new(campaigns.clone())));
    let j = DeliveryJob {
        campaign: Some(CampaignRef {
            id: campaign.id.clone(),
            page: 0,
            slot: 0,
        }),
        ..job(Channel::Email, Category::Marketing)
    };
    w.directory.records.lock().unwrap().push(DeliveryRecord {
        notification_id: j.notification_id.clone(),
        user_id: j.user_id.clone(),
        channel: j.channel,
        state: DeliveryState::Skipped,
        detail: Some("user opted out of marketing on email".into()),
        updated_at: noon(),
        claim: Some("first-copy".into()),
        sent_to: Vec::new(),
        skip: Some(SkipReason::OptedOut),
        per_user: false,
    });
    assert_eq!(w.deliverer.deliver(&j).await, Disposition::Done);
    let progress = campaigns.progress(&campaign).await.unwrap();
    assert_eq!(
        progress.skipped_by.get("opted_out"),
        Some(&1),
        "{progress:?}"
    );
}

/// A batch whose time budget is spent hands its remaining jobs back untouched, as new
/// messages (no receive spent), rather than running into the function's timeout.
#[tokio::test]
async fn jobs_past_the_batch_budget_are_handed_back_untouched() {
    let mut w = world_with(Contact {
        email: Some("a@b.co".into()),
        ..Contact::default()
    })
    .await;
    let message = |id: &str| herald::consumer::QueueMessage {
        message_id: id.into(),
        receipt_handle: format!("rh-{id}"),
        body: serde_json::to_string(&job(Channel::Email, Category::Transactional)).unwrap(),
        receive_count: 4,
        trace_header: None,
    };
    w.deliverer.batch_budget = std::time::Duration::ZERO;
    let out = w.deliverer.handle(&[message("m1"), message("m2")]).await;
    assert_eq!(
        out,
        vec![Disposition::Done, Disposition::Done],
        "acked: requeued"
    );
    assert_eq!(
        w.requeue.sent.lock().unwrap().len(),
        2,
        "both back on the queue"
    );
    assert!(w.sender.emails.lock().unwrap().is_empty(), "nothing sent");
    w.deliverer.batch_budget = std::time::Duration::from_secs(20);
    let out = w.deliverer.handle(&[message("m1")]).await;
    assert_eq!(out, vec![Disposition::Done]);
    assert_eq!(w.sender.emails.lock().unwrap().len(), 1);
}

/// A push goes to the contact's own endpoints and the registered devices', each once; a
/// user with devices and no contact still gets transactional push.
#[tokio::test]
async fn a_push_reaches_the_contacts_endpoints_and_the_registered_devices() {
    use herald::domain::device::{Device, Platform};
    use herald::ports::DeviceRegistry;

    let device = |token: &str, endpoint: &str| Device {
        token: token.into(),
        platform: Platform::Fcm,
        app: None,
        endpoint_arn: arn(endpoint),
        registered_at: noon(),
    };
    let registry = Arc::new(herald::fake::InMemoryDevices::default());
    let t1 = TenantId::parse("t1", "t").unwrap();
    let (u1, u2) = (
        UserId::parse("u1", "u").unwrap(),
        UserId::parse("u2", "u").unwrap(),
    );
    for (user, token, endpoint) in [
        (&u1, "tok-a", "a"),
        (&u1, "tok-b", "shared"),
        (&u2, "tok-c", "c"),
    ] {
        registry
            .register(&t1, user, &device(token, endpoint))
            .await
            .unwrap();
    }
    let mut w = world_with(Contact {
        push: vec![arn("shared"), arn("own")],
        ..Contact::default()
    })
    .await;
    w.deliverer.devices = Some(registry);
    assert_eq!(
        w.deliverer
            .deliver(&job(Channel::Push, Category::Transactional))
            .await,
        Disposition::Done
    );
    let mut reached: Vec<String> = w
        .sender
        .pushes
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.0.clone())
        .collect();
    reached.sort();
    assert_eq!(
        reached,
        [arn("a"), arn("own"), arn("shared")],
        "each endpoint once"
    );

    // u2 has a device and no contact.
    let only_device = DeliveryJob {
        user_id: u2,
        notification_id: herald::NotificationId::parse("n-u2", "id").unwrap(),
        ..job(Channel::Push, Category::Transactional)
    };
    assert_eq!(w.deliverer.deliver(&only_device).await, Disposition::Done);
    assert!(w
        .sender
        .pushes
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.0 == arn("c")));
    // Without a contact there is no marketing consent on record: no marketing push.
    let pushes = w.sender.pushes.lock().unwrap().len();
    let marketing = DeliveryJob {
        notification_id: herald::NotificationId::parse("n-u2-m", "id").unwrap(),
        category: Category::Marketing,
        ..only_device.clone()
    };
    assert_eq!(w.deliverer.deliver(&marketing).await, Disposition::Done);
    assert_eq!(w.sender.pushes.lock().unwrap().len(), pushes, "not sent");
}

/// A running campaign in `campaigns`, and one email job of it for each of `users`.
async fn campaign_jobs(
    campaigns: &herald::fake::InMemoryCampaigns,
    users: &[UserId],
) -> Vec<DeliveryJob> {
    use herald::domain::campaign::{AudienceSpec, Campaign, CampaignRef, CampaignRequest};
    use herald::ports::CampaignStore;
    let request = CampaignRequest::parse(
        &serde_json::json!({"name": "n", "title": "Sale", "body": "50% off", "channels": ["email"],
            "audience": {"users": ["u1"]}, "send_at": "now"}),
        noon(),
    )
    .unwrap();
    let mut campaign = Campaign::new(
        TenantId::parse("t1", "t").unwrap(),
        herald::domain::ids::CampaignId::generate(),
        &request,
        AudienceSpec::Inline {
            users: users.len() as u64,
            chunks: 1,
        },
        noon(),
    );
    campaign.status = herald::domain::campaign::CampaignStatus::Running;
    campaigns
        .create_campaign(&campaign, &[], None)
        .await
        .unwrap();
    users
        .iter()
        .enumerate()
        .map(|(slot, user)| DeliveryJob {
            user_id: user.clone(),
            title: "Sale".into(),
            body: "50% off".into(),
            campaign: Some(CampaignRef {
                id: campaign.id.clone(),
                page: 0,
                slot: slot as u32,
            }),
            record_per_user: true,
            ..job(Channel::Email, Category::Marketing)
        })
        .collect()
}

fn message_of(n: usize, job: &DeliveryJob) -> QueueMessage {
    QueueMessage {
        message_id: format!("m{n}"),
        receipt_handle: format!("r{n}"),
        body: serde_json::to_string(job).unwrap(),
        receive_count: 1,
        trace_header: None,
    }
}

/// A campaign's emails in one batch go out in bulk sends, by template (locale) and at most
/// 50 a call, each with its own unsubscribe link; an entry the provider throttled is the only
/// one retried, and a redelivered batch sends nobody a second email.
#[tokio::test]
async fn a_campaigns_emails_go_out_in_bulk_and_only_a_throttled_entry_is_retried() {
    let campaigns = Arc::new(herald::fake::InMemoryCampaigns::default());
    let mut w = world();
    w.deliverer.campaigns = Some(Arc::new(CampaignGate::new(campaigns.clone())));
    let tenant = TenantId::parse("t1", "t").unwrap();
    let users: Vec<UserId> = (0..60)
        .map(|i| UserId::parse(format!("u{i}"), "u").unwrap())
        .collect();
    for (i, user) in users.iter().enumerate() {
        let contact = Contact {
            email: Some(format!("u{i}@x.test")),
            // The first five read German: another template, so another call.
            locale: Some(if i < 5 { "de" } else { "en" }.into()),
            ..Contact::default()
        };
        let version = format!("p{i}");
        w.directory
            .put_contact(&tenant, user, &contact, &version, 0)
            .await
            .unwrap();
    }
    let jobs = campaign_jobs(&campaigns, &users).await;
    let mut batch: Vec<QueueMessage> = jobs
        .iter()
        .enumerate()
        .map(|(n, j)| message_of(n, j))
        .collect();
    // A transactional email in the same batch goes out on its own.
    let receipt = DeliveryJob {
        notification_id: herald::NotificationId::parse("n-receipt", "id").unwrap(),
        user_id: users[9].clone(),
        ..job(Channel::Email, Category::Transactional)
    };
    batch.push(message_of(60, &receipt));
    w.sender
        .throttle_entries
        .lock()
        .unwrap()
        .push("u7@x.test".into());

    let dispositions = w.deliverer.handle(&batch).await;
    assert_eq!(dispositions, vec![Disposition::Done; 61]);
    assert_eq!(*w.sender.bulk_calls.lock().unwrap(), vec![5, 50, 5]);
    let emails = w.sender.emails.lock().unwrap().clone();
    assert_eq!(emails.len(), 60, "59 campaign emails and the receipt");
    let links: std::collections::HashSet<_> = emails
        .iter()
        .filter_map(|e| e.list_unsubscribe.clone())
        .collect();
    assert_eq!(links.len(), 59, "each recipient has a link of their own");
    // The throttled entry alone went back on the queue, with a delay.
    let requeued = w.requeue.sent.lock().unwrap().clone();
    assert_eq!(requeued.len(), 1);
    let again: DeliveryJob = serde_json::from_str(&requeued[0].body).unwrap();
    assert_eq!(again.user_id, users[7]);
    assert!(requeued[0].delay_seconds.unwrap_or(0) > 0);

    // The batch again (a redelivery), then the requeued job: u7 gets its email, once.
    w.deliverer.handle(&batch).await;
    run_requeued(&w).await;
    let emails = w.sender.emails.lock().unwrap().clone();
    let mut to: Vec<String> = emails.iter().map(|e| e.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(
        emails.len(),
        61,
        "every campaign email once, and the receipt"
    );
    assert_eq!(to.len(), 60);
}
