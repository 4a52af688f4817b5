//! One client connection: read frames, handle them concurrently, write the replies
//! in request order.
//!
//! The reader reads one frame at a time into its own buffer, reserves its bytes in the
//! connection's budget, and spawns its handler; the handler's task goes into a
//! bounded queue that the writer drains in order. So at most
//! `IN_FLIGHT_REQUESTS_MAX` requests and about `IN_FLIGHT_BYTES_MAX` request bytes
//! are held per connection; when either bound is reached the reader stops reading
//! and TCP pushes back on the client. A frame that breaks the framing rules (too
//! long, shorter than its header, body longer than the frame) loses the framing: the
//! replies to earlier requests are written, nothing more is read, and the connection
//! closes.

use std::rc::Rc;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use glommio::Task;
use strata_schema::protocol::ProduceRequest;
use strata_schema::{ApiKey, FrameHeader, FRAME_BYTES_MAX, FRAME_HEADER_BYTES};

use crate::broker::Broker;
use crate::handlers;
use crate::response::Response;

/// Requests of one connection being handled or waiting to be written.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 64;
/// Request bytes one connection may hold (a single frame larger than this still
/// goes through, alone).
pub const IN_FLIGHT_BYTES_MAX: u64 = 2 * FRAME_BYTES_MAX as u64;
/// Tail parts smaller than this are copied into one write with their header (one
/// syscall instead of many); larger ones are written from the engine's buffers.
pub const WRITE_COALESCE_BYTES_MAX: usize = 16 * 1024;
/// Coalesced bytes written at once at most; the write buffer's bound.
pub const WRITE_BUFFER_BYTES_MAX: usize = 256 * 1024;

struct InFlight {
    task: Task<Response>,
    /// Released once the reply is written.
    _budget: StaticPermit,
}

/// A wire protocol served over this connection loop: how a frame is read and how
/// it is answered.
pub(crate) trait Protocol: 'static {
    type Frame: 'static;
    /// Reads one whole frame, holding its bytes in `budget`. An error means the
    /// framing is lost (or the peer is gone) and the connection closes.
    async fn read_frame(
        reader: &mut ReadHalf<TcpStream>,
        budget: &Rc<Semaphore>,
    ) -> Result<(Self::Frame, StaticPermit), String>;
    /// Answers one frame.
    async fn handle(broker: Rc<Broker>, frame: Self::Frame, peer: Rc<str>) -> Response;
}

/// The native protocol.
pub(crate) struct NativeProtocol;

impl Protocol for NativeProtocol {
    type Frame = RequestFrame;

    async fn read_frame(
        reader: &mut ReadHalf<TcpStream>,
        budget: &Rc<Semaphore>,
    ) -> Result<(RequestFrame, StaticPermit), String> {
        read_frame(reader, budget).await
    }

    async fn handle(broker: Rc<Broker>, frame: RequestFrame, peer: Rc<str>) -> Response {
        handlers::handle(broker, frame, peer).await
    }
}

/// Serves `stream` until the client closes it, its framing is lost, or the shard
/// stops (then in-flight requests are finished and answered first).
pub(crate) async fn serve<P: Protocol>(broker: Rc<Broker>, stream: TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    // The client's address, as group members show it.
    let peer: Rc<str> = stream
        .peer_addr()
        .map_or_else(|_| Rc::from(""), |a| Rc::from(a.ip().to_string()));
    let (mut reader, writer) = futures_lite::io::split(stream);
    let (queue, replies) = local_channel::new_bounded::<InFlight>(IN_FLIGHT_REQUESTS_MAX);
    let writer = glommio::spawn_local(write_replies(writer, replies));
    let budget = Rc::new(Semaphore::new(IN_FLIGHT_BYTES_MAX));
    loop {
        let next = futures_lite::future::or(
            async { Some(P::read_frame(&mut reader, &budget).await) },
            async {
                broker.shard.stopped().await;
                None
            },
        )
        .await;
        let Some(Ok((frame, permit))) = next else {
            if let Some(Err(why)) = next {
                tracing::debug!(reason = %why, "closing connection");
            }
            break;
        };
        let task = glommio::spawn_local(P::handle(Rc::clone(&broker), frame, Rc::clone(&peer)));
        let in_flight = InFlight {
            task,
            _budget: permit,
        };
        if queue.send(in_flight).await.is_err() {
            break; // the writer is gone: the peer closed
        }
    }
    drop(queue);
    writer.await;
}

/// A request as read from the socket: header, body, and the tail.
pub struct RequestFrame {
    pub header: FrameHeader,
    pub body: Vec<u8>,
    pub tail: Tail,
}

/// The tail of a request.
pub enum Tail {
    /// All tail bytes in one buffer.
    Whole(Vec<u8>),
    /// A Produce tail read straight into one buffer per partition (in the order of
    /// the request's partitions, `batch_bytes` each), so a partition that sends one
    /// batch hands the engine the very buffer the socket filled; `rest` holds bytes
    /// beyond the declared ones.
    Parts { parts: Vec<Vec<u8>>, rest: Vec<u8> },
}

/// The `batch_bytes` of every partition of a Produce body, if the body verifies and
/// they fit in `tail_bytes`.
fn produce_part_lengths(body: &[u8], tail_bytes: usize) -> Option<Vec<usize>> {
    let r = flatbuffers::root::<ProduceRequest>(body).ok()?;
    let lengths: Vec<usize> = r
        .partitions()?
        .iter()
        .map(|p| p.batch_bytes() as usize)
        .collect();
    let total = lengths.iter().try_fold(0usize, |a, n| a.checked_add(*n))?;
    (total <= tail_bytes).then_some(lengths)
}

pub(crate) async fn read_vec(
    reader: &mut ReadHalf<TcpStream>,
    len: usize,
) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    reader
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(buf)
}

/// Reads one whole frame.
async fn read_frame(
    reader: &mut ReadHalf<TcpStream>,
    budget: &Rc<Semaphore>,
) -> Result<(RequestFrame, StaticPermit), String> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    reader
        .read_exact(&mut head)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let header = FrameHeader::decode(&head, FRAME_BYTES_MAX)
        .map_err(|e| e.to_string())?
        .ok_or("short header")?;
    let permit = budget
        .acquire_static_permit((header.frame_bytes() as u64).min(IN_FLIGHT_BYTES_MAX))
        .await
        .map_err(|e| e.to_string())?;
    let body = read_vec(reader, header.body_len as usize).await?;
    let tail_bytes = header.tail_bytes();
    let lengths = (header.api == ApiKey::Produce as u16)
        .then(|| produce_part_lengths(&body, tail_bytes))
        .flatten();
    let tail = match lengths {
        Some(lengths) => {
            let mut parts = Vec::with_capacity(lengths.len());
            for len in &lengths {
                parts.push(read_vec(reader, *len).await?);
            }
            let rest = read_vec(reader, tail_bytes - lengths.iter().sum::<usize>()).await?;
            Tail::Parts { parts, rest }
        }
        None => Tail::Whole(read_vec(reader, tail_bytes).await?),
    };
    Ok((RequestFrame { header, body, tail }, permit))
}

/// Writes replies in request order until the queue closes or a write fails.
async fn write_replies(mut writer: WriteHalf<TcpStream>, replies: LocalReceiver<InFlight>) {
    let mut out: Vec<u8> = Vec::new();
    while let Some(in_flight) = replies.recv().await {
        let response = in_flight.task.await;
        if write_response(&mut writer, &mut out, response)
            .await
            .is_err()
        {
            return;
        }
        // Each reply goes out as soon as it is ready: the next one may be a long
        // poll.
        if !out.is_empty() {
            if writer.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        // A large header or body may have grown it past its bound.
        out.shrink_to(WRITE_BUFFER_BYTES_MAX);
    }
    if !out.is_empty() {
        let _ = writer.write_all(&out).await;
    }
    let _ = writer.flush().await;
    let _ = writer.close().await;
}

async fn write_response(
    writer: &mut WriteHalf<TcpStream>,
    out: &mut Vec<u8>,
    response: Response,
) -> std::io::Result<()> {
    out.extend_from_slice(&response.head);
    for part in &response.tail {
        if part.len() < WRITE_COALESCE_BYTES_MAX {
            if out.len() + part.len() > WRITE_BUFFER_BYTES_MAX {
                writer.write_all(out).await?;
                out.clear();
            }
            out.extend_from_slice(part);
        } else {
            if !out.is_empty() {
                writer.write_all(out).await?;
                out.clear();
            }
            writer.write_all(part).await?;
        }
    }
    Ok(())
}
