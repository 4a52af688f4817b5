//! A broker killed with SIGKILL while a producer sends with acks=all loses nothing it
//! acknowledged: after a restart on the same data dir every acknowledged record is
//! readable at its offset with its value, each partition holds only records that were
//! sent, in the order they were sent, with dense offsets.
//!
//! Several rounds run against the same data dir, so later rounds also recover logs
//! that an earlier crash left behind, and some rounds also kill a restart while it
//! opens (recovers) the logs before the restart that is checked. The kill moment (acknowledgements seen before
//! it, plus a delay) is drawn from a seed: `STRATA_BROKER_KILL_SEED` (decimal or
//! 0x-hex) replays a run.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_client::{Acks, Admin, AdminConfig, Producer, ProducerConfig, ProducerRecord};
use strata_tests::broker::{high_watermark, read_range, TestBroker};
use strata_tests::rng::SplitMix64;

const TOPIC: &str = "acked";
const PARTITIONS: u32 = 4;
/// Kill-and-restart rounds on one data dir.
const ROUNDS: u64 = 16;
/// One round in this many also kills a restart while it opens the logs.
const KILL_DURING_START_ONE_IN: u64 = 2;
/// Delay of that kill after the spawn, in `[0, max)` ms (a start takes about this long).
const KILL_DURING_START_MS_MAX: u64 = 60;
/// Root seed when `STRATA_BROKER_KILL_SEED` is not set.
const SEED_DEFAULT: u64 = 0x5354_5241_4b49_4c4c;
/// Acknowledgements seen before the kill, in `[min, max)`.
const KILL_AFTER_ACKS_MIN: u64 = 300;
const KILL_AFTER_ACKS_MAX: u64 = 3_000;
/// Extra delay before the kill, in `[0, max)` ms, so it lands at any point of a batch.
const KILL_DELAY_MS_MAX: u64 = 20;
/// The kill comes at the latest this long after the round started, acks or not.
const KILL_DEADLINE: Duration = Duration::from_secs(10);
/// Records one round sends at most (the kill comes long before).
const SENDS_PER_ROUND_MAX: u64 = 500_000;
/// Sends awaited at once by the producing thread.
const PENDING_SENDS_MAX: usize = 2_000;
/// Bytes of a record value.
const VALUE_BYTES: usize = 200;

fn seed() -> u64 {
    match std::env::var("STRATA_BROKER_KILL_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("STRATA_BROKER_KILL_SEED={s} is not a number"))
        }
        Err(_) => SEED_DEFAULT,
    }
}

/// The value of record `seq` of `round`: its identity, then filler derived from it.
fn value_of(round: u64, seq: u64) -> Vec<u8> {
    let mut value = format!("r{round} s{seq} ").into_bytes();
    let mut filler = SplitMix64::new(round << 40 | seq);
    while value.len() < VALUE_BYTES {
        value.push(b'a' + (filler.next_u64() % 26) as u8);
    }
    value
}

/// `(round, seq)` of a value written by [`value_of`], checking its filler.
fn identity_of(value: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut words = text.split(' ');
    let round = words.next()?.strip_prefix('r')?.parse().ok()?;
    let seq = words.next()?.strip_prefix('s')?.parse().ok()?;
    (value_of(round, seq) == value).then_some((round, seq))
}

/// One acknowledged record.
#[derive(Clone, Copy, Debug)]
struct Acked {
    partition: u32,
    offset: i64,
    round: u64,
    seq: u64,
}

/// What the producing thread saw.
struct Produced {
    acked: Vec<Acked>,
    failed: u64,
    first_error: Option<String>,
}

/// Sends records of `round` round-robin over the partitions until a send fails after
/// the kill (or `stop` is set), recording every acknowledgement.
fn produce(
    brokers: Vec<String>,
    round: u64,
    acked_count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Produced {
    let producer = Producer::connect(ProducerConfig {
        brokers,
        acks: Acks::All,
        // No resends: a batch is acknowledged once or fails (the broker is gone).
        retries: 0,
        linger: Duration::from_millis(1),
        request_timeout: Duration::from_secs(10),
        max_block: Duration::from_secs(10),
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let mut pending = VecDeque::new();
    let mut out = Produced {
        acked: Vec::new(),
        failed: 0,
        first_error: None,
    };
    let settle = |out: &mut Produced,
                  seq: u64,
                  result: strata_client::Result<strata_client::RecordMetadata>| {
        match result {
            Ok(meta) => {
                out.acked.push(Acked {
                    partition: meta.partition,
                    offset: meta.offset,
                    round,
                    seq,
                });
                acked_count.fetch_add(1, Ordering::Release);
            }
            Err(e) => {
                out.failed += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    };
    for seq in 0..SENDS_PER_ROUND_MAX {
        if out.first_error.is_some() || stop.load(Ordering::Acquire) {
            break;
        }
        let partition = (seq % u64::from(PARTITIONS)) as u32;
        let record = ProducerRecord::new(TOPIC, value_of(round, seq)).partition(partition);
        pending.push_back((seq, producer.send(record)));
        if pending.len() >= PENDING_SENDS_MAX {
            let (seq, send) = pending.pop_front().expect("non-empty");
            settle(&mut out, seq, send.wait());
        }
    }
    for (seq, send) in pending {
        settle(&mut out, seq, send.wait());
    }
    drop(producer);
    out
}

/// Checks every partition against everything acknowledged so far; returns the number
/// of records in the log.
fn verify(broker: &TestBroker, acked: &[Acked]) -> u64 {
    let admin = Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects");
    let mut total = 0;
    for partition in 0..PARTITIONS {
        let hw = high_watermark(&admin, TOPIC, partition);
        let records = read_range(&broker.brokers(), TOPIC, partition, 0, hw);
        assert_eq!(
            records.len() as i64,
            hw,
            "partition {partition}: records below the high watermark"
        );
        let mut by_offset = BTreeMap::new();
        let mut last = None;
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "partition {partition}: offsets are dense"
            );
            let value = r.value.as_deref().expect("a value");
            let id = identity_of(value).unwrap_or_else(|| {
                panic!(
                    "partition {partition} offset {}: a value that was never sent: {:?}",
                    r.offset,
                    String::from_utf8_lossy(value)
                )
            });
            assert_eq!(
                id.1 % u64::from(PARTITIONS),
                u64::from(partition),
                "offset {}: record of another partition",
                r.offset
            );
            assert!(
                last < Some(id),
                "partition {partition}: {id:?} after {last:?} at offset {}",
                r.offset
            );
            last = Some(id);
            by_offset.insert(r.offset, id);
        }
        for a in acked.iter().filter(|a| a.partition == partition) {
            assert_eq!(
                by_offset.get(&a.offset),
                Some(&(a.round, a.seq)),
                "acknowledged record r{} s{} at {partition}/{} is not there after the restart (high watermark {hw})\n{}",
                a.round,
                a.seq,
                a.offset,
                broker.stderr_tail()
            );
        }
        total += hw as u64;
    }
    total
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let seed = seed();
    println!("seed {seed:#x} (replay with STRATA_BROKER_KILL_SEED={seed:#x})");
    let mut rng = SplitMix64::new(seed);
    let mut broker = TestBroker::start();
    Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects")
    .create_topic(TOPIC, PARTITIONS, &[])
    .wait()
    .expect("create topic");

    let mut acked: Vec<Acked> = Vec::new();
    for round in 0..ROUNDS {
        let kill_after_acks = rng.range(KILL_AFTER_ACKS_MIN, KILL_AFTER_ACKS_MAX);
        let kill_delay = Duration::from_millis(rng.range(0, KILL_DELAY_MS_MAX));
        let acked_count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let producer = std::thread::spawn({
            let (brokers, acked_count, stop) = (
                broker.brokers(),
                Arc::clone(&acked_count),
                Arc::clone(&stop),
            );
            move || produce(brokers, round, acked_count, stop)
        });
        let started = Instant::now();
        while acked_count.load(Ordering::Acquire) < kill_after_acks
            && started.elapsed() < KILL_DEADLINE
        {
            if producer.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(kill_delay);
        let acked_at_kill = acked_count.load(Ordering::Acquire);
        broker.kill();
        stop.store(true, Ordering::Release);
        let produced = producer.join().expect("producer thread");
        assert!(
            acked_at_kill > 0,
            "round {round}: nothing acknowledged in {} ms; the broker is not taking acks=all produce\n{}",
            started.elapsed().as_millis(),
            broker.stderr_tail()
        );
        assert!(
            produced.first_error.is_some(),
            "round {round}: the producer saw no error although the broker was killed"
        );
        if rng.one_in(KILL_DURING_START_ONE_IN) {
            // Crash the recovery itself once before the restart that is checked.
            let delay = Duration::from_millis(rng.range(0, KILL_DURING_START_MS_MAX));
            println!(
                "round {round}: killing a restart after {} ms",
                delay.as_millis()
            );
            broker.restart_and_kill_after(delay);
        }
        let restart = broker.restart();
        let total = verify(&broker, &{
            let mut all = acked.clone();
            all.extend_from_slice(&produced.acked);
            all
        });
        println!(
            "round {round}: killed after {acked_at_kill} acks (+{} ms); {} acknowledged, {} failed ({}); \
             restart took {} ms; {total} records in the log",
            kill_delay.as_millis(),
            produced.acked.len(),
            produced.failed,
            produced.first_error.as_deref().unwrap_or("-"),
            restart.as_millis()
        );
        acked.extend_from_slice(&produced.acked);
    }
    broker.stop_gracefully();
}
