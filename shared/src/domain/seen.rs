//! Seen and archived, besides read. A message is seen once it is read, marked seen on its
//! own, or its room was seen all at once after it landed; the unseen counts (per room and in
//! TOTAL) follow with the same transactional rules as unread: one message's mark moves its
//! room and TOTAL in one transaction, seeing everything zeroes rooms at the versions read.
//! Archiving hides a message from the list that asks for unarchived ones and changes no count.

use serde::Deserialize;

use super::backoff::BackoffPolicy;
use super::counters::{Counter, Counters, UserKey, MAX_TRANSACTION_ITEMS};
use super::ids::{check_id, RoomId};
use super::mark_read::backoff_or_fail;
use crate::error::{FieldError, StoreError};
use crate::ports::{CommitError, CounterStore, MessageLog};

/// Most messages one request marks.
pub const MAX_IDS: usize = 100;

/// `{"ids": [...]}`: 1-100 message ids as the list shows them, each once.
pub fn parse_ids(value: &serde_json::Value) -> Result<Vec<String>, FieldError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ids {
        ids: Vec<String>,
    }
    let Ids { ids } = FieldError::from_json(value, "")?;
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(FieldError::new(
            "invalid_length",
            "ids",
            format!("ids must hold 1-{MAX_IDS} message ids"),
        ));
    }
    let mut unique = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        check_id(&id, &format!("ids[{i}]"))?;
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}

/// What marking messages seen did: the counters after, how many it marked, and the ids the
/// log does not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenOutcome {
    pub after: Counters,
    pub marked: usize,
    pub not_found: Vec<String>,
}

/// Marks each message seen (one transaction each: its flag, its room's and TOTAL's unseen).
/// One already seen is left alone; one whose room was read or seen in between is found again
/// and is seen then.
pub async fn mark_seen(
    store: &dyn CounterStore,
    log: &dyn MessageLog,
    user: &UserKey,
    ids: &[String],
    policy: &BackoffPolicy,
) -> Result<SeenOutcome, StoreError> {
    let mut outcome = SeenOutcome::default();
    let found = log.find_messages(user, ids).await?;
    for (id, message) in ids.iter().zip(found) {
        let Some(mut message) = message else {
            outcome.not_found.push(id.clone());
            continue;
        };
        let mut retry = policy.start();
        while !message.seen {
            match store.mark_seen(user, &message).await {
                Ok(changed) => {
                    outcome.marked += usize::from(changed);
                    break;
                }
                Err(err) => {
                    backoff_or_fail(&mut retry, err).await?;
                    match log
                        .find_messages(user, std::slice::from_ref(id))
                        .await?
                        .pop()
                    {
                        Some(Some(again)) => message = again,
                        _ => break,
                    }
                }
            }
        }
    }
    outcome.after = store.read_counters(user).await?;
    Ok(outcome)
}

/// Sees everything: every room with unseen messages zeroed at the version read, TOTAL's
/// unseen less the same, in transactions of up to 99 rooms; a lost race is read again.
pub async fn mark_all_seen(
    store: &dyn CounterStore,
    user: &UserKey,
    policy: &BackoffPolicy,
) -> Result<Counters, StoreError> {
    let mut retry = policy.start();
    loop {
        let counters = store.read_counters(user).await?;
        let unseen: Vec<(RoomId, Counter)> = counters
            .rooms
            .iter()
            .filter(|(_, c)| c.unseen > 0)
            .map(|(r, c)| (r.clone(), *c))
            .collect();
        if unseen.is_empty() {
            return Ok(counters);
        }
        let mut lost: Option<CommitError> = None;
        for chunk in unseen.chunks(MAX_TRANSACTION_ITEMS - 1) {
            if let Err(err) = store.zero_unseen(user, chunk).await {
                lost = Some(err);
                break;
            }
        }
        if let Some(err) = lost {
            backoff_or_fail(&mut retry, err).await?;
        }
    }
}

/// Archives (or unarchives) each message: the ids done, and those the log does not hold.
pub async fn set_archived(
    log: &dyn MessageLog,
    user: &UserKey,
    ids: &[String],
    archived: bool,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let (mut done, mut not_found) = (Vec::new(), Vec::new());
    for (id, message) in ids.iter().zip(log.find_messages(user, ids).await?) {
        match message {
            Some(m) if log.set_archived(user, &m.log_key, archived).await? => done.push(id.clone()),
            _ => not_found.push(id.clone()),
        }
    }
    Ok((done, not_found))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::Rng;
    use serde_json::json;

    use super::*;
    use crate::domain::counters::commit::apply_to_counters;
    use crate::domain::ids::{TenantId, UserId};
    use crate::domain::mark_read::{mark_all_read, mark_room_read};
    use crate::domain::notification::{parse_notification, IdSource};
    use crate::fake::{Faults, InMemoryInbox};

    fn user() -> UserKey {
        UserKey {
            tenant: TenantId::parse("t1", "t").unwrap(),
            user: UserId::parse("u1", "u").unwrap(),
        }
    }

    /// Commits, marks seen one by one, seeing everything, reading a room and reading all,
    /// concurrently and at random, with store latency: at the end every room's and TOTAL's
    /// unread and unseen equal what the messages say (each read, seen, or neither), and
    /// the list agrees with the counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unseen_and_unread_stay_exact_under_concurrent_marks() {
        for round in 0..4 {
            let store = Arc::new(InMemoryInbox::new(Faults {
                latency: std::time::Duration::from_micros(100),
                ..Faults::default()
            }));
            let policy = BackoffPolicy {
                base: std::time::Duration::from_micros(100),
                ..BackoffPolicy::default()
            };
            let mut tasks = Vec::new();
            for i in 0..80usize {
                let (store, policy) = (store.clone(), policy);
                tasks.push(tokio::spawn(async move {
                    let room = format!("r{}", i % 3);
                    let pick = rand::rng().random_range(0..10);
                    tokio::time::sleep(std::time::Duration::from_micros(i as u64 * 50)).await;
                    match pick {
                        // Mostly new messages.
                        0..=4 => {
                            let item = json!({"id": format!("m{i}"), "user_id": "u1", "room_id": room,
                                "title": "t", "body": "b", "channels": ["inbox"]});
                            let n = parse_notification(
                                &item,
                                0,
                                &user().tenant,
                                IdSource::Generate,
                                jiff::Timestamp::now(),
                            )
                            .unwrap();
                            apply_to_counters(store.as_ref(), vec![(i, n)], &policy).await;
                        }
                        5..=6 => {
                            let ids: Vec<String> =
                                (0..i).step_by(3).map(|j| format!("m{j}")).collect();
                            if !ids.is_empty() {
                                mark_seen(store.as_ref(), store.as_ref(), &user(), &ids, &policy)
                                    .await
                                    .unwrap();
                            }
                        }
                        7 => {
                            mark_all_seen(store.as_ref(), &user(), &policy).await.unwrap();
                        }
                        8 => {
                            let room = RoomId::parse(room, "room").unwrap();
                            mark_room_read(store.as_ref(), &user(), &room, &policy)
                                .await
                                .unwrap();
                        }
                        _ => {
                            mark_all_read(store.as_ref(), &user(), &policy).await.unwrap();
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let counters = store.snapshot(&user());
            let page = store
                .list_messages(&user(), None, 100, None)
                .await
                .unwrap()
                .messages;
            let mut expected = Counters::default();
            for m in &page {
                let room = RoomId::parse(m.room_id.clone(), "room").unwrap();
                let c = expected.rooms.entry(room).or_default();
                c.unread += u64::from(!m.read);
                c.unseen += u64::from(!m.seen);
                assert!(m.seen || !m.read, "round {round}: read but not seen: {m:?}");
            }
            for (room, c) in &counters.rooms {
                let want = expected.rooms.get(room).copied().unwrap_or_default();
                assert_eq!(
                    (c.unread, c.unseen),
                    (want.unread, want.unseen),
                    "round {round}: room {room}"
                );
            }
            let unread: u64 = expected.rooms.values().map(|c| c.unread).sum();
            let unseen: u64 = expected.rooms.values().map(|c| c.unseen).sum();
            assert_eq!(
                (counters.total.unread, counters.total.unseen),
                (unread, unseen),
                "round {round}"
            );
            assert_eq!(counters.drift(), 0);
        }
    }

    /// A mark made from a stale read: the room was read (and got a new message) between
    /// finding the message and marking it. The mark changes nothing (the read saw it) and
    /// says to find it again.
    #[tokio::test]
    async fn a_mark_from_before_a_room_read_changes_nothing() {
        let store = InMemoryInbox::default();
        let policy = BackoffPolicy::default();
        let commit = |id: &str| {
            let item = json!({"id": id, "user_id": "u1", "room_id": "r1", "title": "t",
                "body": "b", "channels": ["inbox"]});
            parse_notification(
                &item,
                0,
                &user().tenant,
                IdSource::Generate,
                jiff::Timestamp::now(),
            )
            .unwrap()
        };
        apply_to_counters(&store, vec![(0, commit("m1"))], &policy).await;
        let stale = store
            .find_messages(&user(), &["m1".to_owned()])
            .await
            .unwrap()[0]
            .clone()
            .unwrap();
        assert!(!stale.seen);
        let room = RoomId::parse("r1", "room").unwrap();
        mark_room_read(&store, &user(), &room, &policy)
            .await
            .unwrap();
        apply_to_counters(&store, vec![(0, commit("m2"))], &policy).await;
        assert!(matches!(
            store.mark_seen(&user(), &stale).await,
            Err(CommitError::Retryable(_))
        ));
        // Through the domain, found again: seen, nothing to mark.
        let outcome = mark_seen(&store, &store, &user(), &["m1".to_owned()], &policy)
            .await
            .unwrap();
        assert_eq!(outcome.marked, 0);
        let after = store.snapshot(&user());
        assert_eq!((after.total.unread, after.total.unseen), (1, 1), "m2 only");
        // Marked again once seen: nothing either.
        let fresh = store
            .find_messages(&user(), &["m2".to_owned()])
            .await
            .unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!(store.mark_seen(&user(), &fresh).await, Ok(true));
        assert_eq!(store.mark_seen(&user(), &fresh).await, Ok(false));
        let after = store.snapshot(&user());
        assert_eq!((after.total.unread, after.total.unseen), (1, 0));
    }

    #[test]
    fn ids_are_checked_and_kept_once() {
        assert_eq!(
            parse_ids(&json!({"ids": ["a", "b", "a"]})).unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
        for (body, field) in [
            (json!({"ids": []}), Some("ids")),
            (json!({"ids": ["ok", "a b"]}), Some("ids[1]")),
            (json!({"ids": vec!["x"; MAX_IDS + 1]}), Some("ids")),
            (json!({"ids": "a"}), Some("ids")),
            (json!({}), Some("ids")),
        ] {
            let err = parse_ids(&body).unwrap_err();
            assert_eq!(err.field.as_deref(), field, "{body}");
        }
    }
}
