//! Building, validating, reading, stamping, iterating and compacting batches.

use strata_schema::*;

fn native_batch(count: usize) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new().with_producer(7, 2, 100);
    for i in 0..count {
        let key = format!("key-{i}");
        let value = vec![i as u8; i];
        b.push(
            1_000 + (i as i64 % 3) * 10,
            Some(key.as_bytes()),
            (i % 4 != 3).then_some(value.as_slice()),
            &[("h", Some(b"v")), ("empty", None)],
        );
    }
    b.build()
}

fn kafka_batch(count: usize) -> Vec<u8> {
    let mut b = KafkaBatchBuilder::new().with_producer(9, 1, 5);
    for i in 0..count {
        let value = format!("value-{i}");
        b.push(
            2_000 + i as i64,
            (i % 2 == 0).then_some(b"k".as_slice()),
            Some(value.as_bytes()),
            &[("trace", Some(b"abc"))],
        );
    }
    wrap_kafka_batch(&b.build()).expect("builder output wraps")
}

#[test]
fn native_batch_round_trips_through_validation() {
    let bytes = native_batch(5);
    let view = validate_batch(&bytes).expect("valid");
    let h = view.header();
    assert_eq!(h.payload_format, PayloadFormat::Native);
    assert_eq!((h.record_count, h.last_offset_delta), (5, 4));
    assert_eq!(
        (h.base_offset, h.leader_epoch, h.log_append_time_ms),
        (0, -1, -1)
    );
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (7, 2, 100)
    );
    assert_eq!((h.first_timestamp_ms, h.max_timestamp_ms), (1_000, 1_020));
    assert_eq!(h.batch_len_bytes(), bytes.len());
    assert_eq!(view.bytes().len(), bytes.len());
    assert_eq!(view.payload().len(), h.payload_len_bytes as usize);
    assert_eq!(compute_batch_crc(&bytes), Ok(h.crc32c));
    assert_eq!(check_batch(&bytes).as_ref(), Ok(h));
    assert!(validate_produced_batch(&bytes).is_ok());

    let records: Vec<_> = view.records().expect("native").collect();
    assert_eq!(records.len(), 5);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset_delta(), i as u32);
        assert_eq!(r.offset(), i as i64);
        assert_eq!(r.timestamp_ms(), 1_000 + (i as i64 % 3) * 10);
        assert_eq!(r.key(), Some(format!("key-{i}").as_bytes()));
        let value = vec![i as u8; i];
        assert_eq!(r.value(), (i % 4 != 3).then_some(value.as_slice()));
        let headers: Vec<_> = r.headers().collect();
        assert_eq!(headers, [("h", Some(b"v".as_slice())), ("empty", None)]);
    }
}

#[test]
fn estimated_bytes_bounds_the_built_size_closely() {
    let mut b = NativeBatchBuilder::new();
    assert!(b.is_empty());
    for i in 0..50 {
        b.push(
            i,
            Some(&[1; 20]),
            Some(&[2; 200]),
            &[("a-longer-header-key", Some(&[3; 9]))],
        );
    }
    assert_eq!(b.len(), 50);
    let estimate = b.estimated_bytes();
    let built = b.build().len();
    assert!(estimate >= built, "estimate {estimate} < built {built}");
    assert!(
        estimate - built <= built / 20,
        "estimate {estimate} far above built {built}"
    );
}

#[test]
fn builders_refuse_what_they_cannot_build() {
    assert_eq!(
        NativeBatchBuilder::new().try_build(),
        Err(BatchError::EmptyBatch)
    );
    assert_eq!(
        KafkaBatchBuilder::new().try_build(),
        Err(BatchError::EmptyBatch)
    );
    let lz4 = Attributes::default().with_compression(Compression::Lz4);
    let mut b = NativeBatchBuilder::new().with_attributes(lz4);
    b.push(0, None, None, &[]);
    assert_eq!(
        b.try_build(),
        Err(BatchError::UnsupportedCompression {
            compression: Compression::Lz4
        })
    );
    let mut b = NativeBatchBuilder::new().with_attributes(Attributes(1 << 9));
    b.push(0, None, None, &[]);
    assert_eq!(
        b.try_build(),
        Err(BatchError::UnknownAttributes { bits: 1 << 9 })
    );
}

#[test]
fn attributes_survive_building() {
    let attrs = Attributes::default()
        .with_transactional(true)
        .with_control(true);
    let mut b = NativeBatchBuilder::new().with_attributes(attrs);
    b.push(5, None, Some(b"commit"), &[]);
    let bytes = b.build();
    assert_eq!(
        validate_batch(&bytes).expect("valid").header().attributes,
        attrs
    );

    let mut k = KafkaBatchBuilder::new().with_attributes(attrs);
    k.push(5, None, Some(b"commit"), &[]);
    let bytes = wrap_kafka_batch(&k.build()).expect("wraps");
    let view = validate_batch(&bytes).expect("valid");
    assert!(view.header().attributes.is_transactional() && view.header().attributes.is_control());
}

#[test]
fn kafka_batch_round_trips_and_stays_verbatim() {
    let mut b = KafkaBatchBuilder::new().with_producer(9, 1, 5);
    b.push(3_000, Some(b"k0"), Some(b"v0"), &[]);
    b.push(2_990, None, None, &[("x", None), ("y", Some(b"yy"))]);
    let kafka = b.build();
    let kh = check_kafka_batch(&kafka).expect("valid kafka batch");
    assert_eq!((kh.record_count, kh.last_offset_delta), (2, 1));
    assert_eq!((kh.base_timestamp_ms, kh.max_timestamp_ms), (3_000, 3_000));

    let bytes = wrap_kafka_batch(&kafka).expect("wraps");
    assert_eq!(&bytes[BATCH_HEADER_BYTES..], kafka.as_slice());
    let view = validate_batch(&bytes).expect("valid");
    let h = view.header();
    assert_eq!(h.payload_format, PayloadFormat::Kafka);
    assert_eq!((h.record_count, h.last_offset_delta), (2, 1));
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (9, 1, 5)
    );
    assert_eq!(
        view.records().err(),
        Some(BatchError::WrongPayloadFormat {
            expected: PayloadFormat::Native,
            found: PayloadFormat::Kafka
        })
    );

    let records: Vec<_> = kafka_records(view.payload())
        .expect("uncompressed")
        .collect::<Result<_, _>>()
        .expect("records parse");
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].offset_delta, records[0].timestamp_delta_ms),
        (0, 0)
    );
    assert_eq!(
        (records[0].key, records[0].value),
        (Some(b"k0".as_slice()), Some(b"v0".as_slice()))
    );
    assert!(records[0].headers.is_empty());
    assert_eq!(
        (records[1].offset_delta, records[1].timestamp_delta_ms),
        (1, -10)
    );
    assert_eq!((records[1].key, records[1].value), (None, None));
    assert_eq!(
        records[1].headers,
        [
            KafkaHeader {
                key: "x",
                value: None
            },
            KafkaHeader {
                key: "y",
                value: Some(b"yy")
            }
        ]
    );
}

/// Rewrite a Kafka batch's CRC after editing it, as a (buggy) client might.
fn fix_kafka_crc(kafka: &mut [u8]) {
    let crc = crc32c::crc32c(&kafka[21..]);
    kafka[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn wrap_rejects_bad_kafka_batches() {
    let mut b = KafkaBatchBuilder::new();
    b.push(0, None, Some(b"v"), &[]);
    let good = b.build();

    let mut bad = good.clone();
    bad[16] = 1;
    assert_eq!(
        wrap_kafka_batch(&bad),
        Err(BatchError::KafkaBadMagic { found: 1 })
    );

    let mut bad = good.clone();
    *bad.last_mut().expect("non-empty") ^= 1;
    assert!(matches!(
        wrap_kafka_batch(&bad),
        Err(BatchError::KafkaCrcMismatch { .. })
    ));

    let mut bad = good.clone();
    bad.push(0);
    assert!(matches!(
        wrap_kafka_batch(&bad),
        Err(BatchError::KafkaLengthMismatch { .. })
    ));

    assert!(matches!(
        wrap_kafka_batch(&good[..60]),
        Err(BatchError::TooShort { .. })
    ));

    let mut bad = good.clone();
    bad[57..61].copy_from_slice(&3i32.to_be_bytes()); // 3 records in 1 offset
    fix_kafka_crc(&mut bad);
    assert!(matches!(
        wrap_kafka_batch(&bad),
        Err(BatchError::RecordCountExceedsOffsets { .. })
    ));

    let mut bad = good.clone();
    bad[22] = 6; // compression code 6
    fix_kafka_crc(&mut bad);
    assert_eq!(
        wrap_kafka_batch(&bad),
        Err(BatchError::UnknownCompression { code: 6 })
    );
}

#[test]
fn kafka_payload_must_agree_with_our_header() {
    let mut bytes = kafka_batch(3);
    bytes[layout::FIRST_TIMESTAMP].copy_from_slice(&1i64.to_le_bytes());
    let crc = compute_batch_crc(&bytes).expect("header decodes");
    bytes[layout::CRC].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        validate_batch(&bytes).err(),
        Some(BatchError::KafkaHeaderMismatch {
            field: "first_timestamp_ms"
        })
    );
}

#[test]
fn kafka_records_beyond_the_count_are_rejected() {
    let mut b = KafkaBatchBuilder::new();
    b.push(0, None, Some(b"a"), &[]);
    b.push(0, None, Some(b"b"), &[]);
    let mut kafka = b.build();
    // Claim one record in a two-offset batch: the second record becomes trailing bytes.
    kafka[57..61].copy_from_slice(&1i32.to_be_bytes());
    fix_kafka_crc(&mut kafka);
    let bytes = wrap_kafka_batch(&kafka).expect("header is consistent");
    assert!(matches!(
        validate_batch(&bytes),
        Err(BatchError::MalformedPayload { .. })
    ));
}

#[test]
fn compressed_kafka_batches_are_stored_verbatim_and_checked() {
    let mut b = KafkaBatchBuilder::new().with_compression(Compression::Zstd);
    b.push(0, None, Some(b"really zstd"), &[]);
    let kafka = b.build();
    let bytes = wrap_kafka_batch(&kafka).expect("wraps");
    assert_eq!(&bytes[BATCH_HEADER_BYTES..], kafka.as_slice());
    let view = validate_batch(&bytes).expect("valid: records decompress and parse");
    assert_eq!(view.header().attributes.compression(), Compression::Zstd);
    // The in-place reader refuses; decode_kafka_records decompresses.
    assert_eq!(
        kafka_records(view.payload()).err(),
        Some(BatchError::UnsupportedCompression {
            compression: Compression::Zstd
        })
    );
    let decoded = decode_kafka_records(view.payload()).expect("decompresses");
    let values: Vec<_> = decoded.iter().map(|r| r.expect("parses").value).collect();
    assert_eq!(values, [Some(b"really zstd".as_slice())]);

    // A batch that only claims zstd: its header is sound, so it wraps, but
    // validation decompresses it and refuses it.
    let mut b = KafkaBatchBuilder::new();
    b.push(0, None, Some(b"pretend this is zstd"), &[]);
    let mut kafka = b.build();
    kafka[22] = Compression::Zstd.code();
    fix_kafka_crc(&mut kafka);
    let bytes = wrap_kafka_batch(&kafka).expect("header is consistent");
    assert!(matches!(
        validate_batch(&bytes),
        Err(BatchError::Decompress {
            compression: Compression::Zstd,
            ..
        })
    ));
}

#[test]
fn stamping_keeps_both_formats_valid() {
    for mut bytes in [native_batch(4), kafka_batch(4)] {
        stamp_base_offset(&mut bytes, 1_234_567);
        stamp_leader_epoch(&mut bytes, 42);
        stamp_log_append_time(&mut bytes, 1_700_000_000_123);
        let view = validate_batch(&bytes).expect("still valid after stamping");
        let h = view.header();
        assert_eq!((h.base_offset, h.leader_epoch), (1_234_567, 42));
        assert_eq!(h.log_append_time_ms, 1_700_000_000_123);
        assert_eq!(h.last_offset(), 1_234_570);
        match h.payload_format {
            PayloadFormat::Native => {
                let offsets: Vec<_> = view
                    .records()
                    .expect("native")
                    .map(|r| r.offset())
                    .collect();
                assert_eq!(offsets, [1_234_567, 1_234_568, 1_234_569, 1_234_570]);
            }
            PayloadFormat::Kafka => {
                let kh = check_kafka_batch(view.payload()).expect("kafka CRC still valid");
                assert_eq!((kh.base_offset, kh.partition_leader_epoch), (1_234_567, 42));
            }
        }
    }
}

#[test]
fn batch_iter_walks_concatenated_batches() {
    let parts = [native_batch(3), kafka_batch(2), native_batch(1)];
    let mut buf = Vec::new();
    let mut next_offset = 0;
    for part in &parts {
        let mut part = part.clone();
        stamp_base_offset(&mut part, next_offset);
        next_offset += i64::from(BatchHeader::decode(&part).expect("header").record_count);
        buf.extend_from_slice(&part);
    }
    let views: Vec<_> = batches(&buf).collect::<Result<_, _>>().expect("all good");
    assert_eq!(views.len(), 3);
    let bases: Vec<_> = views.iter().map(|v| v.header().base_offset).collect();
    assert_eq!(bases, [0, 3, 5]);
    assert_eq!(views[1].bytes().len(), parts[1].len());
    let offsets: Vec<_> = views[2]
        .records()
        .expect("native")
        .map(|r| r.offset())
        .collect();
    assert_eq!(offsets, [5]);
    assert_eq!(batches(&[]).count(), 0);

    // A torn tail: the good prefix, then one positioned error, then nothing.
    for cut in [1, 40, parts[2].len() - 1] {
        let torn = &buf[..buf.len() - cut];
        let mut iter = batches(torn);
        assert!(iter.next().expect("first").is_ok());
        assert!(iter.next().expect("second").is_ok());
        let good_bytes = parts[0].len() + parts[1].len();
        assert_eq!(iter.position_bytes(), good_bytes);
        match iter.next() {
            Some(Err(BatchError::AtPosition {
                position_bytes,
                source,
            })) => {
                assert_eq!(position_bytes, good_bytes);
                assert!(matches!(*source, BatchError::TooShort { .. }));
            }
            other => panic!("expected a positioned error, got {other:?}"),
        }
        assert!(iter.next().is_none());
        assert_eq!(iter.position_bytes(), good_bytes);
    }

    // Corruption mid-buffer stops the walk there.
    let mut corrupt = buf.clone();
    corrupt[parts[0].len() + 50] ^= 0xff;
    let results: Vec<_> = batches(&corrupt).collect();
    assert_eq!(results.len(), 2);
    assert!(matches!(
        results[1].as_ref().map_err(BatchError::root),
        Err(BatchError::CrcMismatch { .. })
    ));
}

#[test]
fn retain_keeps_offsets_timestamps_and_producer_fields() {
    let mut bytes = native_batch(10);
    stamp_base_offset(&mut bytes, 500);
    stamp_leader_epoch(&mut bytes, 3);
    let view = validate_batch(&bytes).expect("valid");

    // Keep odd offsets, which drops neither end.
    let kept = retain_native_records(&view, |r| r.offset() % 2 == 1)
        .expect("native")
        .expect("some kept");
    let kept_view = validate_batch(&kept).expect("retained batch is valid");
    let (old, new) = (view.header(), kept_view.header());
    assert_eq!(new.record_count, 5);
    assert_eq!(new.last_offset_delta, old.last_offset_delta);
    assert_eq!((new.base_offset, new.leader_epoch), (500, 3));
    assert_eq!(
        (new.first_timestamp_ms, new.max_timestamp_ms),
        (old.first_timestamp_ms, old.max_timestamp_ms)
    );
    assert_eq!(
        (new.producer_id, new.producer_epoch, new.base_sequence),
        (7, 2, 100)
    );
    assert!(!new.is_dense());
    assert!(matches!(
        validate_produced_batch(&kept),
        Err(BatchError::NotDense { .. })
    ));

    let before: Vec<_> = view
        .records()
        .expect("native")
        .filter(|r| r.offset() % 2 == 1)
        .map(|r| r.to_record())
        .collect();
    let after: Vec<_> = kept_view
        .records()
        .expect("native")
        .map(|r| r.to_record())
        .collect();
    assert_eq!(before, after);
    let timestamps: Vec<_> = kept_view
        .records()
        .expect("native")
        .map(|r| r.timestamp_ms())
        .collect();
    let expected: Vec<_> = view
        .records()
        .expect("native")
        .filter(|r| r.offset() % 2 == 1)
        .map(|r| r.timestamp_ms())
        .collect();
    assert_eq!(timestamps, expected);

    // Dropping the last record leaves last_offset_delta pointing past the last record.
    let head = retain_native_records(&view, |r| r.offset() < 502)
        .expect("native")
        .expect("kept");
    let head_view = validate_batch(&head).expect("valid with a gap at the end");
    assert_eq!(head_view.header().last_offset(), 509);
    assert_eq!(head_view.records().expect("native").count(), 2);

    assert_eq!(retain_native_records(&view, |_| false), Ok(None));
    let all = retain_native_records(&view, |_| true)
        .expect("native")
        .expect("kept");
    assert_eq!(all, bytes);

    let kafka = kafka_batch(2);
    let kafka_view = validate_batch(&kafka).expect("valid");
    assert!(matches!(
        retain_native_records(&kafka_view, |_| true),
        Err(BatchError::WrongPayloadFormat { .. })
    ));
}

#[test]
fn records_from_an_unvalidated_view_are_checked() {
    // A batch whose CRC is right but whose payload is not an archive: check_batch
    // accepts it, reading its records must fail cleanly.
    let mut bytes = native_batch(2);
    let len = bytes.len();
    bytes[BATCH_HEADER_BYTES..len].fill(0xee);
    let crc = compute_batch_crc(&bytes).expect("header decodes");
    bytes[layout::CRC].copy_from_slice(&crc.to_le_bytes());
    let view = batches(&bytes)
        .next()
        .expect("one")
        .expect("header and CRC fine");
    assert!(matches!(
        view.records(),
        Err(BatchError::MalformedPayload { .. })
    ));
    assert!(matches!(
        validate_batch(&bytes),
        Err(BatchError::MalformedPayload { .. })
    ));
}

#[test]
fn tiny_native_payloads_are_rejected_cleanly() {
    let template = native_batch(1);
    for payload_len in 0..16u32 {
        let mut bytes = template[..BATCH_HEADER_BYTES].to_vec();
        bytes.resize(BATCH_HEADER_BYTES + payload_len as usize, 0);
        bytes[layout::PAYLOAD_LEN].copy_from_slice(&payload_len.to_le_bytes());
        let crc = compute_batch_crc(&bytes).expect("header decodes");
        bytes[layout::CRC].copy_from_slice(&crc.to_le_bytes());
        let err = validate_batch(&bytes).expect_err("no records in the payload");
        if payload_len >= 8 {
            // Eight zero bytes archive an empty record list.
            assert_eq!(
                err,
                BatchError::RecordCountMismatch {
                    header: 1,
                    payload: 0
                }
            );
        } else {
            assert!(
                matches!(err, BatchError::MalformedPayload { .. }),
                "{err:?}"
            );
        }
    }
}

#[test]
fn errors_read_well() {
    let e = BatchError::AtPosition {
        position_bytes: 4096,
        source: Box::new(BatchError::CrcMismatch {
            stored: 1,
            computed: 2,
        }),
    };
    assert_eq!(
        e.to_string(),
        "batch at byte 4096: batch CRC32C mismatch: stored 0x00000001, computed 0x00000002; the batch is corrupt"
    );
    assert_eq!(
        BatchError::BadMagic { found: 0 }.to_string(),
        "bad batch magic 0x0000 (expected 0x5354); not a strata batch or misaligned read"
    );
}
