//! Delivery jobs (one per notification and outside channel) and the rules that decide
//! whether, where and when a job is sent.

pub mod outcome;
pub mod text;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::contact::Contact;
use super::digest::DigestRef;
use super::ids::{NotificationId, RoomId, TenantId, UserId};
use super::notification::{Category, Channel, Notification};
use super::workflow::Condition;

/// What the inbox-writer puts on the delivery queue once a notification is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub tenant: TenantId,
    pub notification_id: NotificationId,
    pub user_id: UserId,
    pub room_id: RoomId,
    pub channel: Channel,
    #[serde(default)]
    pub category: Category,
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(with = "super::time::as_millis")]
    pub created_at: jiff::Timestamp,
    /// The notification's correlation id, for the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// How often a throttled provider or store has put this job back with a delay.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// When the first throttled attempt was (RFC 3339): throttling gives up only after
    /// the configured hours from here, never by counting receives.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::time::as_millis_option"
    )]
    pub retrying_since: Option<jiff::Timestamp>,
    /// Push only: the devices still to reach, when some already got it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    /// Sent by a campaign (see `Notification::campaign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<super::ids::CampaignRef>,
    /// Its delivery records are keyed per user (campaign jobs made by this version on): a
    /// job queued by an earlier version keeps the layout its claim was made in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_per_user: bool,
    /// A workflow step's: not before this instant (accepted + the step's delay).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::time::as_millis_option"
    )]
    pub due_at: Option<jiff::Timestamp>,
    /// A workflow step's condition, checked when the job is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<Condition>,
    /// The notification's key in its user's message log, where `unless: read` looks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
    /// A digest's delivery: when due, its window is sealed and its events become the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestRef>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Seconds a throttled job waits before its next attempt: doubling from 2 s, capped at SQS's
/// longest message delay (15 min), with jitter so a burst of throttled jobs spreads out.
pub fn throttled_delay(attempt: u32) -> u32 {
    let ceiling = 2u32.saturating_pow(attempt.saturating_add(1)).min(900);
    let floor = ceiling / 2;
    floor + rand::random_range(0..=ceiling - floor)
}

impl DeliveryJob {
    /// One job per outside channel the notification asks for (inbox needs none).
    pub fn for_notification(n: &Notification) -> Vec<DeliveryJob> {
        n.channels
            .iter()
            .filter(|c| **c != Channel::Inbox)
            .map(|&channel| (channel, n.step(channel)))
            .map(|(channel, step)| DeliveryJob {
                tenant: n.tenant.clone(),
                notification_id: n.id.clone(),
                user_id: n.user_id.clone(),
                room_id: n.room_id.clone(),
                channel,
                category: n.category,
                title: n.title.clone(),
                body: n.body.clone(),
                data: n.data.clone(),
                created_at: n.created_at,
                correlation_id: n.correlation_id.clone(),
                attempt: 0,
                retrying_since: None,
                endpoints: None,
                campaign: n.campaign.clone(),
                record_per_user: n.campaign.is_some(),
                due_at: (step.delay_seconds > 0).then(|| {
                    n.created_at + jiff::SignedDuration::from_secs(step.delay_seconds.into())
                }),
                unless: step.unless,
                log_key: step.unless.map(|_| n.log_key().to_owned()),
                digest: None,
            })
            .collect()
    }

    /// The jobs of the channels `n` does not digest (every one, when it has no digest).
    pub fn undigested(n: &Notification) -> Vec<DeliveryJob> {
        Self::for_notification(n)
            .into_iter()
            .filter(|job| n.digest_for(job.channel).is_none())
            .collect()
    }

    /// The jobs of a digest window `n` opened: one per digested channel, due when the window
    /// closes, and not before the channel's step is due.
    pub fn for_digest(
        n: &Notification,
        window: &str,
        closes_at: jiff::Timestamp,
    ) -> Vec<DeliveryJob> {
        Self::for_notification(n)
            .into_iter()
            .filter_map(|job| {
                let digest = n.digest_for(job.channel)?;
                Some(DeliveryJob {
                    due_at: Some(job.due_at.map_or(closes_at, |step| step.max(closes_at))),
                    digest: Some(DigestRef {
                        digest,
                        window: window.to_owned(),
                    }),
                    ..job
                })
            })
            .collect()
    }

    /// The one-time schedule that holds this job until it is due: the same name for every
    /// copy (a redelivered notification re-creates it and meets the one that exists), within
    /// Scheduler's 64 characters of `[0-9A-Za-z_.-]`.
    pub fn schedule_name(&self) -> String {
        let who = format!(
            "{}\n{}\n{}",
            self.tenant, self.user_id, self.notification_id
        );
        let hash = super::notification::content_hash(who.as_bytes());
        let salted = super::notification::content_hash(format!("herald\n{who}").as_bytes());
        format!("step-{hash:016x}{salted:016x}-{}", self.channel.as_str())
    }

    /// Seconds until the job is due at `now` (0: due).
    pub fn wait_seconds(&self, now: jiff::Timestamp) -> u32 {
        self.due_at.map_or(0, |due| {
            let ms = due.as_millisecond() - now.as_millisecond();
            u32::try_from((ms.max(0) + 999) / 1000).unwrap_or(u32::MAX)
        })
    }

    /// Unique per notification and channel: a queue batch entry id and a dedup key.
    pub fn key(&self) -> String {
        format!("{}-{}", self.notification_id, self.channel.as_str())
    }

    /// What makes two jobs the same delivery: tenant, user, notification and channel.
    pub fn identity(&self) -> (TenantId, UserId, NotificationId, Channel) {
        (
            self.tenant.clone(),
            self.user_id.clone(),
            self.notification_id.clone(),
            self.channel,
        )
    }
}

/// Why a notification was not sent on purpose (campaign progress counts each apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its campaign was cancelled before it went out.
    Cancelled,
    /// The user opted out (category or channel preferences, an unsubscribe, STOP).
    OptedOut,
    /// The address is on the suppression list (bounces, complaints).
    Suppressed,
    /// No contact or no address for the channel.
    NoAddress,
    /// A workflow step `unless: read`: the notification was read by the time it was due.
    Read,
    /// A frequency cap of the tenant's was full for this user, category and channel.
    Capped,
    /// A workflow step `unless: seen`: the notification was seen by the time it was due.
    Seen,
}

impl SkipReason {
    pub const ALL: [SkipReason; 7] = [
        SkipReason::Cancelled,
        SkipReason::OptedOut,
        SkipReason::Suppressed,
        SkipReason::NoAddress,
        SkipReason::Read,
        SkipReason::Capped,
        SkipReason::Seen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Cancelled => "cancelled",
            SkipReason::OptedOut => "opted_out",
            SkipReason::Suppressed => "suppressed",
            SkipReason::NoAddress => "no_address",
            SkipReason::Read => "read",
            SkipReason::Capped => "capped",
            SkipReason::Seen => "seen",
        }
    }
}

/// What to do with one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send to these addresses (one email/phone, or every push endpoint).
    Send(Vec<String>),
    /// Do not send, for good (recorded as skipped with the reason).
    Skip(SkipReason, String),
    /// Quiet hours: try again after this many seconds.
    Defer(u32),
}

/// Applies preferences, addresses and quiet hours (marketing only) to a job.
pub fn decide(contact: Option<&Contact>, job: &DeliveryJob, now: jiff::Timestamp) -> Decision {
    let Some(contact) = contact else {
        return Decision::Skip(SkipReason::NoAddress, "user has no contact".into());
    };
    if !contact.allows(job.channel, job.category) {
        return Decision::Skip(
            SkipReason::OptedOut,
            format!(
                "user opted out of {} on {}",
                job.category.as_str(),
                job.channel.as_str()
            ),
        );
    }
    let addresses: Vec<String> = match job.channel {
        Channel::Email => contact.email.iter().cloned().collect(),
        Channel::Sms => contact.phone.iter().cloned().collect(),
        // A push job that already reached some devices names the ones left.
        Channel::Push => match &job.endpoints {
            Some(left) => contact
                .push
                .iter()
                .filter(|e| left.contains(e))
                .cloned()
                .collect(),
            None => contact.push.clone(),
        },
        Channel::Inbox => {
            return Decision::Skip(SkipReason::NoAddress, "inbox needs no delivery".into())
        }
    };
    if addresses.is_empty() {
        return Decision::Skip(
            SkipReason::NoAddress,
            format!("no {} address", job.channel.as_str()),
        );
    }
    if job.category == Category::Marketing {
        if let Some(wait) = contact.quiet_for(now) {
            return Decision::Defer(wait);
        }
    }
    Decision::Send(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::QuietHours;
    use crate::fake::fixtures::{delivery_job as job, noon};

    #[test]
    fn sends_to_the_channel_address() {
        let c = Contact {
            email: Some("a@b.co".into()),
            ..Contact::default()
        };
        assert_eq!(
            decide(
                Some(&c),
                &job(Channel::Email, Category::Transactional),
                noon()
            ),
            Decision::Send(vec!["a@b.co".into()])
        );
        assert!(matches!(
            decide(
                Some(&c),
                &job(Channel::Sms, Category::Transactional),
                noon()
            ),
            Decision::Skip(..)
        ));
        assert!(matches!(
            decide(None, &job(Channel::Email, Category::Transactional), noon()),
            Decision::Skip(..)
        ));
    }

    #[test]
    fn quiet_hours_defer_marketing_but_not_transactional() {
        let c = Contact {
            email: Some("a@b.co".into()),
            quiet_hours: Some(QuietHours {
                start: "11:00".into(),
                end: "13:00".into(),
            }),
            ..Contact::default()
        };
        assert_eq!(
            decide(Some(&c), &job(Channel::Email, Category::Marketing), noon()),
            Decision::Defer(3600)
        );
        assert!(matches!(
            decide(
                Some(&c),
                &job(Channel::Email, Category::Transactional),
                noon()
            ),
            Decision::Send(_)
        ));
    }

    #[test]
    fn jobs_cover_outside_channels_only() {
        let n = crate::domain::notification::parse_notification(
            &serde_json::json!({"user_id":"u","room_id":"r","title":"t","body":"b","channels":["inbox","email","push"]}),
            0,
            &TenantId::parse("t", "t").unwrap(),
            crate::domain::notification::IdSource::Generate,
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let channels: Vec<Channel> = DeliveryJob::for_notification(&n)
            .iter()
            .map(|j| j.channel)
            .collect();
        assert_eq!(channels, vec![Channel::Email, Channel::Push]);
    }
}
