//! Native batches served to Kafka consumers: `native_to_kafka` writes a Kafka batch
//! with every field a Kafka consumer reads taken from the stored batch.

use strata_schema::*;

/// A stored native batch: built, then stamped as the broker stamps on append.
fn stored_native(attributes: Attributes) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new()
        .with_producer(123, 4, 56)
        .with_attributes(attributes);
    b.push(
        5_000,
        Some(b"k0"),
        Some(b"v0"),
        &[("a", Some(b"1")), ("b", None)],
    );
    b.push(4_990, None, None, &[]);
    b.push(5_300, Some(b""), Some(&[7u8; 300]), &[("", Some(b""))]);
    b.push(i64::MIN / 2, Some(b"k3"), Some(b"far in the past"), &[]);
    let mut bytes = b.build();
    stamp_base_offset(&mut bytes, 1_000_000);
    stamp_leader_epoch(&mut bytes, 17);
    stamp_log_append_time(&mut bytes, 1_900_000_000_000);
    bytes
}

/// (offset, timestamp, key, value, headers) of every record.
type Seen = (
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn native_seen(bytes: &[u8]) -> Vec<Seen> {
    validate_batch(bytes)
        .expect("valid")
        .records()
        .expect("native")
        .map(|r| {
            (
                r.offset(),
                r.timestamp_ms(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                r.headers()
                    .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                    .collect(),
            )
        })
        .collect()
}

fn kafka_seen(kafka: &[u8]) -> Vec<Seen> {
    let decoded = decode_kafka_records(kafka).expect("decodes");
    let kh = *decoded.header();
    decoded
        .iter()
        .map(|r| {
            let r = r.expect("parses");
            (
                kh.base_offset + i64::from(r.offset_delta),
                kh.base_timestamp_ms.wrapping_add(r.timestamp_delta_ms),
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
                r.headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn native_batch_converts_field_for_field() {
    let attributes = Attributes::default().with_transactional(true);
    let stored = stored_native(attributes);
    let kafka = native_to_kafka(&stored).expect("converts");
    let kh = check_kafka_batch(&kafka).expect("a valid kafka batch");
    let h = *validate_batch(&stored).expect("valid").header();
    assert_eq!(kh.magic, 2);
    assert_eq!(kh.base_offset, 1_000_000);
    assert_eq!(kh.partition_leader_epoch, 17);
    assert_eq!(kh.strata_attributes(), attributes);
    assert_eq!((kh.record_count, kh.last_offset_delta), (4, 3));
    assert_eq!(
        (kh.base_timestamp_ms, kh.max_timestamp_ms),
        (h.first_timestamp_ms, h.max_timestamp_ms)
    );
    assert_eq!(
        (kh.producer_id, kh.producer_epoch, kh.base_sequence),
        (123, 4, 56)
    );
    assert_eq!(kafka_seen(&kafka), native_seen(&stored));

    // What a Kafka consumer gets is what a Kafka producer could have sent: it wraps and
    // validates like one.
    let rewrapped = wrap_kafka_batch(&kafka).expect("wraps");
    let view = validate_batch(&rewrapped).expect("valid");
    assert_eq!(view.header().base_offset, 1_000_000);
}

#[test]
fn compaction_gaps_survive_conversion() {
    let stored = stored_native(Attributes::default());
    let view = validate_batch(&stored).expect("valid");
    // Drop the first and last records: offsets 1_000_001 and 1_000_002 remain.
    let kept = retain_native_records(&view, |r| (1_000_001..=1_000_002).contains(&r.offset()))
        .expect("native")
        .expect("some kept");
    let kafka = native_to_kafka(&kept).expect("converts");
    let kh = check_kafka_batch(&kafka).expect("valid");
    assert_eq!((kh.record_count, kh.last_offset_delta), (2, 3));
    let seen = kafka_seen(&kafka);
    let offsets: Vec<_> = seen.iter().map(|s| s.0).collect();
    assert_eq!(offsets, [1_000_001, 1_000_002]);
    assert_eq!(seen, native_seen(&kept));
    let rewrapped = wrap_kafka_batch(&kafka).expect("wraps");
    validate_batch(&rewrapped).expect("gaps are valid");
}

#[test]
fn log_append_time_comes_from_the_topic_or_the_batch() {
    let stored = stored_native(Attributes::default());
    let create_time = native_to_kafka(&stored).expect("converts");
    let kh = check_kafka_batch(&create_time).expect("valid");
    assert_eq!(
        kh.strata_attributes().timestamp_type(),
        TimestampType::CreateTime
    );
    assert_eq!(kh.max_timestamp_ms, 5_300);

    let mut out = Vec::new();
    native_to_kafka_into(&stored, TimestampType::LogAppendTime, &mut out).expect("converts");
    let kh = check_kafka_batch(&out).expect("valid");
    assert_eq!(
        kh.strata_attributes().timestamp_type(),
        TimestampType::LogAppendTime
    );
    assert_eq!(kh.max_timestamp_ms, 1_900_000_000_000);
    // Records keep their create-time deltas; Kafka consumers use maxTimestamp.
    assert_eq!(kafka_seen(&out), native_seen(&stored));

    let flagged =
        stored_native(Attributes::default().with_timestamp_type(TimestampType::LogAppendTime));
    let kh = check_kafka_batch(&native_to_kafka(&flagged).expect("converts")).expect("valid");
    assert_eq!(
        kh.strata_attributes().timestamp_type(),
        TimestampType::LogAppendTime
    );
    assert_eq!(kh.max_timestamp_ms, 1_900_000_000_000);
}

#[test]
fn conversion_appends_to_the_callers_buffer() {
    let first = stored_native(Attributes::default());
    let mut second = stored_native(Attributes::default());
    stamp_base_offset(&mut second, 1_000_004);
    let mut out = b"prefix".to_vec();
    let a = native_to_kafka_into(&first, TimestampType::CreateTime, &mut out).expect("converts");
    let b = native_to_kafka_into(&second, TimestampType::CreateTime, &mut out).expect("converts");
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(
        (a.start, a.end, b.start, b.end),
        (6, b.start, a.end, out.len())
    );
    assert_eq!(
        check_kafka_batch(&out[a]).expect("valid").base_offset,
        1_000_000
    );
    assert_eq!(
        check_kafka_batch(&out[b]).expect("valid").base_offset,
        1_000_004
    );

    // Errors leave the buffer as it was.
    let before = out.clone();
    let mut k = KafkaBatchBuilder::new();
    k.push(0, None, Some(b"v"), &[]);
    let kafka_stored = wrap_kafka_batch(&k.build()).expect("wraps");
    assert_eq!(
        native_to_kafka_into(&kafka_stored, TimestampType::CreateTime, &mut out),
        Err(BatchError::WrongPayloadFormat {
            expected: PayloadFormat::Native,
            found: PayloadFormat::Kafka
        })
    );
    let mut corrupt = first.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        native_to_kafka_into(&corrupt, TimestampType::CreateTime, &mut out),
        Err(BatchError::CrcMismatch { .. })
    ));
    assert_eq!(out, before);
}
