//! `strata-bench recovery`: how long a partition takes to reopen after its writer was
//! killed with SIGKILL — with its indexes intact (target: at most 1 s), and with every
//! `.index`/`.timeindex` deleted so that opening rebuilds them (target: at least
//! 1 GB/s of log) — next to the raw O_DIRECT sequential read of the same files.
//!
//! The writer and every reopen run as child processes of this binary (hidden
//! subcommands `recovery-writer` and `recovery-open`), so each reopen is a cold start
//! of a fresh process, as after a crash.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use strata_engine::{AppendOptions, BatchCache, Durability, FlushPolicy, Log, LogConfig, LogEnv};

use crate::proc_stats::settle;
use crate::raw_io::read_files;
use crate::report::{median, verdict, write_json, Table};
use crate::workload::build_batch;

/// Reopen-time target with intact indexes.
pub const REOPEN_MS_TARGET: f64 = 1000.0;
/// Index rebuild throughput target, in GB/s of log.
pub const REBUILD_GB_S_TARGET: f64 = 1.0;
/// Prefix of the result line a child prints on stdout.
const RESULT_PREFIX: &str = "strata-bench-result ";
/// Bytes per raw read and reads in flight, like the engine's recovery scan.
const RAW_READ_CHUNK_BYTES: usize = 4 << 20;

/// Arguments of `strata-bench recovery`.
#[derive(Args, Debug, Clone)]
pub struct RecoveryArgs {
    /// Directory for the partition (a fresh subdirectory is used and removed).
    #[arg(long)]
    pub dir: PathBuf,
    /// Size of the partition to build, in GiB (fractions allowed).
    #[arg(long, default_value_t = 4.0)]
    pub size_gib: f64,
    /// Segment size.
    #[arg(long, default_value_t = 1 << 30)]
    pub segment_bytes: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Target bytes per batch.
    #[arg(long, default_value_t = 65536)]
    pub batch_bytes: usize,
    /// Reopens per measurement; raw reads and rebuilds alternate.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Raw reads in flight (4 MiB each).
    #[arg(long, default_value_t = 4)]
    pub read_depth: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Arguments of the hidden `recovery-writer` child.
#[derive(Args, Debug, Clone)]
pub struct RecoveryWriterArgs {
    /// The partition directory.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub size_bytes: u64,
    #[arg(long)]
    pub segment_bytes: u64,
    #[arg(long)]
    pub record_bytes: usize,
    #[arg(long)]
    pub batch_bytes: usize,
    /// Appends in flight.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
}

/// Arguments of the hidden `recovery-open` child.
#[derive(Args, Debug, Clone)]
pub struct RecoveryOpenArgs {
    /// The partition directory.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub segment_bytes: u64,
    /// Read the `.log` files raw instead of opening the log.
    #[arg(long)]
    pub raw_read: bool,
    #[arg(long, default_value_t = 4)]
    pub read_depth: usize,
}

/// Runs the recovery subcommand.
pub fn run(args: RecoveryArgs) -> anyhow::Result<()> {
    let work = args.dir.join("strata-bench-recovery");
    let log_dir = work.join("log");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let size_bytes = (args.size_gib * (1u64 << 30) as f64) as u64;
    println!(
        "recovery: building {} B ({:.2} GiB) in {} B segments, then SIGKILL",
        size_bytes, args.size_gib, args.segment_bytes
    );
    let written = run_writer_and_kill(&args, &log_dir, size_bytes)?;
    println!(
        "  writer: {} B, end offset {}, {:.1} MB/s; killed with SIGKILL",
        written.size_bytes,
        written.end_offset,
        written.size_bytes as f64 / 1e6 / written.seconds.max(1e-9)
    );
    let log_bytes = log_file_bytes(&log_dir)?;
    let mut intact = Vec::new();
    for round in 0..args.rounds {
        let r = open_child(&args, &log_dir, false)?;
        println!(
            "  round {} reopen, indexes intact: open {:.1} ms, process {:.1} ms",
            round + 1,
            r.open_ms,
            r.process_ms
        );
        check_end(&r, written.end_offset)?;
        intact.push(r);
    }
    let mut rebuild = Vec::new();
    let mut raw = Vec::new();
    for round in 0..args.rounds {
        for step in 0..2 {
            if (step == 0) == (round % 2 == 0) {
                let r = open_child(&args, &log_dir, true)?;
                println!("  round {} raw read: {:.2} GB/s", round + 1, r.gb_per_s());
                raw.push(r);
            } else {
                let removed = remove_indexes(&log_dir)?;
                let r = open_child(&args, &log_dir, false)?;
                println!(
                    "  round {} reopen, {removed} index files deleted: open {:.1} ms = {:.2} GB/s",
                    round + 1,
                    r.open_ms,
                    r.gb_per_s()
                );
                check_end(&r, written.end_offset)?;
                rebuild.push(r);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    report(&args, &written, log_bytes, &intact, &rebuild, &raw)
}

fn report(
    args: &RecoveryArgs,
    written: &Written,
    log_bytes: u64,
    intact: &[OpenResult],
    rebuild: &[OpenResult],
    raw: &[OpenResult],
) -> anyhow::Result<()> {
    let med = |rs: &[OpenResult], f: fn(&OpenResult) -> f64| {
        median(&rs.iter().map(f).collect::<Vec<_>>())
    };
    let intact_ms = med(intact, |r| r.open_ms);
    let rebuild_gb_s = med(rebuild, OpenResult::gb_per_s);
    let raw_gb_s = med(raw, OpenResult::gb_per_s);
    let ratios: Vec<f64> = rebuild
        .iter()
        .zip(raw)
        .map(|(a, b)| a.gb_per_s() / b.gb_per_s().max(1e-9))
        .collect();
    let mut table = Table::new(&[
        "measure",
        "open ms",
        "process ms",
        "GB/s",
        "target",
        "verdict",
    ]);
    table.row(vec![
        "reopen after SIGKILL, indexes intact".into(),
        format!("{intact_ms:.1}"),
        format!("{:.1}", med(intact, |r| r.process_ms)),
        "-".into(),
        format!("<= {REOPEN_MS_TARGET:.0} ms"),
        verdict(intact_ms <= REOPEN_MS_TARGET).into(),
    ]);
    table.row(vec![
        "reopen after SIGKILL, indexes deleted".into(),
        format!("{:.1}", med(rebuild, |r| r.open_ms)),
        format!("{:.1}", med(rebuild, |r| r.process_ms)),
        format!("{rebuild_gb_s:.2}"),
        format!(">= {REBUILD_GB_S_TARGET:.1} GB/s"),
        verdict(rebuild_gb_s >= REBUILD_GB_S_TARGET).into(),
    ]);
    table.row(vec![
        "raw O_DIRECT sequential read (limit)".into(),
        format!("{:.1}", med(raw, |r| r.open_ms)),
        format!("{:.1}", med(raw, |r| r.process_ms)),
        format!("{raw_gb_s:.2}"),
        "-".into(),
        "-".into(),
    ]);
    println!();
    println!(
        "recovery of {log_bytes} B of log ({:.2} GiB, medians of {} rounds); rebuild / raw read = {:.2}",
        log_bytes as f64 / (1u64 << 30) as f64,
        args.rounds,
        median(&ratios)
    );
    table.print();
    let rounds = |rs: &[OpenResult]| rs.iter().map(OpenResult::to_json).collect::<Vec<_>>();
    write_json(
        args.json.as_deref(),
        &json!({
            "bench": "recovery",
            "log_bytes": log_bytes,
            "segment_bytes": args.segment_bytes,
            "writer_mb_per_s": written.size_bytes as f64 / 1e6 / written.seconds.max(1e-9),
            "reopen_intact_open_ms_median": intact_ms,
            "reopen_intact_target_ms": REOPEN_MS_TARGET,
            "reopen_intact_target_met": intact_ms <= REOPEN_MS_TARGET,
            "rebuild_gb_per_s_median": rebuild_gb_s,
            "rebuild_target_gb_per_s": REBUILD_GB_S_TARGET,
            "rebuild_target_met": rebuild_gb_s >= REBUILD_GB_S_TARGET,
            "raw_read_gb_per_s_median": raw_gb_s,
            "rebuild_over_raw_median": median(&ratios),
            "intact_rounds": rounds(intact),
            "rebuild_rounds": rounds(rebuild),
            "raw_read_rounds": rounds(raw),
        }),
    )
}

/// What the writer built before it was killed.
struct Written {
    size_bytes: u64,
    end_offset: i64,
    seconds: f64,
}

fn run_writer_and_kill(
    args: &RecoveryArgs,
    log_dir: &Path,
    size_bytes: u64,
) -> anyhow::Result<Written> {
    let exe = std::env::current_exe().context("find the strata-bench executable")?;
    let mut child = Command::new(exe)
        .arg("recovery-writer")
        .arg("--dir")
        .arg(log_dir)
        .args(["--size-bytes", &size_bytes.to_string()])
        .args(["--segment-bytes", &args.segment_bytes.to_string()])
        .args(["--record-bytes", &args.record_bytes.to_string()])
        .args(["--batch-bytes", &args.batch_bytes.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("start the recovery writer")?;
    let stdout = child.stdout.take().context("writer stdout")?;
    let mut ready = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("read the writer's output")?;
        if let Some(rest) = line.strip_prefix(RESULT_PREFIX) {
            ready = Some(serde_json::from_str::<Value>(rest).context("parse the writer's result")?);
            break;
        }
    }
    // SIGKILL, whether or not it got ready: nothing may be flushed by a clean exit.
    child.kill().context("SIGKILL the writer")?;
    let status = child.wait().context("wait for the writer")?;
    let Some(v) = ready else {
        bail!("the recovery writer exited ({status}) before reaching {size_bytes} B");
    };
    Ok(Written {
        size_bytes: v["size_bytes"].as_u64().unwrap_or(0),
        end_offset: v["end_offset"].as_i64().unwrap_or(-1),
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
    })
}

/// The hidden `recovery-writer` child: appends until the log holds `size_bytes`, makes
/// it durable, prints its result line and waits to be killed.
pub fn writer(args: RecoveryWriterArgs) -> anyhow::Result<()> {
    strata_engine::run_local(move || async move {
        let template = build_batch(args.record_bytes, args.batch_bytes);
        let config = LogConfig {
            segment_bytes: args.segment_bytes,
            flush: FlushPolicy::Os,
            preallocate: true,
            max_batch_bytes: LogConfig::default().max_batch_bytes.max(template.len()),
            ..LogConfig::default()
        };
        let env = LogEnv {
            cache: BatchCache::new(64 << 20),
            faults: Default::default(),
            metrics: Default::default(),
        };
        let log = Log::open(&args.dir, config, env).await?;
        let start = Instant::now();
        let mut inflight = std::collections::VecDeque::with_capacity(args.window);
        while log.size_bytes() < args.size_bytes {
            if inflight.len() >= args.window.max(1) {
                let t: glommio::Task<strata_engine::Result<_>> =
                    inflight.pop_front().expect("not empty");
                t.await?;
            }
            let (log, batch) = (log.clone(), template.clone());
            inflight.push_back(glommio::spawn_local(async move {
                log.append(batch, AppendOptions::new(Durability::Written))
                    .await
            }));
        }
        for t in inflight {
            t.await?;
        }
        log.sync().await?;
        let result = json!({
            "size_bytes": log.size_bytes(),
            "end_offset": log.log_end_offset(),
            "seconds": start.elapsed().as_secs_f64(),
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{RESULT_PREFIX}{result}")?;
        out.flush()?;
        drop(out);
        // Wait to be killed: the log stays open, as in a crash.
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}

/// One child's measurement: an open of the log, or a raw read of its files.
#[derive(Clone, Debug)]
struct OpenResult {
    open_ms: f64,
    process_ms: f64,
    bytes: u64,
    end_offset: i64,
    fenced: Option<String>,
}

impl OpenResult {
    fn gb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e9 / (self.open_ms / 1e3).max(1e-9)
    }

    fn to_json(&self) -> Value {
        json!({
            "open_ms": self.open_ms,
            "process_ms": self.process_ms,
            "bytes": self.bytes,
            "gb_per_s": self.gb_per_s(),
            "end_offset": self.end_offset,
            "fenced": self.fenced,
        })
    }
}

fn check_end(r: &OpenResult, expected: i64) -> anyhow::Result<()> {
    if let Some(reason) = &r.fenced {
        bail!("the reopened log is fenced: {reason}");
    }
    if r.end_offset != expected {
        bail!(
            "reopened log ends at offset {}, the writer had made {} durable",
            r.end_offset,
            expected
        );
    }
    Ok(())
}

fn open_child(args: &RecoveryArgs, log_dir: &Path, raw_read: bool) -> anyhow::Result<OpenResult> {
    let exe = std::env::current_exe().context("find the strata-bench executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("recovery-open")
        .arg("--dir")
        .arg(log_dir)
        .args(["--segment-bytes", &args.segment_bytes.to_string()])
        .args(["--read-depth", &args.read_depth.to_string()]);
    if raw_read {
        cmd.arg("--raw-read");
    }
    settle(log_dir);
    let start = Instant::now();
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("run recovery-open")?;
    let process_ms = start.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        bail!("recovery-open failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .context("recovery-open printed no result")?;
    let v: Value = serde_json::from_str(line).context("parse recovery-open's result")?;
    Ok(OpenResult {
        open_ms: v["open_ms"].as_f64().unwrap_or(0.0),
        process_ms,
        bytes: v["bytes"].as_u64().unwrap_or(0),
        end_offset: v["end_offset"].as_i64().unwrap_or(-1),
        fenced: v["fenced"].as_str().map(str::to_string),
    })
}

/// The hidden `recovery-open` child: opens the log (or reads its files raw), prints
/// how long that took, and exits without closing it (no clean-shutdown marker).
pub fn open(args: RecoveryOpenArgs) -> anyhow::Result<()> {
    let result = strata_engine::run_local(move || async move {
        let files = log_files(&args.dir)?;
        let bytes: u64 = files.iter().map(|(_, size)| size).sum();
        if args.raw_read {
            let paths: Vec<PathBuf> = files
                .into_iter()
                .filter(|(_, s)| *s > 0)
                .map(|(p, _)| p)
                .collect();
            let (read, seconds) = read_files(&paths, RAW_READ_CHUNK_BYTES, args.read_depth).await?;
            return anyhow::Ok(
                json!({ "open_ms": seconds * 1e3, "bytes": read, "end_offset": -1 }),
            );
        }
        let config = LogConfig {
            segment_bytes: args.segment_bytes,
            ..LogConfig::default()
        };
        let env = LogEnv {
            cache: BatchCache::new(64 << 20),
            faults: Default::default(),
            metrics: Default::default(),
        };
        let start = Instant::now();
        let log = Log::open(&args.dir, config, env).await?;
        let open_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(json!({
            "open_ms": open_ms,
            "bytes": bytes,
            "end_offset": log.log_end_offset(),
            "segments": log.segment_count(),
            "fenced": log.fenced_reason(),
        }))
    })?;
    println!("{RESULT_PREFIX}{result}");
    Ok(())
}

/// The `.log` files of a partition in offset order, with their sizes.
fn log_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            files.push((path, entry.metadata()?.len()));
        }
    }
    files.sort();
    Ok(files)
}

fn log_file_bytes(dir: &Path) -> anyhow::Result<u64> {
    Ok(log_files(dir)?.iter().map(|(_, s)| s).sum())
}

/// Deletes every `.index` and `.timeindex` file of the partition; returns how many.
fn remove_indexes(dir: &Path) -> anyhow::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let path = entry?.path();
        if path
            .extension()
            .is_some_and(|e| e == "index" || e == "timeindex")
        {
            std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}
