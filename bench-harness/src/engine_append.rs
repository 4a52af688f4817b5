//! `strata-bench engine-append`: durable appends of fixed-size batches to N partition
//! logs on one thread, next to the raw disk limit of the same pattern measured in the
//! same run (write + fdatasync for flush-every-batch, plain sequential O_DIRECT
//! writes for interval flush). Strata and raw runs alternate over several rounds; the
//! table reports medians and paired ratios.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use glommio::sync::Semaphore;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use strata_engine::{AppendOptions, BatchCache, Durability, FlushPolicy, Log, LogConfig, LogEnv};

use crate::limits::run_raw_on_executor;
use crate::proc_stats::{settle, Usage};
use crate::raw_io::{RawPattern, RawResult, RawSpec};
use crate::report::{
    latency_histogram, mb_per_s, median, record_us, verdict, write_json, Latency, Table,
};
use crate::window::{Budget, Window};
use crate::workload::{build_batch, record_count, FlushArg};

/// Throughput target of flush-every-batch, as a fraction of the raw limit.
pub const RATIO_TARGET_EVERY: f64 = 0.8;
/// Throughput target of interval flush, as a fraction of the raw limit.
pub const RATIO_TARGET_INTERVAL: f64 = 0.9;
/// Durable-append p99 target, as a multiple of the raw fdatasync p99.
pub const P99_TARGET_FACTOR: f64 = 2.0;

/// Arguments of `strata-bench engine-append`.
#[derive(Args, Debug, Clone)]
pub struct EngineAppendArgs {
    /// Directory for the logs and raw files (a fresh subdirectory is used and removed).
    #[arg(long)]
    pub dir: PathBuf,
    /// Partition counts to run.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub partitions: Vec<usize>,
    /// Flush policies to run: every, <N>ms, os.
    #[arg(long, value_delimiter = ',', default_value = "every,10ms")]
    pub flush: Vec<FlushArg>,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Target bytes per batch (header included); also the raw write size.
    #[arg(long, default_value_t = 65536)]
    pub batch_bytes: usize,
    /// Counted seconds per run (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Uncounted warm-up per run, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub warmup_ms: u64,
    /// Rounds per case; strata and raw runs alternate and medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Appends in flight per partition [default: 4 for every, 256 for interval flush:
    /// a durable append under interval flush waits for the timer, so the window must
    /// cover bandwidth x (interval + fdatasync) or it, not the engine, is the limit].
    #[arg(long)]
    pub window_per_partition: Option<usize>,
    /// Appends in flight over all partitions [default: 64 for every, 1024 for interval flush].
    #[arg(long)]
    pub window_total: Option<usize>,
    /// Segment size of the logs, and of the raw files (both preallocated to it).
    #[arg(long, default_value_t = 128 << 20)]
    pub segment_bytes: u64,
    /// Budget of the shard's tail cache shared by all logs.
    #[arg(long, default_value_t = 64 << 20)]
    pub cache_bytes: usize,
    /// Writes in flight in the raw sequential-write limit (interval flush cases).
    #[arg(long, default_value_t = 1)]
    pub raw_depth: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One case: a partition count and a flush policy.
#[derive(Clone, Copy, Debug)]
struct Case {
    partitions: usize,
    flush: FlushArg,
    window_per_partition: usize,
    window_total: usize,
}

impl Case {
    fn name(&self) -> String {
        format!("{} x{}", self.flush, self.partitions)
    }

    fn raw_pattern(&self, raw_depth: usize) -> RawPattern {
        if self.flush.is_interval() {
            RawPattern::Sequential { depth: raw_depth }
        } else {
            RawPattern::WriteSync
        }
    }

    fn ratio_target(&self) -> f64 {
        if self.flush.is_interval() {
            RATIO_TARGET_INTERVAL
        } else {
            RATIO_TARGET_EVERY
        }
    }
}

/// What one strata run measured over its counted window.
#[derive(Clone, Debug)]
struct StrataRun {
    bytes: u64,
    appends: u64,
    seconds: f64,
    latency: Histogram<u64>,
    usage: Usage,
}

impl StrataRun {
    fn mb_per_s(&self) -> f64 {
        mb_per_s(self.bytes, self.seconds)
    }
}

/// Runs the engine-append subcommand.
pub fn run(args: EngineAppendArgs) -> anyhow::Result<()> {
    let work = args.dir.join("strata-bench-engine-append");
    let _ = std::fs::remove_dir_all(&work);
    let template: Arc<[u8]> = Arc::from(build_batch(args.record_bytes, args.batch_bytes));
    let raw_write_bytes = args.batch_bytes.div_ceil(4096) * 4096;
    println!(
        "engine-append: batches of {} records x {} B = {} B (raw writes {} B), {:.1} s counted after {} ms warm-up, {} round(s), segments {} B",
        record_count(&template),
        args.record_bytes,
        template.len(),
        raw_write_bytes,
        args.seconds,
        args.warmup_ms,
        args.rounds,
        args.segment_bytes
    );
    let budget = Budget {
        warmup: Duration::from_millis(args.warmup_ms),
        measure: Duration::from_secs_f64(args.seconds),
        bytes_max: None,
    };
    let mut cases = Vec::new();
    for &flush in &args.flush {
        for &partitions in &args.partitions {
            let interval = flush.is_interval();
            cases.push(Case {
                partitions: partitions.max(1),
                flush,
                window_per_partition: args
                    .window_per_partition
                    .unwrap_or(if interval { 256 } else { 4 })
                    .max(1),
                window_total: args
                    .window_total
                    .unwrap_or(if interval { 1024 } else { 64 })
                    .max(1),
            });
        }
    }
    let mut summaries = Vec::new();
    for case in &cases {
        let mut strata_runs = Vec::new();
        let mut raw_runs = Vec::new();
        for round in 0..args.rounds {
            let raw_first = round % 2 == 1;
            for step in 0..2 {
                let run_dir = work.join(format!(
                    "{}-{}-r{round}-s{step}",
                    case.flush, case.partitions
                ));
                let settled = settle(&args.dir);
                if (step == 0) != raw_first {
                    let r = strata_on_executor(*case, &args, &run_dir, &template, budget)?;
                    println!(
                        "  {:<12} round {} strata {:>8.1} MB/s  p99 {:>7.0} us  (settled {:.1} s, {} discards during)",
                        case.name(),
                        round + 1,
                        r.mb_per_s(),
                        Latency::of(&r.latency).p99_us,
                        settled.as_secs_f64(),
                        r.usage.disk.discards
                    );
                    strata_runs.push(r);
                } else {
                    let spec = RawSpec {
                        dir: run_dir.clone(),
                        write_bytes: raw_write_bytes,
                        file_bytes: args.segment_bytes,
                        pattern: case.raw_pattern(args.raw_depth),
                        budget,
                        fill: Arc::clone(&template),
                        probe_dma_reads: true,
                    };
                    let r = run_raw_on_executor(spec)?;
                    println!(
                        "  {:<12} round {} raw    {:>8.1} MB/s  p99 {:>7.0} us  (settled {:.1} s, {} discards during; {})",
                        case.name(),
                        round + 1,
                        r.mb_per_s(),
                        Latency::of(&r.cycle_latency).p99_us,
                        settled.as_secs_f64(),
                        r.usage.disk.discards,
                        case.raw_pattern(args.raw_depth).name()
                    );
                    raw_runs.push(r);
                }
                std::fs::remove_dir_all(&run_dir)
                    .with_context(|| format!("remove {}", run_dir.display()))?;
            }
        }
        summaries.push(Summary::of(*case, args.raw_depth, &strata_runs, &raw_runs));
    }
    let _ = std::fs::remove_dir_all(&work);
    print_tables(&summaries, args.rounds);
    write_json(
        args.json.as_deref(),
        &json!({
            "bench": "engine-append",
            "record_bytes": args.record_bytes,
            "batch_bytes": template.len(),
            "seconds": args.seconds,
            "warmup_ms": args.warmup_ms,
            "rounds": args.rounds,
            "segment_bytes": args.segment_bytes,
            "cases": summaries.iter().map(Summary::to_json).collect::<Vec<_>>(),
        }),
    )
}

/// Medians of one case's rounds.
struct Summary {
    case: Case,
    raw_pattern: RawPattern,
    strata_mb_s: f64,
    raw_mb_s: f64,
    strata_rounds: Vec<f64>,
    raw_rounds: Vec<f64>,
    /// Median of the per-round strata/raw ratios.
    ratio: f64,
    append_latency: Latency,
    raw_sync_latency: Latency,
    raw_cycle_latency: Latency,
    appends_per_s: f64,
    strata_cpu_pct: f64,
    raw_cpu_pct: f64,
    strata_flushes_per_s: f64,
    raw_flushes_per_s: f64,
    strata_write_kib: f64,
    raw_write_kib: f64,
    strata_device_mb_s: f64,
    raw_device_mb_s: f64,
    strata_cpu_psi_pct: f64,
    raw_cpu_psi_pct: f64,
}

impl Summary {
    fn of(case: Case, raw_depth: usize, strata: &[StrataRun], raw: &[RawResult]) -> Self {
        let strata_rounds: Vec<f64> = strata.iter().map(StrataRun::mb_per_s).collect();
        let raw_rounds: Vec<f64> = raw.iter().map(RawResult::mb_per_s).collect();
        let ratios: Vec<f64> = strata_rounds
            .iter()
            .zip(&raw_rounds)
            .map(|(s, r)| if *r > 0.0 { s / r } else { 0.0 })
            .collect();
        let med = |f: &dyn Fn(usize) -> f64, n: usize| median(&(0..n).map(f).collect::<Vec<_>>());
        Summary {
            case,
            raw_pattern: case.raw_pattern(raw_depth),
            strata_mb_s: median(&strata_rounds),
            raw_mb_s: median(&raw_rounds),
            ratio: median(&ratios),
            append_latency: Latency::median_of(
                &strata
                    .iter()
                    .map(|r| Latency::of(&r.latency))
                    .collect::<Vec<_>>(),
            ),
            raw_sync_latency: Latency::median_of(
                &raw.iter()
                    .map(|r| Latency::of(&r.sync_latency))
                    .collect::<Vec<_>>(),
            ),
            raw_cycle_latency: Latency::median_of(
                &raw.iter()
                    .map(|r| Latency::of(&r.cycle_latency))
                    .collect::<Vec<_>>(),
            ),
            appends_per_s: med(
                &|i| strata[i].appends as f64 / strata[i].seconds.max(1e-9),
                strata.len(),
            ),
            strata_cpu_pct: med(&|i| strata[i].usage.cpu_pct, strata.len()),
            raw_cpu_pct: med(&|i| raw[i].usage.cpu_pct, raw.len()),
            strata_flushes_per_s: med(&|i| strata[i].usage.flushes_per_s(), strata.len()),
            raw_flushes_per_s: med(&|i| raw[i].usage.flushes_per_s(), raw.len()),
            strata_write_kib: med(&|i| strata[i].usage.disk.avg_write_kib(), strata.len()),
            raw_write_kib: med(&|i| raw[i].usage.disk.avg_write_kib(), raw.len()),
            strata_device_mb_s: med(&|i| strata[i].usage.device_write_mb_per_s(), strata.len()),
            raw_device_mb_s: med(&|i| raw[i].usage.device_write_mb_per_s(), raw.len()),
            strata_cpu_psi_pct: med(&|i| strata[i].usage.cpu_pressure_pct, strata.len()),
            raw_cpu_psi_pct: med(&|i| raw[i].usage.cpu_pressure_pct, raw.len()),
            strata_rounds,
            raw_rounds,
        }
    }

    fn ratio_met(&self) -> bool {
        self.ratio >= self.case.ratio_target()
    }

    /// The latency target applies to flush-every-batch, where an append's durability
    /// is one fdatasync away; interval flush waits for its timer by design.
    fn p99_met(&self) -> Option<bool> {
        if self.case.flush.is_interval() || self.raw_sync_latency.count == 0 {
            return None;
        }
        Some(self.append_latency.p99_us <= P99_TARGET_FACTOR * self.raw_sync_latency.p99_us)
    }

    fn to_json(&self) -> Value {
        json!({
            "case": self.case.name(),
            "flush": self.case.flush.to_string(),
            "partitions": self.case.partitions,
            "window_per_partition": self.case.window_per_partition,
            "window_total": self.case.window_total,
            "raw_pattern": self.raw_pattern.name(),
            "strata_mb_per_s_median": self.strata_mb_s,
            "raw_mb_per_s_median": self.raw_mb_s,
            "strata_mb_per_s_rounds": self.strata_rounds,
            "raw_mb_per_s_rounds": self.raw_rounds,
            "ratio_median": self.ratio,
            "ratio_target": self.case.ratio_target(),
            "ratio_target_met": self.ratio_met(),
            "durable_append_latency": self.append_latency.to_json(),
            "raw_fdatasync_latency": self.raw_sync_latency.to_json(),
            "raw_write_latency": self.raw_cycle_latency.to_json(),
            "p99_target_factor": P99_TARGET_FACTOR,
            "p99_target_met": self.p99_met(),
            "appends_per_s": self.appends_per_s,
            "strata_cpu_pct": self.strata_cpu_pct,
            "raw_cpu_pct": self.raw_cpu_pct,
            "strata_device_flushes_per_s": self.strata_flushes_per_s,
            "raw_device_flushes_per_s": self.raw_flushes_per_s,
            "strata_device_write_kib_avg": self.strata_write_kib,
            "raw_device_write_kib_avg": self.raw_write_kib,
            "strata_device_write_mb_per_s": self.strata_device_mb_s,
            "raw_device_write_mb_per_s": self.raw_device_mb_s,
            "strata_cpu_pressure_pct": self.strata_cpu_psi_pct,
            "raw_cpu_pressure_pct": self.raw_cpu_psi_pct,
        })
    }
}

fn print_tables(summaries: &[Summary], rounds: usize) {
    let mut main = Table::new(&[
        "case",
        "strata MB/s",
        "limit MB/s",
        "ratio",
        "ratio target",
        "durable p50/p99/p99.9 us",
        "raw fdatasync p50/p99/p99.9 us",
        "p99 target",
    ]);
    for s in summaries {
        main.row(vec![
            s.case.name(),
            format!("{:.1}", s.strata_mb_s),
            format!("{:.1}", s.raw_mb_s),
            format!("{:.2}", s.ratio),
            format!(">= {:.1} {}", s.case.ratio_target(), verdict(s.ratio_met())),
            s.append_latency.triple(),
            s.raw_sync_latency.triple(),
            match s.p99_met() {
                Some(met) => format!("<= {P99_TARGET_FACTOR:.0}x {}", verdict(met)),
                None => "n/a".into(),
            },
        ]);
    }
    println!();
    println!(
        "engine-append (medians of {rounds} rounds; ratio = median of per-round strata/limit)"
    );
    main.print();
    let mut detail = Table::new(&[
        "case",
        "window p/total",
        "limit pattern",
        "raw write p50/p99/p99.9 us",
        "appends/s",
        "cpu % strata/raw",
        "dev flushes/s strata/raw",
        "dev write KiB strata/raw",
        "dev MB/s strata/raw",
        "cpu psi % strata/raw",
    ]);
    for s in summaries {
        detail.row(vec![
            s.case.name(),
            format!("{}/{}", s.case.window_per_partition, s.case.window_total),
            s.raw_pattern.name(),
            s.raw_cycle_latency.triple(),
            format!("{:.0}", s.appends_per_s),
            format!("{:.0}/{:.0}", s.strata_cpu_pct, s.raw_cpu_pct),
            format!("{:.0}/{:.0}", s.strata_flushes_per_s, s.raw_flushes_per_s),
            format!("{:.0}/{:.0}", s.strata_write_kib, s.raw_write_kib),
            format!("{:.0}/{:.0}", s.strata_device_mb_s, s.raw_device_mb_s),
            format!("{:.0}/{:.0}", s.strata_cpu_psi_pct, s.raw_cpu_psi_pct),
        ]);
    }
    println!();
    println!(
        "details (device counters and cpu psi, the share of time some task waited for a CPU, are machine-wide: other work shows up too)"
    );
    detail.print();
}

/// Runs one strata case on a fresh glommio executor.
fn strata_on_executor(
    case: Case,
    args: &EngineAppendArgs,
    dir: &Path,
    template: &Arc<[u8]>,
    budget: Budget,
) -> anyhow::Result<StrataRun> {
    let dir = dir.to_path_buf();
    let template = Arc::clone(template);
    let (segment_bytes, cache_bytes) = (args.segment_bytes, args.cache_bytes);
    strata_engine::run_local(move || async move {
        strata_run(case, &dir, template, budget, segment_bytes, cache_bytes).await
    })
}

async fn strata_run(
    case: Case,
    dir: &Path,
    template: Arc<[u8]>,
    budget: Budget,
    segment_bytes: u64,
    cache_bytes: usize,
) -> anyhow::Result<StrataRun> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let env = LogEnv {
        cache: BatchCache::new(cache_bytes),
        faults: Default::default(),
    };
    let defaults = LogConfig::default();
    let config = LogConfig {
        segment_bytes,
        flush: case.flush.0,
        preallocate: true,
        max_batch_bytes: defaults.max_batch_bytes.max(template.len()),
        ..defaults
    };
    debug_assert!(!matches!(config.flush, FlushPolicy::IntervalMs(0)));
    let mut logs = Vec::with_capacity(case.partitions);
    for i in 0..case.partitions {
        let path = dir.join(format!("p{i:05}"));
        let log = Log::open(&path, config.clone(), env.clone())
            .await
            .with_context(|| format!("open {}", path.display()))?;
        logs.push(log);
    }
    let window = Rc::new(RefCell::new(Window::new(dir, &budget)));
    let latency = Rc::new(RefCell::new(latency_histogram()));
    let total = Rc::new(Semaphore::new(case.window_total as u64));
    let mut tasks = Vec::new();
    for log in &logs {
        for _ in 0..case.window_per_partition {
            let (log, window, latency, total, template) = (
                log.clone(),
                Rc::clone(&window),
                Rc::clone(&latency),
                Rc::clone(&total),
                Arc::clone(&template),
            );
            tasks.push(glommio::spawn_local(async move {
                loop {
                    if window.borrow_mut().done(Instant::now()) {
                        return anyhow::Ok(());
                    }
                    let _permit = total
                        .acquire_permit(1)
                        .await
                        .map_err(|e| anyhow::anyhow!("append window closed: {e}"))?;
                    if window.borrow_mut().done(Instant::now()) {
                        return Ok(());
                    }
                    let batch = template.to_vec();
                    let len = batch.len();
                    let issued = Instant::now();
                    log.append(batch, AppendOptions::new(Durability::Durable))
                        .await
                        .with_context(|| format!("append to {}", log.dir().display()))?;
                    let done = Instant::now();
                    let mut w = window.borrow_mut();
                    if w.counts(issued) {
                        record_us(
                            &mut latency.borrow_mut(),
                            (done - issued).as_micros() as u64,
                        );
                    }
                    w.complete(len, done);
                }
            }));
        }
    }
    let mut first_err = None;
    for t in tasks {
        if let Err(e) = t.await {
            first_err.get_or_insert(e);
        }
    }
    let closes: Vec<_> = logs
        .into_iter()
        .map(|log| glommio::spawn_local(async move { log.close().await }))
        .collect();
    for c in closes {
        c.await.context("close log")?;
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let window =
        Rc::try_unwrap(window).map_err(|_| anyhow::anyhow!("append tasks still running"))?;
    let (bytes, appends, seconds, usage) = window.into_inner().finish();
    let latency = latency.borrow().clone();
    Ok(StrataRun {
        bytes,
        appends,
        seconds,
        latency,
        usage,
    })
}
