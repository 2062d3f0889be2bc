//! `RecordingSender` as the SMS and push sender.

use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::ses::RecordingSender;
use crate::error::CallError;
use crate::ports::*;

#[async_trait]
impl MobileSender for RecordingSender {
    async fn send_sms(&self, sms: &crate::ports::Sms) -> Result<String, SendError> {
        self.check()?;
        if self.opted_out.load(Ordering::Relaxed) {
            let mut e = CallError::message("OptedOut: phone number is opted out");
            e.code = Some("OptedOut".into());
            return Err(SendError::OptedOut(e));
        }
        self.sms
            .lock()
            .map(|mut s| s.push((sms.to.clone(), sms.text.clone())))
            .ok();
        self.answer()
    }

    async fn send_push(
        &self,
        endpoint_arn: &str,
        title: &str,
        _body: &str,
    ) -> Result<String, SendError> {
        self.check()?;
        self.pushes
            .lock()
            .map(|mut p| p.push((endpoint_arn.into(), title.into())))
            .ok();
        self.answer()
    }
}

/// SNS platform endpoints in memory: one per (application, token), as SNS keeps them;
/// `disabled` endpoints are enabled again by the next `endpoint_for`.
#[derive(Default)]
pub struct InMemoryEndpoints {
    pub endpoints: std::sync::Mutex<std::collections::BTreeMap<(String, String), String>>,
    pub disabled: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

#[async_trait]
impl PushEndpoints for InMemoryEndpoints {
    async fn endpoint_for(
        &self,
        application_arn: &str,
        token: &str,
    ) -> Result<String, crate::error::StoreError> {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let count = endpoints.len();
        let arn = endpoints
            .entry((application_arn.to_owned(), token.to_owned()))
            .or_insert_with(|| {
                let app = application_arn.replacen(":app/", ":endpoint/", 1);
                format!("{app}/e{count}")
            })
            .clone();
        self.disabled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&arn);
        Ok(arn)
    }
}
