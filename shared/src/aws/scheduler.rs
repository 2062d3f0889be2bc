//! EventBridge Scheduler adapter: one-time schedules that put a payload on the campaign queue
//! and delete themselves once they fired.

use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use aws_sdk_scheduler::Client;

use super::store_error;
use crate::error::StoreError;
use crate::ports::Scheduler;

/// Where campaign schedules live and what they call: `SCHEDULE_GROUP`, `CAMPAIGN_QUEUE_ARN`
/// (the target), `SCHEDULER_ROLE_ARN` (the role Scheduler assumes to send there) and
/// `SCHEDULE_DLQ_ARN` (where Scheduler puts what it could not deliver after retrying).
#[derive(Debug, Clone)]
pub struct ScheduleTarget {
    pub group: String,
    pub queue_arn: String,
    pub role_arn: String,
    pub dlq_arn: String,
}

impl ScheduleTarget {
    pub fn from_vars(vars: &crate::config::Vars) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            group: vars.required("SCHEDULE_GROUP")?,
            queue_arn: vars.required("CAMPAIGN_QUEUE_ARN")?,
            role_arn: vars.required("SCHEDULER_ROLE_ARN")?,
            dlq_arn: vars.required("SCHEDULE_DLQ_ARN")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct EventBridgeScheduler {
    client: Client,
    /// The schedule group (template: `CampaignSchedules`).
    group: String,
    /// The campaign queue's ARN, and the role Scheduler assumes to send to it.
    target_arn: String,
    role_arn: String,
    dlq_arn: String,
}

impl EventBridgeScheduler {
    pub fn new(client: Client, target: &ScheduleTarget) -> Self {
        Self {
            client,
            group: target.group.clone(),
            target_arn: target.queue_arn.clone(),
            role_arn: target.role_arn.clone(),
            dlq_arn: target.dlq_arn.clone(),
        }
    }
}

/// How long, and how often, Scheduler retries a schedule it could not deliver (its maximum:
/// a day, 185 attempts) before the dead-letter queue.
pub const RETRY_FOR_SECONDS: i32 = 86_400;
pub const RETRY_ATTEMPTS: i32 = 185;

/// `at(yyyy-mm-ddThh:mm:ss)` in UTC, a second after `at` rounded down (Scheduler's
/// precision is the minute anyway).
pub fn at_expression(at: jiff::Timestamp) -> String {
    let utc = jiff::tz::TimeZone::UTC.to_datetime(at);
    format!("at({})", utc.strftime("%Y-%m-%dT%H:%M:%S"))
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn schedule_once(
        &self,
        name: &str,
        at: jiff::Timestamp,
        payload: &str,
    ) -> Result<(), StoreError> {
        // Scheduler fires at least once, sometimes late; a delivery that fails is retried for
        // up to a day, then dead-lettered (AWS's default would drop it silently).
        let retry = RetryPolicy::builder()
            .maximum_event_age_in_seconds(RETRY_FOR_SECONDS)
            .maximum_retry_attempts(RETRY_ATTEMPTS)
            .build();
        let dead_letter = DeadLetterConfig::builder().arn(&self.dlq_arn).build();
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(payload)
            .retry_policy(retry)
            .dead_letter_config(dead_letter)
            .build()
            .map_err(|e| StoreError::Fatal(e.to_string()))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| StoreError::Fatal(e.to_string()))?;
        let created = self
            .client
            .create_schedule()
            .name(name)
            .group_name(&self.group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .target(target)
            .action_after_completion(ActionAfterCompletion::Delete)
            .client_token(name)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Names are unique in a group: it was made by an earlier attempt.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn delete_schedule(&self, name: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_schedule()
            .name(name)
            .group_name(&self.group)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error(e)),
        }
    }
}
