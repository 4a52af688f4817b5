//! Why the controller refused a command: a native error code, the exact Kafka error
//! code (the native set has no INVALID_REPLICATION_FACTOR, NOT_CONTROLLER, …, so the
//! Kafka handlers answer with `kafka_code` and the native ones with `code`), and a
//! message a user can act on.

use strata_schema::ErrorCode;

/// Kafka error codes the controller answers with (values of Kafka's `Errors` enum).
pub mod kafka_codes {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const INVALID_REQUEST: i16 = 42;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const REASSIGNMENT_IN_PROGRESS: i16 = 60;
    pub const STALE_BROKER_EPOCH: i16 = 77;
    pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
    pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const DUPLICATE_BROKER_REGISTRATION: i16 = 101;
    pub const BROKER_ID_NOT_REGISTERED: i16 = 102;
    pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
}

use kafka_codes as K;

/// A refused controller command.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct ControllerError {
    /// The native protocol's code (the nearest one where the native set is coarser).
    pub code: ErrorCode,
    /// The Kafka protocol's code.
    pub kafka_code: i16,
    pub message: String,
}

impl ControllerError {
    pub fn new(code: ErrorCode, kafka_code: i16, message: impl Into<String>) -> Self {
        ControllerError {
            code,
            kafka_code,
            message: message.into(),
        }
    }
    pub fn invalid_topic_name(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidTopicName, K::INVALID_TOPIC_EXCEPTION, m)
    }
    pub fn invalid_partitions(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidPartitions, K::INVALID_PARTITIONS, m)
    }
    pub fn topic_already_exists(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::TopicAlreadyExists, K::TOPIC_ALREADY_EXISTS, m)
    }
    /// The same words as the single-node broker's `unknown_topic`.
    pub fn unknown_topic(name: &str) -> Self {
        Self::new(
            ErrorCode::UnknownTopic,
            K::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic {name:?} does not exist"),
        )
    }
    pub fn unknown_topic_id(id: &[u8; 16]) -> Self {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        Self::new(
            ErrorCode::UnknownTopic,
            K::UNKNOWN_TOPIC_ID,
            format!("no topic has id {hex}"),
        )
    }
    pub fn unknown_partition(m: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::UnknownPartition,
            K::UNKNOWN_TOPIC_OR_PARTITION,
            m,
        )
    }
    pub fn invalid_config(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidConfig, K::INVALID_CONFIG, m)
    }
    pub fn invalid_request(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::INVALID_REQUEST, m)
    }
    pub fn invalid_replication_factor(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::INVALID_REPLICATION_FACTOR, m)
    }
    pub fn invalid_replica_assignment(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::INVALID_REPLICA_ASSIGNMENT, m)
    }
    pub fn fenced_leader_epoch(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::FENCED_LEADER_EPOCH, m)
    }
    pub fn stale_broker_epoch(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::STALE_BROKER_EPOCH, m)
    }
    pub fn duplicate_broker_registration(m: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::InvalidRequest,
            K::DUPLICATE_BROKER_REGISTRATION,
            m,
        )
    }
    pub fn broker_not_registered(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::BROKER_ID_NOT_REGISTERED, m)
    }
    pub fn inconsistent_cluster_id(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::INCONSISTENT_CLUSTER_ID, m)
    }
    pub fn no_reassignment_in_progress(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::NO_REASSIGNMENT_IN_PROGRESS, m)
    }
    pub fn reassignment_in_progress(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::REASSIGNMENT_IN_PROGRESS, m)
    }
    pub fn election_not_needed(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, K::ELECTION_NOT_NEEDED, m)
    }
    pub fn preferred_leader_not_available(m: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::NotLeaderOrFollower,
            K::PREFERRED_LEADER_NOT_AVAILABLE,
            m,
        )
    }
    /// Every producer id has been handed out (retrying will not help, unlike the
    /// native code's usual meaning; the message says so).
    pub fn producer_ids_exhausted(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unknown, K::UNKNOWN_SERVER_ERROR, m)
    }
}
