//! Keeps every `strata-bench` subcommand working: each runs at a tiny size and must
//! exit 0 and print its table. Nothing here looks at a number — benchmarks never fail
//! on speed.

use std::path::Path;
use std::process::Command;

fn run_bench(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("start strata-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "strata-bench {args:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_contains(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "output lacks {n:?}:\n{text}");
    }
}

fn dir_is_empty_but_for_probe(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .expect("list the bench dir")
        .filter_map(Result::ok)
        .all(|e| e.file_name().to_string_lossy().starts_with('.'))
}

#[test]
fn limits_prints_its_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("limits.json");
    let out = run_bench(
        &[
            "limits",
            "--total-bytes",
            "4194304",
            "--max-seconds",
            "1",
            "--rounds",
            "1",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
        dir.path(),
    );
    assert_contains(
        &out,
        &[
            "pattern",
            "MB/s",
            "fdatasync p50/p99/p99.9 us",
            "write+fdatasync",
            "loopback TCP 64 KiB",
        ],
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("json");
    assert_eq!(v["bench"], "limits");
    assert!(v["loopback_tcp"]["mb_per_s_median"]
        .as_f64()
        .is_some_and(|m| m > 0.0));
}

#[test]
fn engine_append_prints_its_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_bench(
        &[
            "engine-append",
            "--partitions",
            "1,4",
            "--flush",
            "every,10ms",
            "--seconds",
            "0.5",
            "--warmup-ms",
            "100",
            "--rounds",
            "1",
            "--segment-bytes",
            "8388608",
        ],
        dir.path(),
    );
    assert_contains(
        &out,
        &[
            "strata MB/s",
            "limit MB/s",
            "ratio",
            "durable p50/p99/p99.9 us",
            "raw fdatasync p50/p99/p99.9 us",
            "every x1",
            "every x4",
            "10ms x1",
            "10ms x4",
        ],
    );
    assert!(
        dir_is_empty_but_for_probe(dir.path()),
        "engine-append left files behind"
    );
}

#[test]
fn recovery_prints_its_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_bench(
        &[
            "recovery",
            "--size-gib",
            "0.05",
            "--segment-bytes",
            "16777216",
            "--rounds",
            "1",
        ],
        dir.path(),
    );
    assert_contains(
        &out,
        &[
            "reopen after SIGKILL, indexes intact",
            "reopen after SIGKILL, indexes deleted",
            "raw O_DIRECT sequential read",
        ],
    );
    assert!(
        dir_is_empty_but_for_probe(dir.path()),
        "recovery left files behind"
    );
}

#[test]
fn idle_partitions_prints_its_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_bench(
        &[
            "idle-partitions",
            "--count",
            "200",
            "--segment-bytes",
            "1048576",
        ],
        dir.path(),
    );
    assert_contains(
        &out,
        &[
            "RSS growth",
            "per partition",
            "open file descriptors growth",
            "Log::heap_bytes() sum",
        ],
    );
}

/// `compare` needs two brokers to run; without one, check its flags are wired and that
/// bad parameters are refused before any connection is tried.
#[test]
fn compare_flags_and_validation_without_a_broker() {
    let bench = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_strata-bench"))
            .args(args)
            .output()
            .expect("start strata-bench")
    };
    let help = bench(&["compare", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert_contains(
        &text,
        &[
            "--a <A>",
            "--a-driver",
            "--b <B>",
            "--b-driver",
            "--kafka-config",
            "--rounds",
            "--workload",
            "--topic",
            "--topics",
            "--partitions",
            "--producers",
            "--consumers",
            "--groups",
            "--record-bytes",
            "--keys",
            "--rate",
            "--seconds",
            "--warmup-seconds",
            "--messages",
            "--backlog-bytes",
            "--acks",
            "--batch-bytes",
            "--linger-ms",
            "--pin-cores",
            "--json",
            "--svg",
            "--quiet",
        ],
    );
    // Port 9 (discard) is never a broker here; each call must fail before connecting.
    for (extra, needle) in [
        (&["--rounds", "0"][..], "--rounds must be at least 1"),
        (
            &["--record-bytes", "4"][..],
            "--record-bytes must be at least",
        ),
        (&["--rate", "fast"][..], "--rate fast"),
    ] {
        let mut args = vec!["compare", "--a", "127.0.0.1:9", "--b", "127.0.0.1:9"];
        args.extend_from_slice(extra);
        let out = bench(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
}

/// `run` and `suite` without a broker: their flags are wired, and parameters no run
/// can use are refused before any connection is tried.
#[test]
fn run_and_suite_flags_and_validation_without_a_broker() {
    let bench = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_strata-bench"))
            .args(args)
            .output()
            .expect("start strata-bench")
    };
    let help = bench(&["run", "--help"]);
    assert!(help.status.success());
    assert_contains(
        &String::from_utf8_lossy(&help.stdout),
        &[
            "--driver",
            "--brokers",
            "--workload",
            "produce",
            "fanout",
            "--rate",
            "--svg",
            "--quiet",
        ],
    );
    let help = bench(&["suite", "--help"]);
    assert!(help.status.success());
    assert_contains(
        &String::from_utf8_lossy(&help.stdout),
        &[
            "--out-dir",
            "--native",
            "--kafka",
            "--data-dir",
            "--only",
            "--update",
        ],
    );
    // `native-e2e` is still the same command.
    assert!(bench(&["native-e2e", "--help"]).status.success());
    for (args, needle) in [
        (
            &["run", "--workload", "fanout", "--groups", "0"][..],
            "--groups",
        ),
        (&["run", "--acks", "2"][..], "--acks must be 0, 1 or all"),
        (&["run", "--pin-cores", "100000"][..], "--pin-cores"),
        (&["suite", "--out-dir", "/nonexistent"][..], "--native"),
        (
            &[
                "suite",
                "--out-dir",
                "/x",
                "--native",
                "a:1",
                "--only",
                "nope",
            ][..],
            "no such workload",
        ),
    ] {
        let mut full = args.to_vec();
        if args[0] == "run" {
            full.extend_from_slice(&["--brokers", "127.0.0.1:9"]);
        }
        let out = bench(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{full:?} succeeded");
        assert!(
            stderr.contains(needle),
            "{full:?}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
}
