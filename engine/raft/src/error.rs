//! Typed errors: what a caller did that the state machine refused, and why.

use crate::types::{NodeId, Term};

/// A membership that cannot be built or changed as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The same id is listed twice.
    #[error("a replica is listed twice")]
    Duplicate,
    /// A group needs at least one voter.
    #[error("a group needs at least one voter")]
    NoVoters,
    /// Too many members.
    #[error("a group has at most {members_max} members")]
    TooMany {
        /// The bound ([`crate::MEMBERS_MAX`]).
        members_max: usize,
    },
    /// Adding a replica that is already in the group.
    #[error("replica {0} is already a member")]
    AlreadyMember(NodeId),
    /// Promoting a replica that is not a learner.
    #[error("replica {0} is not a learner")]
    NotLearner(NodeId),
    /// Removing a replica that is not in the group.
    #[error("replica {0} is not a member")]
    NotMember(NodeId),
}

/// Why a proposal (an append, a membership change, a transfer) was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals; `leader` is the one this replica knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader if known, for redirecting the client.
        leader: Option<NodeId>,
    },
    /// A leadership transfer is under way; proposals resume on the new leader.
    #[error("leadership is being transferred to {0}")]
    TransferInProgress(NodeId),
    /// The uncommitted suffix is at its bound; retry when the commit catches up.
    #[error("{uncommitted_offsets} offsets are uncommitted (at most {uncommitted_offsets_max})")]
    Backpressure {
        /// Offsets appended but not committed.
        uncommitted_offsets: u64,
        /// The configured bound.
        uncommitted_offsets_max: u64,
    },
    /// An entry spans at least one offset and at most the configured batch bound.
    #[error("an entry spans 1..={offsets_max} offsets, not {offsets}")]
    BadEntrySize {
        /// Offsets asked for.
        offsets: u64,
        /// The configured bound.
        offsets_max: u64,
    },
    /// The previous membership change is not committed yet.
    #[error("the previous membership change is not committed yet")]
    MembershipChangePending,
    /// A new leader must commit an entry of its own term before changing membership.
    #[error("the leader has not committed an entry of term {0} yet")]
    TermNotCommitted(Term),
    /// A learner is promoted only once it has caught up to the commit offset.
    #[error("learner {0} has not caught up")]
    NotCaughtUp(NodeId),
    /// The leader cannot remove itself: transfer leadership first.
    #[error("the leader cannot remove itself; transfer leadership first")]
    RemoveLeader,
    /// Leadership can only go to a voter.
    #[error("replica {0} is not a voter")]
    NotVoter(NodeId),
    /// The change makes no sense for the current membership.
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

/// A message the state machine refused. Dropping it is always safe (the network may
/// drop any message); the error says which peer misbehaves or which invariant broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The message is addressed to another replica.
    #[error("message for {to} delivered to {me}")]
    WrongRecipient {
        /// Addressee.
        to: NodeId,
        /// This replica.
        me: NodeId,
    },
    /// The term is beyond what a leader epoch can hold.
    #[error("term {0} is above the largest leader epoch")]
    TermTooLarge(Term),
    /// An append whose entries are not contiguous, empty, out of term order or too many.
    #[error("malformed append from {from}: {reason}")]
    MalformedAppend {
        /// Sender.
        from: NodeId,
        /// What is wrong.
        reason: &'static str,
    },
    /// A membership in a message breaks the membership rules.
    #[error("malformed membership from {0}")]
    MalformedMembership(NodeId),
    /// A second replica claims leadership of a term whose leader this replica knows
    /// (or is): a safety violation.
    #[error("{from} claims leadership of term {term}, which has another leader")]
    SecondLeader {
        /// The other claimant.
        from: NodeId,
        /// The term.
        term: Term,
    },
    /// An append asks to truncate committed offsets: a safety violation.
    #[error(
        "append from {from} would truncate committed offset {offset} (commit {commit_offset})"
    )]
    TruncateCommitted {
        /// Sender.
        from: NodeId,
        /// First offset it would remove.
        offset: u64,
        /// This replica's commit offset.
        commit_offset: u64,
    },
}

/// A restored state that cannot be right (the shard's files disagree with each other).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Epoch runs must start at or after the log start, strictly increase in term and
    /// offset, and lie below the log end.
    #[error("epoch runs are out of order or outside the log")]
    BadEpochs,
    /// Membership entries must lie inside the log, in offset order.
    #[error("membership entries are out of order or outside the log")]
    BadMemberships,
    /// The log start must not pass the log end, nor the commit offset the log end.
    #[error("log start {log_start_offset}, commit {commit_offset} and end {log_end_offset} are out of order")]
    BadOffsets {
        /// Log start.
        log_start_offset: u64,
        /// Commit lower bound.
        commit_offset: u64,
        /// Log end.
        log_end_offset: u64,
    },
    /// The persisted term is beyond the largest leader epoch.
    #[error("hard state term {0} is invalid for this log")]
    BadTerm(Term),
    /// A membership in the restored state breaks the membership rules.
    #[error("a restored membership is malformed")]
    BadMembership,
}

/// A log compaction that would drop what is not yet safe to drop.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// Only applied (committed and durable) offsets may leave the log.
    #[error("log start {log_start_offset} would pass the applied offset {applied_offset}")]
    BeyondApplied {
        /// Asked-for log start.
        log_start_offset: u64,
        /// Applied offset.
        applied_offset: u64,
    },
}
