//! Bad input against a real broker process: garbage bytes, a frame over the size
//! limit, unknown APIs and versions, undecodable bodies, a batch with a bad CRC,
//! produce to an unknown topic or partition, invalid topic configs, and the CLI's
//! errors. Each gets its precise error (or, when the framing is lost, only its own
//! connection is closed), and after each the broker is still up: a connection opened
//! before keeps working and a new one is served.
//!
//! The garbage bytes come from a seed: `STRATA_BAD_INPUT_SEED` (decimal or 0x-hex)
//! replays a run.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use flatbuffers::FlatBufferBuilder;
use strata_client::{Admin, AdminConfig, ClientError, Producer, ProducerConfig, ProducerRecord};
use strata_schema::protocol::{
    ApiVersionsResponse, ConfigEntry, ConfigEntryArgs, CreateTopicsRequest,
    CreateTopicsRequestArgs, CreateTopicsResponse, MetadataRequest, MetadataRequestArgs,
    MetadataResponse, ProducePartition, ProducePartitionArgs, ProduceRequest, ProduceRequestArgs,
    ProduceResponse,
};
use strata_schema::{
    encode_frame, layout, split_frame, ApiKey, ErrorCode, FrameError, FrameHeader,
    NativeBatchBuilder, FRAME_BYTES_MAX, FRAME_HEADER_BYTES,
};
use strata_tests::broker::{high_watermark, run_cli, TestBroker, CLI_TIMEOUT};
use strata_tests::rng::SplitMix64;

/// Root seed when `STRATA_BAD_INPUT_SEED` is not set.
const SEED_DEFAULT: u64 = 0x5354_5241_4241_4421;
/// Connections that get garbage.
const GARBAGE_CONNECTIONS: u64 = 4;
/// Bytes of garbage sent on each.
const GARBAGE_BYTES: usize = 8 * 1024;
/// Garbage buffers drawn before one that loses the framing within its bytes.
const GARBAGE_DRAWS_MAX: u64 = 1_000;
/// Well-framed requests with random bodies sent on each of those connections.
const RANDOM_FRAMES: usize = 40;
/// Bytes of a random request body, at most.
const RANDOM_BODY_BYTES_MAX: u64 = 512;
/// How long a reply (or the close of a connection) may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of a raw socket, so waits notice their deadline.
const READ_POLL: Duration = Duration::from_millis(50);

fn seed() -> u64 {
    match std::env::var("STRATA_BAD_INPUT_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("STRATA_BAD_INPUT_SEED={s} is not a number"))
        }
        Err(_) => SEED_DEFAULT,
    }
}

/// One reply frame, owned.
#[derive(Debug)]
struct Reply {
    api: u16,
    correlation_id: u32,
    body: Vec<u8>,
}

/// A plain TCP connection speaking raw frames.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    next_correlation_id: u32,
}

impl Raw {
    fn connect(broker: &TestBroker) -> Raw {
        let stream = TcpStream::connect(broker.addr()).expect("raw connect");
        stream
            .set_read_timeout(Some(READ_POLL))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
            next_correlation_id: 1,
        }
    }

    /// Writes bytes; the broker may already have closed, so errors are returned.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one request frame; returns its correlation id.
    fn send(&mut self, api: u16, version: u16, body: &[u8], tail: &[&[u8]]) -> u32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = encode_frame(api, version, id, body, tail);
        self.write(&frame).expect("write request");
        id
    }

    /// Reads until one whole frame is buffered, the peer closes (`None`) or the
    /// deadline passes (panic).
    fn read_reply(&mut self) -> Option<Reply> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match split_frame(&self.buf, FRAME_BYTES_MAX) {
                Ok(Some((frame, n))) => {
                    let reply = Reply {
                        api: frame.header.api,
                        correlation_id: frame.header.correlation_id,
                        body: frame.body.to_vec(),
                    };
                    self.buf.drain(..n);
                    return Some(reply);
                }
                Ok(None) => {}
                Err(e) => panic!("the broker sent a bad frame: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "no reply within {} ms",
                REPLY_TIMEOUT.as_millis()
            );
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The reply to request `id`, which must be the next frame.
    fn reply_to(&mut self, id: u32) -> Reply {
        let reply = self.read_reply().unwrap_or_else(|| {
            panic!("the broker closed the connection instead of answering request {id}")
        });
        assert_eq!(reply.correlation_id, id, "replies come in request order");
        reply
    }

    /// Every reply until the broker closes the connection, within the timeout.
    fn replies_until_closed(&mut self) -> Vec<Reply> {
        let mut replies = Vec::new();
        while let Some(r) = self.read_reply() {
            replies.push(r);
        }
        replies
    }

    /// A Metadata request for every topic, answered with no error: the connection works.
    fn assert_serves_metadata(&mut self) -> Vec<String> {
        let id = self.send(ApiKey::Metadata as u16, 0, &metadata_request(None), &[]);
        let reply = self.reply_to(id);
        assert_eq!(reply.api, ApiKey::Metadata as u16, "{reply:?}");
        let response =
            flatbuffers::root::<MetadataResponse>(&reply.body).expect("Metadata response decodes");
        response
            .topics()
            .iter()
            .flatten()
            .map(|t| t.name().to_owned())
            .collect()
    }
}

fn metadata_request(topics: Option<&[&str]>) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let topics = topics.map(|names| {
        let names: Vec<_> = names.iter().map(|n| fbb.create_string(n)).collect();
        fbb.create_vector(&names)
    });
    let root = MetadataRequest::create(
        &mut fbb,
        &MetadataRequestArgs {
            topics,
            include_internal: false,
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

/// A Produce body for `topic` with (partition, batch bytes) entries, in tail order.
fn produce_request(topic: &str, acks: i8, partitions: &[(u32, usize)]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let parts: Vec<_> = partitions
        .iter()
        .map(|&(partition, bytes)| {
            ProducePartition::create(
                &mut fbb,
                &ProducePartitionArgs {
                    partition,
                    batch_bytes: u32::try_from(bytes).expect("batch fits u32"),
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let topic = fbb.create_string(topic);
    let root = ProduceRequest::create(
        &mut fbb,
        &ProduceRequestArgs {
            topic: Some(topic),
            acks,
            timeout_ms: 10_000,
            partitions: Some(parts),
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

fn create_topics_request(name: &str, partitions: u32, configs: &[(&str, &str)]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let entries: Vec<_> = configs
        .iter()
        .map(|(k, v)| {
            let (key, value) = (fbb.create_string(k), fbb.create_string(v));
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
    fbb.finished_data().to_vec()
}

/// A one-record native batch.
fn batch(value: &str) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new();
    b.push(1_700_000_000_000, Some(b"k"), Some(value.as_bytes()), &[]);
    b.build()
}

/// The request-level error a reply carries (an `ApiVersionsResponse` under api 0).
fn request_error(reply: &Reply) -> (ErrorCode, String) {
    assert_eq!(
        reply.api,
        ApiKey::ApiVersions as u16,
        "request-level errors come back as api 0: {reply:?}"
    );
    let response = flatbuffers::root::<ApiVersionsResponse>(&reply.body)
        .expect("ApiVersions response decodes");
    assert!(
        response.apis().is_some_and(|a| !a.is_empty()),
        "the error reply lists the served apis"
    );
    let error = response.error().expect("the reply carries an error");
    (
        ErrorCode::from_i16(error.code()),
        error.message().unwrap_or_default().to_owned(),
    )
}

fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects")
}

/// The broker is up, the long-lived `bystander` connection still works, and a new
/// client connection is served.
fn assert_still_serving(broker: &mut TestBroker, bystander: &mut Raw, after: &str) {
    assert!(
        broker.is_running(),
        "the broker exited after {after}\n{}",
        broker.stderr_tail()
    );
    bystander.assert_serves_metadata();
    admin(broker).list_topics(false).wait().unwrap_or_else(|e| {
        panic!(
            "a new connection is not served after {after}: {e}\n{}",
            broker.stderr_tail()
        )
    });
}

/// Garbage that loses the framing within its own bytes: the frames the broker would
/// cut from it before the first impossible header end inside the buffer, so the
/// broker reaches that header instead of waiting for more bytes. Returns the bytes and
/// the correlation ids of the whole (random) frames before the bad header.
fn framing_breaking_garbage(rng: &SplitMix64, connection: u64) -> (Vec<u8>, Vec<u32>) {
    for draw in 0..GARBAGE_DRAWS_MAX {
        let mut g = rng.fork(connection << 32 | draw);
        let mut bytes = vec![0u8; GARBAGE_BYTES];
        g.fill(&mut bytes);
        let mut at = 0;
        let mut frames = Vec::new();
        loop {
            match FrameHeader::decode(&bytes[at..], FRAME_BYTES_MAX) {
                // Its length still frames it: the broker skips it and answers.
                Err(FrameError::BodyTooLong { frame_bytes, .. }) => {
                    if at + frame_bytes > bytes.len() {
                        break;
                    }
                    let id = &bytes[at + 8..at + 12];
                    frames.push(u32::from_le_bytes([id[0], id[1], id[2], id[3]]));
                    at += frame_bytes;
                }
                Err(_) => return (bytes, frames),
                Ok(None) => break, // the broker would wait for the rest of a header
                Ok(Some(h)) if at + h.frame_bytes() <= bytes.len() => {
                    frames.push(h.correlation_id);
                    at += h.frame_bytes();
                }
                Ok(Some(_)) => break, // the broker would wait for the rest of a frame
            }
        }
    }
    panic!("no framing-breaking garbage in {GARBAGE_DRAWS_MAX} draws");
}

#[test]
fn garbage_and_oversized_frames_close_only_their_own_connection() {
    let seed = seed();
    println!("seed {seed:#x} (replay with STRATA_BAD_INPUT_SEED={seed:#x})");
    let rng = SplitMix64::new(seed);
    let mut broker = TestBroker::start();
    admin(&broker)
        .create_topic("t", 2, &[])
        .wait()
        .expect("create topic");
    let mut bystander = Raw::connect(&broker);
    assert_eq!(bystander.assert_serves_metadata(), ["t"]);

    for connection in 0..GARBAGE_CONNECTIONS {
        let (garbage, frames) = framing_breaking_garbage(&rng, connection);
        let mut raw = Raw::connect(&broker);
        // The broker may close before it has read everything: a failed write is fine.
        let _ = raw.write(&garbage);
        let replies = raw.replies_until_closed();
        // Whole frames before the bad header are requests like any other: each is
        // answered, in order, with a request-level error. The broker closes with
        // garbage unread, so the kernel resets the connection, which may drop replies
        // not yet read here: those that arrive are a prefix of the frames.
        let ids: Vec<u32> = replies.iter().map(|r| r.correlation_id).collect();
        assert!(
            frames.starts_with(&ids),
            "connection {connection}: replies {ids:?} to the random frames {frames:?}"
        );
        println!(
            "garbage connection {connection}: {} random frame(s) before the bad header, {} answered",
            frames.len(),
            ids.len()
        );
        for reply in &replies {
            let (code, _) = request_error(reply);
            assert!(
                matches!(
                    code,
                    ErrorCode::UnknownApi
                        | ErrorCode::UnsupportedVersion
                        | ErrorCode::InvalidRequest
                ),
                "random frame answered with {code:?}"
            );
        }
        assert_still_serving(&mut broker, &mut bystander, "garbage bytes");
    }

    // Well-framed requests with random bodies for every api (and unknown ones), then
    // a header that breaks the framing as the very last bytes (so nothing is left
    // unread and the close is orderly): every request is answered in order, either
    // normally or with a request-level error, then the connection closes.
    for connection in 0..GARBAGE_CONNECTIONS {
        let mut g = rng.fork(1 << 48 | connection);
        let mut bytes = Vec::new();
        let mut sent = Vec::new();
        for i in 0..RANDOM_FRAMES {
            let api = match g.range(0, 4) {
                0 => g.next_u64() as u16,
                _ => ApiKey::ALL[g.range(0, ApiKey::ALL.len() as u64) as usize] as u16,
            };
            let mut body = vec![0u8; g.range(0, RANDOM_BODY_BYTES_MAX) as usize];
            g.fill(&mut body);
            let id = 1_000 + i as u32;
            bytes.extend_from_slice(&encode_frame(api, 0, id, &body, &[]));
            sent.push((id, api));
        }
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0u8; FRAME_HEADER_BYTES - 4]);
        let mut raw = Raw::connect(&broker);
        raw.write(&bytes).expect("write random frames");
        let replies = raw.replies_until_closed();
        assert_eq!(replies.len(), sent.len(), "every whole frame is answered");
        for (reply, &(id, api)) in replies.iter().zip(&sent) {
            assert_eq!(reply.correlation_id, id, "replies come in request order");
            if reply.api != api {
                let (code, message) = request_error(reply);
                assert!(
                    matches!(code, ErrorCode::UnknownApi | ErrorCode::InvalidRequest),
                    "api {api} with a random body: {code:?} {message}"
                );
            }
        }
        assert_still_serving(&mut broker, &mut bystander, "random request bodies");
    }

    // A request, then a header announcing one byte more than the maximum frame: the
    // request is answered, then the connection closes without the broker waiting for
    // (or reading) the 65 MiB announced.
    let mut raw = Raw::connect(&broker);
    let id = raw.send(ApiKey::Metadata as u16, 0, &metadata_request(None), &[]);
    let oversized = FrameHeader {
        length: u32::try_from(FRAME_BYTES_MAX - 4 + 1).expect("fits"),
        api: ApiKey::Metadata as u16,
        version: 0,
        correlation_id: id + 1,
        body_len: 0,
    };
    let mut head = Vec::with_capacity(FRAME_HEADER_BYTES);
    oversized.encode(&mut head);
    raw.write(&head).expect("write oversized header");
    let replies = raw.replies_until_closed();
    assert_eq!(
        replies.len(),
        1,
        "only the request before the oversized frame is answered: {replies:?}"
    );
    assert_eq!(replies[0].correlation_id, id);
    assert_eq!(replies[0].api, ApiKey::Metadata as u16);
    assert_still_serving(&mut broker, &mut bystander, "an oversized frame");

    // A frame whose body is longer than the frame keeps its framing (its length
    // says where it ends): it is answered with an error and the connection stays.
    let mut raw = Raw::connect(&broker);
    let mut frame = encode_frame(ApiKey::Metadata as u16, 0, 1, &metadata_request(None), &[]);
    frame[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    raw.write(&frame).expect("write frame");
    let (code, message) = request_error(&raw.reply_to(1));
    assert_eq!(code, ErrorCode::InvalidRequest, "{message}");
    raw.assert_serves_metadata();
    assert_still_serving(&mut broker, &mut bystander, "a body longer than its frame");

    broker.stop_gracefully();
}

#[test]
fn unknown_api_version_or_body_gets_an_error_and_keeps_the_connection() {
    let mut broker = TestBroker::start();
    let mut bystander = Raw::connect(&broker);
    let mut raw = Raw::connect(&broker);

    for api in [999u16, 28u16, u16::MAX] {
        let id = raw.send(api, 0, &[], &[]);
        let (code, message) = request_error(&raw.reply_to(id));
        assert_eq!(code, ErrorCode::UnknownApi, "api {api}: {message}");
        assert!(
            message.contains(&api.to_string()),
            "the message names api {api}: {message}"
        );
        raw.assert_serves_metadata();
        assert_still_serving(&mut broker, &mut bystander, "an unknown api");
    }

    let id = raw.send(ApiKey::Metadata as u16, 9, &metadata_request(None), &[]);
    let (code, message) = request_error(&raw.reply_to(id));
    assert_eq!(code, ErrorCode::UnsupportedVersion, "{message}");
    raw.assert_serves_metadata();

    let id = raw.send(ApiKey::Metadata as u16, 0, b"not a flatbuffer", &[]);
    let (code, message) = request_error(&raw.reply_to(id));
    assert_eq!(code, ErrorCode::InvalidRequest, "{message}");
    raw.assert_serves_metadata();

    // Pipelined: three requests written at once are answered in order.
    let mut pipelined = Vec::new();
    let a = encode_frame(999, 0, 100, &[], &[]);
    let b = encode_frame(
        ApiKey::Metadata as u16,
        0,
        101,
        &metadata_request(None),
        &[],
    );
    let c = encode_frame(ApiKey::Metadata as u16, 0, 102, b"junk", &[]);
    for f in [a, b, c] {
        pipelined.extend_from_slice(&f);
    }
    raw.write(&pipelined).expect("write pipelined");
    assert_eq!(request_error(&raw.reply_to(100)).0, ErrorCode::UnknownApi);
    assert_eq!(raw.reply_to(101).api, ApiKey::Metadata as u16);
    assert_eq!(
        request_error(&raw.reply_to(102)).0,
        ErrorCode::InvalidRequest
    );
    assert_still_serving(&mut broker, &mut bystander, "pipelined bad requests");

    broker.stop_gracefully();
}

/// Connections fed mutated well-framed requests.
const MUTATED_CONNECTIONS: u64 = 12;
/// Mutated requests pipelined on each.
const MUTATED_FRAMES: usize = 60;

/// A Fetch body for `topic`-`partition` from offset 0 that answers at once.
fn fetch_request(topic: &str, partition: u32) -> Vec<u8> {
    use strata_schema::protocol::{
        FetchPartition, FetchPartitionArgs, FetchRequest, FetchRequestArgs,
    };
    let mut fbb = FlatBufferBuilder::new();
    let t = fbb.create_string(topic);
    let p = FetchPartition::create(
        &mut fbb,
        &FetchPartitionArgs {
            topic: Some(t),
            partition,
            fetch_offset: 0,
            max_bytes: 64 * 1024,
        },
    );
    let parts = fbb.create_vector(&[p]);
    let root = FetchRequest::create(
        &mut fbb,
        &FetchRequestArgs {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 64 * 1024,
            partitions: Some(parts),
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

/// One well-framed mutation of a valid request: its length is left alone, so the
/// framing holds; everything else may be wrong. Returns the frame and what was done.
fn mutated_frame(g: &mut SplitMix64, id: u32) -> (Vec<u8>, &'static str) {
    let good = batch("mutated");
    let (api, body, tail): (ApiKey, Vec<u8>, Vec<Vec<u8>>) = match g.range(0, 4) {
        0 => (ApiKey::Metadata, metadata_request(Some(&["t"])), vec![]),
        1 => (
            ApiKey::Produce,
            produce_request("t", -1, &[(0, good.len()), (1, good.len())]),
            vec![good.clone(), good],
        ),
        2 => (ApiKey::Fetch, fetch_request("t", 0), vec![]),
        _ => (ApiKey::ApiVersions, Vec::new(), vec![]),
    };
    let tail_refs: Vec<&[u8]> = tail.iter().map(Vec::as_slice).collect();
    let mut frame = encode_frame(api as u16, 0, id, &body, &tail_refs);
    let after_header = frame.len() - FRAME_HEADER_BYTES;
    let what = match g.range(0, 6) {
        // A Fetch's body is left whole (a flipped byte could make it a long poll).
        0 | 1 if api != ApiKey::Fetch && after_header > 0 => {
            for _ in 0..g.range(1, 5) {
                let at = FRAME_HEADER_BYTES + g.range(0, after_header as u64) as usize;
                frame[at] ^= 1 << g.range(0, 8);
            }
            "flipped bits in the body or tail"
        }
        2 if !tail.is_empty() => {
            let tail_at = FRAME_HEADER_BYTES + body.len();
            let at = tail_at + g.range(0, (frame.len() - tail_at) as u64) as usize;
            frame[at] = g.next_u64() as u8;
            "a corrupt tail"
        }
        3 => {
            // Any body length: shorter or longer than the body, or past the frame.
            let body_len = match g.range(0, 3) {
                0 => g.range(0, after_header as u64 + 1) as u32,
                1 => (after_header as u64 + g.range(1, 1 << 20)) as u32,
                _ => u32::MAX,
            };
            frame[12..16].copy_from_slice(&body_len.to_le_bytes());
            "a body length that does not match"
        }
        4 => {
            frame[6..8].copy_from_slice(&(g.range(1, 1 << 16) as u16).to_le_bytes());
            "an unsupported version"
        }
        _ => {
            let unknown = g.range(ApiKey::ALL.len() as u64 + 100, 1 << 16) as u16;
            frame[4..6].copy_from_slice(&unknown.to_le_bytes());
            "an unknown api"
        }
    };
    (frame, what)
}

#[test]
fn well_framed_bad_requests_are_answered_and_the_connection_stays_usable() {
    let seed = seed();
    println!("seed {seed:#x} (replay with STRATA_BAD_INPUT_SEED={seed:#x})");
    let rng = SplitMix64::new(seed);
    let mut broker = TestBroker::start();
    admin(&broker)
        .create_topic("t", 2, &[])
        .wait()
        .expect("create topic");
    let mut bystander = Raw::connect(&broker);
    let mut answered = 0usize;
    for connection in 0..MUTATED_CONNECTIONS {
        let mut g = rng.fork(2 << 48 | connection);
        let mut raw = Raw::connect(&broker);
        let mut sent = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..MUTATED_FRAMES {
            let id = 10_000 + i as u32;
            let (frame, what) = mutated_frame(&mut g, id);
            bytes.extend_from_slice(&frame);
            sent.push((id, what));
        }
        raw.write(&bytes).expect("write mutated frames");
        for &(id, what) in &sent {
            let reply = raw.read_reply().unwrap_or_else(|| {
                panic!(
                    "connection {connection}: the broker closed the connection instead of \
                     answering request {id} ({what})\n{}",
                    broker.stderr_tail()
                )
            });
            assert_eq!(
                reply.correlation_id, id,
                "replies come in request order ({what})"
            );
            if reply.api == ApiKey::ApiVersions as u16 {
                let response = flatbuffers::root::<ApiVersionsResponse>(&reply.body)
                    .expect("ApiVersions response decodes");
                if let Some(e) = response.error() {
                    assert!(
                        matches!(
                            ErrorCode::from_i16(e.code()),
                            ErrorCode::UnknownApi
                                | ErrorCode::UnsupportedVersion
                                | ErrorCode::InvalidRequest
                        ),
                        "request {id} ({what}): {:?} {}",
                        ErrorCode::from_i16(e.code()),
                        e.message().unwrap_or_default()
                    );
                }
            }
            answered += 1;
        }
        // The connection is still usable: a valid request after them succeeds.
        raw.assert_serves_metadata();
        assert_still_serving(&mut broker, &mut bystander, "mutated requests");
    }
    println!("{answered} mutated well-framed requests, every one answered");
    broker.stop_gracefully();
}

fn produce_results(reply: &Reply) -> Vec<(u32, ErrorCode, String, i64)> {
    assert_eq!(reply.api, ApiKey::Produce as u16, "{reply:?}");
    let response =
        flatbuffers::root::<ProduceResponse>(&reply.body).expect("Produce response decodes");
    response
        .results()
        .iter()
        .flatten()
        .map(|r| {
            let (code, message) = r.error().map_or((ErrorCode::None, String::new()), |e| {
                (
                    ErrorCode::from_i16(e.code()),
                    e.message().unwrap_or_default().to_owned(),
                )
            });
            (r.partition(), code, message, r.base_offset())
        })
        .collect()
}

#[test]
fn bad_crc_and_unknown_topic_or_partition_fail_per_partition() {
    let mut broker = TestBroker::start();
    let admin = admin(&broker);
    admin
        .create_topic("t", 2, &[])
        .wait()
        .expect("create topic");
    let mut bystander = Raw::connect(&broker);
    let mut raw = Raw::connect(&broker);

    // Partition 0 gets a batch whose stored CRC is wrong, partition 1 a good one, in
    // one request: only partition 0 fails, and nothing of it is appended.
    for acks in [-1i8, 1, 0] {
        let good = batch(&format!("good acks={acks}"));
        let mut bad = batch("bad");
        bad[layout::CRC.start] ^= 0xff;
        let body = produce_request("t", acks, &[(0, bad.len()), (1, good.len())]);
        let id = raw.send(ApiKey::Produce as u16, 0, &body, &[&bad, &good]);
        let results = produce_results(&raw.reply_to(id));
        assert_eq!(results.len(), 2, "acks={acks}: {results:?}");
        let (partition, code, message, _) = &results[0];
        assert_eq!(*partition, 0);
        assert_eq!(*code, ErrorCode::CorruptBatch, "acks={acks}: {message}");
        assert!(
            message.contains("CRC"),
            "acks={acks}: the message says why: {message}"
        );
        let (partition, code, message, _) = &results[1];
        assert_eq!(
            (*partition, *code),
            (1, ErrorCode::None),
            "acks={acks}: {message}"
        );
        assert_still_serving(&mut broker, &mut bystander, "a batch with a bad CRC");
    }
    assert_eq!(
        high_watermark(&admin, "t", 0),
        0,
        "nothing of the corrupt batches was appended"
    );
    let deadline = Instant::now() + REPLY_TIMEOUT; // the acks=0 append may still be landing
    while high_watermark(&admin, "t", 1) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        high_watermark(&admin, "t", 1),
        3,
        "the good batches were appended"
    );

    // Unknown topic and unknown partition.
    let good = batch("lost");
    let body = produce_request("no-such-topic", -1, &[(0, good.len())]);
    let id = raw.send(ApiKey::Produce as u16, 0, &body, &[&good]);
    let results = produce_results(&raw.reply_to(id));
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].1, ErrorCode::UnknownTopic, "{}", results[0].2);
    assert!(results[0].2.contains("no-such-topic"), "{}", results[0].2);
    assert_still_serving(&mut broker, &mut bystander, "produce to an unknown topic");

    let body = produce_request("t", -1, &[(7, good.len())]);
    let id = raw.send(ApiKey::Produce as u16, 0, &body, &[&good]);
    let results = produce_results(&raw.reply_to(id));
    assert_eq!(
        results[0].1,
        ErrorCode::UnknownPartition,
        "{}",
        results[0].2
    );
    assert_still_serving(
        &mut broker,
        &mut bystander,
        "produce to an unknown partition",
    );

    // The client reports an unknown topic as such.
    let producer = Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        max_block: Duration::from_secs(5),
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let e = producer
        .send(ProducerRecord::new("no-such-topic", "x"))
        .wait()
        .expect_err("send to an unknown topic fails");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");
    assert!(e.to_string().contains("no-such-topic"), "{e}");
    drop(producer);
    assert_still_serving(
        &mut broker,
        &mut bystander,
        "a client send to an unknown topic",
    );

    broker.stop_gracefully();
}

fn assert_invalid_config(result: Result<(), ClientError>, key: &str) {
    let e = result.expect_err("an invalid config is rejected");
    assert_eq!(e.code(), Some(ErrorCode::InvalidConfig), "{e}");
    assert!(e.to_string().contains(key), "the error names `{key}`: {e}");
}

#[test]
fn invalid_topic_configs_are_rejected_by_name() {
    let mut broker = TestBroker::start();
    let admin = admin(&broker);
    let mut bystander = Raw::connect(&broker);

    for (key, value) in [
        ("retention.ms", "soon"),
        ("cleanup.policy", "shred"),
        ("segment.bytes", "-5"),
        ("message.timestamp.type", "WallClock"),
        ("no.such.key", "1"),
    ] {
        assert_invalid_config(admin.create_topic("bad", 1, &[(key, value)]).wait(), key);
        assert_still_serving(&mut broker, &mut bystander, "an invalid config on create");
    }
    let e = admin
        .describe_topic("bad")
        .wait()
        .expect_err("the topic was not created");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");

    // The same over a raw connection: the CreateTopics response's own error.
    let mut raw = Raw::connect(&broker);
    let body = create_topics_request("bad", 1, &[("retention.bytes", "lots")]);
    let id = raw.send(ApiKey::CreateTopics as u16, 0, &body, &[]);
    let reply = raw.reply_to(id);
    assert_eq!(reply.api, ApiKey::CreateTopics as u16);
    let response = flatbuffers::root::<CreateTopicsResponse>(&reply.body).expect("decodes");
    let error = response.error().expect("an error");
    assert_eq!(ErrorCode::from_i16(error.code()), ErrorCode::InvalidConfig);
    assert!(
        error
            .message()
            .unwrap_or_default()
            .contains("retention.bytes"),
        "{:?}",
        error.message()
    );

    // Altering an existing topic: rejected by name, the config unchanged.
    admin
        .create_topic("good", 1, &[("retention.ms", "60000")])
        .wait()
        .expect("create topic");
    assert_invalid_config(
        admin
            .alter_config("good", &[("retention.ms", Some("forever"))])
            .wait(),
        "retention.ms",
    );
    assert_invalid_config(
        admin
            .alter_config("good", &[("retention.hours", Some("1"))])
            .wait(),
        "retention.hours",
    );
    let good = admin.describe_topic("good").wait().expect("describe");
    assert_eq!(good.config("retention.ms"), Some("60000"));
    assert_still_serving(&mut broker, &mut bystander, "an invalid config on alter");

    broker.stop_gracefully();
}

#[test]
fn cli_errors_name_the_problem_and_exit_non_zero() {
    let mut broker = TestBroker::start();
    let mut bystander = Raw::connect(&broker);
    broker
        .cli(&["topic", "create", "t", "-p", "2"], None)
        .assert_success();

    // Unreachable broker: a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let nowhere = format!("127.0.0.1:{port}");
    for args in [
        vec!["topic", "list"],
        vec!["produce", "t"],
        vec!["consume", "t", "--count", "1"],
    ] {
        let mut full = vec!["--brokers", nowhere.as_str()];
        full.extend_from_slice(&args);
        let out = run_cli(&full, Some(b"x\n"), CLI_TIMEOUT);
        out.assert_user_error();
        assert!(
            out.stderr.contains(&nowhere),
            "the error names the address: {out}"
        );
        assert!(
            out.stderr.contains("strata serve") && out.stderr.contains("--brokers"),
            "the error hints at starting a broker or pointing --brokers elsewhere: {out}"
        );
    }

    // The broker's internal topic is not for clients to write.
    let out = broker.cli(&["produce", "__consumer_offsets"], Some(b"x\n"));
    out.assert_user_error();
    assert!(
        out.stderr.contains("internal"),
        "the error says the topic is internal: {out}"
    );

    // Unknown topic.
    for (args, stdin) in [
        (vec!["topic", "describe", "nope"], None),
        (vec!["topic", "delete", "nope"], None),
        (vec!["consume", "nope", "--count", "1"], None),
        (vec!["produce", "nope"], Some(&b"x\n"[..])),
    ] {
        let out = broker.cli(&args, stdin);
        out.assert_user_error();
        assert!(
            out.stderr.contains("nope"),
            "the error names the topic: {out}"
        );
        assert!(
            out.stderr.contains("does not exist") || out.stderr.contains("UNKNOWN_TOPIC"),
            "the error says the topic does not exist: {out}"
        );
        assert_still_serving(
            &mut broker,
            &mut bystander,
            "a CLI command on an unknown topic",
        );
    }

    // Bad config key or value, on create and on alter.
    for (args, key) in [
        (
            vec!["topic", "create", "x", "-c", "bogus.key=1"],
            "bogus.key",
        ),
        (
            vec!["topic", "create", "x", "-c", "retention.ms=soon"],
            "retention.ms",
        ),
        (
            vec!["topic", "alter-config", "t", "-c", "cleanup.policy=shred"],
            "cleanup.policy",
        ),
    ] {
        let out = broker.cli(&args, None);
        out.assert_user_error();
        assert!(out.stderr.contains(key), "the error names `{key}`: {out}");
        assert_still_serving(
            &mut broker,
            &mut bystander,
            "a CLI command with a bad config",
        );
    }
    let out = broker.cli(&["topic", "list"], None);
    out.assert_success();
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("x\t")),
        "no topic was created by a rejected command: {out}"
    );

    // A partition that does not exist.
    let out = broker.cli(&["consume", "t", "--partition", "5", "--count", "1"], None);
    out.assert_user_error();
    assert!(out.stderr.contains('5'), "{out}");

    broker.stop_gracefully();
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, ClientError>, code: ErrorCode, names: &str) {
    let e = result.expect_err("the request is rejected");
    assert_eq!(e.code(), Some(code), "{e}");
    assert!(
        e.to_string().contains(names),
        "the error names `{names}`: {e}"
    );
}

#[test]
fn topic_and_produce_limits_get_precise_errors() {
    let mut broker = TestBroker::start();
    let admin = admin(&broker);
    let mut bystander = Raw::connect(&broker);
    admin
        .create_topic("small", 2, &[("max.message.bytes", "2000")])
        .wait()
        .expect("create topic");

    assert_code(
        admin.create_topic("small", 2, &[]).wait(),
        ErrorCode::TopicAlreadyExists,
        "small",
    );
    for name in ["bad/name", "..", "", "spaced name"] {
        let e = admin
            .create_topic(name, 1, &[])
            .wait()
            .expect_err("invalid name");
        assert_eq!(e.code(), Some(ErrorCode::InvalidTopicName), "{name:?}: {e}");
    }
    assert_code(
        admin.create_topic("zero", 0, &[]).wait(),
        ErrorCode::InvalidPartitions,
        "0",
    );
    assert_code(
        admin.add_partitions("small", 1).wait(),
        ErrorCode::InvalidPartitions,
        "small",
    );
    assert_code(
        admin.add_partitions("small", 2).wait(),
        ErrorCode::InvalidPartitions,
        "small",
    );
    assert_code(
        admin.add_partitions("nope", 3).wait(),
        ErrorCode::UnknownTopic,
        "nope",
    );
    assert_code(
        admin.delete_topic("nope").wait(),
        ErrorCode::UnknownTopic,
        "nope",
    );
    assert_still_serving(&mut broker, &mut bystander, "invalid topic administration");

    // A record over the topic's max.message.bytes.
    let producer = Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let e = producer
        .send(ProducerRecord::new("small", vec![b'x'; 3000]).partition(0))
        .wait()
        .expect_err("too large");
    assert_eq!(e.code(), Some(ErrorCode::MessageTooLarge), "{e}");
    assert!(e.to_string().contains("max.message.bytes"), "{e}");
    // The partition still takes records that fit.
    let meta = producer
        .send_blocking(ProducerRecord::new("small", vec![b'x'; 100]).partition(0))
        .expect("a record that fits");
    assert_eq!(meta.offset, 0, "nothing of the rejected batch was appended");
    drop(producer);

    // acks outside 0, 1, -1.
    let mut raw = Raw::connect(&broker);
    let good = batch("acks");
    let body = produce_request("small", 2, &[(1, good.len())]);
    let id = raw.send(ApiKey::Produce as u16, 0, &body, &[&good]);
    let results = produce_results(&raw.reply_to(id));
    assert_eq!(results[0].1, ErrorCode::InvalidAcks, "{}", results[0].2);
    assert_eq!(
        high_watermark(&admin, "small", 1),
        0,
        "nothing appended with invalid acks"
    );
    assert_still_serving(&mut broker, &mut bystander, "produce limits");

    broker.stop_gracefully();
}
