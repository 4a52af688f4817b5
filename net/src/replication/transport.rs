//! The broker-to-broker connections of one shard (shard 0): a listener for inbound
//! connections and one outbound connection per peer.
//!
//! One TCP connection per direction per broker pair: a broker only *sends* on the
//! connection it dialled and only *receives* on the ones it accepted, so the two
//! directions never wait on each other. A call's reply therefore goes back on the
//! replier's own outbound connection.
//!
//! Outbound, per peer: [`Transport::send`] pushes onto a bounded queue (when full the
//! oldest message is dropped and counted — Raft tolerates lost messages, and the newest
//! state matters most) and wakes the peer's writer task, which takes everything queued
//! and writes it as one frame (or a few, each within [`FRAME_BYTES_MAX`] and
//! [`MESSAGES_PER_FRAME_MAX`]) with vectored writes: the batches go from their own
//! buffers to the socket. A peer that is down is dialled again with a backoff from
//! [`RECONNECT_BACKOFF_MS_MIN`] doubling to [`RECONNECT_BACKOFF_MS_MAX`]; messages keep
//! queueing (bounded) meanwhile.
//!
//! Inbound: each accepted connection must say `Hello` first; then its message frames go
//! to [`Inbound::messages`], its calls to [`Inbound::call`] (the reply is queued to the
//! caller's peer entry), and its replies complete our pending calls. A frame that does
//! not decode is skipped and counted; a frame that breaks the framing closes the
//! connection.
//!
//! Nothing here blocks: sockets are glommio's, queues are bounded, and all state is
//! `Cell`/`RefCell` on the one shard that called [`Transport::start`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use glommio::Task;
use strata_raft::{MessageBody, NodeId, APPEND_ENTRIES_MAX};
use strata_schema::{FRAME_BYTES_MAX, FRAME_HEADER_BYTES};

use super::counters::{add, Counters, TransportCounters};
use super::frame::{
    decode_frame, encode_call, encode_hello, encode_messages, encode_reply, message_bytes_bound,
    Frame, FRAME_OVERHEAD_BYTES_BOUND, MESSAGES_PER_FRAME_MAX,
};
use super::frame_reader::{FrameReader, ReadFrameError};
use super::peer_liveness::{LivenessTable, PeerLiveness};
use super::socket_options::set_dead_peer_timeouts;
use super::vectored_write::write_all_vectored;
use super::GroupMessage;

/// Messages one peer's queue holds by default; beyond it the oldest are dropped.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 64 * 1024;
/// Bytes (frame-size bounds, batches included) one peer's queue holds by default.
pub const PEER_QUEUE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes the writer puts in one messages frame by default before starting another (a
/// single larger message still goes, up to [`FRAME_BYTES_MAX`]).
pub const FRAME_BYTES_TARGET: usize = 8 * 1024 * 1024;
/// Largest sum of batch bytes one append may carry: one frame with room for its head.
pub const APPEND_BATCH_BYTES_MAX: usize = FRAME_BYTES_MAX
    - FRAME_OVERHEAD_BYTES_BOUND
    - super::frame::MESSAGE_HEAD_BYTES_BOUND
    - APPEND_ENTRIES_MAX * super::frame::ENTRY_HEAD_BYTES_BOUND;
/// Calls and replies queued to one peer at most (calls beyond it fail at once with
/// [`CallError::Overloaded`], replies beyond it are dropped and counted).
pub const PEER_CONTROL_FRAMES_MAX: usize = 1024;
/// Calls waiting for a reply at most, over all peers.
pub const CALLS_IN_FLIGHT_MAX: usize = 4096;
/// Payload bytes of one call or reply at most.
pub const CALL_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Inbound calls being answered at once at most; more are answered with an error.
pub const INBOUND_CALLS_MAX: usize = 1024;
/// Inbound connections held at once at most; more are closed on accept.
pub const INBOUND_CONNECTIONS_MAX: usize = 256;
/// First wait before dialling a peer again.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 10;
/// Longest wait between dials.
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 1_000;
/// How long one dial may take.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// A writer with nothing to send for this long sends an empty messages frame: the
/// broker-pair heartbeat that keeps quiescent groups' leases (one per broker pair,
/// whatever the number of partitions they share).
pub const PEER_HEARTBEAT_MS: u64 = 200;
/// How long an inbound connection may take to say hello.
pub const HELLO_TIMEOUT_MS: u64 = 10_000;

/// A boxed future of the shard (not `Send`).
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Where inbound traffic goes. Called on the transport's shard.
pub trait Inbound {
    /// A frame of messages from broker `from` (its messages in the order sent).
    fn messages(&self, from: NodeId, messages: Vec<GroupMessage>);
    /// A call from broker `from`; the answer (or an error for the caller) is sent back.
    fn call(&self, from: NodeId, payload: Vec<u8>) -> LocalBoxFuture<Result<Vec<u8>, String>>;
}

/// How the transport is set up.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This broker's node id, sent in every hello.
    pub node_id: NodeId,
    /// The cluster listener (`cluster.listen`); port 0 picks a free one.
    pub listen: SocketAddr,
    /// Messages one peer's queue holds.
    pub peer_queue_messages_max: usize,
    /// Bytes one peer's queue holds.
    pub peer_queue_bytes_max: usize,
    /// Bytes per messages frame the writer aims at.
    pub frame_bytes_target: usize,
}

impl TransportConfig {
    /// The defaults for `node_id` listening on `listen`.
    pub fn new(node_id: NodeId, listen: SocketAddr) -> TransportConfig {
        TransportConfig {
            node_id,
            listen,
            peer_queue_messages_max: PEER_QUEUE_MESSAGES_MAX,
            peer_queue_bytes_max: PEER_QUEUE_BYTES_MAX,
            frame_bytes_target: FRAME_BYTES_TARGET,
        }
    }
}

/// The transport could not start.
#[derive(thiserror::Error, Debug)]
pub enum TransportError {
    #[error("cannot listen on the cluster address {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// Why a message was not queued.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    #[error("no address is known for broker {peer} (set_peer first)")]
    UnknownPeer { peer: NodeId },
    #[error("the transport is stopped")]
    Stopped,
    #[error("an append lists {entries} entries but carries {batches} batches")]
    BatchesMismatch { entries: usize, batches: usize },
    #[error("a message that is not an append carries {batches} batches (a snapshot one at most)")]
    UnexpectedBatches { batches: usize },
    #[error("an append of {entries} entries exceeds the maximum of {max}")]
    TooManyEntries { entries: usize, max: usize },
    #[error("an append of {bytes} batch bytes exceeds the maximum of {max}")]
    TooLarge { bytes: usize, max: usize },
}

/// Why a call has no answer.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    #[error("no answer from broker {peer} within {timeout_ms} ms")]
    Timeout { peer: NodeId, timeout_ms: u64 },
    /// Not connected, or the connection was lost with the call in flight (it may or
    /// may not have been handled).
    #[error("broker {peer} is unreachable")]
    Unreachable { peer: NodeId },
    #[error("no address is known for broker {peer} (set_peer first)")]
    UnknownPeer { peer: NodeId },
    #[error("broker {peer} answered with an error: {message}")]
    Remote { peer: NodeId, message: String },
    #[error("too many calls in flight (at most {calls_max} overall, {PEER_CONTROL_FRAMES_MAX} queued per broker)")]
    Overloaded { calls_max: usize },
    #[error("a call payload of {bytes} bytes exceeds the maximum of {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("the transport is stopped")]
    Stopped,
}

/// What a peer's outbound connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerState {
    /// Not dialled yet, or dialling for the first time since the last loss.
    Connecting,
    /// Connected; frames are being written.
    Connected,
    /// The last dial failed; waiting to dial again.
    Down,
}

/// A call or reply frame, encoded, waiting to be written.
struct ControlFrame {
    /// The call's id when this is a call (so a failed dial can fail it).
    call_id: Option<u64>,
    bytes: Vec<u8>,
}

struct Peer {
    id: NodeId,
    addr: Cell<SocketAddr>,
    messages: RefCell<VecDeque<(GroupMessage, usize)>>,
    /// Sum of the `message_bytes_bound` of the queued messages.
    queued_bytes: Cell<usize>,
    control: RefCell<VecDeque<ControlFrame>>,
    /// One permit when there is work for the writer; closed on stop.
    wake: Semaphore,
    state: Cell<PeerState>,
    /// Whether a connection was ever established (to count reconnects).
    ever_connected: Cell<bool>,
    /// Frames written to this peer since start.
    frames_written: Cell<u64>,
}

impl Peer {
    fn wake_writer(&self) {
        if self.wake.available() == 0 {
            self.wake.signal(1);
        }
    }

    fn has_work(&self) -> bool {
        !self.messages.borrow().is_empty() || !self.control.borrow().is_empty()
    }
}

/// Where a call's outcome is left for the caller.
type CallSlot = Rc<RefCell<Option<Result<Vec<u8>, CallError>>>>;

/// A call waiting for its reply.
struct PendingCall {
    peer: NodeId,
    result: CallSlot,
    done: Rc<Semaphore>,
}

struct Inner {
    config: TransportConfig,
    local_addr: SocketAddr,
    inbound: Rc<dyn Inbound>,
    peers: RefCell<HashMap<NodeId, Rc<Peer>>>,
    writers: RefCell<Vec<Task<()>>>,
    listener_task: RefCell<Option<Task<()>>>,
    calls: RefCell<HashMap<u64, PendingCall>>,
    next_call_id: Cell<u64>,
    counters: Counters,
    stopped: Cell<bool>,
    /// Never has permits; closed on stop, which wakes every task waiting on it.
    stop_signal: Semaphore,
    inbound_open: Cell<usize>,
    inbound_closed: Semaphore,
    inbound_calls: Cell<usize>,
    /// The newest inbound connection of each peer; closing it ends that connection.
    /// A peer dials once, so an older one still open is dead (its link was cut).
    inbound_by_peer: RefCell<HashMap<NodeId, Rc<Semaphore>>>,
    /// When each peer was last heard from, and its lost inbound connections.
    liveness: LivenessTable,
}

/// The replication transport of this shard. Cheap to clone (a handle). Its tasks keep
/// it alive until [`Transport::stop`].
#[derive(Clone)]
pub struct Transport {
    inner: Rc<Inner>,
}

impl Transport {
    /// Binds the cluster listener and starts accepting, on the calling shard.
    pub fn start(
        config: TransportConfig,
        inbound: Rc<dyn Inbound>,
    ) -> Result<Transport, TransportError> {
        let bind_error = |reason: String| TransportError::Bind {
            addr: config.listen,
            reason,
        };
        let listener = TcpListener::bind(config.listen).map_err(|e| bind_error(e.to_string()))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| bind_error(e.to_string()))?;
        let inner = Rc::new(Inner {
            config,
            local_addr,
            inbound,
            peers: RefCell::new(HashMap::new()),
            writers: RefCell::new(Vec::new()),
            listener_task: RefCell::new(None),
            calls: RefCell::new(HashMap::new()),
            next_call_id: Cell::new(1),
            counters: Counters::default(),
            stopped: Cell::new(false),
            stop_signal: Semaphore::new(0),
            inbound_open: Cell::new(0),
            inbound_closed: Semaphore::new(0),
            inbound_calls: Cell::new(0),
            inbound_by_peer: RefCell::new(HashMap::new()),
            liveness: LivenessTable::default(),
        });
        let task = glommio::spawn_local(accept_loop(Rc::clone(&inner), listener));
        *inner.listener_task.borrow_mut() = Some(task);
        Ok(Transport { inner })
    }

    /// The address the cluster listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This broker's node id.
    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    /// Names broker `id`'s cluster address and starts dialling it. For a known peer
    /// the new address is used from its next dial on. Our own id is ignored. A broker
    /// that dials us first becomes a peer by itself, at the address its hello names.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) {
        self.inner.set_peer(id, addr);
    }

    /// Whether our outbound connection to `id` is up.
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.inner
            .peers
            .borrow()
            .get(&id)
            .is_some_and(|p| p.state.get() == PeerState::Connected)
    }

    /// Queues `message` for broker `to`; never waits. When the peer's queue is full
    /// the oldest queued messages are dropped (and counted) to make room.
    pub fn send(&self, to: NodeId, message: GroupMessage) -> Result<(), SendError> {
        let inner = &self.inner;
        if inner.stopped.get() {
            return Err(SendError::Stopped);
        }
        check_message(&message)?;
        let peers = inner.peers.borrow();
        let peer = peers.get(&to).ok_or(SendError::UnknownPeer { peer: to })?;
        let bytes = message_bytes_bound(&message);
        let mut queue = peer.messages.borrow_mut();
        while !queue.is_empty()
            && (queue.len() >= inner.config.peer_queue_messages_max
                || peer.queued_bytes.get() + bytes > inner.config.peer_queue_bytes_max)
        {
            if let Some((_, b)) = queue.pop_front() {
                peer.queued_bytes.set(peer.queued_bytes.get() - b);
                add(&inner.counters.messages_dropped, 1);
            }
        }
        queue.push_back((message, bytes));
        peer.queued_bytes.set(peer.queued_bytes.get() + bytes);
        drop(queue);
        peer.wake_writer();
        Ok(())
    }

    /// Sends `payload` to broker `to` and waits for its answer, at most `timeout_ms`.
    /// A peer that is known to be down fails at once with [`CallError::Unreachable`],
    /// as does a call in flight when the connection to its peer is lost.
    pub async fn call(
        &self,
        to: NodeId,
        payload: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<Vec<u8>, CallError> {
        let inner = &self.inner;
        if inner.stopped.get() {
            return Err(CallError::Stopped);
        }
        if payload.len() > CALL_PAYLOAD_BYTES_MAX {
            return Err(CallError::TooLarge {
                bytes: payload.len(),
                max: CALL_PAYLOAD_BYTES_MAX,
            });
        }
        let peer = inner
            .peers
            .borrow()
            .get(&to)
            .cloned()
            .ok_or(CallError::UnknownPeer { peer: to })?;
        if peer.state.get() == PeerState::Down {
            return Err(CallError::Unreachable { peer: to });
        }
        if inner.calls.borrow().len() >= CALLS_IN_FLIGHT_MAX
            || peer.control.borrow().len() >= PEER_CONTROL_FRAMES_MAX
        {
            return Err(CallError::Overloaded {
                calls_max: CALLS_IN_FLIGHT_MAX,
            });
        }
        let id = inner.next_call_id.get();
        inner.next_call_id.set(id.wrapping_add(1).max(1));
        let result: CallSlot = Rc::new(RefCell::new(None));
        let done = Rc::new(Semaphore::new(0));
        inner.calls.borrow_mut().insert(
            id,
            PendingCall {
                peer: to,
                result: Rc::clone(&result),
                done: Rc::clone(&done),
            },
        );
        peer.control.borrow_mut().push_back(ControlFrame {
            call_id: Some(id),
            bytes: encode_call(id, &payload),
        });
        peer.wake_writer();
        drop(payload);
        let answered = future::or(async { done.acquire(1).await.is_ok() }, async {
            glommio::timer::sleep(Duration::from_millis(timeout_ms)).await;
            false
        })
        .await;
        // Whatever happened, the call is no longer pending.
        inner.calls.borrow_mut().remove(&id);
        let outcome = result.borrow_mut().take();
        match outcome {
            Some(r) => r,
            None if answered || inner.stopped.get() => Err(CallError::Stopped),
            None => {
                add(&inner.counters.calls_timed_out, 1);
                Err(CallError::Timeout {
                    peer: to,
                    timeout_ms,
                })
            }
        }
    }

    /// Every peer that ever connected to us: how long it has been silent and how many
    /// of its connections ended (the broker-pair failure detector's input).
    pub fn peer_liveness(&self) -> Vec<(NodeId, PeerLiveness)> {
        self.inner.liveness.snapshot()
    }

    /// Messages queued for `id` and not yet written (0 for an unknown peer).
    pub fn queued_messages(&self, id: NodeId) -> usize {
        self.inner
            .peers
            .borrow()
            .get(&id)
            .map_or(0, |p| p.messages.borrow().len())
    }

    /// The counters since start.
    pub fn counters(&self) -> TransportCounters {
        self.inner.counters.snapshot()
    }

    /// Closes every connection and ends every task; pending calls fail with
    /// [`CallError::Stopped`]. Sends and calls after it fail at once.
    pub async fn stop(&self) {
        let inner = &self.inner;
        inner.begin_stop();
        let listener = inner.listener_task.borrow_mut().take();
        if let Some(t) = listener {
            t.await;
        }
        let writers: Vec<Task<()>> = inner.writers.borrow_mut().drain(..).collect();
        for t in writers {
            t.await;
        }
        while inner.inbound_open.get() > 0 {
            let _ = inner.inbound_closed.acquire(1).await;
        }
        inner.peers.borrow_mut().clear();
    }
}

impl Inner {
    fn set_peer(self: &Rc<Self>, id: NodeId, addr: SocketAddr) {
        if self.stopped.get() || id == self.config.node_id {
            return;
        }
        if let Some(p) = self.peers.borrow().get(&id) {
            p.addr.set(addr);
            return;
        }
        let peer = Rc::new(Peer {
            id,
            addr: Cell::new(addr),
            messages: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            control: RefCell::new(VecDeque::new()),
            wake: Semaphore::new(0),
            state: Cell::new(PeerState::Connecting),
            ever_connected: Cell::new(false),
            frames_written: Cell::new(0),
        });
        self.peers.borrow_mut().insert(id, Rc::clone(&peer));
        let task = glommio::spawn_local(run_writer(Rc::clone(self), peer));
        self.writers.borrow_mut().push(task);
    }

    /// Marks the transport stopped and wakes every task so it ends on its own.
    fn begin_stop(&self) {
        if self.stopped.replace(true) {
            return;
        }
        self.stop_signal.close();
        for p in self.peers.borrow().values() {
            p.wake.close();
        }
        let calls: Vec<PendingCall> = self.calls.borrow_mut().drain().map(|(_, c)| c).collect();
        for c in calls {
            *c.result.borrow_mut() = Some(Err(CallError::Stopped));
            c.done.signal(1);
        }
    }

    /// Waits `backoff_ms` (false if the transport stopped meanwhile), then doubles it
    /// up to [`RECONNECT_BACKOFF_MS_MAX`].
    async fn backoff(&self, backoff_ms: &mut u64) -> bool {
        let wait_ms = *backoff_ms;
        *backoff_ms = (wait_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
        future::or(
            async {
                glommio::timer::sleep(Duration::from_millis(wait_ms)).await;
                true
            },
            async {
                self.stopped().await;
                false
            },
        )
        .await
    }

    /// Resolves when the transport stops.
    async fn stopped(&self) {
        let _ = self.stop_signal.acquire(1).await;
    }

    /// Fails every pending call to `peer` with [`CallError::Unreachable`].
    fn fail_calls(&self, peer: NodeId) {
        let ids: Vec<u64> = self
            .calls
            .borrow()
            .iter()
            .filter(|(_, c)| c.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(c) = self.calls.borrow_mut().remove(&id) {
                *c.result.borrow_mut() = Some(Err(CallError::Unreachable { peer }));
                c.done.signal(1);
            }
        }
    }

    fn complete_call(&self, from: NodeId, id: u64, result: Result<Vec<u8>, String>) {
        let Some(c) = self.calls.borrow_mut().remove(&id) else {
            // Timed out already, or never ours: dropped.
            return;
        };
        if c.peer != from {
            // A reply from another broker than the one called: not ours to take.
            self.calls.borrow_mut().insert(id, c);
            return;
        }
        *c.result.borrow_mut() = Some(result.map_err(|message| CallError::Remote {
            peer: from,
            message,
        }));
        c.done.signal(1);
    }

    fn queue_reply(&self, to: NodeId, id: u64, result: Result<Vec<u8>, String>) {
        let peers = self.peers.borrow();
        let Some(peer) = peers.get(&to) else {
            add(&self.counters.replies_dropped, 1);
            return;
        };
        let mut control = peer.control.borrow_mut();
        if self.stopped.get() || control.len() >= PEER_CONTROL_FRAMES_MAX {
            add(&self.counters.replies_dropped, 1);
            return;
        }
        let result = match result {
            Ok(p) if p.len() > CALL_PAYLOAD_BYTES_MAX => Err(format!(
                "the answer of {} bytes exceeds the maximum of {CALL_PAYLOAD_BYTES_MAX}",
                p.len()
            )),
            r => r,
        };
        control.push_back(ControlFrame {
            call_id: None,
            bytes: encode_reply(id, &result),
        });
        drop(control);
        peer.wake_writer();
    }
}

/// The sender-side contract of [`GroupMessage`], checked before queueing so a frame
/// never fails to encode or decode.
fn check_message(m: &GroupMessage) -> Result<(), SendError> {
    match &m.message.body {
        MessageBody::Append(a) => {
            if a.entries.len() != m.batches.len() {
                return Err(SendError::BatchesMismatch {
                    entries: a.entries.len(),
                    batches: m.batches.len(),
                });
            }
            if a.entries.len() > APPEND_ENTRIES_MAX {
                return Err(SendError::TooManyEntries {
                    entries: a.entries.len(),
                    max: APPEND_ENTRIES_MAX,
                });
            }
            check_batch_bytes(m)
        }
        MessageBody::Snapshot(_) => {
            if m.batches.len() > 1 {
                return Err(SendError::UnexpectedBatches {
                    batches: m.batches.len(),
                });
            }
            check_batch_bytes(m)
        }
        _ if !m.batches.is_empty() => Err(SendError::UnexpectedBatches {
            batches: m.batches.len(),
        }),
        _ => Ok(()),
    }
}

/// The bytes a message carries fit one frame.
fn check_batch_bytes(m: &GroupMessage) -> Result<(), SendError> {
    let bytes = m.batch_bytes();
    if bytes > APPEND_BATCH_BYTES_MAX {
        return Err(SendError::TooLarge {
            bytes,
            max: APPEND_BATCH_BYTES_MAX,
        });
    }
    Ok(())
}

/// Dials `peer`, writes what is queued for it, and dials again when the connection is
/// lost, until the transport stops.
async fn run_writer(inner: Rc<Inner>, peer: Rc<Peer>) {
    let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
    while !inner.stopped.get() {
        let addr = peer.addr.get();
        let dial = future::or(
            async {
                Some(
                    TcpStream::connect_timeout(addr, Duration::from_millis(CONNECT_TIMEOUT_MS))
                        .await,
                )
            },
            async {
                inner.stopped().await;
                None
            },
        )
        .await;
        match dial {
            None => return,
            Some(Ok(mut stream)) => {
                let _ = stream.set_nodelay(true);
                if let Err(e) = set_dead_peer_timeouts(stream.as_raw_fd()) {
                    tracing::debug!(peer = peer.id, error = %e, "tcp timeouts not set");
                }
                if peer.ever_connected.replace(true) || peer.state.get() == PeerState::Down {
                    add(&inner.counters.reconnects, 1);
                }
                peer.state.set(PeerState::Connected);
                let frames_before = peer.frames_written.get();
                let lost = future::or(
                    async { write_loop(&inner, &peer, &mut stream).await.is_err() },
                    async {
                        inner.stopped().await;
                        false
                    },
                )
                .await;
                let _ = stream.shutdown(std::net::Shutdown::Both).await;
                if inner.stopped.get() {
                    return;
                }
                if lost {
                    tracing::debug!(peer = peer.id, %addr, "replication connection lost");
                }
                // Calls in flight on the lost connection may never be answered.
                peer.state.set(PeerState::Connecting);
                inner.fail_calls(peer.id);
                // A connection that carried frames was healthy: dial again soon. One
                // that failed at once (a peer that accepts and closes) backs off.
                if peer.frames_written.get() != frames_before {
                    backoff_ms = RECONNECT_BACKOFF_MS_MIN;
                }
                if !inner.backoff(&mut backoff_ms).await {
                    return;
                }
            }
            Some(Err(e)) => {
                add(&inner.counters.connect_failures, 1);
                tracing::debug!(peer = peer.id, %addr, error = %e, "cannot dial peer");
                peer.state.set(PeerState::Down);
                // Queued calls cannot go anywhere now; queued replies and messages wait.
                peer.control.borrow_mut().retain(|c| c.call_id.is_none());
                inner.fail_calls(peer.id);
                if !inner.backoff(&mut backoff_ms).await {
                    return;
                }
            }
        }
    }
}

/// Says hello, then writes queued frames as they come, until a write fails or the
/// transport stops.
async fn write_loop(inner: &Inner, peer: &Peer, stream: &mut TcpStream) -> std::io::Result<()> {
    let hello = encode_hello(inner.config.node_id, inner.local_addr);
    write_all_vectored(stream, &hello, &[]).await?;
    add(&inner.counters.bytes_sent, hello.len() as u64);
    loop {
        while !peer.has_work() {
            let woken = future::or(async { Some(peer.wake.acquire(1).await.is_ok()) }, async {
                glommio::timer::sleep(Duration::from_millis(PEER_HEARTBEAT_MS)).await;
                None
            })
            .await;
            match woken {
                Some(true) => {}
                Some(false) => return Ok(()),
                None => {
                    // Idle: the broker-pair heartbeat, an empty messages frame.
                    let (head, _) = encode_messages(inner.config.node_id, &[]);
                    write_all_vectored(stream, &head, &[]).await?;
                    add(&peer.frames_written, 1);
                    add(&inner.counters.frames_sent, 1);
                    add(&inner.counters.bytes_sent, head.len() as u64);
                }
            }
        }
        // Calls and replies first: they are few and small, and a caller waits.
        loop {
            let Some(frame) = peer.control.borrow_mut().pop_front() else {
                break;
            };
            write_all_vectored(stream, &frame.bytes, &[]).await?;
            add(&peer.frames_written, 1);
            add(&inner.counters.frames_sent, 1);
            add(&inner.counters.bytes_sent, frame.bytes.len() as u64);
        }
        let batch = take_frame_messages(inner, peer);
        if batch.is_empty() {
            continue;
        }
        let (head, tail) = encode_messages(inner.config.node_id, &batch);
        let frame_bytes = head.len() + tail.iter().map(|b| b.len()).sum::<usize>();
        debug_assert!(frame_bytes <= FRAME_BYTES_MAX);
        debug_assert!(head.len() >= FRAME_HEADER_BYTES);
        write_all_vectored(stream, &head, &tail).await?;
        add(&peer.frames_written, 1);
        add(&inner.counters.frames_sent, 1);
        add(&inner.counters.messages_sent, batch.len() as u64);
        add(&inner.counters.bytes_sent, frame_bytes as u64);
    }
}

/// Takes the queued messages that fit one frame: all of them, up to
/// [`MESSAGES_PER_FRAME_MAX`] and the frame byte target (at least one message).
fn take_frame_messages(inner: &Inner, peer: &Peer) -> Vec<GroupMessage> {
    let mut queue = peer.messages.borrow_mut();
    let mut out = Vec::with_capacity(queue.len().min(MESSAGES_PER_FRAME_MAX));
    let mut bytes = FRAME_OVERHEAD_BYTES_BOUND;
    while let Some((_, b)) = queue.front() {
        let b = *b;
        if out.len() >= MESSAGES_PER_FRAME_MAX
            || (!out.is_empty() && bytes + b > inner.config.frame_bytes_target)
        {
            break;
        }
        if let Some((m, _)) = queue.pop_front() {
            out.push(m);
            bytes += b;
            peer.queued_bytes.set(peer.queued_bytes.get() - b);
        }
    }
    out
}

/// Accepts inbound connections until the transport stops.
async fn accept_loop(inner: Rc<Inner>, listener: TcpListener) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            inner.stopped().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                if inner.inbound_open.get() >= INBOUND_CONNECTIONS_MAX {
                    tracing::warn!(
                        "more than {INBOUND_CONNECTIONS_MAX} replication connections; closing one"
                    );
                    continue;
                }
                inner.inbound_open.set(inner.inbound_open.get() + 1);
                let inner2 = Rc::clone(&inner);
                glommio::spawn_local(async move {
                    let _ = future::or(serve_inbound(&inner2, stream), async {
                        inner2.stopped().await;
                        Ok(())
                    })
                    .await;
                    inner2.inbound_open.set(inner2.inbound_open.get() - 1);
                    inner2.inbound_closed.signal(1);
                })
                .detach();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "replication accept failed");
                // Out of descriptors, typically: give the shard a moment.
                glommio::timer::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS_MIN)).await;
            }
        }
    }
}

/// Why an inbound connection ended.
#[derive(thiserror::Error, Debug)]
enum InboundError {
    #[error("{0}")]
    Read(#[from] ReadFrameError),
    #[error("no hello within {HELLO_TIMEOUT_MS} ms")]
    HelloTimeout,
    #[error("the first frame was not a hello: {0}")]
    NoHello(String),
}

/// Reads one inbound connection: hello, then frames.
async fn serve_inbound(inner: &Rc<Inner>, mut stream: TcpStream) -> Result<(), InboundError> {
    let mut reader = FrameReader::default();
    let hello = future::or(async { Some(reader.next(&mut stream).await) }, async {
        glommio::timer::sleep(Duration::from_millis(HELLO_TIMEOUT_MS)).await;
        None
    })
    .await
    .ok_or(InboundError::HelloTimeout)??;
    add(&inner.counters.bytes_received, hello.len() as u64);
    let from = match decode_frame(&hello) {
        Ok(Frame::Hello {
            node_id,
            listen_addr,
        }) => {
            // Replies go on our own connection to the caller: a broker we do not know
            // yet (one joining the cluster) is dialled back where its hello says.
            if let Some(mut addr) = listen_addr {
                if addr.ip().is_unspecified() {
                    if let Ok(source) = stream.peer_addr() {
                        addr.set_ip(source.ip());
                    }
                }
                if !inner.peers.borrow().contains_key(&node_id) {
                    inner.set_peer(node_id, addr);
                }
            }
            node_id
        }
        Ok(other) => {
            add(&inner.counters.frames_rejected, 1);
            return Err(InboundError::NoHello(format!("{other:?}")));
        }
        Err(e) => {
            add(&inner.counters.frames_rejected, 1);
            return Err(InboundError::NoHello(e.to_string()));
        }
    };
    if let Err(e) = set_dead_peer_timeouts(stream.as_raw_fd()) {
        tracing::debug!(peer = from, error = %e, "tcp timeouts not set");
    }
    let superseded = Rc::new(Semaphore::new(0));
    let older = inner
        .inbound_by_peer
        .borrow_mut()
        .insert(from, Rc::clone(&superseded));
    if let Some(older) = older {
        older.close();
    }
    inner.liveness.heard(from);
    let r = future::or(read_frames(inner, from, reader, &mut stream), async {
        let _ = superseded.acquire(1).await;
        tracing::debug!(peer = from, "older replication connection closed");
        Ok(())
    })
    .await;
    inner.liveness.connection_lost(from);
    let mut by_peer = inner.inbound_by_peer.borrow_mut();
    if by_peer
        .get(&from)
        .is_some_and(|s| Rc::ptr_eq(s, &superseded))
    {
        by_peer.remove(&from);
    }
    r
}

/// Frames after the hello, until the peer closes or the framing is lost.
async fn read_frames(
    inner: &Rc<Inner>,
    from: NodeId,
    mut reader: FrameReader,
    stream: &mut TcpStream,
) -> Result<(), InboundError> {
    loop {
        let bytes = match reader.next(stream).await {
            Ok(b) => b,
            Err(ReadFrameError::Closed) => return Ok(()),
            Err(e) => {
                if matches!(e, ReadFrameError::Framing(_)) {
                    add(&inner.counters.frames_rejected, 1);
                }
                return Err(e.into());
            }
        };
        add(&inner.counters.bytes_received, bytes.len() as u64);
        inner.liveness.heard(from);
        match decode_frame(&bytes) {
            Ok(frame) => {
                add(&inner.counters.frames_received, 1);
                handle_frame(inner, from, frame);
            }
            Err(e) => {
                add(&inner.counters.frames_rejected, 1);
                tracing::debug!(peer = from, error = %e, "replication frame skipped");
            }
        }
    }
}

fn handle_frame(inner: &Rc<Inner>, from: NodeId, frame: Frame) {
    match frame {
        Frame::Messages {
            from: sender,
            messages,
        } => {
            if sender != from {
                add(&inner.counters.frames_rejected, 1);
                tracing::debug!(
                    peer = from,
                    sender,
                    "messages frame names another sender than its hello; skipped"
                );
                return;
            }
            add(&inner.counters.messages_received, messages.len() as u64);
            if !messages.is_empty() {
                inner.inbound.messages(from, messages);
            }
        }
        Frame::Call { id, payload } => {
            if inner.inbound_calls.get() >= INBOUND_CALLS_MAX {
                inner.queue_reply(
                    from,
                    id,
                    Err(format!(
                        "broker is answering {INBOUND_CALLS_MAX} calls already; try again"
                    )),
                );
                return;
            }
            inner.inbound_calls.set(inner.inbound_calls.get() + 1);
            let answer = inner.inbound.call(from, payload);
            let inner = Rc::clone(inner);
            glommio::spawn_local(async move {
                let result = answer.await;
                inner.inbound_calls.set(inner.inbound_calls.get() - 1);
                inner.queue_reply(from, id, result);
            })
            .detach();
        }
        Frame::Reply { id, result } => inner.complete_call(from, id, result),
        Frame::Hello { .. } => {
            add(&inner.counters.frames_rejected, 1);
        }
    }
}
