//! A fake in-process broker for the client's tests: a std `TcpListener` thread that
//! speaks the native framing and answers Metadata, Produce, Fetch and ListOffsets from
//! in-memory logs, with faults the tests switch on (failed produces, held or muted
//! responses).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flatbuffers::FlatBufferBuilder;
use strata_schema::protocol as fb;
use strata_schema::{
    encode_frame, split_frame, stamp_base_offset, validate_batch, validate_produced_batch, ApiKey,
    ErrorCode, FRAME_BYTES_MAX,
};

#[derive(Default)]
pub struct FakeState {
    /// topic → partition → stored batches (base offsets stamped).
    pub topics: BTreeMap<String, Vec<Vec<Vec<u8>>>>,
    /// The next this many Produce requests fail with `fail_code`.
    pub fail_produces: usize,
    pub fail_code: Option<ErrorCode>,
    /// Produce requests received (failed ones included).
    pub produce_requests: usize,
    /// Responses are held until this many are pending, then sent in reverse order.
    pub hold_responses: usize,
    /// Requests are read and never answered.
    pub mute: bool,
    /// The next this many Produce requests close the connection instead of appending.
    pub close_on_produce: usize,
}

pub struct FakeBroker {
    pub addr: String,
    pub state: Arc<Mutex<FakeState>>,
}

impl FakeBroker {
    /// A broker with `topics` (name, partitions), listening on a free port.
    pub fn start(topics: &[(&str, usize)]) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut state = FakeState::default();
        for (name, partitions) in topics {
            state
                .topics
                .insert((*name).to_owned(), vec![Vec::new(); *partitions]);
        }
        let state = Arc::new(Mutex::new(state));
        let accept_state = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = accept_state.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeBroker { addr, state }
    }

    pub fn brokers(&self) -> Vec<String> {
        vec![self.addr.clone()]
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<FakeState>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        while let Ok(Some((frame, n))) = split_frame(&buf, FRAME_BYTES_MAX) {
            if frame.header.api == ApiKey::Produce as u16 {
                let mut s = state.lock().unwrap();
                if s.close_on_produce > 0 {
                    s.close_on_produce -= 1;
                    return; // drops the stream
                }
            }
            let response = handle(
                frame.header.api,
                frame.header.correlation_id,
                frame.body,
                frame.tail,
                state,
            );
            buf.drain(..n);
            let (hold, mute) = {
                let s = state.lock().unwrap();
                (s.hold_responses, s.mute)
            };
            if mute {
                continue;
            }
            held.push(response);
            if held.len() >= hold.max(1) {
                for r in held.drain(..).rev() {
                    if stream.write_all(&r).is_err() {
                        return;
                    }
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn error<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    code: ErrorCode,
    message: &str,
) -> Option<flatbuffers::WIPOffset<fb::Error<'b>>> {
    let message = fbb.create_string(message);
    Some(fb::Error::create(
        fbb,
        &fb::ErrorArgs {
            code: code as i16,
            message: Some(message),
        },
    ))
}

fn next_offset(batches: &[Vec<u8>]) -> i64 {
    batches
        .last()
        .map_or(0, |b| validate_batch(b).unwrap().header().last_offset() + 1)
}

fn handle(api: u16, id: u32, body: &[u8], tail: &[u8], state: &Mutex<FakeState>) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let mut out_tail: Vec<u8> = Vec::new();
    let mut s = state.lock().unwrap();
    match ApiKey::from_u16(api) {
        Some(ApiKey::Metadata) => {
            let req = flatbuffers::root::<fb::MetadataRequest>(body).unwrap();
            let names: Vec<String> = match req.topics() {
                Some(t) => t.iter().map(str::to_owned).collect(),
                None => s.topics.keys().cloned().collect(),
            };
            let mut topics = Vec::new();
            for name in names {
                let info = match s.topics.get(&name) {
                    Some(parts) => {
                        let parts: Vec<_> = parts
                            .iter()
                            .enumerate()
                            .map(|(i, batches)| {
                                fb::PartitionInfo::create(
                                    &mut fbb,
                                    &fb::PartitionInfoArgs {
                                        partition: i as u32,
                                        high_watermark: next_offset(batches),
                                        size_bytes: batches.iter().map(|b| b.len() as u64).sum(),
                                        ..Default::default()
                                    },
                                )
                            })
                            .collect();
                        let parts = fbb.create_vector(&parts);
                        let n = fbb.create_string(&name);
                        fb::TopicInfo::create(
                            &mut fbb,
                            &fb::TopicInfoArgs {
                                name: Some(n),
                                partitions: Some(parts),
                                ..Default::default()
                            },
                        )
                    }
                    None => {
                        let e = error(
                            &mut fbb,
                            ErrorCode::UnknownTopic,
                            &format!("topic `{name}` does not exist"),
                        );
                        let n = fbb.create_string(&name);
                        fb::TopicInfo::create(
                            &mut fbb,
                            &fb::TopicInfoArgs {
                                name: Some(n),
                                error: e,
                                ..Default::default()
                            },
                        )
                    }
                };
                topics.push(info);
            }
            let topics = fbb.create_vector(&topics);
            let resp = fb::MetadataResponse::create(
                &mut fbb,
                &fb::MetadataResponseArgs {
                    brokers: None,
                    topics: Some(topics),
                    ..Default::default()
                },
            );
            fbb.finish_minimal(resp);
        }
        Some(ApiKey::Produce) => {
            let req = flatbuffers::root::<fb::ProduceRequest>(body).unwrap();
            s.produce_requests += 1;
            let fail = if s.fail_produces > 0 {
                s.fail_produces -= 1;
                s.fail_code
            } else {
                None
            };
            let topic = req.topic().to_owned();
            let mut at = 0usize;
            let mut results = Vec::new();
            for p in req.partitions().unwrap() {
                let batch = &tail[at..at + p.batch_bytes() as usize];
                at += p.batch_bytes() as usize;
                let outcome: Result<i64, (ErrorCode, String)> = if let Some(code) = fail {
                    Err((code, "injected failure".into()))
                } else {
                    match s
                        .topics
                        .get_mut(&topic)
                        .and_then(|parts| parts.get_mut(p.partition() as usize))
                    {
                        None => Err((
                            ErrorCode::UnknownTopic,
                            format!("topic `{topic}` partition {} does not exist", p.partition()),
                        )),
                        Some(batches) => match validate_produced_batch(batch) {
                            Err(e) => Err((ErrorCode::CorruptBatch, e.to_string())),
                            Ok(_) => {
                                let base = next_offset(batches);
                                let mut stored = batch.to_vec();
                                stamp_base_offset(&mut stored, base);
                                batches.push(stored);
                                Ok(base)
                            }
                        },
                    }
                };
                let (base_offset, err) = match outcome {
                    Ok(base) => (base, None),
                    Err((code, msg)) => (-1, error(&mut fbb, code, &msg)),
                };
                results.push(fb::ProducePartitionResult::create(
                    &mut fbb,
                    &fb::ProducePartitionResultArgs {
                        partition: p.partition(),
                        error: err,
                        base_offset,
                        log_append_time_ms: -1,
                        log_start_offset: 0,
                    },
                ));
            }
            let results = fbb.create_vector(&results);
            let t = fbb.create_string(&topic);
            let resp = fb::ProduceResponse::create(
                &mut fbb,
                &fb::ProduceResponseArgs {
                    topic: Some(t),
                    results: Some(results),
                },
            );
            fbb.finish_minimal(resp);
        }
        Some(ApiKey::Fetch) => {
            let req = flatbuffers::root::<fb::FetchRequest>(body).unwrap();
            let mut results = Vec::new();
            for p in req.partitions().unwrap() {
                let batches = s
                    .topics
                    .get(p.topic())
                    .and_then(|parts| parts.get(p.partition() as usize));
                let (err, hw, bytes) = match batches {
                    None => (
                        error(&mut fbb, ErrorCode::UnknownTopic, "no such topic"),
                        -1,
                        0,
                    ),
                    Some(batches) => {
                        let hw = next_offset(batches);
                        if p.fetch_offset() > hw {
                            (
                                error(&mut fbb, ErrorCode::OffsetOutOfRange, "past the end"),
                                hw,
                                0,
                            )
                        } else {
                            let start = out_tail.len();
                            for b in batches {
                                let h = validate_batch(b).unwrap();
                                if h.header().last_offset() < p.fetch_offset() {
                                    continue;
                                }
                                if out_tail.len() > start
                                    && out_tail.len() - start + b.len() > p.max_bytes() as usize
                                {
                                    break;
                                }
                                out_tail.extend_from_slice(b);
                            }
                            (None, hw, out_tail.len() - start)
                        }
                    }
                };
                let t = fbb.create_string(p.topic());
                results.push(fb::FetchPartitionResult::create(
                    &mut fbb,
                    &fb::FetchPartitionResultArgs {
                        topic: Some(t),
                        partition: p.partition(),
                        error: err,
                        high_watermark: hw,
                        log_start_offset: 0,
                        log_end_offset: hw,
                        batch_bytes: bytes as u32,
                    },
                ));
            }
            if out_tail.is_empty() {
                // A poor man's long poll.
                drop(s);
                std::thread::sleep(Duration::from_millis(u64::from(req.max_wait_ms()).min(20)));
            }
            let results = fbb.create_vector(&results);
            let resp = fb::FetchResponse::create(
                &mut fbb,
                &fb::FetchResponseArgs {
                    results: Some(results),
                },
            );
            fbb.finish_minimal(resp);
        }
        Some(ApiKey::ListOffsets) => {
            let req = flatbuffers::root::<fb::ListOffsetsRequest>(body).unwrap();
            let mut results = Vec::new();
            for p in req.partitions().unwrap() {
                let batches = s
                    .topics
                    .get(p.topic())
                    .and_then(|parts| parts.get(p.partition() as usize));
                let (err, offset) = match batches {
                    None => (
                        error(&mut fbb, ErrorCode::UnknownTopic, "no such topic"),
                        -1,
                    ),
                    Some(batches) => match p.timestamp_ms() {
                        -2 => (None, 0),
                        -1 => (None, next_offset(batches)),
                        ts => (
                            None,
                            batches
                                .iter()
                                .flat_map(|b| {
                                    validate_batch(b)
                                        .unwrap()
                                        .records()
                                        .unwrap()
                                        .map(|r| (r.offset(), r.timestamp_ms()))
                                        .collect::<Vec<_>>()
                                })
                                .find(|(_, t)| *t >= ts)
                                .map_or(-1, |(o, _)| o),
                        ),
                    },
                };
                let t = fbb.create_string(p.topic());
                results.push(fb::ListOffsetsResult::create(
                    &mut fbb,
                    &fb::ListOffsetsResultArgs {
                        topic: Some(t),
                        partition: p.partition(),
                        error: err,
                        offset,
                        timestamp_ms: -1,
                    },
                ));
            }
            let results = fbb.create_vector(&results);
            let resp = fb::ListOffsetsResponse::create(
                &mut fbb,
                &fb::ListOffsetsResponseArgs {
                    results: Some(results),
                },
            );
            fbb.finish_minimal(resp);
        }
        _ => panic!("fake broker does not serve api {api}"),
    }
    encode_frame(api, 0, id, fbb.finished_data(), &[&out_tail])
}
