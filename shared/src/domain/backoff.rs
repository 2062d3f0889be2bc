//! Exponential backoff with full jitter, bounded by a time budget.

use std::time::{Duration, Instant};

use rand::Rng;

/// How retries of conflicted or throttled calls are spaced and when they stop.
#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// Total time retries may take; kept below the function timeout so that
    /// unfinished work is reported as a batch item failure instead of timing out.
    pub budget: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(20),
            cap: Duration::from_secs(2),
            budget: Duration::from_secs(10),
        }
    }
}

impl BackoffPolicy {
    /// Ceiling of the delay before retry `attempt` (0-based): base * 2^attempt, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Full jitter: uniform in [0, ceiling], so colliding writers spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros() as u64;
        Duration::from_micros(rand::rng().random_range(0..=ceiling))
    }

    /// Starts the clock for one piece of work.
    pub fn start(&self) -> Retry {
        self.start_at(Instant::now())
    }

    /// Retries whose budget started earlier: several pieces of work share one budget.
    pub fn start_at(&self, started: Instant) -> Retry {
        Retry {
            policy: *self,
            started,
            attempt: 0,
        }
    }
}

/// The retry state of one piece of work.
#[derive(Debug)]
pub struct Retry {
    policy: BackoffPolicy,
    started: Instant,
    attempt: u32,
}

impl Retry {
    /// Sleeps before the next attempt; false once the budget would be exceeded.
    pub async fn wait(&mut self) -> bool {
        let delay = self.policy.delay(self.attempt);
        if self.started.elapsed() + delay > self.policy.budget {
            return false;
        }
        self.attempt += 1;
        tokio::time::sleep(delay).await;
        true
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = BackoffPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            budget: Duration::from_secs(1),
        };
        assert_eq!(p.ceiling(0), Duration::from_millis(10));
        assert_eq!(p.ceiling(2), Duration::from_millis(40));
        assert_eq!(p.ceiling(3), Duration::from_millis(50));
        assert_eq!(p.ceiling(400), Duration::from_millis(50));
    }

    #[test]
    fn jitter_stays_within_ceiling() {
        let p = BackoffPolicy::default();
        for attempt in 0..12 {
            assert!(p.delay(attempt) <= p.ceiling(attempt));
        }
    }

    #[tokio::test]
    async fn budget_ends_retries() {
        let p = BackoffPolicy {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(5),
            budget: Duration::from_millis(30),
        };
        let mut retry = p.start();
        let mut waits = 0;
        while retry.wait().await {
            waits += 1;
            assert!(waits < 1000, "budget never ran out");
        }
        assert!(waits >= 1, "at least one wait fits the budget");
        assert_eq!(retry.attempts(), waits);
    }
}
