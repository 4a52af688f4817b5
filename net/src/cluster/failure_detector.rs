//! The broker-pair failure detector (shard 0): one heartbeat stream per broker pair,
//! whatever the number of partitions two brokers share.
//!
//! The transport's writers send an empty frame to each peer they have been quiet
//! towards for `PEER_HEARTBEAT_MS`, and record when each peer was last heard from and
//! how many of its inbound connections ended. Every tick this loop turns that into
//! lapses — a peer silent for [`BROKER_LAPSE_MS`] (an election timeout), or whose
//! connection dropped (a crash resets it at once; a restart replaces it) — and tells
//! every shard's replicas, so quiescent followers of a group led there elect, and
//! quiescent leaders with a follower there wake and let check-quorum judge.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use strata_engine::shard::Shard;
use strata_raft::NodeId;

use crate::cluster::replicas::ShardReplicas;
use crate::cluster::TICK_MS;
use crate::replication::{PeerLiveness, Transport};

/// A peer not heard from for this long has lapsed: the election timeout (10 ticks),
/// so a quiescent group elects as soon after its leader's last word as an active one.
pub const BROKER_LAPSE_MS: u64 = 10 * TICK_MS;

/// Turns successive liveness snapshots into lapse reports (pure; tested below).
#[derive(Default)]
pub struct LapseTracker {
    /// Per peer: reported lapsed (and silent since), and lost connections seen.
    peers: HashMap<NodeId, (bool, u64)>,
}

impl LapseTracker {
    /// The peers that lapsed since the last call: newly silent, or a connection lost.
    pub fn observe(&mut self, snapshot: &[(NodeId, PeerLiveness)]) -> Vec<NodeId> {
        let mut lapsed = Vec::new();
        for (peer, l) in snapshot {
            let entry = self
                .peers
                .entry(*peer)
                .or_insert((false, l.connections_lost));
            let silent = l.silent_ms > BROKER_LAPSE_MS;
            let reset = l.connections_lost != entry.1;
            if reset || (silent && !entry.0) {
                lapsed.push(*peer);
            }
            *entry = (silent, l.connections_lost);
        }
        lapsed.sort_unstable();
        lapsed
    }
}

/// Runs the detector on shard 0 until the broker stops.
pub async fn run(shard: Shard, transport: Rc<Transport>) {
    let mut tracker = LapseTracker::default();
    while !shard.is_stopping() {
        let tick = glommio::timer::sleep(Duration::from_millis(TICK_MS));
        futures_lite::future::or(tick, shard.stopped()).await;
        for peer in tracker.observe(&transport.peer_liveness()) {
            tracing::info!(
                peer,
                "broker lapsed (silent for {BROKER_LAPSE_MS} ms or its connection dropped)"
            );
            report_lapse(&shard, peer).await;
        }
    }
}

/// Tells every shard's partition replicas that `peer` lapsed.
async fn report_lapse(shard: &Shard, peer: NodeId) {
    for id in 0..shard.shard_count() {
        if id == shard.id() {
            ShardReplicas::of(shard).broker_lapsed(peer);
            continue;
        }
        let _ = shard
            .invoke_on(id, move |s| async move {
                ShardReplicas::of(&s).broker_lapsed(peer);
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(silent_ms: u64, connections_lost: u64) -> PeerLiveness {
        PeerLiveness {
            silent_ms,
            connections_lost,
        }
    }

    #[test]
    fn a_silent_peer_lapses_once_until_heard_again() {
        let mut t = LapseTracker::default();
        assert!(t.observe(&[(2, l(100, 0)), (3, l(100, 0))]).is_empty());
        assert_eq!(
            t.observe(&[(2, l(BROKER_LAPSE_MS + 1, 0)), (3, l(50, 0))]),
            vec![2]
        );
        assert!(t.observe(&[(2, l(5 * BROKER_LAPSE_MS, 0))]).is_empty());
        assert!(t.observe(&[(2, l(10, 0))]).is_empty());
        assert_eq!(t.observe(&[(2, l(BROKER_LAPSE_MS + 1, 0))]), vec![2]);
    }

    #[test]
    fn a_dropped_connection_is_a_lapse_even_if_the_peer_is_back_at_once() {
        let mut t = LapseTracker::default();
        assert!(
            t.observe(&[(2, l(10, 3))]).is_empty(),
            "history before start"
        );
        assert_eq!(t.observe(&[(2, l(10, 4))]), vec![2]);
        assert!(t.observe(&[(2, l(10, 4))]).is_empty());
    }
}
