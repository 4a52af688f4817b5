//! Messages between the replicas of one group. They are plain values: the transport
//! tags them with the group, coalesces every group's messages to the same broker into
//! one frame (so idle groups' heartbeats share one packet per broker pair), and may
//! drop, delay, duplicate or reorder them — the state machine tolerates all of that.

use crate::membership::Membership;
use crate::types::{Entry, NodeId, Term};

/// Most entries one append may list; a longer list is refused as malformed.
pub const APPEND_ENTRIES_MAX: usize = 4096;

/// A message from `from` to `to`, sent in `term`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Addressee.
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term it would campaign in).
    pub term: Term,
    /// What it says.
    pub body: MessageBody,
}

/// The kinds of message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// "Could I win an election in `term`?" — answered without changing anyone's term.
    PreVote(VoteRequest),
    /// The answer to a pre-vote.
    PreVoteResponse {
        /// Whether the sender would vote.
        granted: bool,
    },
    /// "Vote for me in `term`."
    Vote(VoteRequest),
    /// The answer to a vote; sent only once the vote is durable.
    VoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Log replication and heartbeat from the leader.
    Append(Append),
    /// A follower's answer to an append or a snapshot; sent only once the log it
    /// acknowledges is durable.
    AppendResponse(AppendResult),
    /// The leader's log start passed the follower's log end: start over from a snapshot.
    Snapshot(SnapshotMeta),
    /// Leadership transfer: campaign now, without pre-vote, even inside a leader lease.
    TimeoutNow,
}

/// A candidate's log position, for the "at least as up to date" election rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRequest {
    /// Term of the candidate's last entry.
    pub last_term: Term,
    /// The candidate's log end offset.
    pub log_end_offset: u64,
    /// Set by a leadership transfer: voters ignore their leader lease.
    pub transfer: bool,
}

/// Replication of `[prev_end_offset, …)` from the leader.
///
/// As the state machine emits it, `entries` is empty and `send_end_offset` says how far
/// the leader's log reaches: the transport attaches whole batches from
/// `prev_end_offset` on (all up to `send_end_offset`, or a shorter prefix if its frame
/// is full) and lists them in `entries`, reading each batch's offsets, leader epoch
/// and kind from its header. The receiver's transport decodes the same list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    /// Log end offset the entries follow.
    pub prev_end_offset: u64,
    /// Term of the entry at `prev_end_offset - 1` in the leader's log.
    pub prev_term: Term,
    /// The leader's commit offset (high watermark).
    pub commit_offset: u64,
    /// The leader's log end when the message was made (what the transport may attach).
    pub send_end_offset: u64,
    /// The batches carried, contiguous from `prev_end_offset`.
    pub entries: Vec<Entry>,
    /// The leader's log start: the application of a follower moves its own log start
    /// up to it (within what it committed), as retention and DeleteRecords moved the
    /// leader's. The state machine itself ignores it.
    pub log_start_offset: u64,
}

/// A follower's answer to an append or a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendResult {
    /// The follower's log matches the leader's up to `match_end_offset` and that prefix is durable.
    Accepted {
        /// End of the matching, durable prefix.
        match_end_offset: u64,
    },
    /// The entry before `rejected_prev_end_offset` differs or is missing; the follower's
    /// largest term at or below the leader's there is `hint_term`, ending at
    /// `hint_end_offset` (Kafka's OffsetForLeaderEpoch answer, given up front).
    Rejected {
        /// The `prev_end_offset` of the refused append.
        rejected_prev_end_offset: u64,
        /// The follower's term hint.
        hint_term: Term,
        /// Where that term ends in the follower's log.
        hint_end_offset: u64,
    },
}

/// What a snapshot stands for: the log up to `end_offset`, whose last entry had `term`,
/// under `membership`. The application attaches its own state (the controller's
/// metadata image; for a partition, e.g. producer state) and serves it by this key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The log start after installing it.
    pub end_offset: u64,
    /// Term of the entry at `end_offset - 1`.
    pub term: Term,
    /// Membership in force at `end_offset`.
    pub membership: Membership,
}
