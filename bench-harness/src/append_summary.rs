//! The results of `engine-append`: one case (partition count and flush policy), what
//! its strata and raw runs measured, the medians over rounds with the targets, and
//! the tables and JSON they are reported as.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::proc_stats::Usage;
use crate::raw_io::{RawPattern, RawResult};
use crate::report::{mb_per_s, median, verdict, Latency, Table};
use crate::workload::FlushArg;

/// Throughput target of flush-every-batch, as a fraction of the raw limit.
pub const RATIO_TARGET_EVERY: f64 = 0.8;
/// Throughput target of interval flush, as a fraction of the raw limit.
pub const RATIO_TARGET_INTERVAL: f64 = 0.9;
/// Durable-append p99 target, as a multiple of the raw fdatasync p99.
pub const P99_TARGET_FACTOR: f64 = 2.0;

/// One case: a partition count and a flush policy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Case {
    pub(crate) partitions: usize,
    pub(crate) flush: FlushArg,
    pub(crate) window_per_partition: usize,
    pub(crate) window_total: usize,
}

impl Case {
    pub(crate) fn name(&self) -> String {
        format!("{} x{}", self.flush, self.partitions)
    }

    pub(crate) fn raw_pattern(&self, raw_depth: usize) -> RawPattern {
        if self.flush.is_interval() {
            RawPattern::Sequential { depth: raw_depth }
        } else {
            RawPattern::WriteSync
        }
    }

    fn ratio_target(&self) -> f64 {
        if self.flush.is_interval() {
            RATIO_TARGET_INTERVAL
        } else {
            RATIO_TARGET_EVERY
        }
    }
}

/// What one strata run measured over its counted window.
#[derive(Clone, Debug)]
pub(crate) struct StrataRun {
    pub(crate) bytes: u64,
    pub(crate) appends: u64,
    pub(crate) seconds: f64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) usage: Usage,
}

impl StrataRun {
    pub(crate) fn mb_per_s(&self) -> f64 {
        mb_per_s(self.bytes, self.seconds)
    }
}

/// Medians of one case's rounds.
pub(crate) struct Summary {
    case: Case,
    raw_pattern: RawPattern,
    strata_mb_s: f64,
    raw_mb_s: f64,
    strata_rounds: Vec<f64>,
    raw_rounds: Vec<f64>,
    /// Median of the per-round strata/raw ratios.
    ratio: f64,
    append_latency: Latency,
    raw_sync_latency: Latency,
    raw_cycle_latency: Latency,
    appends_per_s: f64,
    strata_cpu_pct: f64,
    raw_cpu_pct: f64,
    strata_flushes_per_s: f64,
    raw_flushes_per_s: f64,
    strata_write_kib: f64,
    raw_write_kib: f64,
    strata_device_mb_s: f64,
    raw_device_mb_s: f64,
    strata_cpu_psi_pct: f64,
    raw_cpu_psi_pct: f64,
}

impl Summary {
    pub(crate) fn of(
        case: Case,
        raw_depth: usize,
        strata: &[StrataRun],
        raw: &[RawResult],
    ) -> Self {
        let strata_rounds: Vec<f64> = strata.iter().map(StrataRun::mb_per_s).collect();
        let raw_rounds: Vec<f64> = raw.iter().map(RawResult::mb_per_s).collect();
        let ratios: Vec<f64> = strata_rounds
            .iter()
            .zip(&raw_rounds)
            .map(|(s, r)| if *r > 0.0 { s / r } else { 0.0 })
            .collect();
        let med = |f: &dyn Fn(usize) -> f64, n: usize| median(&(0..n).map(f).collect::<Vec<_>>());
        Summary {
            case,
            raw_pattern: case.raw_pattern(raw_depth),
            strata_mb_s: median(&strata_rounds),
            raw_mb_s: median(&raw_rounds),
            ratio: median(&ratios),
            append_latency: Latency::median_of(
                &strata
                    .iter()
                    .map(|r| Latency::of(&r.latency))
                    .collect::<Vec<_>>(),
            ),
            raw_sync_latency: Latency::median_of(
                &raw.iter()
                    .map(|r| Latency::of(&r.sync_latency))
                    .collect::<Vec<_>>(),
            ),
            raw_cycle_latency: Latency::median_of(
                &raw.iter()
                    .map(|r| Latency::of(&r.cycle_latency))
                    .collect::<Vec<_>>(),
            ),
            appends_per_s: med(
                &|i| strata[i].appends as f64 / strata[i].seconds.max(1e-9),
                strata.len(),
            ),
            strata_cpu_pct: med(&|i| strata[i].usage.cpu_pct, strata.len()),
            raw_cpu_pct: med(&|i| raw[i].usage.cpu_pct, raw.len()),
            strata_flushes_per_s: med(&|i| strata[i].usage.flushes_per_s(), strata.len()),
            raw_flushes_per_s: med(&|i| raw[i].usage.flushes_per_s(), raw.len()),
            strata_write_kib: med(&|i| strata[i].usage.disk.avg_write_kib(), strata.len()),
            raw_write_kib: med(&|i| raw[i].usage.disk.avg_write_kib(), raw.len()),
            strata_device_mb_s: med(&|i| strata[i].usage.device_write_mb_per_s(), strata.len()),
            raw_device_mb_s: med(&|i| raw[i].usage.device_write_mb_per_s(), raw.len()),
            strata_cpu_psi_pct: med(&|i| strata[i].usage.cpu_pressure_pct, strata.len()),
            raw_cpu_psi_pct: med(&|i| raw[i].usage.cpu_pressure_pct, raw.len()),
            strata_rounds,
            raw_rounds,
        }
    }

    fn ratio_met(&self) -> bool {
        self.ratio >= self.case.ratio_target()
    }

    /// The latency target applies to flush-every-batch, where an append's durability
    /// is one fdatasync away; interval flush waits for its timer by design.
    fn p99_met(&self) -> Option<bool> {
        if self.case.flush.is_interval() || self.raw_sync_latency.count == 0 {
            return None;
        }
        Some(self.append_latency.p99_us <= P99_TARGET_FACTOR * self.raw_sync_latency.p99_us)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "case": self.case.name(),
            "flush": self.case.flush.to_string(),
            "partitions": self.case.partitions,
            "window_per_partition": self.case.window_per_partition,
            "window_total": self.case.window_total,
            "raw_pattern": self.raw_pattern.name(),
            "strata_mb_per_s_median": self.strata_mb_s,
            "raw_mb_per_s_median": self.raw_mb_s,
            "strata_mb_per_s_rounds": self.strata_rounds,
            "raw_mb_per_s_rounds": self.raw_rounds,
            "ratio_median": self.ratio,
            "ratio_target": self.case.ratio_target(),
            "ratio_target_met": self.ratio_met(),
            "durable_append_latency": self.append_latency.to_json(),
            "raw_fdatasync_latency": self.raw_sync_latency.to_json(),
            "raw_write_latency": self.raw_cycle_latency.to_json(),
            "p99_target_factor": P99_TARGET_FACTOR,
            "p99_target_met": self.p99_met(),
            "appends_per_s": self.appends_per_s,
            "strata_cpu_pct": self.strata_cpu_pct,
            "raw_cpu_pct": self.raw_cpu_pct,
            "strata_device_flushes_per_s": self.strata_flushes_per_s,
            "raw_device_flushes_per_s": self.raw_flushes_per_s,
            "strata_device_write_kib_avg": self.strata_write_kib,
            "raw_device_write_kib_avg": self.raw_write_kib,
            "strata_device_write_mb_per_s": self.strata_device_mb_s,
            "raw_device_write_mb_per_s": self.raw_device_mb_s,
            "strata_cpu_pressure_pct": self.strata_cpu_psi_pct,
            "raw_cpu_pressure_pct": self.raw_cpu_psi_pct,
        })
    }
}

/// Prints the main table (throughput, ratio, latency, targets) and the details.
pub(crate) fn print_tables(summaries: &[Summary], rounds: usize) {
    let mut main = Table::new(&[
        "case",
        "strata MB/s",
        "limit MB/s",
        "ratio",
        "ratio target",
        "durable p50/p99/p99.9 us",
        "raw fdatasync p50/p99/p99.9 us",
        "p99 target",
    ]);
    for s in summaries {
        main.row(vec![
            s.case.name(),
            format!("{:.1}", s.strata_mb_s),
            format!("{:.1}", s.raw_mb_s),
            format!("{:.2}", s.ratio),
            format!(">= {:.1} {}", s.case.ratio_target(), verdict(s.ratio_met())),
            s.append_latency.triple(),
            s.raw_sync_latency.triple(),
            match s.p99_met() {
                Some(met) => format!("<= {P99_TARGET_FACTOR:.0}x {}", verdict(met)),
                None => "n/a".into(),
            },
        ]);
    }
    println!();
    println!(
        "engine-append (medians of {rounds} rounds; ratio = median of per-round strata/limit)"
    );
    main.print();
    let mut detail = Table::new(&[
        "case",
        "window p/total",
        "limit pattern",
        "raw write p50/p99/p99.9 us",
        "appends/s",
        "cpu % strata/raw",
        "dev flushes/s strata/raw",
        "dev write KiB strata/raw",
        "dev MB/s strata/raw",
        "cpu psi % strata/raw",
    ]);
    for s in summaries {
        detail.row(vec![
            s.case.name(),
            format!("{}/{}", s.case.window_per_partition, s.case.window_total),
            s.raw_pattern.name(),
            s.raw_cycle_latency.triple(),
            format!("{:.0}", s.appends_per_s),
            format!("{:.0}/{:.0}", s.strata_cpu_pct, s.raw_cpu_pct),
            format!("{:.0}/{:.0}", s.strata_flushes_per_s, s.raw_flushes_per_s),
            format!("{:.0}/{:.0}", s.strata_write_kib, s.raw_write_kib),
            format!("{:.0}/{:.0}", s.strata_device_mb_s, s.raw_device_mb_s),
            format!("{:.0}/{:.0}", s.strata_cpu_psi_pct, s.raw_cpu_psi_pct),
        ]);
    }
    println!();
    println!(
        "details (device counters and cpu psi, the share of time some task waited for a CPU, are machine-wide: other work shows up too)"
    );
    detail.print();
}
