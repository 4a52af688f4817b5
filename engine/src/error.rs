//! Errors the engine reports: each says what happened, where, and what a user can do.

use std::io;
use std::path::PathBuf;

use strata_schema::BatchError;

/// Result of engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What went wrong in the storage engine.
#[derive(thiserror::Error, Debug, Clone)]
pub enum EngineError {
    /// The batch bytes are malformed; nothing was written.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {len_bytes} bytes exceeds max.message.bytes = {max_bytes}")]
    BatchTooLarge { len_bytes: usize, max_bytes: usize },
    /// The partition refuses writes (and reads past `readable_end_offset`) until it is reopened.
    #[error("partition {path} is fenced (read-only): {reason}")]
    Fenced { path: PathBuf, reason: String },
    /// A storage operation failed.
    #[error("{op} failed on {path}: {message}")]
    Io {
        op: &'static str,
        path: PathBuf,
        kind: io::ErrorKind,
        message: String,
    },
    /// The disk is full.
    #[error(
        "no space left on device while writing {path}; free disk space (delete a topic, lower \
         retention) and writes resume by themselves"
    )]
    NoSpace { path: PathBuf },
    /// A resource limit of the process or machine (open descriptors, memory) stopped
    /// the operation. Nothing is damaged: the work waits and is retried.
    #[error(
        "{op} on {path} is delayed: {message}; the broker retries once descriptors or \
         memory are available (raise `ulimit -n` or reduce open partitions)"
    )]
    Resource {
        op: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The requested offset is outside the log.
    #[error("offset {requested} is out of range: the log holds [{start}, {end})")]
    OffsetOutOfRange {
        requested: i64,
        start: i64,
        end: i64,
    },
    /// Truncation must land on a batch boundary.
    #[error(
        "offset {offset} is not a batch boundary; the nearest batch starts at {batch_base_offset}"
    )]
    NotBatchBoundary { offset: i64, batch_base_offset: i64 },
    /// Stored data failed its checks somewhere other than a torn tail.
    #[error("corrupt data in {path} at byte {position_bytes}: {detail}")]
    Corrupt {
        path: PathBuf,
        position_bytes: u64,
        detail: String,
    },
    /// An on-disk file has a shape the engine does not understand.
    #[error("unexpected file {path}: {detail}")]
    BadFile { path: PathBuf, detail: String },
    /// The log was closed.
    #[error("the partition log at {path} is closed")]
    Closed { path: PathBuf },
    /// An idempotent producer's batch carries an epoch older than one this partition
    /// has seen: a newer instance of the producer took over. Nothing was written.
    #[error(
        "producer {producer_id} is fenced: its epoch {producer_epoch} is older than epoch \
         {current_epoch} already written to this partition by a newer instance of the same \
         producer; close this producer (the newer one carries on)"
    )]
    ProducerFenced {
        producer_id: i64,
        producer_epoch: i16,
        current_epoch: i16,
    },
    /// An idempotent producer's batch does not continue its sequence: a batch before it
    /// is missing, or it restarts a new epoch at a sequence other than 0. Nothing was
    /// written.
    #[error(
        "producer {producer_id} epoch {producer_epoch} sent sequence {got}, but this partition \
         expects sequence {expected}: batches in between were lost or reordered; the producer \
         must bump its epoch and restart at sequence 0"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        producer_epoch: i16,
        expected: i32,
        got: i32,
    },
    /// The partition keeps no state for this producer (never seen, evicted, or idle
    /// past the expiration) and its batch does not start at sequence 0.
    #[error(
        "producer {producer_id} is unknown to this partition (never seen, or its state \
         expired or was evicted) and its batch starts at sequence {base_sequence}, not 0; \
         the producer must bump its epoch (epoch {producer_epoch} now) and restart at sequence 0"
    )]
    UnknownProducerId {
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    },
    /// A batch with a producer id carries a negative epoch or base sequence.
    #[error(
        "batch of producer {producer_id} has epoch {producer_epoch} and base sequence \
         {base_sequence}; batches with a producer id need both >= 0 (or producer id -1 for a \
         non-idempotent producer)"
    )]
    InvalidProducerFields {
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    },
    /// The partition's Raft group refused the proposal (this replica is not the
    /// leader, leadership is moving, or too much is uncommitted). Nothing was written;
    /// the client retries, on the leader the error names if it names one.
    #[error("the partition refused the append: {0}")]
    Propose(#[from] strata_raft::ProposeError),
    /// A replicated batch does not start at this replica's log end: the follower's log
    /// and the leader's view of it disagree. Nothing was written.
    #[error(
        "replicated batch starts at offset {base_offset} but this replica's log ends at \
         {log_end_offset}; the leader resends from the follower's log end"
    )]
    ReplicaOffsetMismatch {
        base_offset: i64,
        log_end_offset: i64,
    },
}

/// Errors of the replicated paths (`replica_append`, `raft_hard_state`).
impl EngineError {
    /// Whether this is a Raft refusal of a proposal (not leader, transfer, backpressure).
    pub fn propose_error(&self) -> Option<&strata_raft::ProposeError> {
        match self {
            EngineError::Propose(e) => Some(e),
            _ => None,
        }
    }
}

/// errnos that mean a resource ran short, not that storage failed: too many open
/// files (per process, per system) and out of memory.
const RESOURCE_ERRNOS: [i32; 3] = [libc::EMFILE, libc::ENFILE, libc::ENOMEM];

/// The errno of `err`. glommio turns its errors into `io::Error`s that keep only the
/// text (`... (os error 24), op: ...`), so the errno is read back from there too.
fn os_errno(err: &io::Error) -> Option<i32> {
    if let Some(n) = err.raw_os_error() {
        return Some(n);
    }
    let text = err.to_string();
    let at = text.find("(os error ")? + "(os error ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl EngineError {
    /// Whether the condition passes without damage, so that retrying the same write
    /// later can succeed: a full disk or a short resource. Writes that failed this
    /// way are retried instead of fencing the partition.
    pub fn heals(&self) -> bool {
        matches!(
            self,
            EngineError::NoSpace { .. } | EngineError::Resource { .. }
        )
    }

    /// Maps an I/O error on `path` during `op`, recognising a full disk.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, err: io::Error) -> Self {
        let path = path.into();
        let errno = os_errno(&err);
        if errno == Some(libc::ENOSPC) || err.kind() == io::ErrorKind::StorageFull {
            return EngineError::NoSpace { path };
        }
        if errno.is_some_and(|errno| RESOURCE_ERRNOS.contains(&errno))
            || err.kind() == io::ErrorKind::OutOfMemory
        {
            return EngineError::Resource {
                op,
                path,
                message: err.to_string(),
            };
        }
        EngineError::Io {
            op,
            path,
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}
