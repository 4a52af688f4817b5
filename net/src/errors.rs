//! How engine and shard errors become protocol error codes.

use strata_engine::shard::ShardError;
use strata_engine::EngineError;
use strata_schema::{BatchError, ErrorCode};

/// A protocol error: a code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
}

/// The code a client sees for an engine error.
pub fn engine_error_code(e: &EngineError) -> ErrorCode {
    match e {
        EngineError::InvalidBatch(e) => batch_error_code(e),
        EngineError::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
        EngineError::Fenced { .. } => ErrorCode::PartitionFenced,
        EngineError::Io { .. } | EngineError::NoSpace { .. } => ErrorCode::StorageError,
        // Descriptors or memory ran short: the work is delayed, nothing is fenced.
        EngineError::Resource { .. } => ErrorCode::ResourceExhausted,
        EngineError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        EngineError::NotBatchBoundary { .. } => ErrorCode::InvalidRequest,
        EngineError::Corrupt { .. } | EngineError::BadFile { .. } => ErrorCode::StorageError,
        // A log is closed only by shutdown or topic deletion.
        EngineError::Closed { .. } => ErrorCode::BrokerShuttingDown,
        EngineError::ProducerFenced { .. } => ErrorCode::ProducerFenced,
        EngineError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
        EngineError::UnknownProducerId { .. } => ErrorCode::UnknownProducerId,
        EngineError::InvalidProducerFields { .. } => ErrorCode::CorruptBatch,
        // The replica driver answers Raft refusals itself (NOT_LEADER with the
        // leader); this only reaches a client through a path that knows no group.
        EngineError::Propose(_) => ErrorCode::Unknown,
        EngineError::ReplicaOffsetMismatch { .. } => ErrorCode::InvalidRequest,
    }
}

/// The code a client sees for a batch it sent that failed validation: a record that
/// breaks its topic's rules is INVALID_RECORD, anything else a corrupt batch.
pub fn batch_error_code(e: &BatchError) -> ErrorCode {
    match e.root() {
        BatchError::KeylessRecord { .. } => ErrorCode::InvalidRecord,
        _ => ErrorCode::CorruptBatch,
    }
}

/// The error for batch `index` of a partition that failed validation.
pub(crate) fn batch_error(index: usize, e: &BatchError) -> WireError {
    WireError::new(batch_error_code(e), format!("batch {index}: {e}"))
}

impl From<EngineError> for WireError {
    fn from(e: EngineError) -> Self {
        WireError::new(engine_error_code(&e), e.to_string())
    }
}

impl From<ShardError> for WireError {
    fn from(e: ShardError) -> Self {
        let code = match e {
            ShardError::ShardClosed { .. } => ErrorCode::BrokerShuttingDown,
            _ => ErrorCode::Unknown,
        };
        WireError::new(code, e.to_string())
    }
}
