//! Sample values for tests.

use crate::domain::delivery::DeliveryJob;
use crate::domain::notification::{Category, Channel};
use crate::{NotificationId, RoomId, TenantId, UserId};

/// A job for notification n1 of user u1 (tenant t1, room r1).
pub fn delivery_job(channel: Channel, category: Category) -> DeliveryJob {
    DeliveryJob {
        tenant: TenantId::parse("t1", "tenant").expect("a valid id"),
        notification_id: NotificationId::parse("n1", "id").expect("a valid id"),
        user_id: UserId::parse("u1", "user").expect("a valid id"),
        room_id: RoomId::parse("r1", "room").expect("a valid id"),
        channel,
        category,
        title: "Hi".into(),
        body: "there".into(),
        data: None,
        created_at: "2026-11-23T00:00:00Z".parse().expect("a valid time"),
        correlation_id: Some("corr-1".into()),
        attempt: 0,
        retrying_since: None,
        endpoints: None,
        campaign: None,
        record_per_user: false,
        due_at: None,
        unless: None,
        log_key: None,
        digest: None,
    }
}

/// Noon UTC on the fixtures' day.
pub fn noon() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_795_435_200).expect("in range")
}
