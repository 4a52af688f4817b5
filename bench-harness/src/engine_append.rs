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
use serde_json::json;
use strata_engine::{AppendOptions, BatchCache, Durability, FlushPolicy, Log, LogConfig, LogEnv};

use crate::append_summary::{print_tables, Case, StrataRun, Summary};
use crate::limits::run_raw_on_executor;
use crate::proc_stats::settle;
use crate::raw_io::{RawSpec, DMA_ALIGN_BYTES};
use crate::report::{latency_histogram, record_us, write_json, Latency};
use crate::window::{Budget, Window};
use crate::workload::{build_batch, record_count, FlushArg};

/// Arguments of `strata-bench engine-append`.
#[derive(Args, Debug, Clone)]
pub struct EngineAppendArgs {
    /// Directory for the logs and raw files (a fresh subdirectory is used and removed).
    #[arg(long)]
    pub dir: PathBuf,
    /// Partition counts to run.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub partitions: Vec<usize>,
    /// Flush policies to run: every, `<N>ms`, os.
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
    /// First disk reservation step of a segment (doubling up to 32 MiB as it is
    /// written); 33554432 is the fixed 32 MiB step of the engine before it grew with
    /// the write rate.
    #[arg(long, default_value_t = strata_engine::preallocation::PREALLOCATE_STEP_BYTES_MIN_DEFAULT)]
    pub preallocate_step_min_bytes: u64,
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

/// Runs the engine-append subcommand.
pub fn run(args: EngineAppendArgs) -> anyhow::Result<()> {
    let work = args.dir.join("strata-bench-engine-append");
    let _ = std::fs::remove_dir_all(&work);
    let template: Arc<[u8]> = Arc::from(build_batch(args.record_bytes, args.batch_bytes));
    let raw_write_bytes = args.batch_bytes.div_ceil(DMA_ALIGN_BYTES) * DMA_ALIGN_BYTES;
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
            "preallocate_step_min_bytes": args.preallocate_step_min_bytes,
            "cases": summaries.iter().map(Summary::to_json).collect::<Vec<_>>(),
        }),
    )
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
    let sizes = RunSizes {
        segment_bytes: args.segment_bytes,
        cache_bytes: args.cache_bytes,
        prealloc_step_min_bytes: args.preallocate_step_min_bytes,
    };
    strata_engine::run_local(move || async move {
        strata_run(case, &dir, template, budget, sizes).await
    })
}

/// Sizes of one strata run's logs.
#[derive(Clone, Copy)]
struct RunSizes {
    segment_bytes: u64,
    cache_bytes: usize,
    prealloc_step_min_bytes: u64,
}

async fn strata_run(
    case: Case,
    dir: &Path,
    template: Arc<[u8]>,
    budget: Budget,
    sizes: RunSizes,
) -> anyhow::Result<StrataRun> {
    let RunSizes {
        segment_bytes,
        cache_bytes,
        prealloc_step_min_bytes,
    } = sizes;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let env = LogEnv {
        cache: BatchCache::new(cache_bytes),
        faults: Default::default(),
        metrics: Default::default(),
    };
    let defaults = LogConfig::default();
    let config = LogConfig {
        segment_bytes,
        flush: case.flush.0,
        preallocate: true,
        preallocate_step_bytes_min: prealloc_step_min_bytes,
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
