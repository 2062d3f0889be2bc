//! The fan-out's decisions, with no I/O: what a page enqueues now and with which delay,
//! whom it holds for a later release and which schedules that takes, what its record says,
//! what follows it; and what one part of a release sends. The campaigns function reads the
//! inputs, calls these, and carries the answers out (`functions/campaigns`).

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::model::{Campaign, CampaignWork};
use super::zone::local_instant;
use super::{HOLD_BEYOND_SECONDS, MAX_DELAY_SECONDS, RELEASE_LEAD_SECONDS};
use crate::domain::ids::{CampaignId, UserId};
use crate::domain::notification::Notification;

/// One page of a campaign's fan-out, recorded once it is enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageRecord {
    pub page: u32,
    /// Users read from the audience for this page (held ones included).
    pub users: u64,
    /// Enqueued now (the held are counted when released).
    pub enqueued: u64,
    /// Lines that were not a valid user id.
    pub invalid: u64,
    /// Where the next page starts, and whether there is one.
    pub next_cursor: u64,
    pub last: bool,
    /// Recipients waiting for a release at an instant, as (slot, user).
    pub held: Vec<(Timestamp, Vec<(u32, UserId)>)>,
    /// The page after this one is on the queue.
    pub next_sent: bool,
}

/// One page's recipients held for one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGroup {
    pub key: String,
    pub page: u32,
    /// (slot, user).
    pub recipients: Vec<(u32, UserId)>,
    /// Already released (by an earlier attempt of the same release step).
    pub released: bool,
}

/// One recipient of a page, and where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user: UserId,
    pub slot: u32,
    /// From the contact (`local_time` only).
    pub timezone: Option<String>,
}

/// What a page does with its recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PagePlan {
    /// Enqueue now, each with this SQS delay in seconds.
    pub now: Vec<(Recipient, u32)>,
    /// Hold until a release at this instant (minute precision).
    pub held: BTreeMap<Timestamp, Vec<Recipient>>,
}

/// Plans a page at `now`: with a rate, the page's users are spread one `1/rate` apart; with
/// `local_time`, each waits for their own instant, up to `HOLD_BEYOND_SECONDS` as a delay and
/// beyond that held for a release.
pub fn plan_page(campaign: &Campaign, recipients: Vec<Recipient>, now: Timestamp) -> PagePlan {
    let mut plan = PagePlan::default();
    let wall = campaign.local_time.then_some(campaign.send_at_wall);
    for (index, recipient) in recipients.into_iter().enumerate() {
        let pace = campaign
            .rate_per_second
            .map_or(0, |rate| (index as u64 / u64::from(rate.max(1))) as i64);
        let wait = match wall {
            Some(wall) => {
                let at = local_instant(wall, recipient.timezone.as_deref(), &campaign.timezone);
                let seconds = now.duration_until(at).as_secs();
                if seconds > HOLD_BEYOND_SECONDS {
                    let minute = at
                        .round(
                            jiff::TimestampRound::new()
                                .smallest(jiff::Unit::Minute)
                                .mode(jiff::RoundMode::Floor),
                        )
                        .unwrap_or(at);
                    plan.held.entry(minute).or_default().push(recipient);
                    continue;
                }
                seconds.max(0)
            }
            None => 0,
        };
        let delay = (wait + pace).clamp(0, i64::from(MAX_DELAY_SECONDS)) as u32;
        plan.now.push((recipient, delay));
    }
    plan
}

/// The SQS delay of a held recipient released at `now` for `at`.
pub fn release_delay(at: Timestamp, now: Timestamp) -> u32 {
    now.duration_until(at)
        .as_secs()
        .clamp(0, i64::from(MAX_DELAY_SECONDS)) as u32
}

/// Delay before the page after one of `users` users: at a set rate, the time the page's
/// users take to go out, so a campaign never runs ahead of its rate.
pub fn next_page_delay(campaign: &Campaign, users: usize) -> u32 {
    campaign.rate_per_second.map_or(0, |rate| {
        (users as u64)
            .div_ceil(u64::from(rate.max(1)))
            .min(u64::from(MAX_DELAY_SECONDS)) as u32
    })
}

/// The name of the one-time schedule that releases `campaign`'s users held for `at`
/// (schedule names are unique: creating it twice is recognised).
pub fn release_schedule_name(campaign: &CampaignId, at: Timestamp) -> String {
    format!("herald-{}-r{}", campaign, at.as_second())
}

/// The name of the schedule that starts `campaign`.
pub fn start_schedule_name(campaign: &CampaignId) -> String {
    format!("herald-{campaign}")
}

/// The SQS delay of the `index`th recipient of a group at the campaign's rate (0 without).
pub fn paced_delay(campaign: &Campaign, index: usize) -> u32 {
    campaign
        .rate_per_second
        .map_or(0, |rate| (index as u64 / u64::from(rate.max(1))) as u32)
}

/// The next users of the audience, as the page consumer read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudiencePage {
    pub users: Vec<UserId>,
    /// Lines that were not a user id (skipped, counted).
    pub invalid: u64,
    pub next_cursor: u64,
    /// The audience ends with these users.
    pub last: bool,
}

/// A page's users as recipients: their slots, and for `local_time` their time zones
/// (`zone_of`: from their contacts).
pub fn recipients(
    users: Vec<UserId>,
    mut zone_of: impl FnMut(&UserId) -> Option<String>,
) -> Vec<Recipient> {
    users
        .into_iter()
        .enumerate()
        .map(|(slot, user)| Recipient {
            timezone: zone_of(&user),
            user,
            slot: slot as u32,
        })
        .collect()
}

/// A campaign notification to put on the marketing queue, `delay` seconds from now.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueue {
    /// Also the SQS batch entry id: unique within the page.
    pub slot: u32,
    pub notification: Notification,
    pub delay: u32,
}

/// A one-time schedule that puts `work` on the campaign queue at `fire`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseSchedule {
    pub name: String,
    pub fire: Timestamp,
    pub work: CampaignWork,
}

/// Everything one page does, decided before any of it happens. Carried out in this order:
/// enqueue, schedule, then record (a crash in between redoes the page, and the
/// deterministic notification ids make that a no-op downstream).
#[derive(Debug, Clone, PartialEq)]
pub struct PageStep {
    pub enqueue: Vec<Enqueue>,
    pub schedules: Vec<ReleaseSchedule>,
    pub record: PageRecord,
}

/// What page `page` of `campaign` does at `now` with the users it read.
pub fn page_step(
    campaign: &Campaign,
    page: u32,
    audience: AudiencePage,
    recipients: Vec<Recipient>,
    now: Timestamp,
) -> PageStep {
    let users = recipients.len() as u64;
    let plan = plan_page(campaign, recipients, now);
    let enqueue: Vec<Enqueue> = plan
        .now
        .into_iter()
        .map(|(r, delay)| Enqueue {
            slot: r.slot,
            notification: campaign.notification_for(r.user, page, r.slot, now),
            delay,
        })
        .collect();
    let schedules = plan
        .held
        .keys()
        .map(|at| ReleaseSchedule {
            name: release_schedule_name(&campaign.id, *at),
            // Early by the lead, never in the past: the messages wait out the rest as a delay.
            fire: (*at - jiff::SignedDuration::from_secs(RELEASE_LEAD_SECONDS)).max(now),
            work: CampaignWork::Release {
                tenant: campaign.tenant.clone(),
                campaign: campaign.id.clone(),
                at: *at,
                after: None,
            },
        })
        .collect();
    let record = PageRecord {
        page,
        users,
        enqueued: enqueue.len() as u64,
        invalid: audience.invalid,
        next_cursor: audience.next_cursor,
        last: audience.last,
        held: plan
            .held
            .into_iter()
            .map(|(at, rs)| (at, rs.into_iter().map(|r| (r.slot, r.user)).collect()))
            .collect(),
        next_sent: false,
    };
    PageStep {
        enqueue,
        schedules,
        record,
    }
}

/// What follows a page, from its record as stored (this attempt's, or an earlier one's).
#[derive(Debug, Clone, PartialEq)]
pub enum AfterPage {
    /// The audience ended here: the fan-out is over.
    FannedOut,
    /// The next page was queued already (by an earlier attempt): nothing to do.
    NextQueued,
    /// Queue this (once the step is claimed), `delay` seconds from now.
    Next { work: CampaignWork, delay: u32 },
}

pub fn after_page(campaign: &Campaign, recorded: &PageRecord) -> AfterPage {
    if recorded.last {
        return AfterPage::FannedOut;
    }
    if recorded.next_sent {
        return AfterPage::NextQueued;
    }
    AfterPage::Next {
        work: CampaignWork::Page {
            tenant: campaign.tenant.clone(),
            campaign: campaign.id.clone(),
            page: recorded.page + 1,
            cursor: recorded.next_cursor,
        },
        delay: next_page_delay(campaign, recorded.users as usize),
    }
}

/// One part of a release: the group's notifications (none if an earlier attempt sent
/// them), and the next part, queued after the group's time has passed at the rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseStep {
    pub enqueue: Vec<Enqueue>,
    pub next: CampaignWork,
    pub next_delay: u32,
}

/// What releasing `group` (held for `at`) does at `now`.
pub fn release_step(
    campaign: &Campaign,
    at: Timestamp,
    group: &HeldGroup,
    now: Timestamp,
) -> ReleaseStep {
    let wait = release_delay(at, now);
    let enqueue = if group.released {
        Vec::new()
    } else {
        group
            .recipients
            .iter()
            .enumerate()
            .map(|(index, (slot, user))| Enqueue {
                slot: *slot,
                notification: campaign.notification_for(user.clone(), group.page, *slot, now),
                delay: wait
                    .saturating_add(paced_delay(campaign, index))
                    .min(MAX_DELAY_SECONDS),
            })
            .collect()
    };
    ReleaseStep {
        enqueue,
        next: CampaignWork::Release {
            tenant: campaign.tenant.clone(),
            campaign: campaign.id.clone(),
            at,
            after: Some(group.key.clone()),
        },
        next_delay: next_page_delay(campaign, group.recipients.len()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::campaign::testing::*;
    use crate::domain::campaign::PAGE_USERS;

    fn zoned(zones: &[Option<&str>]) -> Vec<Recipient> {
        zones
            .iter()
            .enumerate()
            .map(|(i, z)| Recipient {
                user: UserId::parse(format!("u{i}"), "u").unwrap(),
                slot: i as u32,
                timezone: z.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn a_page_waits_for_each_recipients_local_time() {
        let c = campaign(json!({"send_at": "2026-03-29T09:00:00Z", "local_time": true}));
        // 06:55 UTC: Berlin's 09:00 (07:00Z) is 5 minutes away, Tokyo's has passed, New
        // York's (13:00Z) is hours away.
        let at: Timestamp = "2026-03-29T06:55:00Z".parse().unwrap();
        let plan = plan_page(
            &c,
            zoned(&[
                Some("Europe/Berlin"),
                Some("Asia/Tokyo"),
                Some("America/New_York"),
            ]),
            at,
        );
        let now: Vec<(u32, u32)> = plan.now.iter().map(|(r, d)| (r.slot, *d)).collect();
        assert_eq!(now, vec![(0, 300), (1, 0)]);
        let held: Vec<(String, Vec<u32>)> = plan
            .held
            .iter()
            .map(|(t, rs)| (t.to_string(), rs.iter().map(|r| r.slot).collect()))
            .collect();
        assert_eq!(held, vec![("2026-03-29T13:00:00Z".to_owned(), vec![2])]);
    }

    #[test]
    fn a_rate_spreads_a_page_and_paces_the_next() {
        let c = campaign(json!({"rate_per_second": 2}));
        assert_eq!(c.page_users(), 120);
        let plan = plan_page(&c, zoned(&[None; 5]), now());
        let delays: Vec<u32> = plan.now.iter().map(|(_, d)| *d).collect();
        assert_eq!(delays, vec![0, 0, 1, 1, 2]);
        assert_eq!(next_page_delay(&c, 120), 60);
        let unpaced = campaign(json!({}));
        assert_eq!(unpaced.page_users(), PAGE_USERS);
        assert_eq!(next_page_delay(&unpaced, PAGE_USERS), 0);
    }

    /// A page step enqueues who is due (with their delays), schedules one release per held
    /// instant a lead ahead of it, and records exactly that.
    #[test]
    fn a_page_step_enqueues_the_due_schedules_the_held_and_records_both() {
        let c = campaign(json!({"send_at": "2026-03-29T09:00:00Z", "local_time": true}));
        let at: Timestamp = "2026-03-29T06:55:00Z".parse().unwrap();
        let users: Vec<UserId> = ["b", "t", "n"]
            .iter()
            .map(|u| UserId::parse(*u, "u").unwrap())
            .collect();
        let zones = [
            ("b", "Europe/Berlin"),
            ("t", "Asia/Tokyo"),
            ("n", "America/New_York"),
        ];
        let audience = AudiencePage {
            users: users.clone(),
            invalid: 2,
            next_cursor: 40,
            last: false,
        };
        let recipients = recipients(users, |u| {
            zones
                .iter()
                .find(|(id, _)| *id == u.as_str())
                .map(|(_, zone)| (*zone).to_owned())
        });
        let step = page_step(&c, 7, audience, recipients, at);
        let enqueued: Vec<(u32, &str, u32)> = step
            .enqueue
            .iter()
            .map(|e| (e.slot, e.notification.user_id.as_str(), e.delay))
            .collect();
        assert_eq!(enqueued, vec![(0, "b", 300), (1, "t", 0)]);
        let first = &step.enqueue[0].notification;
        assert_eq!(first.id, c.notification_id(), "one id for every recipient");
        assert_eq!(
            first.campaign.as_ref().map(|r| (r.page, r.slot)),
            Some((7, 0))
        );
        assert_eq!(step.schedules.len(), 1);
        let schedule = &step.schedules[0];
        assert_eq!(
            schedule.fire.to_string(),
            "2026-03-29T12:55:00Z",
            "five minutes early"
        );
        assert_eq!(
            schedule.work,
            CampaignWork::Release {
                tenant: c.tenant.clone(),
                campaign: c.id.clone(),
                at: "2026-03-29T13:00:00Z".parse().unwrap(),
                after: None,
            }
        );
        let n = UserId::parse("n", "u").unwrap();
        assert_eq!(
            step.record,
            PageRecord {
                page: 7,
                users: 3,
                enqueued: 2,
                invalid: 2,
                next_cursor: 40,
                last: false,
                held: vec![("2026-03-29T13:00:00Z".parse().unwrap(), vec![(2, n)])],
                next_sent: false,
            }
        );
    }

    /// After a page: the end of the audience ends the fan-out; a next page already queued is
    /// not queued again; otherwise the next page starts at the recorded cursor, paced.
    #[test]
    fn after_a_page_comes_the_next_once_or_the_end() {
        let c = campaign(json!({"rate_per_second": 10}));
        let record = PageRecord {
            page: 3,
            users: 120,
            next_cursor: 4_096,
            ..PageRecord::default()
        };
        assert_eq!(
            after_page(&c, &record),
            AfterPage::Next {
                work: CampaignWork::Page {
                    tenant: c.tenant.clone(),
                    campaign: c.id.clone(),
                    page: 4,
                    cursor: 4_096,
                },
                delay: 12,
            }
        );
        let queued = PageRecord {
            next_sent: true,
            ..record.clone()
        };
        assert_eq!(after_page(&c, &queued), AfterPage::NextQueued);
        let last = PageRecord {
            last: true,
            ..record
        };
        assert_eq!(after_page(&c, &last), AfterPage::FannedOut);
    }

    /// A release at a rate spreads its group one `1/rate` apart after the instant's wait,
    /// never beyond SQS's 15 minutes, and queues the next part after the group's duration; a
    /// group an earlier attempt released sends nothing again but still queues the next part.
    #[test]
    fn a_release_step_paces_its_group_and_queues_the_next_part() {
        let c = campaign(json!({"rate_per_second": 2}));
        let now: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        let at: Timestamp = "2026-03-01T12:01:40Z".parse().unwrap();
        let mut group = HeldGroup {
            key: "H#k#0".into(),
            page: 5,
            recipients: (0..6)
                .map(|i| (i, UserId::parse(format!("u{i}"), "u").unwrap()))
                .collect(),
            released: false,
        };
        let step = release_step(&c, at, &group, now);
        let delays: Vec<u32> = step.enqueue.iter().map(|e| e.delay).collect();
        assert_eq!(delays, vec![100, 100, 101, 101, 102, 102]);
        assert!(step
            .enqueue
            .iter()
            .all(|e| e.notification.campaign.as_ref().map(|r| r.page) == Some(5)));
        assert_eq!(
            step.next,
            CampaignWork::Release {
                tenant: c.tenant.clone(),
                campaign: c.id.clone(),
                at,
                after: Some("H#k#0".into()),
            }
        );
        assert_eq!(step.next_delay, 3);
        let far: Timestamp = "2026-03-01T13:00:00Z".parse().unwrap();
        let capped = release_step(&c, far, &group, now);
        assert!(capped.enqueue.iter().all(|e| e.delay == MAX_DELAY_SECONDS));
        group.released = true;
        let again = release_step(&c, at, &group, now);
        assert!(again.enqueue.is_empty());
        assert_eq!(again.next, step.next);
    }
}
