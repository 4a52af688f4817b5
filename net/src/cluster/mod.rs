//! The running cluster on one broker: the controller quorum's replica and its metadata
//! image (shard 0), this broker's partition replicas (on their owner shards), and the
//! glue between them, the transport (`crate::replication`) and the broker's topics.
//!
//! - `replicated_log` — one Raft replica over one log, carrying out each `Ready`.
//! - `replicas` — a shard's partition replicas: attach on open, ticks, delivery,
//!   leader reports to the controller.
//! - `controller_host` — the controller group on shard 0: applies committed metadata
//!   records, plans and commits commands on the leader, forwards them elsewhere.
//! - `metadata_snapshot` — snapshots of the metadata image: the files the metadata
//!   log is compacted behind, and what a leader sends a follower left behind them.
//! - `failure_detector` — the broker-pair failure detector on shard 0: reports a
//!   broker that fell silent (or whose connection dropped) to every shard's replicas,
//!   which is what lets idle groups go quiescent.
//! - `leader_reports` — partition leaders' reports, coalesced into one command.
//! - `isolation` — a broker cut off from the quorum sends Kafka clients elsewhere.
//! - `node` — startup, the transport's inbound side, publishing the image to shards.
//! - `view` — the cluster as clients are told of it.
//! - `stepped_down` — leaderships this broker lost before the image knew, so clients
//!   are not sent back to a leader that was cut off.
//! - `client_reads` — which replica answers a client read, and the leader-epoch fence.
//! - `offsets_topic` — creating `__consumer_offsets` through the controller.
//! - `group_forward` — native group requests forwarded to their coordinator.
//! - `reassignment` — partition leaders carrying out reassignments and
//!   preferred-leader elections, one membership step at a time.
//!
//! The state machines themselves live elsewhere: Raft in `strata-raft`, the metadata
//! image and command validation in `crate::controller`.

pub mod client_reads;
pub mod controller_host;
pub mod failure_detector;
pub mod group_forward;
pub mod isolation;
pub mod leader_reports;
pub mod metadata_snapshot;
pub mod node;
pub mod offsets_topic;
pub mod reassignment;
pub mod replicas;
pub mod replicated_log;
pub mod stepped_down;
pub mod view;

use strata_raft::{Config, NodeId};

use crate::broker::Broker;

/// One tick of every Raft group on a shard. Elections time out after 10–20 ticks
/// (1–2 s), leaders send heartbeats every 2 ticks.
pub const TICK_MS: u64 = 100;

/// The Raft configuration of this broker's replica of a partition group (the seed
/// differs per group and node so election timeouts do not line up). Partition groups
/// go quiescent when idle: the failure detector keeps their leases.
pub fn raft_config(node: NodeId, topic: &str, partition: u32) -> Config {
    let mut seed = node.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(partition);
    for b in topic.bytes() {
        seed = seed.rotate_left(5) ^ u64::from(b);
    }
    let mut cfg = Config::new(node, seed);
    cfg.quiesce = true;
    cfg
}

/// Kafka's default `replica.lag.time.max.ms`: a follower that has not caught up for
/// this long leaves the in-sync set.
pub const REPLICA_LAG_TIME_MAX_MS: u64 = 30_000;

/// `replica.lag.time.max.ms` in ticks.
pub fn lag_ticks(_broker: &Broker) -> u32 {
    (REPLICA_LAG_TIME_MAX_MS / TICK_MS) as u32
}
