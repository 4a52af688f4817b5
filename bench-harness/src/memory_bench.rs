//! `strata-bench idle-partitions`: memory held by idle partitions. Creates N
//! partitions with a few small batches each and closes them; then a fresh child
//! process (hidden subcommand `idle-open`) reopens all N on one thread, touches them
//! no further, and reports its RSS growth, live heap growth (counted by the binary's
//! allocator), the engine's own `Log::heap_bytes()` and its open file descriptors, per
//! partition. Target: at most 16 KiB of RSS per idle partition.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use glommio::sync::Semaphore;
use serde_json::{json, Value};
use strata_engine::{AppendOptions, BatchCache, Durability, Log, LogConfig, LogEnv};

use crate::alloc_counter::live_heap_bytes;
use crate::proc_stats::{open_fds, raise_nofile_limit, rss_bytes};
use crate::report::{verdict, write_json, Table};
use crate::workload::batch_of;

/// RSS target per idle partition.
pub const RSS_KIB_PER_PARTITION_TARGET: f64 = 16.0;
/// Prefix of the result line the child prints on stdout.
const RESULT_PREFIX: &str = "strata-bench-result ";
/// Name of the partition opened before the baseline is taken (not counted).
const WARMUP_PARTITION: &str = "warmup";

/// Arguments of `strata-bench idle-partitions`.
#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    /// Directory for the partitions (a fresh subdirectory is used and removed).
    #[arg(long)]
    pub dir: PathBuf,
    /// Number of partitions.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Batches appended to each partition before it is closed.
    #[arg(long, default_value_t = 3)]
    pub batches: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 10)]
    pub records: usize,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    pub record_bytes: usize,
    /// Segment size (each new segment is preallocated to it while it is written).
    #[arg(long, default_value_t = LogConfig::default().segment_bytes)]
    pub segment_bytes: u64,
    /// Partitions created, or reopened, at the same time.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Arguments of the hidden `idle-open` child.
#[derive(Args, Debug, Clone)]
pub struct IdleOpenArgs {
    /// Directory holding the partitions.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub count: usize,
    #[arg(long)]
    pub segment_bytes: u64,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

fn partition_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("p{i:05}"))
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

/// Runs the idle-partitions subcommand.
pub fn run(args: IdleArgs) -> anyhow::Result<()> {
    let root = args.dir.join("strata-bench-idle");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
    println!(
        "idle-partitions: creating {} partitions with {} batches of {} x {} B records each",
        args.count, args.batches, args.records, args.record_bytes
    );
    let start = Instant::now();
    create_partitions(&args, &root)?;
    let create_s = start.elapsed().as_secs_f64();
    println!("  created and closed in {create_s:.1} s");
    let r = open_child(&args, &root)?;
    let _ = std::fs::remove_dir_all(&root);
    let n = args.count.max(1) as f64;
    let per = |v: &Value, key: &str| v[key].as_f64().unwrap_or(0.0) / n / 1024.0;
    let rss_kib = per(&r, "rss_growth_bytes");
    let heap_kib = per(&r, "heap_growth_bytes");
    let engine_kib = per(&r, "engine_heap_bytes");
    let fds = r["fd_growth"].as_f64().unwrap_or(0.0) / n;
    let mut table = Table::new(&["measure", "total", "per partition", "target", "verdict"]);
    table.row(vec![
        "RSS growth".into(),
        format!(
            "{:.1} MiB",
            r["rss_growth_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        ),
        format!("{rss_kib:.2} KiB"),
        format!("<= {RSS_KIB_PER_PARTITION_TARGET:.0} KiB"),
        verdict(rss_kib <= RSS_KIB_PER_PARTITION_TARGET).into(),
    ]);
    table.row(vec![
        "live heap growth (counted)".into(),
        format!(
            "{:.1} MiB",
            r["heap_growth_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        ),
        format!("{heap_kib:.2} KiB"),
        "-".into(),
        "-".into(),
    ]);
    table.row(vec![
        "Log::heap_bytes() sum".into(),
        format!(
            "{:.1} MiB",
            r["engine_heap_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        ),
        format!("{engine_kib:.2} KiB"),
        "-".into(),
        "-".into(),
    ]);
    table.row(vec![
        "open file descriptors growth".into(),
        format!("{}", r["fd_growth"].as_i64().unwrap_or(0)),
        format!("{fds:.2}"),
        "-".into(),
        "-".into(),
    ]);
    table.row(vec![
        "reopen time".into(),
        format!("{:.2} s", r["open_seconds"].as_f64().unwrap_or(0.0)),
        format!(
            "{:.0} us",
            r["open_seconds"].as_f64().unwrap_or(0.0) * 1e6 / n
        ),
        "-".into(),
        "-".into(),
    ]);
    println!();
    println!(
        "{} idle partitions reopened on one thread (RLIMIT_NOFILE {}; tail cache used {} B)",
        args.count,
        r["nofile_limit"].as_u64().unwrap_or(0),
        r["cache_used_bytes"].as_u64().unwrap_or(0)
    );
    table.print();
    write_json(
        args.json.as_deref(),
        &json!({
            "bench": "idle-partitions",
            "count": args.count,
            "create_seconds": create_s,
            "rss_kib_per_partition": rss_kib,
            "rss_target_kib": RSS_KIB_PER_PARTITION_TARGET,
            "rss_target_met": rss_kib <= RSS_KIB_PER_PARTITION_TARGET,
            "heap_kib_per_partition": heap_kib,
            "engine_heap_kib_per_partition": engine_kib,
            "fds_per_partition": fds,
            "child": r,
        }),
    )
}

fn create_partitions(args: &IdleArgs, root: &Path) -> anyhow::Result<()> {
    let (root, count, batches) = (root.to_path_buf(), args.count, args.batches);
    let (records, record_bytes, segment_bytes) =
        (args.records, args.record_bytes, args.segment_bytes);
    let concurrency = args.concurrency.max(1);
    strata_engine::run_local(move || async move {
        let env = LogEnv {
            cache: BatchCache::new(8 << 20),
            faults: Default::default(),
            metrics: Default::default(),
        };
        let batch = batch_of(records, record_bytes);
        let slots = Rc::new(Semaphore::new(concurrency as u64));
        let mut tasks: Vec<glommio::Task<strata_engine::Result<()>>> =
            Vec::with_capacity(count + 1);
        let dirs = std::iter::once(root.join(WARMUP_PARTITION))
            .chain((0..count).map(|i| partition_dir(&root, i)));
        for dir in dirs {
            let permit = slots
                .acquire_static_permit(1)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (env, batch) = (env.clone(), batch.clone());
            tasks.push(glommio::spawn_local(async move {
                let _permit = permit;
                let log = Log::open(&dir, config(segment_bytes), env).await?;
                for _ in 0..batches {
                    log.append(batch.clone(), AppendOptions::new(Durability::Written))
                        .await?;
                }
                log.close().await?;
                Ok(())
            }));
        }
        for t in tasks {
            t.await?;
        }
        anyhow::Ok(())
    })
}

fn open_child(args: &IdleArgs, root: &Path) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("find the strata-bench executable")?;
    let out = Command::new(exe)
        .arg("idle-open")
        .arg("--dir")
        .arg(root)
        .args(["--count", &args.count.to_string()])
        .args(["--segment-bytes", &args.segment_bytes.to_string()])
        .args(["--concurrency", &args.concurrency.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("run idle-open")?;
    if !out.status.success() {
        bail!("idle-open failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .context("idle-open printed no result")?;
    serde_json::from_str(line).context("parse idle-open's result")
}

/// Returns freed heap pages to the kernel so RSS shows what is held, not cached.
fn trim_heap() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The hidden `idle-open` child: reopens every partition, keeps them open and idle,
/// and prints what they cost.
pub fn open(args: IdleOpenArgs) -> anyhow::Result<()> {
    let nofile_limit = raise_nofile_limit();
    let result = strata_engine::run_local(move || async move {
        let env = LogEnv {
            cache: BatchCache::new(strata_engine::batch_cache::CACHE_BUDGET_BYTES_DEFAULT),
            faults: Default::default(),
            metrics: Default::default(),
        };
        // The first open starts what every shard has once (DMA probe, io_uring
        // buffers, blocking pool): it belongs to the baseline.
        let warmup = Log::open(
            args.dir.join(WARMUP_PARTITION),
            config(args.segment_bytes),
            env.clone(),
        )
        .await?;
        let mut logs: Vec<Option<Log>> = vec![None; args.count];
        glommio::timer::sleep(Duration::from_millis(50)).await;
        trim_heap();
        let (rss0, heap0, fds0) = (rss_bytes(), live_heap_bytes(), open_fds());
        let start = Instant::now();
        let slots = Rc::new(Semaphore::new(args.concurrency.max(1) as u64));
        let mut tasks = Vec::with_capacity(args.count);
        for i in 0..args.count {
            let permit = slots
                .acquire_static_permit(1)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (dir, env, segment_bytes) =
                (partition_dir(&args.dir, i), env.clone(), args.segment_bytes);
            tasks.push(glommio::spawn_local(async move {
                let _permit = permit;
                Log::open(&dir, config(segment_bytes), env).await
            }));
        }
        for (slot, t) in logs.iter_mut().zip(tasks) {
            *slot = Some(t.await?);
        }
        let open_seconds = start.elapsed().as_secs_f64();
        glommio::timer::sleep(Duration::from_millis(200)).await;
        trim_heap();
        let (rss1, heap1, fds1) = (rss_bytes(), live_heap_bytes(), open_fds());
        let engine_heap: usize = logs.iter().flatten().map(Log::heap_bytes).sum();
        let open_count = logs.iter().flatten().count();
        let fenced = logs
            .iter()
            .flatten()
            .filter(|l| l.fenced_reason().is_some())
            .count();
        drop(warmup);
        anyhow::Ok(json!({
            "count": open_count,
            "fenced": fenced,
            "open_seconds": open_seconds,
            "rss_before_bytes": rss0,
            "rss_after_bytes": rss1,
            "rss_growth_bytes": rss1.saturating_sub(rss0),
            "heap_before_bytes": heap0,
            "heap_after_bytes": heap1,
            "heap_growth_bytes": heap1.saturating_sub(heap0),
            "engine_heap_bytes": engine_heap,
            "fds_before": fds0,
            "fds_after": fds1,
            "fd_growth": fds1 as i64 - fds0 as i64,
            "cache_used_bytes": env.cache.used_bytes(),
            "nofile_limit": nofile_limit,
        }))
    })?;
    println!("{RESULT_PREFIX}{result}");
    Ok(())
}
