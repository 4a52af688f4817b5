//! The load runner against a real broker — `strata serve`, started per test on free
//! ports with a temp data dir, reached through its native listener (native driver)
//! and its Kafka listener (kafka driver): sent, acknowledged and received counts match
//! for every workload (per group for fan-out, the whole backlog for a drain), and the
//! `run`, `compare` and `suite` commands produce their table, JSON, SVG and markdown.
//! Sizes are tiny; nothing here looks at a speed.

use std::path::Path;
use std::process::{Command, Output};

use strata_bench::driver::{DriverKind, Target};
use strata_bench::load::payload::KeyDistribution;
use strata_bench::load::run::run_load;
use strata_bench::load::spec::{LoadSpec, WorkloadKind};
use strata_tests::broker::TestBroker;

fn target(driver: DriverKind, brokers: String) -> Target {
    Target {
        driver,
        brokers,
        kafka_config: Vec::new(),
    }
}

fn counted(workload: WorkloadKind, messages: u64) -> LoadSpec {
    LoadSpec {
        workload,
        partitions: 4,
        producers: 2,
        consumers: 2,
        messages: Some(messages),
        warmup_seconds: 0.0,
        acks: "all".into(),
        keys: KeyDistribution::RoundRobin,
        ..LoadSpec::default()
    }
}

/// Every workload through `driver`: counts must match exactly.
fn check_accounting(t: &Target) {
    let label = t.label();
    let produce = run_load(t, &counted(WorkloadKind::Produce, 4_000), true)
        .unwrap_or_else(|e| panic!("produce via {label}: {e:#}"));
    assert_eq!(
        (produce.counts.sent, produce.counts.acked),
        (4_000, 4_000),
        "{label}"
    );
    assert!(
        produce.shortfalls().is_empty(),
        "{label}: {:?}",
        produce.shortfalls()
    );

    let e2e = run_load(t, &counted(WorkloadKind::E2e, 10_000), true)
        .unwrap_or_else(|e| panic!("e2e via {label}: {e:#}"));
    let c = e2e.counts;
    assert_eq!(
        (c.sent, c.acked, c.received),
        (10_000, 10_000, 10_000),
        "{label}"
    );
    assert_eq!(e2e.e2e.count, 10_000, "{label}: every receipt measured");
    assert!(
        e2e.shortfalls().is_empty(),
        "{label}: {:?}",
        e2e.shortfalls()
    );

    let fan = LoadSpec {
        groups: Some(3),
        ..counted(WorkloadKind::Fanout, 3_000)
    };
    let fan = run_load(t, &fan, true).unwrap_or_else(|e| panic!("fanout via {label}: {e:#}"));
    assert_eq!(fan.groups.len(), 3, "{label}");
    for g in &fan.groups {
        let c = g.counts;
        assert_eq!(
            (c.sent, c.acked, c.received),
            (3_000, 3_000, 3_000),
            "{label} group {}",
            g.name
        );
    }
    assert!(
        fan.shortfalls().is_empty(),
        "{label}: {:?}",
        fan.shortfalls()
    );

    let drain = LoadSpec {
        record_bytes: "1000".parse().expect("size"),
        backlog_bytes: 5_000_000,
        messages: None,
        ..counted(WorkloadKind::Consume, 1)
    };
    let drain = run_load(t, &drain, true).unwrap_or_else(|e| panic!("drain via {label}: {e:#}"));
    let c = drain.counts;
    assert_eq!(
        (c.sent, c.acked, c.received),
        (5_000, 5_000, 5_000),
        "{label}"
    );
    assert!(drain.groups[0].drain_secs.is_some(), "{label}");
}

#[test]
fn native_driver_counts_match_for_every_workload() {
    let broker = TestBroker::start();
    check_accounting(&target(DriverKind::Native, broker.addr()));
}

#[test]
fn kafka_driver_counts_match_for_every_workload() {
    let broker = TestBroker::start();
    check_accounting(&target(DriverKind::Kafka, broker.kafka_addr()));
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args(args)
        .output()
        .expect("start strata-bench")
}

fn ok(args: &[&str]) -> (String, String) {
    let out = bench(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "strata-bench {args:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("json written")).expect("valid json")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn run_compare_and_suite_commands_write_their_reports() {
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (native, kafka) = (broker.addr(), broker.kafka_addr());

    // run: table, progress line, JSON with the configuration, SVG.
    let (j, svg) = (dir.path().join("run.json"), dir.path().join("run.svg"));
    let (out, err) = ok(&[
        "run",
        "--brokers",
        &native,
        "--workload",
        "e2e",
        "--rate",
        "2MB/s",
        "--seconds",
        "1.5",
        "--warmup-seconds",
        "0",
        "--record-bytes",
        "100..1000",
        "--json",
        s(&j),
        "--svg",
        s(&svg),
    ]);
    for needle in [
        "MB/s",
        "msgs/s",
        "p99.99 us",
        "publish",
        "end-to-end",
        "counts: sent",
    ] {
        assert!(out.contains(needle), "run output lacks {needle:?}:\n{out}");
    }
    assert!(err.contains("[    1 s] sent"), "no progress line:\n{err}");
    let v = json(&j);
    assert_eq!(v["workload"]["workload"], "e2e");
    assert_eq!(v["workload"]["record_bytes"], "100..1000");
    assert_eq!(v["target"]["driver"], "native");
    assert!(v["publish"]["percentile_curve"]
        .as_array()
        .is_some_and(|c| !c.is_empty()));
    assert!(v["timeline"].as_array().is_some_and(|t| !t.is_empty()));
    assert!(std::fs::read_to_string(&svg)
        .expect("svg")
        .starts_with("<svg"));

    // compare: strata's native listener against its Kafka listener.
    let cj = dir.path().join("compare.json");
    let (out, _) = ok(&[
        "compare",
        "--a",
        &native,
        "--a-driver",
        "native",
        "--b",
        &kafka,
        "--b-driver",
        "kafka",
        "--rounds",
        "1",
        "--messages",
        "2000",
        "--warmup-seconds",
        "0",
        "--quiet",
        "--json",
        s(&cj),
    ]);
    assert!(
        out.contains("A = native@") && out.contains("B = kafka@"),
        "{out}"
    );
    assert_eq!(json(&cj)["b"]["driver"], "kafka");

    // suite: every named workload against both listeners, beside tiny limits.
    let (out_dir, md) = (dir.path().join("suite"), dir.path().join("BENCH.md"));
    std::fs::write(&md, "# benchmarks\n\nkept\n").expect("md");
    ok(&[
        "suite",
        "--out-dir",
        s(&out_dir),
        "--native",
        &native,
        "--kafka",
        &kafka,
        "--data-dir",
        s(dir.path()),
        "--seconds",
        "0.5",
        "--warmup-seconds",
        "0",
        "--backlog-bytes",
        "2000000",
        "--rate-scale",
        "0.01",
        "--limits-seconds",
        "0.2",
        "--quiet",
        "--update",
        s(&md),
    ]);
    let text = std::fs::read_to_string(&md).expect("md updated");
    assert!(text.starts_with("# benchmarks\n\nkept\n"), "{text}");
    for needle in [
        strata_bench::suite::SECTION_BEGIN,
        "| max-1p | native |",
        "| drain | kafka |",
        "write+fdatasync",
        "suite/max-1p-native.svg",
    ] {
        assert!(text.contains(needle), "section lacks {needle:?}:\n{text}");
    }
    for n in strata_bench::suite::SUITE {
        for d in ["native", "kafka"] {
            assert!(out_dir.join(format!("{}-{d}.svg", n.name)).is_file());
        }
    }
    assert_eq!(
        json(&out_dir.join("suite.json"))["runs"]
            .as_array()
            .map(Vec::len),
        Some(12)
    );
}
