//! The small value types every other file speaks: node ids, terms, log entries and the
//! hard state that must be durable before certain messages leave.

use crate::membership::Membership;

/// A broker's id within a group (the same id in every group it hosts).
pub type NodeId = u64;

/// A Raft term. It is the partition's leader epoch: the leader of term `t` stamps `t`
/// into the `leader_epoch` of every batch it writes. Terms above [`TERM_MAX`] are
/// refused so the epoch fits the batch header's `i32`.
pub type Term = u64;

/// Largest term this crate produces or accepts (the batch header's leader epoch is an `i32`).
pub const TERM_MAX: Term = i32::MAX as Term;

/// What an entry is, as far as consensus cares. The bytes are the application's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A record batch proposed by a client.
    Data,
    /// The empty control batch a new leader writes first, so entries of earlier terms
    /// can commit (only current-term entries commit by counting).
    LeaderChange,
    /// A control batch carrying the group's next membership; it takes effect on every
    /// replica as soon as it is appended (not when committed).
    Membership(Membership),
}

/// One batch of the log: offsets `[start_offset, end_offset)` written in `term`.
/// A batch is identified by `(start_offset, term)`: two replicas holding a batch with
/// the same start offset and term hold the same bytes (Raft's log matching).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// First offset of the batch (its base offset).
    pub start_offset: u64,
    /// One past the batch's last offset.
    pub end_offset: u64,
    /// Term (leader epoch) the batch was written in.
    pub term: Term,
    /// Data, leader change marker or membership change.
    pub kind: EntryKind,
}

/// The state a replica must persist before it answers votes: its term and its vote in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Current term.
    pub term: Term,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
}

/// A replica's part in its group right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking whether it could win an election, without disturbing anyone's term.
    PreCandidate,
    /// Running an election in its term.
    Candidate,
    /// Leads its term.
    Leader,
}
