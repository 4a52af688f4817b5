//! The idempotent producer over the Kafka protocol, with hand-made requests: a
//! batch sent again (a client's retry after a timeout) is answered with its first
//! offsets and not appended twice, also after a broker SIGKILL; a gap in sequence
//! numbers is OUT_OF_ORDER_SEQUENCE_NUMBER; a stale producer epoch is fenced.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
};
use strata_schema::KafkaBatchBuilder;
use strata_tests::broker::TestBroker;
use strata_tests::kafka::{consumer, create_topic, poll_records, KAFKA_TIMEOUT};
use strata_tests::kafka_wire::KafkaWire;

/// Kafka error codes the test expects.
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const PRODUCER_FENCED: i16 = 90;

fn init_producer_id(wire: &mut KafkaWire, current: Option<(i64, i16)>) -> (i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transaction_timeout_ms = 60_000;
    req.transactional_id = None;
    let (id, epoch) = current.unwrap_or((-1, -1));
    req.producer_id = id.into();
    req.producer_epoch = epoch;
    let resp: InitProducerIdResponse = wire.call(ApiKey::InitProducerId, 4, &req);
    assert_eq!(resp.error_code, 0, "InitProducerId: {resp:?}");
    (resp.producer_id.0, resp.producer_epoch)
}

/// Produces one batch of `count` records starting at `sequence`; returns (error
/// code, base offset).
fn produce(wire: &mut KafkaWire, pid: i64, epoch: i16, sequence: i32, count: i32) -> (i16, i64) {
    let mut b = KafkaBatchBuilder::new().with_producer(pid, epoch, sequence);
    for i in 0..count {
        let v = format!("seq-{}", sequence + i);
        // Recent timestamps: retention (7 days by default) must not delete them.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        b.push(now_ms, None, Some(v.as_bytes()), &[]);
    }
    let batch = Bytes::from(b.build());
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 30_000;
    let mut topic = TopicProduceData::default();
    topic.name = kafka_protocol::messages::TopicName(
        kafka_protocol::protocol::StrBytes::from_static_str("idem"),
    );
    let mut part = PartitionProduceData::default();
    part.index = 0;
    part.records = Some(batch);
    topic.partition_data.push(part);
    req.topic_data.push(topic);
    let resp: ProduceResponse = wire.call(ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn retried_batches_are_written_once_and_gaps_and_stale_epochs_are_refused() {
    let mut broker = TestBroker::start();
    let addr = broker.kafka_addr();
    create_topic(&addr, "idem", 1);
    let mut wire = KafkaWire::connect(&addr);
    let (pid, epoch) = init_producer_id(&mut wire, None);
    assert!(pid >= 0 && epoch >= 0);
    // Another producer gets another id.
    let (other, _) = init_producer_id(&mut wire, None);
    assert_ne!(pid, other);

    assert_eq!(produce(&mut wire, pid, epoch, 0, 5), (0, 0));
    // The retry of the same batch: success with the same offsets, nothing appended.
    assert_eq!(produce(&mut wire, pid, epoch, 0, 5), (0, 0));
    assert_eq!(produce(&mut wire, pid, epoch, 5, 5), (0, 5));
    // A gap: 10 is expected, 12 is sent.
    assert_eq!(
        produce(&mut wire, pid, epoch, 12, 1).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );

    // The state survives a SIGKILL: the retry is still recognised.
    broker.kill();
    broker.restart();
    let mut wire = KafkaWire::connect(&addr);
    assert_eq!(produce(&mut wire, pid, epoch, 5, 5), (0, 5));
    assert_eq!(produce(&mut wire, pid, epoch, 10, 5), (0, 10));

    // A new epoch for the same id fences the old one.
    let (same, bumped) = init_producer_id(&mut wire, Some((pid, epoch)));
    assert_eq!(same, pid);
    assert!(bumped > epoch);
    assert_eq!(produce(&mut wire, pid, bumped, 0, 2), (0, 15));
    let stale = produce(&mut wire, pid, epoch, 15, 1).0;
    assert!(
        stale == INVALID_PRODUCER_EPOCH || stale == PRODUCER_FENCED,
        "stale epoch answered {stale}"
    );

    // Exactly the 17 records, each once.
    let c = consumer(&addr, None, &[]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("idem", 0, rdkafka::Offset::Beginning)
        .unwrap();
    rdkafka::consumer::Consumer::assign(&c, &tpl).unwrap();
    let got = poll_records(&c, 17);
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.record.value.clone().unwrap()).unwrap())
        .collect();
    let mut want: Vec<String> = (0..15).map(|s| format!("seq-{s}")).collect();
    want.extend((0..2).map(|s| format!("seq-{s}")));
    assert_eq!(values, want);
    let (_, high) =
        rdkafka::consumer::Consumer::fetch_watermarks(&c, "idem", 0, KAFKA_TIMEOUT).unwrap();
    assert_eq!(high, 17);
}

/// librdkafka's idempotent producer through a proxy that drops every 7th response
/// from the broker: the client times out and retries batches the broker already
/// wrote, and each record is still stored exactly once, in order.
#[test]
fn an_idempotent_producer_retrying_through_dropped_responses_writes_no_duplicates() {
    use strata_tests::flaky_proxy::FlakyProxy;
    use strata_tests::kafka::{produce, producer, TestRecord};

    const RECORDS: usize = 2_000;
    let proxy = FlakyProxy::start(7);
    let advertised = proxy.addr();
    let (metrics_port, _metrics_lock) = strata_tests::broker::claim_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let broker = TestBroker::start_with_args(
        2,
        &[
            "--kafka-advertised",
            &advertised,
            "--metrics-addr",
            &metrics_addr,
        ],
    );
    proxy.set_upstream(&broker.kafka_addr());
    create_topic(&broker.kafka_addr(), "retried", 1);
    let p = producer(
        &proxy.addr(),
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "1"),
            ("batch.num.messages", "20"),
            ("message.timeout.ms", "120000"),
            ("reconnect.backoff.max.ms", "200"),
            ("retry.backoff.ms", "20"),
        ],
    );
    let records: Vec<TestRecord> = (0..RECORDS)
        .map(|i| TestRecord {
            key: None,
            value: Some(format!("r{i:05}").into_bytes()),
            headers: vec![],
            timestamp_ms: None,
        })
        .collect();
    let acked = produce(&p, "retried", Some(0), &records);
    assert!(proxy.cuts() > 0, "the proxy dropped no response");
    // The consumer reaches the broker through the advertised proxy too: no more cuts.
    proxy.stop_cutting();
    // Every ack names a distinct offset, in send order.
    let offsets: Vec<i64> = acked.iter().map(|(_, o)| *o).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "acks out of order");
    // The log holds each record once, in order: no duplicate from any retry.
    let c = consumer(&broker.kafka_addr(), None, &[]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("retried", 0, rdkafka::Offset::Beginning)
        .unwrap();
    rdkafka::consumer::Consumer::assign(&c, &tpl).unwrap();
    let got = poll_records(&c, RECORDS);
    let values: Vec<Vec<u8>> = got
        .iter()
        .map(|r| r.record.value.clone().unwrap())
        .collect();
    let want: Vec<Vec<u8>> = records.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, want);
    let (_, high) =
        rdkafka::consumer::Consumer::fetch_watermarks(&c, "retried", 0, KAFKA_TIMEOUT).unwrap();
    assert_eq!(high, RECORDS as i64, "{} cuts", proxy.cuts());
    // And the broker did see retries of batches it had already written.
    let duplicates = partition_metric(
        &metrics_addr,
        "strata_partition_duplicate_batches_total",
        "retried",
    );
    assert!(
        duplicates > 0,
        "no retried batch reached the broker ({} cuts)",
        proxy.cuts()
    );
}

/// The sum of a partition metric over `topic`'s partitions, from the broker's
/// Prometheus listener.
fn partition_metric(addr: &str, name: &str, topic: &str) -> u64 {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to metrics");
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let label = format!("topic=\"{topic}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
