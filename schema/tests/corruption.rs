//! Property tests: random record sets round trip, and no corruption goes unnoticed or
//! makes the reader panic.

use proptest::prelude::*;
use strata_schema::*;

type Header = (String, Option<Vec<u8>>);
type Record = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<Header>);

fn bytes(len_max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..len_max)
}

fn record() -> impl Strategy<Value = Record> {
    (
        -1_000i64..1_000,
        proptest::option::of(bytes(24)),
        proptest::option::of(bytes(64)),
        proptest::collection::vec(("[a-z\u{e9}]{0,12}", proptest::option::of(bytes(12))), 0..3),
    )
}

fn records() -> impl Strategy<Value = Vec<Record>> {
    proptest::collection::vec(record(), 1..12)
}

fn header_refs(headers: &[Header]) -> Vec<(&str, Option<&[u8]>)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect()
}

fn build_native(records: &[Record]) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new().with_producer(1, 0, 0);
    for (ts, key, value, headers) in records {
        b.push(*ts, key.as_deref(), value.as_deref(), &header_refs(headers));
    }
    let estimate = b.estimated_bytes();
    let batch = b.build();
    assert!(
        estimate >= batch.len(),
        "estimate {estimate} < built {}",
        batch.len()
    );
    batch
}

fn build_kafka(records: &[Record]) -> Vec<u8> {
    let mut b = KafkaBatchBuilder::new().with_producer(1, 0, 0);
    for (ts, key, value, headers) in records {
        b.push(*ts, key.as_deref(), value.as_deref(), &header_refs(headers));
    }
    wrap_kafka_batch(&b.build()).expect("builder output wraps")
}

/// Byte ranges of a whole batch that the broker stamps: outside every CRC.
fn stamped(format: PayloadFormat) -> Vec<std::ops::Range<usize>> {
    let mut ranges = vec![
        layout::BASE_OFFSET,
        layout::LEADER_EPOCH,
        layout::LOG_APPEND_TIME,
    ];
    if format == PayloadFormat::Kafka {
        ranges.extend([80..88, 92..96]);
    }
    ranges
}

/// Read everything a consumer could read; must never panic.
fn read_all(view: &BatchView<'_>) {
    match view.header().payload_format {
        PayloadFormat::Native => {
            if let Ok(records) = view.records() {
                for r in records {
                    let _ = (r.offset(), r.timestamp_ms(), r.key(), r.value());
                    let _ = r.headers().count();
                }
            }
        }
        PayloadFormat::Kafka => {
            if let Ok(records) = kafka_records(view.payload()) {
                for r in records {
                    let _ = r.map(|r| r.headers.len());
                }
            }
        }
    }
}

/// Run every reader over `bytes`; none may panic.
fn poke(bytes: &[u8]) {
    let _ = BatchHeader::decode(bytes);
    let _ = peek_batch_len(bytes);
    let _ = compute_batch_crc(bytes);
    let _ = check_batch(bytes);
    let _ = check_kafka_batch(bytes);
    let _ = kafka_records(bytes);
    if let Ok(view) = validate_batch(bytes) {
        read_all(&view);
    }
    for view in batches(bytes).flatten() {
        read_all(&view);
    }
}

/// Recompute our CRC (and, for Kafka payloads, the Kafka CRC) after an edit.
fn reseal(batch: &mut [u8]) {
    if batch.get(layout::PAYLOAD_FORMAT) == Some(&(PayloadFormat::Kafka as u8))
        && batch.len() >= 80 + 21
    {
        let crc = crc32c::crc32c(&batch[80 + 21..]);
        batch[80 + 17..80 + 21].copy_from_slice(&crc.to_be_bytes());
    }
    if let Ok(crc) = compute_batch_crc(batch) {
        batch[layout::CRC].copy_from_slice(&crc.to_le_bytes());
    }
}

fn check_every_flip(batch: &[u8], mask: u8) {
    let format = validate_batch(batch)
        .expect("valid")
        .header()
        .payload_format;
    let stamped = stamped(format);
    let mut flipped = batch.to_vec();
    for at in 0..batch.len() {
        flipped[at] ^= mask;
        let result = validate_batch(&flipped);
        if stamped.iter().any(|r| r.contains(&at)) {
            assert!(
                result.is_ok(),
                "flip at stamped byte {at} rejected: {:?}",
                result.err()
            );
            assert!(check_batch(&flipped).is_ok());
        } else {
            assert!(
                result.is_err(),
                "flip at byte {at} (mask {mask:#04x}) went unnoticed"
            );
            if !layout::PAYLOAD_LEN.contains(&at) {
                assert!(
                    check_batch(&flipped).is_err(),
                    "check_batch missed flip at {at}"
                );
            }
        }
        flipped[at] ^= mask;
    }
}

fn check_every_truncation(batch: &[u8]) {
    for len in 0..batch.len() {
        let short = &batch[..len];
        match validate_batch(short) {
            Err(BatchError::TooShort { .. }) if len < BATCH_HEADER_BYTES => {}
            Err(BatchError::LengthMismatch {
                declared_bytes,
                actual_bytes,
            }) if len >= BATCH_HEADER_BYTES => {
                assert_eq!((declared_bytes, actual_bytes), (batch.len(), len));
            }
            other => panic!("truncation to {len} gave {other:?}"),
        }
        assert!(matches!(
            check_batch(short),
            Err(BatchError::TooShort { .. })
        ));
        let mut iter = batches(short);
        if len > 0 {
            assert!(matches!(
                iter.next(),
                Some(Err(BatchError::AtPosition {
                    position_bytes: 0,
                    ..
                }))
            ));
        }
        assert!(iter.next().is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn native_records_read_back_equal(records in records()) {
        let batch = build_native(&records);
        let view = validate_batch(&batch).expect("built batch validates");
        prop_assert_eq!(view.header().record_count as usize, records.len());
        prop_assert_eq!(view.header().first_timestamp_ms, records[0].0);
        prop_assert_eq!(view.header().max_timestamp_ms, records.iter().map(|r| r.0).max().unwrap_or_default());
        let read: Vec<_> = view.records().expect("native").collect();
        prop_assert_eq!(read.len(), records.len());
        for (i, (r, (ts, key, value, headers))) in read.iter().zip(&records).enumerate() {
            prop_assert_eq!(r.offset(), i as i64);
            prop_assert_eq!(r.timestamp_ms(), *ts);
            prop_assert_eq!(r.key(), key.as_deref());
            prop_assert_eq!(r.value(), value.as_deref());
            prop_assert_eq!(r.headers().collect::<Vec<_>>(), header_refs(headers));
        }
        // The same records through a view that was only CRC-checked.
        let unvalidated = batches(&batch).next().expect("one").expect("good");
        prop_assert_eq!(unvalidated.records().expect("native").count(), records.len());
    }

    #[test]
    fn kafka_records_read_back_equal(records in records()) {
        let batch = build_kafka(&records);
        let view = validate_batch(&batch).expect("built batch validates");
        prop_assert_eq!(view.header().record_count as usize, records.len());
        let read: Vec<_> = kafka_records(view.payload()).expect("uncompressed")
            .collect::<Result<_, _>>().expect("records parse");
        prop_assert_eq!(read.len(), records.len());
        let first_ts = view.header().first_timestamp_ms;
        for (i, (r, (ts, key, value, headers))) in read.iter().zip(&records).enumerate() {
            prop_assert_eq!(r.offset_delta, i as i32);
            prop_assert_eq!(first_ts + r.timestamp_delta_ms, *ts);
            prop_assert_eq!(r.key, key.as_deref());
            prop_assert_eq!(r.value, value.as_deref());
            let read_headers: Vec<_> = r.headers.iter().map(|h| (h.key, h.value)).collect();
            prop_assert_eq!(read_headers, header_refs(headers));
        }
    }

    #[test]
    fn every_flip_outside_stamped_fields_is_caught(records in records(), mask in 1u8..=255, kafka in any::<bool>()) {
        let batch = if kafka { build_kafka(&records) } else { build_native(&records) };
        check_every_flip(&batch, mask);
    }

    #[test]
    fn every_truncation_is_reported(records in records(), kafka in any::<bool>()) {
        let batch = if kafka { build_kafka(&records) } else { build_native(&records) };
        check_every_truncation(&batch);
    }

    #[test]
    fn retain_keeps_exactly_the_chosen_records(records in records(), keep in proptest::collection::vec(any::<bool>(), 12)) {
        let mut batch = build_native(&records);
        stamp_base_offset(&mut batch, 1_000);
        let view = validate_batch(&batch).expect("valid");
        let retained = retain_native_records(&view, |r| keep[r.offset_delta() as usize]).expect("native");
        let expected: Vec<_> = view.records().expect("native")
            .filter(|r| keep[r.offset_delta() as usize]).map(|r| r.to_record()).collect();
        match retained {
            None => prop_assert!(expected.is_empty()),
            Some(bytes) => {
                let kept = validate_batch(&bytes).expect("retained batch validates");
                prop_assert_eq!(kept.header().base_offset, 1_000);
                prop_assert_eq!(kept.header().last_offset_delta, view.header().last_offset_delta);
                let got: Vec<_> = kept.records().expect("native").map(|r| r.to_record()).collect();
                prop_assert_eq!(got, expected);
            }
        }
    }

}

proptest! {
    // Cheap cases: run many more.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_bytes_never_panic(bytes in bytes(600)) {
        poke(&bytes);
    }

    #[test]
    fn resealed_mutations_never_panic(
        records in records(),
        kafka in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        // Corrupt the payload (and possibly header) but fix up the CRCs, so the bytes get
        // past the checksum into rkyv's bytecheck and the Kafka record parser.
        let mut batch = if kafka { build_kafka(&records) } else { build_native(&records) };
        for (at, byte) in edits {
            let at = at.index(batch.len());
            batch[at] = byte;
        }
        reseal(&mut batch);
        poke(&batch);
    }

    #[test]
    fn garbage_payloads_behind_a_good_header_never_panic(payload in bytes(400), kafka in any::<bool>()) {
        let template = if kafka { build_kafka(&[(0, None, None, vec![])]) } else { build_native(&[(0, None, None, vec![])]) };
        let mut batch = template[..BATCH_HEADER_BYTES].to_vec();
        if kafka {
            // Keep a plausible Kafka header so the record parser sees the garbage.
            batch.extend_from_slice(&template[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + KAFKA_HEADER_BYTES]);
            let kafka_len = (KAFKA_HEADER_BYTES + payload.len() - 12) as i32;
            batch[80 + 8..80 + 12].copy_from_slice(&kafka_len.to_be_bytes());
        }
        batch.extend_from_slice(&payload);
        let payload_len = (batch.len() - BATCH_HEADER_BYTES) as u32;
        batch[layout::PAYLOAD_LEN].copy_from_slice(&payload_len.to_le_bytes());
        reseal(&mut batch);
        poke(&batch);
    }
}
