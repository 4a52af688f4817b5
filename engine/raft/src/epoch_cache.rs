//! The term of every offset of the log, kept as runs: (term, first offset written in
//! it), like Kafka's leader-epoch checkpoint. This is all the state machine knows about
//! the log's contents — not a copy of the data, a few words per leadership change.
//!
//! Bound: one run per term that wrote entries inside the retained log; runs before the
//! log start are dropped by [`EpochCache::compact`], so the cache is as bounded as the
//! log's retention.

use crate::types::Term;

/// A run of the log written in one term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochRun {
    /// The term.
    pub term: Term,
    /// First offset written in it.
    pub start_offset: u64,
}

/// Terms of `[log_start_offset, log_end_offset)`, plus the term of the entry just below
/// the log start (the snapshot's term), so the log's first entry can be matched too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochCache {
    runs: Vec<EpochRun>,
    log_start_offset: u64,
    log_start_term: Term,
    log_end_offset: u64,
}

impl EpochCache {
    /// An empty log starting at `log_start_offset`, whose previous entry had `log_start_term`.
    pub fn new(log_start_offset: u64, log_start_term: Term) -> Self {
        EpochCache {
            runs: Vec::new(),
            log_start_offset,
            log_start_term,
            log_end_offset: log_start_offset,
        }
    }

    /// A cache from restored runs, or `None` if they are out of order or outside
    /// `[log_start_offset, log_end_offset)`.
    pub fn restore(
        log_start_offset: u64,
        log_start_term: Term,
        runs: &[EpochRun],
        log_end_offset: u64,
    ) -> Option<Self> {
        let ordered = runs
            .windows(2)
            .all(|w| w[0].term < w[1].term && w[0].start_offset < w[1].start_offset);
        let inside = runs
            .iter()
            .all(|r| r.start_offset >= log_start_offset && r.start_offset < log_end_offset);
        let first_term_ok = runs.first().is_none_or(|r| r.term >= log_start_term);
        let covered = log_end_offset == log_start_offset
            || runs
                .first()
                .is_some_and(|r| r.start_offset == log_start_offset);
        if !(ordered && inside && first_term_ok && covered) {
            return None;
        }
        Some(EpochCache {
            runs: runs.to_vec(),
            log_start_offset,
            log_start_term,
            log_end_offset,
        })
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// One past the last offset in the log.
    pub fn log_end_offset(&self) -> u64 {
        self.log_end_offset
    }

    /// Term of the entry just below the log start (0 for a log that never had one).
    pub fn log_start_term(&self) -> Term {
        self.log_start_term
    }

    /// The runs, oldest first.
    pub fn runs(&self) -> &[EpochRun] {
        &self.runs
    }

    /// Term of the log's last entry (the snapshot's term for an empty log).
    pub fn last_term(&self) -> Term {
        self.runs.last().map_or(self.log_start_term, |r| r.term)
    }

    /// Term of the entry at `end_offset - 1`, i.e. the term a log ending at `end_offset`
    /// ends with; `None` when that entry is compacted away or not in the log.
    pub fn term_before(&self, end_offset: u64) -> Option<Term> {
        if end_offset < self.log_start_offset || end_offset > self.log_end_offset {
            return None;
        }
        if end_offset == self.log_start_offset {
            return Some(self.log_start_term);
        }
        let i = self.runs.partition_point(|r| r.start_offset < end_offset);
        // end_offset > log_start_offset and the first run starts at the log start, so i >= 1.
        self.runs.get(i.wrapping_sub(1)).map(|r| r.term)
    }

    /// Term of the entry at `offset`, if it is in the log.
    pub fn term_at(&self, offset: u64) -> Option<Term> {
        if offset < self.log_start_offset || offset >= self.log_end_offset {
            return None;
        }
        self.term_before(offset + 1)
    }

    /// Kafka's OffsetForLeaderEpoch: the largest term at or below `term` in this log and
    /// the offset where it ends (the next run's start, or the log end). Below every run,
    /// the snapshot's term and the log start.
    pub fn end_for_term(&self, term: Term) -> (Term, u64) {
        let i = self.runs.partition_point(|r| r.term <= term);
        if i == 0 {
            return (self.log_start_term, self.log_start_offset);
        }
        let end = self
            .runs
            .get(i)
            .map_or(self.log_end_offset, |r| r.start_offset);
        (self.runs[i - 1].term, end)
    }

    /// The divergence hint a follower answers with when the entry before `prev_end_offset`
    /// does not have `prev_term` here: its largest term at or below `prev_term` among
    /// entries below `prev_end_offset`, and where that term ends (clipped there). The
    /// leader then skips whole terms instead of probing one entry at a time.
    pub fn conflict_hint(&self, prev_end_offset: u64, prev_term: Term) -> (Term, u64) {
        let limit = prev_end_offset.min(self.log_end_offset);
        let below = self.runs.partition_point(|r| r.start_offset < limit);
        for i in (0..below).rev() {
            let run = self.runs[i];
            if run.term <= prev_term {
                let end = self
                    .runs
                    .get(i + 1)
                    .map_or(self.log_end_offset, |r| r.start_offset);
                return (run.term, end.min(limit));
            }
        }
        (self.log_start_term, self.log_start_offset)
    }

    /// Start of the term run holding the entry at `end_offset - 1` (the log start if
    /// that entry is not in the log): the epoch boundary at or before it.
    pub fn run_start_before(&self, end_offset: u64) -> u64 {
        if end_offset <= self.log_start_offset || end_offset > self.log_end_offset {
            return self.log_start_offset;
        }
        let i = self.runs.partition_point(|r| r.start_offset < end_offset);
        self.runs
            .get(i.wrapping_sub(1))
            .map_or(self.log_start_offset, |r| r.start_offset)
    }

    /// Notes an appended entry `[start_offset, end_offset)` of `term`.
    pub fn append(&mut self, term: Term, start_offset: u64, end_offset: u64) {
        debug_assert_eq!(start_offset, self.log_end_offset, "appends are contiguous");
        debug_assert!(end_offset > start_offset, "entries are not empty");
        debug_assert!(
            term >= self.last_term(),
            "terms never decrease along the log"
        );
        if self.runs.last().is_none_or(|r| r.term != term) {
            self.runs.push(EpochRun { term, start_offset });
        }
        self.log_end_offset = end_offset;
    }

    /// Cuts the log back to end at `end_offset` (not below the log start).
    pub fn truncate(&mut self, end_offset: u64) {
        debug_assert!(end_offset >= self.log_start_offset);
        let end_offset = end_offset.max(self.log_start_offset);
        if end_offset >= self.log_end_offset {
            return;
        }
        let keep = self.runs.partition_point(|r| r.start_offset < end_offset);
        self.runs.truncate(keep);
        self.log_end_offset = end_offset;
    }

    /// Drops everything below `log_start_offset` (retention or a snapshot), keeping the
    /// term of the entry just below it.
    pub fn compact(&mut self, log_start_offset: u64) {
        if log_start_offset <= self.log_start_offset {
            return;
        }
        if log_start_offset >= self.log_end_offset {
            self.reset(
                log_start_offset,
                self.term_before(self.log_end_offset).unwrap_or(0),
            );
            return;
        }
        let term = self
            .term_before(log_start_offset)
            .unwrap_or(self.log_start_term);
        let first_kept = self
            .runs
            .partition_point(|r| r.start_offset <= log_start_offset);
        // The run containing the new start is kept and clipped to it.
        let from = first_kept.saturating_sub(1);
        self.runs.drain(..from);
        if let Some(r) = self.runs.first_mut() {
            r.start_offset = r.start_offset.max(log_start_offset);
        }
        self.log_start_offset = log_start_offset;
        self.log_start_term = term;
    }

    /// Replaces the whole log by an empty one starting at `log_start_offset` (a snapshot
    /// that does not match the local log).
    pub fn reset(&mut self, log_start_offset: u64, log_start_term: Term) {
        *self = EpochCache::new(log_start_offset, log_start_term);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> EpochCache {
        // term 1: [0,10), term 3: [10,25), term 4: [25,30)
        let mut c = EpochCache::new(0, 0);
        c.append(1, 0, 5);
        c.append(1, 5, 10);
        c.append(3, 10, 25);
        c.append(4, 25, 30);
        c
    }

    #[test]
    fn terms_by_offset() {
        let c = cache();
        assert_eq!(c.runs().len(), 3);
        assert_eq!(c.term_before(0), Some(0));
        assert_eq!(c.term_before(1), Some(1));
        assert_eq!(c.term_before(10), Some(1));
        assert_eq!(c.term_before(11), Some(3));
        assert_eq!(c.term_before(30), Some(4));
        assert_eq!(c.term_before(31), None);
        assert_eq!(c.term_at(25), Some(4));
        assert_eq!(c.term_at(30), None);
        assert_eq!(c.last_term(), 4);
    }

    #[test]
    fn end_for_term_skips_whole_terms() {
        let c = cache();
        assert_eq!(c.end_for_term(1), (1, 10));
        assert_eq!(c.end_for_term(2), (1, 10));
        assert_eq!(c.end_for_term(3), (3, 25));
        assert_eq!(c.end_for_term(9), (4, 30));
        let mut c2 = EpochCache::new(100, 2);
        c2.append(5, 100, 110);
        assert_eq!(c2.end_for_term(3), (2, 100));
    }

    #[test]
    fn conflict_hint_is_the_last_term_at_or_below_the_leaders() {
        let c = cache();
        // Leader says offset 27 has term 5: the follower's term 4 run ends at 28 (clipped).
        assert_eq!(c.conflict_hint(28, 5), (4, 28));
        // Leader says offset 27 has term 2: the follower's largest term <= 2 is 1, ending at 10.
        assert_eq!(c.conflict_hint(28, 2), (1, 10));
        // Leader's prev is beyond the follower's log: the follower's end.
        assert_eq!(c.conflict_hint(40, 4), (4, 30));
        assert_eq!(c.conflict_hint(40, 0), (0, 0));
    }

    #[test]
    fn truncate_and_compact_keep_runs_consistent() {
        let mut c = cache();
        c.truncate(12);
        assert_eq!(c.log_end_offset(), 12);
        assert_eq!(c.last_term(), 3);
        c.truncate(10);
        assert_eq!(c.last_term(), 1);
        assert_eq!(c.runs().len(), 1);
        c.append(5, 10, 20);
        c.compact(15);
        assert_eq!(c.log_start_offset(), 15);
        assert_eq!(c.log_start_term(), 5);
        assert_eq!(c.term_before(15), Some(5));
        assert_eq!(c.term_at(15), Some(5));
        assert_eq!(c.term_at(14), None);
        assert_eq!(
            c.runs(),
            &[EpochRun {
                term: 5,
                start_offset: 15
            }]
        );
        c.compact(20);
        assert_eq!(
            (c.log_start_offset(), c.log_end_offset(), c.last_term()),
            (20, 20, 5)
        );
        let restored = EpochCache::restore(0, 0, cache().runs(), 30).unwrap();
        assert_eq!(restored, cache());
        assert!(EpochCache::restore(
            0,
            0,
            &[EpochRun {
                term: 1,
                start_offset: 3
            }],
            30
        )
        .is_none());
    }

    /// The cache against the obvious model (one term per offset) under random appends,
    /// truncations and compactions.
    #[test]
    fn matches_a_per_offset_model() {
        let mut rng = crate::prng::SplitMix64::new(11);
        for _ in 0..200 {
            let mut c = EpochCache::new(0, 0);
            let (mut start, mut start_term, mut terms): (u64, Term, Vec<Term>) = (0, 0, Vec::new());
            for _ in 0..40 {
                let end = start + terms.len() as u64;
                match rng.range(0, 6) {
                    0 if end > start => {
                        let to = rng.range(start, end + 1);
                        c.truncate(to);
                        terms.truncate((to - start) as usize);
                    }
                    1 if end > start => {
                        let to = rng.range(start, end + 1);
                        let t = if to == start {
                            start_term
                        } else {
                            terms[(to - start - 1) as usize]
                        };
                        c.compact(to);
                        terms.drain(..(to - start) as usize);
                        start = to;
                        start_term = t;
                    }
                    _ => {
                        let last = terms.last().copied().unwrap_or(start_term);
                        let term = last + rng.range(0, 2);
                        let len = rng.range(1, 4);
                        c.append(term, end, end + len);
                        terms.extend(std::iter::repeat_n(term, len as usize));
                    }
                }
                let end = start + terms.len() as u64;
                let term_of = |o: u64| terms[(o - start) as usize];
                assert_eq!(
                    (c.log_start_offset(), c.log_end_offset(), c.log_start_term()),
                    (start, end, start_term)
                );
                for e in start.saturating_sub(1)..=end + 1 {
                    let want = if e < start || e > end {
                        None
                    } else if e == start {
                        Some(start_term)
                    } else {
                        Some(term_of(e - 1))
                    };
                    assert_eq!(c.term_before(e), want, "term_before({e})");
                }
                let max_term = terms.last().copied().unwrap_or(start_term) + 1;
                for t in 0..=max_term {
                    let found = (start..end).rev().find(|&o| term_of(o) <= t);
                    let want = match found {
                        Some(o) => {
                            let tt = term_of(o);
                            (tt, (start..end).find(|&x| term_of(x) > tt).unwrap_or(end))
                        }
                        None => (start_term, start),
                    };
                    assert_eq!(c.end_for_term(t), want, "end_for_term({t})");
                    for prev_end in start..=end + 2 {
                        let limit = prev_end.min(end);
                        let found = (start..limit).rev().find(|&o| term_of(o) <= t);
                        let want = match found {
                            Some(o) => {
                                let tt = term_of(o);
                                (
                                    tt,
                                    (o..end)
                                        .find(|&x| term_of(x) > tt)
                                        .unwrap_or(end)
                                        .min(limit),
                                )
                            }
                            None => (start_term, start),
                        };
                        assert_eq!(
                            c.conflict_hint(prev_end, t),
                            want,
                            "conflict_hint({prev_end}, {t})"
                        );
                    }
                }
            }
        }
    }
}
