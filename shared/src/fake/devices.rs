//! The device registry in memory, with DynamoDB's rules that matter: a token has one owner
//! per tenant, a user keeps `MAX_DEVICES_PER_USER` devices.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::device::{Device, MAX_DEVICES_PER_USER};
use crate::domain::ids::{TenantId, UserId};
use crate::error::StoreError;
use crate::ports::devices::{DeviceRegistry, Registered};

/// Devices by (tenant, user), and each token's owner.
#[derive(Default)]
pub struct InMemoryDevices {
    pub devices: Mutex<BTreeMap<(TenantId, UserId), Vec<Device>>>,
    owners: Mutex<BTreeMap<(TenantId, String), UserId>>,
}

#[async_trait]
impl DeviceRegistry for InMemoryDevices {
    async fn devices(&self, tenant: &TenantId, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let all = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let mut mine = all
            .get(&(tenant.clone(), user.clone()))
            .cloned()
            .unwrap_or_default();
        mine.sort_by_key(|d| d.registered_at);
        Ok(mine)
    }

    async fn register(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &Device,
    ) -> Result<Registered, StoreError> {
        let mut all = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        let previous = owners.insert((tenant.clone(), device.token.clone()), user.clone());
        let moved_from = previous.clone().filter(|p| p != user);
        if let Some(other) = &moved_from {
            if let Some(theirs) = all.get_mut(&(tenant.clone(), other.clone())) {
                theirs.retain(|d| d.token != device.token);
            }
        }
        let mine = all.entry((tenant.clone(), user.clone())).or_default();
        let created = previous.as_ref() != Some(user);
        mine.retain(|d| d.token != device.token);
        mine.sort_by_key(|d| d.registered_at);
        let over = (mine.len() + 1).saturating_sub(MAX_DEVICES_PER_USER);
        let evicted: Vec<Device> = mine.drain(..over).collect();
        for old in &evicted {
            owners.remove(&(tenant.clone(), old.token.clone()));
        }
        mine.push(device.clone());
        Ok(Registered {
            created,
            moved_from,
            evicted,
        })
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        user: &UserId,
        token: &str,
    ) -> Result<Option<Device>, StoreError> {
        let mut all = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mine) = all.get_mut(&(tenant.clone(), user.clone())) else {
            return Ok(None);
        };
        let Some(at) = mine.iter().position(|d| d.token == token) else {
            return Ok(None);
        };
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(tenant.clone(), token.to_owned()));
        Ok(Some(mine.remove(at)))
    }
}
