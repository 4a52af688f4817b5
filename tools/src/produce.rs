//! `strata produce`: one record per input line, optional `key<SEP>value` split.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use strata_client::{Acks, Producer, ProducerConfig, ProducerRecord, SendFuture};

/// Sends in flight before the oldest is awaited (bounds memory of pending results).
const PENDING_SENDS_MAX: usize = 10_000;

#[derive(Args)]
pub struct ProduceArgs {
    topic: String,
    /// 0 (no wait), 1 (written by the leader) or all (durable).
    #[arg(long, default_value = "all")]
    acks: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long)]
    key_separator: Option<String>,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
}

pub fn run(args: ProduceArgs, brokers: Vec<String>) -> anyhow::Result<()> {
    let acks: Acks = args.acks.parse()?;
    let producer = Producer::connect(ProducerConfig {
        brokers,
        acks,
        ..ProducerConfig::default()
    })?;
    let (input, total_bytes): (Box<dyn Read>, Option<u64>) = match &args.file {
        Some(p) => {
            let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        None => (Box::new(std::io::stdin()), None),
    };
    let show_progress = std::io::stderr().is_terminal() && total_bytes.is_some_and(|b| b > 1 << 20);
    let started = Instant::now();
    let mut pending: std::collections::VecDeque<SendFuture> = Default::default();
    let (mut records, mut bytes_read) = (0u64, 0u64);
    let mut first_error = None;
    for line in BufReader::new(input).lines() {
        let line = line.context("cannot read input")?;
        bytes_read += line.len() as u64 + 1;
        let record = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => ProducerRecord::new(&args.topic, v.as_bytes().to_vec())
                    .key(k.as_bytes().to_vec()),
                None => ProducerRecord::new(&args.topic, line.into_bytes()),
            },
            None => ProducerRecord::new(&args.topic, line.into_bytes()),
        };
        pending.push_back(producer.send(record));
        records += 1;
        if pending.len() >= PENDING_SENDS_MAX {
            if let Some(Err(e)) = pending.pop_front().map(|f| f.wait()) {
                first_error.get_or_insert(e);
                break;
            }
        }
        if show_progress && records % 10_000 == 0 {
            let pct = bytes_read as f64 * 100.0 / total_bytes.unwrap_or(1) as f64;
            eprint!("\r{records} records, {pct:.0}%");
        }
    }
    producer.flush();
    for f in pending {
        if let Err(e) = f.wait() {
            first_error.get_or_insert(e);
        }
    }
    if show_progress {
        eprintln!();
    }
    if let Some(e) = first_error {
        return Err(e).context(format!("produce to {} failed", args.topic));
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {records} record(s), {bytes_read} bytes to {} in {secs:.2} s ({:.1} MB/s)",
        args.topic,
        bytes_read as f64 / secs.max(1e-9) / 1e6
    );
    producer.close();
    Ok(())
}
