//! Arbitrary bytes through every batch reader: nothing may panic, and whatever
//! validates must read back in full.
//!
//! Run with `cargo +nightly fuzz run validate_batch` from `schema/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_schema::layout;
use strata_schema::{
    batches, compute_batch_crc, kafka_records, validate_batch, BatchView, PayloadFormat, BATCH_HEADER_BYTES,
    BATCH_MAGIC, BATCH_VERSION,
};

fn read_all(view: &BatchView<'_>) {
    match view.header().payload_format {
        PayloadFormat::Native => {
            if let Ok(records) = view.records() {
                for record in records {
                    let _ = (record.offset(), record.timestamp_ms());
                    let _ = (record.key(), record.value());
                    for (key, value) in record.headers() {
                        let _ = (key.len(), value.map(<[u8]>::len));
                    }
                }
            }
        }
        PayloadFormat::Kafka => {
            if let Ok(records) = kafka_records(view.payload()) {
                for record in records.flatten() {
                    let _ = (record.key, record.value, record.headers.len());
                }
            }
        }
    }
}

/// The same bytes with framing fields and CRC made consistent, so the fuzzer reaches
/// payload parsing instead of stopping at the checksum.
fn with_consistent_frame(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < BATCH_HEADER_BYTES {
        return None;
    }
    let mut fixed = data.to_vec();
    let payload_len = (data.len() - BATCH_HEADER_BYTES) as u32;
    fixed[layout::PAYLOAD_LEN].copy_from_slice(&payload_len.to_le_bytes());
    fixed[layout::MAGIC].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
    fixed[layout::VERSION] = BATCH_VERSION;
    fixed[layout::PAYLOAD_FORMAT] = 1 + (data[layout::PAYLOAD_FORMAT] & 1);
    fixed[72..BATCH_HEADER_BYTES].fill(0);
    let crc = compute_batch_crc(&fixed).ok()?;
    fixed[layout::CRC].copy_from_slice(&crc.to_le_bytes());
    Some(fixed)
}

fn check(data: &[u8]) {
    if let Ok(view) = validate_batch(data) {
        assert_eq!(view.bytes().len(), data.len());
        if view.header().payload_format == PayloadFormat::Native {
            let records = view.records().expect("a validated native batch reads");
            assert_eq!(records.len(), view.header().record_count as usize);
        }
        read_all(&view);
    }
    let mut consumed_bytes = 0;
    for view in batches(data).flatten() {
        consumed_bytes += view.bytes().len();
        read_all(&view);
    }
    assert!(consumed_bytes <= data.len());
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = with_consistent_frame(data) {
        check(&fixed);
    }
});
