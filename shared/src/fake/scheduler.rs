//! Schedules recorded, never fired.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ports::*;

/// Schedules recorded, never fired: (name, at, payload).
#[derive(Default)]
pub struct RecordingScheduler {
    pub schedules: Mutex<Vec<(String, jiff::Timestamp, String)>>,
}

#[async_trait]
impl Scheduler for RecordingScheduler {
    async fn schedule_once(
        &self,
        name: &str,
        at: jiff::Timestamp,
        payload: &str,
    ) -> Result<(), StoreError> {
        let mut schedules = self.schedules.lock().unwrap_or_else(|p| p.into_inner());
        if !schedules.iter().any(|(n, _, _)| n == name) {
            schedules.push((name.to_owned(), at, payload.to_owned()));
        }
        Ok(())
    }

    async fn delete_schedule(&self, name: &str) -> Result<(), StoreError> {
        self.schedules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(n, _, _)| n != name);
        Ok(())
    }
}
