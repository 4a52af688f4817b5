//! Damage that is not a torn tail is reported and fences the partition; it is never
//! skipped silently.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use strata_engine::{run_local, EngineError, Log, LogConfig, LogEnv};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 32 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

/// One index entry per segment: recovery validates the whole active segment.
fn whole_scan() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

fn flip_byte(path: &std::path::Path, at: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0xff;
    f.write_all_at(&b, at).unwrap();
    f.sync_all().unwrap();
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn corrupt_batch_in_a_closed_segment_fences_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let p2 = path.clone();
    run_local(move || async move {
        let log = Log::open(&p2, config(), LogEnv::default()).await.unwrap();
        for i in 0..200u64 {
            log.append(batch(i, 1, 500, 0), durable()).await.unwrap();
        }
        log.close().await.unwrap();
    });
    let segs = segment_files(&path);
    assert!(segs.len() >= 3);
    flip_byte(&segs[0], 3000);
    run_local(move || async move {
        let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
        let end = log.log_end_offset();
        let err = log.read(0, 1 << 20, Some(end)).await.unwrap_err();
        assert!(matches!(err, EngineError::Corrupt { .. }), "{err:?}");
        assert!(log.fenced_reason().is_some());
        let append = log.append(batch(1, 1, 1, 0), durable()).await.unwrap_err();
        assert!(matches!(append, EngineError::Fenced { .. }));
        // Data before the damage is still served.
        let ok = log.read(0, 100, Some(1)).await.unwrap();
        assert_eq!(ok.batches.len(), 1);
    });
}

#[test]
fn corrupt_batch_followed_by_valid_ones_fences_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let p2 = path.clone();
    run_local(move || async move {
        let log = Log::open(&p2, whole_scan(), LogEnv::default())
            .await
            .unwrap();
        for i in 0..20u64 {
            log.append(batch(i, 1, 500, 0), durable()).await.unwrap();
        }
        drop(log); // unclean: open scans the tail
    });
    let segs = segment_files(&path);
    // Damage the payload of a batch in the middle of the active segment.
    flip_byte(&segs[0], 5 * 700 + 300);
    run_local(move || async move {
        let log = Log::open(&path, whole_scan(), LogEnv::default())
            .await
            .unwrap();
        let reason = log.fenced_reason().expect("fenced at open");
        assert!(reason.contains("not a torn tail"), "{reason}");
        assert!(log.log_end_offset() < 20);
        let err = log.append(batch(1, 1, 1, 0), durable()).await.unwrap_err();
        assert!(matches!(err, EngineError::Fenced { .. }));
        // The file was not cut: the valid batches after the damage are still on disk.
    });
    let len = std::fs::metadata(&segment_files(&dir.path().join("t-0"))[0])
        .unwrap()
        .len();
    assert!(len > 19 * 500, "no data was cut: {len}");
}

#[test]
fn missing_and_stale_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let p2 = path.clone();
    let before = run_local(move || async move {
        let log = Log::open(&p2, config(), LogEnv::default()).await.unwrap();
        for i in 0..200u64 {
            log.append(batch(i, 2, 300, 1000 + i as i64), durable())
                .await
                .unwrap();
        }
        let all = read_all(&log).await;
        log.close().await.unwrap();
        all
    });
    let segs = segment_files(&path);
    std::fs::remove_file(segs[0].with_extension("index")).unwrap();
    std::fs::remove_file(segs[0].with_extension("timeindex")).unwrap();
    // A stale index: entries that point at the wrong place.
    std::fs::write(
        segs[1].with_extension("index"),
        [0u8, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0],
    )
    .unwrap();
    run_local(move || async move {
        let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
        assert!(segs[0].with_extension("index").exists(), "rebuilt at open");
        assert_eq!(read_all(&log).await, before);
        assert!(log.fenced_reason().is_none());
        assert_eq!(
            log.offset_for_timestamp(1050).await.unwrap().map(|x| x.0),
            Some(99)
        );
    });
}
