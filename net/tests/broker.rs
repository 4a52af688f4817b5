//! The broker in-process, driven over TCP by a tiny hand-written framing client:
//! topics, produce, fetch, list offsets, configs, bad input, long poll, restart.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flatbuffers::FlatBufferBuilder;
use strata_net::{run_broker, BrokerConfig};
use strata_schema::protocol::*;
use strata_schema::{
    batches, encode_frame, validate_batch, ApiKey, ErrorCode, FrameHeader, NativeBatchBuilder,
    FRAME_BYTES_MAX, FRAME_HEADER_BYTES,
};

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct TestBroker {
    addr: SocketAddr,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestBroker {
    fn start(dir: &Path) -> TestBroker {
        TestBroker::start_with(dir, None)
    }

    fn start_with(dir: &Path, metrics_addr: Option<SocketAddr>) -> TestBroker {
        let addr = free_addr();
        let config = BrokerConfig {
            data_dir: dir.to_path_buf(),
            listen: addr,
            metrics_addr,
            cores: 2,
            pin_to_cores: false,
            ..BrokerConfig::default()
        };
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&shutdown);
        let thread = std::thread::spawn(move || {
            run_broker(config, flag).expect("broker runs and stops cleanly");
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "broker did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        TestBroker {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> Client {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { s, next_id: 1 }
    }

    fn stop(mut self) {
        self.shutdown.store(true, Ordering::Release);
        self.thread.take().unwrap().join().expect("broker thread");
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Reply {
    header: FrameHeader,
    body: Vec<u8>,
    tail: Vec<u8>,
}

struct Client {
    s: TcpStream,
    next_id: u32,
}

impl Client {
    fn send(&mut self, api: u16, body: &[u8], tail: &[&[u8]]) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.s
            .write_all(&encode_frame(api, 0, id, body, tail))
            .unwrap();
        id
    }

    fn recv(&mut self) -> Reply {
        let mut head = [0u8; FRAME_HEADER_BYTES];
        self.s.read_exact(&mut head).unwrap();
        let header = FrameHeader::decode(&head, FRAME_BYTES_MAX)
            .unwrap()
            .unwrap();
        let mut rest = vec![0u8; header.frame_bytes() - FRAME_HEADER_BYTES];
        self.s.read_exact(&mut rest).unwrap();
        let tail = rest.split_off(header.body_len as usize);
        Reply {
            header,
            body: rest,
            tail,
        }
    }

    fn call(&mut self, api: ApiKey, body: &[u8], tail: &[&[u8]]) -> Reply {
        let id = self.send(api as u16, body, tail);
        let r = self.recv();
        assert_eq!(r.header.correlation_id, id);
        r
    }

    /// True once the broker closed the connection (EOF or reset).
    fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0) | Err(_))
    }
}

fn code(e: Option<Error<'_>>) -> ErrorCode {
    e.map_or(ErrorCode::None, |e| ErrorCode::from_i16(e.code()))
}

fn message(e: Option<Error<'_>>) -> String {
    e.and_then(|e| e.message()).unwrap_or("").to_owned()
}

fn create_topic(
    c: &mut Client,
    name: &str,
    partitions: u32,
    configs: &[(&str, &str)],
) -> (ErrorCode, String) {
    let mut fbb = FlatBufferBuilder::new();
    let entries: Vec<_> = configs
        .iter()
        .map(|(k, v)| {
            let key = fbb.create_string(k);
            let value = fbb.create_string(v);
            ConfigEntry::create(
                &mut fbb,
                &ConfigEntryArgs {
                    key: Some(key),
                    value: Some(value),
                },
            )
        })
        .collect();
    let configs = fbb.create_vector(&entries);
    let name = fbb.create_string(name);
    let root = CreateTopicsRequest::create(
        &mut fbb,
        &CreateTopicsRequestArgs {
            name: Some(name),
            partitions,
            configs: Some(configs),
            validate_only: false,
            replication_factor: -1,
        },
    );
    fbb.finish(root, None);
    let r = c.call(ApiKey::CreateTopics, fbb.finished_data(), &[]);
    assert_eq!(r.header.api, ApiKey::CreateTopics as u16);
    let resp = flatbuffers::root::<CreateTopicsResponse>(&r.body).unwrap();
    (code(resp.error()), message(resp.error()))
}

fn alter_config(c: &mut Client, name: &str, key: &str, value: &str) -> (ErrorCode, String) {
    let mut fbb = FlatBufferBuilder::new();
    let k = fbb.create_string(key);
    let v = fbb.create_string(value);
    let e = ConfigEntry::create(
        &mut fbb,
        &ConfigEntryArgs {
            key: Some(k),
            value: Some(v),
        },
    );
    let configs = fbb.create_vector(&[e]);
    let name = fbb.create_string(name);
    let root = AlterConfigsRequest::create(
        &mut fbb,
        &AlterConfigsRequestArgs {
            name: Some(name),
            configs: Some(configs),
            validate_only: false,
        },
    );
    fbb.finish(root, None);
    let r = c.call(ApiKey::AlterConfigs, fbb.finished_data(), &[]);
    let resp = flatbuffers::root::<AlterConfigsResponse>(&r.body).unwrap();
    (code(resp.error()), message(resp.error()))
}

/// Metadata for one topic: (error, partition count, configs, per-partition HW).
fn describe(c: &mut Client, name: &str) -> (ErrorCode, Vec<(String, String)>, Vec<i64>) {
    let mut fbb = FlatBufferBuilder::new();
    let n = fbb.create_string(name);
    let topics = fbb.create_vector(&[n]);
    let root = MetadataRequest::create(
        &mut fbb,
        &MetadataRequestArgs {
            topics: Some(topics),
            include_internal: false,
        },
    );
    fbb.finish(root, None);
    let r = c.call(ApiKey::Metadata, fbb.finished_data(), &[]);
    let resp = flatbuffers::root::<MetadataResponse>(&r.body).unwrap();
    let t = resp.topics().unwrap().get(0);
    assert_eq!(t.name(), name);
    let configs = t
        .configs()
        .iter()
        .flatten()
        .map(|e| (e.key().to_owned(), e.value().unwrap_or("").to_owned()))
        .collect();
    let hws = t
        .partitions()
        .iter()
        .flatten()
        .map(|p| p.high_watermark())
        .collect();
    (code(t.error()), configs, hws)
}

fn delete_topic(c: &mut Client, name: &str) -> ErrorCode {
    let mut fbb = FlatBufferBuilder::new();
    let n = fbb.create_string(name);
    let names = fbb.create_vector(&[n]);
    let root =
        DeleteTopicsRequest::create(&mut fbb, &DeleteTopicsRequestArgs { names: Some(names) });
    fbb.finish(root, None);
    let r = c.call(ApiKey::DeleteTopics, fbb.finished_data(), &[]);
    let resp = flatbuffers::root::<DeleteTopicsResponse>(&r.body).unwrap();
    code(resp.results().unwrap().get(0).error())
}

/// Now, in ms since the epoch: retention would delete data stamped long ago.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A native batch of `values` stamped `now + offset_ms`.
fn batch(values: &[String], offset_ms: i64) -> Vec<u8> {
    let timestamp_ms = now_ms() + offset_ms;
    let mut b = NativeBatchBuilder::new();
    for v in values {
        b.push(
            timestamp_ms,
            Some(b"k"),
            Some(v.as_bytes()),
            &[("h", Some(b"1"))],
        );
    }
    b.build()
}

/// Produces `per_partition[i]` (a list of batches) to partition `i` in one request.
fn produce(
    c: &mut Client,
    topic: &str,
    acks: i8,
    per_partition: &[(u32, Vec<Vec<u8>>)],
) -> Vec<(ErrorCode, i64, String)> {
    let mut fbb = FlatBufferBuilder::new();
    let parts: Vec<_> = per_partition
        .iter()
        .map(|(p, bs)| {
            ProducePartition::create(
                &mut fbb,
                &ProducePartitionArgs {
                    partition: *p,
                    batch_bytes: bs.iter().map(Vec::len).sum::<usize>() as u32,
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let t = fbb.create_string(topic);
    let root = ProduceRequest::create(
        &mut fbb,
        &ProduceRequestArgs {
            topic: Some(t),
            acks,
            timeout_ms: 30_000,
            partitions: Some(parts),
        },
    );
    fbb.finish(root, None);
    let tail: Vec<&[u8]> = per_partition
        .iter()
        .flat_map(|(_, bs)| bs.iter().map(Vec::as_slice))
        .collect();
    let r = c.call(ApiKey::Produce, fbb.finished_data(), &tail);
    assert_eq!(r.header.api, ApiKey::Produce as u16);
    let resp = flatbuffers::root::<ProduceResponse>(&r.body).unwrap();
    resp.results()
        .unwrap()
        .iter()
        .map(|p| (code(p.error()), p.base_offset(), message(p.error())))
        .collect()
}

fn fetch_request(
    topic: &str,
    partitions: &[(u32, i64)],
    max_wait_ms: u32,
    min_bytes: u32,
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let parts: Vec<_> = partitions
        .iter()
        .map(|(p, off)| {
            let t = fbb.create_string(topic);
            FetchPartition::create(
                &mut fbb,
                &FetchPartitionArgs {
                    topic: Some(t),
                    partition: *p,
                    fetch_offset: *off,
                    max_bytes: 1 << 20,
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let root = FetchRequest::create(
        &mut fbb,
        &FetchRequestArgs {
            max_wait_ms,
            min_bytes,
            max_bytes: 50 << 20,
            partitions: Some(parts),
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

/// Per partition: (error, offsets, values) of the records fetched.
fn parse_fetch(r: &Reply) -> Vec<(ErrorCode, Vec<i64>, Vec<String>)> {
    let resp = flatbuffers::root::<FetchResponse>(&r.body).unwrap();
    let mut at = 0usize;
    resp.results()
        .unwrap()
        .iter()
        .map(|p| {
            let n = p.batch_bytes() as usize;
            let bytes = &r.tail[at..at + n];
            at += n;
            let mut offsets = Vec::new();
            let mut values = Vec::new();
            for b in batches(bytes) {
                let b = b.unwrap();
                let view = validate_batch(b.bytes()).expect("fetched batch is intact");
                for rec in view.records().unwrap() {
                    offsets.push(rec.offset());
                    values.push(String::from_utf8(rec.value().unwrap().to_vec()).unwrap());
                    assert_eq!(rec.key(), Some(&b"k"[..]));
                    assert_eq!(rec.headers().next(), Some(("h", Some(&b"1"[..]))));
                }
            }
            (code(p.error()), offsets, values)
        })
        .collect()
}

fn list_offset(c: &mut Client, topic: &str, partition: u32, ts: i64) -> (ErrorCode, i64) {
    let mut fbb = FlatBufferBuilder::new();
    let t = fbb.create_string(topic);
    let p = ListOffsetsPartition::create(
        &mut fbb,
        &ListOffsetsPartitionArgs {
            topic: Some(t),
            partition,
            timestamp_ms: ts,
        },
    );
    let parts = fbb.create_vector(&[p]);
    let root = ListOffsetsRequest::create(
        &mut fbb,
        &ListOffsetsRequestArgs {
            partitions: Some(parts),
        },
    );
    fbb.finish(root, None);
    let r = c.call(ApiKey::ListOffsets, fbb.finished_data(), &[]);
    let resp = flatbuffers::root::<ListOffsetsResponse>(&r.body).unwrap();
    let res = resp.results().unwrap().get(0);
    (code(res.error()), res.offset())
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn topics_produce_fetch_list_offsets_and_configs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut c = broker.connect();

    assert_eq!(
        create_topic(&mut c, "orders", 4, &[("retention.ms", "-1")]).0,
        ErrorCode::None
    );
    assert_eq!(
        create_topic(&mut c, "orders", 4, &[]).0,
        ErrorCode::TopicAlreadyExists
    );
    assert_eq!(
        create_topic(&mut c, "bad/name", 1, &[]).0,
        ErrorCode::InvalidTopicName
    );
    let (e, m) = create_topic(&mut c, "x", 1, &[("segment.bytez", "1")]);
    assert_eq!(e, ErrorCode::InvalidConfig);
    assert!(m.contains("segment.bytez"), "{m}");

    // Two batches per partition in one request, to every partition.
    let per_partition: Vec<(u32, Vec<Vec<u8>>)> = (0..4)
        .map(|p| {
            (
                p,
                vec![
                    batch(&values(&format!("p{p}a"), 3), 0),
                    batch(&values(&format!("p{p}b"), 2), 5_000),
                ],
            )
        })
        .collect();
    for (e, base, m) in produce(&mut c, "orders", -1, &per_partition) {
        assert_eq!(e, ErrorCode::None, "{m}");
        assert_eq!(base, 0);
    }
    let second = produce(
        &mut c,
        "orders",
        1,
        &[(2, vec![batch(&values("p2c", 1), 3_000)])],
    );
    assert_eq!((second[0].0, second[0].1), (ErrorCode::None, 5));

    let r = c.call(
        ApiKey::Fetch,
        &fetch_request("orders", &[(0, 0), (1, 0), (2, 0), (3, 3)], 0, 1),
        &[],
    );
    let got = parse_fetch(&r);
    for (p, (error, offsets, records)) in got.iter().enumerate().take(3) {
        let mut want = values(&format!("p{p}a"), 3);
        want.extend(values(&format!("p{p}b"), 2));
        if p == 2 {
            want.extend(values("p2c", 1));
        }
        assert_eq!(*error, ErrorCode::None);
        assert_eq!(records, &want);
        assert_eq!(offsets, &(0..want.len() as i64).collect::<Vec<_>>());
    }
    // From offset 3: the batch holding it, whole.
    assert_eq!(got[3].2, values("p3b", 2));

    assert_eq!(list_offset(&mut c, "orders", 2, -2), (ErrorCode::None, 0));
    assert_eq!(list_offset(&mut c, "orders", 2, -1), (ErrorCode::None, 6));
    let t0 = now_ms();
    assert_eq!(
        list_offset(&mut c, "orders", 2, t0 + 1_500),
        (ErrorCode::None, 3)
    );
    assert_eq!(
        list_offset(&mut c, "orders", 2, t0 + 60_000),
        (ErrorCode::None, -1)
    );
    assert_eq!(
        list_offset(&mut c, "orders", 9, -1).0,
        ErrorCode::UnknownPartition
    );

    // Configs: alter, describe, reject bad ones with the key named.
    assert_eq!(
        alter_config(&mut c, "orders", "cleanup.policy", "compact,delete").0,
        ErrorCode::None
    );
    let (e, configs, hws) = describe(&mut c, "orders");
    assert_eq!(e, ErrorCode::None);
    assert_eq!(hws, vec![5, 5, 6, 5]);
    assert!(configs.contains(&("cleanup.policy".to_owned(), "compact,delete".to_owned())));
    assert!(configs.contains(&("retention.ms".to_owned(), "-1".to_owned())));
    let (e, m) = alter_config(&mut c, "orders", "retention.bytes", "lots");
    assert_eq!(e, ErrorCode::InvalidConfig);
    assert!(m.contains("retention.bytes") && m.contains("lots"), "{m}");
    let (e, m) = alter_config(&mut c, "orders", "no.such.key", "1");
    assert_eq!(e, ErrorCode::InvalidConfig);
    assert!(m.contains("no.such.key"), "{m}");

    // Unknown topic and partition on produce.
    let r = produce(&mut c, "nope", 1, &[(0, vec![batch(&values("x", 1), 1)])]);
    assert_eq!(r[0].0, ErrorCode::UnknownTopic);
    let r = produce(&mut c, "orders", 1, &[(7, vec![batch(&values("x", 1), 1)])]);
    assert_eq!(r[0].0, ErrorCode::UnknownPartition);
    let r = produce(&mut c, "orders", 5, &[(0, vec![batch(&values("x", 1), 1)])]);
    assert_eq!(r[0].0, ErrorCode::InvalidAcks);

    // Delete, then it is gone, and its directories too.
    assert_eq!(delete_topic(&mut c, "orders"), ErrorCode::None);
    assert_eq!(describe(&mut c, "orders").0, ErrorCode::UnknownTopic);
    assert!(!dir.path().join("orders-0").exists());
    assert_eq!(delete_topic(&mut c, "orders"), ErrorCode::UnknownTopic);
    broker.stop();
}

#[test]
fn bad_input_gets_precise_errors_and_only_lost_framing_closes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut good = broker.connect();
    assert_eq!(create_topic(&mut good, "t", 2, &[]).0, ErrorCode::None);

    // Random bytes: the framing is lost, the connection closes.
    let mut noise = broker.connect();
    let mut seed: u64 = 0x5eed;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8 | 0x80
        })
        .collect();
    noise.s.write_all(&bytes).unwrap();
    assert!(noise.is_closed());

    // A frame longer than the maximum.
    let mut big = broker.connect();
    let mut head = Vec::new();
    FrameHeader {
        length: (FRAME_BYTES_MAX + 1) as u32,
        api: 10,
        version: 0,
        correlation_id: 1,
        body_len: 0,
    }
    .encode(&mut head);
    big.s.write_all(&head).unwrap();
    assert!(big.is_closed());

    // A length shorter than the header itself.
    let mut short = broker.connect();
    short
        .s
        .write_all(&[4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    assert!(short.is_closed());

    // Unknown api: an error reply (api 0, ApiVersionsResponse), connection stays.
    let r = good.call(ApiKey::ApiVersions, &[], &[]);
    assert_eq!(r.header.api, 0);
    let id = good.send(999, b"", &[]);
    let r = good.recv();
    assert_eq!((r.header.correlation_id, r.header.api), (id, 0));
    let resp = flatbuffers::root::<ApiVersionsResponse>(&r.body).unwrap();
    assert_eq!(code(resp.error()), ErrorCode::UnknownApi);
    assert!(resp.apis().unwrap().len() >= 9);

    // Unsupported version and an undecodable body.
    let frame = encode_frame(ApiKey::Metadata as u16, 7, 50, b"", &[]);
    good.s.write_all(&frame).unwrap();
    let r = good.recv();
    let resp = flatbuffers::root::<ApiVersionsResponse>(&r.body).unwrap();
    assert_eq!(code(resp.error()), ErrorCode::UnsupportedVersion);
    let r = good.call(ApiKey::Metadata, &[1, 2, 3], &[]);
    let resp = flatbuffers::root::<ApiVersionsResponse>(&r.body).unwrap();
    assert_eq!(code(resp.error()), ErrorCode::InvalidRequest);

    // A batch with a bad CRC fails its partition only.
    let mut bad = batch(&values("bad", 2), 1);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let r = produce(
        &mut good,
        "t",
        -1,
        &[(0, vec![bad]), (1, vec![batch(&values("ok", 2), 1)])],
    );
    assert_eq!(r[0].0, ErrorCode::CorruptBatch, "{}", r[0].2);
    assert_eq!(r[1].0, ErrorCode::None, "{}", r[1].2);
    // acks=0 still reports a bad batch.
    let mut bad = batch(&values("bad", 2), 1);
    bad[last] ^= 0xff;
    let r = produce(&mut good, "t", 0, &[(0, vec![bad])]);
    assert_eq!(r[0].0, ErrorCode::CorruptBatch);

    // The broker is up, new connections work.
    let mut again = broker.connect();
    assert_eq!(describe(&mut again, "t").2, vec![0, 2]);
    broker.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut c = broker.connect();
    assert_eq!(create_topic(&mut c, "p", 3, &[]).0, ErrorCode::None);
    // A long poll first, then quick requests behind it: replies come in order.
    let fetch = fetch_request("p", &[(0, 0)], 300, 1);
    let first = c.send(ApiKey::Fetch as u16, &fetch, &[]);
    let ids: Vec<u32> = (0..20)
        .map(|_| c.send(ApiKey::ApiVersions as u16, &[], &[]))
        .collect();
    assert_eq!(c.recv().header.correlation_id, first);
    for id in ids {
        assert_eq!(c.recv().header.correlation_id, id);
    }
    broker.stop();
}

#[test]
fn long_poll_fetch_returns_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut c = broker.connect();
    assert_eq!(create_topic(&mut c, "lp", 2, &[]).0, ErrorCode::None);

    // Nothing there: the fetch waits about max_wait and returns empty.
    let start = Instant::now();
    let r = c.call(
        ApiKey::Fetch,
        &fetch_request("lp", &[(0, 0), (1, 0)], 300, 1),
        &[],
    );
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert!(parse_fetch(&r).iter().all(|p| p.2.is_empty()));

    // A producer on another connection wakes a 10 s poll.
    let mut waiter = broker.connect();
    let id = waiter.send(
        ApiKey::Fetch as u16,
        &fetch_request("lp", &[(0, 0), (1, 0)], 10_000, 1),
        &[],
    );
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let r = produce(&mut c, "lp", 1, &[(1, vec![batch(&values("late", 2), 5)])]);
    assert_eq!(r[0].0, ErrorCode::None);
    let reply = waiter.recv();
    assert_eq!(reply.header.correlation_id, id);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "long poll did not wake"
    );
    let got = parse_fetch(&reply);
    assert_eq!(got[1].2, values("late", 2));
    broker.stop();
}

#[test]
fn restart_keeps_topics_and_data_and_leaves_clean_markers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut c = broker.connect();
    assert_eq!(
        create_topic(&mut c, "keep", 3, &[("flush.ms", "-1")]).0,
        ErrorCode::None
    );
    for p in 0..3 {
        let r = produce(
            &mut c,
            "keep",
            -1,
            &[(p, vec![batch(&values(&format!("r{p}"), 4), 10)])],
        );
        assert_eq!(r[0].0, ErrorCode::None, "{}", r[0].2);
    }
    drop(c);
    broker.stop();
    for p in 0..3 {
        assert!(
            dir.path().join(format!("keep-{p}")).join(".clean").exists(),
            "partition {p} has no clean marker after a graceful shutdown"
        );
    }

    let broker = TestBroker::start(dir.path());
    let mut c = broker.connect();
    let (e, configs, hws) = describe(&mut c, "keep");
    assert_eq!(e, ErrorCode::None);
    assert_eq!(hws, vec![4, 4, 4]);
    assert!(configs.contains(&("flush.ms".to_owned(), "-1".to_owned())));
    let r = c.call(
        ApiKey::Fetch,
        &fetch_request("keep", &[(0, 0), (1, 0), (2, 0)], 0, 1),
        &[],
    );
    for (p, got) in parse_fetch(&r).into_iter().enumerate() {
        assert_eq!(got.0, ErrorCode::None);
        assert_eq!(got.2, values(&format!("r{p}"), 4), "partition {p}");
    }
    let r = produce(
        &mut c,
        "keep",
        1,
        &[(0, vec![batch(&values("more", 1), 20)])],
    );
    assert_eq!((r[0].0, r[0].1), (ErrorCode::None, 4));
    broker.stop();
}

#[test]
fn metrics_are_served_as_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = free_addr();
    let broker = TestBroker::start_with(dir.path(), Some(metrics_addr));
    let mut c = broker.connect();
    assert_eq!(create_topic(&mut c, "m", 2, &[]).0, ErrorCode::None);
    let r = produce(&mut c, "m", 1, &[(1, vec![batch(&values("v", 3), 0)])]);
    assert_eq!(r[0].0, ErrorCode::None);
    let r = c.call(ApiKey::Fetch, &fetch_request("m", &[(1, 0)], 0, 1), &[]);
    assert_eq!(parse_fetch(&r)[0].2.len(), 3);
    let _ = produce(&mut c, "nope", 1, &[(0, vec![batch(&values("v", 1), 0)])]);

    let mut http = TcpStream::connect(metrics_addr).unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    http.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("strata_partition_records_in_total{shard=")
            && text.contains("topic=\"m\",partition=\"1\"} 3"),
        "{text}"
    );
    assert!(text.contains("partition=\"1\"} 3\n"), "{text}");
    assert!(text.contains("code=\"UNKNOWN_TOPIC\"} 1"), "{text}");
    assert!(text.contains("strata_produce_latency_us{shard="), "{text}");
    // The default produce waits for durability: at least one fdatasync was timed.
    let fsyncs: u64 = text
        .lines()
        .filter(|l| l.starts_with("strata_storage_fsyncs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(fsyncs >= 1, "{text}");
    assert!(text.contains("strata_fsync_latency_us{shard="), "{text}");
    broker.stop();
}

/// Loopback produce throughput with acks=all, one partition, 1 KiB records in
/// 64-record batches, 8 requests in flight. Reports, never fails on time:
/// `cargo test -p strata-net --release --test broker -- --ignored --nocapture`.
#[test]
#[ignore]
fn produce_throughput_report() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut c = broker.connect();
    assert_eq!(create_topic(&mut c, "bench", 1, &[]).0, ErrorCode::None);
    let value = vec![b'x'; 1024];
    let mut builder = NativeBatchBuilder::new();
    for _ in 0..64 {
        builder.push(now_ms(), None, Some(&value), &[]);
    }
    let one = builder.build();
    let mut fbb = FlatBufferBuilder::new();
    let part = ProducePartition::create(
        &mut fbb,
        &ProducePartitionArgs {
            partition: 0,
            batch_bytes: one.len() as u32,
        },
    );
    let parts = fbb.create_vector(&[part]);
    let t = fbb.create_string("bench");
    let root = ProduceRequest::create(
        &mut fbb,
        &ProduceRequestArgs {
            topic: Some(t),
            acks: -1,
            timeout_ms: 30_000,
            partitions: Some(parts),
        },
    );
    fbb.finish(root, None);
    let body = fbb.finished_data().to_vec();
    let in_flight_max = 8;
    let start = Instant::now();
    let (mut sent, mut acked) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(3) || acked < sent {
        while sent - acked < in_flight_max && start.elapsed() < Duration::from_secs(3) {
            c.send(ApiKey::Produce as u16, &body, &[&one]);
            sent += 1;
        }
        let r = c.recv();
        let resp = flatbuffers::root::<ProduceResponse>(&r.body).unwrap();
        assert_eq!(
            code(resp.results().unwrap().get(0).error()),
            ErrorCode::None
        );
        acked += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (acked * one.len() as u64) as f64 / 1e6;
    println!(
        "produce acks=all, 1 partition, 64 x 1 KiB per batch, {in_flight_max} in flight: {:.1} MB/s ({} batches in {secs:.2} s)",
        mb / secs,
        acked
    );
    broker.stop();
}

fn create_partitions(c: &mut Client, name: &str, total: u32) -> ErrorCode {
    let mut fbb = FlatBufferBuilder::new();
    let n = fbb.create_string(name);
    let root = CreatePartitionsRequest::create(
        &mut fbb,
        &CreatePartitionsRequestArgs {
            name: Some(n),
            total_partitions: total,
        },
    );
    fbb.finish(root, None);
    let r = c.call(ApiKey::CreatePartitions, fbb.finished_data(), &[]);
    let resp = flatbuffers::root::<CreatePartitionsResponse>(&r.body).unwrap();
    code(resp.error())
}

#[test]
fn add_partitions_acks_zero_and_log_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut c = broker.connect();
    assert_eq!(
        create_topic(
            &mut c,
            "grow",
            1,
            &[("message.timestamp.type", "LogAppendTime")]
        )
        .0,
        ErrorCode::None
    );
    assert_eq!(
        create_partitions(&mut c, "grow", 1),
        ErrorCode::InvalidPartitions
    );
    assert_eq!(create_partitions(&mut c, "grow", 3), ErrorCode::None);
    assert_eq!(
        create_partitions(&mut c, "nope", 3),
        ErrorCode::UnknownTopic
    );
    assert_eq!(describe(&mut c, "grow").2, vec![0, 0, 0]);

    // acks=0 answers without offsets; the records still arrive.
    let r = produce(&mut c, "grow", 0, &[(2, vec![batch(&values("z", 2), 0)])]);
    assert_eq!((r[0].0, r[0].1), (ErrorCode::None, -1));
    let r = c.call(
        ApiKey::Fetch,
        &fetch_request("grow", &[(2, 0)], 5_000, 1),
        &[],
    );
    assert_eq!(parse_fetch(&r)[0].2, values("z", 2));

    // A partition that declares no batch bytes has nothing to append.
    let r = produce_raw(&mut c, "grow", 1, 1, 0, &[]);
    assert_eq!(r.0, ErrorCode::CorruptBatch, "{}", r.2);
    // An empty body is a request-level error (api 0 reply).
    let id = c.send(ApiKey::Produce as u16, &[], &[]);
    let reply = c.recv();
    assert_eq!((reply.header.correlation_id, reply.header.api), (id, 0));

    // LogAppendTime: the reply carries the broker's append time.
    let before = now_ms();
    let one = batch(&values("u", 1), -100_000);
    let r = produce_raw(&mut c, "grow", 1, 1, one.len() as u32, &one);
    assert_eq!((r.0, r.1), (ErrorCode::None, 0), "{}", r.2);
    assert!(r.3 >= before, "log append time {} < {before}", r.3);
    broker.stop();
}

/// One partition's produce with a hand-set `batch_bytes`: (error, base offset,
/// message, log-append time).
fn produce_raw(
    c: &mut Client,
    topic: &str,
    acks: i8,
    partition: u32,
    batch_bytes: u32,
    tail: &[u8],
) -> (ErrorCode, i64, String, i64) {
    let mut fbb = FlatBufferBuilder::new();
    let part = ProducePartition::create(
        &mut fbb,
        &ProducePartitionArgs {
            partition,
            batch_bytes,
        },
    );
    let parts = fbb.create_vector(&[part]);
    let t = fbb.create_string(topic);
    let root = ProduceRequest::create(
        &mut fbb,
        &ProduceRequestArgs {
            topic: Some(t),
            acks,
            timeout_ms: 1000,
            partitions: Some(parts),
        },
    );
    fbb.finish(root, None);
    let r = c.call(ApiKey::Produce, fbb.finished_data(), &[tail]);
    let resp = flatbuffers::root::<ProduceResponse>(&r.body).unwrap();
    let res = resp.results().unwrap().get(0);
    (
        code(res.error()),
        res.base_offset(),
        message(res.error()),
        res.log_append_time_ms(),
    )
}

#[test]
fn listen_address_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: taken.local_addr().unwrap(),
        metrics_addr: None,
        cores: 2,
        pin_to_cores: false,
        ..BrokerConfig::default()
    };
    let err = run_broker(config, Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(matches!(err, strata_net::BrokerError::Bind { .. }), "{err}");
}

#[test]
fn pipelined_produces_keep_per_partition_order_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut c = broker.connect();
    assert_eq!(create_topic(&mut c, "ord", 4, &[]).0, ErrorCode::None);
    let rounds = 50;
    let mut ids = Vec::new();
    for i in 0..rounds {
        let per_partition: Vec<(u32, Vec<Vec<u8>>)> = (0..4)
            .map(|p| (p, vec![batch(&[format!("{p}:{i}")], 0)]))
            .collect();
        let mut fbb = FlatBufferBuilder::new();
        let parts: Vec<_> = per_partition
            .iter()
            .map(|(p, bs)| {
                ProducePartition::create(
                    &mut fbb,
                    &ProducePartitionArgs {
                        partition: *p,
                        batch_bytes: bs[0].len() as u32,
                    },
                )
            })
            .collect();
        let parts = fbb.create_vector(&parts);
        let t = fbb.create_string("ord");
        let root = ProduceRequest::create(
            &mut fbb,
            &ProduceRequestArgs {
                topic: Some(t),
                acks: if i % 2 == 0 { 1 } else { -1 },
                timeout_ms: 30_000,
                partitions: Some(parts),
            },
        );
        fbb.finish(root, None);
        let tail: Vec<&[u8]> = per_partition.iter().map(|(_, bs)| &bs[0][..]).collect();
        ids.push(c.send(ApiKey::Produce as u16, fbb.finished_data(), &tail));
    }
    for (i, id) in ids.into_iter().enumerate() {
        let r = c.recv();
        assert_eq!(r.header.correlation_id, id);
        let resp = flatbuffers::root::<ProduceResponse>(&r.body).unwrap();
        for res in resp.results().unwrap() {
            assert_eq!(code(res.error()), ErrorCode::None);
            assert_eq!(res.base_offset(), i as i64);
        }
    }
    let r = c.call(
        ApiKey::Fetch,
        &fetch_request("ord", &[(0, 0), (1, 0), (2, 0), (3, 0)], 0, 1),
        &[],
    );
    for (p, got) in parse_fetch(&r).into_iter().enumerate() {
        let want: Vec<String> = (0..rounds).map(|i| format!("{p}:{i}")).collect();
        assert_eq!(got.2, want);
    }
    broker.stop();
}
