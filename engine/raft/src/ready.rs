//! What the state machine asks of the application, one batch at a time.
//!
//! Order of work for one [`Ready`] (it is what keeps safety obvious):
//! 1. apply `log_ops` to the log and write `hard_state`, in that order, without syncing;
//! 2. send `messages` (they never depend on anything unsynced: leader appends and
//!    heartbeats, pre-votes, transfer orders — and replies that were held back until an
//!    earlier persist was acknowledged);
//! 3. if `persist` is set, fsync the log and hard state (group commit may merge several
//!    Readies' syncs) and then call [`crate::Raft::persisted`] with it, in order;
//! 4. apply the entries `[apply_from_offset, apply_end_offset)` to the state machine
//!    (they are committed and durable here) and expose `commit_offset` as the high
//!    watermark.
//!
//! Replies that promise durable state (vote grants, append acknowledgements) are held
//! inside the state machine until their persist is acknowledged and then come out in a
//! later Ready's `messages`, so the application cannot send them early by mistake.

use crate::message::{Message, SnapshotMeta};
use crate::types::{Entry, HardState};

/// An operation on the log, to be applied in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOp {
    /// Remove every offset at or after `end_offset` (a divergent suffix; always at a
    /// batch boundary, above the commit offset).
    Truncate {
        /// New log end.
        end_offset: u64,
    },
    /// Append these batches, contiguous with the log end. On the leader they are its own
    /// proposals (identified by start offset and term as [`crate::Raft::propose`]
    /// returned them); on a follower, batches received in an append since the last Ready.
    Append(Vec<Entry>),
    /// Replace the whole log by the snapshot `meta` (received since the last Ready): the
    /// log becomes empty, starting at `meta.end_offset`.
    InstallSnapshot(SnapshotMeta),
}

/// A persist the application must acknowledge with [`crate::Raft::persisted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PersistToken(pub u64);

/// One batch of work. In order: apply `log_ops` and write `hard_state` (unsynced);
/// send `messages`; fsync and call [`crate::Raft::persisted`] with `persist`; apply
/// `[apply_from_offset, apply_end_offset)` and publish `commit_offset`. Replies that
/// promise durable state come out only in a Ready after their persist is acknowledged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Log operations, in order.
    pub log_ops: Vec<LogOp>,
    /// Term and vote to write, if changed.
    pub hard_state: Option<HardState>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Set when `log_ops` or `hard_state` must be synced and acknowledged.
    pub persist: Option<PersistToken>,
    /// First offset to apply (equals `apply_end_offset` when there is nothing new).
    pub apply_from_offset: u64,
    /// One past the last offset to apply.
    pub apply_end_offset: u64,
    /// The group's commit offset as this replica knows it (the high watermark): `acks=all`
    /// appends below it are complete.
    pub commit_offset: u64,
    /// This replica's own durable log end (on the leader, where `acks=1` completes).
    pub durable_end_offset: u64,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.log_ops.is_empty()
            && self.hard_state.is_none()
            && self.messages.is_empty()
            && self.apply_from_offset == self.apply_end_offset
    }
}
