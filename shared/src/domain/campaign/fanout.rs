//! The fan-out's decisions, with no I/O: who of a page goes now and with which delay, who
//! is held for a later release, and how fast the next page follows.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::model::Campaign;
use super::zone::local_instant;
use super::{HOLD_BEYOND_SECONDS, MAX_DELAY_SECONDS};
use crate::domain::ids::{CampaignId, UserId};

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
    let wall = campaign.wall().filter(|_| campaign.local_time);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::campaign::testing::*;
    use crate::domain::campaign::PAGE_USERS;

    fn recipients(zones: &[Option<&str>]) -> Vec<Recipient> {
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
            recipients(&[
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
        let plan = plan_page(&c, recipients(&[None; 5]), now());
        let delays: Vec<u32> = plan.now.iter().map(|(_, d)| *d).collect();
        assert_eq!(delays, vec![0, 0, 1, 1, 2]);
        assert_eq!(next_page_delay(&c, 120), 60);
        let unpaced = campaign(json!({}));
        assert_eq!(unpaced.page_users(), PAGE_USERS);
        assert_eq!(next_page_delay(&unpaced, PAGE_USERS), 0);
    }
}
