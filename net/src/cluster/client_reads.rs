//! Which replica on this broker may answer a client's read of a partition, and the
//! leader-epoch fence every such read passes (Kafka's `current_leader_epoch`).
//!
//! Reads go to the leader. A consumer that follows KIP-392 redirects (Kafka Fetch
//! v11+, as Kafka decides it: the request carries client metadata) may also read from
//! a follower, up to the commit offset the leader last told that follower in its
//! appends and heartbeats (`Append::commit_offset`, set as the log's high watermark by
//! `replicated_log`), so a consumer never sees a record that is not committed.
//!
//! The fence compares the epoch the client was told (Metadata's `leader_epoch`) with
//! this replica's: the Raft term, which is the epoch stamped in the batches a leader
//! writes. An older one is FENCED_LEADER_EPOCH (the client's metadata is stale), a
//! newer one UNKNOWN_LEADER_EPOCH (this replica has not heard of that leader yet);
//! both make Kafka clients refresh their metadata and retry. -1 asks for no check.
//! As in Kafka the epoch is checked before the leadership.

use strata_raft::Role;
use strata_schema::ErrorCode;

use crate::broker::Broker;
use crate::cluster::replicas::{leader_replica, ShardReplicas};
use crate::cluster_view::SINGLE_NODE_LEADER_EPOCH;
use crate::errors::WireError;

/// The epoch a client sends when it asks for no check.
pub const NO_EPOCH_CHECK: i32 = -1;

/// How a client read may be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRule {
    /// The leader epoch the client believes current; [`NO_EPOCH_CHECK`] for none.
    pub current_leader_epoch: i32,
    /// A follower may answer (a KIP-392 consumer fetch), not only the leader.
    pub follower_ok: bool,
}

impl ReadRule {
    /// Leader only, no epoch check: the native protocol's reads.
    pub const LEADER: ReadRule = ReadRule {
        current_leader_epoch: NO_EPOCH_CHECK,
        follower_ok: false,
    };

    /// Leader only, fenced by the client's epoch.
    pub fn leader_at(current_leader_epoch: i32) -> ReadRule {
        ReadRule {
            current_leader_epoch,
            follower_ok: false,
        }
    }
}

/// Kafka's answer to a client that believes `client` is the current epoch of a
/// partition whose epoch is `current` (`what` names the partition).
pub fn check_epoch(client: i32, current: i32, what: &str) -> Result<(), WireError> {
    if client < 0 || client == current {
        Ok(())
    } else if client < current {
        Err(WireError::new(
            ErrorCode::FencedLeaderEpoch,
            format!(
                "{what}: leader epoch {client} is older than the current {current}; \
                 refresh the metadata"
            ),
        ))
    } else {
        Err(WireError::new(
            ErrorCode::UnknownLeaderEpoch,
            format!(
                "{what}: leader epoch {client} is newer than the {current} this replica \
                 knows; retry shortly"
            ),
        ))
    }
}

/// A Raft term as a Kafka leader epoch (terms past `i32::MAX` never happen: they would
/// take billions of elections).
pub fn epoch_of_term(term: u64) -> i32 {
    i32::try_from(term).unwrap_or(i32::MAX)
}

/// Whether this broker may answer a client read of a partition under `rule`, and the
/// partition's epoch here when it may. Call on the owner shard.
pub fn check_read(
    broker: &Broker,
    topic: &str,
    partition: u32,
    rule: ReadRule,
) -> Result<i32, WireError> {
    let what = format!("{topic}-{partition}");
    if broker.config.cluster.is_none() {
        check_epoch(rule.current_leader_epoch, SINGLE_NODE_LEADER_EPOCH, &what)?;
        return Ok(SINGLE_NODE_LEADER_EPOCH);
    }
    let Some(replica) = ShardReplicas::of(&broker.shard).get(topic, partition) else {
        // Not a replica here: the same answer a produce gets.
        leader_replica(broker, topic, partition)?;
        return Err(WireError::new(
            ErrorCode::NotLeaderOrFollower,
            format!("this broker holds no replica of {what}"),
        ));
    };
    let (role, term, _) = replica.leadership();
    let epoch = epoch_of_term(term);
    check_epoch(rule.current_leader_epoch, epoch, &what)?;
    if role != Role::Leader && !rule.follower_ok {
        leader_replica(broker, topic, partition)?;
    }
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_fenced_as_kafka_does() {
        assert!(check_epoch(NO_EPOCH_CHECK, 3, "t-0").is_ok());
        assert!(check_epoch(3, 3, "t-0").is_ok());
        let older = check_epoch(2, 3, "t-0").unwrap_err();
        assert_eq!(older.code, ErrorCode::FencedLeaderEpoch);
        assert!(older.message.contains("t-0"), "{}", older.message);
        let newer = check_epoch(4, 3, "t-0").unwrap_err();
        assert_eq!(newer.code, ErrorCode::UnknownLeaderEpoch);
    }

    #[test]
    fn terms_become_epochs() {
        assert_eq!(epoch_of_term(7), 7);
        assert_eq!(epoch_of_term(u64::MAX), i32::MAX);
    }
}
