//! The engine side of a replicated partition: a leader's appends whose epoch the Raft
//! group decides, a follower that writes the leader's bytes unchanged, a follower's
//! truncation and recovery, and the state a Raft replica restarts from.

mod common;

use std::cell::Cell;
use std::path::Path;

use common::*;
use strata_engine::{
    read_hard_state, run_local, write_hard_state, Durability, EngineError, Log, LogConfig, LogEnv,
};
use strata_raft::{Config, EpochRun, HardState, Membership, ProposeError, Raft};
use strata_schema::{
    check_batch, leader_change_batch, wrap_kafka_batch_produced, BatchHeader, KafkaBatchBuilder,
    NativeBatchBuilder, ProduceRules, ValidatedBatch,
};

fn config(log_append_time: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        retention_ms: None,
        log_append_time,
        ..LogConfig::default()
    }
}

async fn open(path: &Path, log_append_time: bool) -> Log {
    Log::open(path, config(log_append_time), LogEnv::default())
        .await
        .expect("open log")
}

/// A native batch of producer `pid` (epoch 0) from sequence `seq`, `records` long.
fn idempotent(pid: i64, seq: i32, records: usize) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new().with_producer(pid, 0, seq);
    for i in 0..records {
        let mut value = format!("p{pid}:{}:", seq as usize + i).into_bytes();
        value.resize(300, b'x');
        b.push(1_000 + i as i64, Some(b"k"), Some(&value), &[]);
    }
    b.build()
}

/// A Kafka-format batch (as the Kafka produce path stores it) of `records` records.
fn kafka(tag: u64, records: usize) -> ValidatedBatch {
    let mut b = KafkaBatchBuilder::new();
    for i in 0..records {
        let value = format!("kafka:{tag}:{i}");
        b.push(2_000 + i as i64, Some(b"kk"), Some(value.as_bytes()), &[]);
    }
    wrap_kafka_batch_produced(&b.build(), ProduceRules::default()).expect("kafka batch")
}

fn validated(bytes: Vec<u8>) -> ValidatedBatch {
    ValidatedBatch::new(bytes).expect("valid batch")
}

/// Appends `batch` through `append_proposed` with a propose step that grants `epoch`.
async fn propose(log: &Log, batch: ValidatedBatch, epoch: i32) -> strata_engine::AppendInfo {
    log.append_proposed(batch, durable(), |_, _| Ok(epoch))
        .await
        .expect("proposed append")
}

/// Copies every batch of `leader` from `follower`'s end on to `follower`, as the
/// leader's stored bytes.
async fn replicate(leader: &Log, follower: &Log) {
    let from = follower.log_end_offset();
    let end = leader.log_end_offset();
    let mut offset = from;
    while offset < end {
        let r = leader
            .read(offset, 64 * 1024, Some(end))
            .await
            .expect("read");
        assert!(!r.batches.is_empty(), "leader has data at {offset}");
        for b in r.batches {
            let h = check_batch(&b).expect("stored batch");
            let info = follower
                .append_replicated(b.to_vec())
                .await
                .expect("replicated append");
            assert_eq!(
                (info.base_offset, info.last_offset),
                (h.base_offset, h.last_offset())
            );
            offset = h.last_offset() + 1;
        }
    }
}

fn headers(batches: &[bytes::Bytes]) -> Vec<BatchHeader> {
    batches.iter().map(|b| check_batch(b).unwrap()).collect()
}

/// What replication must keep equal between two logs, as readers and Raft see it.
async fn assert_same_log(a: &Log, b: &Log, pids: &[i64]) {
    let (ba, bb) = (all_batches(a).await, all_batches(b).await);
    assert_eq!(ba.len(), bb.len(), "batch counts");
    for (i, (x, y)) in ba.iter().zip(&bb).enumerate() {
        assert_eq!(x, y, "batch {i} differs");
    }
    assert_eq!(a.log_end_offset(), b.log_end_offset());
    assert_eq!(a.latest_epoch(), b.latest_epoch());
    for epoch in 0..8 {
        assert_eq!(
            a.epoch_end_offset(epoch),
            b.epoch_end_offset(epoch),
            "epoch {epoch}"
        );
    }
    for &pid in pids {
        let (pa, pb) = (a.producer(pid), b.producer(pid));
        assert_eq!(
            pa.as_ref().map(|p| p.batches().to_vec()),
            pb.as_ref().map(|p| p.batches().to_vec()),
            "producer {pid}"
        );
        assert_eq!(pa.map(|p| p.epoch()), pb.map(|p| p.epoch()));
    }
}

#[test]
fn proposed_appends_take_the_epoch_propose_decides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, false).await;
        let seen = Cell::new(None);
        let info = log
            .append_proposed(validated(batch(1, 3, 50, 10)), durable(), |base, n| {
                seen.set(Some((base, n)));
                Ok(4)
            })
            .await
            .unwrap();
        assert_eq!(
            seen.get(),
            Some((0, 3)),
            "propose sees base offset and offsets"
        );
        assert_eq!((info.base_offset, info.last_offset), (0, 2));
        assert_eq!(log.latest_epoch(), Some(4));
        let stored = all_batches(&log).await;
        assert_eq!(check_batch(&stored[0]).unwrap().leader_epoch, 4);

        // A refusal writes nothing and leaves producer state as it was.
        let first = propose(&log, validated(idempotent(7, 0, 2)), 4).await;
        let (end, size) = (log.log_end_offset(), log.size_bytes());
        let before = log.producer(7).map(|p| p.batches().to_vec());
        let err = log
            .append_proposed(validated(idempotent(7, 2, 1)), durable(), |_, _| {
                Err(ProposeError::NotLeader { leader: Some(2) })
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::Propose(ProposeError::NotLeader { leader: Some(2) })
            ),
            "{err:?}"
        );
        assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
        assert_eq!(log.producer(7).map(|p| p.batches().to_vec()), before);
        // The refused sequence is still the next one: it appends now.
        let next = propose(&log, validated(idempotent(7, 2, 1)), 5).await;
        assert_eq!(next.base_offset, end);

        // A retry of a recent batch is answered without asking the group.
        let retry = log
            .append_proposed(validated(idempotent(7, 0, 2)), durable(), |_, _| {
                panic!("a duplicate must not be proposed")
            })
            .await
            .unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.base_offset, first.base_offset);
        assert_eq!(log.epoch_end_offset(4), Some((4, next.base_offset)));
        log.close().await.unwrap();
    });
}

/// A leader's mixed log (native, idempotent, Kafka, leader-change, several epochs and
/// segments) and a follower fed its read-back bytes hold identical bytes, epochs and
/// producer state, before and after the follower restarts cleanly and uncleanly.
fn follower_matches_leader(log_append_time: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (lpath, fpath) = (dir.path().join("leader"), dir.path().join("follower"));
    run_local(move || async move {
        let leader = open(&lpath, log_append_time).await;
        let follower = open(&fpath, log_append_time).await;
        let mut seq = [0i32; 2];
        for round in 0..12u64 {
            let epoch = 1 + (round / 4) as i32 * 2;
            if round % 4 == 0 {
                propose(&leader, leader_change_batch(epoch, 1, 5_000), epoch).await;
            }
            propose(&leader, validated(batch(round, 3, 200, 100)), epoch).await;
            let pid = 10 + (round % 2) as i64;
            let s = &mut seq[(round % 2) as usize];
            propose(&leader, validated(idempotent(pid, *s, 2)), epoch).await;
            *s += 2;
            propose(&leader, kafka(round, 2), epoch).await;
            if round % 3 == 2 {
                // Append times differ between batches (and from the follower's clock).
                glommio::timer::sleep(std::time::Duration::from_millis(3)).await;
                replicate(&leader, &follower).await;
            }
        }
        replicate(&leader, &follower).await;
        assert!(leader.segment_count() > 2, "several segments");
        assert_same_log(&leader, &follower, &[10, 11]).await;
        let lb = all_batches(&leader).await;
        let epochs: Vec<i32> = headers(&lb).iter().map(|h| h.leader_epoch).collect();
        assert_eq!(epochs.first(), Some(&1));
        assert_eq!(epochs.last(), Some(&5));
        // Time lookups agree, by append time on a LogAppendTime topic.
        for h in headers(&lb).iter().step_by(5) {
            let ts = if log_append_time {
                h.log_append_time_ms
            } else {
                h.max_timestamp_ms
            };
            assert_eq!(
                leader.offset_for_timestamp(ts).await.unwrap(),
                follower.offset_for_timestamp(ts).await.unwrap(),
                "lookup of {ts}"
            );
        }
        // A retry reaching the follower after a failover is still a duplicate there.
        let retry = follower
            .append(idempotent(10, seq[0] - 2, 2), durable())
            .await
            .unwrap();
        assert!(retry.duplicate, "follower knows producer 10's batches");

        follower.close().await.unwrap();
        let follower = open(&fpath, log_append_time).await;
        assert_same_log(&leader, &follower, &[10, 11]).await;
        // More replication, then a stop without close (no marker): recovery rebuilds.
        propose(&leader, validated(idempotent(10, seq[0], 2)), 5).await;
        replicate(&leader, &follower).await;
        follower.sync().await.unwrap();
        drop(follower);
        let follower = open(&fpath, log_append_time).await;
        assert_eq!(follower.opened(), strata_engine::OpenKind::Recovered);
        assert_same_log(&leader, &follower, &[10, 11]).await;
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
}

#[test]
fn follower_fed_leader_bytes_is_identical() {
    follower_matches_leader(false);
}

#[test]
fn follower_is_identical_on_a_log_append_time_topic() {
    follower_matches_leader(true);
}

#[test]
fn replicated_batches_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (lpath, fpath) = (dir.path().join("leader"), dir.path().join("follower"));
    run_local(move || async move {
        let leader = open(&lpath, false).await;
        let follower = open(&fpath, false).await;
        propose(&leader, validated(batch(1, 2, 40, 10)), 1).await;
        propose(&leader, validated(batch(2, 2, 40, 10)), 1).await;
        let batches = all_batches(&leader).await;
        // Not at the follower's end: refused, nothing written.
        let err = follower
            .append_replicated(batches[1].to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::ReplicaOffsetMismatch {
                    base_offset: 2,
                    log_end_offset: 0
                }
            ),
            "{err:?}"
        );
        // A flipped payload byte fails the CRC.
        let mut bad = batches[0].to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            follower.append_replicated(bad).await,
            Err(EngineError::InvalidBatch(_))
        ));
        // Two batches in one buffer, or a cut one, are not one whole batch.
        let mut two = batches[0].to_vec();
        two.extend_from_slice(&batches[1]);
        assert!(follower.append_replicated(two).await.is_err());
        let cut = batches[0][..batches[0].len() - 1].to_vec();
        assert!(follower.append_replicated(cut).await.is_err());
        assert_eq!(follower.log_end_offset(), 0);
        assert_eq!(follower.size_bytes(), 0);
        replicate(&leader, &follower).await;
        assert_same_log(&leader, &follower, &[]).await;
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
}

#[test]
fn hard_state_file_roundtrips_in_a_partition_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, false).await;
        assert_eq!(read_hard_state(&path).await.unwrap(), None);
        let hard = HardState {
            term: 3,
            vote: Some(1),
        };
        write_hard_state(&path, hard).await.unwrap();
        log.close().await.unwrap();
        // The log's open and close leave the file alone.
        let log = open(&path, false).await;
        assert_eq!(read_hard_state(&path).await.unwrap(), Some(hard));
        log.close().await.unwrap();
    });
}

/// Epochs 1, 1, 3, 5 at known offsets (after an epochless prefix), restored after a
/// clean and an unclean reopen: `Raft::new` accepts the state and its epochs match.
#[test]
fn restored_state_carries_the_log_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, false).await;
        // Written by a single-node broker: no epoch (term 0).
        log.append(batch(0, 2, 100, 10), durable()).await.unwrap();
        let runs = [(1, 2, 3), (1, 5, 2), (3, 7, 4), (5, 11, 1)];
        for (i, &(epoch, base, records)) in runs.iter().enumerate() {
            let info = propose(&log, validated(batch(i as u64, records, 2_000, 10)), epoch).await;
            assert_eq!(info.base_offset, base);
        }
        assert_eq!(log.log_end_offset(), 12);
        let expected = vec![
            EpochRun {
                term: 0,
                start_offset: 0,
            },
            EpochRun {
                term: 1,
                start_offset: 2,
            },
            EpochRun {
                term: 3,
                start_offset: 7,
            },
            EpochRun {
                term: 5,
                start_offset: 11,
            },
        ];
        let membership = Membership::new(&[1, 2, 3]).unwrap();
        let hard = HardState {
            term: 5,
            vote: Some(2),
        };
        log.close().await.unwrap();
        drop(log);
        let log = open(&path, false).await;
        assert!(log.segment_count() > 1, "epochs span segments");
        let state = log.raft_restored_state(hard, membership.clone());
        assert_eq!(state.epochs, expected);
        assert_eq!((state.log_start_offset, state.log_end_offset), (0, 12));
        assert_eq!((state.log_start_term, state.commit_offset), (0, 0));
        assert!(state.memberships.is_empty());
        let raft = Raft::new(Config::new(2, 1), state).expect("raft accepts the state");
        assert_eq!(raft.epochs().runs(), &expected[..]);
        assert_eq!(raft.term(), 5);
        assert_eq!(raft.epochs().last_term(), 5);
        // Unclean: written but not closed, reopened through recovery.
        propose(&log, validated(batch(9, 1, 100, 10)), 6).await;
        log.sync().await.unwrap();
        drop(log);
        let log = open(&path, false).await;
        let state = log.raft_restored_state(HardState::default(), membership);
        let mut more = expected.clone();
        more.push(EpochRun {
            term: 6,
            start_offset: 12,
        });
        assert_eq!(state.epochs, more);
        let raft = Raft::new(Config::new(2, 1), state).expect("raft accepts the state");
        // The log's newest term is newer than the (lost) hard state: Raft adopts it.
        assert_eq!(raft.term(), 6);
        log.close().await.unwrap();
    });
}

/// Durability options of `append_proposed` behave as in `append_validated`.
#[test]
fn proposed_append_resolves_as_durability_asks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, false).await;
        let info = log
            .append_proposed(
                validated(batch(1, 1, 10, 10)),
                strata_engine::AppendOptions::new(Durability::Durable),
                |_, _| Ok(1),
            )
            .await
            .unwrap();
        assert!(log.durable_end_offset() > info.last_offset);
        log.close().await.unwrap();
    });
}

/// Every batch is found where the index says, by a read starting at its base offset.
async fn assert_index_finds_every_batch(log: &Log) {
    for h in headers(&all_batches(log).await) {
        let r = log
            .read(h.base_offset, 1, Some(log.log_end_offset()))
            .await
            .expect("read at a batch start");
        let first = check_batch(&r.batches[0]).unwrap();
        assert_eq!(first.base_offset, h.base_offset);
    }
}

/// A follower with a divergent suffix (written as leader of an epoch that lost)
/// truncates above the high watermark at the epoch boundary the new leader names,
/// takes the new leader's batches, and agrees with it in bytes, epochs, producer state
/// and index — also after a clean and an unclean restart.
#[test]
fn follower_truncates_a_divergent_suffix_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (lpath, fpath) = (dir.path().join("leader"), dir.path().join("follower"));
    run_local(move || async move {
        let leader = open(&lpath, false).await;
        let follower = open(&fpath, false).await;
        propose(&leader, leader_change_batch(1, 1, 5_000), 1).await;
        for seq in (0..8).step_by(2) {
            propose(&leader, validated(idempotent(20, seq, 2)), 1).await;
            propose(&leader, validated(batch(seq as u64, 2, 300, 10)), 1).await;
        }
        replicate(&leader, &follower).await;
        let hw = follower.log_end_offset();
        follower.set_high_watermark(hw);
        let at_hw = follower.producer(20).map(|p| p.batches().to_vec());
        // The follower led epoch 2 for a while; nothing of it committed.
        propose(&follower, leader_change_batch(2, 2, 5_000), 2).await;
        for seq in (8..20).step_by(2) {
            propose(&follower, validated(idempotent(20, seq, 2)), 2).await;
            propose(&follower, validated(idempotent(21, seq - 8, 2)), 2).await;
            propose(&follower, validated(batch(99, 3, 700, 10)), 2).await;
        }
        assert!(follower.segment_count() > leader.segment_count());
        // Meanwhile the leader was elected for epoch 3 and wrote its own suffix.
        propose(&leader, leader_change_batch(3, 1, 5_000), 3).await;
        for seq in (8..14).step_by(2) {
            propose(&leader, validated(idempotent(20, seq, 2)), 3).await;
            propose(&leader, validated(idempotent(22, seq - 8, 2)), 3).await;
        }
        // Divergence as Kafka's OffsetForLeaderEpoch finds it.
        let follower_epoch = follower.latest_epoch().unwrap();
        assert_eq!(follower_epoch, 2);
        let (epoch, end) = leader.epoch_end_offset(follower_epoch).unwrap();
        assert_eq!((epoch, end), (1, hw));
        follower.truncate(end).await.unwrap();
        assert_eq!(follower.log_end_offset(), hw);
        assert_eq!(follower.latest_epoch(), Some(1));
        assert_eq!(follower.epoch_end_offset(2), Some((1, hw)));
        assert_eq!(
            follower.producer(21),
            None,
            "producer of the removed suffix"
        );
        assert_eq!(follower.producer(20).map(|p| p.batches().to_vec()), at_hw);
        assert_index_finds_every_batch(&follower).await;
        replicate(&leader, &follower).await;
        assert_same_log(&leader, &follower, &[20, 21, 22]).await;
        assert_index_finds_every_batch(&follower).await;

        follower.close().await.unwrap();
        let follower = open(&fpath, false).await;
        assert_same_log(&leader, &follower, &[20, 21, 22]).await;
        assert_index_finds_every_batch(&follower).await;
        // Truncate again, into a closed segment, replicate, and stop without a close.
        let base = follower.segment_base_offsets()[1];
        let cut = headers(&all_batches(&follower).await)
            .iter()
            .map(|h| h.base_offset)
            .find(|&o| o > base)
            .unwrap();
        follower.truncate(cut).await.unwrap();
        propose(&leader, validated(idempotent(22, 6, 2)), 3).await;
        replicate(&leader, &follower).await;
        follower.sync().await.unwrap();
        drop(follower);
        let follower = open(&fpath, false).await;
        assert_same_log(&leader, &follower, &[20, 21, 22]).await;
        assert_index_finds_every_batch(&follower).await;
        let membership = Membership::new(&[1, 2]).unwrap();
        let fs = follower.raft_restored_state(HardState::default(), membership.clone());
        let ls = leader.raft_restored_state(HardState::default(), membership);
        assert_eq!(fs.epochs, ls.epochs);
        assert_eq!(fs.epochs.iter().map(|r| r.term).collect::<Vec<_>>(), [1, 3]);
        Raft::new(Config::new(2, 7), fs).expect("raft accepts the follower's state");
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
}

/// A storage fault right after a new epoch's first batches reached the file — one in
/// a segment that was then sealed, one in the next — fences the log as a crash would
/// leave it: after recovery the epoch still starts at its first batch. Recovery scans
/// only the active segment, so this holds because the epoch file already names the
/// epoch (the flush cycle in flight when the batches were assigned wrote it).
#[test]
fn a_new_epoch_starting_in_a_sealed_segment_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let faults = strata_engine::FaultInjector::new();
        let env = LogEnv {
            faults: faults.clone(),
            ..LogEnv::default()
        };
        let log = Log::open(&path, config(false), env).await.unwrap();
        propose(&log, validated(batch(1, 1, 3_000, 10)), 1).await;
        // While a flush cycle writes a small epoch-1 batch, epoch 4's first two
        // batches are assigned, the second rolling the segment: the next cycle writes
        // both, with the seal between them. Its syncs pass but the last (the new
        // segment's), which fences the log with both batches in the files (O_DIRECT)
        // and nothing written after them, as a crash there would leave it.
        faults.arm(strata_engine::Fault::SyncError, 4, 1);
        let append = |tag: u64, epoch: i32, value_bytes: usize| {
            Box::pin(log.append_proposed(
                validated(batch(tag, 1, value_bytes, 10)),
                durable(),
                move |_, _| Ok(epoch),
            ))
        };
        let mut busy = append(2, 1, 10);
        let (mut first, mut second) = (append(3, 4, 3_000), append(4, 4, 3_000));
        for f in [&mut busy, &mut first, &mut second] {
            assert!(futures_lite::future::poll_once(f).await.is_none());
        }
        busy.await.expect("the busy cycle completes");
        let (a, b) = (first.await, second.await);
        // The seal made the first durable; the second's sync failed.
        assert!(a.is_ok(), "{a:?}");
        assert!(b.is_err(), "{b:?}");
        assert_eq!(faults.fired_count(), 1);
        assert_eq!(
            log.segment_count(),
            2,
            "the second batch rolled the segment"
        );
        drop(log);
        let log = open(&path, false).await;
        assert_eq!(log.log_end_offset(), 4, "both batches survived");
        assert_eq!(log.epoch_end_offset(1), Some((1, 2)));
        let state = log.raft_restored_state(HardState::default(), Membership::new(&[1]).unwrap());
        assert_eq!(
            state.epochs,
            [
                EpochRun {
                    term: 1,
                    start_offset: 0
                },
                EpochRun {
                    term: 4,
                    start_offset: 2
                }
            ]
        );
        log.close().await.unwrap();
    });
}

/// Compaction keeps a leader-change batch whole and never lets its control key count
/// in the topic's key space: a user record whose key happens to be the same bytes,
/// written before it, survives.
#[test]
fn compaction_keeps_leader_change_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let cfg = LogConfig {
            cleanup_policy: strata_engine::CleanupPolicy::Compact,
            ..config(false)
        };
        let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
        let control_key = [0u8, 0, 0, 2];
        let mut b = NativeBatchBuilder::new();
        b.push(10, Some(&control_key), Some(b"user"), &[]);
        b.push(10, Some(b"a"), Some(b"old"), &[]);
        propose(&log, validated(b.build()), 1).await;
        propose(&log, leader_change_batch(2, 1, 10), 2).await;
        propose(&log, validated(keyed(&[("a", Some("new"))], 10)), 2).await;
        log.roll().await.unwrap();
        let before = all_batches(&log).await[1].clone();
        let outcome = log.compact(1_000_000).await.unwrap();
        assert_eq!(outcome.records_removed, 1, "only a's old value goes");
        let kept = all_batches(&log).await;
        assert_eq!(kept.len(), 3);
        let control = check_batch(&kept[1]).unwrap();
        assert!(control.attributes.is_control());
        assert_eq!(kept[1], before, "the control batch is kept byte for byte");
        let first = strata_schema::validate_batch(&kept[0]).unwrap();
        let keys: Vec<Vec<u8>> = first
            .records()
            .unwrap()
            .map(|r| r.key().unwrap().to_vec())
            .collect();
        assert_eq!(keys, [control_key.to_vec()]);
        log.close().await.unwrap();
    });
}
