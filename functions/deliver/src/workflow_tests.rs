//! deliver's handler on workflow steps and frequency caps, on in-memory adapters: a step
//! early is put back until due, a step `unless: read` races the read that cancels it, and a
//! cap holds under concurrent and redelivered sends.

use std::collections::BTreeSet;

use herald::domain::caps::{CapSettings, FrequencyCap};
use herald::domain::contact::Contact;
use herald::domain::counters::UserKey;
use herald::domain::mark_read::mark_room_read;
use herald::domain::notification::{parse_notification, Category, IdSource};
use herald::fake::fixtures::{delivery_job as job, noon};
use herald::fake::{
    FixedClock, InMemoryDirectory, InMemoryInbox, InMemoryWorkflows, RecordingQueue,
    RecordingSender, StaticKeys,
};
use herald::ports::{CounterStore, UserWrites};
use herald::{Notification, NotificationId, TenantId, UserId};
use serde_json::json;

use super::*;

fn tenant() -> TenantId {
    TenantId::parse("t1", "t").unwrap()
}

fn user() -> UserKey {
    UserKey {
        tenant: tenant(),
        user: UserId::parse("u1", "u").unwrap(),
    }
}

struct World {
    deliverer: Arc<Deliverer>,
    directory: Arc<InMemoryDirectory>,
    sender: Arc<RecordingSender>,
    requeue: Arc<RecordingQueue>,
    inbox: Arc<InMemoryInbox>,
    caps: Arc<InMemoryWorkflows>,
}

/// User u1 of tenant t1 with an email address and phone, the clock at noon.
async fn world(inbox: InMemoryInbox) -> World {
    let directory = Arc::new(InMemoryDirectory::default());
    let contact = Contact {
        email: Some("a@b.co".into()),
        phone: Some("+15550100".into()),
        ..Contact::default()
    };
    directory
        .put_contact(&tenant(), &user().user, &contact, "p1", 0)
        .await
        .unwrap();
    let sender = Arc::new(RecordingSender::default());
    let requeue = Arc::new(RecordingQueue::default());
    let inbox = Arc::new(inbox);
    let caps = Arc::new(InMemoryWorkflows::default());
    let deliverer = Arc::new(Deliverer {
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
        inbox: Some(inbox.clone()),
        caps: Some(caps.clone()),
        digests: None,
        devices: None,
        campaigns: None,
    });
    World {
        deliverer,
        directory,
        sender,
        requeue,
        inbox,
        caps,
    }
}

/// An escalation accepted an hour before noon: inbox now, email after 15 minutes and SMS
/// after 30, each unless read. Committed to the inbox; its jobs are due by noon.
async fn escalation(w: &World, id: &str) -> (Notification, Vec<DeliveryJob>) {
    let item = json!({
        "id": id, "user_id": "u1", "room_id": "r1", "title": "Hi", "body": "there",
        "workflow": {"steps": [
            {"channel": "inbox"},
            {"channel": "email", "delay_seconds": 900, "unless": "read"},
            {"channel": "sms", "delay_seconds": 1800, "unless": "read"}
        ]}
    });
    let accepted = noon() - jiff::SignedDuration::from_hours(1);
    let n = parse_notification(&item, 0, &tenant(), IdSource::Generate, accepted).unwrap();
    w.inbox
        .commit(&[UserWrites {
            user: user(),
            messages: vec![n.clone()],
        }])
        .await
        .unwrap();
    let jobs = DeliveryJob::for_notification(&n);
    (n, jobs)
}

async fn record(w: &World, id: &NotificationId, channel: Channel) -> Option<DeliveryRecord> {
    w.directory
        .user_delivery_status(&tenant(), id, &user().user)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.channel == channel)
}

#[tokio::test]
async fn unread_steps_go_out_once_each_and_a_read_cancels_the_rest() {
    let w = world(InMemoryInbox::default()).await;
    let (n, jobs) = escalation(&w, "n1").await;
    let (email, sms) = (&jobs[0], &jobs[1]);
    assert_eq!(
        (email.channel, email.unless, email.log_key.as_deref()),
        (Channel::Email, Some(Condition::Read), Some(n.log_key()))
    );
    // Unread when the email step is due: sent, and a redelivered copy sends nothing more.
    assert_eq!(w.deliverer.deliver(email).await, Disposition::Done);
    assert_eq!(w.deliverer.deliver(email).await, Disposition::Done);
    assert_eq!(w.sender.emails.lock().unwrap().len(), 1);
    // Read before the SMS step: skipped with the reason, nothing sent.
    mark_room_read(
        w.inbox.as_ref(),
        &user(),
        &n.room_id,
        &BackoffPolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!(w.deliverer.deliver(sms).await, Disposition::Done);
    assert!(w.sender.sms.lock().unwrap().is_empty());
    let skipped = record(&w, &n.id, Channel::Sms).await.unwrap();
    assert_eq!(
        (skipped.state, skipped.skip),
        (DeliveryState::Skipped, Some(SkipReason::Read))
    );
}

#[tokio::test]
async fn a_step_that_arrives_early_waits_until_it_is_due() {
    let w = world(InMemoryInbox::default()).await;
    let mut early = job(Channel::Email, Category::Transactional);
    early.due_at = Some(noon() + jiff::SignedDuration::from_secs(1_000));
    assert_eq!(w.deliverer.deliver(&early).await, Disposition::Done);
    assert!(w.sender.emails.lock().unwrap().is_empty());
    // Back on its queue for as long as SQS delays (900 s), to be put back again then.
    let requeued = w.requeue.sent.lock().unwrap().clone();
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].delay_seconds, Some(900));
    let mut soon = early.clone();
    soon.due_at = Some(noon() + jiff::SignedDuration::from_secs(30));
    w.deliverer.deliver(&soon).await;
    assert_eq!(w.requeue.sent.lock().unwrap()[1].delay_seconds, Some(30));
    assert!(w.sender.emails.lock().unwrap().is_empty());
    // Due: sent.
    let mut due = early;
    due.due_at = Some(noon());
    assert_eq!(w.deliverer.deliver(&due).await, Disposition::Done);
    assert_eq!(w.sender.emails.lock().unwrap().len(), 1);
}

/// The read and the due step race, with copies of the step redelivered: whatever the
/// interleaving, the email goes out at most once; it is skipped as read only if the read
/// committed; and when the read finished before the step started, it is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_racing_the_due_step_cancels_it_or_comes_too_late_never_both() {
    let (mut sent, mut skipped) = (0, 0);
    for trial in 0..60 {
        let w = world(InMemoryInbox::new(herald::fake::Faults {
            latency: std::time::Duration::from_micros(200),
            ..Default::default()
        }))
        .await;
        let (n, jobs) = escalation(&w, &format!("n{trial}")).await;
        let email = jobs[0].clone();
        let read = {
            let inbox = w.inbox.clone();
            let room = n.room_id.clone();
            tokio::spawn(async move {
                mark_room_read(inbox.as_ref(), &user(), &room, &BackoffPolicy::default())
                    .await
                    .unwrap()
            })
        };
        let copies: Vec<_> = (0..2)
            .map(|_| {
                let (deliverer, email) = (w.deliverer.clone(), email.clone());
                tokio::spawn(async move { deliverer.deliver(&email).await })
            })
            .collect();
        for copy in copies {
            copy.await.unwrap();
        }
        assert_eq!(read.await.unwrap().cleared.values().sum::<u64>(), 1);
        let emails = w.sender.emails.lock().unwrap().len();
        let outcome = record(&w, &n.id, Channel::Email).await;
        match outcome.as_ref().map(|r| (r.state, r.skip)) {
            Some((DeliveryState::Sent, _)) => {
                assert_eq!(emails, 1, "trial {trial}");
                sent += 1;
            }
            Some((DeliveryState::Skipped, Some(SkipReason::Read))) => {
                assert_eq!(emails, 0, "trial {trial}");
                skipped += 1;
            }
            // A copy that found the other holding the claim was put back: the one that
            // holds it settled.
            other => panic!("trial {trial}: {other:?}"),
        }
        // Read first, then the step: never sent.
        let later = DeliveryJob {
            notification_id: NotificationId::parse(format!("late{trial}"), "id").unwrap(),
            ..email
        };
        w.deliverer.deliver(&later).await;
        assert_eq!(
            w.sender.emails.lock().unwrap().len(),
            emails,
            "trial {trial}"
        );
    }
    assert_eq!(sent + skipped, 60);
}

fn marketing_cap(limit: u32) -> CapSettings {
    CapSettings {
        caps: vec![FrequencyCap {
            category: Category::Marketing,
            channel: Channel::Email,
            limit,
            window_seconds: 86_400,
        }],
    }
}

/// Ten marketing emails to one user at once, each delivered twice concurrently (a
/// redelivery), under a cap of 3 a day: exactly 3 go out, each once; the other 7 are
/// skipped as capped; transactional email is not capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_holds_under_concurrent_and_redelivered_sends() {
    let w = world(InMemoryInbox::default()).await;
    w.caps.set_caps(&tenant(), &marketing_cap(3)).await.unwrap();
    let jobs: Vec<DeliveryJob> = (0..10)
        .map(|i| DeliveryJob {
            notification_id: NotificationId::parse(format!("m{i}"), "id").unwrap(),
            ..job(Channel::Email, Category::Marketing)
        })
        .collect();
    let tasks: Vec<_> = jobs
        .iter()
        .chain(jobs.iter())
        .map(|j| {
            let (deliverer, j) = (w.deliverer.clone(), j.clone());
            tokio::spawn(async move { deliverer.deliver(&j).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // A copy that met the other's claim was put back on the queue; deliver those too.
    let requeued: Vec<DeliveryJob> = w
        .requeue
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect();
    for j in requeued {
        w.deliverer.deliver(&j).await;
    }
    let emails = w.sender.emails.lock().unwrap().clone();
    assert_eq!(emails.len(), 3, "exactly the cap");
    let distinct: BTreeSet<String> = emails.iter().map(|e| e.subject.clone()).collect();
    assert_eq!(distinct.len(), 1);
    let mut capped = 0;
    for j in &jobs {
        let r = record(&w, &j.notification_id, Channel::Email)
            .await
            .unwrap();
        match (r.state, r.skip) {
            (DeliveryState::Sent, _) => {}
            (DeliveryState::Skipped, Some(SkipReason::Capped)) => capped += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(capped, 7);
    let window = w
        .caps
        .windows
        .lock()
        .unwrap()
        .values()
        .next()
        .cloned()
        .unwrap();
    assert_eq!(window.sent.len(), 3, "each send counted once");
    // Transactional email has no cap here.
    let receipt = DeliveryJob {
        notification_id: NotificationId::parse("receipt", "id").unwrap(),
        ..job(Channel::Email, Category::Transactional)
    };
    w.deliverer.deliver(&receipt).await;
    assert_eq!(w.sender.emails.lock().unwrap().len(), 4);
}

/// A send that was counted, then throttled, is retried without spending the cap again.
#[tokio::test]
async fn a_retried_send_is_not_counted_twice() {
    let w = world(InMemoryInbox::default()).await;
    w.caps.set_caps(&tenant(), &marketing_cap(1)).await.unwrap();
    let j = job(Channel::Email, Category::Marketing);
    w.sender
        .throttle
        .store(true, std::sync::atomic::Ordering::SeqCst);
    w.deliverer.deliver(&j).await;
    assert!(w.sender.emails.lock().unwrap().is_empty());
    w.sender
        .throttle
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let retry: DeliveryJob = serde_json::from_str(&w.requeue.sent.lock().unwrap()[0].body).unwrap();
    assert_eq!(w.deliverer.deliver(&retry).await, Disposition::Done);
    assert_eq!(
        w.sender.emails.lock().unwrap().len(),
        1,
        "the cap of 1 is this send"
    );
    let second = DeliveryJob {
        notification_id: NotificationId::parse("m2", "id").unwrap(),
        ..j
    };
    w.deliverer.deliver(&second).await;
    assert_eq!(w.sender.emails.lock().unwrap().len(), 1);
    let r = record(&w, &second.notification_id, Channel::Email)
        .await
        .unwrap();
    assert_eq!(r.skip, Some(SkipReason::Capped));
    assert!(r.detail.unwrap().contains("frequency cap"));
}

/// `unless: seen`: a step whose notification was seen (not read) by then is skipped as
/// seen; `unless: read` on the same seen notification still goes out.
#[tokio::test]
async fn a_seen_notification_cancels_a_step_unless_seen_but_not_unless_read() {
    let w = world(InMemoryInbox::default()).await;
    let (n, jobs) = escalation(&w, "n1").await;
    herald::domain::seen::mark_seen(
        w.inbox.as_ref(),
        w.inbox.as_ref(),
        &user(),
        &[n.id.to_string()],
        &BackoffPolicy::default(),
    )
    .await
    .unwrap();
    let unless_seen = DeliveryJob {
        unless: Some(Condition::Seen),
        ..jobs[1].clone()
    };
    assert_eq!(w.deliverer.deliver(&unless_seen).await, Disposition::Done);
    let sms = record(&w, &n.id, Channel::Sms).await.unwrap();
    assert_eq!(
        (sms.state, sms.skip),
        (DeliveryState::Skipped, Some(SkipReason::Seen))
    );
    assert_eq!(w.deliverer.deliver(&jobs[0]).await, Disposition::Done);
    assert_eq!(
        w.sender.emails.lock().unwrap().len(),
        1,
        "unless read: seen is not read"
    );
}
