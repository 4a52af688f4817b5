//! `strata consume`: reads records of a topic and prints them as text or JSON —
//! alone (every partition, or one), or as a member of a consumer group, which
//! commits what it printed after each poll (at least once: a record printed and
//! not yet committed when the process dies is printed again by whoever takes over
//! its partition).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use strata_client::{
    Admin, AdminConfig, AssignmentStrategy, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset,
};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct ConsumeArgs {
    topic: String,
    /// Consume as a member of this consumer group: the broker assigns the
    /// partitions, and what is printed is committed.
    #[arg(long)]
    group: Option<String>,
    /// With --group: how partitions are spread over the members.
    #[arg(long, default_value = "range", value_parser = parse_strategy)]
    strategy: AssignmentStrategy,
    /// With --group: the broker drops this member after this long without a heartbeat.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: u64,
    /// Where to start: beginning, end, an offset, or @UNIX_MS. With --group: where
    /// partitions without a committed offset start (beginning or end).
    #[arg(long, default_value = "beginning")]
    from: String,
    /// Only this partition (default: all).
    #[arg(long)]
    partition: Option<u32>,
    /// Exit after this many records.
    #[arg(long)]
    count: Option<u64>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

enum Start {
    Beginning,
    End,
    Offset(i64),
    Time(i64),
}

fn parse_start(s: &str) -> anyhow::Result<Start> {
    Ok(match s {
        "beginning" => Start::Beginning,
        "end" => Start::End,
        _ => match s.strip_prefix('@') {
            Some(ms) => Start::Time(
                ms.parse()
                    .with_context(|| format!("--from @{ms}: not a unix time in ms"))?,
            ),
            None => Start::Offset(s.parse().with_context(|| {
                format!("--from {s}: expected beginning, end, an offset or @UNIX_MS")
            })?),
        },
    })
}

fn parse_strategy(s: &str) -> Result<AssignmentStrategy, String> {
    s.parse()
}

pub fn run(args: ConsumeArgs, brokers: Vec<String>) -> anyhow::Result<()> {
    if let Some(group) = args.group.clone() {
        return run_group(&group, args, brokers);
    }
    let start = parse_start(&args.from)?;
    let admin = Admin::connect(AdminConfig {
        brokers: brokers.clone(),
        ..AdminConfig::default()
    })?;
    let topic = admin
        .describe_topic(&args.topic)
        .wait()
        .with_context(|| format!("cannot consume {}", args.topic))?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) if (p as usize) < topic.partitions.len() => vec![p],
        Some(p) => bail!(
            "topic {} has {} partition(s); there is no partition {p}",
            args.topic,
            topic.partitions.len()
        ),
        None => (0..topic.partitions.len() as u32).collect(),
    };
    let mut consumer = Consumer::connect(ConsumerConfig {
        brokers,
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    })?;
    let assignment: Vec<(&str, u32)> = partitions
        .iter()
        .map(|&p| (args.topic.as_str(), p))
        .collect();
    consumer.assign(&assignment);
    for &p in &partitions {
        match start {
            Start::Beginning => consumer.seek_to_beginning(&args.topic, p)?,
            Start::End => consumer.seek_to_end(&args.topic, p)?,
            Start::Offset(o) => consumer.seek(&args.topic, p, o)?,
            Start::Time(ms) => consumer.seek_to_timestamp(&args.topic, p, ms)?,
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut seen = 0u64;
    loop {
        let records = consumer.poll(Duration::from_millis(500))?;
        for r in records.iter() {
            print_record(&mut out, &r, args.format)?;
            seen += 1;
            if args.count.is_some_and(|c| seen >= c) {
                out.flush()?;
                return Ok(());
            }
        }
        out.flush()?;
    }
}

/// `strata consume --group`: subscribe, print, commit what was printed.
fn run_group(group: &str, args: ConsumeArgs, brokers: Vec<String>) -> anyhow::Result<()> {
    if args.partition.is_some() {
        bail!("--partition and --group exclude each other: the group assigns the partitions");
    }
    let reset = match parse_start(&args.from)? {
        Start::Beginning => OffsetReset::Earliest,
        Start::End => OffsetReset::Latest,
        Start::Offset(_) | Start::Time(_) => bail!(
            "with --group, --from is beginning or end (where partitions without a committed offset start); move the group with `strata group reset-offsets {group} --topic {} --to ...`",
            args.topic
        ),
    };
    let session_timeout = Duration::from_millis(args.session_timeout_ms);
    let mut consumer = Consumer::connect(ConsumerConfig {
        brokers,
        auto_offset_reset: reset,
        session_timeout,
        heartbeat_interval: (session_timeout / 3).max(Duration::from_millis(50)),
        // Commits follow what was printed, below.
        enable_auto_commit: false,
        ..ConsumerConfig::default()
    })?;
    consumer
        .subscribe(group, &[args.topic.as_str()], args.strategy)
        .with_context(|| format!("cannot join group {group}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut seen = 0u64;
    loop {
        let records = consumer.poll(Duration::from_millis(500))?;
        let mut printed: BTreeMap<(String, u32), i64> = BTreeMap::new();
        let mut done = false;
        for r in records.iter() {
            print_record(&mut out, &r, args.format)?;
            printed.insert((r.topic().to_owned(), r.partition()), r.offset() + 1);
            seen += 1;
            if args.count.is_some_and(|c| seen >= c) {
                done = true;
                break;
            }
        }
        out.flush()?;
        if !printed.is_empty() {
            let offsets: Vec<(&str, u32, i64)> = printed
                .iter()
                .map(|((t, p), o)| (t.as_str(), *p, *o))
                .collect();
            if let Err(e) = consumer.commit_offsets_sync(&offsets) {
                // The group moved on (rebalance); the next poll rejoins, and the new
                // owner re-reads from the last commit.
                eprintln!("warning: commit failed: {e}");
            }
        }
        if done {
            return Ok(());
        }
    }
}

fn text(b: Option<&[u8]>) -> String {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn print_record(
    out: &mut impl Write,
    r: &ConsumerRecord<'_>,
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Text => match r.key() {
            Some(k) => writeln!(out, "{}\t{}", String::from_utf8_lossy(k), text(r.value()))?,
            None => writeln!(out, "{}", text(r.value()))?,
        },
        Format::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = r
                .headers()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        v.map(|v| String::from_utf8_lossy(v).into_owned()).into(),
                    )
                })
                .collect();
            let obj = serde_json::json!({
                "topic": r.topic(),
                "partition": r.partition(),
                "offset": r.offset(),
                "timestamp": r.timestamp_ms(),
                "key": r.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                "value": r.value().map(|v| String::from_utf8_lossy(v).into_owned()),
                "headers": headers,
            });
            writeln!(out, "{obj}")?;
        }
    }
    Ok(())
}
