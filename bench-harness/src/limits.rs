//! `strata-bench limits`: the raw disk limits of this machine for the engine's write
//! pattern, measured on plain O_DIRECT files: sequential writes of the write size at a
//! few queue depths, a write + fdatasync loop into preallocated, growing files (the
//! engine's pattern) with its fdatasync latency, and the same loop over blocks that
//! are already written (no allocation or size change to persist: the device's floor).
//! Beside them, loopback TCP throughput: the network ceiling of a broker on this host.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use crate::loopback::{self, LoopbackResult, LOOPBACK_WRITE_BYTES};
use crate::proc_stats::settle;
use crate::raw_io::{run_raw, RawPattern, RawResult, RawSpec};
use crate::report::{median, write_json, Latency, Table};
use crate::window::Budget;
use crate::workload::build_batch;

/// The loopback row's name in the table.
const LOOPBACK_PATTERN: &str = "loopback TCP 64 KiB";

/// Arguments of `strata-bench limits`.
#[derive(Args, Debug, Clone)]
pub struct LimitsArgs {
    /// Directory for the test files (a fresh subdirectory is used and removed).
    #[arg(long)]
    pub dir: PathBuf,
    /// Bytes per write (a multiple of 4096).
    #[arg(long, default_value_t = 65536)]
    pub write_bytes: usize,
    /// Bytes counted per pattern and round (the run also stops at --max-seconds).
    #[arg(long, default_value_t = 1 << 30)]
    pub total_bytes: u64,
    /// Longest counted time per pattern and round (loopback TCP runs this long).
    #[arg(long, alias = "seconds", default_value_t = 10.0)]
    pub max_seconds: f64,
    /// Queue depths for the sequential-write pattern.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub depths: Vec<usize>,
    /// Size each file is preallocated to (fallocate KEEP_SIZE) before it grows.
    #[arg(long, default_value_t = 1 << 30)]
    pub file_bytes: u64,
    /// Rounds; patterns alternate within each round and medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Skip the DMA read probe the engine runs first (shows what glommio does to
    /// O_DIRECT writes when a thread's first DMA file is empty).
    #[arg(long)]
    pub skip_dma_probe: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The medians of a `limits` run.
#[derive(Debug)]
pub struct LimitsSummary {
    /// Median MB/s per write pattern, by [`RawPattern::name`].
    pub patterns_mb_per_s: Vec<(String, f64)>,
    /// Median loopback TCP MB/s.
    pub loopback_mb_per_s: f64,
    /// The printed table.
    pub table: Table,
    /// The JSON report.
    pub json: serde_json::Value,
}

impl LimitsSummary {
    /// Median MB/s of the pattern named `name` (e.g. `write+fdatasync`).
    pub fn mb_per_s(&self, name: &str) -> Option<f64> {
        self.patterns_mb_per_s
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

/// Runs the limits subcommand.
pub fn run(args: LimitsArgs) -> anyhow::Result<()> {
    let summary = measure(&args)?;
    println!();
    println!(
        "raw limits (medians of {} rounds; write lat includes the fdatasync for write+fdatasync)",
        args.rounds
    );
    summary.table.print();
    write_json(args.json.as_deref(), &summary.json)
}

/// Measures every pattern and loopback TCP over `args.rounds` rounds (printing each
/// round) and returns the medians.
pub fn measure(args: &LimitsArgs) -> anyhow::Result<LimitsSummary> {
    let work = args.dir.join("strata-bench-limits");
    let mut patterns: Vec<RawPattern> = args
        .depths
        .iter()
        .map(|&depth| RawPattern::Sequential { depth })
        .collect();
    patterns.push(RawPattern::WriteSync);
    patterns.push(RawPattern::OverwriteSync);
    let budget = Budget {
        warmup: Duration::ZERO,
        measure: Duration::from_secs_f64(args.max_seconds),
        bytes_max: Some(args.total_bytes),
    };
    let fill: Arc<[u8]> = Arc::from(build_batch(1024, args.write_bytes));
    println!(
        "raw O_DIRECT limits in {}: {} B writes, files preallocated to {} B, {} round(s){}",
        args.dir.display(),
        args.write_bytes,
        args.file_bytes,
        args.rounds,
        if args.skip_dma_probe {
            ", WITHOUT the DMA read probe"
        } else {
            ""
        }
    );
    let mut results: Vec<Vec<RawResult>> = vec![Vec::new(); patterns.len()];
    for round in 0..args.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..patterns.len()).collect()
        } else {
            (0..patterns.len()).rev().collect()
        };
        for i in order {
            let spec = RawSpec {
                dir: work.join(format!("r{round}-p{i}")),
                write_bytes: args.write_bytes,
                file_bytes: args.file_bytes,
                pattern: patterns[i],
                budget,
                fill: Arc::clone(&fill),
                probe_dma_reads: !args.skip_dma_probe,
            };
            let settled = settle(&args.dir);
            let r = run_raw_on_executor(spec.clone())?;
            std::fs::remove_dir_all(&spec.dir)
                .with_context(|| format!("remove {}", spec.dir.display()))?;
            println!(
                "  round {} {:<19} {:>8.1} MB/s  (settled {:.1} s, {} discards during)",
                round + 1,
                patterns[i].name(),
                r.mb_per_s(),
                settled.as_secs_f64(),
                r.usage.disk.discards
            );
            results[i].push(r);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let mut loopback_runs: Vec<LoopbackResult> = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let r = loopback::measure(Duration::from_secs_f64(args.max_seconds))?;
        println!(
            "  round {} {:<19} {:>8.1} MB/s",
            round + 1,
            LOOPBACK_PATTERN,
            r.mb_per_s()
        );
        loopback_runs.push(r);
    }
    let mut table = Table::new(&[
        "pattern",
        "MB/s",
        "write lat p50/p99/p99.9 us",
        "fdatasync p50/p99/p99.9 us",
        "dev writes KiB avg",
        "flushes/s",
        "cpu %",
        "cpu psi %",
    ]);
    let mut out = Vec::new();
    for (p, rs) in patterns.iter().zip(&results) {
        let mbps = median(&rs.iter().map(RawResult::mb_per_s).collect::<Vec<_>>());
        let cycle = Latency::median_of(
            &rs.iter()
                .map(|r| Latency::of(&r.cycle_latency))
                .collect::<Vec<_>>(),
        );
        let sync = Latency::median_of(
            &rs.iter()
                .map(|r| Latency::of(&r.sync_latency))
                .collect::<Vec<_>>(),
        );
        let avg_kib = median(
            &rs.iter()
                .map(|r| r.usage.disk.avg_write_kib())
                .collect::<Vec<_>>(),
        );
        let flushes = median(
            &rs.iter()
                .map(|r| r.usage.flushes_per_s())
                .collect::<Vec<_>>(),
        );
        let cpu = median(&rs.iter().map(|r| r.usage.cpu_pct).collect::<Vec<_>>());
        let psi = median(
            &rs.iter()
                .map(|r| r.usage.cpu_pressure_pct)
                .collect::<Vec<_>>(),
        );
        table.row(vec![
            p.name(),
            format!("{mbps:.1}"),
            cycle.triple(),
            sync.triple(),
            format!("{avg_kib:.0}"),
            format!("{flushes:.0}"),
            format!("{cpu:.0}"),
            format!("{psi:.0}"),
        ]);
        out.push(json!({
            "pattern": p.name(),
            "mb_per_s_median": mbps,
            "mb_per_s_rounds": rs.iter().map(RawResult::mb_per_s).collect::<Vec<_>>(),
            "write_latency": cycle.to_json(),
            "fdatasync_latency": sync.to_json(),
            "device_write_kib_avg": avg_kib,
            "device_flushes_per_s": flushes,
            "cpu_pct": cpu,
            "cpu_pressure_pct": psi,
        }));
    }
    let loopback_mbps = median(
        &loopback_runs
            .iter()
            .map(LoopbackResult::mb_per_s)
            .collect::<Vec<_>>(),
    );
    table.row(vec![
        LOOPBACK_PATTERN.to_string(),
        format!("{loopback_mbps:.1}"),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    let patterns_mb_per_s = out
        .iter()
        .filter_map(|p| {
            Some((
                p["pattern"].as_str()?.to_string(),
                p["mb_per_s_median"].as_f64()?,
            ))
        })
        .collect();
    let json = json!({
        "bench": "limits",
        "write_bytes": args.write_bytes,
        "file_bytes": args.file_bytes,
        "rounds": args.rounds,
        "dma_read_probe": !args.skip_dma_probe,
        "patterns": out,
        "loopback_tcp": {
            "write_bytes": LOOPBACK_WRITE_BYTES,
            "mb_per_s_median": loopback_mbps,
            "mb_per_s_rounds": loopback_runs
                .iter()
                .map(LoopbackResult::mb_per_s)
                .collect::<Vec<_>>(),
        },
    });
    Ok(LimitsSummary {
        patterns_mb_per_s,
        loopback_mb_per_s: loopback_mbps,
        table,
        json,
    })
}

/// Runs one raw pattern on a fresh glommio executor.
pub fn run_raw_on_executor(spec: RawSpec) -> anyhow::Result<RawResult> {
    strata_engine::run_local(move || async move { run_raw(&spec).await })
}
