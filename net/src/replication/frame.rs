//! The replication frames as bytes: pure encode and decode, no I/O.
//!
//! Frames use the native framing (`strata_schema::frame`) with the api numbers of
//! [`ReplicationApi`] and a body from `schema/fbs/replication.fbs`. A messages frame
//! carries every queued message to one peer; the batches of its appends follow the
//! body in the tail, by reference: [`encode_messages`] returns them as the `Bytes` it
//! was given and [`decode_frame`] returns slices of the received buffer.
//!
//! Everything read from the wire is bounded before it is used: the frame by
//! [`FRAME_BYTES_MAX`], messages per frame by [`MESSAGES_PER_FRAME_MAX`], entries per
//! append by [`APPEND_ENTRIES_MAX`], members by [`MEMBERS_MAX`], and every batch's
//! position must lie inside the tail. Every vector the decoder allocates is at most
//! the length the flatbuffers verifier has already found inside the received bytes.

use std::net::SocketAddr;

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, Follow, Verifiable, VerifierOptions, WIPOffset};
use strata_raft::{
    Append, AppendResult, Entry, EntryKind, Membership, Message, MessageBody, NodeId, SnapshotMeta,
    VoteRequest, APPEND_ENTRIES_MAX, MEMBERS_MAX,
};
use strata_schema::replication as fb;
use strata_schema::{
    frame_header, FrameError, FrameHeader, ReplicationApi, FRAME_BYTES_MAX, FRAME_HEADER_BYTES,
};

use super::{GroupId, GroupMessage};

/// Most messages one frame carries; a sender with more queued writes several frames.
/// A heartbeat round of 10,000 partitions led by one broker fits in one frame.
pub const MESSAGES_PER_FRAME_MAX: usize = 16 * 1024;
/// The only version of the replication frames.
pub const REPLICATION_FRAME_VERSION: u16 = 0;
/// Longest error string a call reply carries (longer ones are cut).
pub const CALL_ERROR_BYTES_MAX: usize = 4 * 1024;
/// Bytes of a messages frame's body that one message (without its entries) never
/// exceeds; with [`ENTRY_HEAD_BYTES_BOUND`] it bounds a frame's size before encoding.
pub const MESSAGE_HEAD_BYTES_BOUND: usize = 512 + 2 * MEMBERS_MAX * 8;
/// Bytes of a frame's body that one entry never exceeds (its batch is in the tail).
pub const ENTRY_HEAD_BYTES_BOUND: usize = 128 + 2 * MEMBERS_MAX * 8;
/// Bytes of a messages frame outside its messages (frame header, root table).
pub const FRAME_OVERHEAD_BYTES_BOUND: usize = 256;

/// Why bytes are not a replication frame.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ReplicationFrameError {
    /// The frame header is unusable (too long, too short, body past the end).
    #[error("replication frame: {0}")]
    Framing(#[from] FrameError),
    #[error("replication frame is {actual_bytes} bytes but its header says {header_bytes}")]
    LengthMismatch {
        actual_bytes: usize,
        header_bytes: usize,
    },
    #[error("api {api} is not a replication frame")]
    UnknownApi { api: u16 },
    #[error(
        "replication frame version {version} is not served (only {REPLICATION_FRAME_VERSION})"
    )]
    UnsupportedVersion { version: u16 },
    #[error("replication frame body is not a valid {what}: {reason}")]
    InvalidBody { what: &'static str, reason: String },
    #[error("replication frame: {count} {what} exceed the maximum of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("hello: {addr:?} is not a HOST:PORT address")]
    BadListenAddr { addr: String },
    #[error("replication frame: message {index} has no {what}")]
    Missing { index: usize, what: &'static str },
    #[error("replication frame: message {index} has an unknown {what} ({value})")]
    UnknownValue {
        index: usize,
        what: &'static str,
        value: u8,
    },
    #[error("replication frame: message {index} has a topic id of {len_bytes} bytes, not 16")]
    BadTopicId { index: usize, len_bytes: usize },
    #[error(
        "replication frame: message {index} has a batch at {position}+{len_bytes} past the \
         tail's {tail_bytes} bytes"
    )]
    BatchOutOfTail {
        index: usize,
        position: u64,
        len_bytes: u32,
        tail_bytes: usize,
    },
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The first frame on a connection: who dialled, and where its listener is.
    Hello {
        node_id: NodeId,
        listen_addr: Option<SocketAddr>,
    },
    /// Raft messages from broker `from`.
    Messages {
        from: NodeId,
        messages: Vec<GroupMessage>,
    },
    /// A request expecting a [`Frame::Reply`] with the same `id`.
    Call { id: u64, payload: Vec<u8> },
    /// The answer to call `id`.
    Reply {
        id: u64,
        result: Result<Vec<u8>, String>,
    },
}

/// Upper bound of the bytes `messages` take in a frame (head and tail), so a sender
/// can cut frames below [`FRAME_BYTES_MAX`] before encoding them.
pub fn message_bytes_bound(m: &GroupMessage) -> usize {
    MESSAGE_HEAD_BYTES_BOUND + m.entries_len() * ENTRY_HEAD_BYTES_BOUND + m.batch_bytes()
}

/// The head (frame header and flatbuffer body) and the tail (every append's batches,
/// in order, by reference) of a frame of `messages` from `from`. The sender keeps it
/// within [`FRAME_BYTES_MAX`] and [`MESSAGES_PER_FRAME_MAX`] (see
/// [`message_bytes_bound`]); an append's `batches` must match its entries.
pub fn encode_messages(from: NodeId, messages: &[GroupMessage]) -> (Vec<u8>, Vec<Bytes>) {
    debug_assert!(messages.len() <= MESSAGES_PER_FRAME_MAX);
    let mut fbb = FlatBufferBuilder::with_capacity(256 + messages.len() * 96);
    let mut tail: Vec<Bytes> = Vec::new();
    let mut tail_bytes: u64 = 0;
    let mut offsets = Vec::with_capacity(messages.len());
    for m in messages {
        offsets.push(encode_group_message(
            &mut fbb,
            m,
            &mut tail,
            &mut tail_bytes,
        ));
    }
    let messages_vec = fbb.create_vector(&offsets);
    let root = fb::MessagesFrame::create(
        &mut fbb,
        &fb::MessagesFrameArgs {
            from,
            messages: Some(messages_vec),
        },
    );
    fbb.finish_minimal(root);
    let head = head_with(
        ReplicationApi::Messages,
        fbb.finished_data(),
        tail_bytes as usize,
    );
    (head, tail)
}

/// The hello frame a dialling broker sends first.
pub fn encode_hello(node_id: NodeId, listen_addr: SocketAddr) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(96);
    let listen_addr = Some(fbb.create_string(&listen_addr.to_string()));
    let root = fb::Hello::create(
        &mut fbb,
        &fb::HelloArgs {
            node_id,
            listen_addr,
        },
    );
    fbb.finish_minimal(root);
    head_with(ReplicationApi::Hello, fbb.finished_data(), 0)
}

/// A call frame.
pub fn encode_call(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(64 + payload.len());
    let payload = fbb.create_vector(payload);
    let root = fb::CallRequest::create(
        &mut fbb,
        &fb::CallRequestArgs {
            id,
            payload: Some(payload),
        },
    );
    fbb.finish_minimal(root);
    head_with(ReplicationApi::Call, fbb.finished_data(), 0)
}

/// A reply frame; an error string is cut to [`CALL_ERROR_BYTES_MAX`].
pub fn encode_reply(id: u64, result: &Result<Vec<u8>, String>) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(64 + result.as_ref().map_or(0, |p| p.len()));
    let args = match result {
        Ok(p) => fb::CallReplyArgs {
            id,
            ok: true,
            payload: Some(fbb.create_vector(p)),
            error: None,
        },
        Err(e) => fb::CallReplyArgs {
            id,
            ok: false,
            payload: None,
            error: Some(fbb.create_string(cut_to_char_boundary(e, CALL_ERROR_BYTES_MAX))),
        },
    };
    let root = fb::CallReply::create(&mut fbb, &args);
    fbb.finish_minimal(root);
    head_with(ReplicationApi::CallReply, fbb.finished_data(), 0)
}

fn cut_to_char_boundary(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn head_with(api: ReplicationApi, body: &[u8], tail_bytes: usize) -> Vec<u8> {
    let h = frame_header(
        api as u16,
        REPLICATION_FRAME_VERSION,
        0,
        body.len(),
        tail_bytes,
    );
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    h.encode(&mut out);
    out.extend_from_slice(body);
    out
}

fn encode_group_message<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    m: &GroupMessage,
    tail: &mut Vec<Bytes>,
    tail_bytes: &mut u64,
) -> WIPOffset<fb::GroupMessage<'a>> {
    let (group_kind, topic_id, partition) = match m.group {
        GroupId::Controller => (fb::GroupKind::Controller, None, 0),
        GroupId::Partition {
            topic_id,
            partition,
        } => (
            fb::GroupKind::Partition,
            Some(fbb.create_vector(&topic_id)),
            partition,
        ),
    };
    let (body_type, body) = match &m.message.body {
        MessageBody::PreVote(v) => (
            fb::Body::PreVoteRequest,
            fb::PreVoteRequest::create(
                fbb,
                &fb::PreVoteRequestArgs {
                    last_term: v.last_term,
                    log_end_offset: v.log_end_offset,
                    transfer: v.transfer,
                },
            )
            .as_union_value(),
        ),
        MessageBody::PreVoteResponse { granted } => (
            fb::Body::PreVoteResponse,
            fb::PreVoteResponse::create(fbb, &fb::PreVoteResponseArgs { granted: *granted })
                .as_union_value(),
        ),
        MessageBody::Vote(v) => (
            fb::Body::VoteRequest,
            fb::VoteRequest::create(
                fbb,
                &fb::VoteRequestArgs {
                    last_term: v.last_term,
                    log_end_offset: v.log_end_offset,
                    transfer: v.transfer,
                },
            )
            .as_union_value(),
        ),
        MessageBody::VoteResponse { granted } => (
            fb::Body::VoteResponse,
            fb::VoteResponse::create(fbb, &fb::VoteResponseArgs { granted: *granted })
                .as_union_value(),
        ),
        MessageBody::Append(a) => {
            debug_assert_eq!(a.entries.len(), m.batches.len(), "one batch per entry");
            let mut entries = Vec::with_capacity(a.entries.len());
            for (i, e) in a.entries.iter().enumerate() {
                let batch = m.batches.get(i).cloned().unwrap_or_default();
                let batch_position = *tail_bytes;
                let batch_bytes = batch.len() as u32;
                *tail_bytes += batch.len() as u64;
                tail.push(batch);
                let (kind, voters, learners) = match &e.kind {
                    EntryKind::Data => (fb::EntryKind::Data, None, None),
                    EntryKind::LeaderChange => (fb::EntryKind::LeaderChange, None, None),
                    EntryKind::Membership(ms) => (
                        fb::EntryKind::Membership,
                        Some(fbb.create_vector(&ms.voters)),
                        Some(fbb.create_vector(&ms.learners)),
                    ),
                };
                entries.push(fb::Entry::create(
                    fbb,
                    &fb::EntryArgs {
                        start_offset: e.start_offset,
                        end_offset: e.end_offset,
                        term: e.term,
                        kind,
                        voters,
                        learners,
                        batch_position,
                        batch_bytes,
                    },
                ));
            }
            let entries = fbb.create_vector(&entries);
            (
                fb::Body::Append,
                fb::Append::create(
                    fbb,
                    &fb::AppendArgs {
                        prev_end_offset: a.prev_end_offset,
                        prev_term: a.prev_term,
                        commit_offset: a.commit_offset,
                        send_end_offset: a.send_end_offset,
                        entries: Some(entries),
                        log_start_offset: a.log_start_offset,
                    },
                )
                .as_union_value(),
            )
        }
        MessageBody::AppendResponse(AppendResult::Accepted { match_end_offset }) => (
            fb::Body::AppendAccepted,
            fb::AppendAccepted::create(
                fbb,
                &fb::AppendAcceptedArgs {
                    match_end_offset: *match_end_offset,
                },
            )
            .as_union_value(),
        ),
        MessageBody::AppendResponse(AppendResult::Rejected {
            rejected_prev_end_offset,
            hint_term,
            hint_end_offset,
        }) => (
            fb::Body::AppendRejected,
            fb::AppendRejected::create(
                fbb,
                &fb::AppendRejectedArgs {
                    rejected_prev_end_offset: *rejected_prev_end_offset,
                    hint_term: *hint_term,
                    hint_end_offset: *hint_end_offset,
                },
            )
            .as_union_value(),
        ),
        MessageBody::Snapshot(s) => {
            let voters = Some(fbb.create_vector(&s.membership.voters));
            let learners = Some(fbb.create_vector(&s.membership.learners));
            debug_assert!(m.batches.len() <= 1, "a snapshot carries one state at most");
            let data = m.batches.first().cloned().unwrap_or_default();
            let data_position = *tail_bytes;
            let data_bytes = data.len() as u32;
            if !data.is_empty() {
                *tail_bytes += data.len() as u64;
                tail.push(data);
            }
            (
                fb::Body::Snapshot,
                fb::Snapshot::create(
                    fbb,
                    &fb::SnapshotArgs {
                        end_offset: s.end_offset,
                        term: s.term,
                        voters,
                        learners,
                        data_position,
                        data_bytes,
                    },
                )
                .as_union_value(),
            )
        }
        MessageBody::TimeoutNow => (
            fb::Body::TimeoutNow,
            fb::TimeoutNow::create(fbb, &fb::TimeoutNowArgs {}).as_union_value(),
        ),
    };
    fb::GroupMessage::create(
        fbb,
        &fb::GroupMessageArgs {
            group_kind,
            topic_id,
            partition,
            from: m.message.from,
            to: m.message.to,
            term: m.message.term,
            body_type,
            body: Some(body),
        },
    )
}

/// Verifier limits: tables are bounded by the bytes they occupy, nesting by the schema.
fn verifier_options() -> VerifierOptions {
    VerifierOptions {
        max_depth: 16,
        max_tables: FRAME_BYTES_MAX / 8,
        max_apparent_size: FRAME_BYTES_MAX,
        ..VerifierOptions::default()
    }
}

fn root<'a, T>(body: &'a [u8], what: &'static str) -> Result<T::Inner, ReplicationFrameError>
where
    T: Follow<'a> + Verifiable + 'a,
{
    flatbuffers::root_with_opts::<T>(&verifier_options(), body).map_err(|e| {
        ReplicationFrameError::InvalidBody {
            what,
            reason: e.to_string(),
        }
    })
}

/// Decodes one whole frame (header included). The batches of its appends are slices
/// of `frame`, not copies.
pub fn decode_frame(frame: &Bytes) -> Result<Frame, ReplicationFrameError> {
    let header = FrameHeader::decode(frame, FRAME_BYTES_MAX)?.ok_or(FrameError::TooShort {
        length: frame.len().saturating_sub(4),
    })?;
    if header.frame_bytes() != frame.len() {
        return Err(ReplicationFrameError::LengthMismatch {
            actual_bytes: frame.len(),
            header_bytes: header.frame_bytes(),
        });
    }
    let api = ReplicationApi::from_u16(header.api)
        .ok_or(ReplicationFrameError::UnknownApi { api: header.api })?;
    if header.version != REPLICATION_FRAME_VERSION {
        return Err(ReplicationFrameError::UnsupportedVersion {
            version: header.version,
        });
    }
    let body_end = FRAME_HEADER_BYTES + header.body_len as usize;
    let body = &frame[FRAME_HEADER_BYTES..body_end];
    match api {
        ReplicationApi::Hello => {
            let h = root::<fb::Hello>(body, "Hello")?;
            let listen_addr = match h.listen_addr() {
                None => None,
                Some(a) => Some(
                    a.parse()
                        .map_err(|_| ReplicationFrameError::BadListenAddr {
                            addr: cut_to_char_boundary(a, 64).to_string(),
                        })?,
                ),
            };
            Ok(Frame::Hello {
                node_id: h.node_id(),
                listen_addr,
            })
        }
        ReplicationApi::Call => {
            let c = root::<fb::CallRequest>(body, "CallRequest")?;
            Ok(Frame::Call {
                id: c.id(),
                payload: c.payload().map(|p| p.bytes().to_vec()).unwrap_or_default(),
            })
        }
        ReplicationApi::CallReply => {
            let r = root::<fb::CallReply>(body, "CallReply")?;
            let result = if r.ok() {
                Ok(r.payload().map(|p| p.bytes().to_vec()).unwrap_or_default())
            } else {
                Err(r.error().unwrap_or("").to_string())
            };
            Ok(Frame::Reply { id: r.id(), result })
        }
        ReplicationApi::Messages => {
            let m = root::<fb::MessagesFrame>(body, "MessagesFrame")?;
            let tail = frame.slice(body_end..);
            let list = m.messages().map_or(0, |v| v.len());
            if list > MESSAGES_PER_FRAME_MAX {
                return Err(ReplicationFrameError::TooMany {
                    what: "messages",
                    count: list,
                    max: MESSAGES_PER_FRAME_MAX,
                });
            }
            let mut messages = Vec::with_capacity(list);
            for (index, gm) in m.messages().into_iter().flatten().enumerate() {
                messages.push(decode_group_message(index, gm, &tail)?);
            }
            Ok(Frame::Messages {
                from: m.from(),
                messages,
            })
        }
    }
}

fn decode_group_message(
    index: usize,
    gm: fb::GroupMessage<'_>,
    tail: &Bytes,
) -> Result<GroupMessage, ReplicationFrameError> {
    let group = match gm.group_kind() {
        fb::GroupKind::Controller => GroupId::Controller,
        fb::GroupKind::Partition => {
            let id = gm.topic_id().map(|v| v.bytes()).unwrap_or(&[]);
            let topic_id: [u8; 16] =
                id.try_into()
                    .map_err(|_| ReplicationFrameError::BadTopicId {
                        index,
                        len_bytes: id.len(),
                    })?;
            GroupId::Partition {
                topic_id,
                partition: gm.partition(),
            }
        }
        other => {
            return Err(ReplicationFrameError::UnknownValue {
                index,
                what: "group kind",
                value: other.0,
            })
        }
    };
    let missing = |what| ReplicationFrameError::Missing { index, what };
    let mut batches = Vec::new();
    let body = match gm.body_type() {
        fb::Body::PreVoteRequest => {
            let v = gm.body_as_pre_vote_request().ok_or(missing("body"))?;
            MessageBody::PreVote(VoteRequest {
                last_term: v.last_term(),
                log_end_offset: v.log_end_offset(),
                transfer: v.transfer(),
            })
        }
        fb::Body::PreVoteResponse => MessageBody::PreVoteResponse {
            granted: gm
                .body_as_pre_vote_response()
                .ok_or(missing("body"))?
                .granted(),
        },
        fb::Body::VoteRequest => {
            let v = gm.body_as_vote_request().ok_or(missing("body"))?;
            MessageBody::Vote(VoteRequest {
                last_term: v.last_term(),
                log_end_offset: v.log_end_offset(),
                transfer: v.transfer(),
            })
        }
        fb::Body::VoteResponse => MessageBody::VoteResponse {
            granted: gm.body_as_vote_response().ok_or(missing("body"))?.granted(),
        },
        fb::Body::Append => {
            let a = gm.body_as_append().ok_or(missing("body"))?;
            let n = a.entries().map_or(0, |v| v.len());
            if n > APPEND_ENTRIES_MAX {
                return Err(ReplicationFrameError::TooMany {
                    what: "entries in one append",
                    count: n,
                    max: APPEND_ENTRIES_MAX,
                });
            }
            let mut entries = Vec::with_capacity(n);
            batches.reserve_exact(n);
            for e in a.entries().into_iter().flatten() {
                let bytes = tail_slice(tail, index, e.batch_position(), e.batch_bytes())?;
                let kind = match e.kind() {
                    fb::EntryKind::Data => EntryKind::Data,
                    fb::EntryKind::LeaderChange => EntryKind::LeaderChange,
                    fb::EntryKind::Membership => {
                        EntryKind::Membership(membership(e.voters(), e.learners())?)
                    }
                    other => {
                        return Err(ReplicationFrameError::UnknownValue {
                            index,
                            what: "entry kind",
                            value: other.0,
                        })
                    }
                };
                entries.push(Entry {
                    start_offset: e.start_offset(),
                    end_offset: e.end_offset(),
                    term: e.term(),
                    kind,
                });
                batches.push(bytes);
            }
            MessageBody::Append(Append {
                prev_end_offset: a.prev_end_offset(),
                prev_term: a.prev_term(),
                commit_offset: a.commit_offset(),
                send_end_offset: a.send_end_offset(),
                entries,
                log_start_offset: a.log_start_offset(),
            })
        }
        fb::Body::AppendAccepted => MessageBody::AppendResponse(AppendResult::Accepted {
            match_end_offset: gm
                .body_as_append_accepted()
                .ok_or(missing("body"))?
                .match_end_offset(),
        }),
        fb::Body::AppendRejected => {
            let r = gm.body_as_append_rejected().ok_or(missing("body"))?;
            MessageBody::AppendResponse(AppendResult::Rejected {
                rejected_prev_end_offset: r.rejected_prev_end_offset(),
                hint_term: r.hint_term(),
                hint_end_offset: r.hint_end_offset(),
            })
        }
        fb::Body::Snapshot => {
            let s = gm.body_as_snapshot().ok_or(missing("body"))?;
            if s.data_bytes() > 0 {
                batches.push(tail_slice(tail, index, s.data_position(), s.data_bytes())?);
            }
            MessageBody::Snapshot(SnapshotMeta {
                end_offset: s.end_offset(),
                term: s.term(),
                membership: membership(s.voters(), s.learners())?,
            })
        }
        fb::Body::TimeoutNow => {
            gm.body_as_timeout_now().ok_or(missing("body"))?;
            MessageBody::TimeoutNow
        }
        fb::Body::NONE => return Err(missing("body")),
        other => {
            return Err(ReplicationFrameError::UnknownValue {
                index,
                what: "message body",
                value: other.0,
            })
        }
    };
    Ok(GroupMessage {
        group,
        message: Message {
            from: gm.from(),
            to: gm.to(),
            term: gm.term(),
            body,
        },
        batches,
    })
}

/// The `len_bytes` at `position` of the frame tail (a slice, not a copy), for
/// message `index`.
fn tail_slice(
    tail: &Bytes,
    index: usize,
    position: u64,
    len_bytes: u32,
) -> Result<Bytes, ReplicationFrameError> {
    let out_of_tail = || ReplicationFrameError::BatchOutOfTail {
        index,
        position,
        len_bytes,
        tail_bytes: tail.len(),
    };
    let start = usize::try_from(position).map_err(|_| out_of_tail())?;
    let end = start
        .checked_add(len_bytes as usize)
        .filter(|end| *end <= tail.len())
        .ok_or_else(out_of_tail)?;
    Ok(tail.slice(start..end))
}

/// A membership as sent; the state machine checks it is well formed (sorted,
/// disjoint, not empty).
fn membership(
    voters: Option<flatbuffers::Vector<'_, u64>>,
    learners: Option<flatbuffers::Vector<'_, u64>>,
) -> Result<Membership, ReplicationFrameError> {
    let list = |v: Option<flatbuffers::Vector<'_, u64>>, what| {
        let n = v.map_or(0, |v| v.len());
        if n > MEMBERS_MAX {
            return Err(ReplicationFrameError::TooMany {
                what,
                count: n,
                max: MEMBERS_MAX,
            });
        }
        Ok(v.map(|v| v.iter().collect()).unwrap_or_default())
    };
    Ok(Membership {
        voters: list(voters, "voters")?,
        learners: list(learners, "learners")?,
    })
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
