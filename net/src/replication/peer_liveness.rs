//! The broker-pair failure detector's raw data: when each peer was last heard from
//! (any frame on its inbound connection, the writer's idle heartbeats included) and
//! how many of its inbound connections ended (a reset, a restart, a cut link).
//!
//! The transport only records; what counts as lapsed (and what to wake) is the
//! cluster runtime's call (`crate::cluster::liveness`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use strata_raft::NodeId;

/// What is known of one peer's inbound side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLiveness {
    /// Milliseconds since the last frame from it.
    pub silent_ms: u64,
    /// Inbound connections from it that ended since start.
    pub connections_lost: u64,
}

#[derive(Clone, Copy)]
struct Heard {
    at: Instant,
    connections_lost: u64,
}

/// Per peer: last frame and lost connections. One per transport, on its shard.
#[derive(Default)]
pub(crate) struct LivenessTable {
    peers: RefCell<HashMap<NodeId, Heard>>,
}

impl LivenessTable {
    /// A frame from `peer` arrived.
    pub(crate) fn heard(&self, peer: NodeId) {
        let now = Instant::now();
        self.peers
            .borrow_mut()
            .entry(peer)
            .and_modify(|h| h.at = now)
            .or_insert(Heard {
                at: now,
                connections_lost: 0,
            });
    }

    /// An inbound connection from `peer` ended.
    pub(crate) fn connection_lost(&self, peer: NodeId) {
        let now = Instant::now();
        self.peers
            .borrow_mut()
            .entry(peer)
            .or_insert(Heard {
                at: now,
                connections_lost: 0,
            })
            .connections_lost += 1;
    }

    /// Every peer heard from at least once, with its liveness now.
    pub(crate) fn snapshot(&self) -> Vec<(NodeId, PeerLiveness)> {
        let now = Instant::now();
        self.peers
            .borrow()
            .iter()
            .map(|(id, h)| {
                let silent_ms = now.saturating_duration_since(h.at).as_millis() as u64;
                (
                    *id,
                    PeerLiveness {
                        silent_ms,
                        connections_lost: h.connections_lost,
                    },
                )
            })
            .collect()
    }
}
