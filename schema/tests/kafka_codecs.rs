//! Compressed Kafka batches: built, wrapped, validated, stamped, served and read back
//! with every codec; corrupt or oversized ones are typed errors, never panics.

use proptest::prelude::*;
use strata_schema::*;

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

type Header = (String, Option<Vec<u8>>);
type Record = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<Header>);

fn header_refs(headers: &[Header]) -> Vec<(&str, Option<&[u8]>)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect()
}

fn build(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut b = KafkaBatchBuilder::new()
        .with_producer(77, 3, 1_000)
        .with_compression(compression);
    for (ts, key, value, headers) in records {
        b.push(*ts, key.as_deref(), value.as_deref(), &header_refs(headers));
    }
    b.build()
}

/// Enough records to span several snappy (32 KiB) and lz4 (64 KiB) blocks.
fn sample_records() -> Vec<Record> {
    (0..600)
        .map(|i| {
            let key = (i % 3 != 0).then(|| format!("key-{i}").into_bytes());
            let value = (i % 7 != 6).then(|| format!("value-{i}-").repeat(i % 40).into_bytes());
            let headers = (0..i % 3)
                .map(|h| (format!("h{h}"), (h != 1).then(|| vec![h as u8; h * 5])))
                .collect();
            (1_700_000_000_000 + (i as i64 % 11) * 7, key, value, headers)
        })
        .collect()
}

/// Every field of every record, as read back.
fn read_back(decoded: &KafkaBatchRecords<'_>) -> Vec<Record> {
    let base = decoded.header().base_timestamp_ms;
    decoded
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.expect("record parses");
            assert_eq!(r.offset_delta, i as i32);
            let headers = r
                .headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect();
            (
                base + r.timestamp_delta_ms,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
                headers,
            )
        })
        .collect()
}

fn fix_kafka_crc(kafka: &mut [u8]) {
    let crc = crc32c::crc32c(&kafka[21..]);
    kafka[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn every_codec_builds_a_valid_batch_that_reads_back_in_full() {
    let records = sample_records();
    let plain = build(&records, Compression::None);
    for compression in CODECS {
        let kafka = build(&records, compression);
        assert!(
            kafka.len() < plain.len() / 2,
            "{compression:?} compresses: {} vs {}",
            kafka.len(),
            plain.len()
        );
        let kh = check_kafka_batch(&kafka).expect("kafka CRC and header");
        assert_eq!(kh.attributes & 0b111, i16::from(compression.code()));
        assert_eq!((kh.record_count, kh.last_offset_delta), (600, 599));
        assert_eq!(
            (kh.producer_id, kh.producer_epoch, kh.base_sequence),
            (77, 3, 1_000)
        );

        let bytes = wrap_kafka_batch(&kafka).expect("wraps");
        let view = validate_produced_batch(&bytes).expect("validates");
        assert_eq!(view.header().attributes.compression(), compression);

        let (view, decoded) = validate_kafka_batch(&bytes).expect("validates with records");
        assert_eq!(view.bytes().len(), bytes.len());
        assert!(decoded.is_decompressed());
        assert_eq!(read_back(&decoded), records, "{compression:?}");
        // Same record bytes as the uncompressed batch.
        assert_eq!(decoded.records_bytes(), &plain[KAFKA_HEADER_BYTES..]);
    }
    // Uncompressed stays in place.
    let decoded = decode_kafka_records(&plain).expect("decodes");
    assert!(!decoded.is_decompressed());
    assert_eq!(read_back(&decoded), records);
    let owned = decoded.clone().into_owned();
    assert_eq!(owned, decoded);
}

#[test]
fn record_views_read_without_allocating_and_agree_with_records() {
    let records = sample_records();
    let kafka = build(&records, Compression::Lz4);
    let decoded = decode_kafka_records(&kafka).expect("decodes");
    let mut views = decoded.iter();
    let mut owned = decoded.iter();
    let mut count = 0;
    while let Some(view) = views.next_view() {
        let view = view.expect("parses");
        let record = owned.next().expect("same count").expect("parses");
        assert_eq!(view.to_record(), record);
        assert_eq!(view.headers().len(), record.headers.len());
        assert_eq!(view.headers().collect::<Vec<_>>(), record.headers);
        count += 1;
    }
    assert_eq!(count, records.len());
    assert!(owned.next().is_none());
}

#[test]
fn builder_rejects_undefined_attribute_bits_and_codes() {
    let mut b = KafkaBatchBuilder::new().with_attributes(Attributes(1 << 7));
    b.push(0, None, Some(b"v"), &[]);
    assert_eq!(
        b.try_build(),
        Err(BatchError::UnknownAttributes { bits: 1 << 7 })
    );
    let mut b = KafkaBatchBuilder::new().with_compression(Compression::Unknown(5));
    b.push(0, None, Some(b"v"), &[]);
    assert_eq!(
        b.try_build(),
        Err(BatchError::UnknownCompression { code: 5 })
    );
    // with_attributes carries compression too; with_compression overrides it.
    let mut b = KafkaBatchBuilder::new()
        .with_attributes(Attributes::default().with_compression(Compression::Gzip))
        .with_compression(Compression::Snappy);
    b.push(0, None, Some(b"v"), &[]);
    let kh = check_kafka_batch(&b.build()).expect("valid");
    assert_eq!(kh.strata_attributes().compression(), Compression::Snappy);
}

/// The confirmation the Kafka listener relies on: a stored Kafka-format batch, after
/// the broker stamps it, holds a valid Kafka batch with the stamped baseOffset and
/// leader epoch, served by slicing off our header; LogAppendTime topics patch its
/// header.
#[test]
fn stamped_kafka_batches_serve_as_valid_kafka_batches() {
    let records = sample_records();
    for compression in [Compression::None].into_iter().chain(CODECS) {
        let kafka = build(&records, compression);
        let mut stored = wrap_kafka_batch(&kafka).expect("wraps");
        stamp_base_offset(&mut stored, 4_242);
        stamp_leader_epoch(&mut stored, 9);
        stamp_log_append_time(&mut stored, 1_800_000_000_000);
        let view = validate_batch(&stored).expect("still valid after stamping");

        let served = kafka_payload(&stored).expect("kafka format");
        assert_eq!(served, &stored[BATCH_HEADER_BYTES..]);
        let kh = check_kafka_batch(served).expect("kafka CRC holds after stamping");
        assert_eq!((kh.base_offset, kh.partition_leader_epoch), (4_242, 9));
        assert_eq!(kh.attributes, i16::from_be_bytes([kafka[21], kafka[22]]));
        assert_eq!(
            read_back(&decode_kafka_records(served).expect("decodes")),
            records
        );

        // LogAppendTime topic: serve the patched header, then the rest verbatim.
        let append_time = view.header().log_append_time_ms;
        let patched = log_append_time_kafka_header(served, append_time).expect("header patches");
        let mut log_append = patched.to_vec();
        log_append.extend_from_slice(&served[KAFKA_HEADER_BYTES..]);
        let kh = check_kafka_batch(&log_append).expect("patched CRC holds");
        assert_eq!(
            kh.strata_attributes().timestamp_type(),
            TimestampType::LogAppendTime
        );
        assert_eq!(kh.strata_attributes().compression(), compression);
        assert_eq!(kh.max_timestamp_ms, 1_800_000_000_000);
        assert_eq!((kh.base_offset, kh.partition_leader_epoch), (4_242, 9));
        let mut in_place = served.to_vec();
        stamp_kafka_log_append_time(&mut in_place, append_time).expect("patches");
        assert_eq!(in_place, log_append);
        // It still wraps as a strata batch (what a replica or re-produce would see).
        validate_batch(&wrap_kafka_batch(&log_append).expect("wraps")).expect("valid");
    }
}

#[test]
fn a_decompression_bomb_is_an_error_not_an_allocation() {
    let mut b = KafkaBatchBuilder::new().with_compression(Compression::Zstd);
    b.push(0, None, Some(b"v"), &[]);
    let template = b.build();
    let bomb =
        kafka_compression::compress(Compression::Zstd, &vec![0u8; KAFKA_RECORDS_BYTES_MAX + 1])
            .expect("compresses");
    assert!(
        bomb.len() < 64 * 1024,
        "zeros compress to {} bytes",
        bomb.len()
    );
    let mut kafka = template[..KAFKA_HEADER_BYTES].to_vec();
    kafka.extend_from_slice(&bomb);
    let batch_length = (kafka.len() - 12) as i32;
    kafka[8..12].copy_from_slice(&batch_length.to_be_bytes());
    fix_kafka_crc(&mut kafka);
    let bytes = wrap_kafka_batch(&kafka).expect("header is sound");
    let expected = BatchError::DecompressedTooLarge {
        compression: Compression::Zstd,
        max_bytes: KAFKA_RECORDS_BYTES_MAX,
    };
    assert_eq!(validate_batch(&bytes).err(), Some(expected.clone()));
    assert_eq!(decode_kafka_records(&kafka).err(), Some(expected));
}

#[test]
fn records_short_of_the_count_are_caught_after_decompression() {
    let records = sample_records();
    for compression in CODECS {
        // Compress only the first half of the records under a header claiming all.
        let full = build(&records, Compression::None);
        let half = build(&records[..300], Compression::None);
        let mut kafka = full[..KAFKA_HEADER_BYTES].to_vec();
        kafka.extend_from_slice(
            &kafka_compression::compress(compression, &half[KAFKA_HEADER_BYTES..])
                .expect("compresses"),
        );
        kafka[22] = compression.code();
        let batch_length = (kafka.len() - 12) as i32;
        kafka[8..12].copy_from_slice(&batch_length.to_be_bytes());
        fix_kafka_crc(&mut kafka);
        let bytes = wrap_kafka_batch(&kafka).expect("header is sound");
        assert_eq!(
            validate_batch(&bytes).err(),
            Some(BatchError::RecordCountMismatch {
                header: 600,
                payload: 300
            }),
            "{compression:?}"
        );
    }
}

fn bytes(len_max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..len_max)
}

fn record() -> impl Strategy<Value = Record> {
    (
        -1_000i64..1_000,
        proptest::option::of(bytes(24)),
        proptest::option::of(bytes(200)),
        proptest::collection::vec(("[a-z\u{e9}]{0,12}", proptest::option::of(bytes(12))), 0..3),
    )
}

fn codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(CODECS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn compressed_batches_round_trip(
        records in proptest::collection::vec(record(), 1..20),
        compression in codec(),
    ) {
        let kafka = build(&records, compression);
        let bytes = wrap_kafka_batch(&kafka).expect("wraps");
        let (_, decoded) = validate_kafka_batch(&bytes).expect("validates");
        prop_assert_eq!(read_back(&decoded), records);
    }

    /// Any byte of the compressed records flipped, CRCs fixed so the codec sees it:
    /// validation and decoding end in a value or a typed error, never a panic, and
    /// whatever validates decodes in full.
    #[test]
    fn corrupt_compressed_records_never_panic(
        records in proptest::collection::vec(record(), 1..8),
        compression in codec(),
        at in any::<proptest::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut kafka = build(&records, compression);
        let at = KAFKA_HEADER_BYTES + at.index(kafka.len() - KAFKA_HEADER_BYTES);
        kafka[at] ^= flip;
        fix_kafka_crc(&mut kafka);
        let _ = decode_kafka_records(&kafka).map(|d| d.iter().count());
        let Ok(bytes) = wrap_kafka_batch(&kafka) else { return Ok(()) };
        if let Ok((_, decoded)) = validate_kafka_batch(&bytes) {
            for record in decoded.iter() {
                prop_assert!(record.is_ok());
            }
        }
    }
}
