//! strata-engine: storage and partition state.
//!
//! Owns segments, the partition log, its indexes, crash recovery, retention,
//! compaction, group commit, the tail cache and the shard runtime (one pinned glommio
//! executor per core) that owns partitions. It never opens sockets or parses
//! protocols: `strata-net` calls it.

pub mod placement;
pub mod shard;
pub mod snapshot;
