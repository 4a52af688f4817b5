//! `strata consume`: reads records of a topic and prints them as text or JSON.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use strata_client::{Admin, AdminConfig, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct ConsumeArgs {
    topic: String,
    /// Consumer group (consumer groups arrive with the group coordinator; not yet served).
    #[arg(long)]
    group: Option<String>,
    /// Where to start: beginning, end, an offset, or @UNIX_MS.
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

pub fn run(args: ConsumeArgs, brokers: Vec<String>) -> anyhow::Result<()> {
    if let Some(g) = &args.group {
        bail!("consumer groups are not served by this broker version yet (asked for group {g}); consume without --group");
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
