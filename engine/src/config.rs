//! Per-partition log settings (a topic's configs, as the engine sees them).

/// When appended data is made durable with fdatasync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every write cycle ends with fdatasync (group commit: appends that arrive while
    /// one is in flight share the next one).
    EveryBatch,
    /// fdatasync at most every N ms; durable appends wait for the next one.
    IntervalMs(u64),
    /// Left to the OS; only appends that ask for durability trigger an fdatasync.
    Os,
}

/// What happens to old data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Whole closed segments are deleted by `retention_ms` / `retention_bytes`.
    Delete,
    /// Closed segments are rewritten to keep the newest value per key.
    Compact,
    /// Both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether retention deletes segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
    /// Whether the compactor runs.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

/// A partition log's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls when the next batch would make it larger than this.
    pub segment_bytes: u64,
    /// A non-empty segment rolls when its first batch is older than this.
    pub segment_ms: u64,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u32,
    /// When data becomes durable.
    pub flush: FlushPolicy,
    /// Closed segments whose newest timestamp is older than this are deleted.
    pub retention_ms: Option<u64>,
    /// Oldest closed segments are deleted while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// Delete, compact, or both.
    pub cleanup_policy: CleanupPolicy,
    /// How long compaction keeps tombstones (records with no value).
    pub delete_retention_ms: u64,
    /// Largest accepted batch (header included).
    pub max_batch_bytes: usize,
    /// Reserve disk space ahead of writes (in steps as a segment grows).
    pub preallocate: bool,
    /// First reservation step of a segment; later steps double up to
    /// `preallocation::PREALLOCATE_STEP_BYTES_MAX` as the segment is written.
    pub preallocate_step_bytes_min: u64,
    /// `message.timestamp.type=LogAppendTime`: the broker's append time, not the
    /// producer's timestamps, drives time lookups, time retention and segment age.
    pub log_append_time: bool,
}

impl LogConfig {
    /// The timestamp this log indexes a batch by: its max record timestamp, or its
    /// append time under `LogAppendTime`.
    pub fn batch_time_ms(&self, header: &strata_schema::BatchHeader) -> i64 {
        if self.log_append_time {
            header.log_append_time_ms
        } else {
            header.max_timestamp_ms
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            flush: FlushPolicy::EveryBatch,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
            max_batch_bytes: 1024 * 1024 + 4096,
            preallocate: true,
            preallocate_step_bytes_min: crate::preallocation::PREALLOCATE_STEP_BYTES_MIN_DEFAULT,
            log_append_time: false,
        }
    }
}
