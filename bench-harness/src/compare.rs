//! `strata-bench compare`: the same workload against two targets — each a broker and
//! the driver to reach it, so strata's Kafka listener can be set beside its native
//! one, or strata beside another broker — alternating A B A B over several rounds so
//! drift (page cache, thermal, neighbours) falls on both alike, then each figure's
//! median for A and for B and the ratio A/B.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::driver::{DriverKind, KafkaProperty, Target};
use crate::load::result::LoadResult;
use crate::load::run::run_load;
use crate::load::spec::LoadSpec;
use crate::plot::{self, percentile_curve, Curve, Line};
use crate::report::{latency_histogram, median, write_json, Latency, Table};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Target A: broker address.
    #[arg(long)]
    a: String,
    /// Target A's driver: native or kafka.
    #[arg(long, value_enum, default_value = "native")]
    a_driver: DriverKind,
    /// Target B: broker address.
    #[arg(long)]
    b: String,
    /// Target B's driver: native or kafka.
    #[arg(long, value_enum, default_value = "native")]
    b_driver: DriverKind,
    /// Extra librdkafka property for kafka targets, `key=value` (repeatable).
    #[arg(long)]
    kafka_config: Vec<KafkaProperty>,
    /// Rounds; each runs the workload once against A, then once against B.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[command(flatten)]
    workload: LoadSpec,
    /// Write every round and the medians as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write A's and B's latency curves (all rounds) and first-round throughput as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

/// One figure compared: the median over A's rounds, over B's rounds, and A/B.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FigureRow {
    /// What is compared, with its unit.
    pub figure: &'static str,
    /// Median of A's rounds; `None` when no round of A measured it.
    pub a: Option<f64>,
    /// Median of B's rounds; `None` when no round of B measured it.
    pub b: Option<f64>,
    /// `a / b`; `None` when either is missing or `b` is zero.
    pub ratio: Option<f64>,
}

/// A figure's name and how to read it from one run (`None`: not measured then).
type Figure = (&'static str, fn(&LoadResult) -> Option<f64>);

/// A latency percentile, absent when the run recorded no latency at all.
fn pct(l: &Latency, f: fn(&Latency) -> f64) -> Option<f64> {
    (l.count > 0).then(|| f(l))
}

const FIGURES: [Figure; 9] = [
    ("MB/s acked", |r| Some(r.publish_mb_per_s)),
    ("MB/s received", |r| {
        (!r.groups.is_empty()).then_some(r.receive_mb_per_s)
    }),
    ("msgs/s acked", |r| Some(r.publish_msgs_per_s)),
    ("publish p50 us", |r| pct(&r.publish, |l| l.p50_us)),
    ("publish p99 us", |r| pct(&r.publish, |l| l.p99_us)),
    ("publish p99.9 us", |r| pct(&r.publish, |l| l.p999_us)),
    ("e2e p50 us", |r| pct(&r.e2e, |l| l.p50_us)),
    ("e2e p99 us", |r| pct(&r.e2e, |l| l.p99_us)),
    ("e2e p99.9 us", |r| pct(&r.e2e, |l| l.p999_us)),
];

/// The median of one figure over `runs`, skipping runs that did not measure it.
fn median_of(runs: &[LoadResult], get: fn(&LoadResult) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = runs
        .iter()
        .filter_map(get)
        .filter(|v| v.is_finite())
        .collect();
    (!values.is_empty()).then(|| median(&values))
}

/// Per figure, the median of A's rounds, the median of B's rounds and their ratio.
pub fn compare_rows(a: &[LoadResult], b: &[LoadResult]) -> Vec<FigureRow> {
    FIGURES
        .iter()
        .map(|&(figure, get)| {
            let (ma, mb) = (median_of(a, get), median_of(b, get));
            let ratio = match (ma, mb) {
                (Some(x), Some(y)) if y != 0.0 => Some(x / y),
                _ => None,
            };
            FigureRow {
                figure,
                a: ma,
                b: mb,
                ratio,
            }
        })
        .collect()
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.decimals$}"))
}

/// The comparison as a table: figure, median A, median B, A/B.
pub fn compare_table(rows: &[FigureRow], rounds: usize) -> Table {
    let (ha, hb) = (
        format!("A median ({rounds} rounds)"),
        format!("B median ({rounds} rounds)"),
    );
    let mut t = Table::new(&["figure", &ha, &hb, "A/B"]);
    for r in rows {
        let decimals = if r.figure.starts_with("MB/s") { 1 } else { 0 };
        t.row(vec![
            r.figure.to_string(),
            cell(r.a, decimals),
            cell(r.b, decimals),
            cell(r.ratio, 3),
        ]);
    }
    t
}

fn rows_json(rows: &[FigureRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| json!({ "figure": r.figure, "a": r.a, "b": r.b, "ratio_a_over_b": r.ratio }))
            .collect(),
    )
}

/// All rounds' histograms of one target merged (for the plot).
fn merged(runs: &[LoadResult], get: fn(&LoadResult) -> &Histogram<u64>) -> Histogram<u64> {
    let mut h = latency_histogram();
    for r in runs {
        // Same bounds everywhere: adding cannot fail.
        let _ = h.add(get(r));
    }
    h
}

/// The comparison's plot: both targets' latency curves and first-round throughput.
fn write_compare_svg(
    path: &std::path::Path,
    targets: [(&str, &Target, &[LoadResult]); 2],
) -> anyhow::Result<()> {
    let mut curves = Vec::new();
    let mut lines = Vec::new();
    for (label, target, runs) in targets {
        let prefix = format!("{label} {} ", target.label());
        curves.push(Curve {
            label: format!("{prefix}publish"),
            points: percentile_curve(&merged(runs, |r| &r.publish_hist)),
        });
        let e2e = merged(runs, |r| &r.e2e_hist);
        if !e2e.is_empty() {
            curves.push(Curve {
                label: format!("{prefix}end-to-end"),
                points: percentile_curve(&e2e),
            });
        }
        if let Some(first) = runs.first() {
            let (_, l) = first.plot_data(&prefix);
            lines.extend(l.into_iter().map(|l: Line| l));
        }
    }
    plot::write_svg(path, "compare", &curves, &lines)
}

/// `strata-bench compare`: A B A B … for `--rounds` rounds, then the medians table.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    args.workload.validate()?;
    let target = |driver, brokers: &str| Target {
        driver,
        brokers: brokers.to_string(),
        kafka_config: args.kafka_config.clone(),
    };
    let (ta, tb) = (
        target(args.a_driver, &args.a),
        target(args.b_driver, &args.b),
    );
    let (mut a_runs, mut b_runs) = (Vec::new(), Vec::new());
    let mut rounds_json = Vec::new();
    for round in 1..=args.rounds {
        for (label, t, runs) in [("A", &ta, &mut a_runs), ("B", &tb, &mut b_runs)] {
            let r = run_load(t, &args.workload, args.quiet)
                .with_context(|| format!("round {round}, target {label} ({})", t.label()))?;
            println!(
                "round {round}/{} {label} {}: {:.1} MB/s acked, publish {} us, e2e {} us",
                args.rounds,
                t.label(),
                r.publish_mb_per_s,
                r.publish.triple(),
                r.e2e.triple()
            );
            for w in r.shortfalls() {
                eprintln!("warning: round {round} {label}: {w}");
            }
            rounds_json.push(json!({
                "round": round, "target": label, "result": r.to_json(),
            }));
            runs.push(r);
        }
    }
    let rows = compare_rows(&a_runs, &b_runs);
    println!();
    println!("{}", args.workload.describe());
    println!("A = {}, B = {}", ta.label(), tb.label());
    compare_table(&rows, args.rounds).print();
    if let Some(path) = &args.svg {
        write_compare_svg(path, [("A", &ta, &a_runs), ("B", &tb, &b_runs)])?;
        println!("SVG written to {}", path.display());
    }
    write_json(
        args.json.as_deref(),
        &json!({
            "benchmark": "compare",
            "command": crate::report::command_line(),
            "a": ta.to_json(),
            "b": tb.to_json(),
            "rounds": args.rounds,
            "workload": args.workload.to_json(),
            "runs": rounds_json,
            "medians": rows_json(&rows),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::Counts;
    use crate::load::result::GroupResult;

    fn lat(p50: f64, p99: f64, p999: f64) -> Latency {
        Latency {
            count: 100,
            p50_us: p50,
            p99_us: p99,
            p999_us: p999,
            max_us: p999 * 2.0,
            ..Latency::default()
        }
    }

    fn fake(mb: f64, publish: Latency, e2e: Latency) -> LoadResult {
        let counts = Counts {
            sent: 100,
            acked: 100,
            received: 100,
        };
        LoadResult {
            publish_mb_per_s: mb,
            publish_msgs_per_s: mb * 1000.0,
            receive_mb_per_s: mb / 2.0,
            publish,
            e2e,
            counts,
            groups: vec![GroupResult {
                name: "assigned".into(),
                counts,
                ..GroupResult::default()
            }],
            ..LoadResult::default()
        }
    }

    #[test]
    fn medians_and_ratios_per_figure() {
        let a = [
            fake(100.0, lat(10.0, 20.0, 30.0), lat(50.0, 60.0, 70.0)),
            fake(300.0, lat(30.0, 40.0, 90.0), lat(10.0, 80.0, 70.0)),
            fake(200.0, lat(20.0, 30.0, 60.0), lat(30.0, 70.0, 70.0)),
        ];
        let b = [
            fake(50.0, lat(40.0, 80.0, 120.0), lat(60.0, 140.0, 35.0)),
            fake(150.0, lat(20.0, 40.0, 120.0), lat(20.0, 140.0, 35.0)),
        ];
        let rows = compare_rows(&a, &b);
        let names: Vec<&str> = rows.iter().map(|r| r.figure).collect();
        assert_eq!(
            names,
            [
                "MB/s acked",
                "MB/s received",
                "msgs/s acked",
                "publish p50 us",
                "publish p99 us",
                "publish p99.9 us",
                "e2e p50 us",
                "e2e p99 us",
                "e2e p99.9 us",
            ]
        );
        // A: odd count, middle value; B: even count, mean of the middle two.
        let expect = [
            (200.0, 100.0, 2.0),
            (100.0, 50.0, 2.0),
            (200_000.0, 100_000.0, 2.0),
            (20.0, 30.0, 20.0 / 30.0),
            (30.0, 60.0, 0.5),
            (60.0, 120.0, 0.5),
            (30.0, 40.0, 0.75),
            (70.0, 140.0, 0.5),
            (70.0, 35.0, 2.0),
        ];
        for (row, (ea, eb, er)) in rows.iter().zip(expect) {
            assert_eq!(row.a, Some(ea), "{}", row.figure);
            assert_eq!(row.b, Some(eb), "{}", row.figure);
            let r = row.ratio.expect("ratio");
            assert!((r - er).abs() < 1e-12, "{}: {r} != {er}", row.figure);
        }
    }

    #[test]
    fn missing_latency_and_zero_denominator_have_no_ratio() {
        // A's second round received nothing: its e2e figures come from round one only.
        let a = [
            fake(10.0, lat(1.0, 2.0, 3.0), lat(5.0, 6.0, 7.0)),
            fake(30.0, lat(3.0, 4.0, 5.0), Latency::default()),
        ];
        // B measured nothing at all.
        let b = [fake(0.0, Latency::default(), Latency::default())];
        let rows = compare_rows(&a, &b);
        assert_eq!(rows[0].a, Some(20.0));
        assert_eq!(rows[0].b, Some(0.0));
        assert_eq!(rows[0].ratio, None, "division by a zero throughput");
        assert_eq!(rows[6].a, Some(5.0), "empty e2e round skipped");
        assert!(rows[3..].iter().all(|r| r.b.is_none() && r.ratio.is_none()));

        let text = compare_table(&rows, 2).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("figure"), "{text}");
        assert!(lines[0].contains("A median (2 rounds)"), "{text}");
        assert!(lines[2].starts_with("MB/s acked"), "{text}");
        assert!(
            lines[2].contains("20.0") && lines[2].ends_with('-'),
            "{text}"
        );
        assert!(lines[5].contains("2") && lines[5].ends_with('-'), "{text}");
        assert_eq!(lines.len(), 2 + FIGURES.len());
    }
}
