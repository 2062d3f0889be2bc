//! Delivery jobs (one per notification and outside channel) and the rules that decide
//! whether, where and when a job is sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::contact::Contact;
use super::ids::{NotificationId, RoomId, TenantId, UserId};
use super::notification::{Category, Channel, Notification};

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
    pub created_at: String,
    /// The notification's correlation id, for the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl DeliveryJob {
    /// One job per outside channel the notification asks for (inbox needs none).
    pub fn for_notification(n: &Notification) -> Vec<DeliveryJob> {
        n.channels
            .iter()
            .filter(|c| **c != Channel::Inbox)
            .map(|&channel| DeliveryJob {
                tenant: n.tenant.clone(),
                notification_id: n.id.clone(),
                user_id: n.user_id.clone(),
                room_id: n.room_id.clone(),
                channel,
                category: n.category,
                title: n.title.clone(),
                body: n.body.clone(),
                data: n.data.clone(),
                created_at: n.created_at.clone(),
                correlation_id: n.correlation_id.clone(),
            })
            .collect()
    }

    /// Unique per notification and channel: a queue batch entry id and a dedup key.
    pub fn key(&self) -> String {
        format!("{}-{}", self.notification_id, self.channel.as_str())
    }
}

/// What to do with one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send to these addresses (one email/phone, or every push endpoint).
    Send(Vec<String>),
    /// Do not send, for good (recorded as skipped with the reason).
    Skip(String),
    /// Quiet hours: try again after this many seconds.
    Defer(u32),
}

/// Applies preferences, addresses and quiet hours (marketing only) to a job.
pub fn decide(contact: Option<&Contact>, job: &DeliveryJob, now: jiff::Timestamp) -> Decision {
    let Some(contact) = contact else {
        return Decision::Skip("user has no contact".into());
    };
    if !contact.allows(job.channel, job.category) {
        return Decision::Skip(format!(
            "user opted out of {} on {}",
            category_name(job.category),
            job.channel.as_str()
        ));
    }
    let addresses: Vec<String> = match job.channel {
        Channel::Email => contact.email.iter().cloned().collect(),
        Channel::Sms => contact.phone.iter().cloned().collect(),
        Channel::Push => contact.push.clone(),
        Channel::Inbox => return Decision::Skip("inbox needs no delivery".into()),
    };
    if addresses.is_empty() {
        return Decision::Skip(format!("no {} address", job.channel.as_str()));
    }
    if job.category == Category::Marketing {
        if let Some(wait) = contact.quiet_for(now) {
            return Decision::Defer(wait);
        }
    }
    Decision::Send(addresses)
}

fn category_name(c: Category) -> &'static str {
    match c {
        Category::Transactional => "transactional",
        Category::Marketing => "marketing",
    }
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
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide(None, &job(Channel::Email, Category::Transactional), noon()),
            Decision::Skip(_)
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
            "now",
        )
        .unwrap();
        let channels: Vec<Channel> = DeliveryJob::for_notification(&n)
            .iter()
            .map(|j| j.channel)
            .collect();
        assert_eq!(channels, vec![Channel::Email, Channel::Push]);
    }
}
