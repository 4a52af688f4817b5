//! What one load run measured, and its three forms: the human table, the JSON file
//! (every figure, the percentile curves, the timeline and the full configuration)
//! and the SVG plot.

use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::counts::Counts;
use crate::driver::Target;
use crate::load::progress::Sample;
use crate::load::spec::{LoadSpec, WorkloadKind};
use crate::plot::{self, percentile_curve, Curve, Line};
use crate::report::{latency_histogram, Latency, Table, LATENCY_HEADERS};

/// What one consumer group (or the group-less set of assigned consumers) received.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupResult {
    /// `g0`, `g1`, … or `assigned` (consumers without a group).
    pub name: String,
    /// The group id on the broker, when there is a group.
    pub group_id: Option<String>,
    /// Sent and acknowledged by the run's producers, received by this group.
    pub counts: Counts,
    /// Received records per second: over the measured window (e2e, fanout), or from
    /// the first to the last record (consume: the drain rate).
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
    /// Intended send time → received, over the measured window (none for consume).
    pub e2e: Latency,
    /// consume: seconds from the start of the drain to the first record.
    pub first_record_secs: Option<f64>,
    /// consume: seconds from the first to the last record.
    pub drain_secs: Option<f64>,
}

impl GroupResult {
    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "group_id": self.group_id,
            "counts": self.counts.to_json(),
            "mb_per_s": self.mb_per_s,
            "msgs_per_s": self.msgs_per_s,
            "e2e": self.e2e.to_json(),
            "first_record_secs": self.first_record_secs,
            "drain_secs": self.drain_secs,
        })
    }
}

/// Everything one run measured.
#[derive(Clone, Debug)]
pub struct LoadResult {
    pub spec: LoadSpec,
    pub target: Target,
    /// Names this run's topics and groups.
    pub run_id: String,
    pub topics: Vec<String>,
    /// Sent and acknowledged records; received = the least any group received
    /// (0 for produce-only).
    pub counts: Counts,
    /// Records scheduled but never sent (the broker blocked the producer too long).
    pub unsent: u64,
    /// Failed sends, and the first failure's text.
    pub publish_errors: u64,
    pub first_publish_error: Option<String>,
    /// Acknowledged per second over the measured window (consume: the backlog build).
    pub publish_mb_per_s: f64,
    pub publish_msgs_per_s: f64,
    /// Intended send time → acknowledged.
    pub publish: Latency,
    pub groups: Vec<GroupResult>,
    /// Intended send time → received, all groups together.
    pub e2e: Latency,
    /// Received per second, summed over groups.
    pub receive_mb_per_s: f64,
    pub receive_msgs_per_s: f64,
    /// Seconds of the measured window (to the last counted acknowledgement).
    pub measured_secs: f64,
    /// Once-a-second throughput and p99.
    pub timeline: Vec<Sample>,
    pub publish_hist: Histogram<u64>,
    pub e2e_hist: Histogram<u64>,
}

impl Default for LoadResult {
    fn default() -> Self {
        LoadResult {
            spec: LoadSpec::default(),
            target: Target {
                driver: crate::driver::DriverKind::Native,
                brokers: String::new(),
                kafka_config: Vec::new(),
            },
            run_id: String::new(),
            topics: Vec::new(),
            counts: Counts::default(),
            unsent: 0,
            publish_errors: 0,
            first_publish_error: None,
            publish_mb_per_s: 0.0,
            publish_msgs_per_s: 0.0,
            publish: Latency::default(),
            groups: Vec::new(),
            e2e: Latency::default(),
            receive_mb_per_s: 0.0,
            receive_msgs_per_s: 0.0,
            measured_secs: 0.0,
            timeline: Vec::new(),
            publish_hist: latency_histogram(),
            e2e_hist: latency_histogram(),
        }
    }
}

impl LoadResult {
    /// Warnings for the user when counts do not add up; empty when they do.
    pub fn shortfalls(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.unsent > 0 {
            out.push(format!(
                "{} scheduled records were never sent (the producer was blocked too long)",
                self.unsent
            ));
        }
        if self.publish_errors > 0 {
            out.push(format!(
                "{} sends failed; first: {}",
                self.publish_errors,
                self.first_publish_error.as_deref().unwrap_or("?")
            ));
        } else if self.counts.unacked() > 0 {
            out.push(format!(
                "{} sent records were not acknowledged",
                self.counts.unacked()
            ));
        }
        for g in &self.groups {
            if g.counts.lost() > 0 {
                out.push(format!(
                    "group {}: {} acknowledged records were not received",
                    g.name,
                    g.counts.lost()
                ));
            }
            if g.counts.received > g.counts.acked {
                out.push(format!(
                    "group {}: {} more records received than acknowledged (redelivery)",
                    g.name,
                    g.counts.received - g.counts.acked
                ));
            }
        }
        out
    }

    /// The results as a table: MB/s, msgs/s and latency percentiles per stream.
    pub fn table(&self) -> Table {
        let mut headers = vec!["", "MB/s", "msgs/s"];
        let lat: Vec<String> = LATENCY_HEADERS.iter().map(|h| format!("{h} us")).collect();
        headers.extend(lat.iter().map(String::as_str));
        let mut t = Table::new(&headers);
        let row = |name: String, mb: f64, msgs: f64, l: &Latency| {
            let mut cells = vec![name, format!("{mb:.1}"), format!("{msgs:.0}")];
            cells.extend(l.cells());
            cells
        };
        let publish_name = if self.spec.workload == WorkloadKind::Consume {
            "publish (backlog)"
        } else {
            "publish"
        };
        t.row(row(
            publish_name.into(),
            self.publish_mb_per_s,
            self.publish_msgs_per_s,
            &self.publish,
        ));
        let (what, many) = match self.spec.workload {
            WorkloadKind::Consume => ("drain", self.groups.len() > 1),
            _ => ("end-to-end", self.groups.len() > 1),
        };
        for g in &self.groups {
            let name = if many {
                format!("{what} {}", g.name)
            } else {
                what.to_string()
            };
            t.row(row(name, g.mb_per_s, g.msgs_per_s, &g.e2e));
        }
        if many {
            t.row(row(
                format!("{what} (all groups)"),
                self.receive_mb_per_s,
                self.receive_msgs_per_s,
                &self.e2e,
            ));
        }
        t
    }

    /// One line of counts: sent, acked, and received per group.
    pub fn counts_line(&self) -> String {
        let mut s = format!("sent {}, acked {}", self.counts.sent, self.counts.acked);
        for g in &self.groups {
            s.push_str(&format!(", received {} ({})", g.counts.received, g.name));
        }
        s
    }

    /// The curves and lines of this run's plot.
    pub fn plot_data(&self, label_prefix: &str) -> (Vec<Curve>, Vec<Line>) {
        let mut curves = vec![Curve {
            label: format!("{label_prefix}publish"),
            points: percentile_curve(&self.publish_hist),
        }];
        if !self.e2e_hist.is_empty() {
            curves.push(Curve {
                label: format!("{label_prefix}end-to-end"),
                points: percentile_curve(&self.e2e_hist),
            });
        }
        let line = |label: &str, f: fn(&Sample) -> f64| Line {
            label: format!("{label_prefix}{label}"),
            points: self.timeline.iter().map(|s| (s.t_secs, f(s))).collect(),
        };
        let mut lines = vec![line("acked MB/s", |s| s.acked_mb_per_s)];
        if self.spec.consumes() {
            lines.push(line("received MB/s", |s| s.received_mb_per_s));
        }
        (curves, lines)
    }

    /// Writes this run's SVG plot.
    pub fn write_svg(&self, path: &Path) -> anyhow::Result<()> {
        let (curves, lines) = self.plot_data("");
        let title = format!("{} {}", self.spec.workload.name(), self.target.label());
        plot::write_svg(path, &title, &curves, &lines)
    }

    /// JSON form: every figure, curves, timeline and the full configuration.
    pub fn to_json(&self) -> Value {
        let curve = |h: &Histogram<u64>| -> Value {
            percentile_curve(h)
                .iter()
                .map(|&(q, us)| json!([q * 100.0, us]))
                .collect()
        };
        json!({
            "run_id": self.run_id,
            "target": self.target.to_json(),
            "workload": self.spec.to_json(),
            "topics": self.topics,
            "counts": {
                "sent": self.counts.sent,
                "acked": self.counts.acked,
                "unsent": self.unsent,
                "publish_errors": self.publish_errors,
                "first_publish_error": self.first_publish_error,
            },
            "publish": {
                "mb_per_s": self.publish_mb_per_s,
                "msgs_per_s": self.publish_msgs_per_s,
                "latency": self.publish.to_json(),
                "percentile_curve": curve(&self.publish_hist),
            },
            "groups": self.groups.iter().map(GroupResult::to_json).collect::<Vec<_>>(),
            "e2e": {
                "mb_per_s": self.receive_mb_per_s,
                "msgs_per_s": self.receive_msgs_per_s,
                "latency": self.e2e.to_json(),
                "percentile_curve": curve(&self.e2e_hist),
            },
            "measured_secs": self.measured_secs,
            "timeline": self.timeline.iter().map(Sample::to_json).collect::<Vec<_>>(),
            "shortfalls": self.shortfalls(),
        })
    }
}
