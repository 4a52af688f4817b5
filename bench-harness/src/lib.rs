//! strata-bench: load generation and reporting against strata or any Kafka-protocol
//! broker, next to the raw limits of the machine measured in the same run.
//!
//! Today it holds the storage benchmarks, each a subcommand of the `strata-bench`
//! binary: `limits` (raw O_DIRECT write and write+fdatasync limits of the disk),
//! `engine-append` (durable appends to N partition logs on one thread against the raw
//! limit), `recovery` (reopen time after SIGKILL, with and without indexes) and
//! `idle-partitions` (memory per idle partition). Benchmarks report numbers and
//! targets; they never fail on a number. The Kafka-protocol load generator will be
//! more subcommands beside these.

pub mod alloc_counter;
pub mod append_summary;
pub mod counts;
pub mod engine_append;
pub mod limits;
pub mod loopback;
pub mod memory_bench;
pub mod native_e2e;
pub mod proc_stats;
pub mod raw_io;
pub mod recovery_bench;
pub mod report;
pub mod schedule;
pub mod window;
pub mod workload;
