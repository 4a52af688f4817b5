//! Per-group configuration: timeouts in ticks (the shard decides how long a tick is),
//! the election features, flow-control bounds and the seed of the timeout jitter.

use crate::types::NodeId;

/// How one replica of one group behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// This replica's id.
    pub id: NodeId,
    /// A follower that hears nothing from a leader for this long (plus a random part
    /// below the same amount) starts an election; a leader without a quorum's contact
    /// for this long steps down (check-quorum).
    pub election_ticks: u32,
    /// A leader sends every follower an append (a heartbeat if empty) this often, and
    /// resends an unanswered one.
    pub heartbeat_ticks: u32,
    /// An append unanswered for this long is sent again (in between, heartbeats go to
    /// the follower's matched offset and carry no data).
    pub append_retry_ticks: u32,
    /// Ask for a pre-vote before a real election, so a replica that was cut off cannot
    /// depose a healthy leader by bumping its term.
    pub pre_vote: bool,
    /// The leader steps down without a quorum's contact for an election timeout, and
    /// voters ignore elections while they hear from a leader (its lease).
    pub check_quorum: bool,
    /// Largest entry (batch) a leader accepts, in offsets.
    pub entry_offsets_max: u64,
    /// A leader refuses proposals while this many offsets are appended but uncommitted.
    pub uncommitted_offsets_max: u64,
    /// Seed for the randomised election timeout; give each replica its own.
    pub seed: u64,
    /// Let an idle group go quiescent: its leader stops heartbeating once every
    /// follower has matched its log and commit offset, and nobody counts ticks until
    /// a message, a proposal or [`crate::Raft::broker_lapsed`] wakes the group. Only
    /// for an application that runs a broker-pair failure detector and reports lapses.
    pub quiesce: bool,
}

impl Config {
    /// Defaults for replica `id`: 10-tick elections, 2-tick heartbeats, 6-tick append retries, pre-vote and
    /// check-quorum on, quiescence off.
    pub fn new(id: NodeId, seed: u64) -> Self {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 2,
            append_retry_ticks: 6,
            pre_vote: true,
            check_quorum: true,
            entry_offsets_max: 1 << 20,
            uncommitted_offsets_max: 1 << 24,
            seed,
            quiesce: false,
        }
    }
}
