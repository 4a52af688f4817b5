//! Consumer groups on a 3-broker cluster of real `strata` processes: the controller
//! creates the replicated `__consumer_offsets` on the first group request, the
//! coordinator of a group is the leader of its `__consumer_offsets` partition, and
//! it moves with that leader. librdkafka groups join, consume, commit and rebalance;
//! when the coordinator's broker is SIGKILLed the group finds the new coordinator,
//! every committed offset is still there, and consumption resumes from them with
//! nothing skipped. Native group requests sent to any broker reach the coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::create_replicated;
use strata_tests::kafka::{consumer, produce, producer, read_record, TestRecord, KAFKA_TIMEOUT};
use strata_tests::kafka_wire::KafkaWire;

/// Bound on every wait for the group (the offsets topic is created and its leaders
/// elected on the first group request; a killed coordinator is replaced by election).
const GROUP_WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);

fn rec(i: usize) -> TestRecord {
    TestRecord {
        key: Some(format!("key-{}", i % 17).into_bytes()),
        value: Some(format!("value-{i:05}").into_bytes()),
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

/// The broker id FindCoordinator names for `group`, asked of the broker at `addr`,
/// once there is one (the first ask has the controller create `__consumer_offsets`).
fn coordinator_of(addr: &str, group: &str) -> i32 {
    let deadline = Instant::now() + GROUP_WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut req = FindCoordinatorRequest::default();
        req.key = StrBytes::from_string(group.to_owned());
        let resp: FindCoordinatorResponse =
            KafkaWire::connect(addr).call(ApiKey::FindCoordinator, 3, &req);
        if resp.error_code == 0 && resp.node_id.0 >= 0 {
            return resp.node_id.0;
        }
        last = format!("error {}: {:?}", resp.error_code, resp.error_message);
        std::thread::sleep(POLL);
    }
    panic!("no coordinator for {group} within {GROUP_WAIT:?}: {last}");
}

/// Polls `c` until `count` records arrived (or `GROUP_WAIT`); returns them as
/// (partition, offset) → value.
fn poll_n(c: &BaseConsumer, count: usize, what: &str) -> BTreeMap<(i32, i64), String> {
    let deadline = Instant::now() + GROUP_WAIT;
    let mut out = BTreeMap::new();
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {count} records arrived within {GROUP_WAIT:?}",
            out.len()
        );
        match c.poll(POLL) {
            Some(Ok(m)) => {
                let r = read_record(&m);
                let v = String::from_utf8(r.record.value.unwrap_or_default()).expect("utf-8");
                assert!(
                    out.insert((r.partition, r.offset), v).is_none(),
                    "{what}: {}/{} read twice",
                    r.partition,
                    r.offset
                );
            }
            Some(Err(e)) => eprintln!("{what}: consumer error (retried): {e}"),
            None => {}
        }
    }
    out
}

/// The next offset to read per partition after `read`.
fn next_offsets(read: &BTreeMap<(i32, i64), String>) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    for (p, o) in read.keys() {
        let n = next.entry(*p).or_insert(0);
        *n = (*n).max(o + 1);
    }
    next
}

/// Commits `offsets` of `topic` synchronously, retrying while the group's
/// coordinator moves (bounded by `GROUP_WAIT`).
fn commit(c: &BaseConsumer, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("add offset");
    }
    let deadline = Instant::now() + GROUP_WAIT;
    loop {
        match c.commit(&tpl, CommitMode::Sync) {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("commit: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("commit {offsets:?} failed for {GROUP_WAIT:?}: {e}"),
        }
    }
}

/// The group's committed offsets of `partitions` partitions of `topic` (-1001 = none),
/// asked until the coordinator answers.
fn committed(c: &BaseConsumer, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let deadline = Instant::now() + GROUP_WAIT;
    loop {
        match c.committed_offsets(tpl.clone(), KAFKA_TIMEOUT) {
            Ok(list) => {
                return list
                    .elements()
                    .iter()
                    .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
                    .collect()
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("committed offsets: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("committed offsets not readable for {GROUP_WAIT:?}: {e}"),
        }
    }
}

/// Test (d): a consumer group keeps its committed offsets when its coordinator's
/// broker is SIGKILLed, and a member that joins afterwards resumes from them.
#[test]
fn committed_offsets_survive_the_coordinators_broker_sigkill() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    let (topic, group, partitions) = ("orders", "billing", 3);
    create_replicated(&bootstrap, topic, partitions, 3);
    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let total = 300;
    produce(&p, topic, None, &(0..total).map(rec).collect::<Vec<_>>());
    drop(p);

    let first = consumer(&bootstrap, Some(group), &[]);
    first.subscribe(&[topic]).expect("subscribe");
    let read = poll_n(&first, total / 2, "before the kill");
    let mut offsets = next_offsets(&read);
    for p in 0..partitions {
        // A partition not read from yet is committed at its start.
        offsets.entry(p).or_insert(0);
    }
    commit(&first, topic, &offsets);
    assert_eq!(
        committed(&first, topic, partitions),
        offsets,
        "the committed offsets read back"
    );

    let coordinator = coordinator_of(&cluster.kafka_addr(0), group);
    eprintln!("coordinator of {group}: broker {coordinator}; SIGKILL");
    cluster.kill(coordinator as usize - 1);

    // The group finds the new coordinator, which has every committed offset.
    let survivor = (0..3)
        .find(|i| *i != coordinator as usize - 1)
        .expect("two brokers left");
    let next = coordinator_of(&cluster.kafka_addr(survivor), group);
    let deadline = Instant::now() + GROUP_WAIT;
    let mut moved = next;
    while moved == coordinator {
        assert!(
            Instant::now() < deadline,
            "the dead broker {coordinator} is still named coordinator after {GROUP_WAIT:?}"
        );
        std::thread::sleep(POLL);
        moved = coordinator_of(&cluster.kafka_addr(survivor), group);
    }
    eprintln!("new coordinator of {group}: broker {moved}");
    assert_eq!(
        committed(&first, topic, partitions),
        offsets,
        "committed offsets after the coordinator's broker died"
    );
    drop(first);

    // A member joining now starts exactly at the committed offsets: the records
    // after them, each once, and none before them.
    let second = consumer(&bootstrap, Some(group), &[]);
    second.subscribe(&[topic]).expect("subscribe");
    let rest = poll_n(&second, total - read.len(), "after the kill");
    for (p, o) in rest.keys() {
        assert!(
            *o >= offsets[p],
            "{p}/{o} was read again although {} was committed",
            offsets[p]
        );
    }
    let all: BTreeSet<&(i32, i64)> = read.keys().chain(rest.keys()).collect();
    assert_eq!(
        all.len(),
        total,
        "every record read once across the two members"
    );
    // Commits work on the new coordinator too.
    let done = next_offsets(&rest);
    let mut want = offsets.clone();
    want.extend(done.iter());
    commit(&second, topic, &want);
    assert_eq!(committed(&second, topic, partitions), want);
}

/// A classic librdkafka group of three on a cluster: join, consume, commit, and when
/// one member leaves the others take its partitions over and read on; the committed
/// offsets are readable through the native protocol on every broker (a native group
/// request to a broker that does not coordinate the group is forwarded to the one
/// that does).
#[test]
fn a_group_rebalances_on_a_cluster_and_every_broker_describes_it() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    let (topic, group, partitions) = ("grp", "round-trip", 6);
    create_replicated(&bootstrap, topic, partitions, 3);
    let p = producer(&bootstrap, &[]);
    produce(&p, topic, None, &(0..600).map(rec).collect::<Vec<_>>());
    let protocol = [("partition.assignment.strategy", "cooperative-sticky")];
    let mut members: Vec<BaseConsumer> = (0..3)
        .map(|_| {
            let c = consumer(&bootstrap, Some(group), &protocol);
            c.subscribe(&[topic]).expect("subscribe");
            c
        })
        .collect();
    let mut seen = BTreeSet::new();
    read_until(&members, &mut seen, 600, "three members");
    let assigned: usize = members
        .iter()
        .map(|m| m.assignment().expect("assignment").count())
        .sum();
    assert_eq!(assigned, partitions as usize);
    for m in &members {
        commit_state(m);
    }
    // One member leaves; the others take over its partitions and read new records.
    drop(members.pop());
    produce(&p, topic, None, &(600..1200).map(rec).collect::<Vec<_>>());
    read_until(&members, &mut seen, 1200, "after a member left");
    let deadline = Instant::now() + GROUP_WAIT;
    loop {
        let assigned: usize = members
            .iter()
            .map(|m| m.assignment().expect("assignment").count())
            .sum();
        if assigned == partitions as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the two members own {assigned} of {partitions} partitions"
        );
        for m in &members {
            let _ = m.poll(POLL);
        }
    }
    for m in &members {
        commit_state(m);
    }
    // Each partition's commit is the offset after its last record (the log also
    // holds leader-change markers, so offsets are not record counts).
    let mut read_to: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in &seen {
        let n = read_to.entry(*p).or_insert(0);
        *n = (*n).max(o + 1);
    }
    let want: i64 = read_to.values().sum();
    assert_eq!(committed(&members[0], topic, partitions), read_to);
    // Through the native protocol, from every broker.
    for i in 0..3 {
        let out = cluster.node(i).cli(&["group", "describe", group], None);
        out.assert_success();
        let native: i64 = out
            .stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(topic))
            .filter_map(|l| l.split_whitespace().nth(2)?.parse::<i64>().ok())
            .sum();
        assert_eq!(native, want, "broker {} describes:\n{}", i + 1, out.stdout);
    }
}

/// Polls every member until `seen` holds `total` distinct records.
fn read_until(members: &[BaseConsumer], seen: &mut BTreeSet<(i32, i64)>, total: usize, what: &str) {
    let deadline = Instant::now() + GROUP_WAIT;
    while seen.len() < total {
        assert!(
            Instant::now() < deadline,
            "{what}: the group read {} of {total}",
            seen.len()
        );
        for m in members {
            if let Some(Ok(msg)) = m.poll(Duration::from_millis(50)) {
                let r = read_record(&msg);
                seen.insert((r.partition, r.offset));
            }
        }
    }
}

/// Commits what `m` consumed, retrying while the coordinator is busy or moving.
fn commit_state(m: &BaseConsumer) {
    let deadline = Instant::now() + GROUP_WAIT;
    loop {
        match m.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => return,
            // Nothing consumed since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("commit: {e}; retrying");
                for _ in 0..5 {
                    let _ = m.poll(POLL);
                }
            }
            Err(e) => panic!("commit failed for {GROUP_WAIT:?}: {e}"),
        }
    }
}
