//! strata-bench: load generation and reporting against strata or any Kafka-protocol
//! broker, next to the raw limits of the machine measured in the same run.
//!
//! Each benchmark is a subcommand of the `strata-bench` binary: `limits` (raw O_DIRECT
//! write and write+fdatasync limits of the disk, loopback TCP), `engine-append`
//! (durable appends to N partition logs on one thread against the raw limit),
//! `recovery` (reopen time after SIGKILL, with and without indexes), `idle-partitions`
//! (memory per idle partition), `partitions-scale` (create, start and stop times of a
//! broker with N partitions), `run` (one workload — produce, consume a backlog,
//! end to end, fan-out to several groups — against a broker through the `native` or
//! the `kafka` driver), `compare` (one workload against two targets, alternating A B
//! over rounds: each figure's medians and the ratio A/B) and `suite` (a named set of
//! workloads against strata's native and Kafka listeners beside the limits, written
//! up for BENCHMARKS.md). Benchmarks report numbers; they never fail on a number.
//!
//! It must not depend on the broker being strata: the kafka driver speaks only the
//! Kafka protocol, and topics are created and deleted through each driver's admin.

pub mod alloc_counter;
pub mod append_summary;
pub mod compare;
pub mod counts;
pub mod driver;
pub mod engine_append;
pub mod limits;
pub mod load;
pub mod loopback;
pub mod machine;
pub mod memory_bench;
pub mod partitions_scale;
pub mod pin;
pub mod plot;
pub mod proc_stats;
pub mod raw_io;
pub mod recovery_bench;
pub mod report;
pub mod schedule;
pub mod suite;
pub mod window;
pub mod workload;
