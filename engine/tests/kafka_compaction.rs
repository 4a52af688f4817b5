//! Compaction of Kafka-format batches (as Kafka clients write them, compressed with
//! any codec) and of logs mixing them with native batches: the newest record per key
//! stays at its offset, tombstones expire after `delete.retention.ms`, every batch
//! stays valid (both CRCs), and a crash in the middle leaves the log as it was.

mod common;

use common::*;
use strata_engine::{run_local, CleanupPolicy, Fault, FaultInjector, Log, LogConfig, LogEnv};
use strata_schema::{
    decode_kafka_records, validate_batch, wrap_kafka_batch, Compression, KafkaBatchBuilder,
    PayloadFormat,
};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 1024,
        cleanup_policy: CleanupPolicy::Compact,
        retention_ms: None,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

/// A Kafka client's batch, wrapped as stored: one record per (key, value).
fn kafka(
    codec: Compression,
    records: &[(&str, Option<&str>)],
    timestamp_ms: i64,
    producer: Option<(i64, i16, i32)>,
) -> Vec<u8> {
    let mut b = KafkaBatchBuilder::new().with_compression(codec);
    if let Some((id, epoch, seq)) = producer {
        b = b.with_producer(id, epoch, seq);
    }
    for (k, v) in records {
        b.push(
            timestamp_ms,
            Some(k.as_bytes()),
            v.map(str::as_bytes),
            &[("h", Some(b"x"))],
        );
    }
    wrap_kafka_batch(&b.build()).expect("a valid kafka batch")
}

/// Every record of the log, either format: (offset, key, value).
async fn records(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut out = Vec::new();
    for b in all_batches(log).await {
        let view = validate_batch(&b).expect("stored batch validates, both CRCs");
        let h = view.header();
        match h.payload_format {
            PayloadFormat::Native => {
                for r in view.records().expect("native") {
                    out.push((
                        r.offset(),
                        text(r.key().unwrap_or_default()),
                        r.value().map(text),
                    ));
                }
            }
            PayloadFormat::Kafka => {
                let decoded = decode_kafka_records(view.payload()).expect("kafka records");
                assert_eq!(decoded.header().base_offset, h.base_offset);
                for r in decoded.iter() {
                    let r = r.expect("kafka record");
                    assert_eq!(r.headers.len(), 1, "headers survive compaction");
                    out.push((
                        h.base_offset + i64::from(r.offset_delta),
                        text(r.key.unwrap_or_default()),
                        r.value.map(text),
                    ));
                }
            }
        }
    }
    out
}

/// The compression codecs of the stored Kafka batches.
async fn kafka_codecs(log: &Log) -> Vec<Compression> {
    all_batches(log)
        .await
        .iter()
        .filter_map(|b| {
            let view = validate_batch(b).unwrap();
            (view.header().payload_format == PayloadFormat::Kafka)
                .then(|| view.header().attributes.compression())
        })
        .collect()
}

#[test]
fn kafka_batches_compact_with_every_codec() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run_local(move || async move {
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            let pad = "p".repeat(900);
            let ts = 1_000_000;
            let values: Vec<String> = (0..30).map(|round| format!("{round}{pad}")).collect();
            for v in &values {
                let batch = [
                    ("a", Some(v.as_str())),
                    ("b", Some(v.as_str())),
                    ("c", Some(v.as_str())),
                ];
                log.append(kafka(codec, &batch, ts, None), durable())
                    .await
                    .unwrap();
            }
            // Offsets 90..=92: a is overwritten below, so this batch loses its first
            // record and is rebuilt with a gap at its start.
            let last = [
                ("a", Some("a-old")),
                ("b", Some("b-last")),
                ("c", Some("c-last")),
            ];
            log.append(kafka(codec, &last, ts, None), durable())
                .await
                .unwrap();
            log.append(
                kafka(codec, &[("a", Some("a-last")), ("d", None)], ts, None),
                durable(),
            )
            .await
            .unwrap();
            log.roll().await.unwrap();
            let end = log.log_end_offset();
            assert_eq!(end, 95);
            let before = log.size_bytes();

            let out = log.compact(ts + 10).await.unwrap();
            assert_eq!(out.records_removed, 91, "{codec:?}: {out:?}");
            assert!(log.size_bytes() < before / 5, "{codec:?}");
            let kept = records(&log).await;
            assert_eq!(
                kept,
                [
                    (91, "b".into(), Some("b-last".into())),
                    (92, "c".into(), Some("c-last".into())),
                    (93, "a".into(), Some("a-last".into())),
                    (94, "d".into(), None),
                ],
                "{codec:?}: newest per key at its offset; the young tombstone stays"
            );
            assert!(
                kafka_codecs(&log).await.iter().all(|&c| c == codec),
                "{codec:?}: rebuilt batches keep their codec"
            );
            // The rebuilt batch keeps its span: base 90, last offset 92.
            let spans: Vec<(i64, i64)> = all_batches(&log)
                .await
                .iter()
                .map(|b| {
                    let h = *validate_batch(b).unwrap().header();
                    (h.base_offset, h.last_offset())
                })
                .collect();
            assert_eq!(spans, [(90, 92), (93, 94)], "{codec:?}");
            assert_eq!(log.log_end_offset(), end);

            // Once past delete.retention.ms the tombstone goes too.
            log.compact(ts + 5_000).await.unwrap();
            let kept = records(&log).await;
            assert_eq!(kept.len(), 3, "{codec:?}: {kept:?}");
            assert!(kept.iter().all(|(_, k, _)| k != "d"));

            // It survives a reopen, and appends continue at the old end.
            drop(log);
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            assert_eq!(records(&log).await, kept);
            let info = log
                .append(kafka(codec, &[("a", Some("new"))], ts, None), durable())
                .await
                .unwrap();
            assert_eq!(info.base_offset, end);
        });
    }
}

#[test]
fn native_and_kafka_batches_share_one_key_space() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
        let pad = "p".repeat(900);
        let ts = 1_000_000;
        for round in 0..20 {
            let v = format!("{round}{pad}");
            // Key "k" alternates between formats; "n" is native only, "f" Kafka only.
            if round % 2 == 0 {
                log.append(keyed(&[("k", Some(&v)), ("n", Some(&v))], ts), durable())
                    .await
                    .unwrap();
            } else {
                let batch = [("k", Some(v.as_str())), ("f", Some(v.as_str()))];
                log.append(kafka(Compression::Zstd, &batch, ts, None), durable())
                    .await
                    .unwrap();
            }
        }
        // The newest "k" is native, the newest "f" Kafka; "n" is deleted by Kafka.
        log.append(keyed(&[("k", Some("k-native"))], ts), durable())
            .await
            .unwrap();
        log.append(
            kafka(
                Compression::Lz4,
                &[("f", Some("f-kafka")), ("n", None)],
                ts,
                None,
            ),
            durable(),
        )
        .await
        .unwrap();
        log.roll().await.unwrap();
        log.compact(ts + 10).await.unwrap();
        assert_eq!(
            records(&log).await,
            [
                (40, "k".into(), Some("k-native".into())),
                (41, "f".into(), Some("f-kafka".into())),
                (42, "n".into(), None),
            ]
        );
        log.compact(ts + 5_000).await.unwrap();
        assert_eq!(records(&log).await.len(), 2);
    });
}

#[test]
fn a_small_key_map_compacts_window_by_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
        let ts = 1_000_000;
        let keys: Vec<String> = (0..40).map(|k| format!("key-{k:04}")).collect();
        for round in 0..5 {
            for chunk in keys.chunks(4) {
                let v = format!("{round}{}", "p".repeat(300));
                let batch: Vec<(&str, Option<&str>)> = chunk
                    .iter()
                    .map(|k| (k.as_str(), Some(v.as_str())))
                    .collect();
                log.append(kafka(Compression::Snappy, &batch, ts, None), durable())
                    .await
                    .unwrap();
            }
        }
        log.roll().await.unwrap();
        // Room for about 10 of the 40 keys per pass.
        let bytes_max = 10 * (8 + 64);
        let mut from = 0;
        let mut passes = 0;
        let mut windows = 0;
        while passes < 100 {
            let out = log.compact_with(ts + 10, from, bytes_max).await.unwrap();
            passes += 1;
            match out.key_map_full_at_offset {
                Some(at) => {
                    assert!(at > from, "the window moves forward");
                    from = at;
                    windows += 1;
                }
                None if windows > 0 => break,
                None => panic!("a map of 10 keys cannot hold 40: {out:?}"),
            }
        }
        assert!(windows >= 3, "{windows} windows");
        let kept = records(&log).await;
        assert_eq!(kept.len(), 40, "one record per key: {kept:?}");
        assert!(kept
            .iter()
            .all(|(_, _, v)| v.as_deref().unwrap().starts_with('4')));
    });
}

#[test]
fn an_idempotent_producers_remembered_batch_is_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
        let ts = 1_000_000;
        let pad = "p".repeat(900);
        for seq in 0..10 {
            let v = format!("{seq}{pad}");
            log.append(
                kafka(Compression::Gzip, &[("a", Some(&v))], ts, Some((7, 0, seq))),
                durable(),
            )
            .await
            .unwrap();
        }
        // Everything the producer wrote is overwritten by a plain producer.
        for round in 0..10 {
            let v = format!("plain{round}{pad}");
            log.append(
                kafka(Compression::Gzip, &[("a", Some(&v))], ts, None),
                durable(),
            )
            .await
            .unwrap();
        }
        log.roll().await.unwrap();
        log.compact(ts + 10).await.unwrap();
        let remembered: Vec<i64> = log
            .producer(7)
            .expect("producer 7 is tracked")
            .batches()
            .iter()
            .map(|b| b.base_offset)
            .collect();
        assert_eq!(remembered, [5, 6, 7, 8, 9]);
        let offsets: Vec<i64> = records(&log).await.iter().map(|r| r.0).collect();
        // Kafka keeps such batches as empty headers to preserve the producer's
        // sequence; strata keeps them whole (see compaction.rs).
        assert_eq!(offsets, [5, 6, 7, 8, 9, 19]);
    });
}

#[test]
fn a_crash_during_compaction_leaves_the_log_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let faults = FaultInjector::new();
        let env = LogEnv {
            faults: faults.clone(),
            ..LogEnv::default()
        };
        let log = Log::open(&path, config(), env).await.unwrap();
        let ts = 1_000_000;
        let pad = "p".repeat(900);
        for round in 0..30 {
            let v = format!("{round}{pad}");
            log.append(
                kafka(
                    Compression::Lz4,
                    &[("a", Some(&v)), ("b", Some(&v))],
                    ts,
                    None,
                ),
                durable(),
            )
            .await
            .unwrap();
        }
        log.roll().await.unwrap();
        let before = records(&log).await;
        // The cleaned segment's fdatasync fails: the pass stops before any swap, and
        // the process dies with the half-written `.cleaned` file on disk.
        faults.arm(Fault::SyncError, 0, 1);
        assert!(log.compact(ts + 10).await.is_err());
        assert_eq!(faults.fired_count(), 1);
        let leftovers = || {
            std::fs::read_dir(&path)
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().ends_with("cleaned")
                })
                .count()
        };
        assert_eq!(leftovers(), 1);
        drop(log);
        let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
        assert_eq!(leftovers(), 0, "recovery removes the leftover");
        assert_eq!(records(&log).await, before, "nothing changed");
        // The next pass completes (the reopened log's last segment holding data is
        // active again: roll it first).
        log.roll().await.unwrap();
        log.compact(ts + 10).await.unwrap();
        let kept = records(&log).await;
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].0, 58);
    });
}
