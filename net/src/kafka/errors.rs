//! Kafka error codes, and how strata's own errors map onto them.

use strata_schema::ErrorCode;

use crate::errors::WireError;

/// Kafka's error codes used by this broker (values from Kafka's `Errors` enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i16)]
pub(crate) enum KafkaCode {
    None = 0,
    UnknownServerError = -1,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    LeaderNotAvailable = 5,
    NotLeaderOrFollower = 6,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    CoordinatorNotAvailable = 15,
    NotCoordinator = 16,
    InvalidTopicException = 17,
    InvalidRequiredAcks = 21,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidConfig = 40,
    InvalidRequest = 42,
    OutOfOrderSequenceNumber = 45,
    InvalidProducerEpoch = 47,
    KafkaStorageError = 56,
    GroupIdNotFound = 69,
    FetchSessionIdNotFound = 70,
    InvalidFetchSessionEpoch = 71,
    NonEmptyGroup = 68,
    UnknownProducerId = 59,
    FencedLeaderEpoch = 74,
    UnknownLeaderEpoch = 75,
    MemberIdRequired = 79,
    GroupMaxSizeReached = 81,
    FencedInstanceId = 82,
    UnknownTopicId = 100,
    FencedMemberEpoch = 110,
    UnreleasedInstanceId = 111,
    UnsupportedAssignor = 112,
    StaleMemberEpoch = 113,
    TransactionalIdAuthorizationFailed = 53,
    OffsetMetadataTooLarge = 12,
    InvalidRegularExpression = 128,
    InvalidRecord = 87,
    InvalidTimestamp = 32,
    NotEnoughReplicas = 19,
    NotController = 41,
}

impl KafkaCode {
    pub fn code(self) -> i16 {
        self as i16
    }
}

/// The Kafka code for a strata error.
pub(crate) fn kafka_code(code: ErrorCode) -> KafkaCode {
    use ErrorCode as E;
    match code {
        E::None => KafkaCode::None,
        E::Unknown => KafkaCode::UnknownServerError,
        E::CorruptBatch => KafkaCode::CorruptMessage,
        E::UnknownTopic | E::UnknownPartition => KafkaCode::UnknownTopicOrPartition,
        E::InvalidConfig => KafkaCode::InvalidConfig,
        E::MessageTooLarge | E::FrameTooLarge => KafkaCode::MessageTooLarge,
        E::UnsupportedVersion | E::UnknownApi => KafkaCode::UnsupportedVersion,
        E::InvalidRequest => KafkaCode::InvalidRequest,
        E::OffsetOutOfRange => KafkaCode::OffsetOutOfRange,
        E::RequestTimedOut => KafkaCode::RequestTimedOut,
        E::TopicAlreadyExists => KafkaCode::TopicAlreadyExists,
        E::InvalidPartitions => KafkaCode::InvalidPartitions,
        E::InvalidTopicName => KafkaCode::InvalidTopicException,
        // KAFKA_STORAGE_ERROR is retriable for Kafka clients (librdkafka, Java): a
        // full disk or short descriptors heal, and a fenced partition reopens.
        E::StorageError | E::PartitionFenced | E::ResourceExhausted => KafkaCode::KafkaStorageError,
        E::GroupNotFound => KafkaCode::GroupIdNotFound,
        E::UnknownMemberId => KafkaCode::UnknownMemberId,
        E::IllegalGeneration => KafkaCode::IllegalGeneration,
        E::RebalanceInProgress => KafkaCode::RebalanceInProgress,
        E::GroupNotEmpty => KafkaCode::NonEmptyGroup,
        E::InvalidSessionTimeout => KafkaCode::InvalidSessionTimeout,
        // Retriable for Kafka clients: they retry elsewhere / later.
        E::BrokerShuttingDown => KafkaCode::NotLeaderOrFollower,
        E::InvalidAcks => KafkaCode::InvalidRequiredAcks,
        E::NotCoordinator => KafkaCode::NotCoordinator,
        E::ProducerFenced => KafkaCode::InvalidProducerEpoch,
        E::OutOfOrderSequence => KafkaCode::OutOfOrderSequenceNumber,
        E::UnknownProducerId => KafkaCode::UnknownProducerId,
        E::InvalidRecord => KafkaCode::InvalidRecord,
        E::InvalidTimestamp => KafkaCode::InvalidTimestamp,
        E::NotLeaderOrFollower => KafkaCode::NotLeaderOrFollower,
        E::NotEnoughReplicas => KafkaCode::NotEnoughReplicas,
        E::InvalidReplicationFactor => KafkaCode::InvalidReplicationFactor,
        E::CoordinatorNotAvailable => KafkaCode::CoordinatorNotAvailable,
        E::FencedLeaderEpoch => KafkaCode::FencedLeaderEpoch,
        E::UnknownLeaderEpoch => KafkaCode::UnknownLeaderEpoch,
        E::NotController => KafkaCode::NotController,
        E::InvalidReplicaAssignment => KafkaCode::InvalidReplicaAssignment,
    }
}

/// The Kafka code and message for a strata error (message `None` when no error).
pub(crate) fn kafka_error(e: &WireError) -> (i16, Option<String>) {
    let code = kafka_code(e.code);
    if code == KafkaCode::None {
        return (0, None);
    }
    crate::metrics::count_error(e.code);
    (code.code(), Some(e.message.clone()))
}
