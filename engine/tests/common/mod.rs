//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use strata_engine::{AppendOptions, Durability, Log};
use strata_schema::{check_batch, validate_batch, NativeBatchBuilder};

/// A native batch of `records` records whose values are `value_bytes` long and
/// carry `tag` so that tests can recognise them.
pub fn batch(tag: u64, records: usize, value_bytes: usize, timestamp_ms: i64) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new();
    for i in 0..records {
        let mut value = format!("{tag}:{i}:").into_bytes();
        value.resize(value_bytes.max(value.len()), b'x');
        let key = format!("k{}", (tag as usize + i) % 7);
        b.push(
            timestamp_ms + i as i64,
            Some(key.as_bytes()),
            Some(&value),
            &[("h", Some(b"v"))],
        );
    }
    b.build()
}

/// A keyed batch: one record per (key, value); `None` value is a tombstone.
pub fn keyed(records: &[(&str, Option<&str>)], timestamp_ms: i64) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new();
    for (k, v) in records {
        b.push(timestamp_ms, Some(k.as_bytes()), v.map(str::as_bytes), &[]);
    }
    b.build()
}

pub fn durable() -> AppendOptions {
    AppendOptions::new(Durability::Durable)
}

pub fn written() -> AppendOptions {
    AppendOptions::new(Durability::Written)
}

/// Every stored batch from the log start to its end, in order, each checked valid.
pub async fn all_batches(log: &Log) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 1 << 20, Some(end)).await.expect("read");
        if r.batches.is_empty() {
            break;
        }
        for b in r.batches {
            let h = check_batch(&b).expect("stored batch is valid");
            validate_batch(&b).expect("stored batch validates");
            offset = h.last_offset() + 1;
            out.push(b);
        }
    }
    out
}

/// Reads the whole log from its start: (base offset, last offset, record tags) per batch.
pub async fn read_all(log: &Log) -> Vec<(i64, i64, Vec<String>)> {
    all_batches(log)
        .await
        .iter()
        .map(|b| {
            let view = validate_batch(b).expect("stored batch validates");
            let values = view
                .records()
                .expect("native")
                .map(|r| {
                    let v = r.value().unwrap_or_default();
                    let s = String::from_utf8_lossy(v);
                    s.split('x').next().unwrap_or_default().to_string()
                })
                .collect();
            (
                view.header().base_offset,
                view.header().last_offset(),
                values,
            )
        })
        .collect()
}

/// Record keys and values of the whole log, in offset order.
pub async fn read_kv(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    for b in all_batches(log).await {
        let view = validate_batch(&b).expect("stored batch validates");
        for rec in view.records().expect("native") {
            out.push((
                rec.offset(),
                String::from_utf8_lossy(rec.key().unwrap_or_default()).into_owned(),
                rec.value().map(|v| String::from_utf8_lossy(v).into_owned()),
            ));
        }
    }
    out
}
