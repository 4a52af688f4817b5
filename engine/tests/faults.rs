//! Storage faults injected through the one seam: the partition reports a clear
//! error, stays consistent, and loses nothing that was acknowledged as durable.

mod common;

use common::*;
use strata_engine::{run_local, EngineError, Fault, FaultInjector, Log, LogConfig, LogEnv};

fn env_with(faults: &FaultInjector) -> LogEnv {
    LogEnv {
        faults: faults.clone(),
        ..LogEnv::default()
    }
}

fn check_fault(fault: Fault, expect: fn(&EngineError) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let faults = FaultInjector::new();
        let log = Log::open(&path, LogConfig::default(), env_with(&faults))
            .await
            .unwrap();
        for i in 0..10u64 {
            log.append(batch(i, 2, 200, i as i64), durable())
                .await
                .unwrap();
        }
        let acked = read_all(&log).await;
        faults.arm(fault, 0, 1);
        let err = log
            .append(batch(100, 2, 200, 0), durable())
            .await
            .unwrap_err();
        assert!(expect(&err), "{fault:?} gave {err:?}");
        assert_eq!(faults.fired_count(), 1);
        // Fenced: further appends fail clearly, durable data stays readable.
        let again = log
            .append(batch(101, 1, 10, 0), durable())
            .await
            .unwrap_err();
        assert!(matches!(again, EngineError::Fenced { .. }), "{again:?}");
        assert!(log.fenced_reason().unwrap().contains("storage fault"));
        let r = log.read(0, 1 << 20, Some(20)).await.unwrap();
        assert_eq!(r.batches.len(), 10);
        let _ = log.close().await;
        drop(log);

        // Reopening runs recovery; every acknowledged batch is there and appends work.
        let log = Log::open(&path, LogConfig::default(), LogEnv::default())
            .await
            .unwrap();
        let after = read_all(&log).await;
        assert_eq!(&after[..10], &acked[..]);
        assert!(
            after.len() <= 11,
            "at most the unacknowledged batch survived"
        );
        let info = log.append(batch(102, 1, 10, 0), durable()).await.unwrap();
        assert_eq!(info.base_offset, after.last().unwrap().1 + 1);
        log.close().await.unwrap();
    });
}

#[test]
fn fsync_error_fences_and_keeps_acknowledged_data() {
    check_fault(Fault::SyncError, |e| {
        matches!(
            e,
            EngineError::Io {
                op: "fdatasync",
                ..
            }
        )
    });
}

#[test]
fn write_error_fences_and_keeps_acknowledged_data() {
    check_fault(Fault::WriteError, |e| {
        matches!(e, EngineError::Io { op: "write", .. })
    });
}

#[test]
fn full_disk_is_reported_as_such() {
    check_fault(Fault::NoSpace, |e| {
        matches!(e, EngineError::NoSpace { .. }) && e.to_string().contains("no space left")
    });
}

#[test]
fn short_write_leaves_a_torn_tail_that_recovery_cuts() {
    check_fault(Fault::ShortWrite, |e| e.to_string().contains("short write"));
}

#[test]
fn written_but_unsynced_appends_fail_with_the_sync_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let faults = FaultInjector::new();
        let log = Log::open(&path, LogConfig::default(), env_with(&faults))
            .await
            .unwrap();
        faults.arm(Fault::SyncError, 0, 1);
        // Several concurrent durable appends share one failing fdatasync: all fail.
        let tasks: Vec<_> = (0..4u64)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(
                    async move { log.append(batch(i, 1, 100, 0), durable()).await },
                )
            })
            .collect();
        for t in tasks {
            assert!(t.await.is_err());
        }
        assert_eq!(log.durable_end_offset(), 0);
    });
}
