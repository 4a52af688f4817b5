//! One workload's definition, as command-line flags: what to run (produce, consume a
//! backlog, end to end, fan-out to several groups), on what topics, with which
//! clients, records, rate and duration. The same definition runs through any driver.

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::load::payload::{KeyDistribution, SizeRange, STAMP_BYTES};
use crate::schedule::Rate;

/// Groups of the fan-out workload when `--groups` is not given.
pub const FANOUT_GROUPS_DEFAULT: u32 = 3;
/// Upper bounds that keep a typo from starting thousands of threads or topics.
pub const CLIENTS_MAX: u32 = 256;
pub const TOPICS_MAX: u32 = 1024;
pub const PARTITIONS_MAX: u32 = 10_000;

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadKind {
    /// Producers only: publish throughput and latency.
    Produce,
    /// Build a backlog of `--backlog-bytes` (or `--messages`), then time its drain.
    Consume,
    /// Producers and consumers together: publish and end-to-end latency.
    E2e,
    /// End to end with `--groups` consumer groups each reading every record.
    Fanout,
}

impl WorkloadKind {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Produce => "produce",
            WorkloadKind::Consume => "consume",
            WorkloadKind::E2e => "e2e",
            WorkloadKind::Fanout => "fanout",
        }
    }
}

/// A workload: topics, clients, records, rate and duration.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct LoadSpec {
    /// produce, consume (backlog drain), e2e, or fanout (several consumer groups).
    #[arg(long, value_enum, default_value = "e2e")]
    pub workload: WorkloadKind,
    /// Topic name prefix; each run creates fresh topics `<prefix>-<run id>[-<i>]`
    /// and deletes them afterwards (see --keep-topics).
    #[arg(long, default_value = "strata-bench")]
    pub topic: String,
    /// Topics.
    #[arg(long, default_value_t = 1)]
    pub topics: u32,
    /// Partitions per topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Replicas per partition when the kafka driver creates topics.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: u16,
    /// Producers per topic, each its own client and thread.
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consumers per group (or, without groups, consumers the partitions are dealt
    /// to), each its own client and thread.
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Consumer groups, each subscribed to every topic and reading every record;
    /// 0 = no group, partitions assigned directly. Default: 3 for fanout, else 0.
    #[arg(long)]
    pub groups: Option<u32>,
    /// Bytes per record value: N, or MIN..MAX drawn uniformly per record.
    #[arg(long, default_value = "1024")]
    pub record_bytes: SizeRange,
    /// Producer batch size in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub batch_bytes: usize,
    /// Producer linger in milliseconds.
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Record keys: none, round-robin (over a fixed key set) or random.
    #[arg(long, value_enum, default_value = "none")]
    pub keys: KeyDistribution,
    /// `max`, or a fixed total rate: MB/s (`100` or `100MB/s`) or messages/s
    /// (`5000msg/s`). Fixed rates measure latency from each intended send time.
    #[arg(long, default_value = "max")]
    pub rate: String,
    /// Measured seconds (after the warm-up); ignored with --messages.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds sent before measuring (records intended then are not counted).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_seconds: f64,
    /// Send exactly this many records in total instead of running for --seconds
    /// (for consume: the backlog, instead of --backlog-bytes).
    #[arg(long)]
    pub messages: Option<u64>,
    /// consume: bytes of record values in the backlog built before the drain.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub backlog_bytes: u64,
    /// Once the producers are done, consumers give up after this many seconds without
    /// a record (the missing records are reported as lost).
    #[arg(long, default_value_t = 15.0)]
    pub drain_timeout_seconds: f64,
    /// Seed of record sizes and random keys.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pin the benchmark's client threads to these cores in turn (e.g. `0,1`).
    #[arg(long, value_delimiter = ',')]
    pub pin_cores: Vec<usize>,
    /// Leave the run's topics on the broker.
    #[arg(long)]
    pub keep_topics: bool,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            workload: WorkloadKind::E2e,
            topic: "strata-bench".into(),
            topics: 1,
            partitions: 1,
            replication_factor: 1,
            producers: 1,
            consumers: 1,
            groups: None,
            record_bytes: SizeRange::fixed(1024),
            batch_bytes: 64 * 1024,
            linger_ms: 1,
            acks: "all".into(),
            keys: KeyDistribution::None,
            rate: "max".into(),
            seconds: 10.0,
            warmup_seconds: 2.0,
            messages: None,
            backlog_bytes: 256 * 1024 * 1024,
            drain_timeout_seconds: 15.0,
            seed: 1,
            pin_cores: Vec::new(),
            keep_topics: false,
        }
    }
}

impl LoadSpec {
    /// Consumer groups of this run (0: partitions assigned, no group).
    pub fn groups(&self) -> u32 {
        match (self.workload, self.groups) {
            (WorkloadKind::Produce, _) => 0,
            (_, Some(g)) => g,
            (WorkloadKind::Fanout, None) => FANOUT_GROUPS_DEFAULT,
            (_, None) => 0,
        }
    }

    /// Whether the run has consumers at all.
    pub fn consumes(&self) -> bool {
        self.workload != WorkloadKind::Produce
    }

    /// Producer threads in total.
    pub fn producer_threads(&self) -> u32 {
        self.topics * self.producers
    }

    /// The parsed `--rate`.
    pub fn parsed_rate(&self) -> anyhow::Result<Rate> {
        self.rate.parse()
    }

    /// Rejects parameters no run can use, before any connection is made.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.record_bytes.min_bytes < STAMP_BYTES {
            bail!("--record-bytes must be at least {STAMP_BYTES} (the send-time stamp)");
        }
        self.parsed_rate()?;
        if !matches!(self.acks.as_str(), "0" | "1" | "all" | "-1") {
            bail!("--acks must be 0, 1 or all, not `{}`", self.acks);
        }
        let bounded = |name: &str, v: u32, max: u32| {
            if v == 0 || v > max {
                bail!("--{name} must be in 1..={max}, not {v}");
            }
            Ok(())
        };
        bounded("topics", self.topics, TOPICS_MAX)?;
        bounded("partitions", self.partitions, PARTITIONS_MAX)?;
        bounded("producers", self.producers, CLIENTS_MAX)?;
        bounded("consumers", self.consumers, CLIENTS_MAX)?;
        if self.groups.is_some_and(|g| g > CLIENTS_MAX) {
            bail!("--groups must be at most {CLIENTS_MAX}");
        }
        if self.workload == WorkloadKind::Fanout && self.groups() == 0 {
            bail!("--workload fanout needs --groups of at least 1");
        }
        if self.replication_factor == 0 {
            bail!("--replication-factor must be at least 1");
        }
        if self.batch_bytes == 0 {
            bail!("--batch-bytes must be at least 1");
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0) {
            bail!("--seconds must be a positive number");
        }
        if !(self.warmup_seconds.is_finite() && self.warmup_seconds >= 0.0) {
            bail!("--warmup-seconds must be zero or positive");
        }
        if !(self.drain_timeout_seconds.is_finite() && self.drain_timeout_seconds > 0.0) {
            bail!("--drain-timeout-seconds must be a positive number");
        }
        if self.messages == Some(0) {
            bail!("--messages must be at least 1");
        }
        if self.workload == WorkloadKind::Consume
            && self.messages.is_none()
            && self.backlog_bytes < self.record_bytes.max_bytes as u64
        {
            bail!("--backlog-bytes must hold at least one record");
        }
        if self.topic.is_empty() {
            bail!("--topic must not be empty");
        }
        Ok(())
    }

    /// The flags that reproduce this spec exactly (every one, defaults included).
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut flag = |name: &str, value: String| {
            a.push(format!("--{name}"));
            a.push(value);
        };
        flag("workload", self.workload.name().into());
        flag("topic", self.topic.clone());
        flag("topics", self.topics.to_string());
        flag("partitions", self.partitions.to_string());
        if self.replication_factor != 1 {
            flag("replication-factor", self.replication_factor.to_string());
        }
        flag("producers", self.producers.to_string());
        if self.consumes() {
            flag("consumers", self.consumers.to_string());
            if let Some(g) = self.groups {
                flag("groups", g.to_string());
            }
        }
        flag("record-bytes", self.record_bytes.to_string());
        flag("batch-bytes", self.batch_bytes.to_string());
        flag("linger-ms", self.linger_ms.to_string());
        flag("acks", self.acks.clone());
        flag("keys", self.keys.name().into());
        flag("rate", self.rate.clone());
        match (self.workload, self.messages) {
            (_, Some(m)) => flag("messages", m.to_string()),
            (WorkloadKind::Consume, None) => flag("backlog-bytes", self.backlog_bytes.to_string()),
            (_, None) => {}
        }
        if self.workload != WorkloadKind::Consume {
            if self.messages.is_none() {
                flag("seconds", self.seconds.to_string());
            }
            flag("warmup-seconds", self.warmup_seconds.to_string());
        }
        if self.consumes() && self.drain_timeout_seconds != 15.0 {
            flag(
                "drain-timeout-seconds",
                self.drain_timeout_seconds.to_string(),
            );
        }
        flag("seed", self.seed.to_string());
        if !self.pin_cores.is_empty() {
            let cores: Vec<String> = self.pin_cores.iter().map(usize::to_string).collect();
            flag("pin-cores", cores.join(","));
        }
        if self.keep_topics {
            a.push("--keep-topics".into());
        }
        a
    }

    /// One line for headers: the workload in words.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}: {} topic(s) x {} partition(s), {} producer(s)/topic",
            self.workload.name(),
            self.topics,
            self.partitions,
            self.producers
        );
        if self.consumes() {
            match self.groups() {
                0 => s.push_str(&format!(", {} consumer(s), no group", self.consumers)),
                g => s.push_str(&format!(", {g} group(s) x {} consumer(s)", self.consumers)),
            }
        }
        s.push_str(&format!(
            ", {} B records, keys {}, batch {} B, linger {} ms, acks={}, rate {}",
            self.record_bytes,
            self.keys.name(),
            self.batch_bytes,
            self.linger_ms,
            self.acks,
            self.rate
        ));
        match (self.workload, self.messages) {
            (_, Some(m)) => s.push_str(&format!(", {m} records")),
            (WorkloadKind::Consume, None) => {
                s.push_str(&format!(", backlog {} B", self.backlog_bytes))
            }
            (_, None) => s.push_str(&format!(
                ", {} s (+{} s warm-up)",
                self.seconds, self.warmup_seconds
            )),
        }
        s
    }

    /// JSON form, for the configuration part of reports.
    pub fn to_json(&self) -> Value {
        json!({
            "workload": self.workload.name(),
            "topic_prefix": self.topic,
            "topics": self.topics,
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "producers_per_topic": self.producers,
            "consumers_per_group": self.consumers,
            "groups": self.groups(),
            "record_bytes": self.record_bytes.to_string(),
            "batch_bytes": self.batch_bytes,
            "linger_ms": self.linger_ms,
            "acks": self.acks,
            "keys": self.keys.name(),
            "rate": self.rate,
            "seconds": self.seconds,
            "warmup_seconds": self.warmup_seconds,
            "messages": self.messages,
            "backlog_bytes": self.backlog_bytes,
            "drain_timeout_seconds": self.drain_timeout_seconds,
            "seed": self.seed,
            "pin_cores": self.pin_cores,
            "keep_topics": self.keep_topics,
            "args": self.to_args().join(" "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        spec: LoadSpec,
    }

    fn parse(args: &[String]) -> LoadSpec {
        let mut full = vec!["x".to_string()];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).expect("parses").spec
    }

    #[test]
    fn clap_defaults_match_default() {
        assert_eq!(parse(&[]), LoadSpec::default());
    }

    #[test]
    fn to_args_reproduces_the_spec() {
        let spec = LoadSpec {
            workload: WorkloadKind::Fanout,
            topics: 2,
            partitions: 16,
            producers: 2,
            consumers: 3,
            groups: Some(4),
            record_bytes: "100..2000".parse().unwrap(),
            keys: KeyDistribution::Random,
            rate: "50MB/s".into(),
            acks: "1".into(),
            seconds: 2.5,
            warmup_seconds: 0.5,
            pin_cores: vec![0, 1],
            keep_topics: true,
            drain_timeout_seconds: 3.0,
            ..LoadSpec::default()
        };
        assert_eq!(parse(&spec.to_args()), spec);
        let drain = LoadSpec {
            workload: WorkloadKind::Consume,
            backlog_bytes: 1 << 20,
            ..LoadSpec::default()
        };
        let back = parse(&drain.to_args());
        assert_eq!(back.backlog_bytes, 1 << 20);
        assert_eq!(back.workload, WorkloadKind::Consume);
    }

    #[test]
    fn validation_refuses_unusable_specs() {
        let bad = |f: fn(&mut LoadSpec), needle: &str| {
            let mut s = LoadSpec::default();
            f(&mut s);
            let e = s.validate().expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        };
        bad(|s| s.record_bytes = SizeRange::fixed(4), "--record-bytes");
        bad(|s| s.rate = "fast".into(), "--rate fast");
        bad(|s| s.acks = "2".into(), "--acks");
        bad(|s| s.partitions = 0, "--partitions");
        bad(
            |s| {
                s.workload = WorkloadKind::Fanout;
                s.groups = Some(0);
            },
            "--groups",
        );
        bad(|s| s.seconds = 0.0, "--seconds");
        assert!(LoadSpec::default().validate().is_ok());
    }

    #[test]
    fn groups_default_by_workload() {
        let with = |w| LoadSpec {
            workload: w,
            ..LoadSpec::default()
        };
        assert_eq!(with(WorkloadKind::E2e).groups(), 0);
        assert_eq!(with(WorkloadKind::Fanout).groups(), FANOUT_GROUPS_DEFAULT);
        let produce = LoadSpec {
            groups: Some(2),
            ..with(WorkloadKind::Produce)
        };
        assert_eq!(produce.groups(), 0);
    }
}
