//! Crash recovery of the storage engine, across processes.
//!
//! `acknowledged_batches_survive_sigkill`: a writer process (`strata-crash-writer`)
//! appends to one log until it is SIGKILLed at a seeded moment; the log is then
//! reopened here and must hold every batch the writer acknowledged, at its offsets
//! and intact, with contiguous offsets, no partial batch, and room for new appends.
//! Generations pile up in the same directory, so each writer also recovers from the
//! previous crash, and reopens alternate between a clean close and a plain drop.
//!
//! `torn_tail_is_cut_at_the_last_whole_batch`: a torn tail written by hand is cut at
//! the last whole batch.
//!
//! Environment: `STRATA_CRASH_ITERATIONS` (default 200), `STRATA_CRASH_SEED` (decimal
//! or 0x-hex; default fixed) to replay a run.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_engine::{run_local, AppendOptions, Durability, Log, LogConfig, LogEnv};
use strata_schema::{stamp_base_offset, BATCH_HEADER_BYTES};
use strata_tests::log_check::{check_stored_batch, read_whole_log, StoredBatch, READ_BYTES_MAX};
use strata_tests::rng::SplitMix64;
use strata_tests::stamp::build_batch;

/// Crash iterations when `STRATA_CRASH_ITERATIONS` is not set.
const ITERATIONS_DEFAULT: u64 = 200;
/// Root seed when `STRATA_CRASH_SEED` is not set.
const SEED_DEFAULT: u64 = 0x5354_5241_5441_0001;
/// Iterations that share one log directory before a fresh one (bounds disk use).
const ITERATIONS_PER_DIR: u64 = 25;
/// Segment sizes of the crash log, one drawn per directory: small, so segments roll
/// and seal during a run (the smallest every few batches).
const SEGMENT_BYTES_CHOICES: [u64; 3] = [64 * 1024, 256 * 1024, 1024 * 1024];
/// Kill delay after the writer reports ready, in `[min, max)` ms.
const KILL_AFTER_READY_MS_MIN: u64 = 5;
const KILL_AFTER_READY_MS_MAX: u64 = 80;
/// One iteration in this many kills the writer counting from its spawn, with a delay
/// below `KILL_AFTER_SPAWN_MS_MAX` (about its start-up time here), so some kills land
/// while it is still opening and recovering the log.
const KILL_AFTER_SPAWN_ONE_IN: u64 = 8;
const KILL_AFTER_SPAWN_MS_MAX: u64 = 80;
/// How long a writer may take to open its log and report ready.
const CHILD_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a writer may take to die after SIGKILL and close its stdout.
const CHILD_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one in-process recovery and check may take.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);
/// The writer's own stop, far beyond what it reaches before the kill.
const CHILD_MAX_BATCHES: u64 = 100_000;
/// Bytes of writer stderr kept for failure messages.
const CHILD_STDERR_BYTES_MAX: u64 = 64 * 1024;

/// One crash iteration: a writer generation is killed, then the log is checked.
#[derive(Clone, Debug)]
struct Round {
    log_dir: PathBuf,
    segment_bytes: u64,
    seed: u64,
    /// Generation of the writer process.
    killed_generation: u64,
    /// Generation of the batch appended here after recovery.
    new_generation: u64,
    /// Close the log after the check; otherwise drop it (no clean-shutdown marker).
    clean: bool,
}

impl Round {
    fn config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            ..LogConfig::default()
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={s:?} is not a number: {e}"))
        }
    }
}

/// Runs `f` on its own thread and gives up on it after `timeout`, so a hung
/// recovery fails the test instead of hanging it.
fn with_deadline<T: Send + 'static>(
    what: &str,
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish within {timeout:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked (see its message above)"),
    }
}

/// One `ack` line of the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ack {
    base_offset: i64,
    last_offset: i64,
    generation: u64,
    seq: u64,
}

/// When the writer is killed.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after it reported ready (log open, appends starting).
    AfterReadyMs(u64),
    /// This long after spawn: possibly while it is still opening the log.
    AfterSpawnMs(u64),
}

/// What one writer did before it was killed.
#[derive(Debug)]
struct ChildRun {
    /// Log start and end offsets the writer found at open, if it got that far.
    ready: Option<(i64, i64)>,
    acks: Vec<Ack>,
    /// Time from spawn to SIGKILL.
    alive: Duration,
}

/// Parses the writer's stdout lines into what it did in `alive`.
fn parse_lines(lines: &[String], alive: Duration) -> Result<ChildRun, String> {
    let mut ready = None;
    let mut acks = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> Result<i64, String> {
            words
                .get(i)
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| format!("malformed writer line {line:?}"))
        };
        match words.first().copied() {
            Some("ready") if words.len() == 3 => ready = Some((num(1)?, num(2)?)),
            Some("ack") if words.len() == 5 => acks.push(Ack {
                base_offset: num(1)?,
                last_offset: num(2)?,
                generation: num(3)? as u64,
                seq: num(4)? as u64,
            }),
            _ => return Err(format!("unexpected writer line {line:?}")),
        }
    }
    Ok(ChildRun { ready, acks, alive })
}

/// Waits for `child` to exit, up to `timeout`.
fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("wait for writer: {e}"))?
        {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Spawns the writer of `round`, kills it with SIGKILL as `kill_at` says, and
/// collects what it acknowledged.
fn run_child(round: &Round, kill_at: KillAt) -> Result<ChildRun, String> {
    let spawned = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata-crash-writer"))
        .arg("--dir")
        .arg(&round.log_dir)
        .args(["--seed", &round.seed.to_string()])
        .args(["--generation", &round.killed_generation.to_string()])
        .args(["--segment-bytes", &round.segment_bytes.to_string()])
        .args(["--max-batches", &CHILD_MAX_BATCHES.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn the writer: {e}"))?;
    let stdout = child.stdout.take().ok_or("writer has no stdout")?;
    let stderr = child.stderr.take().ok_or("writer has no stderr")?;
    // Whole lines only: a line cut by the kill (no newline) was never fully reported.
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let out_reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
            if line.ends_with('\n') && line_tx.send(line.trim_end().to_string()).is_err() {
                break;
            }
            line.clear();
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.take(CHILD_STDERR_BYTES_MAX).read_to_string(&mut s);
        s
    });

    let mut lines = Vec::new();
    let mut early_exit = false;
    let kill_time = match kill_at {
        KillAt::AfterSpawnMs(ms) => spawned + Duration::from_millis(ms),
        KillAt::AfterReadyMs(ms) => {
            let deadline = spawned + CHILD_READY_TIMEOUT;
            loop {
                match line_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(line) => {
                        let ready = line.starts_with("ready");
                        lines.push(line);
                        if ready {
                            break;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!(
                            "writer did not report ready within {CHILD_READY_TIMEOUT:?} (hung opening the log?)"
                        ));
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        early_exit = true;
                        break;
                    }
                }
            }
            Instant::now() + Duration::from_millis(ms)
        }
    };
    if !early_exit {
        std::thread::sleep(kill_time.saturating_duration_since(Instant::now()));
    }
    // Child::kill sends SIGKILL.
    let _ = child.kill();
    let alive = spawned.elapsed();
    let Some(status) = wait_with_deadline(&mut child, CHILD_EXIT_TIMEOUT)? else {
        return Err(format!(
            "writer pid {} did not die within {CHILD_EXIT_TIMEOUT:?} of SIGKILL",
            child.id()
        ));
    };
    let deadline = Instant::now() + CHILD_EXIT_TIMEOUT;
    loop {
        match line_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "writer's stdout stayed open {CHILD_EXIT_TIMEOUT:?} after it died"
                ));
            }
        }
    }
    let _ = out_reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    if status.signal() != Some(libc::SIGKILL) {
        return Err(format!(
            "writer ended on its own ({status}) before it was killed; stderr:\n{stderr}"
        ));
    }
    parse_lines(&lines, alive)
}

/// What one recovery and check found.
struct Recovered {
    /// Every batch of the log after recovery, then the batch appended after it.
    batches: Vec<StoredBatch>,
    /// The batch appended after recovery.
    appended: Ack,
    /// Batches of the killed generation that survived without an ack.
    survivors: usize,
    segments: usize,
    size_bytes: u64,
}

/// Reopens the log after a crash and checks it: everything recovered before
/// (`previous`) is still there, every batch in `ledger` (all acks since the directory
/// was fresh) is at its offsets and intact, offsets are contiguous from start to end,
/// every batch validates, and generations only grow along the log. Then appends one
/// batch of the round's new generation and closes the log or drops it.
async fn recover_and_check(
    round: Round,
    ledger: BTreeMap<i64, Ack>,
    previous: Vec<StoredBatch>,
) -> Result<Recovered, String> {
    let Round {
        killed_generation,
        new_generation,
        seed,
        clean,
        ..
    } = round;
    let log = Log::open(&round.log_dir, round.config(), LogEnv::default())
        .await
        .map_err(|e| format!("reopen after the crash: {e}"))?;
    if let Some(reason) = log.fenced_reason() {
        return Err(format!("log is fenced after recovery: {reason}"));
    }
    if log.log_start_offset() != 0 {
        return Err(format!(
            "log starts at {}, expected 0 (nothing deletes data here)",
            log.log_start_offset()
        ));
    }
    let end = log.log_end_offset();
    let mut batches = read_whole_log(&log)
        .await
        .map_err(|e| format!("log check: {e}"))?;

    if let Some(i) = previous.iter().zip(&batches).position(|(a, b)| a != b) {
        return Err(format!(
            "batch recovered earlier changed: was {:?}, now {:?}",
            previous[i], batches[i]
        ));
    }
    if batches.len() < previous.len() {
        return Err(format!(
            "{} batches recovered earlier are gone (log now ends at {end}); first missing: {:?}",
            previous.len() - batches.len(),
            previous[batches.len()]
        ));
    }
    let mut by_base = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut prev_generation = 0;
    for b in &batches {
        if b.generation < prev_generation || b.generation > killed_generation {
            let newest = killed_generation;
            return Err(format!(
                "{b:?} breaks generation order (after {prev_generation}, newest {newest})"
            ));
        }
        prev_generation = b.generation;
        if !seen.insert((b.generation, b.seq)) {
            return Err(format!(
                "batch of generation {} seq {} is stored twice (again at {b:?})",
                b.generation, b.seq
            ));
        }
        by_base.insert(b.base_offset, *b);
    }
    for ack in ledger.values() {
        let Some(b) = by_base.get(&ack.base_offset) else {
            let n = batches.len();
            return Err(format!(
                "acknowledged {ack:?} is missing; the log holds [0, {end}) in {n} batches"
            ));
        };
        if (b.last_offset, b.generation, b.seq) != (ack.last_offset, ack.generation, ack.seq) {
            return Err(format!(
                "acknowledged {ack:?}, but its offsets now hold {b:?}"
            ));
        }
    }
    let survivors = batches
        .iter()
        .filter(|b| b.generation == killed_generation && !ledger.contains_key(&b.base_offset))
        .count();

    let mut rng = SplitMix64::new(seed).fork(u64::MAX);
    let info = log
        .append(
            build_batch(&mut rng, new_generation, 0, now_ms()),
            AppendOptions::new(Durability::Durable),
        )
        .await
        .map_err(|e| format!("append after recovery: {e}"))?;
    if info.base_offset != end {
        return Err(format!(
            "append after recovery landed at {}, expected the log end {end}",
            info.base_offset
        ));
    }
    let read = log
        .read(info.base_offset, READ_BYTES_MAX, Some(info.last_offset + 1))
        .await
        .map_err(|e| format!("read back the append after recovery: {e}"))?;
    let first = read
        .batches
        .first()
        .ok_or("append after recovery not readable")?;
    let appended = check_stored_batch(first, info.base_offset)
        .map_err(|e| format!("append after recovery: {e}"))?;
    if (appended.generation, appended.seq, appended.last_offset)
        != (new_generation, 0, info.last_offset)
    {
        return Err(format!(
            "append after recovery reads back as {appended:?}, acknowledged as {info:?}"
        ));
    }
    batches.push(appended);
    let segments = log.segment_count();
    let size_bytes = log.size_bytes();
    if clean {
        log.close().await.map_err(|e| format!("close: {e}"))?;
    } else {
        drop(log);
    }
    Ok(Recovered {
        batches,
        appended: Ack {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            generation: new_generation,
            seq: 0,
        },
        survivors,
        segments,
        size_bytes,
    })
}

/// Adds a generation's acks to the ledger, checking them against each other and
/// against the log the writer found at open, which must be the one the previous
/// check left (ending at `expected_end`).
fn record_acks(
    ledger: &mut BTreeMap<i64, Ack>,
    run: &ChildRun,
    generation: u64,
    expected_end: i64,
) -> Result<(), String> {
    if let Some(found) = run.ready {
        if found != (0, expected_end) {
            return Err(format!(
                "the writer opened a log holding [{}, {}), but the previous reopen left [0, {expected_end})",
                found.0, found.1
            ));
        }
    }
    for ack in &run.acks {
        if ack.generation != generation || ack.last_offset < ack.base_offset {
            return Err(format!(
                "malformed ack {ack:?} from generation {generation}"
            ));
        }
        if let Some((_, end)) = run.ready {
            if ack.base_offset < end {
                return Err(format!(
                    "ack {ack:?} lies below the log end {end} the writer found at open"
                ));
            }
        }
        let overlap = ledger
            .range(..=ack.last_offset)
            .next_back()
            .filter(|(_, prev)| prev.last_offset >= ack.base_offset);
        if let Some((_, prev)) = overlap {
            return Err(format!("offsets acknowledged twice: {prev:?} and {ack:?}"));
        }
        ledger.insert(ack.base_offset, *ack);
    }
    Ok(())
}

#[test]
fn acknowledged_batches_survive_sigkill() {
    let iterations = env_u64("STRATA_CRASH_ITERATIONS", ITERATIONS_DEFAULT);
    let root_seed = env_u64("STRATA_CRASH_SEED", SEED_DEFAULT);
    let root = SplitMix64::new(root_seed);
    println!("crash recovery: {iterations} iterations, STRATA_CRASH_SEED={root_seed:#x}");
    let started = Instant::now();

    let mut dir: Option<tempfile::TempDir> = None;
    let mut ledger: BTreeMap<i64, Ack> = BTreeMap::new();
    let mut previous: Vec<StoredBatch> = Vec::new();
    let mut generation = 0u64;
    let mut segment_bytes = SEGMENT_BYTES_CHOICES[0];
    let (mut acks_total, mut ack_checks_total, mut survivors_total) = (0usize, 0usize, 0usize);
    let (mut kills_before_ready, mut segments_max, mut size_bytes_max) = (0usize, 0usize, 0u64);

    for iteration in 0..iterations {
        if iteration % ITERATIONS_PER_DIR == 0 {
            dir = Some(
                tempfile::Builder::new()
                    .prefix("strata-crash-")
                    .tempdir()
                    .expect("create a temp dir"),
            );
            ledger.clear();
            previous.clear();
            generation = 0;
            let mut dir_rng = root.fork(u64::MAX - iteration);
            segment_bytes = SEGMENT_BYTES_CHOICES
                [dir_rng.range(0, SEGMENT_BYTES_CHOICES.len() as u64) as usize];
            println!("fresh log directory, segments of {segment_bytes} bytes");
        }
        let tmp = dir.as_mut().expect("a directory is set up above");
        let log_dir = tmp.path().join("p-0");
        let seed = root.fork(iteration).next_u64();
        let mut fail = |what: String| -> ! {
            tmp.disable_cleanup(true);
            panic!(
                "iteration {iteration} (seed {seed:#x}, STRATA_CRASH_SEED={root_seed:#x}): {what}\n\
                 log kept at {}",
                log_dir.display()
            );
        };
        let mut plan = SplitMix64::new(seed).fork(1);
        let kill_at = if plan.one_in(KILL_AFTER_SPAWN_ONE_IN) {
            KillAt::AfterSpawnMs(plan.range(0, KILL_AFTER_SPAWN_MS_MAX))
        } else {
            KillAt::AfterReadyMs(plan.range(KILL_AFTER_READY_MS_MIN, KILL_AFTER_READY_MS_MAX))
        };
        let round = Round {
            log_dir: log_dir.clone(),
            segment_bytes,
            seed,
            killed_generation: generation + 1,
            new_generation: generation + 2,
            clean: iteration % 2 == 0,
        };
        generation += 2;
        let (killed_generation, clean) = (round.killed_generation, round.clean);

        let run = run_child(&round, kill_at).unwrap_or_else(|e| fail(e));
        let expected_end = previous.last().map_or(0, |b| b.last_offset + 1);
        if let Err(e) = record_acks(&mut ledger, &run, killed_generation, expected_end) {
            fail(e);
        }
        if run.ready.is_none() {
            kills_before_ready += 1;
        }

        let (check_ledger, check_previous) = (ledger.clone(), std::mem::take(&mut previous));
        let recovered = with_deadline("recovery and check", VERIFY_TIMEOUT, move || {
            run_local(move || recover_and_check(round, check_ledger, check_previous))
        })
        .unwrap_or_else(|e| fail(e));

        acks_total += run.acks.len();
        ack_checks_total += ledger.len();
        survivors_total += recovered.survivors;
        segments_max = segments_max.max(recovered.segments);
        size_bytes_max = size_bytes_max.max(recovered.size_bytes);
        println!(
            "iter {iteration:>3} seed {seed:#018x} gen {killed_generation:>2} kill {kill_at:?} after {:>3} ms: \
             {:>4} acks, {} survivors, log end {:>6}, {:>3} segments, {} reopen",
            run.alive.as_millis(),
            run.acks.len(),
            recovered.survivors,
            recovered.appended.base_offset,
            recovered.segments,
            if clean { "clean" } else { "unclean" },
        );
        ledger.insert(recovered.appended.base_offset, recovered.appended);
        previous = recovered.batches;
    }
    println!(
        "crash recovery passed: {iterations} iterations (STRATA_CRASH_SEED={root_seed:#x}) in {:.1} s; \
         {acks_total} acks from writers, {ack_checks_total} ack checks after recovery, \
         {survivors_total} unacknowledged survivors, {kills_before_ready} kills before ready, \
         up to {segments_max} segments / {size_bytes_max} bytes per log",
        started.elapsed().as_secs_f64()
    );
}

/// What is written after the last whole batch of the active segment.
#[derive(Clone, Copy, Debug)]
enum Tail {
    /// The first half of the next batch.
    HalfBatch,
    /// The next batch's header and nothing else.
    HeaderOnly,
    /// The whole next batch with its last byte flipped (a torn last sector).
    BadChecksum,
    /// Random bytes.
    Garbage,
}

const TORN_TAIL_SEGMENT_BYTES: u64 = 64 * 1024;
const TORN_TAIL_BATCHES: u64 = 40;
const TORN_TAIL_GARBAGE_BYTES: usize = 3000;

fn torn_tail_config() -> LogConfig {
    LogConfig {
        segment_bytes: TORN_TAIL_SEGMENT_BYTES,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

/// Appends `count` batches of `generation`, rolls to a new empty segment if `roll`,
/// then closes the log (`clean`) or drops it. Returns the batches and the active
/// segment's base offset.
fn fill_log(
    path: PathBuf,
    seed: u64,
    count: u64,
    roll: bool,
    clean: bool,
) -> (Vec<StoredBatch>, i64) {
    run_local(move || async move {
        let log = Log::open(&path, torn_tail_config(), LogEnv::default())
            .await
            .expect("open");
        let mut rng = SplitMix64::new(seed);
        for seq in 0..count {
            let batch = build_batch(&mut rng, 1, seq, now_ms());
            log.append(batch, AppendOptions::new(Durability::Durable))
                .await
                .expect("append");
        }
        if roll {
            log.roll().await.expect("roll");
        }
        let batches = read_whole_log(&log).await.expect("log check");
        let active_base = *log
            .segment_base_offsets()
            .last()
            .expect("a log has segments");
        if clean {
            log.close().await.expect("close");
        } else {
            drop(log);
        }
        (batches, active_base)
    })
}

/// Reopens the log (it must not be fenced) and returns its checked batches; with
/// `append`, then appends one batch of generation 2 and checks it lands at the end.
fn reopen_and_read(path: PathBuf, append: Option<u64>) -> Vec<StoredBatch> {
    run_local(move || async move {
        let log = Log::open(&path, torn_tail_config(), LogEnv::default())
            .await
            .expect("reopen");
        assert_eq!(
            log.fenced_reason(),
            None,
            "a torn tail must not fence the log"
        );
        let end = log.log_end_offset();
        let batches = read_whole_log(&log).await.expect("log check after reopen");
        if let Some(seed) = append {
            let batch = build_batch(&mut SplitMix64::new(seed), 2, 0, now_ms());
            let info = log
                .append(batch, AppendOptions::new(Durability::Durable))
                .await
                .expect("append after recovery");
            assert_eq!(
                info.base_offset, end,
                "an append after recovery lands at the log end"
            );
        }
        drop(log);
        batches
    })
}

/// Writes `tail` right after the last whole batch of the active segment — or, with
/// `roll`, as the first bytes of a freshly rolled, empty segment — then checks that a
/// reopen cuts it and keeps everything else, and that a second reopen agrees.
fn torn_tail_case(tail: Tail, roll: bool, clean: bool, seed: u64) {
    let case = format!(
        "tail {tail:?}{} after a {} stop",
        if roll { " in a new segment" } else { "" },
        if clean { "clean" } else { "unclean" }
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("p-0");
    let (before, active_base) = fill_log(path.clone(), seed, TORN_TAIL_BATCHES, roll, clean);
    assert!(
        active_base > 0,
        "{case}: the log rolled (segment size {TORN_TAIL_SEGMENT_BYTES})"
    );
    let end = before.last().expect("batches were appended").last_offset + 1;
    let data_end: u64 = before
        .iter()
        .filter(|b| b.base_offset >= active_base)
        .map(|b| b.len_bytes as u64)
        .sum();
    if roll {
        assert_eq!(
            (active_base, data_end),
            (end, 0),
            "{case}: the rolled segment is empty"
        );
    }
    let log_file = path.join(format!("{active_base:020}.log"));
    if clean {
        let len = std::fs::metadata(&log_file).expect("active segment").len();
        assert_eq!(
            len, data_end,
            "{case}: a clean close leaves the active segment at its exact size"
        );
    }

    let mut rng = SplitMix64::new(seed).fork(7);
    let mut next = build_batch(&mut rng, 1, TORN_TAIL_BATCHES, now_ms());
    stamp_base_offset(&mut next, end);
    let bytes = match tail {
        Tail::HalfBatch => next[..next.len() / 2].to_vec(),
        Tail::HeaderOnly => next[..BATCH_HEADER_BYTES].to_vec(),
        Tail::BadChecksum => {
            let last = next.len() - 1;
            next[last] ^= 0xff;
            next
        }
        Tail::Garbage => {
            let mut g = vec![0u8; TORN_TAIL_GARBAGE_BYTES];
            rng.fill(&mut g);
            g
        }
    };
    // With `roll` after an unclean stop the new segment's file may not exist yet.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&log_file)
        .expect("open the active segment");
    f.write_all_at(&bytes, data_end)
        .expect("write the torn tail");
    drop(f);

    let after = reopen_and_read(path.clone(), Some(seed ^ 1));
    assert_eq!(
        after, before,
        "{case}: the log ends at the last whole batch"
    );
    let len = std::fs::metadata(&log_file).expect("active segment").len();
    assert!(len >= data_end, "{case}: whole batches stay in the file");

    let again = reopen_and_read(path, None);
    assert_eq!(
        again.len(),
        before.len() + 1,
        "{case}: the second reopen keeps everything"
    );
    assert_eq!(again[..before.len()], before[..], "{case}");
    let last = again[before.len()];
    assert_eq!(
        (last.base_offset, last.generation, last.seq),
        (end, 2, 0),
        "{case}"
    );
}

#[test]
fn torn_tail_is_cut_at_the_last_whole_batch() {
    let tails = [
        Tail::HalfBatch,
        Tail::HeaderOnly,
        Tail::BadChecksum,
        Tail::Garbage,
    ];
    for (i, tail) in tails.into_iter().enumerate() {
        for roll in [false, true] {
            for clean in [false, true] {
                torn_tail_case(tail, roll, clean, 0x7041_1000 + i as u64);
            }
        }
    }
}
