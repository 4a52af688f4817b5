//! The codec without sockets: every message variant round-trips with seeded random
//! values, and truncated, garbage and hostile frames give errors, never panics.

use bytes::Bytes;
use flatbuffers::FlatBufferBuilder;
use strata_raft::{
    Append, AppendResult, Entry, EntryKind, Membership, Message, MessageBody, SnapshotMeta,
    SplitMix64, VoteRequest, APPEND_ENTRIES_MAX, MEMBERS_MAX,
};
use strata_schema::replication as fb;
use strata_schema::{frame_header, ReplicationApi, FRAME_BYTES_MAX};

use super::*;

fn seed() -> u64 {
    let seed = std::env::var("STRATA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("seed {seed} (STRATA_TEST_SEED={seed} replays it)");
    seed
}

fn members(r: &mut SplitMix64) -> Membership {
    let voters = (0..r.range(1, MEMBERS_MAX as u64 / 2))
        .map(|_| r.next_u64())
        .collect();
    let learners = (0..r.range(0, MEMBERS_MAX as u64 / 2))
        .map(|_| r.next_u64())
        .collect();
    Membership { voters, learners }
}

fn group(r: &mut SplitMix64) -> GroupId {
    if r.chance(200) {
        GroupId::Controller
    } else {
        let mut topic_id = [0u8; 16];
        topic_id[..8].copy_from_slice(&r.next_u64().to_le_bytes());
        topic_id[8..].copy_from_slice(&r.next_u64().to_le_bytes());
        GroupId::Partition {
            topic_id,
            partition: r.next_u64() as u32,
        }
    }
}

/// A random message of variant `variant` (0..10 covers every body).
fn message(r: &mut SplitMix64, variant: u64) -> GroupMessage {
    let vote = |r: &mut SplitMix64| VoteRequest {
        last_term: r.next_u64(),
        log_end_offset: r.next_u64(),
        transfer: r.chance(500),
    };
    let mut batches = Vec::new();
    let body = match variant {
        0 => MessageBody::PreVote(vote(r)),
        1 => MessageBody::PreVoteResponse {
            granted: r.chance(500),
        },
        2 => MessageBody::Vote(vote(r)),
        3 => MessageBody::VoteResponse {
            granted: r.chance(500),
        },
        4 => {
            let n = r.range(0, 20) as usize;
            let mut entries = Vec::with_capacity(n);
            let mut offset = r.range(0, 1 << 40);
            for _ in 0..n {
                let len = r.range(1, 100);
                let kind = match r.range(0, 3) {
                    0 => EntryKind::Data,
                    1 => EntryKind::LeaderChange,
                    _ => EntryKind::Membership(members(r)),
                };
                entries.push(Entry {
                    start_offset: offset,
                    end_offset: offset + len,
                    term: r.next_u64(),
                    kind,
                });
                offset += len;
                let bytes: Vec<u8> = (0..r.range(0, 300)).map(|_| r.next_u64() as u8).collect();
                batches.push(Bytes::from(bytes));
            }
            MessageBody::Append(Append {
                prev_end_offset: r.next_u64(),
                prev_term: r.next_u64(),
                commit_offset: r.next_u64(),
                send_end_offset: r.next_u64(),
                entries,
                log_start_offset: r.next_u64(),
            })
        }
        5 => MessageBody::AppendResponse(AppendResult::Accepted {
            match_end_offset: r.next_u64(),
        }),
        6 => MessageBody::AppendResponse(AppendResult::Rejected {
            rejected_prev_end_offset: r.next_u64(),
            hint_term: r.next_u64(),
            hint_end_offset: r.next_u64(),
        }),
        7 => {
            // Half of them carry a state (the controller's image), half none.
            if r.chance(500) {
                let bytes: Vec<u8> = (0..r.range(1, 2000)).map(|_| r.next_u64() as u8).collect();
                batches.push(Bytes::from(bytes));
            }
            MessageBody::Snapshot(SnapshotMeta {
                end_offset: r.next_u64(),
                term: r.next_u64(),
                membership: members(r),
            })
        }
        _ => MessageBody::TimeoutNow,
    };
    GroupMessage {
        group: group(r),
        message: Message {
            from: r.next_u64(),
            to: r.next_u64(),
            term: r.next_u64(),
            body,
        },
        batches,
    }
}

fn whole(head: Vec<u8>, tail: &[Bytes]) -> Bytes {
    let mut v = head;
    for t in tail {
        v.extend_from_slice(t);
    }
    Bytes::from(v)
}

#[test]
fn every_variant_roundtrips() {
    let mut r = SplitMix64::new(seed());
    for round in 0..200 {
        let n = r.range(1, 40) as usize;
        let messages: Vec<GroupMessage> = (0..n)
            .map(|i| {
                // Every variant in every round, then random ones.
                let v = if i < 9 { i as u64 } else { r.range(0, 9) };
                message(&mut r, v)
            })
            .collect();
        let from = r.next_u64();
        let (head, tail) = encode_messages(from, &messages);
        let sent_tail: usize = messages.iter().map(|m| m.batch_bytes()).sum();
        assert_eq!(tail.iter().map(|t| t.len()).sum::<usize>(), sent_tail);
        let bound: usize =
            FRAME_OVERHEAD_BYTES_BOUND + messages.iter().map(message_bytes_bound).sum::<usize>();
        let frame = whole(head, &tail);
        assert!(
            frame.len() <= bound,
            "round {round}: size bound is not a bound"
        );
        let decoded = decode_frame(&frame).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(decoded, Frame::Messages { from, messages });
    }
}

#[test]
fn decoded_batches_are_slices_of_the_frame() {
    let mut r = SplitMix64::new(7);
    let m = message(&mut r, 4);
    let (head, tail) = encode_messages(1, std::slice::from_ref(&m));
    let frame = whole(head, &tail);
    let Ok(Frame::Messages { messages, .. }) = decode_frame(&frame) else {
        panic!("decode");
    };
    let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    for b in messages[0].batches.iter().filter(|b| !b.is_empty()) {
        assert!(range.contains(&(b.as_ptr() as usize)), "batch was copied");
    }
}

#[test]
fn hello_call_and_reply_roundtrip() {
    let addr: std::net::SocketAddr = "127.0.0.1:9093".parse().unwrap();
    let f = Bytes::from(encode_hello(42, addr));
    assert_eq!(
        decode_frame(&f),
        Ok(Frame::Hello {
            node_id: 42,
            listen_addr: Some(addr)
        })
    );
    let f = Bytes::from(encode_call(9, b"payload"));
    assert_eq!(
        decode_frame(&f),
        Ok(Frame::Call {
            id: 9,
            payload: b"payload".to_vec()
        })
    );
    let f = Bytes::from(encode_reply(9, &Ok(b"answer".to_vec())));
    assert_eq!(
        decode_frame(&f),
        Ok(Frame::Reply {
            id: 9,
            result: Ok(b"answer".to_vec())
        })
    );
    let f = Bytes::from(encode_reply(10, &Err("no".into())));
    assert_eq!(
        decode_frame(&f),
        Ok(Frame::Reply {
            id: 10,
            result: Err("no".into())
        })
    );
    let long = "é".repeat(CALL_ERROR_BYTES_MAX);
    let f = Bytes::from(encode_reply(11, &Err(long)));
    let Ok(Frame::Reply { result: Err(e), .. }) = decode_frame(&f) else {
        panic!("long error");
    };
    assert!(e.len() <= CALL_ERROR_BYTES_MAX);
}

#[test]
fn truncated_and_garbage_frames_are_errors() {
    let mut r = SplitMix64::new(seed());
    let messages: Vec<GroupMessage> = (0..9).map(|v| message(&mut r, v)).collect();
    let (head, tail) = encode_messages(3, &messages);
    let frame = whole(head, &tail);
    // Every truncation: the length no longer matches.
    for cut in 0..frame.len() {
        assert!(decode_frame(&frame.slice(..cut)).is_err(), "cut at {cut}");
    }
    // Random corruption of the body: an error or some frame, never a panic.
    for _ in 0..2000 {
        let mut v = frame.to_vec();
        for _ in 0..r.range(1, 8) {
            let i = r.range(0, v.len() as u64) as usize;
            v[i] = r.next_u64() as u8;
        }
        let _ = decode_frame(&Bytes::from(v));
    }
    // Pure garbage behind a valid header.
    for _ in 0..500 {
        let body: Vec<u8> = (0..r.range(0, 512)).map(|_| r.next_u64() as u8).collect();
        for api in ReplicationApi::ALL {
            let h = frame_header(api as u16, 0, 0, body.len(), 0);
            let mut v = Vec::new();
            h.encode(&mut v);
            v.extend_from_slice(&body);
            let _ = decode_frame(&Bytes::from(v));
        }
    }
}

#[test]
fn wrong_api_version_and_length_are_refused() {
    let mut f = encode_hello(1, "127.0.0.1:1".parse().unwrap());
    f[4] = 10; // api 10 = Produce, a client api
    f[5] = 0;
    assert_eq!(
        decode_frame(&Bytes::from(f)),
        Err(ReplicationFrameError::UnknownApi { api: 10 })
    );
    let mut f = encode_hello(1, "127.0.0.1:1".parse().unwrap());
    f[6] = 1;
    assert_eq!(
        decode_frame(&Bytes::from(f)),
        Err(ReplicationFrameError::UnsupportedVersion { version: 1 })
    );
    let mut f = encode_hello(1, "127.0.0.1:1".parse().unwrap());
    f.push(0);
    assert!(matches!(
        decode_frame(&Bytes::from(f)),
        Err(ReplicationFrameError::LengthMismatch { .. })
    ));
    let mut f = encode_hello(1, "127.0.0.1:1".parse().unwrap());
    f[0..4].copy_from_slice(&(FRAME_BYTES_MAX as u32).to_le_bytes());
    assert!(matches!(
        decode_frame(&Bytes::from(f)),
        Err(ReplicationFrameError::Framing(_))
    ));
}

/// A messages frame with one hand-built message, for hostile shapes the encoder never makes.
fn hostile(
    build: impl FnOnce(
        &mut FlatBufferBuilder<'static>,
    ) -> flatbuffers::WIPOffset<fb::GroupMessage<'static>>,
    count: usize,
    tail_bytes: usize,
) -> Bytes {
    let mut fbb = FlatBufferBuilder::new();
    let m = build(&mut fbb);
    let list: Vec<_> = std::iter::repeat_n(m, count).collect();
    let messages = fbb.create_vector(&list);
    let root = fb::MessagesFrame::create(
        &mut fbb,
        &fb::MessagesFrameArgs {
            from: 1,
            messages: Some(messages),
        },
    );
    fbb.finish_minimal(root);
    let body = fbb.finished_data();
    let h = frame_header(
        ReplicationApi::Messages as u16,
        0,
        0,
        body.len(),
        tail_bytes,
    );
    let mut v = Vec::new();
    h.encode(&mut v);
    v.extend_from_slice(body);
    v.resize(v.len() + tail_bytes, 0);
    Bytes::from(v)
}

fn timeout_now(
    fbb: &mut FlatBufferBuilder<'static>,
) -> flatbuffers::WIPOffset<fb::GroupMessage<'static>> {
    let body = fb::TimeoutNow::create(fbb, &fb::TimeoutNowArgs {}).as_union_value();
    fb::GroupMessage::create(
        fbb,
        &fb::GroupMessageArgs {
            body_type: fb::Body::TimeoutNow,
            body: Some(body),
            ..Default::default()
        },
    )
}

fn append_with(
    fbb: &mut FlatBufferBuilder<'static>,
    entries: usize,
    position: u64,
    len_bytes: u32,
    voters: usize,
) -> flatbuffers::WIPOffset<fb::GroupMessage<'static>> {
    let v: Vec<u64> = (0..voters as u64).collect();
    let voters = fbb.create_vector(&v);
    let e = fb::Entry::create(
        fbb,
        &fb::EntryArgs {
            kind: fb::EntryKind::Membership,
            voters: Some(voters),
            batch_position: position,
            batch_bytes: len_bytes,
            ..Default::default()
        },
    );
    let list: Vec<_> = std::iter::repeat_n(e, entries).collect();
    let entries = fbb.create_vector(&list);
    let body = fb::Append::create(
        fbb,
        &fb::AppendArgs {
            entries: Some(entries),
            ..Default::default()
        },
    )
    .as_union_value();
    fb::GroupMessage::create(
        fbb,
        &fb::GroupMessageArgs {
            body_type: fb::Body::Append,
            body: Some(body),
            ..Default::default()
        },
    )
}

#[test]
fn hostile_counts_and_positions_are_refused() {
    // The shared tables make these frames small while their counts are huge.
    let f = hostile(timeout_now, MESSAGES_PER_FRAME_MAX + 1, 0);
    assert!(matches!(
        decode_frame(&f),
        Err(ReplicationFrameError::TooMany {
            what: "messages",
            ..
        })
    ));
    let f = hostile(|b| append_with(b, APPEND_ENTRIES_MAX + 1, 0, 0, 1), 1, 0);
    assert!(matches!(
        decode_frame(&f),
        Err(ReplicationFrameError::TooMany { .. })
    ));
    let f = hostile(|b| append_with(b, 1, 0, 0, MEMBERS_MAX + 1), 1, 0);
    assert!(matches!(
        decode_frame(&f),
        Err(ReplicationFrameError::TooMany { what: "voters", .. })
    ));
    for (position, len) in [
        (0u64, 11u32),
        (11, 0),
        (5, 6),
        (u64::MAX, 1),
        (u64::MAX - 1, u32::MAX),
    ] {
        let f = hostile(|b| append_with(b, 1, position, len, 1), 1, 10);
        assert!(
            matches!(
                decode_frame(&f),
                Err(ReplicationFrameError::BatchOutOfTail { .. })
            ),
            "{position}+{len}"
        );
    }
    let f = hostile(|b| append_with(b, 1, 4, 6, 1), 1, 10);
    assert!(
        decode_frame(&f).is_ok(),
        "a batch ending at the tail's end is fine"
    );
    // A partition message without a 16-byte topic id, and one without a body.
    let f = hostile(
        |b| {
            let id = b.create_vector(&[1u8; 15]);
            let body = fb::TimeoutNow::create(b, &fb::TimeoutNowArgs {}).as_union_value();
            fb::GroupMessage::create(
                b,
                &fb::GroupMessageArgs {
                    group_kind: fb::GroupKind::Partition,
                    topic_id: Some(id),
                    body_type: fb::Body::TimeoutNow,
                    body: Some(body),
                    ..Default::default()
                },
            )
        },
        1,
        0,
    );
    assert!(matches!(
        decode_frame(&f),
        Err(ReplicationFrameError::BadTopicId { len_bytes: 15, .. })
    ));
    let f = hostile(
        |b| fb::GroupMessage::create(b, &fb::GroupMessageArgs::default()),
        1,
        0,
    );
    assert!(matches!(
        decode_frame(&f),
        Err(ReplicationFrameError::Missing { what: "body", .. })
    ));
}
