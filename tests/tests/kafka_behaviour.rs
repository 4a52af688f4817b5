//! Kafka behaviours that Kafka clients rely on, checked with librdkafka (and
//! hand-made requests where librdkafka has no api for it): broker settings under
//! Kafka's names (`num.partitions`, `auto.create.topics.enable`, DescribeConfigs and
//! IncrementalAlterConfigs on the BROKER resource with their sources, durable
//! dynamic configs), session-timeout bounds, static membership without rebalances,
//! the topic configs Kafka Streams and Connect create topics with, and the
//! `message.timestamp.*` window.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, GroupId, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    JoinGroupRequest, JoinGroupResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::TopicPartitionList;
use strata_tests::broker::{start_with_config, TestBroker};
use strata_tests::kafka::*;
use strata_tests::kafka_wire::KafkaWire;

/// Kafka's error codes these tests expect.
const INVALID_SESSION_TIMEOUT: i16 = 26;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
/// Config resource type of a broker.
const RESOURCE_BROKER: i8 = 4;

fn partition_count(addr: &str, topic: &str) -> usize {
    let c = consumer(addr, None, &[]);
    let md = c
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .expect("metadata");
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len())
}

#[test]
fn num_partitions_applies_to_auto_created_and_default_sized_topics() {
    let (broker, _conf) = start_with_config("num.partitions = 3\n");
    let addr = broker.kafka_addr();
    // Producing to an unknown topic auto-creates it.
    let p = producer(&addr, &[]);
    let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("auto-made").payload(&b"x"[..]);
    block_on(p.send(rec, KAFKA_TIMEOUT)).expect("delivered to an auto-created topic");
    assert_eq!(partition_count(&addr, "auto-made"), 3);
    // CreateTopics with num_partitions -1 takes num.partitions too.
    let admin = admin(&addr);
    let new = NewTopic::new("minus-one", -1, TopicReplication::Fixed(-1));
    let results = block_on(admin.create_topics([&new], &AdminOptions::new())).expect("create");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
    assert_eq!(partition_count(&addr, "minus-one"), 3);
}

#[test]
fn auto_create_topics_enable_false_leaves_unknown_topics_unknown() {
    let (broker, _conf) = start_with_config("auto.create.topics.enable = false\n");
    let mut wire = KafkaWire::connect(&broker.kafka_addr());
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_static_str("nobody-made-me")),
        ))]))
        .with_allow_auto_topic_creation(true);
    let resp: MetadataResponse = wire.call(ApiKey::Metadata, 9, &req);
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(partition_count(&broker.kafka_addr(), "nobody-made-me"), 0);
}

/// The broker's configs as DescribeConfigs lists them: name → (value, source,
/// read-only).
fn describe_broker(addr: &str) -> Vec<(String, Option<String>, ConfigSource, bool)> {
    let admin = admin(addr);
    let mut out = block_on(admin.describe_configs(
        [&ResourceSpecifier::Broker(0)],
        &AdminOptions::new().request_timeout(Some(KAFKA_TIMEOUT)),
    ))
    .expect("describe configs");
    let resource = out.remove(0).expect("the broker resource");
    resource
        .entries
        .into_iter()
        .map(|e| (e.name, e.value, e.source, e.is_read_only))
        .collect()
}

fn entry<'a>(
    entries: &'a [(String, Option<String>, ConfigSource, bool)],
    name: &str,
) -> &'a (String, Option<String>, ConfigSource, bool) {
    entries
        .iter()
        .find(|e| e.0 == name)
        .unwrap_or_else(|| panic!("{name} is not described: {entries:?}"))
}

#[test]
fn describe_configs_on_the_broker_lists_kafka_keys_with_sources() {
    let (broker, _conf) = start_with_config(
        "num.partitions = 3\nlog.retention.hours = 2\ngroup.initial.rebalance.delay.ms = 0\n",
    );
    let entries = describe_broker(&broker.kafka_addr());
    let e = entry(&entries, "num.partitions");
    assert_eq!(
        (e.1.as_deref(), &e.2, e.3),
        (Some("3"), &ConfigSource::StaticBroker, true)
    );
    let e = entry(&entries, "log.retention.ms");
    assert_eq!(
        (e.1.as_deref(), &e.2, e.3),
        (Some("7200000"), &ConfigSource::StaticBroker, false)
    );
    let e = entry(&entries, "group.initial.rebalance.delay.ms");
    assert_eq!(
        (e.1.as_deref(), &e.2),
        (Some("0"), &ConfigSource::StaticBroker)
    );
    let e = entry(&entries, "group.min.session.timeout.ms");
    assert_eq!(
        (e.1.as_deref(), &e.2),
        (Some("6000"), &ConfigSource::Default)
    );
    let e = entry(&entries, "advertised.listeners");
    assert_eq!(
        e.1.as_deref(),
        Some(format!("PLAINTEXT://{}", broker.kafka_addr()).as_str())
    );
    for key in [
        "listeners",
        "broker.id",
        "node.id",
        "default.replication.factor",
        "auto.create.topics.enable",
        "group.max.session.timeout.ms",
        "connections.max.idle.ms",
        "offsets.topic.num.partitions",
        "log.retention.bytes",
        "log.segment.bytes",
        "log.roll.ms",
        "log.cleanup.policy",
        "message.max.bytes",
        "log.flush.interval.ms",
        "compression.type",
    ] {
        entry(&entries, key);
    }
    assert_eq!(
        entry(&entries, "default.replication.factor").1.as_deref(),
        Some("1")
    );
}

fn incremental_set(
    wire: &mut KafkaWire,
    resource_name: &str,
    key: &str,
    value: Option<&str>,
) -> (i16, Option<String>) {
    let op = if value.is_some() { 0 } else { 1 };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(StrBytes::from_string(resource_name.to_owned()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_string(key.to_owned()))
                .with_config_operation(op)
                .with_value(value.map(|v| StrBytes::from_string(v.to_owned())))]),
    ]);
    let resp: IncrementalAlterConfigsResponse = wire.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn topic_config(addr: &str, topic: &str, key: &str) -> (Option<String>, ConfigSource) {
    let admin = admin(addr);
    let mut out = block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic(topic)],
        &AdminOptions::new().request_timeout(Some(KAFKA_TIMEOUT)),
    ))
    .expect("describe configs");
    let resource = out.remove(0).expect("the topic resource");
    let e = resource
        .entries
        .into_iter()
        .find(|e| e.name == key)
        .unwrap_or_else(|| panic!("{topic} has no {key}"));
    (e.value, e.source)
}

#[test]
fn incremental_alter_configs_on_the_broker_applies_and_persists_across_a_restart() {
    let mut broker = TestBroker::start();
    let addr = broker.kafka_addr();
    create_topic(&addr, "before", 1);
    let mut wire = KafkaWire::connect(&addr);
    // This broker's own value, and a cluster-wide default under it.
    assert_eq!(
        incremental_set(&mut wire, "0", "log.retention.ms", Some("3600000")),
        (0, None)
    );
    assert_eq!(
        incremental_set(&mut wire, "", "log.retention.ms", Some("60000")),
        (0, None)
    );
    assert_eq!(
        incremental_set(&mut wire, "", "log.segment.bytes", Some("1048576")),
        (0, None)
    );
    // Read-only and bad settings are refused, saying why.
    let (code, message) = incremental_set(&mut wire, "0", "num.partitions", Some("4"));
    assert_eq!(code, INVALID_REQUEST, "{message:?}");
    assert!(message.unwrap_or_default().contains("num.partitions"));
    let (code, _) = incremental_set(&mut wire, "0", "log.segment.bytes", Some("10"));
    assert_ne!(code, 0);
    drop(wire);
    let check = |addr: &str| {
        let entries = describe_broker(addr);
        let e = entry(&entries, "log.retention.ms");
        assert_eq!(
            (e.1.as_deref(), &e.2),
            (Some("3600000"), &ConfigSource::DynamicBroker)
        );
        let e = entry(&entries, "log.segment.bytes");
        assert_eq!(
            (e.1.as_deref(), &e.2),
            (Some("1048576"), &ConfigSource::DynamicDefaultBroker)
        );
        // A topic created before the change follows its broker's default.
        assert_eq!(
            topic_config(addr, "before", "retention.ms"),
            (Some("3600000".to_owned()), ConfigSource::DynamicBroker)
        );
        assert_eq!(
            topic_config(addr, "before", "segment.bytes"),
            (
                Some("1048576".to_owned()),
                ConfigSource::DynamicDefaultBroker
            )
        );
    };
    check(&addr);
    broker.stop_gracefully();
    broker.restart();
    check(&broker.kafka_addr());
    // Deleting this broker's value uncovers the cluster-wide one.
    let mut wire = KafkaWire::connect(&broker.kafka_addr());
    assert_eq!(
        incremental_set(&mut wire, "0", "log.retention.ms", None),
        (0, None)
    );
    assert_eq!(
        topic_config(&broker.kafka_addr(), "before", "retention.ms"),
        (Some("60000".to_owned()), ConfigSource::DynamicDefaultBroker)
    );
}

fn join_with_session_timeout(wire: &mut KafkaWire, session_timeout_ms: i32) -> i16 {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("short-sessions")))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(StrBytes::from_static_str(""))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(bytes::Bytes::from_static(&[
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]))]);
    // v3: no MEMBER_ID_REQUIRED round trip, an answer comes at once.
    let resp: JoinGroupResponse = wire.call(ApiKey::JoinGroup, 3, &req);
    resp.error_code
}

#[test]
fn session_timeouts_outside_the_group_bounds_are_refused() {
    let broker = TestBroker::start();
    let mut wire = KafkaWire::connect(&broker.kafka_addr());
    // Kafka's defaults: 6 s ..= 30 min.
    assert_eq!(
        join_with_session_timeout(&mut wire, 100),
        INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        join_with_session_timeout(&mut wire, 1_800_001),
        INVALID_SESSION_TIMEOUT
    );
    // The bounds are the broker's group.*.session.timeout.ms settings.
    let (bounded, _conf) = start_with_config(
        "group.min.session.timeout.ms = 1000\ngroup.max.session.timeout.ms = 20000\n",
    );
    let mut wire = KafkaWire::connect(&bounded.kafka_addr());
    assert_eq!(
        join_with_session_timeout(&mut wire, 500),
        INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        join_with_session_timeout(&mut wire, 25_000),
        INVALID_SESSION_TIMEOUT
    );
    assert_eq!(join_with_session_timeout(&mut wire, 1_000), 0);
    // Native groups share the bounds (and the error).
    create_topic(&broker.kafka_addr(), "native-sessions", 1);
    let out = broker.cli(
        &[
            "consume",
            "native-sessions",
            "--group",
            "native-short",
            "--session-timeout-ms",
            "1000",
            "--count",
            "1",
        ],
        None,
    );
    assert!(!out.status.success(), "{out}");
    assert!(
        out.stderr.to_uppercase().contains("SESSION"),
        "the native client is told about the session timeout: {out}"
    );
}

/// Counts a consumer's assignment changes.
#[derive(Clone, Default)]
struct Rebalances {
    assigns: Arc<AtomicUsize>,
    revokes: Arc<AtomicUsize>,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.assigns.fetch_add(1, Ordering::SeqCst),
            Rebalance::Revoke(_) => self.revokes.fetch_add(1, Ordering::SeqCst),
            Rebalance::Error(_) => 0,
        };
    }
}

impl Rebalances {
    fn count(&self) -> (usize, usize) {
        (
            self.assigns.load(Ordering::SeqCst),
            self.revokes.load(Ordering::SeqCst),
        )
    }
}

const STATIC_TOPIC: &str = "static-members";
const STATIC_GROUP: &str = "static-group";
/// librdkafka's heartbeat interval in these tests: a rebalance reaches a member
/// within one of these.
const HEARTBEAT_MS: u64 = 300;

fn static_member(addr: &str, instance: &str) -> (BaseConsumer<Rebalances>, Rebalances) {
    let ctx = Rebalances::default();
    let mut c = config(addr);
    c.set("group.id", STATIC_GROUP)
        .set("group.instance.id", instance)
        .set("client.id", instance)
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", HEARTBEAT_MS.to_string())
        .set("partition.assignment.strategy", "range")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer<Rebalances> =
        c.create_with_context(ctx.clone()).expect("create consumer");
    consumer.subscribe(&[STATIC_TOPIC]).expect("subscribe");
    (consumer, ctx)
}

fn partitions(c: &BaseConsumer<Rebalances>) -> Vec<i32> {
    let tpl: TopicPartitionList = c.assignment().expect("assignment");
    let mut out: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    out.sort_unstable();
    out
}

/// Polls every member until `done` holds (bounded by a deadline).
fn poll_until(members: &[&BaseConsumer<Rebalances>], what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + KAFKA_TIMEOUT * 2;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for m in members {
            let _ = m.poll(Duration::from_millis(20));
        }
    }
}

/// Polls every member for `rounds` heartbeat intervals: long enough for any
/// rebalance the broker started to reach them.
fn poll_for_heartbeats(members: &[&BaseConsumer<Rebalances>], rounds: u64) {
    let until = Instant::now() + Duration::from_millis(HEARTBEAT_MS * rounds);
    while Instant::now() < until {
        for m in members {
            let _ = m.poll(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_static_member_rejoining_causes_no_rebalance_of_the_others() {
    let (broker, _conf) = start_with_config("group.initial.rebalance.delay.ms = 0\n");
    let addr = broker.kafka_addr();
    create_topic(&addr, STATIC_TOPIC, 4);
    let (a, a_events) = static_member(&addr, "member-a");
    let (b, b_events) = static_member(&addr, "member-b");
    poll_until(&[&a, &b], "a 2+2 assignment", || {
        partitions(&a).len() == 2 && partitions(&b).len() == 2
    });
    // Let any rebalance in flight settle, then restart each member in turn (one of
    // them leads the group): the one that stays sees nothing.
    poll_for_heartbeats(&[&a, &b], 10);
    let (mut stay, mut stay_events) = (a, a_events);
    let (mut go, mut go_events, mut go_name) = (b, b_events, "member-b");
    for round in 0..2 {
        let stay_partitions = partitions(&stay);
        let go_partitions = partitions(&go);
        let stay_before = stay_events.count();
        // A static member does not leave on close: its place waits for it.
        drop(go);
        let (back, back_events) = static_member(&addr, go_name);
        poll_until(&[&stay, &back], "the restarted member's assignment", || {
            !partitions(&back).is_empty()
        });
        assert_eq!(
            partitions(&back),
            go_partitions,
            "round {round}: {go_name} got its old assignment back"
        );
        poll_for_heartbeats(&[&stay, &back], 10);
        assert_eq!(
            stay_events.count(),
            stay_before,
            "round {round}: the member that stayed saw no revoke or assign"
        );
        assert_eq!(partitions(&stay), stay_partitions);
        assert_eq!(back_events.count(), (1, 0), "one assignment, no revoke");
        // Next round: the other one restarts.
        let stay_name = if go_name == "member-b" {
            "member-a"
        } else {
            "member-b"
        };
        (go, go_events, go_name, stay, stay_events) =
            (stay, stay_events, stay_name, back, back_events);
    }
    let _ = go_events;
}

#[test]
fn kafka_streams_and_connect_topic_configs_are_accepted() {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    let admin = admin(&addr);
    // What Kafka Streams sets on a changelog and a repartition topic, and Kafka
    // Connect on its config topic.
    let changelog = NewTopic::new("app-store-changelog", 2, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("message.timestamp.type", "CreateTime")
        .set("min.compaction.lag.ms", "0")
        .set("min.insync.replicas", "1");
    let repartition = NewTopic::new("app-repartition", 2, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "delete")
        .set("segment.bytes", "52428800")
        .set("retention.ms", "-1")
        .set("message.timestamp.type", "CreateTime")
        .set("segment.ms", "600000");
    let connect = NewTopic::new("connect-configs", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("compression.type", "producer")
        .set("max.compaction.lag.ms", "9223372036854775807")
        .set("min.cleanable.dirty.ratio", "0.5")
        .set("unclean.leader.election.enable", "false")
        .set("preallocate", "false");
    let zstd =
        NewTopic::new("wants-zstd", 1, TopicReplication::Fixed(1)).set("compression.type", "zstd");
    let results = block_on(admin.create_topics(
        [&changelog, &repartition, &connect, &zstd],
        &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
    ))
    .expect("create topics");
    for r in &results[..3] {
        if let Err((t, e)) = r {
            panic!("create {t}: {e}");
        }
    }
    assert!(
        matches!(&results[3], Err((_, RDKafkaErrorCode::InvalidConfig))),
        "{:?}",
        results[3]
    );
    assert_eq!(
        topic_config(&addr, "connect-configs", "min.cleanable.dirty.ratio"),
        (Some("0.5".to_owned()), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        topic_config(&addr, "app-store-changelog", "min.insync.replicas").0,
        Some("1".to_owned())
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn send_at(p: &rdkafka::producer::FutureProducer, topic: &str, ts: i64) -> Result<(), KafkaError> {
    let rec: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(topic).payload(&b"x"[..]).timestamp(ts);
    block_on(p.send(rec, KAFKA_TIMEOUT))
        .map(drop)
        .map_err(|(e, _)| e)
}

#[test]
fn timestamps_outside_the_topic_window_are_refused_with_invalid_timestamp() {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    let admin = admin(&addr);
    let windowed = NewTopic::new("windowed", 1, TopicReplication::Fixed(1))
        .set("message.timestamp.before.max.ms", "60000");
    let appended = NewTopic::new("append-time", 1, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime")
        .set("message.timestamp.before.max.ms", "60000");
    for r in block_on(admin.create_topics([&windowed, &appended], &AdminOptions::new()))
        .expect("create topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
    // Retries would only repeat the refusal.
    let p = producer(&addr, &[("retries", "0")]);
    let hour_ms = 3_600_000;
    send_at(&p, "windowed", now_ms()).expect("a current timestamp is taken");
    let refused = |r: Result<(), KafkaError>| {
        matches!(
            r,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::InvalidTimestamp
            ))
        )
    };
    assert!(
        refused(send_at(&p, "windowed", now_ms() - hour_ms)),
        "too old"
    );
    // Kafka 4's message.timestamp.after.max.ms default: one hour.
    assert!(
        refused(send_at(&p, "windowed", now_ms() + 2 * hour_ms)),
        "too new"
    );
    // LogAppendTime topics stamp the broker's time: no window to check.
    send_at(&p, "append-time", now_ms() - hour_ms).expect("append-time takes any timestamp");
}
