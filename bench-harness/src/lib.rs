//! strata-bench: load generation and reporting against strata or any Kafka-protocol
//! broker, next to the raw limits of the machine measured in the same run.
//!
//! Each benchmark is a subcommand of the `strata-bench` binary: `limits` (raw O_DIRECT
//! write and write+fdatasync limits of the disk), `engine-append` (durable appends to
//! N partition logs on one thread against the raw limit), `recovery` (reopen time
//! after SIGKILL, with and without indexes), `idle-partitions` (memory per idle
//! partition), `native-e2e` (produce and consume through the native client against a
//! broker) and `compare` (the native-e2e workload against two brokers, alternating
//! A B over rounds: each figure's medians and the ratio A/B). Benchmarks report
//! numbers and targets; they never fail on a number. The Kafka-protocol load
//! generator will be more subcommands beside these.

pub mod alloc_counter;
pub mod append_summary;
pub mod compare;
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
