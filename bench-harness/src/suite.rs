//! `strata-bench suite`: a small named set of workloads in the style of OpenMessaging
//! Benchmark, run against strata's native listener (native driver) and its Kafka
//! listener (kafka driver) in one command, beside the machine's limits measured in the
//! same run. Writes per-run JSON and SVG files, `suite.json`, and `suite.md` — a
//! BENCHMARKS.md section with the machine, the date, the exact commands, the results
//! with "% of limit" columns, and links to the plots — and can put that section into
//! BENCHMARKS.md itself (`--update`). Short by default (10 s + 2 s warm-up each), so
//! the whole set takes a few minutes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use crate::driver::{DriverKind, KafkaProperty, Target};
use crate::limits::{self, LimitsArgs, LimitsSummary};
use crate::load::cli::print_result;
use crate::load::payload::SizeRange;
use crate::load::result::LoadResult;
use crate::load::run::run_load;
use crate::load::spec::{LoadSpec, WorkloadKind};
use crate::machine::{today_utc, Machine};
use crate::report::{write_json, Latency};

/// Marks the start of the suite's section in a markdown file.
pub const SECTION_BEGIN: &str = "<!-- strata-bench suite: begin -->";
/// Marks its end.
pub const SECTION_END: &str = "<!-- strata-bench suite: end -->";
/// The raw limit compared with acks=all workloads.
const DURABLE_LIMIT: &str = "write+fdatasync";
/// Prefix of the raw sequential-write patterns (the limit for acks=0/1).
const SEQUENTIAL_LIMIT_PREFIX: &str = "seq write";

/// Arguments of `strata-bench suite`.
#[derive(Args, Debug, Clone)]
pub struct SuiteArgs {
    /// Directory for the results: one JSON and SVG per run, suite.json, suite.md.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// strata's native listener (the native driver's runs are skipped without it).
    #[arg(long)]
    pub native: Option<String>,
    /// A Kafka-protocol listener: strata's, or any broker's (skipped without it).
    #[arg(long)]
    pub kafka: Option<String>,
    /// A directory on the broker's disk (e.g. beside its data dir): the raw limits are
    /// measured there; without it the "% of limit" columns stay empty.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Only these workloads (comma-separated names; see the suite's list).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Warm-up seconds per run.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_seconds: f64,
    /// Backlog of the drain workload, bytes.
    #[arg(long, default_value_t = 1 << 30)]
    pub backlog_bytes: u64,
    /// Multiplies every fixed rate (e.g. 0.01 for a smoke run on a small machine).
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
    /// Seconds per limits pattern and round.
    #[arg(long, default_value_t = 3.0)]
    pub limits_seconds: f64,
    /// Rounds of the limits.
    #[arg(long, default_value_t = 1)]
    pub limits_rounds: usize,
    /// How the broker was started, recorded with the commands (free text).
    #[arg(long)]
    pub broker_command: Option<String>,
    /// Replace the suite's section (between its markers) in this markdown file, e.g.
    /// BENCHMARKS.md; the section is appended when the markers are missing.
    #[arg(long)]
    pub update: Option<PathBuf>,
    /// Pin the benchmark's client threads to these cores in turn.
    #[arg(long, value_delimiter = ',')]
    pub pin_cores: Vec<usize>,
    /// Extra librdkafka property for the kafka runs, `key=value` (repeatable).
    #[arg(long)]
    pub kafka_config: Vec<KafkaProperty>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// One workload of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Named {
    pub name: &'static str,
    pub about: &'static str,
    make: fn(&SuiteArgs) -> LoadSpec,
}

impl Named {
    /// The workload with the suite's durations, sizes and rate scale applied.
    pub fn spec(&self, args: &SuiteArgs) -> LoadSpec {
        let mut s = (self.make)(args);
        s.seconds = args.seconds;
        s.warmup_seconds = args.warmup_seconds;
        s.pin_cores = args.pin_cores.clone();
        s.topic = format!("strata-bench-{}", self.name);
        s
    }
}

/// A fixed rate of `mb` MB/s scaled by `--rate-scale`.
fn scaled_mb(args: &SuiteArgs, mb: f64) -> String {
    format!("{}MB/s", mb * args.rate_scale)
}

fn base(workload: WorkloadKind, partitions: u32, acks: &str) -> LoadSpec {
    LoadSpec {
        workload,
        partitions,
        acks: acks.into(),
        record_bytes: SizeRange::fixed(1024),
        ..LoadSpec::default()
    }
}

/// The named workloads, in the order they run.
pub const SUITE: [Named; 6] = [
    Named {
        name: "max-1p",
        about: "1 partition, max rate, acks=1, 1 KiB",
        make: |_| base(WorkloadKind::E2e, 1, "1"),
    },
    Named {
        name: "max-16p",
        about: "16 partitions, max rate, acks=1, 1 KiB",
        make: |_| base(WorkloadKind::E2e, 16, "1"),
    },
    Named {
        name: "rate-100mbs",
        about: "16 partitions, 100 MB/s fixed rate, acks=1, 1 KiB: end-to-end latency",
        make: |a| LoadSpec {
            rate: scaled_mb(a, 100.0),
            ..base(WorkloadKind::E2e, 16, "1")
        },
    },
    Named {
        name: "durable-1kib",
        about: "1 partition, max rate, acks=all (durable on disk), 1 KiB",
        make: |_| base(WorkloadKind::E2e, 1, "all"),
    },
    Named {
        name: "fanout-3g",
        about: "4 partitions, 3 consumer groups, 20 MB/s fixed rate, acks=1, 1 KiB",
        make: |a| LoadSpec {
            groups: Some(3),
            rate: scaled_mb(a, 20.0),
            ..base(WorkloadKind::Fanout, 4, "1")
        },
    },
    Named {
        name: "drain",
        about: "16 partitions: build a backlog (acks=1), then drain it with 1 consumer",
        make: |a| LoadSpec {
            backlog_bytes: a.backlog_bytes,
            ..base(WorkloadKind::Consume, 16, "1")
        },
    },
];

/// The suite's workloads selected by `--only` (all when empty).
pub fn selected(only: &[String]) -> anyhow::Result<Vec<Named>> {
    if let Some(bad) = only
        .iter()
        .find(|o| !SUITE.iter().any(|n| n.name == o.as_str()))
    {
        let names: Vec<&str> = SUITE.iter().map(|n| n.name).collect();
        bail!(
            "--only {bad}: no such workload (the suite has {})",
            names.join(", ")
        );
    }
    Ok(SUITE
        .iter()
        .filter(|n| only.is_empty() || only.iter().any(|o| o == n.name))
        .copied()
        .collect())
}

/// The limits that bound a run: (disk limit name and MB/s, loopback MB/s).
fn limits_for(
    spec: &LoadSpec,
    limits: Option<&LimitsSummary>,
) -> (Option<(String, f64)>, Option<f64>) {
    let Some(l) = limits else {
        return (None, None);
    };
    let disk = if spec.workload == WorkloadKind::Consume {
        None // reads come from cache; no read limit is measured here
    } else if spec.acks == "all" || spec.acks == "-1" {
        l.mb_per_s(DURABLE_LIMIT)
            .map(|v| (DURABLE_LIMIT.to_string(), v))
    } else {
        l.patterns_mb_per_s
            .iter()
            .filter(|(n, _)| n.starts_with(SEQUENTIAL_LIMIT_PREFIX))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .cloned()
    };
    (disk, Some(l.loopback_mb_per_s))
}

fn pct_of(value: f64, limit: Option<f64>) -> String {
    match limit {
        Some(l) if l > 0.0 => format!("{:.0}%", 100.0 * value / l),
        _ => "-".into(),
    }
}

fn lat_cell(l: &Latency) -> String {
    if l.count == 0 {
        return "-".into();
    }
    format!(
        "{:.0} / {:.0} / {:.0} / {:.0} / {:.0}",
        l.p50_us, l.p99_us, l.p999_us, l.p9999_us, l.max_us
    )
}

/// A path to `file` as seen from the directory of `from` (relative when `file` lies
/// below it, else as given).
fn link(from: &Path, file: &Path) -> String {
    let base = match from.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (b, f) = (
        base.canonicalize().unwrap_or_else(|_| base.to_path_buf()),
        file.canonicalize().unwrap_or_else(|_| file.to_path_buf()),
    );
    f.strip_prefix(&b)
        .map(Path::to_path_buf)
        .unwrap_or(f)
        .display()
        .to_string()
}

/// One finished run of the suite.
struct SuiteRun {
    named: Named,
    spec: LoadSpec,
    target: Target,
    result: LoadResult,
    svg: PathBuf,
    json: PathBuf,
}

/// The markdown section for `runs`, links made relative to `md_path`.
fn markdown(
    args: &SuiteArgs,
    machine: &Machine,
    limits: Option<&LimitsSummary>,
    runs: &[SuiteRun],
    md_path: &Path,
    argv: &str,
) -> String {
    let mut s = String::new();
    s.push_str(SECTION_BEGIN);
    s.push('\n');
    s.push_str(&format!(
        "## Suite: native and Kafka listeners beside the limits ({})\n\n",
        today_utc()
    ));
    s.push_str("Machine:\n\n");
    s.push_str(&machine.markdown());
    s.push_str("\nCommands (`B=target/release/strata-bench`):\n\n");
    if let Some(b) = &args.broker_command {
        s.push_str(&format!("- broker: `{b}`\n"));
    }
    s.push_str(&format!("- suite: `{argv}`\n"));
    s.push_str("- each run below is `$B run` with exactly these flags:\n\n");
    for r in runs
        .iter()
        .filter(|r| r.target.driver == runs[0].target.driver)
    {
        s.push_str(&format!(
            "  - `{}` ({}): `--driver <driver> --brokers <listener> {}`\n",
            r.named.name,
            r.named.about,
            crate::report::shell_join(r.spec.to_args())
        ));
    }
    if let Some(l) = limits {
        s.push_str(&format!(
            "\nRaw limits measured in the same run, before the workloads (`$B limits --dir {} --max-seconds {} --rounds {}`):\n\n",
            args.data_dir.as_deref().map_or("-".into(), |d| d.display().to_string()),
            args.limits_seconds,
            args.limits_rounds
        ));
        s.push_str("| limit | MB/s |\n| --- | --- |\n");
        for (name, mb) in &l.patterns_mb_per_s {
            s.push_str(&format!("| {name} | {mb:.1} |\n"));
        }
        s.push_str(&format!(
            "| loopback TCP 64 KiB | {:.1} |\n",
            l.loopback_mb_per_s
        ));
    } else {
        s.push_str("\nNo limits measured (no `--data-dir`).\n");
    }
    s.push_str(
        "\nMB/s are 10^6 bytes of record values per second: acknowledged over the measured \
         window, received summed over consumer groups (drain: from the first record to the last). \
         Latencies in µs: p50 / p99 / p99.9 / p99.99 / max, publish = intended send → acknowledged, \
         end-to-end = intended send → received. \"% disk\" compares acknowledged MB/s with the raw \
         write+fdatasync limit for acks=all and the best raw sequential write for acks=1; \"% net\" \
         compares the larger of acknowledged and received MB/s with loopback TCP.\n\n",
    );
    s.push_str(
        "| workload | listener | MB/s acked | MB/s received | msgs/s acked | % disk | % net | \
         publish µs | end-to-end µs | sent / acked / received (min) | plot |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in runs {
        let res = &r.result;
        let (disk, net) = limits_for(&r.spec, limits);
        let received = if res.groups.is_empty() {
            "-".into()
        } else {
            format!("{:.1}", res.receive_mb_per_s)
        };
        let counts = format!(
            "{} / {} / {}{}",
            res.counts.sent,
            res.counts.acked,
            if res.groups.is_empty() {
                "-".into()
            } else {
                res.counts.received.to_string()
            },
            if res.shortfalls().is_empty() {
                ""
            } else {
                " ⚠"
            }
        );
        s.push_str(&format!(
            "| {} | {} | {:.1} | {} | {:.0} | {} | {} | {} | {} | {} | [svg]({}) |\n",
            r.named.name,
            r.target.driver,
            res.publish_mb_per_s,
            received,
            res.publish_msgs_per_s,
            pct_of(res.publish_mb_per_s, disk.map(|d| d.1)),
            pct_of(res.publish_mb_per_s.max(res.receive_mb_per_s), net),
            lat_cell(&res.publish),
            lat_cell(&res.e2e),
            counts,
            link(md_path, &r.svg)
        ));
    }
    let warnings: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r.result
                .shortfalls()
                .into_iter()
                .map(move |w| format!("- {} {}: {w}", r.named.name, r.target.driver))
        })
        .collect();
    if !warnings.is_empty() {
        s.push_str("\nShortfalls (⚠):\n\n");
        s.push_str(&warnings.join("\n"));
        s.push('\n');
    }
    s.push_str(&format!(
        "\nPer-run JSON (every figure, percentile curves, timeline, full configuration): `{}`.\n",
        link(md_path, &args.out_dir.join("suite.json"))
    ));
    s.push_str(SECTION_END);
    s.push('\n');
    s
}

/// `text` with the suite's section replaced by `section` (appended when absent).
pub fn replace_section(text: &str, section: &str) -> String {
    if let (Some(b), Some(e)) = (text.find(SECTION_BEGIN), text.find(SECTION_END)) {
        if b < e {
            let mut end = e + SECTION_END.len();
            if text[end..].starts_with('\n') {
                end += 1;
            }
            return format!("{}{}{}", &text[..b], section, &text[end..]);
        }
    }
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
    }
    out.push_str(section);
    out
}

/// `strata-bench suite`.
pub fn run(args: SuiteArgs) -> anyhow::Result<()> {
    let named = selected(&args.only)?;
    let mut targets = Vec::new();
    for (driver, addr) in [
        (DriverKind::Native, &args.native),
        (DriverKind::Kafka, &args.kafka),
    ] {
        if let Some(a) = addr {
            targets.push(Target {
                driver,
                brokers: a.clone(),
                kafka_config: args.kafka_config.clone(),
            });
        }
    }
    if targets.is_empty() {
        bail!("give --native ADDR, --kafka ADDR or both");
    }
    for n in &named {
        n.spec(&args)
            .validate()
            .with_context(|| format!("workload {}", n.name))?;
    }
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("create {}", args.out_dir.display()))?;
    let argv = crate::report::command_line();
    let machine = Machine::describe(args.data_dir.as_deref());

    let limits = match &args.data_dir {
        Some(dir) => {
            println!("== limits in {}", dir.display());
            let l = limits::measure(&LimitsArgs {
                dir: dir.clone(),
                write_bytes: 65536,
                total_bytes: 1 << 30,
                max_seconds: args.limits_seconds,
                depths: vec![1, 4],
                file_bytes: 1 << 30,
                rounds: args.limits_rounds,
                skip_dma_probe: false,
                json: None,
            })?;
            l.table.print();
            Some(l)
        }
        None => None,
    };

    let mut runs = Vec::new();
    for n in &named {
        let spec = n.spec(&args);
        for t in &targets {
            println!("\n== {} ({}) via {}", n.name, n.about, t.label());
            let result = run_load(t, &spec, args.quiet)
                .with_context(|| format!("workload {} against {}", n.name, t.label()))?;
            print_result(&result);
            let stem = format!("{}-{}", n.name, t.driver);
            let svg = args.out_dir.join(format!("{stem}.svg"));
            let json = args.out_dir.join(format!("{stem}.json"));
            result.write_svg(&svg)?;
            std::fs::write(
                &json,
                serde_json::to_string_pretty(&result.to_json())? + "\n",
            )
            .with_context(|| format!("write {}", json.display()))?;
            runs.push(SuiteRun {
                named: *n,
                spec: spec.clone(),
                target: t.clone(),
                result,
                svg,
                json,
            });
        }
    }

    let suite_md = args.out_dir.join("suite.md");
    let section = markdown(&args, &machine, limits.as_ref(), &runs, &suite_md, &argv);
    std::fs::write(&suite_md, &section).with_context(|| format!("write {}", suite_md.display()))?;
    println!("\nsuite section written to {}", suite_md.display());
    if let Some(md) = &args.update {
        let section = markdown(&args, &machine, limits.as_ref(), &runs, md, &argv);
        let old = std::fs::read_to_string(md).unwrap_or_default();
        std::fs::write(md, replace_section(&old, &section))
            .with_context(|| format!("write {}", md.display()))?;
        println!("suite section updated in {}", md.display());
    }
    // Each run's full JSON is its own file; here, the headline figures and the files.
    let runs_json: Vec<Value> = runs
        .iter()
        .map(|r| {
            let res = &r.result;
            json!({
                "name": r.named.name,
                "about": r.named.about,
                "target": r.target.to_json(),
                "args": r.spec.to_args(),
                "publish_mb_per_s": res.publish_mb_per_s,
                "receive_mb_per_s": res.receive_mb_per_s,
                "publish_msgs_per_s": res.publish_msgs_per_s,
                "publish": res.publish.to_json(),
                "e2e": res.e2e.to_json(),
                "sent": res.counts.sent,
                "acked": res.counts.acked,
                "received_min": res.counts.received,
                "shortfalls": res.shortfalls(),
                "json": r.json.display().to_string(),
                "svg": r.svg.display().to_string(),
            })
        })
        .collect();
    write_json(
        Some(&args.out_dir.join("suite.json")),
        &json!({
            "benchmark": "suite",
            "command": argv,
            "date": today_utc(),
            "machine": machine.to_json(),
            "broker_command": args.broker_command,
            "limits": limits.as_ref().map(|l| l.json.clone()),
            "runs": runs_json,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SuiteArgs,
    }

    fn args(extra: &[&str]) -> SuiteArgs {
        let mut v = vec!["x", "--out-dir", "/tmp/x"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap().args
    }

    #[test]
    fn every_workload_is_valid_and_short_by_default() {
        let a = args(&[]);
        for n in &SUITE {
            let s = n.spec(&a);
            s.validate().unwrap_or_else(|e| panic!("{}: {e}", n.name));
            assert_eq!((s.seconds, s.warmup_seconds), (10.0, 2.0), "{}", n.name);
        }
        let names: Vec<&str> = SUITE.iter().map(|n| n.name).collect();
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup);
    }

    #[test]
    fn rate_scale_and_selection() {
        let a = args(&["--rate-scale", "0.01", "--only", "rate-100mbs,drain"]);
        let sel = selected(&a.only).unwrap();
        assert_eq!(sel.len(), 2);
        assert_eq!(sel[0].spec(&a).rate, "1MB/s");
        assert!(selected(&["nope".into()]).is_err());
    }

    #[test]
    fn section_is_replaced_between_markers_or_appended() {
        let section = format!("{SECTION_BEGIN}\nnew\n{SECTION_END}\n");
        let text = format!("# t\n\nbefore\n\n{SECTION_BEGIN}\nold\n{SECTION_END}\nafter\n");
        assert_eq!(
            replace_section(&text, &section),
            format!("# t\n\nbefore\n\n{section}after\n")
        );
        assert_eq!(
            replace_section("# t\n", &section),
            format!("# t\n\n{section}")
        );
    }

    #[test]
    fn limits_by_acks() {
        let l = LimitsSummary {
            patterns_mb_per_s: vec![
                ("seq write qd1".into(), 100.0),
                ("seq write qd4".into(), 300.0),
                ("write+fdatasync".into(), 50.0),
            ],
            loopback_mb_per_s: 2000.0,
            table: crate::report::Table::new(&["x"]),
            json: json!({}),
        };
        let all = base(WorkloadKind::E2e, 1, "all");
        let one = base(WorkloadKind::E2e, 1, "1");
        let drain = base(WorkloadKind::Consume, 1, "1");
        assert_eq!(
            limits_for(&all, Some(&l)).0,
            Some(("write+fdatasync".into(), 50.0))
        );
        assert_eq!(
            limits_for(&one, Some(&l)).0,
            Some(("seq write qd4".into(), 300.0))
        );
        assert_eq!(limits_for(&drain, Some(&l)), (None, Some(2000.0)));
        assert_eq!(pct_of(25.0, Some(50.0)), "50%");
        assert_eq!(pct_of(25.0, None), "-");
    }
}
