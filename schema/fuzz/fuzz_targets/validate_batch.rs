//! Arbitrary bytes through every batch reader: nothing may panic, and whatever
//! validates must read back in full.
//!
//! Run with `cargo +nightly fuzz run validate_batch` from `schema/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_schema::{batches, kafka_records, validate_batch, BatchView, PayloadFormat};

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

fuzz_target!(|data: &[u8]| {
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
});
