//! strata-crash-writer: the process crash tests kill.
//!
//! Opens (recovering) the log in `--dir`, prints `ready <log start> <log end>`, then
//! appends seeded batches of stamped records ([`strata_tests::stamp`]) from several
//! tasks on one executor, so group commit gathers them. After each durable append
//! resolves it prints `ack <base offset> <last offset> <generation> <seq>` and
//! flushes stdout: a printed ack is a promise the log must keep after SIGKILL.
//! It runs until killed, or until `--max-batches` batches were acknowledged (then it
//! closes the log cleanly and prints `done`).
//!
//! Usage: `strata-crash-writer --dir DIR --seed N [--generation G]
//! [--segment-bytes B] [--max-batches N] [--tasks N]`

use std::cell::Cell;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_engine::{run_local, AppendOptions, Durability, Log, LogConfig, LogEnv};
use strata_tests::rng::SplitMix64;
use strata_tests::stamp::build_batch;

/// Segment size by default: small, so segments roll during a short run.
const SEGMENT_BYTES_DEFAULT: u64 = 256 * 1024;
/// Batches acknowledged before the writer stops on its own (a safety net).
const MAX_BATCHES_DEFAULT: u64 = 1_000_000;
/// Concurrent appending tasks by default.
const TASKS_DEFAULT: u64 = 4;
/// Concurrent appending tasks, at most.
const TASKS_MAX: u64 = 64;

struct Args {
    dir: PathBuf,
    seed: u64,
    generation: u64,
    segment_bytes: u64,
    max_batches: u64,
    tasks: u64,
}

impl Args {
    fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut dir = None;
        let mut seed = None;
        let mut generation = 0;
        let mut segment_bytes = SEGMENT_BYTES_DEFAULT;
        let mut max_batches = MAX_BATCHES_DEFAULT;
        let mut tasks = TASKS_DEFAULT;
        while let Some(flag) = argv.next() {
            let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|e| format!("{flag} {value}: {e}"))
            };
            match flag.as_str() {
                "--dir" => dir = Some(PathBuf::from(&value)),
                "--seed" => seed = Some(number()?),
                "--generation" => generation = number()?,
                "--segment-bytes" => segment_bytes = number()?,
                "--max-batches" => max_batches = number()?,
                "--tasks" => tasks = number()?,
                _ => return Err(format!("unknown argument {flag}")),
            }
        }
        if !(1..=TASKS_MAX).contains(&tasks) {
            return Err(format!("--tasks must be in 1..={TASKS_MAX}"));
        }
        Ok(Args {
            dir: dir.ok_or("--dir is required")?,
            seed: seed.ok_or("--seed is required")?,
            generation,
            segment_bytes,
            max_batches,
            tasks,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes one line to stdout and flushes it, so the reader sees it before any crash.
fn say(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    out.flush()
}

async fn run(args: Args) -> Result<(), String> {
    let config = LogConfig {
        segment_bytes: args.segment_bytes,
        ..LogConfig::default()
    };
    let log = Log::open(&args.dir, config, LogEnv::default())
        .await
        .map_err(|e| format!("open {}: {e}", args.dir.display()))?;
    if let Some(reason) = log.fenced_reason() {
        return Err(format!("log opened fenced: {reason}"));
    }
    say(format_args!(
        "ready {} {}",
        log.log_start_offset(),
        log.log_end_offset()
    ))
    .map_err(|e| format!("stdout: {e}"))?;
    let next_seq = Rc::new(Cell::new(0u64));
    let root = SplitMix64::new(args.seed);
    let mut tasks = Vec::new();
    for t in 0..args.tasks {
        let log = log.clone();
        let next_seq = Rc::clone(&next_seq);
        let mut rng = root.fork(t);
        let (generation, max_batches) = (args.generation, args.max_batches);
        tasks.push(glommio::spawn_local(async move {
            loop {
                let seq = next_seq.get();
                if seq >= max_batches {
                    return Ok(());
                }
                next_seq.set(seq + 1);
                let batch = build_batch(&mut rng, generation, seq, now_ms());
                let info = log
                    .append(batch, AppendOptions::new(Durability::Durable))
                    .await
                    .map_err(|e| format!("append of seq {seq}: {e}"))?;
                say(format_args!(
                    "ack {} {} {generation} {seq}",
                    info.base_offset, info.last_offset
                ))
                .map_err(|e| format!("stdout: {e}"))?;
            }
        }));
    }
    let mut first_err = None;
    for task in tasks {
        if let Err(e) = task.await {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    log.close().await.map_err(|e| format!("close: {e}"))?;
    say(format_args!("done")).map_err(|e| format!("stdout: {e}"))
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("strata-crash-writer: {e}");
            return ExitCode::from(2);
        }
    };
    match run_local(move || run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata-crash-writer: {e}");
            ExitCode::FAILURE
        }
    }
}
