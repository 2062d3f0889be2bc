//! Secrets Manager adapter: the unsubscribe link secret, fetched on first use and kept for
//! the life of the instance (a rotation reaches new instances; links signed with the old
//! secret then stop working, which is why the template never rotates it on its own).

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use tokio::sync::OnceCell;

use super::store_error;
use crate::domain::unsubscribe::LinkSigner;
use crate::error::StoreError;
use crate::ports::LinkKeys;

pub struct SecretsManagerKeys {
    client: Client,
    secret_id: String,
    signer: OnceCell<LinkSigner>,
}

impl SecretsManagerKeys {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            signer: OnceCell::new(),
        }
    }
}

#[async_trait]
impl LinkKeys for SecretsManagerKeys {
    async fn signer(&self) -> Result<LinkSigner, StoreError> {
        self.signer
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_secret_value()
                    .secret_id(&self.secret_id)
                    .send()
                    .await
                    .map_err(store_error)?;
                let secret = out
                    .secret_string()
                    .map(|s| s.as_bytes().to_vec())
                    .or_else(|| out.secret_binary().map(|b| b.as_ref().to_vec()))
                    .unwrap_or_default();
                LinkSigner::new(&secret).ok_or_else(|| {
                    StoreError::Fatal(format!(
                        "secret {} is shorter than 256 bits; herald will not sign links with it",
                        self.secret_id
                    ))
                })
            })
            .await
            .cloned()
    }
}
