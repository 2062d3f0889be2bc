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
