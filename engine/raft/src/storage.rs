//! What the shard hands the state machine after a restart: the durable facts it kept
//! (hard state file, the log's batch headers or an epoch checkpoint, membership
//! control batches, the snapshot's key).

use crate::epoch_cache::EpochRun;
use crate::error::RestoreError;
use crate::membership::Membership;
use crate::types::{HardState, Term, TERM_MAX};

/// The durable state of one replica, as recovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredState {
    /// The term and vote as found. If the log's last term is newer (the hard-state write
    /// was lost in a crash but unsynced log writes survived), the state machine starts in
    /// that term with no vote: a vote whose write was lost was never answered.
    pub hard_state: HardState,
    /// First offset in the log (the snapshot's end).
    pub log_start_offset: u64,
    /// Term of the entry just below the log start (0 if none ever existed).
    pub log_start_term: Term,
    /// Membership in force at the log start (from the snapshot, or the bootstrap one).
    pub log_start_membership: Membership,
    /// Term runs of `[log_start_offset, log_end_offset)` (from batch headers' epochs).
    pub epochs: Vec<EpochRun>,
    /// Membership control batches in the log: (offset, membership), in offset order.
    pub memberships: Vec<(u64, Membership)>,
    /// One past the last durable offset.
    pub log_end_offset: u64,
    /// A commit offset known to be committed (a high-watermark checkpoint, or the log
    /// start); the state machine learns the real one from the leader.
    pub commit_offset: u64,
}

impl RestoredState {
    /// A brand-new replica: empty log, no term, bootstrap `membership`. A replica
    /// joining an existing group as a learner starts the same way with the group's
    /// membership as it knows it (or an empty one: it learns it from the leader).
    pub fn bootstrap(membership: Membership) -> Self {
        RestoredState {
            hard_state: HardState::default(),
            log_start_offset: 0,
            log_start_term: 0,
            log_start_membership: membership,
            epochs: Vec::new(),
            memberships: Vec::new(),
            log_end_offset: 0,
            commit_offset: 0,
        }
    }

    /// Checks that the pieces agree with each other.
    pub(crate) fn validate(&self) -> Result<(), RestoreError> {
        if self.log_start_offset > self.log_end_offset
            || self.commit_offset > self.log_end_offset
            || self.commit_offset < self.log_start_offset
        {
            return Err(RestoreError::BadOffsets {
                log_start_offset: self.log_start_offset,
                commit_offset: self.commit_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if self.hard_state.term > TERM_MAX {
            return Err(RestoreError::BadTerm(self.hard_state.term));
        }
        let ordered = self.memberships.windows(2).all(|w| w[0].0 < w[1].0);
        let inside = self
            .memberships
            .iter()
            .all(|(o, _)| *o >= self.log_start_offset && *o < self.log_end_offset);
        if !(ordered && inside) {
            return Err(RestoreError::BadMemberships);
        }
        let empty_ok = |m: &Membership| m.is_well_formed() || *m == Membership::default();
        if !empty_ok(&self.log_start_membership)
            || !self.memberships.iter().all(|(_, m)| m.is_well_formed())
        {
            return Err(RestoreError::BadMembership);
        }
        Ok(())
    }
}
