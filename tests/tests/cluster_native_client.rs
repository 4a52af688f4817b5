//! A 3-broker cluster of real `strata` processes on 127.0.0.1 and the strata-client
//! (native protocol): a topic of several partitions with replication factor 3, an
//! idempotent producer under `acks=all` load, and a partition's leader SIGKILLed
//! twice (restarted in between). The producer must carry on on each new leader, and
//! every acknowledged record must be in its partition exactly once, at its
//! acknowledged offset, in production order. The read-back uses the strata-client
//! consumer, which must follow a leader killed while it reads.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use strata_client::{Acks, Producer, ProducerConfig, ProducerRecord, SendFuture};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::check_log;
use strata_tests::cluster_native::{
    create_replicated_native, leader_of_native, native_admin, native_reader, read_until,
    SeenByPartition,
};

const TOPIC: &str = "native-failover";
const PARTITIONS: u32 = 3;
/// Records the producer attempts, round-robin over the partitions.
const RECORDS: usize = 3_000;
/// Records in flight at once.
const WINDOW: usize = 60;
/// Acknowledgements before the first kill, the restart, and the second kill.
const FIRST_KILL_AFTER: usize = 800;
const RESTART_AFTER: usize = 1_400;
const SECOND_KILL_AFTER: usize = 2_000;
/// Bound on the whole produce phase.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(240);
/// Bound on reading everything back.
const READ_DEADLINE: Duration = Duration::from_secs(120);
/// Fetch size per partition of the read-back: a few batches, so that reading takes
/// many fetches and the leader dies between them.
const READ_PARTITION_MAX_BYTES: u32 = 4096;

fn value(i: usize) -> String {
    format!("record-{i:06}")
}

#[test]
fn strata_client_follows_leaders_across_sigkills_and_loses_nothing_acknowledged() {
    let mut cluster = TestCluster::start(3, 1);
    let brokers = cluster.native_brokers();
    let admin = native_admin(&brokers);
    create_replicated_native(&admin, TOPIC, PARTITIONS, 3);

    let producer = Producer::connect(ProducerConfig {
        brokers: brokers.clone(),
        acks: Acks::All,
        enable_idempotence: true,
        linger: Duration::from_millis(2),
        retries: 10,
        retry_backoff: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(500),
        request_timeout: Duration::from_secs(30),
        ..ProducerConfig::default()
    })
    .expect("producer connects");

    let started = Instant::now();
    // (record index, offset) per partition, in acknowledgement order.
    let mut acked: HashMap<u32, Vec<(usize, i64)>> = HashMap::new();
    let mut acked_total = 0usize;
    let mut failed: Vec<String> = Vec::new();
    let mut killed: Option<usize> = None;
    let mut restarted = false;
    let mut second_kill: Option<usize> = None;
    let mut acked_at_first_kill = 0usize;
    let mut acked_at_second_kill = 0usize;
    let mut next = 0usize;
    while next < RECORDS && started.elapsed() < PRODUCE_DEADLINE {
        let end = (next + WINDOW).min(RECORDS);
        let sends: Vec<(usize, SendFuture)> = (next..end)
            .map(|i| {
                let partition = (i % PARTITIONS as usize) as u32;
                let record = ProducerRecord::new(TOPIC, value(i)).partition(partition);
                (i, producer.send(record))
            })
            .collect();
        for (i, f) in sends {
            match f.wait() {
                Ok(meta) => {
                    acked
                        .entry(meta.partition)
                        .or_default()
                        .push((i, meta.offset));
                    acked_total += 1;
                }
                Err(e) => failed.push(format!("{}: {e}", value(i))),
            }
        }
        next = end;
        if killed.is_none() && acked_total >= FIRST_KILL_AFTER {
            let leader = leader_of_native(&admin, TOPIC, 0) as usize;
            eprintln!("SIGKILL broker {leader} (leader of {TOPIC}-0) after {acked_total} acks");
            cluster.kill(leader - 1);
            killed = Some(leader);
            acked_at_first_kill = acked_total;
        }
        if let (Some(dead), false) = (killed, restarted) {
            if acked_total >= RESTART_AFTER {
                eprintln!("restart broker {dead} after {acked_total} acks");
                cluster.restart(dead - 1);
                restarted = true;
            }
        }
        if restarted && second_kill.is_none() && acked_total >= SECOND_KILL_AFTER {
            let leader = leader_of_native(&admin, TOPIC, 0) as usize;
            eprintln!("SIGKILL broker {leader} (leader of {TOPIC}-0) after {acked_total} acks");
            cluster.kill(leader - 1);
            second_kill = Some(leader);
            acked_at_second_kill = acked_total;
        }
    }
    eprintln!(
        "produced {next} records in {:?}: {acked_total} acknowledged, {} failed",
        started.elapsed(),
        failed.len()
    );
    let second = second_kill.expect("the second leader was never killed");
    assert!(
        acked_total > acked_at_second_kill && acked_at_second_kill > acked_at_first_kill,
        "the producer did not resume on the new leaders ({acked_at_first_kill} acks at the first kill, {acked_at_second_kill} at the second, {acked_total} in all)"
    );
    assert!(
        failed.is_empty(),
        "{} sends failed across the failovers, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    drop(producer);

    // Everything back, with the consumer bootstrapped on every broker (one of them
    // dead), then the leader of partition 0 killed while it reads: it must follow.
    cluster.restart(second - 1);
    let want: HashSet<String> = acked.values().flatten().map(|(i, _)| value(*i)).collect();
    let first: HashSet<String> = acked
        .values()
        .flat_map(|a| a.iter().take(a.len() / 3))
        .map(|(i, _)| value(*i))
        .collect();
    let mut reader = native_reader(&brokers, TOPIC, PARTITIONS, READ_PARTITION_MAX_BYTES);
    let mut seen: SeenByPartition = HashMap::new();
    assert!(
        read_until(&mut reader, &mut seen, &first, READ_DEADLINE),
        "the consumer did not read the first records back"
    );
    let read_before = seen.values().map(Vec::len).sum::<usize>();
    assert!(
        read_before < want.len(),
        "the consumer read everything before the kill: {read_before} records"
    );
    let leader = leader_of_native(&admin, TOPIC, 0) as usize;
    eprintln!(
        "SIGKILL broker {leader} (leader of {TOPIC}-0) after the consumer read {read_before} records"
    );
    cluster.kill(leader - 1);
    let complete = read_until(&mut reader, &mut seen, &want, READ_DEADLINE);
    for p in 0..PARTITIONS {
        let seen_p = seen.get(&p).map(Vec::as_slice).unwrap_or_default();
        let acked_p = acked.get(&p).map(Vec::as_slice).unwrap_or_default();
        eprintln!(
            "partition {p}: {} acknowledged, {} read",
            acked_p.len(),
            seen_p.len()
        );
        check_log(seen_p, acked_p);
    }
    assert!(complete, "not every acknowledged record was read back");
}
