//! One client connection: read frames, handle them concurrently, write the replies
//! in request order.
//!
//! The reader reads one frame at a time into its own buffer and spawns its
//! handler; the handler's task goes into a bounded queue that the writer drains in
//! order. Memory is bounded by bytes, not only by count: before a request's body is
//! read its bytes are held in the connection's budget (`CONNECTION_QUEUED_BYTES_MAX`),
//! and before it is handled the bytes its response may take (a Fetch's `max_bytes`,
//! `RESPONSE_BYTES_RESERVE_DEFAULT` for the rest) are held too, in the connection's
//! budget and in the shard's (`connection_table::SHARD_QUEUED_BYTES_MAX`), until the
//! reply is written. So a client that does not read its responses makes its
//! connection stop reading once its budget is used up (TCP then pushes back on the
//! client), and all such connections of a shard together hold at most the shard's
//! budget. At most `IN_FLIGHT_REQUESTS_MAX` requests are held per connection too.
//!
//! A frame that breaks the framing rules (too long, shorter than its header) loses
//! the framing: the replies to earlier requests are written, nothing more is read,
//! and the connection closes. A well-framed frame whose header is inconsistent (a
//! body longer than the frame) is skipped by its length and answered with an error.
//! A connection closes at once, dropping what it holds, when the shard's sweep says
//! so (`connection_table`: peer gone, idle, shutdown deadline).

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use glommio::Task;
use strata_schema::protocol::{FetchRequest, ProduceRequest};
use strata_schema::{ApiKey, FrameError, FrameHeader, FRAME_BYTES_MAX, FRAME_HEADER_BYTES};

use crate::broker::Broker;
use crate::connection_table::{CloseReason, ConnState, PEER_CLOSED_GRACE_MS};
use crate::handlers;
use crate::response::Response;

/// Requests of one connection being handled or waiting to be written.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 64;
/// Bytes of requests and responses one connection may hold queued (a single
/// request larger than this still goes through, alone).
pub const CONNECTION_QUEUED_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Bytes held for the response of a request other than Fetch (whose response
/// takes up to its `max_bytes`).
pub const RESPONSE_BYTES_RESERVE_DEFAULT: u64 = 4 * 1024;
/// Tail parts smaller than this are copied into one write with their header (one
/// syscall instead of many); larger ones are written from the engine's buffers.
pub const WRITE_COALESCE_BYTES_MAX: usize = 16 * 1024;
/// Coalesced bytes written at once at most; the write buffer's bound.
pub const WRITE_BUFFER_BYTES_MAX: usize = 256 * 1024;
/// Bytes read at once when skipping the rest of a frame that is not answered by
/// its contents.
const SKIP_CHUNK_BYTES: usize = 64 * 1024;

/// The socket halves, marking the connection active whenever bytes move.
pub(crate) type Reader = Active<ReadHalf<TcpStream>>;
type Writer = Active<WriteHalf<TcpStream>>;

/// Why a connection stops reading.
#[derive(thiserror::Error, Debug)]
pub(crate) enum ReadError {
    /// The client closed its side (EOF) or reset the connection.
    #[error("the client closed the connection")]
    PeerClosed,
    #[error("read: {0}")]
    Io(std::io::Error),
    /// The framing is lost: nothing after this can be read as a request.
    #[error("{0}")]
    Framing(String),
    /// The connection's or the shard's budget is closed (never, in practice).
    #[error("budget: {0}")]
    Budget(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match e.kind() {
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => {
                ReadError::PeerClosed
            }
            _ => ReadError::Io(e),
        }
    }
}

/// An async reader or writer that marks its connection active on every transfer.
pub(crate) struct Active<T> {
    inner: T,
    state: Rc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// The byte budgets a connection's requests and responses are held in.
pub(crate) struct Budget {
    /// `CONNECTION_QUEUED_BYTES_MAX` permits.
    connection: Rc<Semaphore>,
    /// The shard's budget, shared by all its connections.
    shard: Rc<Semaphore>,
    state: Rc<ConnState>,
}

/// Bytes one request holds until its reply is written.
pub(crate) struct Held {
    _request: StaticPermit,
    request_bytes: u64,
    response: Option<StaticPermit>,
    shard: Option<StaticPermit>,
}

impl Budget {
    /// Holds the bytes of a request about to be read: waits while the connection
    /// holds too much (a single request larger than the whole budget holds all of
    /// it, alone).
    pub(crate) async fn hold_request(&self, bytes: usize) -> Result<Held, ReadError> {
        self.state.set_parked_in_read(false);
        let request_bytes = (bytes as u64).min(CONNECTION_QUEUED_BYTES_MAX);
        let request = self
            .connection
            .acquire_static_permit(request_bytes)
            .await
            .map_err(|e| ReadError::Budget(e.to_string()))?;
        Ok(Held {
            _request: request,
            request_bytes,
            response: None,
            shard: None,
        })
    }

    /// Holds what the response may take (`reserve_bytes`) in the connection's
    /// budget, then the request and the response in the shard's, in one go (so
    /// that no connection holds part of the shard's budget while it waits for
    /// more). Both stay within the budgets' sizes, so the waits end once the
    /// connections' replies are written.
    async fn hold_response(&self, held: &mut Held, reserve_bytes: u64) -> Result<(), ReadError> {
        let response_bytes = reserve_bytes.min(CONNECTION_QUEUED_BYTES_MAX - held.request_bytes);
        held.response = Some(
            self.connection
                .acquire_static_permit(response_bytes)
                .await
                .map_err(|e| ReadError::Budget(e.to_string()))?,
        );
        held.shard = Some(
            self.shard
                .acquire_static_permit(held.request_bytes + response_bytes)
                .await
                .map_err(|e| ReadError::Budget(e.to_string()))?,
        );
        Ok(())
    }
}

struct InFlight {
    task: Task<Response>,
    /// Released once the reply is written.
    _held: Held,
    _counted: Counted,
}

/// A request counted as in flight on its connection until dropped.
struct Counted(Rc<ConnState>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// A wire protocol served over this connection loop: how a frame is read and how
/// it is answered.
pub(crate) trait Protocol: 'static {
    type Frame: 'static;
    /// Reads one whole frame, holding its bytes in `budget` (`Budget::hold_request`)
    /// before reading them. An error means the framing is lost (or the peer is gone)
    /// and the connection stops reading.
    async fn read_frame(
        reader: &mut Reader,
        budget: &Budget,
    ) -> Result<(Self::Frame, Held), ReadError>;
    /// Bytes the response to `frame` may take, held before it is handled.
    fn response_bytes_reserve(frame: &Self::Frame) -> u64;
    /// Answers one frame.
    async fn handle(broker: Rc<Broker>, frame: Self::Frame, peer: Rc<str>) -> Response;
    /// Whether the connection closes once `frame` is answered (nothing after it is read).
    fn closes_after(_broker: &Broker, _frame: &Self::Frame) -> bool {
        false
    }
}

/// The native protocol.
pub(crate) struct NativeProtocol;

impl Protocol for NativeProtocol {
    type Frame = RequestFrame;

    async fn read_frame(
        reader: &mut Reader,
        budget: &Budget,
    ) -> Result<(RequestFrame, Held), ReadError> {
        read_frame(reader, budget).await
    }

    fn response_bytes_reserve(frame: &RequestFrame) -> u64 {
        if frame.header.api != ApiKey::Fetch as u16 || frame.malformed.is_some() {
            return RESPONSE_BYTES_RESERVE_DEFAULT;
        }
        // A body that does not verify is answered with a small error.
        flatbuffers::root::<FetchRequest>(&frame.body).map_or(RESPONSE_BYTES_RESERVE_DEFAULT, |r| {
            let partitions_bytes: u64 = r
                .partitions()
                .iter()
                .flatten()
                .map(|p| u64::from(p.max_bytes()))
                .sum();
            u64::from(r.max_bytes()).min(partitions_bytes) + RESPONSE_BYTES_RESERVE_DEFAULT
        })
    }

    async fn handle(broker: Rc<Broker>, frame: RequestFrame, peer: Rc<str>) -> Response {
        handlers::handle(broker, frame, peer).await
    }
}

/// Serves `stream` (its connection's state is `conn`; `shard_budget` is the
/// shard's queued-bytes budget) until the client closes it, its framing is lost,
/// the sweep closes it, or the shard stops (then in-flight requests are finished
/// and answered first, until the shutdown deadline closes it).
pub(crate) async fn serve<P: Protocol>(
    broker: Rc<Broker>,
    stream: TcpStream,
    conn: Rc<ConnState>,
    shard_budget: Rc<Semaphore>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    // The client's address, as group members show it.
    let peer: Rc<str> = stream
        .peer_addr()
        .map_or_else(|_| Rc::from(""), |a| Rc::from(a.ip().to_string()));
    let (reader, writer) = futures_lite::io::split(stream);
    let mut reader = Active {
        inner: reader,
        state: Rc::clone(&conn),
    };
    let writer = Active {
        inner: writer,
        state: Rc::clone(&conn),
    };
    let budget = Budget {
        connection: Rc::new(Semaphore::new(CONNECTION_QUEUED_BYTES_MAX)),
        shard: shard_budget,
        state: Rc::clone(&conn),
    };
    let work = async {
        let (queue, replies) = local_channel::new_bounded::<InFlight>(IN_FLIGHT_REQUESTS_MAX);
        let writer = glommio::spawn_local(write_replies(writer, replies));
        loop {
            conn.set_parked_in_read(true);
            let next = futures_lite::future::or(
                async {
                    let (frame, mut held) = P::read_frame(&mut reader, &budget).await?;
                    let reserve = P::response_bytes_reserve(&frame);
                    budget.hold_response(&mut held, reserve).await?;
                    Ok::<_, ReadError>(Some((frame, held)))
                },
                async {
                    broker.shard.stopped().await;
                    Ok(None)
                },
            )
            .await;
            conn.set_parked_in_read(false);
            let (frame, held) = match next {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(ReadError::PeerClosed) => {
                    // Replies already on their way may still go out, briefly.
                    conn.close_by(
                        Instant::now() + Duration::from_millis(PEER_CLOSED_GRACE_MS),
                        CloseReason::PeerClosed,
                    );
                    break;
                }
                Err(why) => {
                    tracing::debug!(reason = %why, "closing connection");
                    break;
                }
            };
            let last = P::closes_after(&broker, &frame);
            let task = glommio::spawn_local(P::handle(Rc::clone(&broker), frame, Rc::clone(&peer)));
            conn.request_queued();
            let in_flight = InFlight {
                task,
                _held: held,
                _counted: Counted(Rc::clone(&conn)),
            };
            if queue.send(in_flight).await.is_err() {
                break; // the writer is gone: the peer closed
            }
            if last {
                break; // the replies queued go out, then the connection ends
            }
        }
        drop(queue);
        writer.await;
    };
    let closed = futures_lite::future::or(
        async {
            work.await;
            None
        },
        async { Some(conn.closed().await) },
    )
    .await;
    if let Some(why) = closed {
        // Dropping `work` drops the writer (and its queued replies and requests in
        // flight) and both socket halves.
        tracing::debug!(reason = ?why, "connection closed by the broker");
    }
}

/// A request as read from the socket: header, body, and the tail.
pub struct RequestFrame {
    pub header: FrameHeader,
    pub body: Vec<u8>,
    pub tail: Tail,
    /// Why a well-framed request cannot be read as one (its bytes were skipped,
    /// `body` and `tail` are empty): it is answered with INVALID_REQUEST.
    pub malformed: Option<String>,
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

pub(crate) async fn read_vec(reader: &mut Reader, len: usize) -> Result<Vec<u8>, ReadError> {
    let mut buf = vec![0u8; len];
    reader.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Reads and drops `len` bytes, `SKIP_CHUNK_BYTES` at a time.
async fn skip(reader: &mut Reader, mut len: usize) -> Result<(), ReadError> {
    let mut chunk = vec![0u8; len.min(SKIP_CHUNK_BYTES)];
    while len > 0 {
        let n = len.min(chunk.len());
        reader.read_exact(&mut chunk[..n]).await?;
        len -= n;
    }
    Ok(())
}

/// Reads one whole frame.
async fn read_frame(
    reader: &mut Reader,
    budget: &Budget,
) -> Result<(RequestFrame, Held), ReadError> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    reader.read_exact(&mut head).await?;
    let header = match FrameHeader::decode(&head, FRAME_BYTES_MAX) {
        Ok(Some(header)) => header,
        Ok(None) => return Err(ReadError::Framing("short header".to_owned())),
        Err(e @ FrameError::BodyTooLong { .. }) => {
            // The length still frames the request: skip it and answer.
            let mut header = FrameHeader::decode(&[&head[..12], &[0; 4]].concat(), FRAME_BYTES_MAX)
                .map_err(|e| ReadError::Framing(e.to_string()))?
                .ok_or_else(|| ReadError::Framing("short header".to_owned()))?;
            let held = budget.hold_request(header.frame_bytes()).await?;
            skip(reader, header.frame_bytes() - FRAME_HEADER_BYTES).await?;
            header.length = (FRAME_HEADER_BYTES - 4) as u32;
            let frame = RequestFrame {
                header,
                body: Vec::new(),
                tail: Tail::Whole(Vec::new()),
                malformed: Some(e.to_string()),
            };
            return Ok((frame, held));
        }
        Err(e) => return Err(ReadError::Framing(e.to_string())),
    };
    let held = budget.hold_request(header.frame_bytes()).await?;
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
    let frame = RequestFrame {
        header,
        body,
        tail,
        malformed: None,
    };
    Ok((frame, held))
}

/// Writes replies in request order until the queue closes or a write fails.
async fn write_replies(mut writer: Writer, replies: LocalReceiver<InFlight>) {
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
    writer: &mut Writer,
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
