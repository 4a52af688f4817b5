//! What the transport has done, for metrics: plain counters on its shard.

use std::cell::Cell;

/// Counters since start, as read by [`super::Transport::counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportCounters {
    /// Frames written to peers (messages, calls, replies; hellos not counted).
    pub frames_sent: u64,
    /// Raft messages written.
    pub messages_sent: u64,
    /// Bytes written, frame headers and batches included.
    pub bytes_sent: u64,
    /// Frames read from peers (hellos not counted).
    pub frames_received: u64,
    /// Raft messages read and handed to `Inbound`.
    pub messages_received: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Messages dropped because a peer's queue was full (the oldest go first).
    pub messages_dropped: u64,
    /// Call replies dropped (the caller's queue was full, or the caller is unknown).
    pub replies_dropped: u64,
    /// Frames received that did not decode (skipped) or broke the framing (connection closed).
    pub frames_rejected: u64,
    /// Outbound connections established again after one was lost or refused.
    pub reconnects: u64,
    /// Outbound connection attempts that failed.
    pub connect_failures: u64,
    /// Calls that ended in a timeout.
    pub calls_timed_out: u64,
}

/// The live counters.
#[derive(Default)]
pub(crate) struct Counters {
    pub frames_sent: Cell<u64>,
    pub messages_sent: Cell<u64>,
    pub bytes_sent: Cell<u64>,
    pub frames_received: Cell<u64>,
    pub messages_received: Cell<u64>,
    pub bytes_received: Cell<u64>,
    pub messages_dropped: Cell<u64>,
    pub replies_dropped: Cell<u64>,
    pub frames_rejected: Cell<u64>,
    pub reconnects: Cell<u64>,
    pub connect_failures: Cell<u64>,
    pub calls_timed_out: Cell<u64>,
}

/// Adds `n` to a counter.
pub(crate) fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

impl Counters {
    pub fn snapshot(&self) -> TransportCounters {
        TransportCounters {
            frames_sent: self.frames_sent.get(),
            messages_sent: self.messages_sent.get(),
            bytes_sent: self.bytes_sent.get(),
            frames_received: self.frames_received.get(),
            messages_received: self.messages_received.get(),
            bytes_received: self.bytes_received.get(),
            messages_dropped: self.messages_dropped.get(),
            replies_dropped: self.replies_dropped.get(),
            frames_rejected: self.frames_rejected.get(),
            reconnects: self.reconnects.get(),
            connect_failures: self.connect_failures.get(),
            calls_timed_out: self.calls_timed_out.get(),
        }
    }
}
