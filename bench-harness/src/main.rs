//! The `strata-bench` binary: one subcommand per benchmark (see the library docs).

use clap::{Parser, Subcommand};
use strata_bench::alloc_counter::CountingAlloc;
use strata_bench::compare::{self, CompareArgs};
use strata_bench::engine_append::{self, EngineAppendArgs};
use strata_bench::limits::{self, LimitsArgs};
use strata_bench::load::cli::{self as load_cli, RunArgs};
use strata_bench::memory_bench::{self, IdleArgs, IdleOpenArgs};
use strata_bench::partitions_scale::{self, PartitionsScaleArgs};
use strata_bench::recovery_bench::{self, RecoveryArgs, RecoveryOpenArgs, RecoveryWriterArgs};
use strata_bench::suite::{self, SuiteArgs};

/// Counts live heap bytes for `idle-partitions`; otherwise the system allocator.
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Benchmarks of strata, each next to the raw limit of this machine measured in the
/// same run.
#[derive(Parser, Debug)]
#[command(name = "strata-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Raw O_DIRECT limits of the disk: sequential writes and write+fdatasync.
    Limits(LimitsArgs),
    /// Durable appends to N partitions on one thread, against the raw limit.
    EngineAppend(EngineAppendArgs),
    /// Reopen time after SIGKILL, with intact and with deleted indexes.
    Recovery(RecoveryArgs),
    /// Memory and file descriptors held by N idle partitions.
    IdlePartitions(IdleArgs),
    /// Create, start and stop times of a broker with N partitions.
    PartitionsScale(PartitionsScaleArgs),
    /// One workload (produce, consume, e2e, fanout) against a broker through the
    /// native or the kafka driver. `native-e2e` is the same command.
    #[command(alias = "native-e2e")]
    Run(Box<RunArgs>),
    /// One workload against two targets (broker + driver), A B A B, medians and A/B.
    Compare(Box<CompareArgs>),
    /// The named workload set against strata's native and Kafka listeners, beside
    /// the limits, written up as BENCHMARKS.md sections.
    Suite(SuiteArgs),
    /// (child of `recovery`) Builds a partition, then waits for SIGKILL.
    #[command(hide = true)]
    RecoveryWriter(RecoveryWriterArgs),
    /// (child of `recovery`) Opens the partition once and reports the time.
    #[command(hide = true)]
    RecoveryOpen(RecoveryOpenArgs),
    /// (child of `idle-partitions`) Reopens all partitions and reports their cost.
    #[command(hide = true)]
    IdleOpen(IdleOpenArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Limits(a) => limits::run(a),
        Cmd::EngineAppend(a) => engine_append::run(a),
        Cmd::Recovery(a) => recovery_bench::run(a),
        Cmd::IdlePartitions(a) => memory_bench::run(a),
        Cmd::PartitionsScale(a) => partitions_scale::run(a),
        Cmd::Run(a) => load_cli::run(*a),
        Cmd::Compare(a) => compare::run(*a),
        Cmd::Suite(a) => suite::run(a),
        Cmd::RecoveryWriter(a) => recovery_bench::writer(a),
        Cmd::RecoveryOpen(a) => recovery_bench::open(a),
        Cmd::IdleOpen(a) => memory_bench::open(a),
    }
}
