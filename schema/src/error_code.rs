//! Error codes of the native protocol: what a client sees in a response's `Error`.

/// A protocol error code; 0 means no error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ErrorCode {
    None = 0,
    Unknown = 1,
    /// A record batch failed validation (bad CRC, malformed).
    CorruptBatch = 2,
    UnknownTopic = 3,
    UnknownPartition = 4,
    InvalidConfig = 5,
    /// A batch is larger than `max.message.bytes`.
    MessageTooLarge = 6,
    UnsupportedVersion = 7,
    UnknownApi = 8,
    /// The request body could not be decoded or is inconsistent.
    InvalidRequest = 9,
    OffsetOutOfRange = 10,
    RequestTimedOut = 11,
    TopicAlreadyExists = 12,
    InvalidPartitions = 13,
    InvalidTopicName = 14,
    /// The disk failed; the partition is read-only until it is reopened.
    StorageError = 15,
    /// The partition is fenced after corruption or a storage fault.
    PartitionFenced = 16,
    GroupNotFound = 17,
    UnknownMemberId = 18,
    IllegalGeneration = 19,
    RebalanceInProgress = 20,
    GroupNotEmpty = 21,
    InvalidSessionTimeout = 22,
    /// A frame exceeded the maximum frame size.
    FrameTooLarge = 23,
    BrokerShuttingDown = 24,
    InvalidAcks = 25,
    NotCoordinator = 26,
    /// An idempotent producer's epoch is older than the partition's: another
    /// instance took over.
    ProducerFenced = 27,
    /// An idempotent producer's batch does not follow its last sequence number.
    OutOfOrderSequence = 28,
    /// The partition has no state for this producer id and the batch does not start
    /// a sequence.
    UnknownProducerId = 29,
    /// A record breaks a rule of its topic: a record without a key on a compacted
    /// topic (Kafka's INVALID_RECORD).
    InvalidRecord = 30,
    /// The broker is short of a resource (open descriptors, memory) or of disk space
    /// for a moment: nothing is damaged, retry later.
    ResourceExhausted = 31,
    /// A record timestamp is outside the topic's `message.timestamp.*` window.
    InvalidTimestamp = 32,
    /// This broker does not lead the partition (or is not a replica of it): ask the
    /// metadata again and go to the leader.
    NotLeaderOrFollower = 33,
    /// Fewer in-sync replicas than `min.insync.replicas`: an `acks=all` produce is refused.
    NotEnoughReplicas = 34,
    /// A replication factor below 1 or above the number of brokers.
    InvalidReplicationFactor = 35,
    /// The group's coordinator partition has no leader right now.
    CoordinatorNotAvailable = 36,
    /// The request's leader epoch is older than the partition's.
    FencedLeaderEpoch = 37,
    /// The request's leader epoch is newer than this replica knows.
    UnknownLeaderEpoch = 38,
    /// The controller quorum has no leader right now, or this broker is not it.
    NotController = 39,
    /// An explicit replica assignment names unknown brokers or repeats one.
    InvalidReplicaAssignment = 40,
}

impl ErrorCode {
    /// The code for a wire value; unknown values map to `Unknown`.
    pub fn from_i16(v: i16) -> ErrorCode {
        use ErrorCode::*;
        const ALL: [ErrorCode; 41] = [
            None,
            Unknown,
            CorruptBatch,
            UnknownTopic,
            UnknownPartition,
            InvalidConfig,
            MessageTooLarge,
            UnsupportedVersion,
            UnknownApi,
            InvalidRequest,
            OffsetOutOfRange,
            RequestTimedOut,
            TopicAlreadyExists,
            InvalidPartitions,
            InvalidTopicName,
            StorageError,
            PartitionFenced,
            GroupNotFound,
            UnknownMemberId,
            IllegalGeneration,
            RebalanceInProgress,
            GroupNotEmpty,
            InvalidSessionTimeout,
            FrameTooLarge,
            BrokerShuttingDown,
            InvalidAcks,
            NotCoordinator,
            ProducerFenced,
            OutOfOrderSequence,
            UnknownProducerId,
            InvalidRecord,
            ResourceExhausted,
            InvalidTimestamp,
            NotLeaderOrFollower,
            NotEnoughReplicas,
            InvalidReplicationFactor,
            CoordinatorNotAvailable,
            FencedLeaderEpoch,
            UnknownLeaderEpoch,
            NotController,
            InvalidReplicaAssignment,
        ];
        ALL.iter()
            .copied()
            .find(|c| *c as i16 == v)
            .unwrap_or(Unknown)
    }

    /// Whether a client may retry the same request and expect it to succeed.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::RequestTimedOut
                | ErrorCode::RebalanceInProgress
                | ErrorCode::NotCoordinator
                | ErrorCode::ResourceExhausted
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::NotController
        )
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            None => "NONE",
            Unknown => "UNKNOWN",
            CorruptBatch => "CORRUPT_BATCH",
            UnknownTopic => "UNKNOWN_TOPIC",
            UnknownPartition => "UNKNOWN_PARTITION",
            InvalidConfig => "INVALID_CONFIG",
            MessageTooLarge => "MESSAGE_TOO_LARGE",
            UnsupportedVersion => "UNSUPPORTED_VERSION",
            UnknownApi => "UNKNOWN_API",
            InvalidRequest => "INVALID_REQUEST",
            OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            RequestTimedOut => "REQUEST_TIMED_OUT",
            TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            InvalidPartitions => "INVALID_PARTITIONS",
            InvalidTopicName => "INVALID_TOPIC_NAME",
            StorageError => "STORAGE_ERROR",
            PartitionFenced => "PARTITION_FENCED",
            GroupNotFound => "GROUP_NOT_FOUND",
            UnknownMemberId => "UNKNOWN_MEMBER_ID",
            IllegalGeneration => "ILLEGAL_GENERATION",
            RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            GroupNotEmpty => "GROUP_NOT_EMPTY",
            InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            FrameTooLarge => "FRAME_TOO_LARGE",
            BrokerShuttingDown => "BROKER_SHUTTING_DOWN",
            InvalidAcks => "INVALID_ACKS",
            NotCoordinator => "NOT_COORDINATOR",
            ProducerFenced => "PRODUCER_FENCED",
            OutOfOrderSequence => "OUT_OF_ORDER_SEQUENCE",
            UnknownProducerId => "UNKNOWN_PRODUCER_ID",
            InvalidRecord => "INVALID_RECORD",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            InvalidTimestamp => "INVALID_TIMESTAMP",
            NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            InvalidReplicationFactor => "INVALID_REPLICATION_FACTOR",
            CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            NotController => "NOT_CONTROLLER",
            InvalidReplicaAssignment => "INVALID_REPLICA_ASSIGNMENT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_roundtrip() {
        for v in 0..41i16 {
            assert_eq!(ErrorCode::from_i16(v) as i16, v);
        }
        assert_eq!(ErrorCode::from_i16(-5), ErrorCode::Unknown);
    }
}
