//! Clocks for tests: one instant, or moved by hand.

use std::sync::Mutex;

use crate::ports::*;

/// A clock that shows one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub jiff::Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
    }
}

/// A clock tests move forward by hand.
#[derive(Debug)]
pub struct ManualClock(pub Mutex<jiff::Timestamp>);

impl ManualClock {
    pub fn new(start: jiff::Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: std::time::Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now = now
                .checked_add(jiff::SignedDuration::try_from(by).unwrap_or_default())
                .unwrap_or(*now);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> jiff::Timestamp {
        self.0.lock().map(|t| *t).unwrap_or_default()
    }
}
