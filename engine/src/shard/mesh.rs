//! The cross-shard mesh: one bounded single-producer/single-consumer glommio channel
//! per ordered pair of shards, the messages that travel on it, and the per-peer table
//! that routes replies back to the task waiting for them.
//!
//! Why it is built this way (DESIGN.md, "Threads: one shard per core"):
//! - A job and everything it captures cross threads by ownership: the closure is
//!   boxed once and the box pointer travels in the channel; a captured `Vec` or
//!   `Bytes` keeps its heap buffer, nothing is copied or serialised.
//! - The channel is glommio's lock-free SPSC ring, and everything else here (pending
//!   table, reply slots, waiters) is shard-local `Rc`/`RefCell`: no locks on the path.
//! - A task is only ever woken by its own shard: a reply arrives as a message, the
//!   receiving shard's dispatcher fills the local reply slot and wakes the local
//!   waiter.
//! - Everything is bounded. A requester holds one permit per request in flight to a
//!   peer (`channel_capacity` permits per peer) and waits for one when all are taken:
//!   that is the back-pressure. The ring of each ordered pair is sized so that it can
//!   never be full (see [`ring_capacity`]), so a send never waits on the ring itself
//!   and a shard that exits can never leave a peer's sender stuck on a full ring.

use std::{
    any::Any,
    cell::{Cell, RefCell},
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

use futures_lite::{future::BoxedLocal, FutureExt};
use glommio::{
    channels::shared_channel::{
        self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
    },
    sync::{Semaphore, StaticPermit},
    GlommioError, ResourceType,
};

use super::{Shard, ShardError};
use crate::placement::ShardId;

/// A job's result, type-erased to cross the channel; `invoke_on` downcasts it back.
pub(super) type JobOutput = Box<dyn Any + Send>;

/// A job on its way to another shard. The closure is `Send`; the future it makes
/// runs on the target shard only and need not be.
pub(super) type RemoteJob = Box<dyn FnOnce(Shard) -> BoxedLocal<JobOutput> + Send>;

/// Why a job produced no output: the panic message, to be reported to the caller.
pub(super) type JobPanic = String;

/// Control messages a shard sends on each ring at most once: `MainDone` and `Stop`.
const CONTROL_MESSAGES_MAX: usize = 2;

/// What travels between two shards.
pub(super) enum Message {
    /// Run `job` and answer with a `Reply` carrying the same `id`.
    Request { id: u64, job: RemoteJob },
    /// The answer to one of the receiver's own `Request`s.
    Reply {
        id: u64,
        outcome: Result<JobOutput, JobPanic>,
    },
    /// The sender's main returned; it keeps serving until every main returned.
    MainDone,
    /// Stop was requested: the receiver resolves its `stopped()` futures.
    Stop,
}

/// Ring slots per ordered pair of shards. A ring from A to B holds at most
/// `channel_capacity` requests from A (A's permits for B), `channel_capacity` replies
/// to B's requests (B's permits for A), and A's control messages.
pub(super) fn ring_capacity(channel_capacity: usize) -> usize {
    2 * channel_capacity + CONTROL_MESSAGES_MAX
}

/// One shard's unconnected ends of the mesh, built on the launching thread and moved
/// to the shard's thread. Index = peer shard; `None` at the shard's own index.
pub(super) struct Wiring {
    senders: Vec<Option<SharedSender<Message>>>,
    receivers: Vec<Option<SharedReceiver<Message>>>,
}

/// One shard's connected ends of the mesh.
pub(super) struct ConnectedWiring {
    pub(super) senders: Vec<Option<ConnectedSender<Message>>>,
    pub(super) receivers: Vec<Option<ConnectedReceiver<Message>>>,
}

/// Creates the `shard_count * (shard_count - 1)` rings of a full mesh, each holding
/// `ring_slots` messages, and returns each shard's ends in shard order.
pub(super) fn wire(shard_count: usize, ring_slots: usize) -> Vec<Wiring> {
    let mut wirings: Vec<Wiring> = (0..shard_count)
        .map(|_| Wiring {
            senders: (0..shard_count).map(|_| None).collect(),
            receivers: (0..shard_count).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shard_count {
        for to in 0..shard_count {
            if from != to {
                let (sender, receiver) = shared_channel::new_bounded(ring_slots);
                wirings[from].senders[to] = Some(sender);
                wirings[to].receivers[from] = Some(receiver);
            }
        }
    }
    wirings
}

impl Wiring {
    /// Connects every end to this shard's executor. Each connect completes only when
    /// the peer connected its end too, so all are started before any is awaited:
    /// awaiting them one by one could wait on a peer that waits on us.
    pub(super) async fn connect(self) -> ConnectedWiring {
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|end| end.map(|end| glommio::spawn_local(end.connect())))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .map(|end| end.map(|end| glommio::spawn_local(end.connect())))
            .collect();
        let mut wiring = ConnectedWiring {
            senders: Vec::with_capacity(senders.len()),
            receivers: Vec::with_capacity(receivers.len()),
        };
        for task in senders {
            wiring.senders.push(match task {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        for task in receivers {
            wiring.receivers.push(match task {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        wiring
    }
}

/// This shard's side of its link to one peer.
pub(super) struct PeerLink {
    /// In an `Rc` only so the never-expected slow path of `post` can own it.
    sender: Rc<ConnectedSender<Message>>,
    /// In-flight requests to this peer; each pending entry holds one permit.
    permits: Rc<Semaphore>,
    pending: RefCell<PendingTable>,
    /// The peer's ring to us was closed: it exited (or died); nothing more comes.
    closed: Cell<bool>,
    /// The peer's main returned, or the peer is closed.
    done: Cell<bool>,
}

impl PeerLink {
    pub(super) fn new(sender: ConnectedSender<Message>, channel_capacity: usize) -> Self {
        Self {
            sender: Rc::new(sender),
            permits: Rc::new(Semaphore::new(channel_capacity as u64)),
            pending: RefCell::new(PendingTable::default()),
            closed: Cell::new(false),
            done: Cell::new(false),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Marks the peer done; true if it was not before.
    pub(super) fn mark_done(&self) -> bool {
        !self.done.replace(true)
    }

    /// Stops sending to this peer: it sees its ring from us end.
    pub(super) fn close_sender(&self) {
        self.sender.close();
    }

    /// Queues `message` for the peer without waiting. Err if the peer is gone.
    pub(super) fn post(&self, message: Message) -> Result<(), Message> {
        match self.sender.try_send(message) {
            Ok(()) => Ok(()),
            Err(GlommioError::WouldBlock(ResourceType::Channel(message))) => {
                // `ring_capacity` leaves room for every message the permits allow, so
                // this is a bug; still, losing a reply would hang its caller: wait.
                debug_assert!(
                    false,
                    "cross-shard ring full: the in-flight bound is broken"
                );
                let sender = Rc::clone(&self.sender);
                glommio::spawn_local(async move { sender.send(message).await }).detach();
                Ok(())
            }
            Err(GlommioError::Closed(ResourceType::Channel(message))) => Err(message),
            Err(_) => unreachable!("try_send fails only with WouldBlock or Closed"),
        }
    }

    /// Sends `job` to the peer and waits for its output.
    pub(super) async fn call(
        &self,
        peer: ShardId,
        job: RemoteJob,
    ) -> Result<JobOutput, ShardError> {
        if self.is_closed() {
            return Err(ShardError::ShardClosed { shard: peer });
        }
        let permit = self
            .permits
            .acquire_static_permit(1)
            .await
            .map_err(|_| ShardError::ShardClosed { shard: peer })?;
        if self.is_closed() {
            return Err(ShardError::ShardClosed { shard: peer });
        }
        let slot = Rc::new(ReplySlot::default());
        let id = self.pending.borrow_mut().insert(Pending {
            slot: Rc::clone(&slot),
            _permit: permit,
        });
        if self.post(Message::Request { id, job }).is_err() {
            let entry = self.pending.borrow_mut().remove(id);
            drop(entry); // releases the permit
            return Err(ShardError::ShardClosed { shard: peer });
        }
        ReplyFuture { slot }.await
    }

    /// Routes a reply from the peer to the task waiting for it.
    fn complete(&self, peer: ShardId, id: u64, outcome: Result<JobOutput, JobPanic>) {
        let entry = self.pending.borrow_mut().remove(id);
        match entry {
            Some(entry) => entry
                .slot
                .fulfil(outcome.map_err(|message| ShardError::JobPanicked {
                    shard: peer,
                    message,
                })),
            // A peer found dead had its requests failed already; its late replies
            // are dropped. From a live peer, an unknown id is a bug.
            None => debug_assert!(
                self.is_closed(),
                "reply {id} from shard {peer} matches no request"
            ),
        }
        // `entry` (and its permit) is dropped here: the next request may go.
    }

    /// The peer is gone: fail everything still waiting on it.
    fn fail_all(&self, peer: ShardId) {
        self.closed.set(true);
        let entries = self.pending.borrow_mut().take_all();
        for entry in entries {
            entry
                .slot
                .fulfil(Err(ShardError::ShardClosed { shard: peer }));
        }
    }
}

/// A request waiting for its reply.
struct Pending {
    slot: Rc<ReplySlot>,
    /// Held until the reply is routed (or the peer is gone), even if the caller
    /// stopped waiting: the request still occupies the peer until then.
    _permit: StaticPermit,
}

/// Requests in flight to one peer, indexed by request id. The id is the slot index,
/// reused only after its reply arrived, so a reply always finds its own request.
/// Bounded by the peer's permits.
#[derive(Default)]
struct PendingTable {
    slots: Vec<Option<Pending>>,
    free: Vec<usize>,
}

impl PendingTable {
    fn insert(&mut self, pending: Pending) -> u64 {
        let index = match self.free.pop() {
            Some(index) => {
                debug_assert!(self.slots[index].is_none());
                self.slots[index] = Some(pending);
                index
            }
            None => {
                self.slots.push(Some(pending));
                self.slots.len() - 1
            }
        };
        index as u64
    }

    fn remove(&mut self, id: u64) -> Option<Pending> {
        let index = usize::try_from(id).ok()?;
        let pending = self.slots.get_mut(index)?.take()?;
        self.free.push(index);
        Some(pending)
    }

    fn take_all(&mut self) -> Vec<Pending> {
        self.free.clear();
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Where a reply lands on the requesting shard.
#[derive(Default)]
struct ReplySlot {
    state: RefCell<ReplyState>,
}

#[derive(Default)]
struct ReplyState {
    outcome: Option<Result<JobOutput, ShardError>>,
    waker: Option<Waker>,
}

impl ReplySlot {
    fn fulfil(&self, outcome: Result<JobOutput, ShardError>) {
        let waker = {
            let mut state = self.state.borrow_mut();
            debug_assert!(state.outcome.is_none(), "a request is answered once");
            state.outcome = Some(outcome);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

struct ReplyFuture {
    slot: Rc<ReplySlot>,
}

impl Future for ReplyFuture {
    type Output = Result<JobOutput, ShardError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state.borrow_mut();
        match state.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                match &mut state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    waker => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// Runs a job, turning a panic into an error for its caller instead of letting it
/// unwind through (and kill) the shard's executor.
pub(super) async fn run_job(job: RemoteJob, shard: Shard) -> Result<JobOutput, JobPanic> {
    AssertUnwindSafe(async move { job(shard).await })
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(payload.as_ref()))
}

/// The text of a panic payload (`panic!` with a message gives `&str` or `String`).
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Serves the ring from `peer` until the peer closes it: runs requests as local
/// tasks, routes replies, records the peer's control messages. Never waits on
/// anything but the ring, so the ring always drains. (glommio's `spawn_local` polls
/// a new task once before returning, so a job that never waits runs right here.)
pub(super) async fn dispatch(shard: Shard, peer: ShardId, receiver: ConnectedReceiver<Message>) {
    while let Some(message) = receiver.recv().await {
        match message {
            Message::Request { id, job } => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let outcome = run_job(job, shard.clone()).await;
                    // If the requester is gone, so is anyone who wanted the output.
                    let _ = shard.inner.link(peer).post(Message::Reply { id, outcome });
                })
                .detach();
            }
            Message::Reply { id, outcome } => shard.inner.link(peer).complete(peer, id, outcome),
            Message::MainDone => shard.inner.peer_done(peer),
            Message::Stop => shard.inner.stop_event.set(),
        }
    }
    shard.inner.link(peer).fail_all(peer);
    shard.inner.peer_done(peer);
}

/// Polls the other shards' liveness and treats a dead one as gone: its pending
/// requests fail with `ShardClosed` and it no longer holds up the wind-down. Runs for
/// the shard's whole life. Polling (rather than a wake-up from the dying thread) is
/// deliberate: a shard is only ever woken by its own thread or by glommio's channels,
/// and a dead thread's channels may never say so.
pub(super) async fn watch_peers(shard: Shard, tick: std::time::Duration) {
    loop {
        glommio::timer::sleep(tick).await;
        for peer in 0..shard.shard_count() {
            if peer == shard.id() || !shard.inner.liveness.has_died(peer) {
                continue;
            }
            let link = shard.inner.link(peer);
            if !link.is_closed() {
                tracing::error!(
                    shard = shard.id(),
                    peer,
                    "peer shard died; failing its requests"
                );
                link.fail_all(peer);
                shard.inner.peer_done(peer);
            }
        }
    }
}
