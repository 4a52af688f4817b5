//! Kafka's idempotent producer as a user sees it: a retried batch is answered with the
//! offsets it already has and never written twice, gaps and stale epochs are refused,
//! and all of it holds across clean and unclean restarts, truncation and retention.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use strata_engine::{
    run_local, AppendInfo, CleanupPolicy, EngineError, Log, LogConfig, LogEnv, OpenKind,
};
use strata_schema::NativeBatchBuilder;

/// A batch of `records` records (about 600 bytes each) from producer `pid` at
/// `epoch`, sequences from `seq`.
fn pbatch(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new().with_producer(pid, epoch, seq);
    for i in 0..records {
        let mut value = format!("{pid}:{epoch}:{}:", seq as usize + i).into_bytes();
        value.resize(500, b'x');
        b.push(1_000 + i as i64, Some(b"k"), Some(&value), &[]);
    }
    b.build()
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4 * 1024,
        index_interval_bytes: 512,
        retention_ms: None,
        ..LogConfig::default()
    }
}

async fn open(path: &Path) -> Log {
    Log::open(path, small_segments(), LogEnv::default())
        .await
        .unwrap()
}

/// Appends `count` one-record batches of producer 1, epoch 0, sequences `from..`.
async fn append_seqs(log: &Log, from: i32, count: i32) -> Vec<AppendInfo> {
    let mut out = Vec::new();
    for seq in from..from + count {
        let info = log.append(pbatch(1, 0, seq, 1), durable()).await.unwrap();
        assert!(!info.duplicate, "seq {seq} is new");
        out.push(info);
    }
    out
}

/// Asserts that retrying `seq` (one record) is answered with `offset` and writes nothing.
async fn assert_duplicate(log: &Log, seq: i32, offset: i64) {
    let (end, size) = (log.log_end_offset(), log.size_bytes());
    let info = log.append(pbatch(1, 0, seq, 1), durable()).await.unwrap();
    assert!(info.duplicate, "seq {seq} is a retry: {info:?}");
    assert_eq!((info.base_offset, info.last_offset), (offset, offset));
    assert_eq!(log.log_end_offset(), end, "a duplicate is not appended");
    assert_eq!(log.size_bytes(), size, "a duplicate writes nothing");
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "producers"))
        .collect();
    v.sort();
    v
}

#[test]
fn retries_get_the_original_offsets_and_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open(&path).await;
        let first = log.append(pbatch(1, 0, 0, 3), durable()).await.unwrap();
        let second = log.append(pbatch(1, 0, 3, 2), durable()).await.unwrap();
        assert_eq!((first.base_offset, first.last_offset), (0, 2));
        assert_eq!((second.base_offset, second.last_offset), (3, 4));
        let size = log.size_bytes();
        for (batch, original) in [(pbatch(1, 0, 0, 3), first), (pbatch(1, 0, 3, 2), second)] {
            let retry = log.append(batch, durable()).await.unwrap();
            assert!(retry.duplicate);
            assert_eq!(
                (
                    retry.base_offset,
                    retry.last_offset,
                    retry.log_append_time_ms
                ),
                (
                    original.base_offset,
                    original.last_offset,
                    original.log_append_time_ms
                )
            );
        }
        assert_eq!((log.log_end_offset(), log.size_bytes()), (5, size));
        assert_eq!(all_batches(&log).await.len(), 2);
        let p = log.producer(1).unwrap();
        assert_eq!(
            (p.epoch(), p.last_seq(), p.last_batch().last_offset),
            (0, 4, 4)
        );

        // Batches without a producer id are never deduplicated.
        let a = log.append(batch(7, 1, 10, 0), durable()).await.unwrap();
        let b = log.append(batch(7, 1, 10, 0), durable()).await.unwrap();
        assert!(!a.duplicate && !b.duplicate && b.base_offset == a.base_offset + 1);
        assert_eq!(log.producer_count(), 1);
        log.close().await.unwrap();
    });
}

#[test]
fn pipelined_batches_in_sequence_both_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open(&path).await;
        let (a, b) = futures_lite::future::zip(
            log.append(pbatch(1, 0, 0, 2), durable()),
            log.append(pbatch(1, 0, 2, 2), durable()),
        )
        .await;
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.base_offset, b.base_offset), (0, 2));
        // A retry of the first while the second is in flight is still a duplicate.
        let (c, d) = futures_lite::future::zip(
            log.append(pbatch(1, 0, 4, 1), durable()),
            log.append(pbatch(1, 0, 0, 2), durable()),
        )
        .await;
        assert_eq!(c.unwrap().base_offset, 4);
        let d = d.unwrap();
        assert!(d.duplicate && d.base_offset == 0);
        assert_eq!(log.log_end_offset(), 5);
    });
}

#[test]
fn gaps_stale_epochs_and_unknown_producers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open(&path).await;
        let err = log.append(pbatch(1, 0, 5, 1), durable()).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::UnknownProducerId {
                    producer_id: 1,
                    base_sequence: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        append_seqs(&log, 0, 3).await;
        let err = log.append(pbatch(1, 0, 4, 1), durable()).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::OutOfOrderSequence {
                    expected: 3,
                    got: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("expects sequence 3"), "{err}");
        // A new epoch starts at 0 and fences the old one.
        let err = log.append(pbatch(1, 1, 3, 1), durable()).await.unwrap_err();
        assert!(matches!(
            err,
            EngineError::OutOfOrderSequence { expected: 0, .. }
        ));
        let info = log.append(pbatch(1, 1, 0, 1), durable()).await.unwrap();
        assert_eq!(info.base_offset, 3);
        let err = log.append(pbatch(1, 0, 3, 1), durable()).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::ProducerFenced {
                    producer_epoch: 0,
                    current_epoch: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = log
            .append(pbatch(2, 0, -1, 1), durable())
            .await
            .unwrap_err();
        assert!(
            matches!(err, EngineError::InvalidProducerFields { .. }),
            "{err:?}"
        );
        assert_eq!(log.log_end_offset(), 4, "nothing refused was written");
        assert!(log.fenced_reason().is_none(), "refusals do not fence");
        log.close().await.unwrap();

        let log = open(&path).await;
        let err = log.append(pbatch(1, 0, 3, 1), durable()).await.unwrap_err();
        assert!(matches!(err, EngineError::ProducerFenced { .. }), "{err:?}");
        assert!(log.append(pbatch(1, 1, 1, 1), durable()).await.is_ok());
    });
}

#[test]
fn dedup_survives_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open(&path).await;
        let infos = append_seqs(&log, 0, 60).await;
        assert!(log.segment_count() > 3, "rolled: {}", log.segment_count());
        log.close().await.unwrap();
        assert!(
            snapshot_files(&path).len() <= 2,
            "old snapshots are pruned: {:?}",
            snapshot_files(&path)
        );

        let log = open(&path).await;
        assert_eq!(log.opened(), OpenKind::Clean);
        for seq in 55..60 {
            assert_duplicate(&log, seq, infos[seq as usize].base_offset).await;
        }
        let err = log
            .append(pbatch(1, 0, 54, 1), durable())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            EngineError::OutOfOrderSequence { expected: 60, .. }
        ));
        append_seqs(&log, 60, 1).await;
    });
}

#[test]
fn dedup_survives_an_unclean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open(&path).await;
        let infos = append_seqs(&log, 0, 60).await;
        // A second producer whose last batch sits in an older segment.
        let other = log.append(pbatch(2, 3, 0, 1), durable()).await.unwrap();
        append_seqs(&log, 60, 20).await;
        drop(log); // no close: no marker, no snapshot at the end

        let log = open(&path).await;
        assert_eq!(log.opened(), OpenKind::Recovered);
        assert_eq!(log.log_end_offset(), 81);
        assert_duplicate(&log, 79, 80).await;
        let retry = log.append(pbatch(2, 3, 0, 1), durable()).await.unwrap();
        assert!(retry.duplicate && retry.base_offset == other.base_offset);
        assert_eq!(infos[59].base_offset, 59);
        append_seqs(&log, 80, 1).await;
    });
}

#[test]
fn a_missing_newest_snapshot_is_rebuilt_from_an_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open(&path).await;
        append_seqs(&log, 0, 60).await;
        drop(log);
        // As if the process died between sealing a segment and writing its snapshot.
        let files = snapshot_files(&path);
        assert_eq!(files.len(), 2, "{files:?}");
        std::fs::remove_file(files.last().unwrap()).unwrap();
        let log = open(&path).await;
        for seq in 55..60 {
            assert_duplicate(&log, seq, i64::from(seq)).await;
        }
        append_seqs(&log, 60, 1).await;
        drop(log);

        // Torn snapshots are skipped: the state is rebuilt from the log start.
        for f in snapshot_files(&path) {
            std::fs::write(&f, b"torn").unwrap();
        }
        let log = open(&path).await;
        assert_duplicate(&log, 60, 60).await;
        append_seqs(&log, 61, 1).await;
    });
}

#[test]
fn a_snapshot_past_the_recovered_end_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..small_segments()
        };
        let log = Log::open(&path, config.clone(), LogEnv::default())
            .await
            .unwrap();
        append_seqs(&log, 0, 10).await;
        let batches = all_batches(&log).await;
        log.close().await.unwrap();
        assert_eq!(log.segment_count(), 1);
        // Power loss after the close snapshot was written but before the last two
        // batches reached the device: they are gone, the snapshot at 10 is not.
        let cut: usize = batches[..8].iter().map(|b| b.len()).sum();
        let seg = path.join(format!("{:020}.log", 0));
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(cut as u64).unwrap();
        std::fs::remove_file(path.join(".clean")).unwrap();

        let log = Log::open(&path, config, LogEnv::default()).await.unwrap();
        assert_eq!(log.log_end_offset(), 8);
        assert!(
            snapshot_files(&path)
                .iter()
                .all(|p| !p.ends_with(format!("{:020}.producers", 10))),
            "snapshot past the end removed"
        );
        assert_duplicate(&log, 7, 7).await;
        // The lost batch is new again, not a duplicate of something the log lacks.
        let info = log.append(pbatch(1, 0, 8, 1), durable()).await.unwrap();
        assert!(!info.duplicate && info.base_offset == 8);
    });
}

#[test]
fn truncation_forgets_removed_batches_and_reappends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let log = open(&path).await;
        append_seqs(&log, 0, 40).await;
        assert!(log.segment_count() > 2);
        // Truncate into an older segment, below both kept snapshots.
        log.truncate(12).await.unwrap();
        assert_eq!(log.producer(1).unwrap().last_seq(), 11);
        assert_duplicate(&log, 11, 11).await;
        let err = log
            .append(pbatch(1, 0, 20, 1), durable())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            EngineError::OutOfOrderSequence { expected: 12, .. }
        ));
        let info = log.append(pbatch(1, 0, 12, 1), durable()).await.unwrap();
        assert!(!info.duplicate && info.base_offset == 12);
        append_seqs(&log, 13, 2).await;
        drop(log);

        let log = open(&path).await;
        assert_eq!(log.log_end_offset(), 15);
        assert_duplicate(&log, 14, 14).await;
        // Truncating everything forgets the producer: it must start over at 0.
        log.truncate(0).await.unwrap();
        assert_eq!(log.producer_count(), 0);
        let err = log
            .append(pbatch(1, 0, 15, 1), durable())
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::UnknownProducerId { .. }));
        log.close().await.unwrap();
        let log = open(&path).await;
        assert_eq!(log.producer_count(), 0);
        append_seqs(&log, 0, 1).await;
    });
}

#[test]
fn retention_keeps_the_state_of_live_producers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run_local(move || async move {
        let mut cfg = small_segments();
        cfg.cleanup_policy = CleanupPolicy::Delete;
        cfg.retention_bytes = Some(1);
        let log = Log::open(&path, cfg.clone(), LogEnv::default())
            .await
            .unwrap();
        // Producer 2's only batch is in the first segment, which retention deletes.
        log.append(pbatch(2, 0, 0, 1), durable()).await.unwrap();
        append_seqs(&log, 0, 60).await;
        log.set_high_watermark(log.log_end_offset());
        let out = log.apply_retention(0).await.unwrap();
        assert!(out.segments_deleted > 0 && log.log_start_offset() > 0);
        drop(log);

        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        assert_duplicate(&log, 59, 60).await;
        let retry = log.append(pbatch(2, 0, 0, 1), durable()).await.unwrap();
        assert!(retry.duplicate && retry.base_offset == 0);
        let next = log.append(pbatch(2, 0, 1, 1), durable()).await.unwrap();
        assert!(!next.duplicate);
    });
}

/// Set in the child process of `acknowledged_batches_stay_deduplicated_after_sigkill`.
const WRITER_DIR_ENV: &str = "STRATA_IDEMPOTENT_WRITER_DIR";
/// Acknowledgements the parent waits for before it kills the writer.
const ACKS_BEFORE_KILL: usize = 150;

/// The child half of the SIGKILL test: appends producer 1's batches durably, retrying
/// each third one, and prints `ACK <seq> <offset>` once each is acknowledged, until it
/// is killed. Does nothing when run as an ordinary test.
#[test]
fn sigkill_writer() {
    let Some(dir) = std::env::var_os(WRITER_DIR_ENV) else {
        return;
    };
    let path = PathBuf::from(dir);
    run_local(move || async move {
        use std::io::Write;
        let log = open(&path).await;
        let mut seq = log.producer(1).map_or(0, |p| p.last_seq() + 1);
        loop {
            let info = log.append(pbatch(1, 0, seq, 1), durable()).await.unwrap();
            if seq % 3 == 0 {
                let retry = log.append(pbatch(1, 0, seq, 1), durable()).await.unwrap();
                assert!(retry.duplicate && retry.base_offset == info.base_offset);
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "ACK {seq} {}", info.base_offset).unwrap();
            out.flush().unwrap();
            seq += 1;
        }
    });
}

#[test]
fn acknowledged_batches_stay_deduplicated_after_sigkill() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let mut acked: Vec<(i32, i64)> = Vec::new();
    for round in 0..2 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_writer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(WRITER_DIR_ENV, &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut new_acks = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let (seq, offset) = rest.split_once(' ').unwrap();
            acked.push((seq.parse().unwrap(), offset.parse().unwrap()));
            new_acks += 1;
            if new_acks == ACKS_BEFORE_KILL {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        child.wait().unwrap();
        assert_eq!(
            new_acks, ACKS_BEFORE_KILL,
            "round {round}: the writer died early"
        );
    }
    let acked = acked.clone();
    run_local(move || async move {
        let log = open(&path).await;
        assert_eq!(log.opened(), OpenKind::Recovered);
        // Every acknowledged batch is in the log exactly once, where it was acknowledged.
        let stored: Vec<(i32, i64)> = all_batches(&log)
            .await
            .iter()
            .map(|b| {
                let h = strata_schema::check_batch(b).unwrap();
                (h.base_sequence, h.base_offset)
            })
            .collect();
        assert!(
            stored
                .iter()
                .enumerate()
                .all(|(i, &(seq, off))| seq == i as i32 && off == i as i64),
            "one batch per sequence, in order"
        );
        for &(seq, offset) in &acked {
            assert_eq!(stored.get(seq as usize), Some(&(seq, offset)));
        }
        // Retries of the last acknowledged batches are answered, not written.
        let last = stored.len() as i32 - 1;
        for seq in last - 4..=last {
            assert_duplicate(&log, seq, i64::from(seq)).await;
        }
        append_seqs(&log, last + 1, 1).await;
    });
}
