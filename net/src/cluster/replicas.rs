//! This shard's replicas of partition groups: made when a partition hosted here is
//! opened, stopped when it is closed, ticked by one timer per shard, and fed the
//! messages shard 0's transport receives for them.
//!
//! Idle groups cost nothing: the tick loop ticks only the groups that are awake (not
//! quiescent), and a tick only wakes a replica's driver when its state machine has
//! work. A quiescent group leaves the set once its leadership and in-sync set are
//! reported; any input that wakes it (a message, a produce, a lapse the failure
//! detector reports) puts it back.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use strata_engine::raft_hard_state::read_hard_state;
use strata_engine::shard::Shard;
use strata_engine::Log;
use strata_raft::{Config, Membership, NodeId, Raft, Term};

use crate::broker::Broker;
use crate::cluster::reassignment::{self, PartitionGoals};
use crate::cluster::replicated_log::{Outbox, ReplicatedLog};
use crate::cluster::{raft_config, TICK_MS};
use crate::errors::WireError;
use crate::metadata::partition_dir;
use crate::replication::{GroupId, GroupMessage};
use strata_schema::ErrorCode;

/// How often (in ticks) a leader compares its in-sync set with what it last reported.
const ISR_CHECK_TICKS: u64 = 20;
/// Pause before a replica stopped by a passing error starts again.
const REATTACH_AFTER_MS: u64 = 1_000;

/// A partition: its topic and index.
type PartitionKey = (String, u32);

/// The partition replicas of one shard, stored with `Shard::insert_local`.
#[derive(Default)]
pub struct ShardReplicas {
    by_partition: RefCell<HashMap<PartitionKey, Rc<ReplicatedLog>>>,
    by_group: RefCell<HashMap<GroupId, Rc<ReplicatedLog>>>,
    /// The shard's one outbox, shared by its replicas so that everything they send in
    /// one pass of the executor makes one hop to shard 0.
    outbox: RefCell<Option<Rc<ShardOutbox>>>,
    /// What the controller was last told of each partition this shard leads.
    reported: RefCell<HashMap<GroupId, (Term, Vec<NodeId>)>>,
    /// The groups the tick loop ticks: every group not (yet) quiescent.
    awake: RefCell<HashSet<GroupId>>,
    ticking: Cell<bool>,
    /// Partitions whose replica failed to start (or restart), with when the healer
    /// tries again and the back-off that led there.
    unstarted: RefCell<HashMap<PartitionKey, (Instant, u64)>>,
}

impl ShardReplicas {
    /// This shard's replicas (created on first use).
    pub fn of(shard: &Shard) -> Rc<ShardReplicas> {
        if let Some(r) = shard.local::<ShardReplicas>() {
            return r;
        }
        let r = Rc::new(ShardReplicas::default());
        shard.insert_local(Rc::clone(&r));
        r
    }

    /// Keeps `group` in the tick loop (a quiescent group with a reassignment or an
    /// election to carry out); it leaves again once quiet with nothing to do.
    pub fn keep_awake(&self, group: GroupId) {
        if self.by_group.borrow().contains_key(&group) {
            self.awake.borrow_mut().insert(group);
        }
    }

    /// The shard's outbox (made on first use).
    pub(crate) fn outbox(&self, shard: &Shard) -> Rc<ShardOutbox> {
        self.outbox
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(ShardOutbox::new(shard.clone())))
            .clone()
    }

    /// The replica of a partition, if this shard hosts one.
    pub fn get(&self, topic: &str, partition: u32) -> Option<Rc<ReplicatedLog>> {
        self.by_partition
            .borrow()
            .get(&(topic.to_owned(), partition))
            .cloned()
    }

    /// Every replica on this shard, with its partition.
    pub fn all(&self) -> Vec<(PartitionKey, Rc<ReplicatedLog>)> {
        self.by_partition
            .borrow()
            .iter()
            .map(|(k, r)| (k.clone(), Rc::clone(r)))
            .collect()
    }

    /// Delivers messages received for groups on this shard; a group not hosted here
    /// (yet) drops them: its leader resends.
    pub fn deliver(&self, messages: Vec<GroupMessage>) {
        for m in messages {
            let replica = self.by_group.borrow().get(&m.group).cloned();
            match replica {
                Some(r) => r.receive(m.message, m.batches),
                None => tracing::trace!(group = %m.group, "message for a group not hosted here"),
            }
        }
    }

    /// The failure detector lost broker `node`: every replica here hears of it (those
    /// it concerns wake up and are ticked again).
    pub fn broker_lapsed(&self, node: NodeId) {
        let replicas: Vec<Rc<ReplicatedLog>> = self.by_group.borrow().values().cloned().collect();
        for r in replicas {
            r.broker_lapsed(node);
        }
    }

    fn start_ticking(self: &Rc<Self>, shard: &Shard) {
        if self.ticking.replace(true) {
            return;
        }
        let (me, shard) = (Rc::clone(self), shard.clone());
        glommio::spawn_local(async move {
            let mut ticks: u64 = 0;
            while !shard.is_stopping() {
                let tick = glommio::timer::sleep(Duration::from_millis(TICK_MS));
                futures_lite::future::or(tick, shard.stopped()).await;
                let replicas: Vec<Rc<ReplicatedLog>> = {
                    let by_group = me.by_group.borrow();
                    me.awake
                        .borrow()
                        .iter()
                        .filter_map(|g| by_group.get(g).cloned())
                        .collect()
                };
                ticks += 1;
                let check_isr = ticks.is_multiple_of(ISR_CHECK_TICKS);
                let drive = ticks.is_multiple_of(reassignment::DRIVE_TICKS);
                for r in replicas {
                    r.tick();
                    me.report_if_changed(&shard, &r, check_isr);
                    if drive {
                        reassignment::drive(&shard, &r);
                    }
                    if r.is_quiescent()
                        && me.reports_settled(&r)
                        && !reassignment::has_work(&shard, &r)
                    {
                        me.awake.borrow_mut().remove(r.group());
                    }
                }
            }
        })
        .detach();
    }

    /// Whether the controller knows what it should of this replica: nothing for a
    /// follower; for a leader, its term and its current in-sync set.
    fn reports_settled(&self, r: &ReplicatedLog) -> bool {
        let (role, term, _) = r.leadership();
        if role != strata_raft::Role::Leader {
            return true;
        }
        let reported = self.reported.borrow();
        reported
            .get(r.group())
            .is_some_and(|(t, isr)| *t == term && *isr == r.in_sync_replicas())
    }
}

impl ShardReplicas {
    /// Tells the controller when this shard's replica became a partition's leader, and
    /// (every `ISR_CHECK_TICKS`) when the leader's in-sync set changed, so Metadata
    /// answers on every broker name the leader and the in-sync replicas.
    fn report_if_changed(&self, shard: &Shard, r: &Rc<ReplicatedLog>, check_isr: bool) {
        let (role, term, leader) = r.leadership();
        if role != strata_raft::Role::Leader {
            let was_leading = self.reported.borrow_mut().remove(r.group());
            if let (
                Some((led_term, _)),
                GroupId::Partition {
                    topic_id,
                    partition,
                },
            ) = (was_leading, *r.group())
            {
                crate::cluster::stepped_down::note(
                    shard,
                    topic_id,
                    partition,
                    term.max(led_term),
                    leader,
                );
            }
            return;
        }
        let known = self.reported.borrow().get(r.group()).cloned();
        let stale_term = known.as_ref().is_none_or(|(t, _)| *t != term);
        if !stale_term && !check_isr {
            return;
        }
        let isr = r.in_sync_replicas();
        if !stale_term && known.as_ref().is_some_and(|(_, i)| *i == isr) {
            return;
        }
        self.reported
            .borrow_mut()
            .insert(*r.group(), (term, isr.clone()));
        let GroupId::Partition {
            topic_id,
            partition,
        } = *r.group()
        else {
            return;
        };
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let group = GroupId::Partition {
                topic_id,
                partition,
            };
            if !crate::cluster::node::report_leader(&shard, topic_id, partition, term, isr).await {
                // Told again at the next check.
                ShardReplicas::of(&shard)
                    .reported
                    .borrow_mut()
                    .remove(&group);
            }
        })
        .detach();
    }
}

/// Makes the replica of a partition just opened on this shard, if this broker is one
/// of its replicas. Called by the broker whenever it installs a partition's log.
pub async fn attach(broker: &Broker, key: &PartitionKey, log: &Log) -> Result<(), WireError> {
    let Some(cluster) = broker.config.cluster.as_ref() else {
        return Ok(());
    };
    let me = cluster.node_id;
    let meta = broker.topic_meta(&key.0)?;
    let Some(replicas) = meta.replicas.get(key.1 as usize) else {
        return Ok(());
    };
    let group = GroupId::Partition {
        topic_id: meta.id,
        partition: key.1,
    };
    // A reassignment's new replica starts outside the group's membership (the
    // replicas): its leader adds it as a learner.
    if !replicas.contains(&me) && !PartitionGoals::of(&broker.shard).is_adding(&group, me) {
        return Ok(());
    }
    let dir = partition_dir(&broker.config.data_dir, &key.0, key.1);
    let hard = read_hard_state(&dir)
        .await
        .map_err(WireError::from)?
        .unwrap_or_default();
    let membership = Membership::new(replicas).map_err(|e| {
        WireError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!("{}-{}: replicas {replicas:?}: {e}", key.0, key.1),
        )
    })?;
    let mut restored = log.raft_restored_state(hard, membership);
    // In the middle of a move the log's membership batches say who votes now, not the
    // image's replicas; elsewhere they agree, and the scan is skipped.
    if PartitionGoals::of(&broker.shard)
        .get(&group)
        .is_some_and(|g| g.target.is_some())
    {
        restored.memberships = log
            .raft_memberships(strata_engine::MEMBERSHIP_SCAN_BYTES_MAX)
            .await
            .map_err(WireError::from)?;
    }
    let fresh = restored.log_end_offset == 0 && restored.hard_state.term == 0;
    let cfg: Config = raft_config(me, &key.0, key.1);
    let raft = Raft::new(cfg, restored).map_err(|e| {
        WireError::new(
            ErrorCode::StorageError,
            format!("{}-{}: cannot restore the replica: {e}", key.0, key.1),
        )
    })?;
    let shard_replicas = ShardReplicas::of(&broker.shard);
    let outbox: Rc<dyn Outbox> = shard_replicas.outbox(&broker.shard);
    let replica = ReplicatedLog::new(
        group,
        log.clone(),
        dir,
        raft,
        outbox,
        None,
        crate::cluster::lag_ticks(broker),
    );
    // The preferred leader of a new group campaigns at once instead of waiting for
    // an election timeout.
    if fresh && replicas.first() == Some(&me) {
        replica.campaign_now();
    }
    let driver = Rc::clone(&replica);
    let (shard, key_again, log_again) = (broker.shard.clone(), key.clone(), log.clone());
    glommio::spawn_local(async move {
        let failed = Rc::clone(&driver).run().await;
        if let Some(e) = failed.filter(|e| e.heals()) {
            reattach_later(shard, key_again, log_again, driver, e).await;
        }
    })
    .detach();
    if let Some(old) = shard_replicas
        .by_partition
        .borrow_mut()
        .insert(key.clone(), Rc::clone(&replica))
    {
        old.stop();
    }
    shard_replicas
        .by_group
        .borrow_mut()
        .insert(group, Rc::clone(&replica));
    shard_replicas.awake.borrow_mut().insert(group);
    let awake = Rc::downgrade(&shard_replicas);
    replica.set_on_awake(Rc::new(move |g| {
        if let Some(r) = awake.upgrade() {
            r.awake.borrow_mut().insert(g);
        }
    }));
    shard_replicas.start_ticking(&broker.shard);
    Ok(())
}

/// [`attach`], and on failure a later attempt by the shard's healer (see
/// [`retry_unstarted`]) with back-off, so a replica that could not start (no
/// descriptors, say) does not wait for the next metadata change.
pub async fn attach_or_retry(broker: &Broker, key: &PartitionKey, log: &Log) {
    let replicas = ShardReplicas::of(&broker.shard);
    match attach(broker, key, log).await {
        Ok(()) => {
            if replicas.unstarted.borrow_mut().remove(key).is_some() {
                tracing::info!(topic = %key.0, partition = key.1, "replica started");
            }
        }
        Err(e) => {
            let mut unstarted = replicas.unstarted.borrow_mut();
            let backoff_ms = unstarted
                .get(key)
                .map_or(crate::partition_health::HEAL_BACKOFF_MS_MIN, |(_, b)| {
                    crate::partition_health::next_backoff_ms(*b)
                });
            if !unstarted.contains_key(key) {
                tracing::warn!(topic = %key.0, partition = key.1, error = %e.message, "replica not started; retrying with back-off");
            }
            let due = Instant::now() + Duration::from_millis(backoff_ms);
            unstarted.insert(key.clone(), (due, backoff_ms));
        }
    }
}

/// The healer's pass: starts again the replicas due whose partition is still open
/// here and hosted by this broker without a running replica.
pub async fn retry_unstarted(broker: &Broker) {
    let replicas = ShardReplicas::of(&broker.shard);
    let now = Instant::now();
    let due: Vec<PartitionKey> = replicas
        .unstarted
        .borrow()
        .iter()
        .filter(|(_, (at, _))| now >= *at)
        .map(|(k, _)| k.clone())
        .collect();
    for key in due {
        let running = replicas
            .by_partition
            .borrow()
            .get(&key)
            .is_some_and(|r| !r.is_stopped());
        let log = broker.open_log(&key);
        match log {
            Some(log) if !running => attach_or_retry(broker, &key, &log).await,
            // Started meanwhile, or no longer open here (closed, moved, deleted).
            _ => {
                replicas.unstarted.borrow_mut().remove(&key);
            }
        }
    }
}

/// A replica stopped by an error that passes (descriptors or memory ran out) starts
/// again from what its log and hard state hold, as after a restart of this broker —
/// which Raft is built for — once [`REATTACH_AFTER_MS`] passed, unless the partition
/// was closed or given another replica meanwhile. Retrying the Ready that failed
/// instead could leave a hole in the log the state machine believes written.
async fn reattach_later(
    shard: Shard,
    key: PartitionKey,
    log: Log,
    stopped: Rc<ReplicatedLog>,
    why: strata_engine::EngineError,
) {
    tracing::info!(partition = %format!("{}-{}", key.0, key.1), error = %why, "replica restarts in {REATTACH_AFTER_MS} ms");
    let pause = glommio::timer::sleep(Duration::from_millis(REATTACH_AFTER_MS));
    futures_lite::future::or(pause, shard.stopped()).await;
    if shard.is_stopping() {
        return;
    }
    let current = ShardReplicas::of(&shard)
        .by_partition
        .borrow()
        .get(&key)
        .cloned();
    if !current.is_some_and(|c| Rc::ptr_eq(&c, &stopped)) {
        return;
    }
    let broker = Broker::of(&shard);
    // Boxed: `attach` spawns the driver that may come back here.
    let again: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> =
        Box::pin(attach_or_retry(&broker, &key, &log));
    again.await;
}

/// Stops the replica of a partition being closed on this shard.
pub fn detach(shard: &Shard, key: &PartitionKey) {
    let Some(r) = shard.local::<ShardReplicas>() else {
        return;
    };
    let removed = r.by_partition.borrow_mut().remove(key);
    if let Some(replica) = removed {
        r.by_group.borrow_mut().remove(replica.group());
        r.awake.borrow_mut().remove(replica.group());
        replica.stop();
    }
}

/// The replica that must lead a partition for a client request here, or
/// NOT_LEADER_OR_FOLLOWER. `None` on a single-node broker (it leads everything).
pub fn leader_replica(
    broker: &Broker,
    topic: &str,
    partition: u32,
) -> Result<Option<Rc<ReplicatedLog>>, WireError> {
    if broker.config.cluster.is_none() {
        return Ok(None);
    }
    let replica = ShardReplicas::of(&broker.shard).get(topic, partition);
    match replica {
        Some(r) if r.is_leader() => Ok(Some(r)),
        Some(r) => {
            let (_, term, leader) = r.leadership();
            Err(WireError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "this broker does not lead {topic}-{partition} (leader: {}, epoch {term})",
                    leader.map_or("none yet".to_owned(), |l| l.to_string())
                ),
            ))
        }
        None => Err(WireError::new(
            ErrorCode::NotLeaderOrFollower,
            format!("this broker holds no replica of {topic}-{partition}"),
        )),
    }
}

/// Sends a replica's messages through shard 0's transport, gathering everything sent
/// during one pass of this shard's executor into one cross-shard hop.
pub struct ShardOutbox {
    shard: Shard,
    pending: Rc<RefCell<Vec<(NodeId, GroupMessage)>>>,
    flushing: Rc<Cell<bool>>,
}

/// Most messages waiting for the hop to shard 0; beyond it new ones are dropped.
const OUTBOX_PENDING_MAX: usize = 65_536;

impl ShardOutbox {
    /// An outbox for replicas on `shard`.
    pub fn new(shard: Shard) -> ShardOutbox {
        ShardOutbox {
            shard,
            pending: Rc::default(),
            flushing: Rc::default(),
        }
    }
}

impl Outbox for ShardOutbox {
    fn send(&self, messages: Vec<(NodeId, GroupMessage)>) {
        {
            let mut p = self.pending.borrow_mut();
            let room = OUTBOX_PENDING_MAX.saturating_sub(p.len());
            p.extend(messages.into_iter().take(room));
        }
        if self.flushing.replace(true) {
            return;
        }
        let (pending, flushing, shard) = (
            Rc::clone(&self.pending),
            Rc::clone(&self.flushing),
            self.shard.clone(),
        );
        glommio::spawn_local(async move {
            // Let the other replicas woken in this pass add theirs first.
            glommio::yield_if_needed().await;
            futures_lite::future::yield_now().await;
            let batch: Vec<(NodeId, GroupMessage)> = std::mem::take(&mut *pending.borrow_mut());
            flushing.set(false);
            if batch.is_empty() {
                return;
            }
            crate::cluster::node::send_from_any_shard(&shard, batch).await;
        })
        .detach();
    }
}

/// How long a stopping broker waits for its partitions' leadership to move.
const HAND_OFF_WAIT_MS: u64 = 2_000;

/// At a graceful shutdown: hands the leadership of every partition this shard leads
/// to its most caught-up in-sync follower, and waits (bounded) until it moved, so
/// producers see a new leader at once instead of after an election timeout.
pub async fn hand_off_leadership(shard: &Shard) {
    let Some(r) = shard.local::<ShardReplicas>() else {
        return;
    };
    let mut leading = Vec::new();
    for (_, replica) in r.all() {
        if !replica.is_leader() {
            continue;
        }
        if let Some(to) = replica.transfer_target() {
            if replica.transfer_leadership(to).is_ok() {
                leading.push(replica);
            }
        }
    }
    if leading.is_empty() {
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(HAND_OFF_WAIT_MS);
    while std::time::Instant::now() < deadline && leading.iter().any(|l| l.is_leader()) {
        // The shard's tick loop has stopped: tick here so the transfer makes progress.
        for l in &leading {
            l.tick();
        }
        glommio::timer::sleep(Duration::from_millis(TICK_MS / 2)).await;
    }
    let moved = leading.iter().filter(|l| !l.is_leader()).count();
    tracing::info!(moved, of = leading.len(), "leadership handed off");
}
