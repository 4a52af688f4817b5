//! One replica of one Raft group over a partition log: the `strata-raft` state machine
//! and the engine [`Log`] it governs, and the task that carries out each `Ready` in the
//! contract's order (log operations and hard state, messages, fsync, commit).
//!
//! The same driver runs partition groups (the high watermark is the commit offset) and
//! the controller group (which also applies committed entries to its metadata image,
//! through [`Applier`]). It lives on the shard that owns the log; nothing here is shared
//! with another thread.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use crate::replication::LocalBoxFuture;
use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use strata_engine::raft_hard_state::write_hard_state;
use strata_engine::{AppendInfo, AppendOptions, Durability, EngineError, Log};
use strata_raft::{
    Append, Entry, EntryKind, LogOp, Membership, MembershipChange, Message, MessageBody, NodeId,
    ProposeError, Raft, Ready, Role, Term, APPEND_ENTRIES_MAX,
};
use strata_schema::{check_batch, ErrorCode, ValidatedBatch};

use crate::errors::WireError;
use crate::group_host::now_ms;
use crate::replication::{GroupId, GroupMessage};

/// Most bytes of batches attached to one append; a follower far behind catches up in
/// appends of about this size, one in flight at a time.
pub const APPEND_BYTES_MAX: usize = 1024 * 1024;
/// Most received batches waiting for the `Ready` that writes them. The state machine
/// takes at most one append per follower round trip, so this is never reached in
/// practice; beyond it received batches are dropped (the leader resends).
pub const RECEIVED_BATCHES_MAX: usize = 2 * APPEND_ENTRIES_MAX;
/// Readies a produce waits for while a new leader has not written its leader-change
/// marker yet.
const SETTLE_RETRIES_MAX: usize = 8;

/// Where a replica's outgoing messages go (the broker-pair transport, via shard 0).
pub trait Outbox {
    /// Queues `messages` for their addressees; never blocks, may drop (Raft tolerates it).
    fn send(&self, messages: Vec<(NodeId, GroupMessage)>);
}

/// What a group does with committed entries beyond publishing the commit offset.
pub trait Applier {
    /// Applies the committed, durable entries `[from_offset, end_offset)` of `log`.
    fn apply(&self, log: Log, from_offset: u64, end_offset: u64) -> LocalBoxFuture<()>;
    /// Told after every Ready when the role, term or leader changed.
    fn leadership_changed(&self, _role: Role, _term: Term, _leader: Option<NodeId>) {}
}

/// The state a group's snapshots stand for (the controller's metadata image). A group
/// without one (a partition) snapshots to an empty log: the follower restarts its log
/// at the leader's log start and keeps nothing of what lay below.
pub trait SnapshotState {
    /// The bytes of this replica's snapshot ending at `end_offset` in `term`, if it
    /// holds that one (a leader attaches them to the snapshot it sends).
    fn read(&self, end_offset: u64, term: Term) -> LocalBoxFuture<Option<Bytes>>;
    /// Whether received `bytes` are whole and are the snapshot they were sent as (a
    /// damaged one is dropped before the state machine sees it).
    fn check(&self, end_offset: u64, term: Term, bytes: &[u8]) -> bool;
    /// Makes a leader's snapshot `bytes`, ending at `end_offset` in `term`, this
    /// replica's state, durably, before the log restarts there.
    fn install(
        &self,
        end_offset: u64,
        term: Term,
        bytes: Bytes,
    ) -> LocalBoxFuture<Result<(), EngineError>>;
}

/// Snapshots the state machine installed whose state waits for the Ready that
/// installs it, at most; beyond it a received snapshot is dropped unread (the leader
/// sends it again). A peer's queue may hold several the leader sent while this
/// replica was down, delivered in one burst when it is back.
const RECEIVED_SNAPSHOTS_MAX: usize = 16;

/// The replica of one group on this shard.
/// Called with a group that leaves quiescence (puts it back in the tick loop).
type AwakeHook = Rc<dyn Fn(GroupId)>;

pub struct ReplicatedLog {
    group: GroupId,
    log: Log,
    dir: PathBuf,
    raft: RefCell<Raft>,
    /// Batches received in appends, waiting for the `LogOp::Append` that writes them,
    /// by `(start offset, term)`.
    received: RefCell<BTreeMap<(u64, Term), Bytes>>,
    wake_tx: LocalSender<()>,
    wake_rx: RefCell<Option<LocalReceiver<()>>>,
    /// Bumped after every carried-out Ready; producers waiting for a new leader's marker
    /// wait on it.
    readies_done: Cell<u64>,
    settled_tx: RefCell<Vec<LocalSender<()>>>,
    outbox: Rc<dyn Outbox>,
    applier: Option<Rc<dyn Applier>>,
    last_leadership: Cell<(Role, Term, Option<NodeId>)>,
    stopped: Cell<bool>,
    /// Ticks after which a silent follower leaves the in-sync set.
    lag_ticks: u32,
    /// Told when an input left the group awake (not quiescent), so the shard's tick
    /// loop ticks it again.
    on_awake: RefCell<Option<AwakeHook>>,
    /// The engine log start the state machine was last told of (see
    /// [`follow_log_start`](Self::follow_log_start)).
    told_log_start: Cell<i64>,
    /// The highest log start a leader's append named (see
    /// [`follow_leader_log_start`](Self::follow_leader_log_start)).
    leader_log_start: Cell<u64>,
    /// What this group's snapshots carry; `None` for a partition.
    snapshot_state: RefCell<Option<Rc<dyn SnapshotState>>>,
    /// Snapshots received with their state, waiting for the `LogOp::InstallSnapshot`
    /// that installs them: `(end_offset, term, bytes)`.
    received_snapshots: RefCell<Vec<(u64, Term, Bytes)>>,
}

impl ReplicatedLog {
    /// A replica of `group` over `log` (in `dir`), driven by `raft`. Call [`run`](Self::run)
    /// on the owning shard to start carrying out its work.
    pub fn new(
        group: GroupId,
        log: Log,
        dir: PathBuf,
        raft: Raft,
        outbox: Rc<dyn Outbox>,
        applier: Option<Rc<dyn Applier>>,
        lag_ticks: u32,
    ) -> Rc<ReplicatedLog> {
        let (wake_tx, wake_rx) = local_channel::new_bounded(1);
        let leadership = (raft.role(), raft.term(), raft.leader());
        let told_log_start = log.log_start_offset();
        Rc::new(ReplicatedLog {
            group,
            log,
            dir,
            raft: RefCell::new(raft),
            received: RefCell::new(BTreeMap::new()),
            wake_tx,
            wake_rx: RefCell::new(Some(wake_rx)),
            readies_done: Cell::new(0),
            settled_tx: RefCell::new(Vec::new()),
            outbox,
            applier,
            last_leadership: Cell::new(leadership),
            stopped: Cell::new(false),
            lag_ticks,
            on_awake: RefCell::new(None),
            told_log_start: Cell::new(told_log_start),
            leader_log_start: Cell::new(0),
            snapshot_state: RefCell::new(None),
            received_snapshots: RefCell::new(Vec::new()),
        })
    }

    /// Sets the state this group's snapshots carry (the controller's image). Its log
    /// then follows its engine log start as a partition's does: whatever moves that
    /// start up must have written the snapshot ending there first.
    pub fn set_snapshot_state(&self, state: Rc<dyn SnapshotState>) {
        *self.snapshot_state.borrow_mut() = Some(state);
    }

    fn snapshot_state(&self) -> Option<Rc<dyn SnapshotState>> {
        self.snapshot_state.borrow().clone()
    }

    /// The group this replica belongs to.
    pub fn group(&self) -> &GroupId {
        &self.group
    }

    /// The partition (or metadata) log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// This replica's role, term and known leader.
    pub fn leadership(&self) -> (Role, Term, Option<NodeId>) {
        let r = self.raft.borrow();
        (r.role(), r.term(), r.leader())
    }

    /// Reads the state machine, for status answers (DescribeQuorum).
    pub fn inspect<R>(&self, f: impl FnOnce(&Raft) -> R) -> R {
        f(&self.raft.borrow())
    }

    /// On a leader whose whole log has committed, including an entry of its own term
    /// (its leader-change marker), and is written to the engine log: its term and
    /// the log's end. Everything an earlier leader left is then decided, so state
    /// replayed from `[start, end)` is the group's committed state. `None` otherwise.
    pub fn settled_leadership(&self) -> Option<(Term, u64)> {
        let r = self.raft.borrow();
        let end = r.log_end_offset();
        let settled = r.role() == Role::Leader
            && end > 0
            && r.commit_offset() >= end
            && r.epochs().term_at(end - 1) == Some(r.term())
            && self.log.log_end_offset() as u64 == end
            && self.log.high_watermark() as u64 >= end;
        settled.then(|| (r.term(), end))
    }

    /// Whether the driver stopped (the replica was detached, or an error stopped it).
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Whether this replica leads its group now.
    pub fn is_leader(&self) -> bool {
        self.raft.borrow().role() == Role::Leader
    }

    /// The members that are in sync: the leader itself and every voter that answered
    /// within the lag bound (only meaningful on the leader).
    pub fn in_sync_replicas(&self) -> Vec<NodeId> {
        let r = self.raft.borrow();
        let me = r.id();
        let mut isr = vec![me];
        for id in r.membership().voters.iter().copied() {
            if id == me {
                continue;
            }
            if let Some(p) = r.progress(id) {
                if p.ticks_since_contact <= self.lag_ticks {
                    isr.push(id);
                }
            }
        }
        isr.sort_unstable();
        isr
    }

    /// On the leader: whether voter `id` answered within the last `ticks` ticks (a
    /// follower whose broker just died is still in sync for the lag bound, but is
    /// not heard from).
    pub fn heard_within(&self, id: NodeId, ticks: u32) -> bool {
        let r = self.raft.borrow();
        r.role() == Role::Leader
            && r.progress(id)
                .is_some_and(|p| p.ticks_since_contact <= ticks)
    }

    /// Records `replica` is behind this leader's log end: 0 for the leader itself,
    /// `None` when this replica does not lead or does not track `replica`.
    pub fn replica_lag(&self, replica: NodeId) -> Option<i64> {
        let r = self.raft.borrow();
        if r.role() != Role::Leader {
            return None;
        }
        if replica == r.id() {
            return Some(0);
        }
        let end = r.log_end_offset();
        r.progress(replica)
            .map(|p| end.saturating_sub(p.match_end_offset).min(i64::MAX as u64) as i64)
    }

    /// The in-sync follower furthest along, to hand leadership to (leader only).
    pub fn transfer_target(&self) -> Option<NodeId> {
        let r = self.raft.borrow();
        let me = r.id();
        r.membership()
            .voters
            .iter()
            .copied()
            .filter(|id| *id != me)
            .filter_map(|id| r.progress(id).map(|p| (id, p.clone())))
            .filter(|(_, p)| p.ticks_since_contact <= self.lag_ticks)
            .max_by_key(|(_, p)| p.match_end_offset)
            .map(|(id, _)| id)
    }

    /// One tick of the shard's timer. Wakes the driver only when the tick left work,
    /// so ticking idle groups costs no task wake-ups.
    pub fn tick(&self) {
        let has_ready = {
            let mut raft = self.raft.borrow_mut();
            raft.tick();
            raft.has_ready()
        };
        if has_ready {
            let _ = self.wake_tx.try_send(());
        }
    }

    /// Whether the group is quiescent here: ticks would do nothing until an input wakes it.
    pub fn is_quiescent(&self) -> bool {
        self.raft.borrow().is_quiescent()
    }

    /// The broker-pair failure detector lost broker `node` (see `Raft::broker_lapsed`).
    pub fn broker_lapsed(&self, node: NodeId) {
        self.raft.borrow_mut().broker_lapsed(node);
        self.wake();
    }

    /// Calls `f` with the group id whenever an input leaves the group awake.
    pub fn set_on_awake(&self, f: AwakeHook) {
        *self.on_awake.borrow_mut() = Some(f);
    }

    /// Starts an election now (the preferred leader of a new group does, so it need
    /// not wait for a timeout).
    pub fn campaign_now(&self) {
        self.raft.borrow_mut().campaign_now();
        self.wake();
    }

    /// Hands leadership to `to` (graceful shutdown, preferred-leader election).
    pub fn transfer_leadership(&self, to: NodeId) -> Result<(), ProposeError> {
        let r = self.raft.borrow_mut().transfer_leadership(to);
        self.wake();
        r
    }

    /// Replicas outside the membership to keep up to date without counting them (the
    /// controller group's non-voter brokers).
    pub fn set_observers(&self, observers: &[NodeId]) {
        self.raft.borrow_mut().set_observers(observers);
        self.wake();
    }

    /// The group's membership as this replica knows it (in force once appended).
    pub fn membership(&self) -> Membership {
        self.raft.borrow().membership().clone()
    }

    /// Whether the last membership change is committed, so another may be proposed.
    pub fn membership_settled(&self) -> bool {
        let r = self.raft.borrow();
        r.membership_offset().is_none_or(|o| o < r.commit_offset())
    }

    /// Leader: proposes one membership step (reassignment); the driver writes its
    /// control batch with the next Ready.
    pub fn propose_membership(&self, change: MembershipChange) -> Result<(), ProposeError> {
        let r = self
            .raft
            .borrow_mut()
            .propose_membership(change)
            .map(|_| ());
        self.wake();
        r
    }

    /// A message for this group from the transport.
    pub fn receive(&self, message: Message, batches: Vec<Bytes>) {
        // A snapshot whose state was kept for its install: (end offset, term).
        let mut stashed = None;
        match (&message.body, self.snapshot_state()) {
            (MessageBody::Append(a), _) => {
                if a.log_start_offset > self.leader_log_start.get() {
                    self.leader_log_start.set(a.log_start_offset);
                }
                let mut received = self.received.borrow_mut();
                if received.len() + batches.len() <= RECEIVED_BATCHES_MAX {
                    for (e, b) in a.entries.iter().zip(batches) {
                        received.insert((e.start_offset, e.term), b);
                    }
                }
            }
            (MessageBody::Snapshot(meta), Some(state)) => {
                if !self.stash_snapshot(meta, state.as_ref(), batches) {
                    return;
                }
                stashed = Some((meta.end_offset, meta.term));
            }
            _ => {}
        }
        let mut raft = self.raft.borrow_mut();
        let start_before = raft.log_start_offset();
        if let Err(e) = raft.step(message) {
            tracing::debug!(group = %self.group, error = %e, "raft message refused");
        }
        if let Some(key) = stashed {
            // Installing resets the log to start at the snapshot's end.
            let installed = raft.log_start_offset() == key.0 && start_before != key.0;
            if !installed {
                // Not needed (the log holds it already, or it is stale): the state
                // is not kept for an install that will not come.
                let mut received = self.received_snapshots.borrow_mut();
                if let Some(i) = received.iter().rposition(|(e, t, _)| (*e, *t) == key) {
                    received.remove(i);
                }
            }
        }
        drop(raft);
        self.wake();
    }

    /// Keeps a received snapshot's state for its install; false (drop the message)
    /// when it came without it or damaged, or too many wait already.
    fn stash_snapshot(
        &self,
        meta: &strata_raft::SnapshotMeta,
        state: &dyn SnapshotState,
        batches: Vec<Bytes>,
    ) -> bool {
        // Without the state it stands for, a snapshot cannot be installed: the leader
        // sends it again when it finds this replica still behind.
        let Some(bytes) = batches
            .into_iter()
            .next()
            .filter(|b| state.check(meta.end_offset, meta.term, b))
        else {
            tracing::debug!(group = %self.group, end_offset = meta.end_offset, "a snapshot came without its state whole; dropped");
            return false;
        };
        let mut received = self.received_snapshots.borrow_mut();
        if received.len() >= RECEIVED_SNAPSHOTS_MAX {
            tracing::debug!(group = %self.group, end_offset = meta.end_offset, "too many snapshots wait for their install; dropped");
            return false;
        }
        received.push((meta.end_offset, meta.term, bytes));
        true
    }

    /// Leader: lets the followers hear of a log start moved outside the log
    /// (DeleteRecords) at once, waking the group if it was quiescent.
    pub fn announce_log_start(&self) {
        self.raft.borrow_mut().wake_up();
        self.wake();
    }

    fn wake(&self) {
        // A full channel means the driver is already awake.
        let _ = self.wake_tx.try_send(());
        if !self.raft.borrow().is_quiescent() {
            let hook = self.on_awake.borrow().clone();
            if let Some(f) = hook {
                f(self.group);
            }
        }
    }

    /// Stops the driver after the Ready in progress.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.wake();
    }

    /// Appends a client batch on the leader and resolves at `acks`: `Written` when the
    /// leader's own write is done (acks=1), `Durable` when the group committed it
    /// (acks=all). `min_insync` refuses an acks=all append while fewer replicas are in
    /// sync (NOT_ENOUGH_REPLICAS).
    pub async fn append(
        &self,
        batch: ValidatedBatch,
        durability: Durability,
        min_insync: usize,
    ) -> Result<AppendInfo, WireError> {
        if durability == Durability::Durable && self.is_leader() {
            let isr = self.in_sync_replicas();
            if isr.len() < min_insync {
                return Err(WireError::new(
                    ErrorCode::NotEnoughReplicas,
                    format!(
                        "{} has {} in-sync replicas ({isr:?}), min.insync.replicas is {min_insync}",
                        self.group,
                        isr.len()
                    ),
                ));
            }
        }
        // A new leader writes its leader-change marker before any proposal of its term;
        // until that Ready is carried out the engine's log end trails the state machine's.
        for _ in 0..SETTLE_RETRIES_MAX {
            let unsettled = {
                let raft = self.raft.borrow();
                raft.role() == Role::Leader
                    && raft.log_end_offset() != self.log.log_end_offset() as u64
            };
            if !unsettled {
                break;
            }
            self.settled().await;
        }
        let proposed_term = Cell::new(0u64);
        let info = self
            .log
            .append_proposed(
                batch,
                AppendOptions::new(Durability::Written),
                |base, offsets| {
                    let mut raft = self.raft.borrow_mut();
                    if raft.role() == Role::Leader && raft.log_end_offset() != base as u64 {
                        // Became leader while this append waited for room: its marker is not
                        // written yet. The client retries (NOT_LEADER_OR_FOLLOWER is retriable).
                        return Err(ProposeError::NotLeader { leader: None });
                    }
                    let entry = raft.propose(offsets)?;
                    debug_assert_eq!(entry.start_offset, base as u64);
                    proposed_term.set(entry.term);
                    Ok(entry.term as i32)
                },
            )
            .await
            .map_err(|e| self.append_error(e))?;
        let term = proposed_term.get();
        self.wake();
        if durability == Durability::Written {
            return Ok(info);
        }
        self.wait_committed(&info, term).await?;
        Ok(info)
    }

    fn append_error(&self, e: EngineError) -> WireError {
        match e {
            EngineError::Propose(ProposeError::NotLeader { leader }) => WireError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "this broker does not lead {} (leader: {})",
                    self.group,
                    leader.map_or("unknown".to_owned(), |l| l.to_string())
                ),
            ),
            EngineError::Propose(ProposeError::TransferInProgress(to)) => WireError::new(
                ErrorCode::NotLeaderOrFollower,
                format!("leadership of {} is moving to broker {to}", self.group),
            ),
            EngineError::Propose(p @ ProposeError::Backpressure { .. }) => {
                WireError::new(ErrorCode::RequestTimedOut, format!("{}: {p}", self.group))
            }
            EngineError::Propose(p) => {
                WireError::new(ErrorCode::InvalidRequest, format!("{}: {p}", self.group))
            }
            other => WireError::from(other),
        }
    }

    /// Waits until the batch `info` (proposed in `term`) is committed; fails if it was
    /// truncated away by a newer leader instead.
    async fn wait_committed(&self, info: &AppendInfo, term: Term) -> Result<(), WireError> {
        self.log
            .wait_for_data_beyond(info.last_offset)
            .await
            .map_err(WireError::from)?;
        if info.duplicate {
            return Ok(());
        }
        let kept = self.raft.borrow().epochs().term_at(info.base_offset as u64) == Some(term);
        if kept {
            Ok(())
        } else {
            Err(WireError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "the batch at offset {} of {} was replaced by a newer leader before it \
                     committed; retry on the new leader",
                    info.base_offset, self.group
                ),
            ))
        }
    }

    /// Resolves after the driver carried out its next Ready.
    async fn settled(&self) {
        let (tx, rx) = local_channel::new_bounded(1);
        self.settled_tx.borrow_mut().push(tx);
        self.wake();
        let _ = rx.recv().await;
    }

    /// The driver: carries out one Ready at a time until stopped; the error that
    /// stopped it, if one did.
    pub async fn run(self: Rc<Self>) -> Option<EngineError> {
        let rx = self.wake_rx.borrow_mut().take()?;
        loop {
            if self.stopped.get() {
                return None;
            }
            self.follow_leader_log_start().await;
            self.follow_log_start().await;
            let has_ready = self.raft.borrow().has_ready();
            if !has_ready {
                for tx in self.settled_tx.borrow_mut().drain(..) {
                    let _ = tx.try_send(());
                }
                // The channel closes only when the replica is dropped.
                rx.recv().await?;
                continue;
            }
            let ready = self.raft.borrow_mut().ready();
            // Boxed: the driver of an idle replica then holds a pointer-sized state
            // while it waits, not the engine futures of a whole Ready.
            if let Err(e) = Box::pin(self.carry_out(ready)).await {
                // The log is fenced or closed: the replica stops answering, which the
                // group sees as a silent member.
                tracing::warn!(group = %self.group, error = %e, "replica stopped");
                self.stopped.set(true);
                return Some(e);
            }
            self.readies_done.set(self.readies_done.get() + 1);
            for tx in self.settled_tx.borrow_mut().drain(..) {
                let _ = tx.try_send(());
            }
            self.note_leadership();
        }
    }

    /// Retention or DeleteRecords moved a partition's engine log start: compacts the
    /// state machine's log to the first batch boundary at or above it (never past what
    /// it applied; the rest at a later call), so a follower whose log ends below it is
    /// sent a snapshot and restarts its log there. Leader and followers each follow
    /// their own log's start. The controller group's start moves only once the
    /// snapshot of its image ending there is written (see [`SnapshotState`]).
    async fn follow_log_start(&self) {
        if !matches!(self.group, GroupId::Partition { .. }) && self.snapshot_state().is_none() {
            return;
        }
        let start = self.log.log_start_offset();
        if start <= self.told_log_start.get() {
            return;
        }
        let end = self.log.log_end_offset();
        // DeleteRecords may start the log inside a batch; the state machine's log
        // starts at the batch's end, where a follower can continue.
        let boundary = match self.log.read(start, 1, Some(end)).await {
            Ok(read) => read
                .batches
                .first()
                .and_then(|b| check_batch(b).ok())
                .map_or(start, |h| {
                    if h.base_offset < start {
                        h.base_offset + i64::from(h.last_offset_delta) + 1
                    } else {
                        h.base_offset
                    }
                }),
            // The start moved again meanwhile: the next call sees the new one.
            Err(_) => return,
        };
        let Ok(boundary) = u64::try_from(boundary) else {
            return;
        };
        let mut raft = self.raft.borrow_mut();
        let target = boundary.min(raft.applied_offset());
        if target > raft.log_start_offset() {
            if let Err(e) = raft.compact(target) {
                tracing::debug!(group = %self.group, error = %e, "raft log not compacted");
                return;
            }
        }
        if target == boundary {
            self.told_log_start.set(start);
        }
    }

    /// Follower of a partition: once it committed up to the log start its leader
    /// announced, moves its own log start there (Kafka's followers do the same), so
    /// records retention or DeleteRecords removed on the leader do not come back
    /// should this replica lead. Any leader's start is committed, and the same batch
    /// boundary in every replica's log.
    async fn follow_leader_log_start(&self) {
        if !matches!(self.group, GroupId::Partition { .. }) || self.is_leader() {
            return;
        }
        let leader_start = self.leader_log_start.get();
        let own_start = self.log.log_start_offset();
        let Ok(target) = i64::try_from(leader_start) else {
            return;
        };
        if target <= own_start || self.log.high_watermark() < target {
            return;
        }
        if let Err(e) = self.log.delete_records_before(target).await {
            tracing::debug!(group = %self.group, error = %e, "log start not moved to the leader's");
        }
    }

    fn note_leadership(&self) {
        let now = self.leadership();
        if now != self.last_leadership.get() {
            self.last_leadership.set(now);
            tracing::info!(group = %self.group, role = ?now.0, term = now.1, leader = ?now.2, "leadership");
            if let Some(a) = &self.applier {
                a.leadership_changed(now.0, now.1, now.2);
            }
        }
    }

    async fn carry_out(&self, ready: Ready) -> Result<(), EngineError> {
        for op in ready.log_ops {
            match op {
                LogOp::Truncate { end_offset } => {
                    self.log.truncate(end_offset as i64).await?;
                    self.received
                        .borrow_mut()
                        .retain(|(start, _), _| *start >= end_offset);
                }
                LogOp::Append(entries) => {
                    for e in entries {
                        self.write_entry(&e).await?;
                    }
                }
                LogOp::InstallSnapshot(meta) => {
                    let end = meta.end_offset;
                    if let Some(state) = self.snapshot_state() {
                        // `receive` steps a snapshot only with its state.
                        let bytes = {
                            let mut received = self.received_snapshots.borrow_mut();
                            let at = received
                                .iter()
                                .position(|(e, t, _)| (*e, *t) == (end, meta.term));
                            at.map(|i| received.remove(i).2)
                        };
                        let Some(bytes) = bytes else {
                            return Err(EngineError::Corrupt {
                                path: self.dir.clone(),
                                position_bytes: 0,
                                detail: format!(
                                    "raft installed the snapshot ending at {end} in term {} but its state never arrived",
                                    meta.term
                                ),
                            });
                        };
                        state.install(end, meta.term, bytes).await?;
                    }
                    // A partition's snapshot carries no data: its log is behind the
                    // leader's log start, so it drops it and continues empty there
                    // (the controller's, once its image is installed, does the same).
                    let epoch_below = i32::try_from(meta.term).unwrap_or(i32::MAX);
                    self.log
                        .restart_at(end.min(i64::MAX as u64) as i64, epoch_below)
                        .await?;
                    self.received
                        .borrow_mut()
                        .retain(|(start, _), _| *start >= end);
                    self.told_log_start.set(self.log.log_start_offset());
                    tracing::info!(group = %self.group, log_start_offset = end, "log restarted at the leader's log start");
                }
            }
        }
        if let Some(hs) = ready.hard_state {
            write_hard_state(&self.dir, hs).await?;
        }
        if !ready.messages.is_empty() {
            let mut out = Vec::with_capacity(ready.messages.len());
            for m in ready.messages {
                let to = m.to;
                out.push((to, self.attach_batches(m).await));
            }
            self.outbox.send(out);
        }
        if let Some(token) = ready.persist {
            self.log.sync().await?;
            self.raft.borrow_mut().persisted(token);
        }
        self.log.set_high_watermark(ready.commit_offset as i64);
        if ready.apply_end_offset > ready.apply_from_offset {
            if let Some(a) = &self.applier {
                a.apply(
                    self.log.clone(),
                    ready.apply_from_offset,
                    ready.apply_end_offset,
                )
                .await;
            }
        }
        Ok(())
    }

    /// Writes one entry the state machine appended: a batch received from the leader,
    /// this leader's own marker, or (already written) this leader's own proposal.
    async fn write_entry(&self, e: &Entry) -> Result<(), EngineError> {
        let end = self.log.log_end_offset() as u64;
        if e.start_offset < end {
            // This leader's own proposal: the engine wrote it when it was proposed.
            return Ok(());
        }
        let received = self.received.borrow_mut().remove(&(e.start_offset, e.term));
        if let Some(bytes) = received {
            self.log.append_replicated(bytes.to_vec()).await?;
            return Ok(());
        }
        let control = match &e.kind {
            EntryKind::Data => None,
            EntryKind::LeaderChange => {
                let me = self.raft.borrow().id();
                Some(strata_schema::leader_change_batch(
                    e.term as i32,
                    me,
                    now_ms(),
                ))
            }
            EntryKind::Membership(m) => Some(strata_schema::membership_batch(
                e.term as i32,
                &m.voters,
                &m.learners,
                now_ms(),
            )),
        };
        if let Some(marker) = control {
            let (start, term) = (e.start_offset, e.term);
            self.log
                .append_proposed(
                    marker,
                    AppendOptions::new(Durability::Written),
                    |base, n| {
                        if base as u64 != start || n != 1 {
                            return Err(ProposeError::NotLeader { leader: None });
                        }
                        Ok(term as i32)
                    },
                )
                .await?;
            return Ok(());
        }
        Err(EngineError::Corrupt {
            path: self.dir.clone(),
            position_bytes: 0,
            detail: format!(
                "raft appended [{}, {}) in term {} but its bytes never arrived",
                e.start_offset, e.end_offset, e.term
            ),
        })
    }

    /// Fills an append's entries with the batches it carries, read from the log.
    async fn attach_batches(&self, mut m: Message) -> GroupMessage {
        let mut batches = Vec::new();
        if let (MessageBody::Snapshot(meta), Some(state)) = (&m.body, self.snapshot_state()) {
            match state.read(meta.end_offset, meta.term).await {
                Some(bytes) => batches.push(bytes),
                // Sent without: the follower drops it, and the leader sends the
                // snapshot at its log start again when the follower stays behind.
                None => {
                    tracing::warn!(group = %self.group, end_offset = meta.end_offset, term = meta.term, "no snapshot at the log start to send")
                }
            }
        }
        if let MessageBody::Append(a) = &mut m.body {
            a.log_start_offset = a
                .log_start_offset
                .max(self.log.log_start_offset().max(0) as u64);
            if a.send_end_offset > a.prev_end_offset {
                match self
                    .log
                    .read(
                        a.prev_end_offset as i64,
                        APPEND_BYTES_MAX,
                        Some(a.send_end_offset as i64),
                    )
                    .await
                {
                    Ok(read) => fill_entries(a, read.batches, &mut batches),
                    Err(e) => {
                        tracing::debug!(group = %self.group, error = %e, "cannot read batches for an append");
                    }
                }
            }
        }
        GroupMessage {
            group: self.group,
            message: m,
            batches,
        }
    }
}

/// Lists `read` batches in the append (contiguous from its `prev_end_offset`), stopping
/// at the first that does not follow or at the entry bound.
fn fill_entries(a: &mut Append, read: Vec<Bytes>, out: &mut Vec<Bytes>) {
    let mut next = a.prev_end_offset;
    for b in read {
        if a.entries.len() >= APPEND_ENTRIES_MAX {
            break;
        }
        let Ok(h) = check_batch(&b) else { break };
        let start = h.base_offset as u64;
        let end = start + u64::from(h.last_offset_delta) + 1;
        if start != next || end > a.send_end_offset {
            break;
        }
        let kind = if !h.attributes.is_control() {
            EntryKind::Data
        } else if let Some((voters, learners)) = strata_schema::membership_of_batch(&b) {
            let m = Membership { voters, learners };
            if !m.is_well_formed() {
                break;
            }
            EntryKind::Membership(m)
        } else {
            EntryKind::LeaderChange
        };
        a.entries.push(Entry {
            start_offset: start,
            end_offset: end,
            term: h.leader_epoch.max(0) as u64,
            kind,
        });
        out.push(b);
        next = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a leader tells a follower about the batches it attaches: a membership
    /// batch travels as the membership it carries, a leader change as a leader change.
    #[test]
    fn appended_batches_are_listed_with_their_kind() {
        let mut membership = strata_schema::membership_batch(3, &[1, 2, 4], &[5], 0)
            .bytes()
            .to_vec();
        strata_schema::stamp_base_offset(&mut membership, 1);
        let marker = strata_schema::leader_change_batch(3, 1, 0);
        let batches = vec![
            Bytes::from(marker.bytes().to_vec()),
            Bytes::from(membership),
        ];
        let mut a = Append {
            prev_end_offset: 0,
            prev_term: 0,
            commit_offset: 0,
            send_end_offset: 2,
            entries: Vec::new(),
            log_start_offset: 0,
        };
        let mut out = Vec::new();
        fill_entries(&mut a, batches, &mut out);
        assert_eq!(out.len(), 2);
        let kinds: Vec<EntryKind> = a.entries.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                EntryKind::LeaderChange,
                EntryKind::Membership(Membership {
                    voters: vec![1, 2, 4],
                    learners: vec![5],
                })
            ]
        );
        assert_eq!((a.entries[1].start_offset, a.entries[1].term), (1, 3));
    }
}
