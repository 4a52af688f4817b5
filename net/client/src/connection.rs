//! One TCP connection to a broker, with pipelined requests.
//!
//! Writers: any thread encodes its frame and writes it under a small mutex on the
//! socket. A mutex rather than a writer thread because a request is written with one
//! or two `write_all` calls straight from the caller's buffers (the Produce tail is
//! never copied into a queue), the only heavy writer is the producer's single sender
//! thread, so the lock is almost never contended, and there is no thread hop on the
//! latency path.
//!
//! Reader: one thread per connection reads into a growing buffer, cuts it into frames
//! (each frame becomes an owned `Bytes`, so fetched batches are not copied again) and
//! completes the waiting request by correlation id. Its read has a short timeout so it
//! also fails requests whose deadline passed: timeouts work without any async timer,
//! whichever runtime (or none) awaits the response.
//!
//! At most [`IN_FLIGHT_MAX`] requests wait for a response at once; a caller beyond that
//! blocks until one completes (or its timeout passes).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strata_schema::{frame_header, ApiKey, FrameHeader, FRAME_BYTES_MAX, FRAME_HEADER_BYTES};

use crate::completion::{completion, Completer, Pending};
use crate::error::{ClientError, Result};

/// Requests awaiting a response on one connection.
pub const IN_FLIGHT_MAX: usize = 64;
/// How often the reader thread checks request deadlines when the socket is quiet.
const DEADLINE_TICK: Duration = Duration::from_millis(20);
/// Bytes the reader asks the socket for at a time (more when a frame is larger).
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Time allowed for the TCP handshake with one address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Protocol version this client speaks for every API.
const API_VERSION: u16 = 0;

/// One response frame: the flatbuffer body and the tail, both views of one buffer.
#[derive(Clone, Debug)]
pub struct Response {
    frame: Bytes,
    body: Range<usize>,
}

impl Response {
    /// Splits a whole frame (header included).
    pub(crate) fn from_frame(frame: Bytes, header: &FrameHeader) -> Response {
        let body_end = FRAME_HEADER_BYTES + header.body_len as usize;
        debug_assert!(body_end <= frame.len());
        Response {
            frame,
            body: FRAME_HEADER_BYTES..body_end,
        }
    }

    /// The flatbuffer body.
    pub fn body(&self) -> &[u8] {
        &self.frame[self.body.clone()]
    }

    /// The tail (record batches for Fetch), sharing the frame's buffer.
    pub fn tail(&self) -> Bytes {
        self.frame.slice(self.body.end..)
    }
}

struct Waiter {
    api: ApiKey,
    deadline: Instant,
    timeout: Duration,
    completer: Completer<Result<Response>>,
}

struct State {
    waiting: HashMap<u32, Waiter>,
    /// Why the connection is unusable, once it is.
    closed: Option<String>,
}

struct Shared {
    addr: String,
    state: Mutex<State>,
    slot_free: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection closed and fails every waiting request.
    fn close(&self, reason: &str) {
        let waiters: Vec<Waiter> = {
            let mut state = self.lock();
            if state.closed.is_none() {
                state.closed = Some(reason.to_owned());
            }
            state.waiting.drain().map(|(_, w)| w).collect()
        };
        self.slot_free.notify_all();
        for w in waiters {
            w.completer.complete(Err(self.disconnected(reason)));
        }
    }

    fn disconnected(&self, reason: &str) -> ClientError {
        ClientError::Disconnected {
            addr: self.addr.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// A connection to one broker. Cheap to share (`Arc`); dropping the last handle closes
/// the socket and stops the reader thread.
pub struct Connection {
    shared: Arc<Shared>,
    writer: Mutex<TcpStream>,
    next_correlation_id: AtomicU32,
    reader: Option<JoinHandle<()>>,
}

impl Connection {
    /// Connects to the first of `brokers` that accepts.
    pub fn connect(brokers: &[String]) -> Result<Connection> {
        let mut last_error = ClientError::Config("no broker address given".into());
        for addr in brokers {
            match connect_one(addr) {
                Ok(stream) => return Connection::from_stream(stream, addr.clone()),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Wraps a connected stream and starts its reader thread.
    fn from_stream(stream: TcpStream, addr: String) -> Result<Connection> {
        let io = |e: std::io::Error| ClientError::Connect {
            addr: addr.clone(),
            reason: e.to_string(),
        };
        stream.set_nodelay(true).map_err(io)?;
        let read_half = stream.try_clone().map_err(io)?;
        read_half
            .set_read_timeout(Some(DEADLINE_TICK))
            .map_err(io)?;
        let shared = Arc::new(Shared {
            addr: addr.clone(),
            state: Mutex::new(State {
                waiting: HashMap::new(),
                closed: None,
            }),
            slot_free: Condvar::new(),
        });
        let reader_shared = shared.clone();
        let reader = std::thread::Builder::new()
            .name(format!("strata-conn-{addr}"))
            .spawn(move || read_loop(read_half, &reader_shared))
            .map_err(io)?;
        Ok(Connection {
            shared,
            writer: Mutex::new(stream),
            next_correlation_id: AtomicU32::new(1),
            reader: Some(reader),
        })
    }

    /// The broker address this connection goes to.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the connection failed or was closed; a closed connection only fails.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Sends one request; the returned completion gives its response frame, or a
    /// transport failure (`Timeout` after `timeout`, `Disconnected`). Broker error
    /// codes inside the body are for the caller to decode. Blocks while
    /// [`IN_FLIGHT_MAX`] requests are outstanding (at most until `timeout`).
    pub fn request(
        &self,
        api: ApiKey,
        body: &[u8],
        tail: &[&[u8]],
        timeout: Duration,
    ) -> Pending<Result<Response>> {
        let (completer, pending) = completion();
        let deadline = Instant::now() + timeout;
        let id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.shared.lock();
            loop {
                if let Some(reason) = &state.closed {
                    return Pending::ready(Err(self.shared.disconnected(reason)));
                }
                if state.waiting.len() < IN_FLIGHT_MAX {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Pending::ready(Err(self.timeout_error(api, timeout)));
                }
                state = self
                    .shared
                    .slot_free
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            state.waiting.insert(
                id,
                Waiter {
                    api,
                    deadline,
                    timeout,
                    completer,
                },
            );
        }
        if let Err(e) = self.write_frame(api, id, body, tail) {
            // `close` fails every waiter, this request's included.
            self.shared.close(&format!("write failed: {e}"));
        }
        pending
    }

    /// Sends a request whose response nobody waits for (Produce with acks=0). A
    /// response, if the broker sends one, is dropped by the reader.
    pub fn send_oneway(&self, api: ApiKey, body: &[u8], tail: &[&[u8]]) -> Result<()> {
        if let Some(reason) = &self.shared.lock().closed {
            return Err(self.shared.disconnected(reason));
        }
        let id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        self.write_frame(api, id, body, tail).map_err(|e| {
            let reason = format!("write failed: {e}");
            self.shared.close(&reason);
            self.shared.disconnected(&reason)
        })
    }

    fn write_frame(
        &self,
        api: ApiKey,
        id: u32,
        body: &[u8],
        tail: &[&[u8]],
    ) -> std::io::Result<()> {
        let tail_bytes: usize = tail.iter().map(|t| t.len()).sum();
        let header = frame_header(api as u16, API_VERSION, id, body.len(), tail_bytes);
        if header.frame_bytes() > FRAME_BYTES_MAX {
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "request of {} bytes exceeds the frame maximum of {FRAME_BYTES_MAX}",
                    header.frame_bytes()
                ),
            ));
        }
        let mut head = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
        header.encode(&mut head);
        head.extend_from_slice(body);
        let mut stream = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        stream.write_all(&head)?;
        for part in tail {
            stream.write_all(part)?;
        }
        Ok(())
    }

    fn timeout_error(&self, api: ApiKey, timeout: Duration) -> ClientError {
        ClientError::Timeout {
            api: api.name(),
            addr: self.shared.addr.clone(),
            timeout,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close("connection closed by the client");
        if let Ok(stream) = self.writer.get_mut() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(reader) = self.reader.take() {
            // The last handle can be dropped on the reader thread itself (a waker it
            // ran released it); it exits on its own after the shutdown above.
            if reader.thread().id() != std::thread::current().id() {
                let _ = reader.join();
            }
        }
    }
}

fn connect_one(addr: &str) -> Result<TcpStream> {
    let fail = |reason: String| ClientError::Connect {
        addr: addr.to_owned(),
        reason,
    };
    let addrs = addr
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve address: {e}")))?;
    let mut reason = String::from("address resolved to nothing");
    for sock in addrs {
        match TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => reason = e.to_string(),
        }
    }
    Err(fail(reason))
}

fn read_loop(mut stream: TcpStream, shared: &Shared) {
    // `buf[..filled]` holds received bytes; the rest is initialised spare room that the
    // next read fills, so each byte is zeroed at most once before it is read into.
    let mut buf = BytesMut::new();
    let mut filled = 0usize;
    let mut last_sweep = Instant::now();
    let reason = loop {
        if last_sweep.elapsed() >= DEADLINE_TICK {
            // A busy socket never times out a read, so deadlines are swept here too.
            expire(shared);
            last_sweep = Instant::now();
        }
        // Cut every whole frame out of the buffer.
        let header = match FrameHeader::decode(&buf[..filled], FRAME_BYTES_MAX) {
            Ok(h) => h,
            Err(e) => break format!("framing lost: {e}"),
        };
        if let Some(h) = header {
            if filled >= h.frame_bytes() {
                let frame = buf.split_to(h.frame_bytes()).freeze();
                filled -= h.frame_bytes();
                deliver(shared, frame, &h);
                continue;
            }
        }
        if shared.lock().closed.is_some() {
            return;
        }
        // Room for the rest of the current frame (one allocation for a large fetch),
        // or a chunk when the next frame's size is not known yet.
        let rest = header.map_or(0, |h| h.frame_bytes() - filled);
        let target = filled + rest.max(READ_CHUNK_BYTES);
        if buf.len() < target {
            buf.resize(target, 0);
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break "broker closed the connection".to_owned(),
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break format!("read failed: {e}"),
        }
    };
    shared.close(&reason);
}

/// Completes the request a response frame answers; unknown ids (timed out, one-way) are
/// dropped.
fn deliver(shared: &Shared, frame: Bytes, header: &FrameHeader) {
    let waiter = shared.lock().waiting.remove(&header.correlation_id);
    let Some(waiter) = waiter else {
        return;
    };
    shared.slot_free.notify_one();
    let result = if header.api == waiter.api as u16 {
        Ok(Response::from_frame(frame, header))
    } else if header.api == ApiKey::ApiVersions as u16 {
        // The broker answers request-level errors (unknown api, unsupported version,
        // undecodable body) with an ApiVersions body carrying the error.
        Err(request_level_error(&frame, header, waiter.api))
    } else {
        Err(ClientError::Protocol(format!(
            "response {} to a {} request carries api {}",
            header.correlation_id,
            waiter.api.name(),
            header.api
        )))
    };
    waiter.completer.complete(result);
}

/// The error of an ApiVersions-shaped reply to a request of another api.
fn request_level_error(frame: &[u8], header: &FrameHeader, api: ApiKey) -> ClientError {
    let start = strata_schema::FRAME_HEADER_BYTES;
    let body = frame
        .get(start..start + header.body_len as usize)
        .unwrap_or_default();
    match flatbuffers::root::<strata_schema::protocol::ApiVersionsResponse>(body) {
        Ok(r) => {
            let (code, message) = r
                .error()
                .map(|e| (e.code(), e.message().unwrap_or_default().to_string()))
                .unwrap_or((1, String::new()));
            ClientError::Broker {
                api: api.name(),
                code: strata_schema::ErrorCode::from_i16(code),
                message,
            }
        }
        Err(e) => ClientError::Protocol(format!(
            "undecodable error reply to a {} request: {e}",
            api.name()
        )),
    }
}

/// Fails the requests whose deadline has passed.
fn expire(shared: &Shared) {
    let now = Instant::now();
    let expired: Vec<Waiter> = {
        let mut state = shared.lock();
        let ids: Vec<u32> = state
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.iter()
            .filter_map(|id| state.waiting.remove(id))
            .collect()
    };
    if expired.is_empty() {
        return;
    }
    shared.slot_free.notify_all();
    for w in expired {
        w.completer.complete(Err(ClientError::Timeout {
            api: w.api.name(),
            addr: shared.addr.clone(),
            timeout: w.timeout,
        }));
    }
}
