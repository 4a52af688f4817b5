//! Consumer groups, as plain logic: the group state machine, the assignors, the
//! records of the internal compacted topic `__consumer_offsets`, and lag.
//!
//! Three membership protocols share the coordinator and the offsets: the native
//! protocol (broker-side assignment), Kafka's classic protocol (JoinGroup/SyncGroup,
//! the group leader assigns) and Kafka's KIP-848 protocol (ConsumerGroupHeartbeat,
//! broker-side assignment reconciled member by member); see [`GroupKind`].
//!
//! Nothing here does I/O or reads a clock. The server feeds a [`Coordinator`]
//! explicit inputs (joins, syncs, heartbeats, leaves, commits, `tick(now_ms)`,
//! records replayed from `__consumer_offsets` at startup) and carries out what comes
//! back: held requests to answer (a join is held until its rebalance completes, a
//! sync until the leader's assignment arrives) and records to append to the group's
//! `__consumer_offsets` partition. One coordinator serves the
//! groups of one partition of that topic; [`coordinator_partition`] says which.

mod assignor;
mod classic;
mod consumer;
mod coordinator;
mod error;
mod group;
mod lag;
mod native;
mod records;
mod topic_regex;

pub use assignor::{assign, Assignment, Strategy, TopicPartition};
pub use classic::{
    assigned_partitions, subscribed_topics, ClassicJoinRequest, ClassicJoinResponse,
    ClassicJoinedMember, LeaveMember, SyncRequest, SyncResponse,
};
pub use consumer::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse,
    ConsumerMemberDescription, MemberState, LEAVE_EPOCH, SERVER_ASSIGNORS, STATIC_LEAVE_EPOCH,
};
pub use coordinator::{
    Answer, Commit, Coordinator, CoordinatorConfig, Effects, GroupDescription, GroupListing,
    JoinRequest, JoinResponse, KafkaCommit, MemberDescription, Token,
    CONSUMER_HEARTBEAT_INTERVAL_MS, CONSUMER_SESSION_TIMEOUT_MS, INITIAL_REBALANCE_DELAY_MS,
    OFFSET_METADATA_BYTES_MAX, REBALANCE_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MAX,
    SESSION_TIMEOUT_MS_MIN,
};
pub use error::{GroupCode, GroupError};
pub use group::{GroupKind, GroupState};
pub use lag::{lag_rows, partition_lag, LagRow};
#[cfg(test)]
pub(crate) use records::offset_record;
pub use records::{
    decode_record, ClassicMemberRecord, ClassicMetadata, ConsumerMemberRecord, ConsumerMetadata,
    GroupMetadata, GroupRecord, MemberRecord, MetadataValue, OffsetValue, Record, RecordError,
};

/// Partitions of `__consumer_offsets` when the broker creates it.
pub const OFFSETS_TOPIC_PARTITIONS: u32 = 8;

/// 32-bit FNV-1a offset basis.
const FNV1A_OFFSET_BASIS: u32 = 0x811c_9dc5;
/// 32-bit FNV-1a prime.
const FNV1A_PRIME: u32 = 0x0100_0193;

/// The partition of `__consumer_offsets` (of `partitions`) whose leader coordinates
/// `group`. A fixed hash (FNV-1a), so the answer survives restarts and agrees
/// across brokers.
pub fn coordinator_partition(group: &str, partitions: u32) -> u32 {
    assert!(
        partitions > 0,
        "__consumer_offsets has at least one partition"
    );
    let hash = group.bytes().fold(FNV1A_OFFSET_BASIS, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(FNV1A_PRIME)
    });
    hash % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_partition_is_stable_and_in_range() {
        assert_eq!(coordinator_partition("", 8), 0x811c_9dc5 % 8);
        for g in ["a", "orders", "billing-v2"] {
            let p = coordinator_partition(g, 8);
            assert!(p < 8);
            assert_eq!(p, coordinator_partition(g, 8));
        }
    }
}

#[cfg(test)]
mod classic_tests;
#[cfg(test)]
mod consumer_tests;
#[cfg(test)]
mod group_tests;
