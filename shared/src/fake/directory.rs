//! Contacts, delivery records and suppressions in memory, with injectable read failures.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::contact::Contact;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::Channel;
use crate::domain::suppression::{Removal, Suppression, SuppressionScope};
use crate::error::StoreError;
use crate::ports::*;

/// Contacts, delivery records and suppressions in memory.
#[derive(Default)]
pub struct InMemoryDirectory {
    /// Calls that reached the store, as DynamoDB requests (a batch read of 100: one).
    pub calls: AtomicU64,
    /// The next this many contact reads fail as throttled.
    pub fail_contact_reads: std::sync::atomic::AtomicU32,
    /// A suppression read of one of these addresses fails as throttled (once each).
    pub fail_suppression_of: Mutex<HashSet<String>>,
    contacts: Mutex<HashMap<(TenantId, UserId), (Contact, u64)>>,
    pseudonyms: Mutex<HashMap<(TenantId, String), UserId>>,
    pub records: Mutex<Vec<DeliveryRecord>>,
    /// Where each record is in `records` (rebuilt when a test pushed records itself).
    record_index: Mutex<HashMap<(NotificationId, UserId, Channel), usize>>,
    /// The suppression list: (tenant, or `None` for every tenant, address) to the entry.
    pub suppressions: Mutex<BTreeMap<(Option<TenantId>, String), Suppression>>,
    /// Lifted entries, oldest first.
    pub removals: Mutex<Vec<(TenantId, Removal)>>,
}

/// What makes two delivery records the same delivery: notification, user and channel.
fn record_key(r: &DeliveryRecord) -> (NotificationId, UserId, Channel) {
    (r.notification_id.clone(), r.user_id.clone(), r.channel)
}

impl InMemoryDirectory {
    fn index(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(NotificationId, UserId, Channel), usize>> {
        self.record_index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where `record`'s delivery is in `records` (an index, rebuilt when a test pushed
    /// records itself: simulations hold millions).
    fn find_record(&self, records: &[DeliveryRecord], record: &DeliveryRecord) -> Option<usize> {
        let mut index = self.index();
        if index.len() != records.len() {
            *index = records
                .iter()
                .enumerate()
                .map(|(i, r)| (record_key(r), i))
                .collect();
        }
        index.get(&record_key(record)).copied()
    }
}

#[async_trait]
impl Directory for InMemoryDirectory {
    async fn contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<Contact>, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        let failing = self
            .fail_contact_reads
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Transient(
                "injected ProvisionedThroughputExceededException".into(),
            ));
        }
        Ok(self.contact_versioned(tenant, user).await?.0)
    }

    async fn contacts(
        &self,
        tenant: &TenantId,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Contact>, StoreError> {
        // As the adapter: one BatchGetItem per 100 users.
        self.calls
            .fetch_add(users.len().div_ceil(100) as u64, Ordering::Relaxed);
        tokio::task::yield_now().await;
        let contacts = self.contacts.lock().unwrap_or_else(|p| p.into_inner());
        Ok(users
            .iter()
            .filter_map(|u| {
                contacts
                    .get(&(tenant.clone(), u.clone()))
                    .map(|(c, _)| (u.clone(), c.clone()))
            })
            .collect())
    }

    async fn contact_versioned(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(Option<Contact>, u64), StoreError> {
        Ok(self
            .contacts
            .lock()
            .ok()
            .and_then(|c| c.get(&(tenant.clone(), user.clone())).cloned())
            .map_or((None, 0), |(c, v)| (Some(c), v)))
    }

    async fn put_contact(
        &self,
        tenant: &TenantId,
        user: &UserId,
        contact: &Contact,
        pseudonym: &str,
        expected: u64,
    ) -> Result<u64, StoreError> {
        let Ok(mut contacts) = self.contacts.lock() else {
            return Err(StoreError::Fatal("poisoned".into()));
        };
        let key = (tenant.clone(), user.clone());
        let current = contacts.get(&key).map_or(0, |(_, v)| *v);
        if current != expected {
            return Err(StoreError::VersionConflict);
        }
        contacts.insert(key, (contact.clone(), expected + 1));
        if let Ok(mut p) = self.pseudonyms.lock() {
            p.insert((tenant.clone(), pseudonym.to_owned()), user.clone());
        }
        Ok(expected + 1)
    }

    async fn user_of_pseudonym(
        &self,
        tenant: &TenantId,
        pseudonym: &str,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .pseudonyms
            .lock()
            .ok()
            .and_then(|p| p.get(&(tenant.clone(), pseudonym.to_owned())).cloned()))
    }

    async fn user_delivery_status(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        user: &UserId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut records = self.delivery_status(tenant, id).await?;
        records.retain(|r| &r.user_id == user);
        Ok(records)
    }

    async fn delivery_status(
        &self,
        _tenant: &TenantId,
        id: &NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|r| &r.notification_id == id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn claim_delivery(
        &self,
        _tenant: &TenantId,
        record: &DeliveryRecord,
        stale_before: jiff::Timestamp,
    ) -> Result<crate::ports::Claim, StoreError> {
        use crate::ports::{Claim, DeliveryState};
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        let Ok(mut records) = self.records.lock() else {
            return Err(StoreError::Fatal("poisoned".into()));
        };
        let at = self.find_record(&records, record);
        let outcome = match at.map(|i| &records[i]) {
            None => Claim::Claimed { previous: None },
            Some(held)
                if held.state.claimable()
                    || (held.state == DeliveryState::Sending && held.updated_at < stale_before) =>
            {
                Claim::Claimed {
                    previous: Some(Box::new(held.clone())),
                }
            }
            Some(held) if held.state == DeliveryState::Sending => Claim::Held {
                since: held.updated_at,
            },
            Some(held) => Claim::Settled(held.state, held.skip),
        };
        if matches!(outcome, Claim::Claimed { .. }) {
            match at {
                Some(i) => records[i] = record.clone(),
                None => {
                    records.push(record.clone());
                    self.index().insert(record_key(record), records.len() - 1);
                }
            }
        }
        Ok(outcome)
    }

    async fn settle_delivery(
        &self,
        _tenant: &TenantId,
        record: &DeliveryRecord,
    ) -> Result<bool, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        let Ok(mut records) = self.records.lock() else {
            return Err(StoreError::Fatal("poisoned".into()));
        };
        let Some(i) = self.find_record(&records, record) else {
            return Ok(false);
        };
        let held = &mut records[i];
        if held.state == crate::ports::DeliveryState::Sending && held.claim == record.claim {
            *held = record.clone();
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn is_suppressed(&self, tenant: &TenantId, address: &str) -> Result<bool, StoreError> {
        let failing = self
            .fail_suppression_of
            .lock()
            .is_ok_and(|mut f| f.remove(address));
        if failing {
            return Err(StoreError::Transient(
                "injected ProvisionedThroughputExceededException".into(),
            ));
        }
        let address = address.to_ascii_lowercase();
        let entries = self.suppressions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(entries.contains_key(&(None, address.clone()))
            || entries.contains_key(&(Some(tenant.clone()), address)))
    }

    async fn suppress(
        &self,
        tenant: Option<&TenantId>,
        address: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let address = address.to_ascii_lowercase();
        let entry = Suppression {
            address: address.clone(),
            scope: match tenant {
                Some(_) => SuppressionScope::Tenant,
                None => SuppressionScope::Global,
            },
            reason: reason.to_owned(),
            suppressed_at: jiff::Timestamp::now(),
        };
        self.suppressions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((tenant.cloned(), address), entry);
        Ok(())
    }
}

#[async_trait]
impl SuppressionList for InMemoryDirectory {
    async fn suppressions(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Suppression>, StoreError> {
        // The cursor is `after:` and the last address listed.
        let after = cursor
            .map(|c| c.strip_prefix("after:").ok_or(StoreError::BadCursor))
            .transpose()?;
        let entries = self.suppressions.lock().unwrap_or_else(|p| p.into_inner());
        let mine: Vec<&Suppression> = entries
            .iter()
            .filter(|((t, address), _)| {
                t.as_ref() == Some(tenant) && after.is_none_or(|c| address.as_str() > c)
            })
            .map(|(_, e)| e)
            .collect();
        let items: Vec<Suppression> = mine
            .iter()
            .take(limit as usize)
            .map(|e| (*e).clone())
            .collect();
        let next_cursor = (mine.len() > items.len())
            .then(|| items.last().map(|e| format!("after:{}", e.address)))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    async fn lookup(
        &self,
        tenant: &TenantId,
        address: &str,
    ) -> Result<AddressSuppressions, StoreError> {
        let entries = self.suppressions.lock().unwrap_or_else(|p| p.into_inner());
        let found = [Some(tenant.clone()), None]
            .into_iter()
            .filter_map(|t| entries.get(&(t, address.to_owned())).cloned())
            .collect();
        let removals = self
            .removals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .filter(|(t, r)| t == tenant && r.address == address)
            .map(|(_, r)| r.clone())
            .collect();
        Ok(AddressSuppressions {
            entries: found,
            removals,
        })
    }

    async fn lift(
        &self,
        tenant: &TenantId,
        address: &str,
        removed_by: &str,
        note: Option<&str>,
    ) -> Result<Lifted, StoreError> {
        let Some(entry) = self
            .suppressions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(Some(tenant.clone()), address.to_owned()))
        else {
            return Ok(Lifted::NotSuppressed);
        };
        let removal = Removal {
            address: address.to_owned(),
            reason: entry.reason,
            suppressed_at: entry.suppressed_at,
            removed_at: jiff::Timestamp::now(),
            removed_by: removed_by.to_owned(),
            note: note.map(str::to_owned),
        };
        self.removals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((tenant.clone(), removal.clone()));
        Ok(Lifted::Removed(removal))
    }

    async fn removals(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Removal>, StoreError> {
        // The cursor is how many of the tenant's removals were already listed.
        let skip: usize = cursor.map_or(Ok(0), |c| c.parse().map_err(|_| StoreError::BadCursor))?;
        let all: Vec<Removal> = self
            .removals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .filter(|(t, _)| t == tenant)
            .map(|(_, r)| r.clone())
            .collect();
        let items: Vec<Removal> = all
            .iter()
            .skip(skip)
            .take(limit as usize)
            .cloned()
            .collect();
        let next_cursor =
            (all.len() > skip + items.len()).then(|| (skip + items.len()).to_string());
        Ok(Page { items, next_cursor })
    }
}
