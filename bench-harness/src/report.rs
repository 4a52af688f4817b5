//! Reporting: plain-text tables, medians, latency summaries and the JSON output.

use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Largest latency a histogram records (60 s); larger values are clamped.
pub const LATENCY_US_MAX: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static histogram bounds are valid")
}

/// Records `us` microseconds, clamped into the histogram's range.
pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(1, LATENCY_US_MAX));
}

/// Percentiles of one latency histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

/// Column headers matching [`Latency::cells`].
pub const LATENCY_HEADERS: [&str; 6] = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];

impl Latency {
    /// Summarises `h`; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50) as f64,
            p90_us: h.value_at_quantile(0.90) as f64,
            p99_us: h.value_at_quantile(0.99) as f64,
            p999_us: h.value_at_quantile(0.999) as f64,
            p9999_us: h.value_at_quantile(0.9999) as f64,
            max_us: h.max() as f64,
        }
    }

    /// The per-field median of several summaries (one per round).
    pub fn median_of(all: &[Latency]) -> Self {
        let pick = |f: fn(&Latency) -> f64| median(&all.iter().map(f).collect::<Vec<_>>());
        Latency {
            count: all.iter().map(|l| l.count).sum(),
            p50_us: pick(|l| l.p50_us),
            p90_us: pick(|l| l.p90_us),
            p99_us: pick(|l| l.p99_us),
            p999_us: pick(|l| l.p999_us),
            p9999_us: pick(|l| l.p9999_us),
            max_us: pick(|l| l.max_us),
        }
    }

    /// `p50/p99/p99.9` in whole microseconds, or `-` when nothing was recorded.
    pub fn triple(&self) -> String {
        if self.count == 0 {
            return "-".into();
        }
        format!("{:.0}/{:.0}/{:.0}", self.p50_us, self.p99_us, self.p999_us)
    }

    /// p50, p90, p99, p99.9, p99.99 and max in whole microseconds (see
    /// [`LATENCY_HEADERS`]), each `-` when nothing was recorded.
    pub fn cells(&self) -> Vec<String> {
        let values = [
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.p9999_us,
            self.max_us,
        ];
        values
            .iter()
            .map(|v| {
                if self.count == 0 {
                    "-".to_string()
                } else {
                    format!("{v:.0}")
                }
            })
            .collect()
    }

    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "p999_us": self.p999_us,
            "p9999_us": self.p9999_us,
            "max_us": self.max_us,
        })
    }
}

/// The median of `values` (mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    bytes as f64 / 1e6 / seconds
}

/// "met" or "NOT met", for target columns.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// A text table printed with aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per header.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.headers.len(), "table row width");
        self.rows.push(cells);
    }

    /// The table as text: a header line, a rule, one line per row.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(String::len).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// This process's command line, quoted for a POSIX shell where needed (for reports
/// that give "the exact command").
pub fn command_line() -> String {
    shell_join(std::env::args())
}

/// `args` joined with spaces, each quoted for a POSIX shell when it needs to be.
pub fn shell_join(args: impl IntoIterator<Item = String>) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    args.into_iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(plain) {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `value` as pretty JSON to `path`, when one was given.
pub fn write_json(path: Option<&Path>, value: &Value) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    println!("JSON written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["case", "MB/s"]);
        t.row(vec!["a".into(), "1.0".into()]);
        t.row(vec!["longer".into(), "100.0".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "case     MB/s");
        assert_eq!(lines[2], "a         1.0");
        assert_eq!(lines[3], "longer  100.0");
    }

    #[test]
    fn shell_join_quotes_only_what_needs_it() {
        let args = ["run", "--rate", "5000msg/s", "a b", "it's", ""].map(String::from);
        assert_eq!(shell_join(args), "run --rate 5000msg/s 'a b' 'it'\\''s' ''");
    }

    #[test]
    fn latency_summary_of_empty_is_dash() {
        assert_eq!(Latency::of(&latency_histogram()).triple(), "-");
        let mut h = latency_histogram();
        record_us(&mut h, 100);
        assert_eq!(Latency::of(&h).triple(), "100/100/100");
    }
}
