//! A simulated disk for one replica: writes land in a page cache and become durable
//! only when synced; a crash keeps the durable state plus a random prefix of the
//! unsynced writes, the last batch write possibly torn — what a real disk may do.

use crate::message::SnapshotMeta;
use crate::prng::SplitMix64;
use crate::storage::RestoredState;
use crate::{Entry, EntryKind, EpochRun, HardState, LogOp, Membership, Term};

/// A batch on the simulated disk: its entry and the client's payload id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// Offsets, term and kind.
    pub entry: Entry,
    /// Payload id (unique per proposal; 0 for control batches).
    pub payload: u64,
}

/// A log operation with its payloads, as written.
#[derive(Clone, Debug)]
pub enum DiskOp {
    /// Drop offsets at or after this.
    Truncate(u64),
    /// Append these batches.
    Append(Vec<StoredEntry>),
    /// Replace the log by a snapshot.
    Install(SnapshotMeta),
    /// Write the hard state.
    Hard(HardState),
}

/// One replica's files.
#[derive(Clone, Debug)]
pub struct DiskState {
    /// Term and vote.
    pub hard: HardState,
    /// First offset kept.
    pub log_start_offset: u64,
    /// Term just below the log start.
    pub log_start_term: Term,
    /// Membership at the log start.
    pub log_start_membership: Membership,
    /// Batches from the log start, contiguous.
    pub entries: Vec<StoredEntry>,
}

impl DiskState {
    fn new(membership: Membership) -> Self {
        DiskState {
            hard: HardState::default(),
            log_start_offset: 0,
            log_start_term: 0,
            log_start_membership: membership,
            entries: Vec::new(),
        }
    }

    /// One past the last stored offset.
    pub fn log_end_offset(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.log_start_offset, |e| e.entry.end_offset)
    }

    fn apply(&mut self, op: &DiskOp) {
        match op {
            DiskOp::Truncate(end) => self.entries.retain(|e| e.entry.end_offset <= *end),
            DiskOp::Append(es) => {
                for e in es {
                    assert_eq!(
                        e.entry.start_offset,
                        self.log_end_offset(),
                        "sim disk: appends are contiguous"
                    );
                    self.entries.push(e.clone());
                }
            }
            DiskOp::Install(meta) => {
                self.entries.clear();
                self.log_start_offset = meta.end_offset;
                self.log_start_term = meta.term;
                self.log_start_membership = meta.membership.clone();
            }
            DiskOp::Hard(h) => self.hard = *h,
        }
    }

    /// The batch starting at `start_offset`, if stored.
    pub fn find(&self, start_offset: u64) -> Option<&StoredEntry> {
        let i = self
            .entries
            .partition_point(|e| e.entry.start_offset < start_offset);
        self.entries
            .get(i)
            .filter(|e| e.entry.start_offset == start_offset)
    }

    /// Batches with start offsets in `[from, to)`.
    pub fn range(&self, from: u64, to: u64) -> &[StoredEntry] {
        let a = self
            .entries
            .partition_point(|e| e.entry.start_offset < from);
        let b = self.entries.partition_point(|e| e.entry.start_offset < to);
        &self.entries[a..b]
    }

    /// What recovery hands the state machine.
    pub fn restored_state(&self) -> RestoredState {
        let mut epochs: Vec<EpochRun> = Vec::new();
        let mut memberships = Vec::new();
        for e in &self.entries {
            if epochs.last().is_none_or(|r| r.term != e.entry.term) {
                epochs.push(EpochRun {
                    term: e.entry.term,
                    start_offset: e.entry.start_offset,
                });
            }
            if let EntryKind::Membership(m) = &e.entry.kind {
                memberships.push((e.entry.start_offset, m.clone()));
            }
        }
        // The hard state may be behind the log's last term (its unsynced write was lost
        // while the log's survived); `Raft::new` takes the larger term, with no vote.
        RestoredState {
            hard_state: self.hard,
            log_start_offset: self.log_start_offset,
            log_start_term: self.log_start_term,
            log_start_membership: self.log_start_membership.clone(),
            epochs,
            memberships,
            log_end_offset: self.log_end_offset(),
            commit_offset: self.log_start_offset,
        }
    }
}

/// Durable state, the unsynced writes on top of it, and the page-cache view of both.
#[derive(Clone, Debug)]
pub struct SimDisk {
    durable: DiskState,
    pending: Vec<(u64, DiskOp)>,
    current: DiskState,
}

impl SimDisk {
    /// A fresh disk of a replica bootstrapped with `membership`.
    pub fn new(membership: Membership) -> Self {
        let s = DiskState::new(membership);
        SimDisk {
            durable: s.clone(),
            pending: Vec::new(),
            current: s,
        }
    }

    /// The page-cache view: everything written, synced or not.
    pub fn current(&self) -> &DiskState {
        &self.current
    }

    /// Writes `ops` (unsynced) as part of persist `token`.
    pub fn write(&mut self, token: u64, ops: Vec<DiskOp>) {
        for op in ops {
            self.current.apply(&op);
            self.pending.push((token, op));
        }
    }

    /// fsync: writes up to `token` become durable.
    pub fn sync(&mut self, token: u64) {
        let n = self.pending.iter().take_while(|(t, _)| *t <= token).count();
        for (_, op) in self.pending.drain(..n) {
            self.durable.apply(&op);
        }
    }

    /// Deletes batches below `log_start_offset` (retention); deleting files is treated
    /// as immediate, and only applied (so durable) batches are ever deleted.
    pub fn compact(
        &mut self,
        log_start_offset: u64,
        log_start_term: Term,
        membership: &Membership,
    ) {
        for s in [&mut self.durable, &mut self.current] {
            if log_start_offset > s.log_start_offset {
                s.entries
                    .retain(|e| e.entry.start_offset >= log_start_offset);
                s.log_start_offset = log_start_offset;
                s.log_start_term = log_start_term;
                s.log_start_membership = membership.clone();
            }
        }
    }

    /// A crash: the durable state plus a random prefix of the unsynced log writes and,
    /// independently (another file), a random prefix of the unsynced hard-state writes
    /// survive; the last surviving batch append may be cut short (a torn tail).
    pub fn crash(&mut self, rng: &mut SplitMix64) {
        let log_ops = self
            .pending
            .iter()
            .filter(|(_, op)| !matches!(op, DiskOp::Hard(_)))
            .count();
        let hard_ops = self.pending.len() - log_ops;
        let keep_log = rng.range(0, log_ops as u64 + 1) as usize;
        let keep_hard = rng.range(0, hard_ops as u64 + 1) as usize;
        let mut state = self.durable.clone();
        let (mut seen_log, mut seen_hard) = (0, 0);
        for (_, op) in &self.pending {
            match op {
                DiskOp::Hard(_) => {
                    seen_hard += 1;
                    if seen_hard <= keep_hard {
                        state.apply(op);
                    }
                }
                DiskOp::Append(es) => {
                    seen_log += 1;
                    if seen_log < keep_log {
                        state.apply(op);
                    } else if seen_log == keep_log {
                        let n = rng.range(0, es.len() as u64 + 1) as usize;
                        state.apply(&DiskOp::Append(es[..n].to_vec()));
                    }
                }
                op => {
                    seen_log += 1;
                    if seen_log <= keep_log {
                        state.apply(op);
                    }
                }
            }
        }
        self.pending.clear();
        self.durable = state.clone();
        self.current = state;
    }

    /// Converts a Ready's log operations into disk writes, taking each appended batch's
    /// payload from `payload_of`.
    pub fn ops_of(log_ops: Vec<LogOp>, mut payload_of: impl FnMut(&Entry) -> u64) -> Vec<DiskOp> {
        log_ops
            .into_iter()
            .map(|op| match op {
                LogOp::Truncate { end_offset } => DiskOp::Truncate(end_offset),
                LogOp::Append(es) => DiskOp::Append(
                    es.into_iter()
                        .map(|e| {
                            let payload = payload_of(&e);
                            StoredEntry { entry: e, payload }
                        })
                        .collect(),
                ),
                LogOp::InstallSnapshot(meta) => DiskOp::Install(meta),
            })
            .collect()
    }
}
