//! Bad input on the Kafka listener: unknown apis, unserved versions, bodies that do
//! not decode, corrupt batches, unknown topics and oversized frames each get Kafka's
//! error (or, for lost framing, a closed connection), the connection stays usable
//! where the framing allows, nothing bad is appended, and the broker stays up.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_schema::KafkaBatchBuilder;
use strata_tests::broker::TestBroker;
use strata_tests::kafka::create_topic;
use strata_tests::kafka_wire::KafkaWire;
use strata_tests::rng::SplitMix64;

const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;

/// The correlation id and error code of an ApiVersions-shaped reply.
fn error_reply(raw: &[u8]) -> (i32, i16) {
    assert!(raw.len() >= 6, "reply of {} bytes", raw.len());
    (
        i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
        i16::from_be_bytes([raw[4], raw[5]]),
    )
}

/// A request header (v1: api, version, correlation id, client id) and `body`.
fn raw_request(api: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&api.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    out.extend_from_slice(body);
    out
}

/// The connection still answers a well-formed request.
fn still_serves(wire: &mut KafkaWire) {
    let resp: ApiVersionsResponse =
        wire.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
}

fn produce_raw(wire: &mut KafkaWire, topic: &str, records: Bytes) -> ProduceResponse {
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 10_000;
    req.transactional_id = None;
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.to_owned()));
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = Some(records);
    t.partition_data.push(p);
    req.topic_data.push(t);
    wire.call(ApiKey::Produce, 9, &req)
}

#[test]
fn unknown_and_unserved_requests_get_kafka_errors_and_the_connection_stays() {
    let broker = TestBroker::start();
    let mut wire = KafkaWire::connect(&broker.kafka_addr());
    // An api key Kafka does not define.
    let raw = wire
        .round_trip_raw(&raw_request(9_999, 0, 11, &[]))
        .unwrap();
    assert_eq!(error_reply(&raw), (11, UNSUPPORTED_VERSION));
    still_serves(&mut wire);
    // An api Kafka defines that this broker does not serve (AddPartitionsToTxn).
    let raw = wire.round_trip_raw(&raw_request(24, 3, 12, &[])).unwrap();
    assert_eq!(error_reply(&raw), (12, UNSUPPORTED_VERSION));
    still_serves(&mut wire);
    // A served api at a version it does not serve.
    let raw = wire.round_trip_raw(&raw_request(3, 99, 13, &[])).unwrap();
    assert_eq!(error_reply(&raw), (13, UNSUPPORTED_VERSION));
    still_serves(&mut wire);
    // ApiVersions newer than served: the v0 answer lists what is (KIP-511).
    let raw = wire.round_trip_raw(&raw_request(18, 99, 14, &[])).unwrap();
    assert_eq!(error_reply(&raw), (14, UNSUPPORTED_VERSION));
    still_serves(&mut wire);
    // A Metadata v1 body that ends early (a topic count with no topics).
    let raw = wire
        .round_trip_raw(&raw_request(3, 1, 15, &5i32.to_be_bytes()))
        .unwrap();
    assert_eq!(error_reply(&raw), (15, INVALID_REQUEST));
    still_serves(&mut wire);
    let md: MetadataResponse = wire.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(md.brokers.len(), 1);
}

#[test]
fn corrupt_batches_and_unknown_topics_append_nothing() {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    create_topic(&addr, "bad", 1);
    let mut wire = KafkaWire::connect(&addr);
    let mut b = KafkaBatchBuilder::new();
    b.push(1, Some(b"k"), Some(b"v"), &[]);
    let good = b.build();

    // One flipped byte inside the records: the CRC no longer matches.
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    let resp = produce_raw(&mut wire, "bad", Bytes::from(flipped));
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        CORRUPT_MESSAGE
    );
    // A batch cut short.
    let resp = produce_raw(
        &mut wire,
        "bad",
        Bytes::from(good[..good.len() - 3].to_vec()),
    );
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        CORRUPT_MESSAGE
    );
    // An old message format (magic 1).
    let mut old = good.clone();
    old[16] = 1;
    let resp = produce_raw(&mut wire, "bad", Bytes::from(old));
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        CORRUPT_MESSAGE
    );
    // A topic that does not exist.
    let resp = produce_raw(&mut wire, "no-such-topic", Bytes::from(good.clone()));
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // The broker's internal topic is not for clients (Kafka's INVALID_TOPIC_EXCEPTION).
    let resp = produce_raw(&mut wire, "__consumer_offsets", Bytes::from(good.clone()));
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        INVALID_TOPIC_EXCEPTION
    );
    // Nothing was appended; the good batch then lands at offset 0.
    let resp = produce_raw(&mut wire, "bad", Bytes::from(good));
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
}

#[test]
fn lost_framing_closes_only_that_connection_and_random_bytes_never_stop_the_broker() {
    let mut broker = TestBroker::start();
    let addr = broker.kafka_addr();
    // A size beyond the frame limit: the framing is lost, the connection closes.
    let mut huge = KafkaWire::connect(&addr);
    let mut frame = (i32::MAX).to_be_bytes().to_vec();
    frame.extend_from_slice(&[0; 16]);
    huge.send_raw_unframed(&frame).unwrap();
    assert!(huge.read_raw().is_err(), "the connection closes");
    // Random bytes, seeded.
    let seed = 0x5eed_cafe_u64;
    let mut rng = SplitMix64::new(seed);
    for round in 0..50 {
        let mut conn = KafkaWire::connect(&addr);
        let len = (rng.next_u64() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let _ = conn.send_raw(&bytes);
        assert!(
            broker.is_running(),
            "broker died at round {round} (seed {seed:#x})"
        );
    }
    let mut wire = KafkaWire::connect(&addr);
    still_serves(&mut wire);
}

/// An array length of 2^31 - 1 in a few bytes (JoinGroup v5's protocols) is refused
/// before anything is allocated for it.
#[test]
fn huge_array_lengths_are_refused_without_allocating() {
    let mut broker = TestBroker::start();
    let mut wire = KafkaWire::connect(&broker.kafka_addr());
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(b"g"); // group id
    body.extend_from_slice(&10_000i32.to_be_bytes()); // session timeout
    body.extend_from_slice(&10_000i32.to_be_bytes()); // rebalance timeout
    body.extend_from_slice(&0i16.to_be_bytes()); // member id ""
    body.extend_from_slice(&(-1i16).to_be_bytes()); // no instance id
    body.extend_from_slice(&8i16.to_be_bytes());
    body.extend_from_slice(b"consumer");
    body.extend_from_slice(&i32::MAX.to_be_bytes()); // protocols: 2^31 - 1, none sent
    let raw = wire.round_trip_raw(&raw_request(11, 5, 21, &body)).unwrap();
    assert_eq!(error_reply(&raw), (21, INVALID_REQUEST));
    still_serves(&mut wire);
    assert!(broker.is_running());
}

/// Every served api at every served version, fed seeded random bodies and bodies
/// of maximal length prefixes: each gets an answer or a closed connection, and the
/// broker keeps serving.
#[test]
fn random_bodies_for_every_served_api_never_stop_the_broker() {
    let mut broker = TestBroker::start();
    let addr = broker.kafka_addr();
    let mut wire = KafkaWire::connect(&addr);
    let apis: ApiVersionsResponse =
        wire.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let seed = 0x0bad_b0d1_u64;
    let mut rng = SplitMix64::new(seed);
    let mut correlation_id = 100;
    for api in &apis.api_keys {
        for version in api.min_version..=api.max_version {
            for round in 0..4 {
                let body: Vec<u8> = match round {
                    0 => [0x7f, 0xff, 0xff, 0xff].repeat(8),
                    1 => vec![0xff; 24],
                    _ => {
                        let len = rng.range(0, 96) as usize;
                        (0..len).map(|_| rng.next_u64() as u8).collect()
                    }
                };
                correlation_id += 1;
                let mut conn = KafkaWire::connect(&addr);
                // Header v1 for every api; flexible apis then see a bad header or
                // body, which must be answered or dropped, never crash.
                let _ =
                    conn.round_trip_raw(&raw_request(api.api_key, version, correlation_id, &body));
                assert!(
                    broker.is_running(),
                    "broker died on api {} v{version} round {round} (seed {seed:#x})",
                    api.api_key
                );
            }
        }
    }
    let mut wire = KafkaWire::connect(&addr);
    still_serves(&mut wire);
}

/// A JoinGroup v1 body: group, session and rebalance timeouts, member id, protocol
/// type, and `protocols` (name, metadata) entries.
fn join_v1_body(
    group: &str,
    session_ms: i32,
    rebalance_ms: i32,
    member: &str,
    protocol_type: &str,
    protocols: &[(&str, &[u8])],
) -> Vec<u8> {
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as i16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    let mut body = Vec::new();
    string(&mut body, group);
    body.extend_from_slice(&session_ms.to_be_bytes());
    body.extend_from_slice(&rebalance_ms.to_be_bytes());
    string(&mut body, member);
    string(&mut body, protocol_type);
    body.extend_from_slice(&(protocols.len() as i32).to_be_bytes());
    for (name, metadata) in protocols {
        string(&mut body, name);
        body.extend_from_slice(&(metadata.len() as i32).to_be_bytes());
        body.extend_from_slice(metadata);
    }
    body
}

/// JoinGroup v1 with odd timeouts, ids and protocols, each on its own connection
/// and group: every one is answered (an error or a join), and the connection stays.
#[test]
fn join_group_v1_with_odd_bodies_and_timeouts_is_always_answered() {
    let broker = TestBroker::start();
    let range: &[(&str, &[u8])] = &[("range", b"")];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "plain",
            join_v1_body("j-plain", 10_000, 10_000, "", "consumer", range),
        ),
        (
            "session 0",
            join_v1_body("j-s0", 0, 10_000, "", "consumer", range),
        ),
        (
            "negative",
            join_v1_body("j-neg", -1, -1, "", "consumer", range),
        ),
        (
            "huge",
            join_v1_body("j-huge", i32::MAX, i32::MAX, "", "consumer", range),
        ),
        (
            "rebalance 0",
            join_v1_body("j-r0", 10_000, 0, "", "consumer", range),
        ),
        (
            "rebalance 1",
            join_v1_body("j-r1", 6_000, 1, "", "consumer", range),
        ),
        (
            "tiny",
            join_v1_body("j-tiny", 100, 1, "", "consumer", range),
        ),
        (
            "no protocols",
            join_v1_body("j-np", 10_000, 10_000, "", "consumer", &[]),
        ),
        (
            "no type",
            join_v1_body("j-nt", 10_000, 10_000, "", "", range),
        ),
        (
            "unknown member",
            join_v1_body("j-um", 10_000, 10_000, "who", "consumer", range),
        ),
        (
            "empty group",
            join_v1_body("", 10_000, 10_000, "", "consumer", range),
        ),
        (
            "big metadata",
            join_v1_body(
                "j-big",
                10_000,
                10_000,
                "",
                "consumer",
                &[("range", &[7u8; 70_000])],
            ),
        ),
    ];
    let mut wires = Vec::new();
    for (i, (what, body)) in cases.iter().enumerate() {
        let mut wire = KafkaWire::connect(&broker.kafka_addr());
        let id = 500 + i as i32;
        wire.send_raw(&raw_request(11, 1, id, body))
            .unwrap_or_else(|e| panic!("{what}: send: {e}"));
        wires.push((what, id, wire));
    }
    for (what, id, wire) in wires.iter_mut() {
        let raw = wire.read_raw().unwrap_or_else(|e| {
            panic!(
                "JoinGroup v1 ({what}) was not answered: {e}\n{}",
                broker.stderr_tail()
            )
        });
        let (correlation_id, code) = error_reply(&raw);
        println!("JoinGroup v1 ({what}): error code {code}");
        assert_eq!(correlation_id, *id, "{what}");
        still_serves(wire);
    }
}
