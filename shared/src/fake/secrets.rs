//! A fixed link-signing secret.

use async_trait::async_trait;

use crate::error::StoreError;

/// A fixed link-signing secret, as Secrets Manager would hand it out.
#[derive(Debug, Clone)]
pub struct StaticKeys(pub Vec<u8>);

impl Default for StaticKeys {
    fn default() -> Self {
        Self(b"a test secret that is long enough to sign links with".to_vec())
    }
}

#[async_trait]
impl crate::ports::LinkKeys for StaticKeys {
    async fn signer(&self) -> Result<crate::domain::unsubscribe::LinkSigner, StoreError> {
        crate::domain::unsubscribe::LinkSigner::new(&self.0)
            .ok_or_else(|| StoreError::Fatal("the link secret is shorter than 256 bits".into()))
    }
}
