//! An SDK interceptor that counts what herald actually sends: calls per operation, and for
//! DynamoDB writes the write request units the requests cost under DynamoDB's item-size
//! rules (moto reports no ConsumedCapacity for transactions, so units are computed from each
//! request's items: 1 unit per KiB per item, doubled for transactional writes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use aws_sdk_sqs::types::MessageSystemAttributeNameForSends;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    /// "Service.Operation" → HTTP requests sent (retries included: that is what is billed).
    pub attempts: BTreeMap<String, u64>,
    pub dynamodb_write_units: f64,
    /// Write units of the secondary index entries those writes create or move.
    pub dynamodb_index_write_units: f64,
    /// Write units of plain (non-transactional) PutItem and UpdateItem requests: 1 per
    /// started KiB of the item (an update's counted as its key and 64 bytes: herald updates
    /// small records).
    pub dynamodb_standard_write_units: f64,
    /// Items per TransactWriteItems call, in call order.
    pub transaction_sizes: Vec<usize>,
    /// The `AWSTraceHeader` of every SQS SendMessageBatch entry, in order (moto drops system
    /// attributes of batch entries, so what was sent is read off the request).
    pub sqs_trace_headers: Vec<Option<String>>,
}

impl Counts {
    pub fn operation(&self, name: &str) -> u64 {
        self.attempts.get(name).copied().unwrap_or(0)
    }

    pub fn attempts_of(&self, service: &str) -> u64 {
        self.attempts
            .iter()
            .filter(|(k, _)| k.starts_with(service))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Clone it into several clients; all share one tally.
#[derive(Debug, Default, Clone)]
pub struct CallMeter {
    counts: Arc<Mutex<Counts>>,
}

impl CallMeter {
    pub fn counts(&self) -> Counts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut c) = self.counts.lock() {
            *c = Counts::default();
        }
    }

    fn key(cfg: &ConfigBag) -> String {
        cfg.load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".into())
    }
}

impl Intercept for CallMeter {
    fn name(&self) -> &'static str {
        "herald.CallMeter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The operation's name is not in the bag yet here; the input is (and is gone later).
        let _ = cfg;
        let tx = context.input().downcast_ref::<TransactWriteItemsInput>();
        let put = context
            .input()
            .downcast_ref::<aws_sdk_dynamodb::operation::put_item::PutItemInput>();
        let update = context
            .input()
            .downcast_ref::<aws_sdk_dynamodb::operation::update_item::UpdateItemInput>();
        let batch = context.input().downcast_ref::<SendMessageBatchInput>();
        if let Ok(mut counts) = self.counts.lock() {
            for entry in batch
                .map(SendMessageBatchInput::entries)
                .unwrap_or_default()
            {
                counts.sqs_trace_headers.push(
                    entry
                        .message_system_attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeNameForSends::AwsTraceHeader))
                        .and_then(|v| v.string_value().map(str::to_owned)),
                );
            }
            let plain = put
                .and_then(|p| p.item())
                .map(item_size)
                .or_else(|| update.and_then(|u| u.key()).map(|k| item_size(k) + 64));
            if let Some(bytes) = plain {
                counts.dynamodb_standard_write_units += bytes.div_ceil(1024).max(1) as f64;
            }
            if let Some(tx) = tx {
                let items = tx.transact_items();
                counts.transaction_sizes.push(items.len());
                counts.dynamodb_write_units += items.iter().map(transactional_units).sum::<f64>();
                counts.dynamodb_index_write_units += items.iter().map(index_units).sum::<f64>();
            }
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.attempts.entry(Self::key(cfg)).or_default() += 1;
        }
        Ok(())
    }
}

/// Write units of one transaction item: 2 per started KiB of the item written.
fn transactional_units(item: &aws_sdk_dynamodb::types::TransactWriteItem) -> f64 {
    let bytes = if let Some(put) = item.put() {
        item_size(put.item())
    } else if let Some(update) = item.update() {
        // Counter items: key + unread + version (+ read_at), well under 1 KiB.
        item_size(update.key()) + 64
    } else if let Some(check) = item.condition_check() {
        item_size(check.key())
    } else {
        item.delete().map_or(0, |d| item_size(d.key()))
    };
    2.0 * bytes.div_ceil(1024).max(1) as f64
}

/// The inbox table's GSI partition keys (template.yaml): an item carrying one has an entry in
/// that index, and every write that sets one writes the index too.
const INDEX_KEYS: [&str; 2] = ["room_pk", "changed"];

/// Index write units of one transaction item: 1 per started KiB of each index entry written
/// (index writes are standard writes, also inside a transaction). An Update that SETs an
/// index key is counted as a write even when the value is unchanged (then AWS writes
/// nothing): an upper bound, the case of a burst that touches each user once.
fn index_units(item: &aws_sdk_dynamodb::types::TransactWriteItem) -> f64 {
    if let Some(put) = item.put() {
        let entries = INDEX_KEYS
            .iter()
            .filter(|k| put.item().contains_key(**k))
            .count();
        // INCLUDE projections here carry nearly the whole message: size it as the item.
        (entries * item_size(put.item()).div_ceil(1024).max(1)) as f64
    } else if let Some(update) = item.update() {
        let expression = update.update_expression();
        INDEX_KEYS
            .iter()
            .filter(|k| expression.contains(&format!("{k} =")))
            .count() as f64
    } else {
        0.0
    }
}

/// DynamoDB's item size: attribute names plus values.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        _ => 8,
    }
}

/// A DynamoDB client whose calls `meter` counts.
pub fn metered_dynamodb(
    sdk: &aws_config::SdkConfig,
    meter: &CallMeter,
) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(meter.clone())
            .build(),
    )
}

/// An SQS client whose calls `meter` counts.
pub fn metered_sqs(sdk: &aws_config::SdkConfig, meter: &CallMeter) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .interceptor(meter.clone())
            .build(),
    )
}
