//! strata-engine: storage and partition state.
//!
//! Owns segments, the partition log, its indexes, crash recovery, retention,
//! compaction, group commit, idempotent producers' per-partition state, the tail cache
//! and the shard runtime (one pinned glommio executor per core) that owns partitions.
//! It never opens sockets or parses protocols: `strata-net` calls it.
//!
//! Everything here runs on one shard's thread: a `Log` is `Rc`-based and never
//! crosses threads; requests for it travel to its shard (see `shard`).

pub mod appender;
pub mod batch_cache;
pub mod clean_marker;
pub mod cleaner;
pub mod compaction;
pub mod config;
pub mod delete_records;
pub mod error;
pub mod faults;
pub mod file;
pub mod index;
pub mod leader_epochs;
pub mod log;
pub mod log_restart;
pub mod placement;
pub mod preallocation;
pub mod producer_state;
pub mod raft_hard_state;
mod raft_restore;
pub mod recovery;
mod replica_append;
pub mod retention;
pub mod segment;
pub mod shard;
pub mod snapshot;
pub mod storage_metrics;
pub mod time_index;

pub use batch_cache::BatchCache;
pub use cleaner::Cleaner;
pub use compaction::CompactionOutcome;
pub use config::{CleanupPolicy, FlushPolicy, LogConfig};
pub use error::{EngineError, Result};
pub use faults::{Fault, FaultInjector};
pub use log::{
    run_local, AppendInfo, AppendOptions, Durability, Log, LogEnv, OpenKind, ReadBatches,
};
pub use producer_state::{ProducerBatch, ProducerEntry, ProducerStates, SequenceCheck};
pub use raft_hard_state::{read_hard_state, write_hard_state};
pub use raft_restore::{MEMBERSHIPS_RESTORED_MAX, MEMBERSHIP_SCAN_BYTES_MAX};
pub use retention::RetentionOutcome;
pub use storage_metrics::{StorageMetrics, StorageMetricsSnapshot};
