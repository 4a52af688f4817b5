//! Operations on a 3-broker cluster of real `strata` processes, under `acks=all`
//! librdkafka load: a partition with two replicas reassigned to the third broker and
//! one of the two (the leader leaving, so leadership must move), a preferred-leader election,
//! and a broker decommissioned (UnregisterBroker moves its replicas away first). No
//! acknowledged record may be lost or reordered; each reassignment must complete,
//! ListPartitionReassignments must show none left, and the replica that left must have
//! deleted its data.
//!
//! The admin requests go over the Kafka wire directly (librdkafka's admin API has no
//! reassignment calls); every loop is bounded in count and time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{check_log, create_replicated, read_all};
use strata_tests::kafka::{consumer, producer};
use strata_tests::kafka_wire::KafkaWire;

/// Kafka error codes the tests expect.
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const REASSIGNMENT_IN_PROGRESS: i16 = 60;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
/// Brokers in the cluster (all controller voters) and replicas per partition: one
/// broker is always free to move a replica to.
const BROKERS: usize = 3;
const RF: i32 = 2;
/// Records in flight at once; the bound on the whole produce phase.
const WINDOW: usize = 25;
const PRODUCE_DEADLINE: Duration = Duration::from_secs(240);
/// How long a reassignment may take to complete.
const MOVE_DEADLINE: Duration = Duration::from_secs(90);

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A producer thread sending `record-NNNNNN` to `topic`-0 with acks=all until told
/// to stop; it returns what was acknowledged, at which offset.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<std::sync::Mutex<usize>>,
    thread: JoinHandle<Vec<(usize, i64)>>,
}

impl Load {
    fn start(bootstrap: &str, topic: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(std::sync::Mutex::new(0usize));
        let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
        let (s, c) = (Arc::clone(&stop), Arc::clone(&count));
        let thread = std::thread::spawn(move || {
            let p = producer(
                &bootstrap,
                &[
                    ("acks", "all"),
                    ("enable.idempotence", "true"),
                    ("message.timeout.ms", "60000"),
                    ("linger.ms", "2"),
                ],
            );
            let started = Instant::now();
            let mut acked = Vec::new();
            let mut next = 0usize;
            while !s.load(Ordering::Relaxed) && started.elapsed() < PRODUCE_DEADLINE {
                let mut ds = Vec::with_capacity(WINDOW);
                for i in next..next + WINDOW {
                    let v = format!("record-{i:06}");
                    if let Ok(d) =
                        p.send_result(FutureRecord::<(), _>::to(&topic).partition(0).payload(&v))
                    {
                        ds.push((i, d));
                    }
                }
                next += WINDOW;
                for (i, d) in ds {
                    if let Ok(Ok(d)) = futures_lite::future::block_on(d) {
                        acked.push((i, d.offset));
                    }
                }
                *c.lock().unwrap() = acked.len();
            }
            acked
        });
        Load {
            stop,
            acked: count,
            thread,
        }
    }

    fn acked(&self) -> usize {
        *self.acked.lock().unwrap()
    }

    /// Waits (bounded) until `n` more records are acknowledged than now.
    fn wait_for_more(&self, n: usize) {
        let want = self.acked() + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked() < want {
            assert!(
                Instant::now() < deadline,
                "the producer stalled at {} acknowledgements",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(self) -> Vec<(usize, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("producer thread")
    }
}

/// (replicas, leader) of `topic`-`partition` in the cluster's Kafka metadata.
fn placement(c: &BaseConsumer, topic: &str, partition: i32) -> (Vec<i32>, i32) {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let t = &md.topics()[0];
    let p = t
        .partitions()
        .iter()
        .find(|p| p.id() == partition)
        .expect("the partition");
    (p.replicas().to_vec(), p.leader())
}

fn alter(
    wire: &mut KafkaWire,
    topic: &str,
    partition: i32,
    replicas: Option<Vec<i32>>,
) -> (i16, String) {
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    replicas.map(|r| r.into_iter().map(BrokerId).collect()),
                )])]);
    let resp: AlterPartitionReassignmentsResponse =
        wire.call(ApiKey::AlterPartitionReassignments, 0, &req);
    assert_eq!(resp.error_code, NONE);
    let p = &resp.responses[0].partitions[0];
    (
        p.error_code,
        p.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// The reassignments in progress: (topic, partition, adding, removing).
fn in_progress(wire: &mut KafkaWire) -> Vec<(String, i32, Vec<i32>, Vec<i32>)> {
    let resp: ListPartitionReassignmentsResponse = wire.call(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000),
    );
    assert_eq!(resp.error_code, NONE);
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.adding_replicas.iter().map(|b| b.0).collect(),
                    p.removing_replicas.iter().map(|b| b.0).collect(),
                )
            })
        })
        .collect()
}

/// Waits (bounded) until no reassignment is in progress.
fn wait_until_none_in_progress(wire: &mut KafkaWire, cluster: &TestCluster) {
    let deadline = Instant::now() + MOVE_DEADLINE;
    loop {
        let left = in_progress(wire);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reassignments still in progress after {MOVE_DEADLINE:?}: {left:?}\n{}",
            cluster.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn elect(wire: &mut KafkaWire, election_type: i8, topic: &str, partition: i32) -> (i16, String) {
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(30_000)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(name(topic))
            .with_partitions(vec![partition])]));
    let resp: ElectLeadersResponse = wire.call(ApiKey::ElectLeaders, 2, &req);
    let p = &resp.replica_election_results[0].partition_result[0];
    (
        p.error_code,
        p.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// Waits (bounded) until the Kafka metadata shows `want` for the partition.
fn wait_for_placement(
    c: &BaseConsumer,
    topic: &str,
    what: &str,
    want: impl Fn(&[i32], i32) -> bool,
) -> (Vec<i32>, i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (replicas, leader) = placement(c, topic, 0);
        if want(&replicas, leader) {
            return (replicas, leader);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: metadata shows replicas {replicas:?}, leader {leader}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_partition_moves_to_other_brokers_and_back_to_its_preferred_leader_under_load() {
    let cluster = TestCluster::start(BROKERS, 1);
    let bootstrap = cluster.kafka_bootstrap();
    let topic = "moving";
    create_replicated(&bootstrap, topic, 1, RF);
    let probe = consumer(&bootstrap, None, &[]);
    let (replicas, leader) = wait_for_placement(&probe, topic, "a first leader", |_, l| l > 0);
    let spare = (1..=BROKERS as i32)
        .find(|b| !replicas.contains(b))
        .expect("a broker without a replica");
    eprintln!("{topic}-0: replicas {replicas:?}, leader {leader}, spare broker {spare}");
    let mut wire = KafkaWire::connect(&cluster.kafka_addr(0));

    // Refusals first, as Kafka sends them.
    let bad = alter(&mut wire, topic, 0, Some(vec![1, 2, 99])).0;
    assert_eq!(bad, INVALID_REPLICA_ASSIGNMENT);
    assert_eq!(
        alter(&mut wire, topic, 0, Some(vec![1, 1, 2])).0,
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        alter(&mut wire, "nope", 0, Some(vec![1])).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        alter(&mut wire, topic, 0, None).0,
        NO_REASSIGNMENT_IN_PROGRESS
    );
    // The broker asked may learn the first leader a moment after the probe's broker.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (unclean, why) = loop {
        let (code, why) = elect(&mut wire, 1, topic, 0);
        if code == ELECTION_NOT_NEEDED || Instant::now() > deadline {
            break (code, why);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(unclean, ELECTION_NOT_NEEDED, "{why}");

    let load = Load::start(&bootstrap, topic);
    load.wait_for_more(300);

    // Move off the leader's broker onto the spare one; the spare is preferred.
    let mut target = vec![spare];
    target.extend(replicas.iter().copied().filter(|r| *r != leader));
    let (code, why) = alter(&mut wire, topic, 0, Some(target.clone()));
    assert_eq!(code, NONE, "{why}");
    match in_progress(&mut wire).as_slice() {
        [] => eprintln!("the move completed before it could be listed"),
        [(t, 0, adding, removing)] => {
            assert_eq!(t, topic);
            assert_eq!(adding, &vec![spare]);
            assert_eq!(removing, &vec![leader]);
        }
        other => panic!("unexpected reassignments in progress: {other:?}"),
    }
    wait_until_none_in_progress(&mut wire, &cluster);
    let (moved, new_leader) = wait_for_placement(&probe, topic, "the target", |r, l| {
        r == target.as_slice() && target.contains(&l)
    });
    eprintln!("moved: replicas {moved:?}, leader {new_leader}");
    load.wait_for_more(300);

    // The broker that left closes the partition and deletes its data.
    let gone = cluster
        .data_dir(leader as usize - 1)
        .join(format!("{topic}-0"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while gone.exists() {
        assert!(Instant::now() < deadline, "{} still exists", gone.display());
        std::thread::sleep(Duration::from_millis(200));
    }

    // Reorder the replicas so that a broker other than the leader is preferred (the
    // same set: nothing moves), then elect it.
    let preferred = *target
        .iter()
        .find(|b| **b != new_leader)
        .expect("another replica");
    let mut reordered = vec![preferred];
    reordered.extend(target.iter().copied().filter(|b| *b != preferred));
    let (code, why) = alter(&mut wire, topic, 0, Some(reordered.clone()));
    assert_eq!(code, NONE, "{why}");
    wait_until_none_in_progress(&mut wire, &cluster);
    wait_for_placement(&probe, topic, "the reordered replicas", |r, _| {
        r == reordered.as_slice()
    });
    let (code, why) = elect(&mut wire, 0, topic, 0);
    assert_eq!(code, NONE, "{why}");
    wait_for_placement(&probe, topic, "the preferred leader", |_, l| l == preferred);
    let (again, _) = elect(&mut wire, 0, topic, 0);
    assert_eq!(again, ELECTION_NOT_NEEDED);
    load.wait_for_more(300);

    let acked = load.finish();
    eprintln!("{} records acknowledged", acked.len());
    let seen = read_all(&bootstrap, topic, &acked);
    check_log(&seen, &acked);
}

#[test]
fn a_decommissioned_broker_hands_its_replicas_over_then_leaves() {
    // Every replica of the broker must have somewhere to go among the two that stay:
    // `__consumer_offsets` (made by the load's group requests) gets 2 replicas, not 3.
    let dir = tempfile::tempdir().expect("a config dir");
    let config = dir.path().join("strata.toml");
    std::fs::write(&config, "offsets.topic.replication.factor = 2\n").expect("write the config");
    let config = config.to_str().expect("a UTF-8 path").to_owned();
    let cluster = TestCluster::start_with(BROKERS, 1, |_| vec!["--config".into(), config.clone()]);
    let bootstrap = cluster.kafka_bootstrap();
    let topic = "leaving";
    create_replicated(&bootstrap, topic, 1, RF);
    let probe = consumer(&bootstrap, None, &[]);
    let (replicas, leader) = wait_for_placement(&probe, topic, "a first leader", |_, l| l > 0);
    // Decommission the leader's broker; ask a broker that stays.
    let stays = (1..=BROKERS as i32)
        .find(|b| *b != leader)
        .expect("another broker");
    let mut wire = KafkaWire::connect(&cluster.kafka_addr(stays as usize - 1));
    let load = Load::start(&bootstrap, topic);
    load.wait_for_more(300);

    let deadline = Instant::now() + MOVE_DEADLINE;
    let mut asked = 0usize;
    loop {
        let resp: UnregisterBrokerResponse = wire.call(
            ApiKey::UnregisterBroker,
            0,
            &UnregisterBrokerRequest::default().with_broker_id(BrokerId(leader)),
        );
        asked += 1;
        if resp.error_code == NONE {
            break;
        }
        assert_eq!(
            resp.error_code, REASSIGNMENT_IN_PROGRESS,
            "{:?}",
            resp.error_message
        );
        assert!(
            Instant::now() < deadline,
            "broker {leader} still not unregistered after {asked} requests: {:?}\n{}",
            resp.error_message,
            cluster.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        asked > 1,
        "a broker holding replicas must not leave at once"
    );
    assert!(in_progress(&mut wire).is_empty());
    let (now, new_leader) =
        wait_for_placement(&probe, topic, "replicas without the broker", |r, l| {
            !r.contains(&leader) && r.len() == RF as usize && l > 0 && l != leader
        });
    let kept: BTreeSet<i32> = replicas.iter().copied().filter(|r| *r != leader).collect();
    assert!(
        kept.iter().all(|r| now.contains(r)),
        "{now:?} keeps {kept:?}"
    );
    eprintln!("after decommission: replicas {now:?}, leader {new_leader}");
    // Every broker applies the unregistration when it learns it is committed: the
    // one asked may list the broker a little longer.
    let deadline = Instant::now() + MOVE_DEADLINE;
    loop {
        let md = probe
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        if md.brokers().iter().all(|b| b.id() != leader) {
            break;
        }
        assert!(Instant::now() < deadline, "broker {leader} is still listed");
        std::thread::sleep(Duration::from_millis(200));
    }
    load.wait_for_more(200);
    let acked = load.finish();
    let seen = read_all(&bootstrap, topic, &acked);
    check_log(&seen, &acked);
}
