//! The connection layer against hostile or careless clients, across processes:
//! clients that pipeline 1 MiB fetches and never read the replies (the broker's
//! memory stays bounded, their descriptors go soon after they close, SIGTERM still
//! finishes, a second SIGTERM exits at once without losing acknowledged records),
//! `max.connections` / `max.connections.per.ip`, `connections.max.idle.ms`, and a
//! connection flood against a broker with few descriptors (no log storm; it serves
//! again once descriptors free up).
//!
//! `STRATA_NON_READING_SECS` sets how long the non-reading clients pump (default
//! `PUMP_SECS_DEFAULT`); the tests print the broker's RSS and shutdown times.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flatbuffers::FlatBufferBuilder;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey as KafkaApiKey, ApiVersionsRequest, FetchRequest as KafkaFetch, RequestHeader,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use strata_client::{Admin, AdminConfig, Producer, ProducerConfig, ProducerRecord};
use strata_schema::protocol::{
    FetchPartition as NativeFetchPartition, FetchPartitionArgs, FetchRequest, FetchRequestArgs,
    MetadataRequest, MetadataRequestArgs,
};
use strata_schema::{encode_frame, split_frame, ApiKey, FRAME_BYTES_MAX};
use strata_tests::broker::{high_watermark, TestBroker};
use strata_tests::kafka_wire::KafkaWire;

/// Default seconds the non-reading clients pump requests.
const PUMP_SECS_DEFAULT: u64 = 10;
/// Bytes a fetch asks for, in total and from its one partition.
const FETCH_MAX_BYTES: i32 = 1 << 20;
/// Records produced before the fetches (so every fetch answers ~1 MiB).
const RECORDS: usize = 96;
/// Bytes of one record's value.
const RECORD_BYTES: usize = 32 * 1024;
/// Broker RSS growth allowed under the two non-reading clients: both connections'
/// budgets (`strata_net::CONNECTION_QUEUED_BYTES_MAX`, 16 MiB each) plus slack for
/// allocator and read buffers. The code before the bound grew by ~114 MiB.
const RSS_GROWTH_KIB_MAX: u64 = 64 * 1024;
/// How long a closed client's descriptor may stay open in the broker.
const FD_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SIGTERM may take with non-reading clients connected: the 3 s drain,
/// one flush, and slack for a loaded machine. The old code waited 30 s.
const SIGTERM_EXIT_BOUND: Duration = Duration::from_secs(12);
/// How long the broker may take to answer or close in the tests below.
const DEADLINE: Duration = Duration::from_secs(10);
/// How often state is polled.
const POLL: Duration = Duration::from_millis(50);
/// Write timeout of a pumping client, so its loop notices its deadline.
const WRITE_POLL: Duration = Duration::from_millis(100);

fn pump_duration() -> Duration {
    let secs = std::env::var("STRATA_NON_READING_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(PUMP_SECS_DEFAULT);
    Duration::from_secs(secs)
}

fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects")
}

/// VmRSS of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {} ms",
            timeout.as_millis()
        );
        std::thread::sleep(POLL);
    }
}

/// `RECORDS` records of `RECORD_BYTES` in `topic`'s partition 0, acknowledged.
fn produce(broker: &TestBroker, topic: &str) {
    admin(broker)
        .create_topic(topic, 1, &[])
        .wait()
        .expect("create topic");
    let producer = Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let value = vec![b'v'; RECORD_BYTES];
    let sends: Vec<_> = (0..RECORDS)
        .map(|_| producer.send(ProducerRecord::new(topic, value.clone()).partition(0)))
        .collect();
    for s in sends {
        s.wait().expect("record acknowledged");
    }
}

/// A client that writes the same request over and over and never reads a reply.
/// Frames are written whole (a partial write is finished before the next frame),
/// so the broker sees well-framed requests only.
struct NonReader {
    stream: TcpStream,
    frame: Vec<u8>,
    written: usize,
    sent: u64,
}

impl NonReader {
    fn connect(addr: &str, frame: Vec<u8>) -> NonReader {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_write_timeout(Some(WRITE_POLL))
            .expect("write timeout");
        NonReader {
            stream,
            frame,
            written: 0,
            sent: 0,
        }
    }

    /// Native Fetch of `topic`-0 from offset 0, 1 MiB.
    fn native(broker: &TestBroker, topic: &str) -> NonReader {
        let mut fbb = FlatBufferBuilder::new();
        let t = fbb.create_string(topic);
        let p = NativeFetchPartition::create(
            &mut fbb,
            &FetchPartitionArgs {
                topic: Some(t),
                partition: 0,
                fetch_offset: 0,
                max_bytes: FETCH_MAX_BYTES as u32,
            },
        );
        let parts = fbb.create_vector(&[p]);
        let root = FetchRequest::create(
            &mut fbb,
            &FetchRequestArgs {
                max_wait_ms: 0,
                min_bytes: 1,
                max_bytes: FETCH_MAX_BYTES as u32,
                partitions: Some(parts),
            },
        );
        fbb.finish(root, None);
        let frame = encode_frame(ApiKey::Fetch as u16, 0, 1, fbb.finished_data(), &[]);
        NonReader::connect(&broker.addr(), frame)
    }

    /// Kafka Fetch v4 of `topic`-0 from offset 0, 1 MiB.
    fn kafka(broker: &TestBroker, topic: &str) -> NonReader {
        const VERSION: i16 = 4;
        let mut header = RequestHeader::default();
        header.request_api_key = KafkaApiKey::Fetch as i16;
        header.request_api_version = VERSION;
        header.correlation_id = 1;
        header.client_id = Some(StrBytes::from_static_str("non-reader"));
        let partition = FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(FETCH_MAX_BYTES);
        let fetch = KafkaFetch::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_topics(vec![FetchTopic::default()
                .with_topic(StrBytes::from_string(topic.to_owned()).into())
                .with_partitions(vec![partition])]);
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, KafkaFetch::header_version(VERSION))
            .expect("encode header");
        fetch.encode(&mut buf, VERSION).expect("encode fetch");
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        NonReader::connect(&broker.kafka_addr(), frame)
    }

    /// Writes requests until `until`; returns whether the broker still accepts
    /// bytes (false once TCP pushes back for a whole write poll).
    fn pump_until(&mut self, until: Instant) {
        while Instant::now() < until {
            match self.stream.write(&self.frame[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    if self.written == self.frame.len() {
                        self.written = 0;
                        self.sent += 1;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("the broker closed a non-reading client: {e}"),
            }
        }
    }
}

/// Pumps both clients for `duration` from two threads while sampling the broker's
/// RSS; returns the clients and the peak RSS (KiB).
fn pump_both(pid: u32, clients: Vec<NonReader>, duration: Duration) -> (Vec<NonReader>, u64) {
    let until = Instant::now() + duration;
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || {
                c.pump_until(until);
                c
            })
        })
        .collect();
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    let clients: Vec<NonReader> = threads
        .into_iter()
        .map(|t| t.join().expect("pumping thread"))
        .collect();
    peak = peak.max(rss_kib(pid));
    (clients, peak)
}

/// Whether the broker closed `stream` (EOF or reset) within `timeout`; replies
/// that arrive first are skipped.
fn closed_by_broker(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(POLL)).expect("read timeout");
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A native Metadata round trip on `stream`: whether it was answered.
fn metadata_answered(stream: &mut TcpStream) -> bool {
    let mut fbb = FlatBufferBuilder::new();
    let root = MetadataRequest::create(
        &mut fbb,
        &MetadataRequestArgs {
            topics: None,
            include_internal: false,
        },
    );
    fbb.finish(root, None);
    let frame = encode_frame(ApiKey::Metadata as u16, 0, 7, fbb.finished_data(), &[]);
    if stream.write_all(&frame).is_err() {
        return false;
    }
    stream.set_read_timeout(Some(POLL)).expect("read timeout");
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        if let Ok(Some((f, _))) = split_frame(&got, FRAME_BYTES_MAX) {
            return f.header.correlation_id == 7;
        }
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
    false
}

/// A native connection to `broker` whose Metadata was answered, retried until one
/// is (a closed connection's uncount reaches the counts in the background).
fn native_served(broker: &TestBroker) -> TcpStream {
    wait_for(
        "a native connection under the limit served",
        DEADLINE,
        || {
            let mut c = TcpStream::connect(broker.addr()).expect("connect");
            metadata_answered(&mut c).then_some(c)
        },
    )
}

#[test]
fn clients_that_never_read_are_bounded_and_freed_when_they_close() {
    let broker = TestBroker::start();
    let pid = broker.pid();
    produce(&broker, "big");
    // The producer's and admin's connections close in the background.
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = rss_kib(pid);
    let fds_before = fd_count(pid);
    let clients = vec![
        NonReader::native(&broker, "big"),
        NonReader::kafka(&broker, "big"),
    ];
    let duration = pump_duration();
    let (clients, peak) = pump_both(pid, clients, duration);
    let sent: Vec<u64> = clients.iter().map(|c| c.sent).collect();
    println!(
        "RSS before {} KiB, peak under 2 non-reading clients for {} s: {} KiB (+{} KiB); \
         requests written: {sent:?}",
        rss_before,
        duration.as_secs(),
        peak,
        peak.saturating_sub(rss_before)
    );
    assert!(
        sent.iter().all(|&n| n > 0),
        "each client got requests in: {sent:?}"
    );
    assert!(
        peak.saturating_sub(rss_before) <= RSS_GROWTH_KIB_MAX,
        "the broker grew by {} KiB under two non-reading clients (bound {} KiB)",
        peak - rss_before,
        RSS_GROWTH_KIB_MAX
    );
    assert!(
        fd_count(pid) >= fds_before + 2,
        "both clients are connected"
    );
    let closed = Instant::now();
    drop(clients);
    wait_for(
        "the closed clients' descriptors released",
        FD_RELEASE_TIMEOUT,
        || (fd_count(pid) <= fds_before).then_some(()),
    );
    println!(
        "descriptors released {} ms after the clients closed",
        closed.elapsed().as_millis()
    );
    // The broker still serves.
    let mut c = TcpStream::connect(broker.addr()).expect("connect");
    assert!(metadata_answered(&mut c), "a new client is served");
    let mut broker = broker;
    broker.stop_gracefully();
}

#[test]
fn sigterm_finishes_with_non_reading_clients_and_a_second_one_exits_at_once() {
    let mut broker = TestBroker::start();
    produce(&broker, "big");
    let clients = vec![
        NonReader::native(&broker, "big"),
        NonReader::kafka(&broker, "big"),
    ];
    let (clients, _) = pump_both(broker.pid(), clients, Duration::from_secs(3));
    let took = broker.stop_gracefully();
    println!(
        "SIGTERM with 2 non-reading clients connected: exited in {} ms",
        took.as_millis()
    );
    assert!(
        took < SIGTERM_EXIT_BOUND,
        "SIGTERM took {took:?} with non-reading clients connected"
    );
    drop(clients);

    // Again, with a second SIGTERM right after the first: it exits at once (status
    // 2), before the drain deadline, and nothing acknowledged is lost.
    broker.restart();
    assert_eq!(
        high_watermark(&admin(&broker), "big", 0),
        RECORDS as i64,
        "records survive the first shutdown"
    );
    let clients = vec![
        NonReader::native(&broker, "big"),
        NonReader::kafka(&broker, "big"),
    ];
    let (clients, _) = pump_both(broker.pid(), clients, Duration::from_secs(2));
    let started = Instant::now();
    broker.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    broker.signal(libc::SIGTERM);
    let status = broker.wait_exit("a second SIGTERM");
    println!(
        "second SIGTERM: exited with {status} {} ms after the first",
        started.elapsed().as_millis()
    );
    assert_eq!(status.code(), Some(2), "a second SIGTERM exits at once");
    drop(clients);
    broker.restart();
    assert_eq!(
        high_watermark(&admin(&broker), "big", 0),
        RECORDS as i64,
        "every acknowledged record is there after the immediate exit"
    );
    broker.stop_gracefully();
}

#[test]
fn max_connections_per_ip_and_in_total_close_new_connections_at_once() {
    // Per IP, from the config file (Kafka's name).
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("strata.conf");
    std::fs::write(&config, "max.connections.per.ip = 3\n").expect("write config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let mut broker = TestBroker::start_with_args(2, &["--config", &config]);
    // Both listeners count together: two native and one Kafka connection, each
    // answered before the next opens, so all three are counted (a connection is
    // counted before it is served). The start's readiness probe may still be
    // counted for a moment, so each is retried until served.
    let mut open: Vec<TcpStream> = (0..2).map(|_| native_served(&broker)).collect();
    let kafka = wait_for(
        "a Kafka connection under the limit served",
        DEADLINE,
        || {
            let mut wire = KafkaWire::connect(&broker.kafka_addr());
            let request = wire.encode(KafkaApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
            wire.round_trip_raw(&request).is_ok().then_some(wire)
        },
    );
    let mut fourth = TcpStream::connect(broker.addr()).expect("connect");
    assert!(
        closed_by_broker(&mut fourth, DEADLINE),
        "a fourth connection from 127.0.0.1 is closed at once"
    );
    for c in open.iter_mut().take(2) {
        assert!(metadata_answered(c), "the first connections still work");
    }
    // One closes: a new one is served again.
    drop(kafka);
    native_served(&broker);
    broker.stop_gracefully();

    // In total, from the flag.
    let mut broker = TestBroker::start_with_args(2, &["--max-connections", "2"]);
    // The start's readiness probe may still be counted for a moment.
    let mut open: Vec<TcpStream> = (0..2).map(|_| native_served(&broker)).collect();
    let mut third = TcpStream::connect(broker.addr()).expect("connect");
    assert!(
        closed_by_broker(&mut third, DEADLINE),
        "a third connection is closed at once"
    );
    assert!(metadata_answered(&mut open[0]), "the first ones still work");
    drop(open);
    broker.stop_gracefully();
}

#[test]
fn idle_connections_are_closed_after_connections_max_idle_ms() {
    let mut broker = TestBroker::start_with_args(2, &["--connections-max-idle-ms", "1000"]);
    let mut idle = TcpStream::connect(broker.addr()).expect("connect");
    let mut busy = TcpStream::connect(broker.addr()).expect("connect");
    assert!(metadata_answered(&mut idle));
    let started = Instant::now();
    // `busy` sends a request every 300 ms for 3 s: it stays open.
    while started.elapsed() < Duration::from_secs(3) {
        assert!(
            metadata_answered(&mut busy),
            "a connection in use is not idle ({} ms in)",
            started.elapsed().as_millis()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        closed_by_broker(&mut idle, DEADLINE),
        "the idle connection was closed"
    );
    println!(
        "idle connection closed within {} ms",
        started.elapsed().as_millis()
    );
    assert!(metadata_answered(&mut busy), "the busy one still works");
    broker.stop_gracefully();
}

/// Descriptors the broker gets: enough to start one shard, far fewer than the
/// flood's connections.
const FD_LIMIT: u64 = 160;
/// Connections opened by the flood.
const FLOOD_CONNECTIONS: usize = 400;
/// How long the flood is held.
const FLOOD_HOLD: Duration = Duration::from_secs(5);
/// Accept-failure log lines allowed in that time (one per 10 s is logged, plus
/// slack for the two listeners).
const ACCEPT_FAILURE_LINES_MAX: usize = 6;

#[test]
fn a_connection_flood_past_the_descriptor_limit_does_not_storm_the_log_and_heals() {
    let mut broker = TestBroker::start_with_fd_limit(1, &[], Some(FD_LIMIT));
    let mut flood = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        // Beyond the listen backlog a connect may time out: that is fine.
        if let Ok(c) = TcpStream::connect_timeout(
            &broker.addr().parse().expect("address"),
            Duration::from_millis(500),
        ) {
            flood.push(c);
        }
    }
    std::thread::sleep(FLOOD_HOLD);
    assert!(broker.is_running(), "{}", broker.stderr_tail());
    let lines = broker
        .stderr_tail()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    println!(
        "{} flood connections held {} s: {lines} accept-failure log line(s)",
        flood.len(),
        FLOOD_HOLD.as_secs()
    );
    assert!(
        lines <= ACCEPT_FAILURE_LINES_MAX,
        "{lines} accept-failure lines in {} s\n{}",
        FLOOD_HOLD.as_secs(),
        broker.stderr_tail()
    );
    drop(flood);
    wait_for(
        "a client served after the flood",
        Duration::from_secs(30),
        || {
            let mut c = TcpStream::connect(broker.addr()).ok()?;
            metadata_answered(&mut c).then_some(())
        },
    );
    broker.stop_gracefully();
}
