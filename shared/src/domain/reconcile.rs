//! Reconcile: recompute each TOTAL from its rooms, repair drift, report it (it must be 0).
//!
//! Two ways to choose the users, both split into partitions that run concurrently and both
//! resumable (a checkpoint is saved after every page, so a run that meets its deadline stops
//! and the next one goes on where it stopped):
//! - `Changed` (the hourly default): only users whose counters changed, read from the change
//!   log. A consumer of the inbox table's stream logs each batch's changed users (TOTAL
//!   records) as one item in one of the hour's shards (`change_log_entries`), so the
//!   writers' transactions carry no mark and no index is written per notification; each
//!   completed hour is read shard by shard, in parallel, and then the hours still open (the
//!   current one, and the last one while in its grace) are read too, without a checkpoint:
//!   what is logged into an hour after its run is read when it is complete.
//! - `Full`: a parallel Scan over every TOTAL item, segment by segment.

use std::time::Instant;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::backoff::BackoffPolicy;
use super::counters::UserKey;
use super::mark_read::backoff_or_fail;
use crate::error::StoreError;
use crate::ports::{ChangeLogEntry, CounterStore, UserIndex, UserSet};

/// Shards of the change log per hour: partitions reconcile reads in parallel.
pub const CHANGE_SHARDS: u32 = 16;
/// Users one change-log item holds at most: with ids of 128 characters each, an item stays
/// below DynamoDB's 400 KB.
pub const CHANGE_LOG_ITEM_USERS: usize = 1_000;
/// Segments of a full parallel Scan.
pub const SCAN_SEGMENTS: u32 = 8;
/// An hour is reconciled once it ended this long ago (late commits and clock skew settle).
const HOUR_GRACE_SECONDS: i64 = 120;

/// The hour and shard a user changed at `at` is logged under (the in-memory store's model of
/// the change log: one mark per user, its latest).
pub fn change_mark(user: &UserKey, at: jiff::Timestamp) -> String {
    logged_mark(user, &hour_of(at))
}

/// `change_mark` of a user logged in `hour`.
pub fn logged_mark(user: &UserKey, hour: &str) -> String {
    shard_mark(hour, shard_of(user))
}

/// One shard of one hour of the change log: `<YYYYMMDDHH>#<shard>`.
pub fn shard_mark(hour: &str, shard: u32) -> String {
    format!("{hour}#{shard}")
}

/// The change-log items for one batch of changed users, logged at `at`: the users once each,
/// in items of at most [`CHANGE_LOG_ITEM_USERS`], in the shard `batch` hashes to. `batch`
/// names the batch (its first stream record's sequence number), so the same batch logged
/// again writes the same items, and batches spread over the shards.
pub fn change_log_entries(
    batch: &str,
    users: impl IntoIterator<Item = UserKey>,
    at: jiff::Timestamp,
) -> Vec<ChangeLogEntry> {
    let mut unique: Vec<UserKey> = Vec::new();
    for user in users {
        if !unique.contains(&user) {
            unique.push(user);
        }
    }
    let hour = hour_of(at);
    let shard = (fnv1a(batch) % u64::from(CHANGE_SHARDS)) as u32;
    unique
        .chunks(CHANGE_LOG_ITEM_USERS)
        .enumerate()
        .map(|(part, users)| ChangeLogEntry {
            hour: hour.clone(),
            shard,
            id: format!("{batch}#{part}"),
            users: users.to_vec(),
        })
        .collect()
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `YYYYMMDDHH` in UTC.
pub fn hour_of(at: jiff::Timestamp) -> String {
    at.strftime("%Y%m%d%H").to_string()
}

fn shard_of(user: &UserKey) -> u32 {
    (fnv1a(&format!("{}#{}", user.tenant, user.user)) % u64::from(CHANGE_SHARDS)) as u32
}

fn next_hour(hour: &str) -> Option<String> {
    let start = parse_hour(hour)?;
    Some(hour_of(
        start
            .checked_add(jiff::SignedDuration::from_hours(1))
            .ok()?,
    ))
}

fn parse_hour(hour: &str) -> Option<jiff::Timestamp> {
    let part = |range: std::ops::Range<usize>| hour.get(range);
    format!(
        "{}-{}-{}T{}:00:00Z",
        part(0..4)?,
        part(4..6)?,
        part(6..8)?,
        part(8..10)?
    )
    .parse()
    .ok()
}

/// The last hour that ended at least the grace period before `now`.
fn last_complete_hour(now: jiff::Timestamp) -> String {
    let settled = now - jiff::SignedDuration::from_secs(HOUR_GRACE_SECONDS + 3600);
    hour_of(settled)
}

/// Which users a run visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Users whose counters changed in the hours since the last run (the hourly run).
    Changed,
    /// Every user (a parallel Scan of the whole table).
    Full,
}

impl Mode {
    fn checkpoint_name(self) -> &'static str {
        match self {
            Mode::Changed => "changed",
            Mode::Full => "full",
        }
    }
}

/// Where a partition stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartState {
    /// Resume from this cursor (None: from the start).
    Pending(Option<String>),
    Done,
}

/// A pass in progress: its partitions and how far each got. Stored after every page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// For `Changed`: the hour this pass reads; the hours before it are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<String>,
    pub parts: Vec<(UserSet, PartState)>,
}

impl Checkpoint {
    fn changed(hour: String) -> Self {
        Self {
            parts: (0..CHANGE_SHARDS)
                .map(|shard| {
                    let set = UserSet::Changed {
                        hour: hour.clone(),
                        shard,
                    };
                    (set, PartState::Pending(None))
                })
                .collect(),
            hour: Some(hour),
        }
    }

    fn full(segments: u32) -> Self {
        Self {
            hour: None,
            parts: (0..segments)
                .map(|segment| {
                    (
                        UserSet::Segment { segment, segments },
                        PartState::Pending(None),
                    )
                })
                .collect(),
        }
    }

    fn is_done(&self) -> bool {
        self.parts.iter().all(|(_, s)| *s == PartState::Done)
    }
}

/// What a reconcile run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub users: u64,
    /// Users whose TOTAL differed from the sum of their rooms.
    pub drifted_users: u64,
    /// Sum of |drift| before repair.
    pub drift: u64,
    pub repaired: u64,
    /// Users that could not be checked (store errors); the pass goes on without them.
    pub errors: u64,
    /// Pages read from the table or index.
    pub pages: u64,
    /// False when the deadline stopped the run: the next run resumes from the checkpoint
    /// (and reads the open hours again).
    pub complete: bool,
    /// For `Changed`: the completed hours read in this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<String>,
    /// For `Changed`: the hours still open that were read after them (read again once
    /// complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_hours: Vec<String>,
}

impl ReconcileReport {
    pub fn add(&mut self, other: &ReconcileReport) {
        self.users += other.users;
        self.drifted_users += other.drifted_users;
        self.drift += other.drift;
        self.repaired += other.repaired;
        self.errors += other.errors;
        self.pages += other.pages;
    }
}

/// One reconcile run: what to visit and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub mode: Mode,
    /// Stop taking new pages after this instant (leave time before the function's timeout).
    pub deadline: Instant,
    pub now: jiff::Timestamp,
    pub policy: BackoffPolicy,
}

/// Runs reconcile from the stored checkpoint (or a fresh pass) until done or the deadline.
pub async fn reconcile(
    store: &dyn CounterStore,
    index: &dyn UserIndex,
    run: Run,
) -> Result<ReconcileReport, StoreError> {
    let name = run.mode.checkpoint_name();
    let policy = &run.policy;
    let stored = match retrying(policy, "reconcile checkpoint", || {
        index.load_checkpoint(name)
    })
    .await?
    {
        // "null": the last full pass finished.
        Some(json) => serde_json::from_str::<Option<Checkpoint>>(&json).map_err(|e| {
            StoreError::Fatal(format!("reconcile checkpoint {name} is unreadable: {e}"))
        })?,
        None => None,
    };
    let last_hour = last_complete_hour(run.now);
    let mut checkpoint = match (run.mode, stored) {
        (_, Some(c)) => c,
        (Mode::Changed, None) => Checkpoint::changed(last_hour.clone()),
        (Mode::Full, None) => Checkpoint::full(SCAN_SEGMENTS),
    };
    let mut report = ReconcileReport::default();
    loop {
        if let Some(hour) = &checkpoint.hour {
            if *hour > last_hour {
                // Every complete hour is done: keep the checkpoint for the next run, then
                // visit the users of the open hours.
                save(index, name, &to_json(&checkpoint)?, policy).await?;
                report.complete =
                    visit_open_hours(store, index, &last_hour, &run, &mut report).await?;
                return Ok(report);
            }
            report.hours.push(hour.clone());
        }
        checkpoint = run_pass(store, index, Some(name), checkpoint, &run, &mut report).await?;
        if !checkpoint.is_done() {
            return Ok(report);
        }
        match run.mode {
            Mode::Full => {
                // The pass is finished; the next full run starts a new one.
                save(index, name, "null", policy).await?;
                report.complete = true;
                return Ok(report);
            }
            Mode::Changed => {
                let hour = checkpoint.hour.as_deref().unwrap_or(&last_hour);
                let next = next_hour(hour).ok_or_else(|| {
                    StoreError::Fatal(format!("reconcile checkpoint hour {hour:?} is invalid"))
                })?;
                checkpoint = Checkpoint::changed(next);
            }
        }
    }
}

/// Reads the hours after `last_hour` up to the current one, which the checkpoint has not
/// reached: true when they were all read before the deadline.
///
/// Every counter write moves the user's mark to the hour of the write, so a user written in
/// every hour before the run's minute (or in the grace minutes after it) carries a mark the
/// completed passes never read: when its hour completes, the mark has already moved on to
/// an open hour. Reading the open hours as well visits that user in every run, at the cost
/// of a second visit (reads only) of a user whose hour is read open and again complete.
/// Keeping the first change's hour instead (`if_not_exists`) would need reconcile to clear
/// the mark after each visit (a table and an index write per user, versus reads here) and
/// would strand every mark written before the change. No checkpoint: a run stopped here
/// reads these hours again next time, and they are read again complete anyway.
async fn visit_open_hours(
    store: &dyn CounterStore,
    index: &dyn UserIndex,
    last_hour: &str,
    run: &Run,
    report: &mut ReconcileReport,
) -> Result<bool, StoreError> {
    let current = hour_of(run.now);
    let mut hour = next_hour(last_hour);
    while let Some(open) = hour.filter(|h| *h <= current) {
        report.open_hours.push(open.clone());
        let pass = Checkpoint::changed(open.clone());
        if !run_pass(store, index, None, pass, run, report)
            .await?
            .is_done()
        {
            return Ok(false);
        }
        hour = next_hour(&open);
    }
    Ok(true)
}

/// One whole pass with no deadline (by hand and in tests).
pub async fn reconcile_all(
    store: &dyn CounterStore,
    index: &dyn UserIndex,
    mode: Mode,
    policy: &BackoffPolicy,
) -> Result<ReconcileReport, StoreError> {
    let run = Run {
        mode,
        deadline: Instant::now() + std::time::Duration::from_secs(24 * 3600),
        now: jiff::Timestamp::now(),
        policy: *policy,
    };
    reconcile(store, index, run).await
}

/// Stores the checkpoint, retrying throttling.
async fn save(
    index: &dyn UserIndex,
    name: &str,
    json: &str,
    policy: &BackoffPolicy,
) -> Result<(), StoreError> {
    retrying(policy, "reconcile checkpoint", || {
        index.save_checkpoint(name, json)
    })
    .await
}

fn to_json(checkpoint: &Checkpoint) -> Result<String, StoreError> {
    serde_json::to_string(checkpoint).map_err(|e| StoreError::Fatal(e.to_string()))
}

/// Runs every unfinished partition of a pass concurrently, saving progress after each page
/// under the checkpoint `name` (none: not saved).
async fn run_pass(
    store: &dyn CounterStore,
    index: &dyn UserIndex,
    name: Option<&str>,
    checkpoint: Checkpoint,
    run: &Run,
    report: &mut ReconcileReport,
) -> Result<Checkpoint, StoreError> {
    let shared = Mutex::new((checkpoint.clone(), ReconcileReport::default()));
    // The change log lists a user once per stream batch that changed them, in any of the
    // hour's shards: a busy user is in many items. One visit per pass is enough.
    let visited = std::sync::Mutex::new(std::collections::HashSet::new());
    let parts = checkpoint
        .parts
        .iter()
        .enumerate()
        .filter_map(|(i, (set, state))| match state {
            PartState::Pending(cursor) => Some((i, set.clone(), cursor.clone())),
            PartState::Done => None,
        });
    let results = join_all(parts.map(|(i, set, cursor)| {
        run_partition(store, index, name, &shared, &visited, i, set, cursor, run)
    }))
    .await;
    let (checkpoint, found) = shared.into_inner();
    report.add(&found);
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(checkpoint)
}

/// Pages through one partition until it ends or the deadline passes.
#[allow(clippy::too_many_arguments)]
async fn run_partition(
    store: &dyn CounterStore,
    index: &dyn UserIndex,
    name: Option<&str>,
    shared: &Mutex<(Checkpoint, ReconcileReport)>,
    visited: &std::sync::Mutex<std::collections::HashSet<UserKey>>,
    part: usize,
    set: UserSet,
    mut cursor: Option<String>,
    run: &Run,
) -> Result<(), StoreError> {
    while Instant::now() < run.deadline {
        let page = retrying(&run.policy, "reconcile page", || {
            index.users_page(&set, cursor.clone())
        })
        .await?;
        let mut found = ReconcileReport {
            pages: 1,
            ..ReconcileReport::default()
        };
        for user in &page.users {
            // A full Scan lists each user once; keeping them would only cost memory.
            let first = matches!(set, UserSet::Segment { .. })
                || visited
                    .lock()
                    .map(|mut v| v.insert(user.clone()))
                    .unwrap_or(true);
            if first {
                reconcile_counted(store, user, &run.policy, &mut found).await;
            }
        }
        cursor = page.next;
        let mut guard = shared.lock().await;
        let (checkpoint, report) = &mut *guard;
        report.add(&found);
        checkpoint.parts[part].1 = match &cursor {
            Some(c) => PartState::Pending(Some(c.clone())),
            None => PartState::Done,
        };
        // Saved under the lock: checkpoints of concurrent partitions never overwrite a newer one.
        if let Some(name) = name {
            save(index, name, &to_json(checkpoint)?, &run.policy).await?;
        }
        if cursor.is_none() {
            return Ok(());
        }
    }
    Ok(())
}

/// Retries a store call that failed transiently (throttling), with backoff: page reads and
/// checkpoint writes are idempotent.
async fn retrying<T, F, Fut>(
    policy: &BackoffPolicy,
    what: &str,
    mut call: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut retry = policy.start();
    loop {
        match call().await {
            Err(e) if e.is_transient() && retry.wait().await => {
                tracing::warn!(error = %e, what, "retrying");
            }
            other => return other,
        }
    }
}

async fn reconcile_counted(
    store: &dyn CounterStore,
    user: &UserKey,
    policy: &BackoffPolicy,
    report: &mut ReconcileReport,
) {
    match reconcile_user(store, user, policy).await {
        Ok(r) => {
            report.users += 1;
            if r.drift != 0 {
                report.drifted_users += 1;
                report.drift += r.drift.unsigned_abs();
                tracing::warn!(tenant = %user.tenant, user = %user.user, drift = r.drift, "counter drift repaired");
            }
            report.repaired += u64::from(r.repaired);
        }
        Err(e) => {
            report.errors += 1;
            tracing::error!(tenant = %user.tenant, user = %user.user, error = %e, "could not reconcile");
        }
    }
}

/// Result of reconciling one user's TOTAL against its rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// TOTAL minus the sum of rooms before repair.
    pub drift: i64,
    pub repaired: bool,
}

/// Recomputes TOTAL from the rooms and repairs it under version conditions.
///
/// A Query is not isolated from concurrent transactions, so drift seen once may be a torn
/// read. Drift is acted on only when a second read finds it with TOTAL's version unchanged
/// since the first: every commit and mark-read bumps TOTAL's version, so an unchanged TOTAL
/// (checked again by the repair transaction) means the rooms read in between are exact.
pub async fn reconcile_user(
    store: &dyn CounterStore,
    user: &UserKey,
    policy: &BackoffPolicy,
) -> Result<Reconciled, StoreError> {
    let mut retry = policy.start();
    loop {
        let before = store.read_counters(user).await?;
        if before.drift() == 0 {
            return Ok(Reconciled {
                drift: 0,
                repaired: false,
            });
        }
        let mut counters = store.read_counters(user).await?;
        if counters.total.version == before.total.version && counters.drift() != 0 {
            counters.total = before.total;
            match store.repair_total(user, &counters).await {
                Ok(()) => {
                    return Ok(Reconciled {
                        drift: counters.drift(),
                        repaired: true,
                    })
                }
                Err(err) => backoff_or_fail(&mut retry, err).await?,
            }
        } else if !retry.wait().await {
            return Err(StoreError::Transient(
                "counters kept changing during reconcile".into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_step_across_days_and_the_last_complete_hour_waits_for_the_grace() {
        assert_eq!(next_hour("2026112923").as_deref(), Some("2026113000"));
        let now: jiff::Timestamp = "2026-11-29T22:01:00Z".parse().unwrap();
        assert_eq!(last_complete_hour(now), "2026112920", "21h ended 60 s ago");
        let now: jiff::Timestamp = "2026-11-29T22:03:00Z".parse().unwrap();
        assert_eq!(last_complete_hour(now), "2026112921");
    }

    use std::time::Duration;

    use crate::domain::counters::commit::apply_to_counters;
    use crate::domain::notification::{parse_notification, IdSource};
    use crate::fake::{Faults, InMemoryInbox};

    fn user(i: usize) -> UserKey {
        UserKey {
            tenant: crate::TenantId::parse("t", "t").unwrap(),
            user: crate::UserId::parse(format!("u{i}"), "u").unwrap(),
        }
    }

    async fn seed(store: &InMemoryInbox, users: usize) {
        let tenant = crate::TenantId::parse("t", "t").unwrap();
        let batch = (0..users)
            .map(|i| {
                let item = serde_json::json!({"user_id": format!("u{i}"), "room_id": "r", "title": "t", "body": "b", "channels": ["inbox"]});
                (i, parse_notification(&item, i, &tenant, IdSource::Generate, "2026-11-29T10:00:00Z".parse().unwrap()).unwrap())
            })
            .collect();
        apply_to_counters(store, batch, &BackoffPolicy::default()).await;
    }

    #[tokio::test]
    async fn a_full_pass_walks_every_page_of_every_segment_and_repairs() {
        let store = InMemoryInbox::default();
        seed(&store, 40).await;
        store.corrupt_total(&user(7), 5);
        store.corrupt_total(&user(31), 0);
        let r = reconcile_all(&store, &store, Mode::Full, &BackoffPolicy::default())
            .await
            .unwrap();
        assert_eq!(
            (r.users, r.drifted_users, r.drift, r.repaired),
            (40, 2, 5, 2)
        );
        assert!(r.pages >= 40 / 3, "pages of 3: {}", r.pages);
        assert!(r.complete);
        let again = reconcile_all(&store, &store, Mode::Full, &BackoffPolicy::default())
            .await
            .unwrap();
        assert_eq!(
            (again.users, again.drift),
            (40, 0),
            "a new pass starts over"
        );
    }

    #[tokio::test]
    async fn throttled_page_reads_are_retried_not_fatal() {
        let store = InMemoryInbox::default();
        seed(&store, 30).await;
        let flaky = InMemoryInbox::new(Faults {
            conflict: 0.3,
            ..Faults::default()
        });
        seed(&flaky, 30).await;
        // Pages come from the faulty store, counters from the healthy one.
        let r = reconcile_all(&store, &flaky, Mode::Full, &BackoffPolicy::default())
            .await
            .unwrap();
        assert_eq!((r.users, r.errors, r.complete), (30, 0, true));
    }

    #[tokio::test]
    async fn a_run_stopped_by_its_deadline_resumes_where_it_stopped() {
        // Every call takes 5 ms, the deadline comes after 20: each run reads a few pages.
        let store = InMemoryInbox::new(Faults {
            latency: Duration::from_millis(5),
            ..Faults::default()
        });
        seed(&store, 60).await;
        let (mut seen, mut runs) = (0, 0);
        loop {
            runs += 1;
            let run = Run {
                mode: Mode::Full,
                deadline: Instant::now() + Duration::from_millis(20),
                now: jiff::Timestamp::now(),
                policy: BackoffPolicy::default(),
            };
            let r = reconcile(&store, &store, run).await.unwrap();
            seen += r.users;
            if r.complete {
                break;
            }
            assert!(runs < 200, "no progress");
        }
        assert!(runs > 1, "the deadline stopped at least one run");
        assert_eq!(seen, 60, "every user exactly once across {runs} runs");
    }

    #[tokio::test]
    async fn the_hourly_run_reads_completed_hours_once_and_open_hours_again() {
        let store = InMemoryInbox::default();
        seed(&store, 12).await;
        let ten: jiff::Timestamp = "2026-11-29T10:30:00Z".parse().unwrap();
        let eleven: jiff::Timestamp = "2026-11-29T11:30:00Z".parse().unwrap();
        for i in 0..12 {
            store.mark_changed_at(&user(i), if i < 8 { ten } else { eleven });
        }
        store.corrupt_total(&user(9), 4);
        let at = |t: &str| Run {
            mode: Mode::Changed,
            deadline: Instant::now() + Duration::from_secs(60),
            now: t.parse().unwrap(),
            policy: BackoffPolicy::default(),
        };
        // At 11:05 only 10h is complete: its 8 users; then 11h, still open: its 4 users,
        // the drifted one among them.
        let r = reconcile(&store, &store, at("2026-11-29T11:05:00Z"))
            .await
            .unwrap();
        assert_eq!(
            (r.users, r.drift, r.hours.clone(), r.open_hours.clone()),
            (
                12,
                3,
                vec!["2026112910".to_owned()],
                vec!["2026112911".to_owned()]
            )
        );
        // At 12:05 the checkpoint goes on with 11h, now complete: its 4 users again; 12h is
        // open and empty.
        let r = reconcile(&store, &store, at("2026-11-29T12:05:00Z"))
            .await
            .unwrap();
        assert_eq!(
            (r.users, r.drift, r.hours.clone(), r.open_hours.clone()),
            (
                4,
                0,
                vec!["2026112911".to_owned()],
                vec!["2026112912".to_owned()]
            )
        );
        // Nothing new: nothing read, and the run is complete.
        let r = reconcile(&store, &store, at("2026-11-29T12:30:00Z"))
            .await
            .unwrap();
        assert_eq!((r.users, r.complete), (0, true));
    }

    /// The change log lists a busy user in many items, across the hour's shards: one visit
    /// per pass all the same.
    #[tokio::test]
    async fn a_user_logged_in_every_shard_is_visited_once_a_pass() {
        struct EveryShard(InMemoryInbox);
        #[async_trait::async_trait]
        impl UserIndex for EveryShard {
            async fn users_page(
                &self,
                set: &UserSet,
                cursor: Option<String>,
            ) -> Result<crate::ports::UsersPage, StoreError> {
                match set {
                    UserSet::Changed { .. } => Ok(crate::ports::UsersPage {
                        users: vec![user(1), user(1)],
                        next: None,
                    }),
                    other => self.0.users_page(other, cursor).await,
                }
            }
            async fn load_checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
                self.0.load_checkpoint(name).await
            }
            async fn save_checkpoint(&self, name: &str, json: &str) -> Result<(), StoreError> {
                self.0.save_checkpoint(name, json).await
            }
        }
        let index = EveryShard(InMemoryInbox::default());
        let store = InMemoryInbox::default();
        seed(&store, 2).await;
        let run = Run {
            mode: Mode::Changed,
            deadline: Instant::now() + Duration::from_secs(60),
            now: "2026-11-29T11:30:00Z".parse().unwrap(),
            policy: BackoffPolicy::default(),
        };
        let r = reconcile(&store, &index, run).await.unwrap();
        // One completed hour and one open: two passes, one visit each.
        assert_eq!((r.hours.len(), r.open_hours.len()), (1, 1));
        assert_eq!(r.users, 2, "{r:?}");
    }

    /// Regression: every write moves the mark to the hour of the write, so a user written in
    /// every hour before the run's minute (or in the last grace minutes of an hour, for a
    /// run early in the next) never had the mark of a completed hour when it was read.
    #[tokio::test]
    async fn a_user_written_every_hour_before_the_run_is_reconciled_in_every_run() {
        let hour = |h: i64, secs: i64| -> jiff::Timestamp {
            let start: jiff::Timestamp = "2026-11-29T00:00:00Z".parse().unwrap();
            start + jiff::SignedDuration::from_secs(h * 3600 + secs)
        };
        // (when the user is written, when reconcile runs), relative to each hour.
        for (write, run_at) in [(60, 300), (-30, 60), (3500, 3599)] {
            let store = InMemoryInbox::default();
            seed(&store, 1).await;
            for h in 10..16 {
                store.mark_changed_at(&user(0), hour(h, write));
                // Drift only this run can find: one more unread than the single room holds.
                store.corrupt_total(&user(0), 2);
                let run = Run {
                    mode: Mode::Changed,
                    deadline: Instant::now() + Duration::from_secs(60),
                    now: hour(h, run_at),
                    policy: BackoffPolicy::default(),
                };
                let r = reconcile(&store, &store, run).await.unwrap();
                assert_eq!(
                    (r.drifted_users, r.repaired, r.complete),
                    (1, 1, true),
                    "written at {write} s, run at {run_at} s into hour {h}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn a_batch_is_logged_once_per_user_in_one_shard_the_same_way_every_time() {
        let at: jiff::Timestamp = "2026-12-06T10:59:59Z".parse().unwrap();
        let users: Vec<UserKey> = (0..2_500).map(user).chain((0..10).map(user)).collect();
        let entries = change_log_entries("4100000000001234", users.clone(), at);
        assert_eq!(entries.len(), 3, "1,000 users an item");
        let logged: Vec<&UserKey> = entries.iter().flat_map(|e| &e.users).collect();
        assert_eq!(logged.len(), 2_500, "each user once");
        assert!(entries.iter().all(|e| e.hour == "2026120610"));
        assert!(entries.iter().all(|e| e.shard == entries[0].shard));
        assert_eq!(entries[2].id, "4100000000001234#2");
        assert_eq!(change_log_entries("4100000000001234", users, at), entries);
        let shards: std::collections::HashSet<u32> = (0..200)
            .map(|b| change_log_entries(&b.to_string(), [user(1)], at)[0].shard)
            .collect();
        assert_eq!(shards.len(), CHANGE_SHARDS as usize, "batches spread");
    }

    #[test]
    fn change_marks_spread_users_over_the_shards() {
        let at: jiff::Timestamp = "2026-11-29T22:01:00Z".parse().unwrap();
        let shards: std::collections::BTreeSet<String> = (0..200)
            .map(|i| {
                let user = UserKey {
                    tenant: crate::TenantId::parse("t", "t").unwrap(),
                    user: crate::UserId::parse(format!("u{i}"), "u").unwrap(),
                };
                change_mark(&user, at)
            })
            .collect();
        assert_eq!(shards.len(), CHANGE_SHARDS as usize);
        assert!(shards.iter().all(|s| s.starts_with("2026112922#")));
    }
}
