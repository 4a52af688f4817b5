//! Test (b) of the cluster: three brokers, each in its own network namespace, a topic
//! with replication factor 3 under `acks=all` load from librdkafka, and the leader cut
//! off from the other brokers by taking its replication link down (clients still reach
//! it). The cut-off leader must stop acknowledging, the majority must elect a new
//! leader that acknowledges, nothing acknowledged may be lost, and when the link comes
//! back the old leader must drop what it appended alone (its divergent suffix) and
//! follow: at the end every replica's log holds the same batches.
//!
//! Needs root and network namespaces; where they are missing the test says why and
//! skips.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{FutureProducer, FutureRecord};
use strata_engine::{run_local, Log, LogConfig, LogEnv};
use strata_tests::cluster_kafka::{check_log, create_replicated, read_all};
use strata_tests::cluster_netns::{unavailable, NetnsCluster};
use strata_tests::kafka::producer;
use strata_tests::kafka_wire::KafkaWire;

const TOPIC: &str = "cutoff";
/// Kafka's REQUEST_TIMED_OUT and NOT_LEADER_OR_FOLLOWER.
const REQUEST_TIMED_OUT: i16 = 7;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// Produces sent straight to the cut-off leader.
const CUT_OFF_PRODUCES: usize = 4;
/// Bound on waiting for a leader change, a catch-up.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(60);
/// Bound on one `send` (each delivery is also bounded by `message.timeout.ms`).
const SEND_DEADLINE: Duration = Duration::from_secs(60);

/// (leader, leader epoch) of `TOPIC`-0 as the broker at `addr` tells it (-1 for none).
fn leader_seen_by(addr: &str) -> (i32, i32) {
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]);
    req.allow_auto_topic_creation = false;
    let resp: MetadataResponse = KafkaWire::connect(addr).call(ApiKey::Metadata, 12, &req);
    resp.topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or((-1, -1), |p| (p.leader_id.0, p.leader_epoch))
}

/// Sends `record-{from}..record-{to}` to `TOPIC`-0 and notes each acknowledged one;
/// no new chunk is sent after [`SEND_DEADLINE`].
fn send(p: &FutureProducer, from: usize, to: usize, acked: &mut Vec<(usize, i64)>) {
    let values: Vec<(usize, String)> = (from..to).map(|i| (i, format!("record-{i:06}"))).collect();
    let deadline = Instant::now() + SEND_DEADLINE;
    for chunk in values.chunks(25) {
        if Instant::now() > deadline {
            eprintln!(
                "sending stopped at the deadline, {} acknowledged so far",
                acked.len()
            );
            return;
        }
        let mut deliveries = Vec::new();
        for (i, v) in chunk {
            if let Ok(d) = p.send_result(FutureRecord::<(), _>::to(TOPIC).partition(0).payload(v)) {
                deliveries.push((*i, d));
            }
        }
        for (i, d) in deliveries {
            if let Ok(Ok(d)) = futures_lite::future::block_on(d) {
                acked.push((i, d.offset));
            }
        }
    }
}

/// Every batch of a stopped replica's log of `TOPIC`-0, as stored.
fn stored_batches(data_dir: &Path) -> Vec<Vec<u8>> {
    let dir = data_dir.join(format!("{TOPIC}-0"));
    run_local(move || async move {
        let log = Log::open(&dir, LogConfig::default(), LogEnv::default())
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
        let end = log.log_end_offset();
        let mut next = log.log_start_offset();
        let mut out = Vec::new();
        let mut reads = 0usize;
        while next < end {
            reads += 1;
            assert!(reads < 100_000, "reading {} does not end", dir.display());
            let r = log
                .read(next, 1 << 20, Some(end))
                .await
                .unwrap_or_else(|e| panic!("read {} at {next}: {e}", dir.display()));
            assert!(
                !r.batches.is_empty(),
                "{}: no batch at {next}",
                dir.display()
            );
            for b in r.batches {
                let h = strata_schema::BatchHeader::decode(&b).expect("stored batch header");
                next = h.base_offset + i64::from(h.last_offset_delta) + 1;
                out.push(b.to_vec());
            }
        }
        out
    })
}

#[test]
fn a_cut_off_leader_stops_acknowledging_is_replaced_and_truncates_when_it_returns() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: cluster_netns needs network namespaces: {why}");
        return;
    }
    let mut c = NetnsCluster::start(3);
    let bootstrap = c.kafka_bootstrap();
    create_replicated(&bootstrap, TOPIC, 1, 3);
    let deadline = Instant::now() + CONVERGE_DEADLINE;
    let (old, old_epoch) = loop {
        let seen = leader_seen_by(&c.kafka_addr(0));
        if seen.0 > 0 {
            break seen;
        }
        assert!(Instant::now() < deadline, "no leader\n{}", c.stderr_tails());
        std::thread::sleep(Duration::from_millis(200));
    };
    let old_i = old as usize - 1;
    eprintln!("leader of {TOPIC}-0: broker {old} at epoch {old_epoch}");

    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "30000"),
            ("request.timeout.ms", "3000"),
            ("linger.ms", "2"),
        ],
    );
    let mut acked: Vec<(usize, i64)> = Vec::new();
    send(&p, 0, 500, &mut acked);
    assert_eq!(
        acked.len(),
        500,
        "a healthy cluster acknowledges everything"
    );

    eprintln!("cutting broker {old} off");
    c.cut(old_i);
    // Straight to the cut-off leader: while it still believes it leads it appends the
    // record and waits for a majority that never comes (its divergent suffix); once
    // check-quorum made it step down it refuses. It never acknowledges.
    let mut wire = KafkaWire::connect(&c.kafka_addr(old_i));
    let mut codes = Vec::new();
    for n in 0..CUT_OFF_PRODUCES {
        let (r, _) = wire.produce_one(TOPIC, 0, format!("cutoff-{n}").as_bytes(), -1, 2_000, 9);
        assert_ne!(
            r.error_code, 0,
            "the cut-off leader acknowledged cutoff-{n} at offset {}",
            r.base_offset
        );
        codes.push(r.error_code);
    }
    eprintln!("the cut-off leader answered {codes:?}");
    assert_eq!(
        codes[0], REQUEST_TIMED_OUT,
        "the first produce after the cut should be appended and time out waiting for a majority"
    );
    assert!(
        codes
            .iter()
            .all(|c| [REQUEST_TIMED_OUT, NOT_LEADER_OR_FOLLOWER].contains(c)),
        "{codes:?}"
    );

    // The majority elects a new leader, at a newer epoch.
    let other = (0..c.len()).find(|i| *i != old_i).expect("another broker");
    let deadline = Instant::now() + CONVERGE_DEADLINE;
    let (new, new_epoch) = loop {
        let seen = leader_seen_by(&c.kafka_addr(other));
        if seen.0 > 0 && seen.0 != old {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader while broker {old} is cut off\n{}",
            c.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("new leader: broker {new} at epoch {new_epoch}");
    assert!(new_epoch > old_epoch, "epoch {new_epoch} after {old_epoch}");
    let before = acked.len();
    send(&p, 500, 1000, &mut acked);
    assert!(
        acked.len() > before,
        "nothing acknowledged by the new leader\n{}",
        c.stderr_tails()
    );

    eprintln!("healing broker {old}'s link");
    c.heal(old_i);
    send(&p, 1000, 1500, &mut acked);
    // The old leader follows again: a consumer fetch there (served by a follower from
    // Fetch v11 on) reaches the leader's high watermark.
    let leader_hwm = high_watermark_at(&c.kafka_addr(new as usize - 1));
    let deadline = Instant::now() + CONVERGE_DEADLINE;
    while high_watermark_at(&c.kafka_addr(old_i)) < leader_hwm {
        assert!(
            Instant::now() < deadline,
            "broker {old} did not catch up to {leader_hwm}\n{}",
            c.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let seen = read_all(&bootstrap, TOPIC, &acked);
    let cut_off: Vec<&String> = seen
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v.starts_with("cutoff-"))
        .collect();
    assert!(
        cut_off.is_empty(),
        "unacknowledged records committed: {cut_off:?}"
    );
    check_log(&seen, &acked);

    // Every replica holds the same batches, byte for byte: the old leader dropped
    // what it appended alone.
    for i in 0..c.len() {
        c.stop(i);
    }
    let logs: Vec<Vec<Vec<u8>>> = (0..c.len())
        .map(|i| stored_batches(&c.data_dir(i)))
        .collect();
    let acked_end = acked.iter().map(|(_, o)| *o).max().unwrap_or(0);
    for (i, log) in logs.iter().enumerate() {
        let last = log
            .last()
            .and_then(|b| strata_schema::BatchHeader::decode(b).ok())
            .map_or(-1, |h| h.base_offset + i64::from(h.last_offset_delta));
        assert!(
            last >= acked_end,
            "broker {}'s log ends at {last}, before the last acknowledged offset {acked_end}",
            i + 1
        );
    }
    let shortest = logs.iter().map(Vec::len).min().unwrap_or(0);
    let distinct: BTreeSet<&[Vec<u8>]> = logs.iter().map(|l| &l[..shortest]).collect();
    assert_eq!(
        distinct.len(),
        1,
        "the replicas' logs differ (batches per broker: {:?})",
        logs.iter().map(Vec::len).collect::<Vec<_>>()
    );
    eprintln!(
        "{} acknowledged, {} batches on every replica",
        acked.len(),
        shortest
    );
}

/// The high watermark of `TOPIC`-0 a consumer fetch (v12, from offset 0, no rack) at
/// `addr` reports; -1 when it is refused.
fn high_watermark_at(addr: &str) -> i64 {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 0;
    req.min_bytes = 0;
    req.max_bytes = 1 << 20;
    req.topics = vec![FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partitions(vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 16)])];
    let resp: FetchResponse = KafkaWire::connect(addr).call(ApiKey::Fetch, 12, &req);
    resp.responses
        .first()
        .and_then(|t| t.partitions.first())
        .filter(|p| p.error_code == 0)
        .map_or(-1, |p| p.high_watermark)
}
