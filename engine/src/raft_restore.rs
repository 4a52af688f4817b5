//! What a partition replica hands its Raft state machine after a restart: the log's
//! bounds and the term runs of its batches, read from the engine's leader-epoch cache
//! (which the batch headers' leader epochs fill, and recovery rebuilds from them).
//!
//! The membership control batches (written by a leader for each step of a
//! reassignment) are found by [`Log::raft_memberships`]: a scan of the batch headers of
//! the newest segments, at most [`MEMBERSHIP_SCAN_BYTES_MAX`] of them, reading only the
//! control batches whole. A membership written further back belongs to a move long
//! finished, whose result the image's replicas (the log-start membership) hold.
//!
//! Batches without a leader epoch (-1: written by a single-node broker, before the
//! partition was replicated) count as term 0, the term before any Raft leader, so a
//! log that predates replication restores as one term-0 run that every later term
//! follows.

use strata_raft::{EpochRun, HardState, Membership, RestoredState, Term};

use crate::error::Result;
use crate::log::Log;
use crate::recovery::scan_batches;

/// Most bytes of the log's newest segments scanned for membership batches on restore
/// (the active segment is always scanned).
pub const MEMBERSHIP_SCAN_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Most membership batches restored; the newest are kept.
pub const MEMBERSHIPS_RESTORED_MAX: usize = 1024;

impl Log {
    /// The restored state of this partition's Raft replica: `hard` from the
    /// hard-state file (`raft_hard_state::read_hard_state`, default if none),
    /// `membership` in force at the log start; the epoch runs of `[log start, log
    /// end)`, the term just below the log start, the durable log end, and the log start
    /// as the commit offset known to be committed (the leader tells the real one).
    /// `memberships` is empty: fill it with [`raft_memberships`](Self::raft_memberships).
    pub fn raft_restored_state(&self, hard: HardState, membership: Membership) -> RestoredState {
        let st = self.inner.state.borrow();
        let start = st.log_start_offset.max(0);
        let end = st.durable_end_offset.max(start);
        let (log_start_term, epochs) = epoch_runs(st.epochs.entries(), start, end);
        let start = start as u64;
        RestoredState {
            hard_state: hard,
            log_start_offset: start,
            log_start_term,
            log_start_membership: membership,
            epochs,
            memberships: Vec::new(),
            log_end_offset: end as u64,
            commit_offset: start,
        }
    }
}

impl Log {
    /// The membership control batches in the newest segments of `[log start, durable
    /// end)` (at most `scan_bytes_max` of segments besides the active one), as
    /// (offset, membership) in offset order, for [`RestoredState::memberships`].
    /// Malformed ones are skipped.
    pub async fn raft_memberships(&self, scan_bytes_max: u64) -> Result<Vec<(u64, Membership)>> {
        let (start, end, segments) = {
            let st = self.inner.state.borrow();
            let mut chosen = Vec::new();
            let mut bytes = 0u64;
            for seg in st.segments.iter().rev() {
                let size = seg.size_bytes.min(seg.written_bytes);
                if !chosen.is_empty() && bytes + size > scan_bytes_max {
                    break;
                }
                bytes += size;
                chosen.push((seg.base_offset, size));
            }
            chosen.reverse();
            (st.log_start_offset, st.durable_end_offset, chosen)
        };
        let mut controls = Vec::new();
        for (base, size) in segments {
            if size == 0 {
                continue;
            }
            let file = self.inner.segment_file(base, false).await?;
            scan_batches(&file, 0, size, |_, h| {
                if h.attributes.is_control() && h.base_offset >= start && h.base_offset < end {
                    controls.push(h.base_offset);
                }
                h.base_offset < end
            })
            .await?;
        }
        let mut out: Vec<(u64, Membership)> = Vec::new();
        for offset in controls {
            let read = self.read(offset, 1, Some(end)).await?;
            let Some(bytes) = read.batches.first() else {
                continue;
            };
            let Some((voters, learners)) = strata_schema::membership_of_batch(bytes) else {
                continue;
            };
            let m = Membership { voters, learners };
            if m.is_well_formed() && out.last().is_none_or(|(o, _)| (*o as i64) < offset) {
                out.push((offset as u64, m));
            }
        }
        if out.len() > MEMBERSHIPS_RESTORED_MAX {
            out.drain(..out.len() - MEMBERSHIPS_RESTORED_MAX);
        }
        Ok(out)
    }
}

/// The term in force at `offset` by the (epoch, start) pairs: 0 below the first one.
fn term_at(entries: &[(i32, i64)], offset: i64) -> Term {
    let i = entries.partition_point(|&(_, s)| s <= offset);
    i.checked_sub(1)
        .map_or(0, |i| Term::from(entries[i].0.max(0) as u32))
}

/// (term just below `start`, runs of `[start, end)`) from the leader epochs' (epoch,
/// start offset) pairs, which may begin before `start` (retention keeps them).
fn epoch_runs(entries: &[(i32, i64)], start: i64, end: i64) -> (Term, Vec<EpochRun>) {
    let log_start_term = if start > 0 {
        term_at(entries, start - 1)
    } else {
        0
    };
    let mut runs: Vec<EpochRun> = Vec::new();
    if end <= start {
        return (log_start_term, runs);
    }
    runs.push(EpochRun {
        term: term_at(entries, start),
        start_offset: start as u64,
    });
    for &(epoch, at) in entries {
        if at <= start || at >= end {
            continue;
        }
        let term = Term::from(epoch.max(0) as u32);
        if runs.last().is_some_and(|r| term <= r.term) {
            continue;
        }
        runs.push(EpochRun {
            term,
            start_offset: at as u64,
        });
    }
    (log_start_term, runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{run_local, AppendOptions, Durability, LogEnv};
    use crate::LogConfig;
    use strata_schema::{membership_batch, NativeBatchBuilder};

    fn data(records: usize) -> Vec<u8> {
        let mut b = NativeBatchBuilder::new();
        for i in 0..records {
            b.push(1_000 + i as i64, None, Some(&[b'x'; 900]), &[]);
        }
        b.build()
    }

    fn membership(voters: &[u64], learners: &[u64]) -> Membership {
        Membership {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
        }
    }

    /// A reassignment's steps in the log (a learner added, then promoted), written
    /// across several segments, are found again after a reopen, in order; a scan
    /// budget of nothing still covers the active segment.
    #[test]
    fn membership_batches_are_restored_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run_local(move || async move {
            let config = LogConfig {
                segment_bytes: 16 * 1024,
                retention_ms: None,
                ..LogConfig::default()
            };
            let log = Log::open(&path, config.clone(), LogEnv::default())
                .await
                .unwrap();
            let durable = || AppendOptions::new(Durability::Durable);
            let steps = [membership(&[1, 2, 3], &[4]), membership(&[1, 2, 3, 4], &[])];
            let mut offsets = Vec::new();
            for step in &steps {
                for _ in 0..20 {
                    log.append(data(2), durable()).await.unwrap();
                }
                let batch = membership_batch(2, &step.voters, &step.learners, 0);
                let info = log.append_validated(batch, durable()).await.unwrap();
                offsets.push(info.base_offset as u64);
            }
            log.append(data(2), durable()).await.unwrap();
            log.close().await.unwrap();
            let log = Log::open(&path, config, LogEnv::default()).await.unwrap();
            assert!(log.segment_count() > 3);
            let found = log
                .raft_memberships(MEMBERSHIP_SCAN_BYTES_MAX)
                .await
                .unwrap();
            assert_eq!(
                found,
                vec![
                    (offsets[0], steps[0].clone()),
                    (offsets[1], steps[1].clone())
                ]
            );
            let hard = HardState::default();
            let mut restored = log.raft_restored_state(hard, membership(&[1, 2, 3], &[]));
            restored.memberships = found;
            let raft = strata_raft::Raft::new(strata_raft::Config::new(4, 7), restored).unwrap();
            assert_eq!(raft.membership(), &steps[1], "the newest one is in force");
            // Only the active segment (the second step is in it or just before it).
            let tail = log.raft_memberships(0).await.unwrap();
            assert!(tail.len() <= 1, "{tail:?}");
            log.close().await.unwrap();
        });
    }

    fn run(term: Term, start_offset: u64) -> EpochRun {
        EpochRun { term, start_offset }
    }

    #[test]
    fn runs_cover_the_log_from_its_start() {
        let e = [(1, 0), (3, 10), (5, 20)];
        assert_eq!(
            epoch_runs(&e, 0, 30),
            (0, vec![run(1, 0), run(3, 10), run(5, 20)])
        );
        // The start inside epoch 3: the run begins at the start, term 1 below it.
        assert_eq!(epoch_runs(&e, 10, 30), (1, vec![run(3, 10), run(5, 20)]));
        assert_eq!(epoch_runs(&e, 12, 30), (3, vec![run(3, 12), run(5, 20)]));
        // Epochs past the end (already truncated in practice) are ignored.
        assert_eq!(epoch_runs(&e, 0, 20), (0, vec![run(1, 0), run(3, 10)]));
        // An empty log: no runs, the term below its start.
        assert_eq!(epoch_runs(&e, 25, 25), (5, vec![]));
        assert_eq!(epoch_runs(&[], 0, 0), (0, vec![]));
        // Epochless batches before the first epoch are term 0.
        assert_eq!(epoch_runs(&[(2, 8)], 0, 9), (0, vec![run(0, 0), run(2, 8)]));
        assert_eq!(epoch_runs(&[], 0, 9), (0, vec![run(0, 0)]));
        // Epoch 0 written by a leader merges with the epochless prefix.
        assert_eq!(
            epoch_runs(&[(0, 4), (1, 6)], 0, 9),
            (0, vec![run(0, 0), run(1, 6)])
        );
    }
}
