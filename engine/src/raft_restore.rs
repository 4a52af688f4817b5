//! What a partition replica hands its Raft state machine after a restart: the log's
//! bounds and the term runs of its batches, read from the engine's leader-epoch cache
//! (which the batch headers' leader epochs fill, and recovery rebuilds from them).
//!
//! Batches without a leader epoch (-1: written by a single-node broker, before the
//! partition was replicated) count as term 0, the term before any Raft leader, so a
//! log that predates replication restores as one term-0 run that every later term
//! follows.

use strata_raft::{EpochRun, HardState, Membership, RestoredState, Term};

use crate::log::Log;

impl Log {
    /// The restored state of this partition's Raft replica: `hard` from the
    /// hard-state file (`raft_hard_state::read_hard_state`, default if none),
    /// `membership` in force at the log start; the epoch runs of `[log start, log
    /// end)`, the term just below the log start, the durable log end, and the log start
    /// as the commit offset known to be committed (the leader tells the real one).
    /// Membership control batches are not written yet, so `memberships` is empty.
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
