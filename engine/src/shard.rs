//! The shard runtime: one glommio executor per core, nothing shared between them.
//!
//! [`run_shards`] starts one `LocalExecutor` thread per shard (pinned to its own core
//! unless told otherwise), wires every pair of shards with a bounded channel, runs the
//! application's `main` on every shard and returns their results. A [`Shard`] handle
//! is how code on a shard reaches the others: [`Shard::invoke_on`] runs a closure on
//! another shard and awaits its result, moving the closure and its buffers by
//! ownership. Everything a shard owns (partitions, indexes, caches) lives in
//! shard-local state ([`Shard::insert_local`]) behind `Rc`s, without locks.
//!
//! Lifetime: a shard whose `main` returned keeps serving other shards' requests until
//! every shard's `main` returned; then all shards close their channels and their
//! threads end. [`Shard::request_stop`] is how one shard asks all the others' `main`s
//! to return. A `main` that panics is reported as an error and requests a stop.

mod event;
mod flags;
mod mesh;

use std::{
    any::{Any, TypeId},
    cell::{Cell, RefCell},
    collections::HashMap,
    fmt,
    future::Future,
    panic::AssertUnwindSafe,
    rc::Rc,
    sync::{mpsc, Arc},
    time::Duration,
};

use futures_lite::FutureExt;
use glommio::{
    BuilderErrorKind, GlommioError, Latency, LocalExecutorBuilder, Shares, TaskQueueHandle,
};

use crate::placement::ShardId;
use event::LocalEvent;
use flags::{GateState, Liveness, StartGate, StopFlag};
use mesh::{Message, PeerLink, RemoteJob, Wiring};

/// Default bound on requests in flight from one shard to another (per ordered pair).
pub const CHANNEL_CAPACITY_DEFAULT: usize = 128;
/// Largest accepted `channel_capacity`. Each ordered pair of shards preallocates a
/// ring of `2 * channel_capacity + 2` slots (rounded up to a power of two), so mesh
/// memory grows with `shard_count² × channel_capacity`.
pub const CHANNEL_CAPACITY_MAX: usize = 1 << 14;
/// Largest accepted shard count (the mesh has `shard_count²` rings).
pub const SHARD_COUNT_MAX: usize = 1024;
/// Default I/O memory each executor registers with io_uring (glommio's default).
pub const IO_MEMORY_BYTES_DEFAULT: usize = 10 << 20;
/// Threads of each shard's blocking pool (`spawn_blocking`: directory listings, small
/// metadata files, fsyncs). glommio's default is one, which serialises a shard's
/// opens and closes of thousands of partitions behind one syscall at a time; these
/// threads mostly wait on the disk, so several per shard cost little CPU.
pub const BLOCKING_THREADS_DEFAULT: usize = 8;
/// Largest accepted `blocking_threads`.
pub const BLOCKING_THREADS_MAX: usize = 64;
/// Scheduler shares of the background task queue; the default queue has 1000, so
/// background work gets about 5% of a busy shard and all of an idle one.
const BACKGROUND_SHARES: usize = 50;
/// How often a starting shard checks whether every other shard started (startup only).
const START_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How often a shard checks whether a peer's thread died (see `mesh::watch_peers`):
/// the longest a caller waits on a dead shard before getting `ShardClosed`.
const LIVENESS_TICK: Duration = Duration::from_millis(100);

/// How to start the shards.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// Number of shards; 0 means one per core this process may run on.
    pub shard_count: usize,
    /// Pin shard `i` to the `i`-th available core. Needs `shard_count` ≤ cores.
    pub pin_to_cores: bool,
    /// Thread name prefix; threads are named `{name}-{shard}-…`.
    pub name: String,
    /// Requests in flight from one shard to another before `invoke_on` waits.
    pub channel_capacity: usize,
    /// I/O memory each executor registers with io_uring.
    pub io_memory_bytes: usize,
    /// Threads of each shard's blocking pool (on the shard's core when pinned).
    pub blocking_threads: usize,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self {
            shard_count: 0,
            pin_to_cores: true,
            name: "strata-shard".to_owned(),
            channel_capacity: CHANNEL_CAPACITY_DEFAULT,
            io_memory_bytes: IO_MEMORY_BYTES_DEFAULT,
            blocking_threads: BLOCKING_THREADS_DEFAULT,
        }
    }
}

/// Errors of the shard runtime.
#[derive(thiserror::Error, Debug)]
pub enum ShardError {
    /// The configuration cannot be started.
    #[error("invalid shard configuration: {reason}")]
    InvalidConfig { reason: String },
    /// More pinned shards than cores.
    #[error(
        "cannot pin {requested} shards to the {cores} cores this process may run on: \
         lower shard_count or set pin_to_cores = false"
    )]
    TooManyShards { requested: usize, cores: usize },
    /// A shard's thread or executor could not be created.
    #[error(
        "shard {shard} could not start: {reason} (check that io_uring is available, \
         that RLIMIT_MEMLOCK is at least 512 KiB and that the core is usable)"
    )]
    Spawn { shard: ShardId, reason: String },
    /// This shard was ready but gave up because another shard failed to start.
    #[error("shard {shard} did not run because another shard failed to start")]
    StartAborted { shard: ShardId },
    /// `invoke_on` was given a shard that does not exist.
    #[error("shard {shard} does not exist: this runtime has shards 0..{shard_count}")]
    BadShardId { shard: ShardId, shard_count: usize },
    /// The target shard has shut down (or is shutting down) and takes no more work.
    #[error("shard {shard} has shut down and takes no more work")]
    ShardClosed { shard: ShardId },
    /// The job panicked on the shard it ran on; that shard keeps serving.
    #[error("job on shard {shard} panicked: {message}")]
    JobPanicked { shard: ShardId, message: String },
    /// A shard's `main` panicked; a stop was requested on all shards.
    #[error("main of shard {shard} panicked: {message}")]
    MainPanicked { shard: ShardId, message: String },
    /// A shard's thread died from a panic outside any job or `main` (for example in
    /// a task the application spawned itself).
    #[error("shard {shard} died from a panic: {message}")]
    ShardPanicked { shard: ShardId, message: String },
}

impl ShardError {
    /// True for errors that are only a consequence of another shard's failure.
    fn is_consequence(&self) -> bool {
        matches!(self, Self::StartAborted { .. })
    }
}

/// Starts one glommio `LocalExecutor` per shard (pinned to its own core when
/// `pin_to_cores`), connects every pair of shards, runs `main(shard)` on every shard
/// and waits for all of them. Returns each shard's result in shard order, or the
/// first failure (a shard that could not start, or whose `main` panicked).
///
/// Blocks the calling thread, which must not be a shard thread.
pub fn run_shards<F, Fut, R>(config: ShardConfig, main: F) -> Result<Vec<R>, ShardError>
where
    F: Fn(Shard) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    let placements = plan_placements(&config)?;
    let shard_count = placements.len();
    let wirings = mesh::wire(shard_count, mesh::ring_capacity(config.channel_capacity));
    let gate = Arc::new(StartGate::new());
    let stop = Arc::new(StopFlag::new());
    let liveness = Arc::new(Liveness::new(shard_count));
    let (report_sender, reports) = mpsc::channel();

    let mut handles = Vec::with_capacity(shard_count);
    let mut first_error = None;
    for (id, (wiring, placement)) in wirings.into_iter().zip(placements).enumerate() {
        let setup = ShardSetup {
            id,
            shard_count,
            channel_capacity: config.channel_capacity,
            wiring,
            gate: Arc::clone(&gate),
            stop: Arc::clone(&stop),
            liveness: Arc::clone(&liveness),
        };
        let report = StartReport::new(report_sender.clone());
        let main = main.clone();
        let pool = blocking_pool(&placement, config.blocking_threads);
        let spawned = LocalExecutorBuilder::new(placement)
            .name(&format!("{}-{id}", config.name))
            .io_memory(config.io_memory_bytes)
            .blocking_thread_pool_placement(pool)
            .spawn(move || {
                report.started();
                run_shard(setup, main)
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(error) => {
                first_error = Some(ShardError::Spawn {
                    shard: id,
                    reason: error.to_string(),
                });
                break;
            }
        }
    }
    drop(report_sender);

    // Open the gate only when every executor exists: joining the mesh waits for all
    // peers, and one that failed to start would leave the others waiting forever.
    let mut started = 0;
    if first_error.is_none() {
        while started < shard_count {
            match reports.recv() {
                Ok(StartEvent::Started) => started += 1,
                Ok(StartEvent::Failed) | Err(_) => break,
            }
        }
    }
    gate.decide(started == shard_count);

    let mut results = Vec::with_capacity(handles.len());
    for (id, handle) in handles.into_iter().enumerate() {
        let outcome = match handle.join() {
            Ok(outcome) => outcome,
            Err(GlommioError::BuilderError(BuilderErrorKind::ThreadPanic(payload))) => {
                Err(ShardError::ShardPanicked {
                    shard: id,
                    message: mesh::panic_message(payload.as_ref()),
                })
            }
            Err(error) => Err(ShardError::Spawn {
                shard: id,
                reason: error.to_string(),
            }),
        };
        match outcome {
            Ok(result) => results.push(result),
            Err(error) => {
                let replace = match &first_error {
                    None => true,
                    Some(current) => current.is_consequence() && !error.is_consequence(),
                };
                if replace {
                    first_error = Some(error);
                }
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(results),
    }
}

/// The blocking pool of a shard placed at `placement`: `threads` threads, on the
/// shard's own core when it is pinned (so they never compete with another shard).
fn blocking_pool(placement: &glommio::Placement, threads: usize) -> glommio::PoolPlacement {
    match placement {
        glommio::Placement::Fixed(cpu) => match glommio::CpuSet::online() {
            Ok(online) => glommio::PoolPlacement::Fenced(threads, online.filter(|l| l.cpu == *cpu)),
            Err(_) => glommio::PoolPlacement::Unbound(threads),
        },
        _ => glommio::PoolPlacement::Unbound(threads),
    }
}

/// One glommio placement per shard, in shard order.
fn plan_placements(config: &ShardConfig) -> Result<Vec<glommio::Placement>, ShardError> {
    if config.blocking_threads == 0 || config.blocking_threads > BLOCKING_THREADS_MAX {
        return Err(ShardError::InvalidConfig {
            reason: format!(
                "blocking_threads is {}, it must be between 1 and {BLOCKING_THREADS_MAX}",
                config.blocking_threads
            ),
        });
    }
    if config.channel_capacity == 0 || config.channel_capacity > CHANNEL_CAPACITY_MAX {
        return Err(ShardError::InvalidConfig {
            reason: format!(
                "channel_capacity is {}, it must be between 1 and {CHANNEL_CAPACITY_MAX}",
                config.channel_capacity
            ),
        });
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if config.pin_to_cores && cores.is_empty() {
        return Err(ShardError::InvalidConfig {
            reason: "cannot list the cores this process may run on, so shards cannot be \
                     pinned; set pin_to_cores = false"
                .to_owned(),
        });
    }
    let shard_count = match config.shard_count {
        0 if cores.is_empty() => std::thread::available_parallelism().map_or(1, |n| n.get()),
        0 => cores.len(),
        n => n,
    };
    if shard_count > SHARD_COUNT_MAX {
        return Err(ShardError::InvalidConfig {
            reason: format!(
                "shard_count is {shard_count}, at most {SHARD_COUNT_MAX} are supported"
            ),
        });
    }
    if !config.pin_to_cores {
        return Ok(vec![glommio::Placement::Unbound; shard_count]);
    }
    if shard_count > cores.len() {
        return Err(ShardError::TooManyShards {
            requested: shard_count,
            cores: cores.len(),
        });
    }
    Ok(cores[..shard_count]
        .iter()
        .map(|core| glommio::Placement::Fixed(core.id))
        .collect())
}

/// What a shard thread is given to start with.
struct ShardSetup {
    id: ShardId,
    shard_count: usize,
    channel_capacity: usize,
    wiring: Wiring,
    gate: Arc<StartGate>,
    stop: Arc<StopFlag>,
    liveness: Arc<Liveness>,
}

thread_local! {
    /// Reports this thread's end to the other shards; see [`Liveness`].
    static EXIT_GUARD: RefCell<Option<ExitGuard>> = const { RefCell::new(None) };
}

/// Marks its shard dead when the shard's thread ends, unless the shard finished
/// normally first. Lives in a thread-local because that is the one thing glommio
/// drops on every way out of a shard thread, a panic in any task included.
struct ExitGuard {
    liveness: Arc<Liveness>,
    shard: ShardId,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.liveness.mark_died(self.shard);
    }
}

enum StartEvent {
    Started,
    Failed,
}

/// Tells the launching thread whether a shard's executor came up. glommio drops the
/// shard's start closure without calling it when the executor cannot be created; the
/// report inside the closure then says `Failed` from its destructor.
struct StartReport {
    sender: Option<mpsc::Sender<StartEvent>>,
}

impl StartReport {
    fn new(sender: mpsc::Sender<StartEvent>) -> Self {
        Self {
            sender: Some(sender),
        }
    }

    fn started(mut self) {
        if let Some(sender) = self.sender.take() {
            // The launcher stops listening only once it has decided; nothing to do.
            let _ = sender.send(StartEvent::Started);
        }
    }
}

impl Drop for StartReport {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(StartEvent::Failed);
        }
    }
}

/// Everything a shard thread runs: wait for the gate, join the mesh, serve peers, run
/// `main`, then wind down together with the other shards.
async fn run_shard<F, Fut, R>(setup: ShardSetup, main: F) -> Result<R, ShardError>
where
    F: Fn(Shard) -> Fut,
    Fut: Future<Output = R> + 'static,
{
    let id = setup.id;
    EXIT_GUARD.with(|guard| {
        *guard.borrow_mut() = Some(ExitGuard {
            liveness: Arc::clone(&setup.liveness),
            shard: id,
        });
    });
    loop {
        match setup.gate.state() {
            GateState::Open => break,
            GateState::Aborted => {
                setup.liveness.mark_exited(id);
                return Err(ShardError::StartAborted { shard: id });
            }
            GateState::Pending => glommio::timer::sleep(START_POLL_INTERVAL).await,
        }
    }
    let wiring = setup.wiring.connect().await;
    let peers = wiring
        .senders
        .into_iter()
        .map(|sender| sender.map(|sender| PeerLink::new(sender, setup.channel_capacity)))
        .collect();
    let background = glommio::executor().create_task_queue(
        Shares::Static(BACKGROUND_SHARES),
        Latency::NotImportant,
        "strata-background",
    );
    let shard = Shard {
        inner: Rc::new(ShardInner {
            id,
            shard_count: setup.shard_count,
            peers,
            peers_done: Cell::new(0),
            all_peers_done: LocalEvent::default(),
            closing: Cell::new(false),
            stop_flag: setup.stop,
            stop_event: LocalEvent::default(),
            liveness: setup.liveness,
            locals: RefCell::new(HashMap::new()),
            background,
        }),
    };
    if setup.shard_count == 1 {
        shard.inner.all_peers_done.set();
    }
    for (peer, receiver) in wiring.receivers.into_iter().enumerate() {
        if let Some(receiver) = receiver {
            glommio::spawn_local(mesh::dispatch(shard.clone(), peer, receiver)).detach();
        }
    }
    if setup.shard_count > 1 {
        glommio::spawn_local(mesh::watch_peers(shard.clone(), LIVENESS_TICK)).detach();
    }

    let main_shard = shard.clone();
    let outcome = AssertUnwindSafe(async move { main(main_shard).await })
        .catch_unwind()
        .await;
    if outcome.is_err() {
        shard.request_stop();
    }
    shard.inner.wind_down().await;
    outcome.map_err(|payload| ShardError::MainPanicked {
        shard: id,
        message: mesh::panic_message(payload.as_ref()),
    })
}

/// Handle to the current shard: cheap to clone, usable only on its own thread.
#[derive(Clone)]
pub struct Shard {
    inner: Rc<ShardInner>,
}

struct ShardInner {
    id: ShardId,
    shard_count: usize,
    /// Link to each peer, by shard id; `None` at this shard's own index.
    peers: Vec<Option<PeerLink>>,
    /// Peers whose main returned (or that are gone).
    peers_done: Cell<usize>,
    all_peers_done: LocalEvent,
    /// Set once this shard closed its rings: no more requests go out.
    closing: Cell<bool>,
    stop_flag: Arc<StopFlag>,
    /// This shard's copy of the stop signal, set by `request_stop` or a `Stop` message.
    stop_event: LocalEvent,
    liveness: Arc<Liveness>,
    locals: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
    background: TaskQueueHandle,
}

impl Shard {
    /// This shard's id, `0..shard_count()`.
    pub fn id(&self) -> ShardId {
        self.inner.id
    }

    /// Number of shards in this runtime.
    pub fn shard_count(&self) -> usize {
        self.inner.shard_count
    }

    /// Runs `job` on shard `target` and awaits its result.
    ///
    /// The closure and what it captures move to the target thread by ownership (a
    /// captured `Vec` keeps its heap buffer); the result comes back the same way.
    /// On the current shard the job runs inline, without crossing threads. Waits
    /// when `channel_capacity` requests to `target` are already in flight. If the
    /// caller stops waiting, the job still runs to completion on the target.
    ///
    /// Errors: `BadShardId`, `ShardClosed` if `target` has shut down, `JobPanicked`
    /// if the job panicked (the target shard keeps serving).
    pub async fn invoke_on<J, Fut, R>(&self, target: ShardId, job: J) -> Result<R, ShardError>
    where
        J: FnOnce(Shard) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if target >= self.shard_count() {
            return Err(ShardError::BadShardId {
                shard: target,
                shard_count: self.shard_count(),
            });
        }
        if target == self.id() {
            let shard = self.clone();
            return AssertUnwindSafe(async move { job(shard).await })
                .catch_unwind()
                .await
                .map_err(|payload| ShardError::JobPanicked {
                    shard: target,
                    message: mesh::panic_message(payload.as_ref()),
                });
        }
        if self.inner.closing.get() {
            return Err(ShardError::ShardClosed { shard: self.id() });
        }
        let remote: RemoteJob = Box::new(move |shard| {
            Box::pin(async move { Box::new(job(shard).await) as mesh::JobOutput })
        });
        let output = self.inner.link(target).call(target, remote).await?;
        let output = output
            .downcast::<R>()
            .expect("a reply carries the output type of the job that was sent");
        Ok(*output)
    }

    /// Stores `value` as this shard's value of type `T`, replacing any previous one.
    pub fn insert_local<T: 'static>(&self, value: Rc<T>) {
        let previous = self
            .inner
            .locals
            .borrow_mut()
            .insert(TypeId::of::<T>(), value);
        // Dropped after the borrow ends: its destructor may use this shard's locals.
        drop(previous);
    }

    /// This shard's value of type `T`, if one was inserted.
    pub fn local<T: 'static>(&self) -> Option<Rc<T>> {
        let value = self
            .inner
            .locals
            .borrow()
            .get(&TypeId::of::<T>())
            .cloned()?;
        value.downcast::<T>().ok()
    }

    /// Runs `fut` detached in this shard's low-priority background task queue
    /// (compaction, retention, index rebuild). A panic in it is logged, not fatal.
    pub fn spawn_background<Fut: Future<Output = ()> + 'static>(&self, fut: Fut) {
        let id = self.id();
        let guarded = async move {
            if let Err(payload) = AssertUnwindSafe(fut).catch_unwind().await {
                tracing::error!(
                    shard = id,
                    panic = %mesh::panic_message(payload.as_ref()),
                    "background task panicked"
                );
            }
        };
        match glommio::spawn_local_into(guarded, self.inner.background) {
            Ok(task) => task.detach(),
            // The queue is created with the shard and never removed.
            Err(error) => unreachable!("background task queue is gone: {error}"),
        };
    }

    /// Asks every shard's `main` to return: resolves `stopped()` on all shards.
    pub fn request_stop(&self) {
        self.inner.request_stop();
    }

    /// Resolves once a stop was requested, on any shard.
    pub async fn stopped(&self) {
        if self.is_stopping() {
            return;
        }
        self.inner.stop_event.wait().await;
    }

    /// Whether a stop was requested, on any shard.
    pub fn is_stopping(&self) -> bool {
        self.inner.stop_event.is_set() || self.inner.stop_flag.is_requested()
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id())
            .field("shard_count", &self.shard_count())
            .finish_non_exhaustive()
    }
}

impl ShardInner {
    fn link(&self, peer: ShardId) -> &PeerLink {
        self.peers[peer]
            .as_ref()
            .expect("a shard has no link to itself; callers route local work inline")
    }

    fn links(&self) -> impl Iterator<Item = &PeerLink> {
        self.peers.iter().flatten()
    }

    fn request_stop(&self) {
        self.stop_event.set();
        // Only the first request anywhere broadcasts, so each ring carries at most one
        // `Stop` (its slot is reserved in `mesh::ring_capacity`).
        if self.stop_flag.request() {
            for link in self.links() {
                // A peer that is gone has nothing left to stop.
                let _ = link.post(Message::Stop);
            }
        }
    }

    fn peer_done(&self, peer: ShardId) {
        if self.link(peer).mark_done() {
            let done = self.peers_done.get() + 1;
            debug_assert!(done < self.shard_count);
            self.peers_done.set(done);
            if done == self.shard_count - 1 {
                self.all_peers_done.set();
            }
        }
    }

    /// After this shard's `main` returned: keep serving until every peer's `main`
    /// returned too, then close this shard's rings and drop its local state while
    /// the executor is still running (so I/O objects in it close properly).
    async fn wind_down(&self) {
        for link in self.links() {
            // Each ring carries one `MainDone` (reserved in `mesh::ring_capacity`).
            let _ = link.post(Message::MainDone);
        }
        // Peers that died count as done too (`mesh::watch_peers`).
        self.all_peers_done.wait().await;
        self.closing.set(true);
        for link in self.links() {
            link.close_sender();
        }
        let locals = std::mem::take(&mut *self.locals.borrow_mut());
        drop(locals);
        self.liveness.mark_exited(self.id);
    }
}
