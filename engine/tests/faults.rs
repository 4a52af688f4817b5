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

/// A fault that heals (full disk, no descriptors) does not fence: the write waits
/// and is retried, appends meanwhile are refused with the condition, and once it
/// passes everything queued is written and acknowledged.
fn check_healing_fault(fault: Fault, times: u32, expect: fn(&EngineError) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let faults = FaultInjector::new();
        let log = Log::open(&path, LogConfig::default(), env_with(&faults))
            .await
            .unwrap();
        log.append(batch(0, 2, 200, 0), durable()).await.unwrap();
        // A fresh segment: the next write opens its files again.
        log.roll().await.unwrap();
        faults.arm(fault, 0, times);
        let stuck = {
            let log = log.clone();
            glommio::spawn_local(async move { log.append(batch(1, 2, 200, 0), durable()).await })
        };
        for _ in 0..10_000 {
            if log.stalled_reason().is_some() {
                break;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(
            log.stalled_reason().is_some(),
            "{fault:?} stalls the writes"
        );
        // While the fault lasts, new appends are refused with it, not fenced.
        let refused = log
            .append(batch(2, 1, 10, 0), durable())
            .await
            .expect_err("an append during the fault is refused");
        assert!(expect(&refused), "{fault:?}: refused with {refused:?}");
        assert!(refused.heals(), "{refused:?}");
        assert!(
            log.fenced_reason().is_none(),
            "a condition that heals does not fence"
        );
        assert!(log.stalled_reason().is_some());
        // The fault passes: the stuck append completes by itself.
        let info = stuck
            .await
            .expect("the stalled append completes once the fault passes");
        assert_eq!(faults.fired_count(), u64::from(times));
        assert!(log.stalled_reason().is_none());
        let next = log.append(batch(3, 1, 10, 0), durable()).await.unwrap();
        assert!(next.base_offset > info.last_offset);
        let all = read_all(&log).await;
        assert!(all.iter().any(|(base, _, _)| *base == info.base_offset));
        log.close().await.unwrap();
        drop(log);
        let log = Log::open(&path, LogConfig::default(), LogEnv::default())
            .await
            .unwrap();
        assert_eq!(
            read_all(&log).await,
            all,
            "everything acknowledged survives"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn full_disk_stalls_writes_and_they_resume_without_a_fence() {
    check_healing_fault(Fault::NoSpace, 3, |e| {
        matches!(e, EngineError::NoSpace { .. }) && e.to_string().contains("no space left")
    });
}

#[test]
fn running_out_of_descriptors_delays_writes_and_does_not_fence() {
    check_healing_fault(Fault::TooManyOpenFiles, 3, |e| {
        matches!(e, EngineError::Resource { .. }) && e.to_string().contains("open files")
    });
}

#[test]
fn errnos_are_classified_as_faults_or_conditions_that_heal() {
    let io = |errno| std::io::Error::from_raw_os_error(errno);
    for errno in [libc::EMFILE, libc::ENFILE, libc::ENOMEM] {
        let e = EngineError::io("open", "/d/x", io(errno));
        assert!(matches!(e, EngineError::Resource { .. }), "{errno}: {e:?}");
        assert!(e.heals());
    }
    // As glommio reports them: the errno only in the text.
    let glommio_emfile = std::io::Error::other(
        "Too many open files (os error 24), op: Creating path: Some(\"/d/x.index\") with fd: None",
    );
    assert!(matches!(
        EngineError::io("open", "/d/x", glommio_emfile),
        EngineError::Resource { .. }
    ));
    let e = EngineError::io("write", "/d/x", io(libc::ENOSPC));
    assert!(matches!(e, EngineError::NoSpace { .. }) && e.heals());
    for errno in [libc::EIO, libc::EROFS, libc::EBADF] {
        let e = EngineError::io("write", "/d/x", io(errno));
        assert!(matches!(e, EngineError::Io { .. }), "{errno}: {e:?}");
        assert!(!e.heals(), "{errno} fences");
    }
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
