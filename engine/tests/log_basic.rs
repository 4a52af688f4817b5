//! Append, read, reopen, roll, truncate and timestamp lookup on one log.

mod common;

use common::*;
use strata_engine::segment::{segment_path, INDEX_SUFFIX};
use strata_engine::{run_local, EngineError, Log, LogConfig, LogEnv};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

#[test]
fn append_read_and_reopen_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = Log::open(&path, LogConfig::default(), LogEnv::default())
            .await
            .unwrap();
        let mut expected = Vec::new();
        for i in 0..50u64 {
            let info = log
                .append(batch(i, 3, 100, 1000 + i as i64), durable())
                .await
                .unwrap();
            assert_eq!(info.base_offset, i as i64 * 3);
            assert_eq!(info.last_offset, i as i64 * 3 + 2);
            expected.push((info.base_offset, info.last_offset));
        }
        assert_eq!(log.log_end_offset(), 150);
        assert_eq!(log.durable_end_offset(), 150);
        let got = read_all(&log).await;
        assert_eq!(got.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(), expected);
        assert_eq!(got[7].2, vec!["7:0:", "7:1:", "7:2:"]);
        // Readers stop at the high watermark, which the owner moves.
        assert!(log.read(4, 1, None).await.unwrap().batches.is_empty());
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_for_data_beyond(3).await })
        };
        log.set_high_watermark(log.log_end_offset());
        waiter.await.unwrap();
        // A read from the middle of a batch returns that whole batch.
        let r = log.read(4, 1, None).await.unwrap();
        assert_eq!(r.batches.len(), 1);
        assert_eq!(
            strata_schema::check_batch(&r.batches[0])
                .unwrap()
                .base_offset,
            3
        );
        log.close().await.unwrap();
        assert!(path.join(".clean").exists());

        let log = Log::open(&path, LogConfig::default(), LogEnv::default())
            .await
            .unwrap();
        assert!(!path.join(".clean").exists(), "marker removed on open");
        assert_eq!(log.log_end_offset(), 150);
        assert_eq!(
            read_all(&log).await,
            got,
            "reads come from disk after reopen"
        );
        let info = log.append(batch(99, 1, 10, 5000), durable()).await.unwrap();
        assert_eq!(info.base_offset, 150);
        log.close().await.unwrap();
    });
}

#[test]
fn reopen_after_unclean_stop_keeps_durable_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = Log::open(&path, small_segments(), LogEnv::default())
            .await
            .unwrap();
        for i in 0..200u64 {
            log.append(batch(i, 2, 300, i as i64), durable())
                .await
                .unwrap();
        }
        assert!(
            log.segment_count() >= 3,
            "rolled by size: {}",
            log.segment_count()
        );
        let before = read_all(&log).await;
        drop(log); // no close: no marker, recovery must scan

        let log = Log::open(&path, small_segments(), LogEnv::default())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), 400);
        assert_eq!(read_all(&log).await, before);
        let info = log.append(batch(1000, 1, 10, 0), durable()).await.unwrap();
        assert_eq!(info.base_offset, 400);
    });
}

#[test]
fn roll_truncate_and_timestamp_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = Log::open(&path, small_segments(), LogEnv::default())
            .await
            .unwrap();
        for i in 0..100u64 {
            log.append(batch(i, 1, 500, 10_000 + 10 * i as i64), written())
                .await
                .unwrap();
        }
        log.sync().await.unwrap();
        assert_eq!(
            log.offset_for_timestamp(0).await.unwrap(),
            Some((0, 10_000))
        );
        assert_eq!(
            log.offset_for_timestamp(10_055).await.unwrap(),
            Some((6, 10_060))
        );
        assert_eq!(
            log.offset_for_timestamp(10_990).await.unwrap(),
            Some((99, 10_990))
        );
        assert_eq!(log.offset_for_timestamp(20_000).await.unwrap(), None);

        log.truncate(60).await.unwrap();
        assert_eq!(log.log_end_offset(), 60);
        let all = read_all(&log).await;
        assert_eq!(all.len(), 60);
        assert_eq!(all.last().unwrap().0, 59);
        let info = log
            .append(batch(500, 2, 10, 99_999), durable())
            .await
            .unwrap();
        assert_eq!(info.base_offset, 60);
        assert_eq!(
            log.offset_for_timestamp(99_999).await.unwrap(),
            Some((60, 99_999))
        );

        let multi = batch(600, 5, 10, 0);
        let info = log.append(multi, durable()).await.unwrap();
        assert!(matches!(
            log.truncate(info.base_offset + 2).await,
            Err(EngineError::NotBatchBoundary { .. })
        ));
        assert!(matches!(
            log.truncate(1_000).await,
            Err(EngineError::OffsetOutOfRange { .. })
        ));
        log.roll().await.unwrap();
        let segs = log.segment_count();
        log.truncate(10).await.unwrap();
        assert!(log.segment_count() < segs);
        drop(log);
        let log = Log::open(&path, small_segments(), LogEnv::default())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(read_all(&log).await.len(), 10);
    });
}

#[test]
fn log_append_time_drives_time_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let cfg = LogConfig {
            log_append_time: true,
            ..small_segments()
        };
        let log = Log::open(&path, cfg.clone(), LogEnv::default())
            .await
            .unwrap();
        // Producer timestamps far in the past are ignored for lookups.
        let first = log.append(batch(1, 2, 10, 5), durable()).await.unwrap();
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
        let second = log.append(batch(2, 2, 10, 5), durable()).await.unwrap();
        assert!(second.log_append_time_ms > first.log_append_time_ms);
        assert_eq!(
            log.offset_for_timestamp(6).await.unwrap().map(|x| x.0),
            Some(0)
        );
        let found = log
            .offset_for_timestamp(first.log_append_time_ms + 1)
            .await
            .unwrap();
        assert_eq!(found, Some((2, second.log_append_time_ms)));
        drop(log);
        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        let found = log
            .offset_for_timestamp(first.log_append_time_ms + 1)
            .await
            .unwrap();
        assert_eq!(
            found,
            Some((2, second.log_append_time_ms)),
            "after recovery"
        );
    });
}

#[test]
fn reading_many_segments_keeps_few_files_open() {
    let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let cfg = LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        };
        let log = Log::open(&path, cfg.clone(), LogEnv::default())
            .await
            .unwrap();
        for i in 0..300u64 {
            log.append(batch(i, 1, 1500, 0), written()).await.unwrap();
        }
        log.close().await.unwrap();
        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        assert!(log.segment_count() >= 150);
        let before = open_fds();
        assert_eq!(read_all(&log).await.len(), 300);
        let after = open_fds();
        assert!(after <= before + 20, "{before} -> {after} open files");
    });
}

async fn open_small(path: &std::path::Path) -> Log {
    Log::open(path, small_segments(), LogEnv::default())
        .await
        .unwrap()
}

/// A cut back to the end the log was opened at changes the files all the same: the
/// close must re-index, or the next clean open trusts an index past the segment's end.
#[test]
fn truncating_back_to_the_opened_end_then_closing_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open_small(&path).await;
        // A rolled segment has its index on disk; the cut makes it active again.
        for i in 0..3u64 {
            log.append(batch(i, 4, 1400, 1000), written())
                .await
                .unwrap();
        }
        log.roll().await.unwrap();
        log.append(batch(3, 1, 10, 1000), written()).await.unwrap();
        log.truncate(0).await.unwrap();
        log.close().await.unwrap();
        let log = open_small(&path).await;
        assert_eq!(log.log_end_offset(), 0);
        let info = log.append(batch(7, 1, 10, 2000), durable()).await.unwrap();
        assert_eq!(info.base_offset, 0);
        log.set_high_watermark(log.log_end_offset());
        let got = read_all(&log).await;
        assert_eq!(got, vec![(0, 0, vec!["7:0:".to_string()])]);
        log.close().await.unwrap();
        let log = open_small(&path).await;
        log.set_high_watermark(log.log_end_offset());
        assert_eq!(read_all(&log).await, got);
    });
}

/// A clean marker beside an index that points past the active segment's end (files
/// that disagree) is not trusted: the segment is recovered and reads stay whole.
#[test]
fn a_clean_marker_with_an_index_past_the_segment_end_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open_small(&path).await;
        for i in 0..3u64 {
            log.append(batch(i, 2, 100, 1000), durable()).await.unwrap();
        }
        log.close().await.unwrap();
        let index = segment_path(&path, 0, INDEX_SUFFIX);
        // Well-formed entries (the first at position 0), the second past the end.
        let mut stale = Vec::new();
        for (rel, pos) in [(0u32, 0u32), (1, 1 << 30)] {
            stale.extend_from_slice(&rel.to_le_bytes());
            stale.extend_from_slice(&pos.to_le_bytes());
        }
        std::fs::write(&index, stale).unwrap();
        let log = open_small(&path).await;
        assert_eq!(log.log_end_offset(), 6);
        log.set_high_watermark(log.log_end_offset());
        let got: Vec<(i64, i64)> = read_all(&log).await.iter().map(|b| (b.0, b.1)).collect();
        assert_eq!(got, vec![(0, 1), (2, 3), (4, 5)]);
        let info = log.append(batch(9, 1, 10, 2000), durable()).await.unwrap();
        assert_eq!(info.base_offset, 6);
    });
}
