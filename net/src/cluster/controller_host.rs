//! The controller quorum's replica on this broker (shard 0): the metadata log under
//! `data_dir/__meta/cluster-metadata`, the image its committed records build, and the
//! command path — planned and committed on the quorum's leader, forwarded there from
//! every other broker.
//!
//! Commands are carried out one at a time on the leader, each against an image that
//! has applied the whole log (so two creates of one name cannot both pass), and a
//! command's reply goes out only once its records are applied here; the caller then
//! waits until its own image has applied as far (`ControllerReply::Ok::applied_offset`).

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::replication::LocalBoxFuture;
use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::sync::Semaphore;
use strata_engine::raft_hard_state::read_hard_state;
use strata_engine::{Durability, EngineError, Log, LogConfig, LogEnv};
use strata_raft::{Config, Membership, NodeId, Raft, Role, Term};
use strata_schema::{check_batch, validate_batch, ErrorCode, NativeBatchBuilder, ValidatedBatch};

use crate::cluster::metadata_snapshot::{self, MetadataSnapshot};
use crate::cluster::replicated_log::{Applier, Outbox, ReplicatedLog, SnapshotState};
use crate::controller::{
    decode_records, encode_records, plan, BrokerLiveness, ControllerCommand, ControllerError,
    ControllerReply, ControllerSettings, MetadataImage, MetadataRecord, ReplyPayload,
};
use crate::errors::WireError;
use crate::group_host::now_ms;
use crate::metadata::META_DIR;
use crate::replication::GroupId;

/// Directory of the metadata log under `__meta`.
pub const METADATA_LOG_DIR: &str = "cluster-metadata";
/// How long a command waits for the image to catch up with the log before planning.
const CATCH_UP_WAIT_MS: u64 = 10_000;
/// `broker.session.timeout.ms` (Kafka's default): a broker silent this long is fenced.
pub const BROKER_SESSION_TIMEOUT_MS: i64 = 9_000;
/// How often the leader looks for silent brokers.
const LIVENESS_CHECK_MS: u64 = 1_000;

/// What the host calls when the image changed (the node publishes it to the shards).
pub trait ImageListener {
    /// The image after applying the log up to `applied_offset`.
    fn image_changed(&self, image: &MetadataImage, applied_offset: u64) -> LocalBoxFuture<()>;
}

/// The controller group's replica on this broker.
pub struct ControllerHost {
    me: NodeId,
    replica: RefCell<Option<Rc<ReplicatedLog>>>,
    state: Rc<HostState>,
    /// One command at a time on the leader.
    lock: Semaphore,
    settings: RefCell<ControllerSettings>,
    entropy_counter: Cell<u64>,
}

/// What the applier and the command path share.
struct HostState {
    image: RefCell<MetadataImage>,
    applied_end: Cell<u64>,
    waiters: RefCell<Vec<(u64, LocalSender<()>)>>,
    liveness: RefCell<BrokerLiveness>,
    listener: RefCell<Option<Rc<dyn ImageListener>>>,
    leader_since: Cell<Option<Term>>,
    /// Where this replica's snapshots of the image are (see `metadata_snapshot`).
    snapshot_dir: PathBuf,
    /// Bytes of log applied since the newest snapshot before the next is written.
    snapshot_interval_bytes: u64,
    applied_bytes_since_snapshot: Cell<u64>,
    /// Term of the entry at `applied_end - 1`.
    applied_term: Cell<Term>,
    /// End of the newest snapshot (0: none yet).
    snapshot_end: Cell<u64>,
}

impl ControllerHost {
    /// Opens the metadata log and restores the replica (the newest snapshot of the
    /// image, then the log above it); `voters` is the quorum; a new snapshot is
    /// written every `snapshot_interval_bytes` of applied log.
    pub async fn open(
        me: NodeId,
        data_dir: &std::path::Path,
        voters: &[NodeId],
        env: LogEnv,
        outbox: Rc<dyn Outbox>,
        settings: ControllerSettings,
        snapshot_interval_bytes: u64,
    ) -> Result<Rc<ControllerHost>, WireError> {
        let dir: PathBuf = data_dir.join(META_DIR).join(METADATA_LOG_DIR);
        let log = Log::open(&dir, LogConfig::default(), env)
            .await
            .map_err(WireError::from)?;
        let snapshot_dir = metadata_snapshot::snapshot_dir(&dir);
        let snapshot = restore_snapshot(&log, &snapshot_dir).await?;
        let membership = Membership::new(voters).map_err(|e| {
            WireError::new(
                ErrorCode::InvalidConfig,
                format!("controller quorum {voters:?}: {e}"),
            )
        })?;
        let (image, snapshot_end, snapshot_term) = match snapshot {
            Some(s) => (s.image, s.end_offset, s.term),
            None => (MetadataImage::new(), 0, 0),
        };
        let state = Rc::new(HostState {
            image: RefCell::new(image),
            applied_end: Cell::new(snapshot_end),
            waiters: RefCell::new(Vec::new()),
            liveness: RefCell::new(BrokerLiveness::new()),
            listener: RefCell::new(None),
            leader_since: Cell::new(None),
            snapshot_dir,
            snapshot_interval_bytes: snapshot_interval_bytes.max(1),
            applied_bytes_since_snapshot: Cell::new(0),
            applied_term: Cell::new(snapshot_term),
            snapshot_end: Cell::new(snapshot_end),
        });
        let seed = ReplicaSeed {
            me,
            log,
            dir,
            membership,
            outbox,
        };
        let replica = seed.replica(&state).await?;
        let host = Rc::new(ControllerHost {
            me,
            replica: RefCell::new(Some(replica)),
            state,
            lock: Semaphore::new(1),
            settings: RefCell::new(settings),
            entropy_counter: Cell::new(0),
        });
        glommio::spawn_local(Rc::clone(&host).supervise(seed)).detach();
        Ok(host)
    }

    /// Runs the replica; one stopped by an error that passes (descriptors or memory
    /// ran out, say while writing its hard state) is rebuilt from what its log and
    /// hard state hold, as after a restart, once [`REBUILD_AFTER_MS`] passed (and
    /// again while rebuilding fails). Anything else leaves it stopped: the broker
    /// then counts as a silent member of the quorum.
    async fn supervise(self: Rc<Self>, seed: ReplicaSeed) {
        loop {
            let failed = self.replica().run().await;
            let Some(e) = failed.filter(EngineError::heals) else {
                return;
            };
            tracing::warn!(error = %e, "controller replica stopped; rebuilding it in {REBUILD_AFTER_MS} ms");
            loop {
                glommio::timer::sleep(Duration::from_millis(REBUILD_AFTER_MS)).await;
                match seed.replica(&self.state).await {
                    Ok(replica) => {
                        let old = self.replica();
                        replica.set_observers(&old.inspect(|r| r.observers().to_vec()));
                        *self.replica.borrow_mut() = Some(replica);
                        tracing::info!("controller replica rebuilt");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message, "controller replica not rebuilt yet")
                    }
                }
            }
        }
    }

    /// Sets who is told of image changes.
    pub fn set_listener(&self, listener: Rc<dyn ImageListener>) {
        *self.state.listener.borrow_mut() = Some(listener);
    }

    /// Replaces the settings commands are validated with (dynamic broker configs).
    pub fn set_settings(&self, settings: ControllerSettings) {
        *self.settings.borrow_mut() = settings;
    }

    /// The controller group's replica.
    pub fn replica(&self) -> Rc<ReplicatedLog> {
        self.replica
            .borrow()
            .clone()
            .expect("the replica is set when the host opens")
    }

    /// The metadata image as this replica has applied it (a copy).
    pub fn image(&self) -> MetadataImage {
        self.state.image.borrow().clone()
    }

    /// The quorum's leader as this replica knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.replica().leadership().2
    }

    /// Resolves once the image has applied the log up to `offset` (or after `wait_ms`).
    pub async fn wait_applied(&self, offset: u64, wait_ms: u64) -> bool {
        if self.state.applied_end.get() >= offset {
            return true;
        }
        let (tx, rx) = local_channel::new_bounded(1);
        self.state.waiters.borrow_mut().push((offset, tx));
        let timer = glommio::timer::sleep(Duration::from_millis(wait_ms));
        futures_lite::future::or(
            async {
                let _ = rx.recv().await;
            },
            async {
                timer.await;
            },
        )
        .await;
        self.state.applied_end.get() >= offset
    }

    /// One tick of the controller group (shard 0's timer).
    pub fn tick(&self) {
        self.replica().tick();
    }

    /// Fresh randomness for new topic ids (distinct even within one millisecond).
    fn entropy(&self) -> u64 {
        let n = self.entropy_counter.get().wrapping_add(1);
        self.entropy_counter.set(n);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut rng = strata_raft::SplitMix64::new(nanos ^ n.rotate_left(32) ^ self.me);
        rng.next_u64()
    }

    /// Carries out `cmd` if this replica leads the quorum; otherwise says who does.
    pub async fn submit_local(&self, cmd: ControllerCommand) -> ControllerReply {
        let replica = self.replica();
        if !replica.is_leader() {
            return ControllerReply::NotController {
                leader: replica.leadership().2.filter(|l| *l != self.me),
            };
        }
        let Ok(_one_at_a_time) = self.lock.acquire_permit(1).await else {
            return not_available("the broker is stopping");
        };
        // A new leader's image trails its log until its first entry commits.
        let log_end = replica.log().log_end_offset() as u64;
        if !self.wait_applied(log_end, CATCH_UP_WAIT_MS).await {
            return not_available("the controller's metadata image is still catching up");
        }
        if let ControllerCommand::BrokerHeartbeat { id, .. } = &cmd {
            self.state.liveness.borrow_mut().heartbeat(*id, now_ms());
        }
        let planned = {
            let image = self.state.image.borrow();
            plan(
                &image,
                &cmd,
                &self.settings.borrow(),
                now_ms(),
                self.entropy(),
            )
        };
        let records = match planned {
            Ok(r) => r,
            Err(e) => return ControllerReply::Err(e),
        };
        self.commit(records).await
    }

    /// Appends `records` as one entry of the metadata log and waits until they are
    /// committed and applied here.
    async fn commit(&self, records: Vec<MetadataRecord>) -> ControllerReply {
        let payload = ReplyPayload::of(&records);
        if records.is_empty() {
            return ControllerReply::Ok {
                applied_offset: self.state.applied_end.get(),
                payload,
            };
        }
        let value = encode_records(&records);
        let mut builder = NativeBatchBuilder::new();
        builder.push(now_ms(), None, Some(&value), &[]);
        let batch = match builder
            .try_build()
            .map_err(|e| e.to_string())
            .and_then(|b| ValidatedBatch::new(b).map_err(|e| e.to_string()))
        {
            Ok(b) => b,
            Err(e) => {
                return ControllerReply::Err(ControllerError::new(
                    ErrorCode::InvalidRequest,
                    42,
                    format!("the metadata records do not fit a batch: {e}"),
                ))
            }
        };
        let replica = self.replica();
        let info = match replica.append(batch, Durability::Durable, 1).await {
            Ok(info) => info,
            Err(e) if e.code == ErrorCode::NotLeaderOrFollower => {
                return ControllerReply::NotController {
                    leader: replica.leadership().2.filter(|l| *l != self.me),
                }
            }
            Err(e) => return not_available(&e.message),
        };
        let end = info.last_offset as u64 + 1;
        if !self.wait_applied(end, CATCH_UP_WAIT_MS).await {
            return not_available("the committed metadata was not applied in time");
        }
        ControllerReply::Ok {
            applied_offset: end,
            payload,
        }
    }

    /// On the leader: fences brokers whose heartbeats stopped. Runs until the shard stops.
    pub async fn watch_liveness(self: Rc<Self>, shard: strata_engine::shard::Shard) {
        while !shard.is_stopping() {
            let tick = glommio::timer::sleep(Duration::from_millis(LIVENESS_CHECK_MS));
            futures_lite::future::or(tick, shard.stopped()).await;
            let replica = self.replica();
            let (role, term, _) = replica.leadership();
            if role != Role::Leader {
                self.state.leader_since.set(None);
                continue;
            }
            if self.state.leader_since.get() != Some(term) {
                // A new leader gives every broker a full session before fencing it.
                self.state.leader_since.set(Some(term));
                *self.state.liveness.borrow_mut() = BrokerLiveness::new();
            }
            let records = {
                let image = self.state.image.borrow();
                self.state.liveness.borrow_mut().fence_records(
                    &image,
                    now_ms(),
                    BROKER_SESSION_TIMEOUT_MS,
                )
            };
            if records.is_empty() {
                continue;
            }
            let Ok(_one_at_a_time) = self.lock.acquire_permit(1).await else {
                return;
            };
            tracing::warn!(?records, "fencing silent brokers");
            let _ = self.commit(records).await;
        }
    }
}

/// Pause before a controller replica stopped by a passing error is rebuilt.
const REBUILD_AFTER_MS: u64 = 1_000;

/// What a controller replica is (re)built from: its log stays open across rebuilds.
struct ReplicaSeed {
    me: NodeId,
    log: Log,
    dir: PathBuf,
    membership: Membership,
    outbox: Rc<dyn Outbox>,
}

impl ReplicaSeed {
    /// A replica restored from the log and the hard state, applying to `state`.
    async fn replica(&self, state: &Rc<HostState>) -> Result<Rc<ReplicatedLog>, WireError> {
        let hard = read_hard_state(&self.dir)
            .await
            .map_err(WireError::from)?
            .unwrap_or_default();
        let restored = self.log.raft_restored_state(hard, self.membership.clone());
        let raft = Raft::new(
            Config::new(self.me, self.me.wrapping_mul(0x2545_F491_4F6C_DD1D)),
            restored,
        )
        .map_err(|e| {
            WireError::new(
                ErrorCode::StorageError,
                format!(
                    "cannot restore the controller replica from {}: {e}",
                    self.dir.display()
                ),
            )
        })?;
        let applier: Rc<dyn Applier> = Rc::new(ControllerApplier {
            state: Rc::clone(state),
        });
        let replica = ReplicatedLog::new(
            GroupId::Controller,
            self.log.clone(),
            self.dir.clone(),
            raft,
            Rc::clone(&self.outbox),
            Some(applier),
            u32::MAX,
        );
        replica.set_snapshot_state(Rc::new(ControllerSnapshots {
            state: Rc::clone(state),
        }));
        Ok(replica)
    }
}

/// Reads the newest snapshot of the image and squares the log with it: a log whose
/// restart behind an installed snapshot was lost to a crash restarts now; a log that
/// starts above every snapshot cannot rebuild the image and is refused.
async fn restore_snapshot(
    log: &Log,
    snapshot_dir: &std::path::Path,
) -> Result<Option<MetadataSnapshot>, WireError> {
    let read_dir = snapshot_dir.to_path_buf();
    let snapshot = glommio::executor()
        .spawn_blocking(move || metadata_snapshot::read_newest(&read_dir))
        .await
        .map_err(|e| {
            WireError::from(EngineError::io("read metadata snapshots", snapshot_dir, e))
        })?;
    let start = log.log_start_offset().max(0) as u64;
    let end = log.log_end_offset().max(0) as u64;
    let snapshot_end = snapshot.as_ref().map_or(0, |s| s.end_offset);
    if snapshot_end < start {
        return Err(WireError::new(
            ErrorCode::StorageError,
            format!(
                "the metadata log in {} starts at offset {start} but no whole snapshot of the \
                 image reaches it (newest ends at {snapshot_end}); the image cannot be rebuilt",
                log.dir().display()
            ),
        ));
    }
    if let Some(s) = snapshot.as_ref().filter(|s| s.end_offset > end) {
        let epoch_below = i32::try_from(s.term).unwrap_or(i32::MAX);
        log.restart_at(s.end_offset.min(i64::MAX as u64) as i64, epoch_below)
            .await
            .map_err(WireError::from)?;
        tracing::info!(
            end_offset = s.end_offset,
            "metadata log restarted at its installed snapshot"
        );
    }
    if let Some(s) = &snapshot {
        tracing::info!(
            end_offset = s.end_offset,
            term = s.term,
            "metadata image restored from its snapshot"
        );
    }
    Ok(snapshot)
}

/// Automatic leader balancing on the controller leader (see
/// `controller::leader_balance`), configured as Kafka's broker keys are.
#[derive(Clone, Copy, Debug)]
pub struct LeaderBalancing {
    pub check_interval_ms: u64,
    pub imbalance_percentage: u32,
}

impl ControllerHost {
    /// On the leader: every `check_interval_ms`, asks for the preferred-leader
    /// elections that bring each broker's leader imbalance within bounds. Runs until
    /// the shard stops.
    pub async fn watch_leader_balance(
        self: Rc<Self>,
        shard: strata_engine::shard::Shard,
        balancing: LeaderBalancing,
    ) {
        while !shard.is_stopping() {
            let tick = glommio::timer::sleep(Duration::from_millis(balancing.check_interval_ms));
            futures_lite::future::or(tick, shard.stopped()).await;
            if !self.replica().is_leader() {
                continue;
            }
            let Ok(_one_at_a_time) = self.lock.acquire_permit(1).await else {
                return;
            };
            let records = {
                let image = self.state.image.borrow();
                crate::controller::leader_balance::plan_leader_rebalance(
                    &image,
                    balancing.imbalance_percentage,
                )
            };
            if records.is_empty() {
                continue;
            }
            tracing::info!(
                elections = records.len(),
                "moving leaders back to their preferred replicas"
            );
            let _ = self.commit(records).await;
        }
    }
}

fn not_available(message: &str) -> ControllerReply {
    ControllerReply::Err(ControllerError::new(
        ErrorCode::NotController,
        41,
        message.to_owned(),
    ))
}

/// Applies committed metadata entries to the image.
struct ControllerApplier {
    state: Rc<HostState>,
}

/// Bytes read from the metadata log per read while applying.
const APPLY_READ_BYTES: usize = 4 * 1024 * 1024;

impl Applier for ControllerApplier {
    fn apply(&self, log: Log, from_offset: u64, end_offset: u64) -> LocalBoxFuture<()> {
        let state = Rc::clone(&self.state);
        Box::pin(async move {
            let mut next = from_offset.max(state.applied_end.get());
            while next < end_offset {
                let read = match log
                    .read(next as i64, APPLY_READ_BYTES, Some(end_offset as i64))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, offset = next, "cannot read the metadata log");
                        return;
                    }
                };
                if read.batches.is_empty() {
                    break;
                }
                for b in read.batches {
                    let Ok(h) = check_batch(&b) else {
                        tracing::error!(offset = next, "corrupt batch in the metadata log");
                        return;
                    };
                    let batch_end = h.base_offset as u64 + u64::from(h.last_offset_delta) + 1;
                    if !h.attributes.is_control() {
                        apply_batch(&state, &b, h.base_offset);
                    }
                    next = batch_end;
                    state.applied_term.set(h.leader_epoch.max(0) as Term);
                    let since = state.applied_bytes_since_snapshot.get();
                    state
                        .applied_bytes_since_snapshot
                        .set(since.saturating_add(b.len() as u64));
                }
            }
            state.applied_end.set(next.max(state.applied_end.get()));
            if state.applied_bytes_since_snapshot.get() >= state.snapshot_interval_bytes {
                take_snapshot(&state, &log).await;
            }
            publish(&state).await;
        })
    }
}

/// Tells the listener of the image and wakes the commands waiting for it.
async fn publish(state: &HostState) {
    let listener = state.listener.borrow().clone();
    if let Some(l) = listener {
        let fut = {
            let image = state.image.borrow();
            l.image_changed(&image, state.applied_end.get())
        };
        fut.await;
    }
    let applied = state.applied_end.get();
    let mut waiters = state.waiters.borrow_mut();
    waiters.retain(|(offset, tx)| {
        if *offset <= applied {
            let _ = tx.try_send(());
            false
        } else {
            true
        }
    });
}

/// Writes a snapshot of the image as applied, then moves the log start up to the
/// previous snapshot's end: one interval of log stays behind the newest snapshot, so
/// a follower that far behind catches up by appends rather than a whole image. The
/// replica's Raft log follows the engine log start (`ReplicatedLog`), and snapshots
/// below the new start are removed. A failed write is retried an interval later.
async fn take_snapshot(state: &HostState, log: &Log) {
    let (end, term) = (state.applied_end.get(), state.applied_term.get());
    let bytes = metadata_snapshot::encode(end, term, &state.image.borrow());
    let size_bytes = bytes.len();
    let dir = state.snapshot_dir.clone();
    let written = glommio::executor()
        .spawn_blocking(move || metadata_snapshot::write(&dir, end, term, &bytes))
        .await;
    state.applied_bytes_since_snapshot.set(0);
    if let Err(e) = written {
        tracing::error!(dir = %state.snapshot_dir.display(), error = %e, "cannot write a metadata snapshot");
        return;
    }
    let previous = state.snapshot_end.replace(end);
    tracing::info!(
        end_offset = end,
        term,
        size_bytes,
        "metadata snapshot written"
    );
    if previous as i64 > log.log_start_offset() {
        if let Err(e) = log.delete_records_before(previous as i64).await {
            tracing::warn!(error = %e, offset = previous, "metadata log start not moved");
        }
    }
    remove_snapshots_below(state, log.log_start_offset().max(0) as u64).await;
}

/// Removes the snapshots the log start passed (best effort: a leftover is harmless).
async fn remove_snapshots_below(state: &HostState, end_offset: u64) {
    let dir = state.snapshot_dir.clone();
    let removed = glommio::executor()
        .spawn_blocking(move || metadata_snapshot::remove_below(&dir, end_offset))
        .await;
    if let Err(e) = removed {
        tracing::warn!(dir = %state.snapshot_dir.display(), error = %e, "old metadata snapshots not removed");
    }
}

/// The controller group's snapshots: its image, in `metadata_snapshot` files.
struct ControllerSnapshots {
    state: Rc<HostState>,
}

impl SnapshotState for ControllerSnapshots {
    fn read(&self, end_offset: u64, term: Term) -> LocalBoxFuture<Option<Bytes>> {
        let dir = self.state.snapshot_dir.clone();
        Box::pin(async move {
            let read = glommio::executor()
                .spawn_blocking(move || metadata_snapshot::read(&dir, end_offset, term))
                .await;
            match read {
                Ok(bytes) => bytes.map(Bytes::from),
                Err(e) => {
                    tracing::warn!(error = %e, end_offset, "cannot read a metadata snapshot to send");
                    None
                }
            }
        })
    }

    fn check(&self, end_offset: u64, term: Term, bytes: &[u8]) -> bool {
        match metadata_snapshot::peek(bytes) {
            Ok(key) if key == (end_offset, term) => true,
            Ok(key) => {
                tracing::warn!(
                    ?key,
                    end_offset,
                    term,
                    "a metadata snapshot holds another key than it was sent as"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, end_offset, "a received metadata snapshot is damaged");
                false
            }
        }
    }

    fn install(
        &self,
        end_offset: u64,
        term: Term,
        bytes: Bytes,
    ) -> LocalBoxFuture<Result<(), EngineError>> {
        let state = Rc::clone(&self.state);
        Box::pin(async move {
            let corrupt = |detail: String| EngineError::Corrupt {
                path: state.snapshot_dir.clone(),
                position_bytes: 0,
                detail,
            };
            let snapshot = metadata_snapshot::decode(&bytes)
                .map_err(|e| corrupt(format!("the leader's snapshot at {end_offset}: {e}")))?;
            if (snapshot.end_offset, snapshot.term) != (end_offset, term) {
                return Err(corrupt(format!(
                    "the leader's snapshot sent as ({end_offset}, {term}) holds ({}, {})",
                    snapshot.end_offset, snapshot.term
                )));
            }
            let dir = state.snapshot_dir.clone();
            glommio::executor()
                .spawn_blocking(move || metadata_snapshot::write(&dir, end_offset, term, &bytes))
                .await
                .map_err(|e| {
                    EngineError::io("write a metadata snapshot", &state.snapshot_dir, e)
                })?;
            *state.image.borrow_mut() = snapshot.image;
            state.applied_end.set(end_offset);
            state.applied_term.set(term);
            state.snapshot_end.set(end_offset);
            state.applied_bytes_since_snapshot.set(0);
            remove_snapshots_below(&state, end_offset).await;
            tracing::info!(
                end_offset,
                term,
                "metadata image installed from the leader's snapshot"
            );
            publish(&state).await;
            Ok(())
        })
    }
}

fn apply_batch(state: &HostState, bytes: &[u8], base_offset: i64) {
    let records = validate_batch(bytes).and_then(|v| v.records());
    let view = match records {
        Ok(records) => records,
        Err(e) => {
            tracing::error!(offset = base_offset, error = %e, "undecodable metadata batch; skipped");
            return;
        }
    };
    for record in view {
        let Some(value) = record.value() else {
            continue;
        };
        match decode_records(value) {
            Ok(records) => {
                let mut image = state.image.borrow_mut();
                for r in &records {
                    if let Err(e) = image.apply(r) {
                        tracing::warn!(offset = base_offset, error = %e, "metadata record not applied");
                    }
                }
            }
            Err(e) => {
                tracing::error!(offset = base_offset, error = %e, "undecodable metadata records; skipped")
            }
        }
    }
}
