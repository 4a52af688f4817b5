//! The leader's view of one follower: how far its log matches, where the next append
//! starts, and whether one is in flight. One append in flight per follower (like a
//! Kafka follower's one outstanding fetch): the next starts where the last one was
//! acknowledged, so a transport that trims an append to fit its frame costs nothing.

/// Replication state of one follower, kept by the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The follower's log matches the leader's and is durable up to here.
    pub match_end_offset: u64,
    /// The next append starts here (its `prev_end_offset`).
    pub next_offset: u64,
    /// Ticks since the in-flight append or snapshot was sent; `None` when none is.
    pub(crate) inflight_ticks: Option<u32>,
    /// The follower needs a snapshot: its log ends below the leader's log start.
    pub(crate) needs_snapshot: bool,
    /// Heard from in the current check-quorum window.
    pub(crate) recent_active: bool,
    /// Ticks since the follower last answered (for in-sync-replica decisions).
    pub ticks_since_contact: u32,
}

impl Progress {
    /// A follower the leader knows nothing about yet: probe from the leader's log end.
    pub(crate) fn new(log_end_offset: u64) -> Self {
        Progress {
            match_end_offset: 0,
            next_offset: log_end_offset,
            inflight_ticks: None,
            needs_snapshot: false,
            recent_active: false,
            ticks_since_contact: 0,
        }
    }
}
