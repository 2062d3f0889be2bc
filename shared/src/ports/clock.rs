//! The time, as a port (`fake/clock.rs` has fixed and hand-moved clocks).

/// The time, as a port: deliver's quiet hours depend on it, and tests fix it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> jiff::Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}
