//! Retention and compaction as a user sees them: old segments go, the newest value
//! per key stays, tombstones expire.

mod common;

use common::*;
use strata_engine::{run_local, CleanupPolicy, Log, LogConfig, LogEnv};

fn config(policy: CleanupPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 1024,
        cleanup_policy: policy,
        retention_ms: None,
        ..LogConfig::default()
    }
}

#[test]
fn retention_by_time_deletes_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let mut cfg = config(CleanupPolicy::Delete);
        cfg.retention_ms = Some(60_000);
        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        let now = 10_000_000i64;
        for i in 0..60u64 {
            // The first 40 batches are two minutes old, the rest are fresh.
            let ts = if i < 40 { now - 120_000 } else { now - 1_000 };
            log.append(batch(i, 1, 1000, ts), durable()).await.unwrap();
        }
        let segs_before = log.segment_count();
        log.set_high_watermark(log.log_end_offset());
        let out = log.apply_retention(now).await.unwrap();
        assert!(out.segments_deleted > 0);
        assert!(log.segment_count() < segs_before);
        let start = log.log_start_offset();
        assert!(start > 0 && start <= 40, "start {start}");
        let remaining = read_all(&log).await;
        assert_eq!(remaining.first().unwrap().0, start);
        assert!(remaining.iter().any(|b| b.0 == 39) || start == 40);
        assert_eq!(remaining.last().unwrap().0, 59, "fresh data kept");
        // Old reads now fail with a clear range error.
        assert!(log.read(0, 100, None).await.is_err());
        drop(log);
        let log = Log::open(&path, config(CleanupPolicy::Delete), LogEnv::default())
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), start, "deletion survives reopen");
    });
}

#[test]
fn retention_by_size_keeps_at_most_the_limit_plus_active() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let mut cfg = config(CleanupPolicy::Delete);
        cfg.retention_bytes = Some(40 * 1024);
        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        for i in 0..200u64 {
            log.append(batch(i, 1, 1000, 0), durable()).await.unwrap();
        }
        log.set_high_watermark(log.log_end_offset());
        let out = log.apply_retention(0).await.unwrap();
        assert!(out.segments_deleted > 0);
        assert!(
            log.size_bytes() <= 40 * 1024 + 16 * 1024,
            "{}",
            log.size_bytes()
        );
        assert!(log.size_bytes() >= 40 * 1024 - 16 * 1024);
        assert_eq!(log.log_end_offset(), 200);
    });
}

#[test]
fn retention_never_deletes_records_at_or_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let mut cfg = config(CleanupPolicy::Delete);
        cfg.retention_bytes = Some(1);
        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        for i in 0..200u64 {
            log.append(batch(i, 1, 1000, 0), durable()).await.unwrap();
        }
        // A replica whose commit offset trails its log: only whole segments below it go.
        log.set_high_watermark(100);
        log.apply_retention(0).await.unwrap();
        let start = log.log_start_offset();
        assert!(start > 0 && start <= 100, "start {start}");
        assert_eq!(read_all(&log).await.last().unwrap().0, 199);
        log.set_high_watermark(0);
        assert_eq!(log.high_watermark(), start, "clamped to the log start");
        assert_eq!(log.apply_retention(0).await.unwrap().segments_deleted, 0);
        log.set_high_watermark(200);
        log.apply_retention(0).await.unwrap();
        assert!(log.log_start_offset() > 100);
    });
}

#[test]
fn compact_policy_is_not_deleted_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let mut cfg = config(CleanupPolicy::Compact);
        cfg.retention_bytes = Some(1);
        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        for i in 0..50u64 {
            log.append(batch(i, 1, 1000, 0), durable()).await.unwrap();
        }
        assert_eq!(log.apply_retention(0).await.unwrap().segments_deleted, 0);
        assert_eq!(log.log_start_offset(), 0);
    });
}

#[test]
fn compaction_keeps_newest_value_per_key_and_expires_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let mut cfg = config(CleanupPolicy::Compact);
        cfg.delete_retention_ms = 1_000;
        let log = Log::open(&path, cfg.clone(), LogEnv::default())
            .await
            .unwrap();
        let pad = "p".repeat(900);
        let ts = 1_000_000;
        for round in 0..30 {
            for key in ["a", "b", "c"] {
                let v = format!("{key}{round}{pad}");
                log.append(keyed(&[(key, Some(&v))], ts), durable())
                    .await
                    .unwrap();
            }
        }
        log.append(keyed(&[("b", None)], ts), durable())
            .await
            .unwrap(); // delete b
        log.append(keyed(&[("d", Some("d-only"))], ts), durable())
            .await
            .unwrap();
        log.roll().await.unwrap();
        let end = log.log_end_offset();
        let before = log.size_bytes();

        // Tombstones are kept while young.
        let out = log.compact(ts + 10).await.unwrap();
        assert!(out.records_removed > 80, "{out:?}");
        assert!(
            log.size_bytes() < before / 10,
            "{} vs {before}",
            log.size_bytes()
        );
        let kv = read_kv(&log).await;
        let latest = |k: &str| kv.iter().rev().find(|(_, key, _)| key == k).cloned();
        assert_eq!(latest("a").unwrap().2.unwrap()[..3].to_string(), "a29");
        assert_eq!(latest("c").unwrap().2.unwrap()[..3].to_string(), "c29");
        assert_eq!(latest("b").unwrap().2, None, "tombstone kept while young");
        assert_eq!(latest("d").unwrap().2.as_deref(), Some("d-only"));
        assert_eq!(kv.iter().filter(|(_, k, _)| k == "a").count(), 1);
        // Offsets never change.
        let a_offset = latest("a").unwrap().0;
        assert_eq!(a_offset, 3 * 29);
        assert_eq!(log.log_end_offset(), end);

        // Later the tombstone expires and b is gone entirely.
        log.compact(ts + 5_000).await.unwrap();
        let kv = read_kv(&log).await;
        assert!(kv.iter().all(|(_, k, _)| k != "b"), "{kv:?}");
        assert_eq!(kv.len(), 3);

        // Compaction survives reopen.
        drop(log);
        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        assert_eq!(read_kv(&log).await, kv);
        let info = log
            .append(keyed(&[("a", Some("new"))], ts), durable())
            .await
            .unwrap();
        assert_eq!(info.base_offset, end);
    });
}
