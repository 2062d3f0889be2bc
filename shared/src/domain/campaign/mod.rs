//! Campaigns: one API call that sends one notification to every user of an audience, at a
//! chosen time (or each recipient's local time) and rate. By job: `request` (validating
//! `POST /v1/campaigns`), `model` (the stored campaign, the work on its queue, progress
//! marks and counts), `zone` (wall-clock times in time zones), `fanout` (what a page and a
//! release do: pure decisions the campaigns function carries out) and `audience` (reading
//! audience files). No AWS here.

pub mod audience;
pub mod fanout;
pub mod model;
pub mod request;
pub mod zone;

pub use super::ids::CampaignRef;
pub use audience::{
    audience_header, read_audience, AudienceFile, AudienceRead, AudienceUnreadable,
};
pub use fanout::*;
pub use model::*;
pub use request::*;
pub use zone::*;

/// Most users an inline audience may list (larger audiences come from S3).
pub const MAX_INLINE_USERS: usize = 10_000;
/// Users per stored chunk of an inline audience (128-char ids: well under DynamoDB's 400 KB).
pub const INLINE_CHUNK: usize = 1_000;
/// Users one page of the fan-out enqueues at most.
pub const PAGE_USERS: usize = 500;
/// `rate_per_second` bounds.
pub const MIN_RATE: u32 = 1;
pub const MAX_RATE: u32 = 10_000;
/// SQS's longest message delay.
pub const MAX_DELAY_SECONDS: u32 = 900;
/// A recipient whose instant is further ahead than this is held for a release schedule.
pub const HOLD_BEYOND_SECONDS: i64 = 600;
/// A release fires this long before its instant: its messages then wait out the rest as an
/// SQS delay, so they arrive on time even if the schedule fires a little late.
pub const RELEASE_LEAD_SECONDS: i64 = 300;
/// Room of campaign notifications that name none.
pub const DEFAULT_ROOM: &str = "marketing";
pub(crate) const MAX_NAME_CHARS: usize = 200;

#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used)]
    //! Requests and campaigns the module's tests share.

    use jiff::Timestamp;
    use serde_json::{json, Value};

    use super::model::{AudienceSpec, Campaign};
    use super::request::CampaignRequest;
    use crate::domain::ids::{CampaignId, TenantId};

    pub fn now() -> Timestamp {
        "2026-03-27T12:00:00Z".parse().unwrap()
    }

    pub fn request(extra: Value) -> Value {
        let mut body = json!({
            "name": "spring", "title": "Spring sale", "body": "20% off", "channels": ["inbox"],
            "audience": {"users": ["u1", "u2", "u1"]}, "send_at": "2026-03-28T09:00:00+01:00"
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    pub fn field_of(body: Value) -> String {
        CampaignRequest::parse(&body, now())
            .unwrap_err()
            .field
            .unwrap_or_default()
    }

    pub fn campaign(extra: Value) -> Campaign {
        let request = CampaignRequest::parse(&request(extra), now()).unwrap();
        Campaign::new(
            TenantId::parse("t", "t").unwrap(),
            CampaignId::parse("01KCAMPAIGN0000000000000000", "id").unwrap(),
            &request,
            AudienceSpec::Inline {
                users: 2,
                chunks: 1,
            },
            now(),
        )
    }
}
