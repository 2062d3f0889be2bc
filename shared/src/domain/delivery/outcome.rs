//! The delivery state machine's decisions, with no I/O: what a claimed send's answer means
//! (settle how, suppress, fail to the DLQ, retry later, or release the claim), when a job
//! that keeps meeting "not now" gives up, what a push over several devices achieved, and the
//! campaign mark and metric of each settled state. `functions/deliver` carries them out.

use std::time::Duration;

use super::{throttled_delay, DeliveryJob, SkipReason};
use crate::domain::campaign::ProgressMark;
use crate::domain::notification::Channel;
use crate::error::CallError;
use crate::ports::directory::DeliveryState;
use crate::ports::SendError;

/// The progress a settled delivery leaves on its campaign; a skip found already settled
/// by another copy counts with the reason its record keeps (the other copy's own mark, if it
/// made one, is the same slot and counts once).
pub fn campaign_mark(
    state: DeliveryState,
    channel: Channel,
    skip: Option<SkipReason>,
) -> Option<ProgressMark> {
    match state {
        DeliveryState::Sent => Some(ProgressMark::Sent(channel)),
        DeliveryState::Skipped => Some(ProgressMark::Skipped(
            channel,
            skip.unwrap_or(SkipReason::NoAddress),
        )),
        DeliveryState::Failed | DeliveryState::Unknown => Some(ProgressMark::Failed(channel)),
        DeliveryState::Sending | DeliveryState::Retrying => None,
    }
}

/// Whether a settle was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Written,
    /// The claim was no longer this copy's (taken over once stale).
    TakenOver,
    /// The store kept failing.
    NotRecorded,
}

pub fn state_metric(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Sent => "DeliveriesSent",
        DeliveryState::Skipped => "DeliveriesSkipped",
        DeliveryState::Failed => "DeliveriesFailed",
        DeliveryState::Sending => "DeliveriesClaimed",
        DeliveryState::Retrying => "DeliveriesRetried",
        DeliveryState::Unknown => "DeliveriesUnknown",
    }
}

/// A push's outcome over its devices: devices left to retry make it partial (whatever else
/// happened, the reached ones are kept); otherwise any device that got it makes it sent; a
/// lost answer with none sent is unknown; else the refusal, or every device suppressed.
pub fn push_outcome(
    sent: Vec<String>,
    reached: Vec<String>,
    maybe: bool,
    left: Vec<String>,
    retry_error: Option<SendError>,
    refused: Option<SendError>,
) -> Result<Outcome, SendError> {
    if let Some(error) = retry_error.filter(|_| !left.is_empty()) {
        if reached.is_empty() && refused.is_none() {
            return Err(error);
        }
        return Ok(Outcome::Partly {
            reached,
            left,
            error: error.to_string(),
        });
    }
    if !sent.is_empty() {
        return Ok(Outcome::Sent {
            provider_id: sent.join(","),
            to: reached,
        });
    }
    match refused {
        Some(e) if maybe => Err(SendError::Unknown(CallError::message(e.to_string()))),
        Some(e) => Err(e),
        None => Ok(Outcome::Suppressed),
    }
}

/// What one send achieved.
#[derive(Debug)]
pub enum Outcome {
    /// Sent: the provider's id (several, comma-separated, for push), and for push the
    /// devices reached.
    Sent {
        provider_id: String,
        to: Vec<String>,
    },
    /// The address is on the suppression list.
    Suppressed,
    /// Push: `reached` got it, `left` did not (a retryable error).
    Partly {
        reached: Vec<String>,
        left: Vec<String>,
        error: String,
    },
}

/// What a claimed send's answer asks for.
#[derive(Debug)]
pub enum AfterSend {
    /// Settle in `state` (sent or skipped, with the devices now reached), then leave the
    /// campaign's mark.
    Settle {
        state: DeliveryState,
        detail: String,
        skip: Option<SkipReason>,
        reached: Vec<String>,
    },
    /// The number opted out at the provider: suppress it for every later SMS (as a STOP
    /// reply would), then settle skipped. Not an error.
    OptOut {
        number: Option<String>,
        detail: String,
    },
    /// Final: settle `state` (failed, or unknown when it may have gone out), mark the
    /// campaign failed, and dead-letter the job with `why`.
    Fail {
        state: DeliveryState,
        detail: String,
        why: String,
    },
    /// Not now (throttled, or some devices left): retry later with a delay, keeping the
    /// devices reached; a push retries only `endpoints`.
    RetryLater {
        reached: Vec<String>,
        endpoints: Option<Vec<String>>,
        reason: String,
    },
    /// Certainly not sent: release the claim and let the queue retry.
    Release { reason: String },
}

/// What `result`, the answer to sending `job` to `addresses`, asks for.
pub fn after_send(
    job: &DeliveryJob,
    addresses: &[String],
    result: Result<Outcome, SendError>,
) -> AfterSend {
    match result {
        Ok(Outcome::Sent { provider_id, to }) => AfterSend::Settle {
            state: DeliveryState::Sent,
            detail: provider_id,
            skip: None,
            reached: to,
        },
        Ok(Outcome::Suppressed) => AfterSend::Settle {
            state: DeliveryState::Skipped,
            detail: "address suppressed".into(),
            skip: Some(SkipReason::Suppressed),
            reached: Vec::new(),
        },
        Ok(Outcome::Partly {
            reached,
            left,
            error,
        }) => AfterSend::RetryLater {
            reason: format!("{} left: {error}", left.len()),
            reached,
            endpoints: Some(left),
        },
        Err(SendError::OptedOut(e)) => AfterSend::OptOut {
            number: addresses.first().cloned(),
            detail: format!("opted out: {e}"),
        },
        Err(SendError::Rejected(reason)) => AfterSend::Fail {
            state: DeliveryState::Failed,
            detail: reason.to_string(),
            why: format!("{} rejected: {reason}", job.channel.as_str()),
        },
        // The provider may have it: sending again could send twice. Final, to the DLQ.
        Err(e @ SendError::Unknown(_)) => AfterSend::Fail {
            state: DeliveryState::Unknown,
            detail: format!("{e}: not resent"),
            why: format!("{e}: not resent"),
        },
        Err(e @ SendError::Throttled(_)) => AfterSend::RetryLater {
            reached: Vec::new(),
            endpoints: None,
            reason: e.to_string(),
        },
        Err(e @ SendError::Other(_)) => AfterSend::Release {
            reason: e.to_string(),
        },
    }
}

/// Where a job that met "not now" goes next.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryPlan {
    /// Retrying for longer than allowed: fail, with this reason.
    GiveUp(String),
    /// Back on its queue after `delay` seconds, one attempt further.
    Again { next: Box<DeliveryJob>, delay: u32 },
}

/// The retry of `job` at `now`: again with a growing delay, until `give_up_after` has passed
/// since its first "not now" (the queue's receives are not spent on waiting).
pub fn retry_plan(
    job: &DeliveryJob,
    now: jiff::Timestamp,
    give_up_after: Duration,
    reason: &str,
) -> RetryPlan {
    let since = job.retrying_since.unwrap_or(now);
    let waited = now.duration_since(since).as_secs().max(0) as u64;
    if waited > give_up_after.as_secs() {
        return RetryPlan::GiveUp(format!(
            "still failing after {:.0} h of retries: {reason}",
            give_up_after.as_secs_f64() / 3600.0
        ));
    }
    RetryPlan::Again {
        next: Box::new(DeliveryJob {
            attempt: job.attempt + 1,
            retrying_since: Some(since),
            ..job.clone()
        }),
        delay: throttled_delay(job.attempt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notification::Category;
    use crate::fake::fixtures::{delivery_job, noon};

    fn error(text: &str) -> CallError {
        CallError::message(text)
    }

    /// Each answer a provider can give maps to one next move: only a lost answer or a refusal
    /// is final, only "not sent for sure" releases the claim, and nothing that may have gone
    /// out is ever retried.
    #[test]
    fn every_send_answer_has_one_next_move() {
        let job = delivery_job(Channel::Sms, Category::Marketing);
        let to = vec!["+15550100".to_owned()];
        let sent = after_send(
            &job,
            &to,
            Ok(Outcome::Sent {
                provider_id: "m-1".into(),
                to: Vec::new(),
            }),
        );
        assert!(
            matches!(sent, AfterSend::Settle { state: DeliveryState::Sent, ref detail, skip: None, .. } if detail == "m-1")
        );
        let suppressed = after_send(&job, &to, Ok(Outcome::Suppressed));
        assert!(matches!(
            suppressed,
            AfterSend::Settle {
                state: DeliveryState::Skipped,
                skip: Some(SkipReason::Suppressed),
                ..
            }
        ));
        let opted = after_send(&job, &to, Err(SendError::OptedOut(error("OptedOut"))));
        assert!(matches!(opted, AfterSend::OptOut { number: Some(ref n), .. } if n == "+15550100"));
        let refused = after_send(&job, &to, Err(SendError::Rejected(error("bad number"))));
        assert!(
            matches!(refused, AfterSend::Fail { state: DeliveryState::Failed, ref why, .. } if why == "sms rejected: bad number")
        );
        let lost = after_send(&job, &to, Err(SendError::Unknown(error("timeout"))));
        assert!(
            matches!(lost, AfterSend::Fail { state: DeliveryState::Unknown, ref why, .. } if why.contains("not resent"))
        );
        let throttled = after_send(&job, &to, Err(SendError::Throttled(error("slow down"))));
        assert!(matches!(
            throttled,
            AfterSend::RetryLater {
                endpoints: None,
                ..
            }
        ));
        let unsent = after_send(&job, &to, Err(SendError::Other(error("no route"))));
        assert!(matches!(unsent, AfterSend::Release { .. }));
    }

    /// A push that reached some devices and has others left retries only those, keeping the
    /// reached ones; a push whose only answer was lost is unknown, never resent.
    #[test]
    fn a_partial_push_retries_only_the_devices_left() {
        let job = delivery_job(Channel::Push, Category::Transactional);
        let devices = vec!["d1".to_owned(), "d2".to_owned()];
        let partly = push_outcome(
            vec!["id-1".into()],
            vec!["d1".into()],
            false,
            vec!["d2".into()],
            Some(SendError::Throttled(error("slow down"))),
            None,
        );
        match after_send(&job, &devices, partly) {
            AfterSend::RetryLater {
                reached,
                endpoints,
                reason,
            } => {
                assert_eq!(reached, vec!["d1".to_owned()]);
                assert_eq!(endpoints, Some(vec!["d2".to_owned()]));
                assert!(reason.starts_with("1 left: throttled"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let lost = push_outcome(
            Vec::new(),
            vec!["d1".into()],
            true,
            Vec::new(),
            None,
            Some(SendError::Unknown(error("timeout"))),
        );
        assert!(matches!(lost, Err(SendError::Unknown(_))));
        assert!(matches!(
            push_outcome(Vec::new(), Vec::new(), false, Vec::new(), None, None),
            Ok(Outcome::Suppressed)
        ));
    }

    /// "Not now" comes back with a growing delay and one more attempt, stamped with when it
    /// started, until the allowed time has passed since then; then it gives up.
    #[test]
    fn a_retry_gives_up_only_after_the_allowed_time() {
        let job = delivery_job(Channel::Email, Category::Transactional);
        let hours = Duration::from_secs(3 * 3600);
        let RetryPlan::Again { next, delay } = retry_plan(&job, noon(), hours, "throttled") else {
            panic!("the first retry goes again");
        };
        assert_eq!(next.attempt, 1);
        assert!((1..=2).contains(&delay), "{delay}: 2 s with jitter");
        assert_eq!(next.retrying_since, Some(noon()), "stamped when it began");
        let later = noon() + jiff::SignedDuration::from_hours(2);
        let RetryPlan::Again { next: again, delay } = retry_plan(&next, later, hours, "x") else {
            panic!("two hours in, it still goes again");
        };
        assert_eq!(
            again.retrying_since, next.retrying_since,
            "the start is kept"
        );
        assert!((2..=4).contains(&delay), "{delay}: doubled");
        let too_late = noon() + jiff::SignedDuration::from_hours(4);
        assert!(matches!(
            retry_plan(&again, too_late, hours, "throttled"),
            RetryPlan::GiveUp(why) if why == "still failing after 3 h of retries: throttled"
        ));
    }

    #[test]
    fn each_settled_state_marks_its_campaign_once() {
        let mark = |state, skip| campaign_mark(state, Channel::Email, skip);
        assert_eq!(
            mark(DeliveryState::Sent, None),
            Some(ProgressMark::Sent(Channel::Email))
        );
        assert_eq!(
            mark(DeliveryState::Skipped, Some(SkipReason::OptedOut)),
            Some(ProgressMark::Skipped(Channel::Email, SkipReason::OptedOut))
        );
        assert_eq!(
            mark(DeliveryState::Unknown, None),
            Some(ProgressMark::Failed(Channel::Email))
        );
        assert_eq!(mark(DeliveryState::Retrying, None), None);
        assert_eq!(mark(DeliveryState::Sending, None), None);
    }
}
