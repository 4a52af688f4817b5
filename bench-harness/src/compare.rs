//! `strata-bench compare`: the same native end-to-end workload against two targets,
//! alternating A B A B over several rounds so drift (page cache, thermal, neighbours)
//! falls on both alike, then each figure's median for A and for B and the ratio A/B.
//! The way to show strata beside a peer, or a change beside main.

use anyhow::bail;
use clap::Args;
use serde_json::{json, Value};

use crate::native_e2e::{run_once, E2eResult, E2eWorkload};
use crate::report::{median, write_json, Latency, Table};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Target A: native protocol broker address.
    #[arg(long)]
    a: String,
    /// Target B: native protocol broker address.
    #[arg(long)]
    b: String,
    /// Rounds; each runs the workload once against A, then once against B.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[command(flatten)]
    workload: E2eWorkload,
    /// Write every round and the medians as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
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
type Figure = (&'static str, fn(&E2eResult) -> Option<f64>);

/// A latency percentile, absent when the run recorded no latency at all.
fn pct(l: &Latency, f: fn(&Latency) -> f64) -> Option<f64> {
    (l.count > 0).then(|| f(l))
}

const FIGURES: [Figure; 7] = [
    ("MB/s acked", |r| Some(r.mb_per_s)),
    ("publish p50 us", |r| pct(&r.publish, |l| l.p50_us)),
    ("publish p99 us", |r| pct(&r.publish, |l| l.p99_us)),
    ("publish p99.9 us", |r| pct(&r.publish, |l| l.p999_us)),
    ("e2e p50 us", |r| pct(&r.e2e, |l| l.p50_us)),
    ("e2e p99 us", |r| pct(&r.e2e, |l| l.p99_us)),
    ("e2e p99.9 us", |r| pct(&r.e2e, |l| l.p999_us)),
];

/// The median of one figure over `runs`, skipping runs that did not measure it.
fn median_of(runs: &[E2eResult], get: fn(&E2eResult) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = runs
        .iter()
        .filter_map(get)
        .filter(|v| v.is_finite())
        .collect();
    (!values.is_empty()).then(|| median(&values))
}

/// Per figure, the median of A's rounds, the median of B's rounds and their ratio.
pub fn compare_rows(a: &[E2eResult], b: &[E2eResult]) -> Vec<FigureRow> {
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

/// `strata-bench compare`: A B A B … for `--rounds` rounds, then the medians table.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    args.workload.validate()?;
    let (mut a_runs, mut b_runs) = (Vec::new(), Vec::new());
    let mut rounds_json = Vec::new();
    for round in 1..=args.rounds {
        for (label, addr, runs) in [("A", &args.a, &mut a_runs), ("B", &args.b, &mut b_runs)] {
            let r = run_once(addr, &args.workload)
                .map_err(|e| e.context(format!("round {round}, target {label} ({addr})")))?;
            println!(
                "round {round}/{} {label} {addr}: {:.1} MB/s acked, publish {} us, e2e {} us",
                args.rounds,
                r.mb_per_s,
                r.publish.triple(),
                r.e2e.triple()
            );
            if let Some(shortfall) = r.counts.shortfall() {
                eprintln!("warning: round {round} {label}: {shortfall}");
            }
            rounds_json.push(json!({
                "round": round, "target": label, "addr": addr, "result": r.to_json(),
            }));
            runs.push(r);
        }
    }
    let rows = compare_rows(&a_runs, &b_runs);
    println!();
    println!("A = {}, B = {}", args.a, args.b);
    compare_table(&rows, args.rounds).print();
    write_json(
        args.json.as_deref(),
        &json!({
            "benchmark": "compare",
            "driver": "native-e2e",
            "a": args.a,
            "b": args.b,
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

    fn lat(p50: f64, p99: f64, p999: f64) -> Latency {
        Latency {
            count: 100,
            p50_us: p50,
            p99_us: p99,
            p999_us: p999,
            max_us: p999 * 2.0,
        }
    }

    fn fake(mb: f64, publish: Latency, e2e: Latency) -> E2eResult {
        E2eResult {
            mb_per_s: mb,
            produce_secs: 1.0,
            publish,
            e2e,
            counts: Counts {
                sent: 100,
                acked: 100,
                received: 100,
            },
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
        assert_eq!(rows[4].a, Some(5.0), "empty e2e round skipped");
        assert!(rows[1..].iter().all(|r| r.b.is_none() && r.ratio.is_none()));

        let text = compare_table(&rows, 2).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("figure"), "{text}");
        assert!(lines[0].contains("A median (2 rounds)"), "{text}");
        assert!(lines[2].starts_with("MB/s acked"), "{text}");
        assert!(
            lines[2].contains("20.0") && lines[2].ends_with('-'),
            "{text}"
        );
        assert!(lines[3].contains("2") && lines[3].ends_with('-'), "{text}");
        assert_eq!(lines.len(), 2 + 7);
    }
}
