//! The group coordinators on their shards: the glommio layer around
//! [`groups::Coordinator`](crate::groups::Coordinator), which is plain logic.
//!
//! The coordinator of a group is the shard that owns partition
//! `coordinator_partition(group, n)` of `__consumer_offsets`; each such partition has
//! one [`Host`] on its owner shard: the coordinator, the partition's log, and the
//! join requests it holds. This layer only moves bytes and time:
//! - it replays the partition into the coordinator at startup (state survives a
//!   restart because every offset and every generation is a record there);
//! - it ticks every coordinator every `GROUP_TICK_MS` with the wall clock, which is
//!   what expires sessions and ends rebalances at their deadline;
//! - it appends the records the coordinator asks for as native batches, durably
//!   (fdatasync'ed, like acks=all), one append at a time per partition so the log
//!   holds them in the order the coordinator produced them;
//! - it parks a held request (a join, a Kafka SyncGroup) until the coordinator
//!   answers it, or the shard stops.
//!
//! In a cluster the coordinator follows the partition's Raft leader: a shard loads a
//! [`Host`] once its replica of the partition leads and everything earlier leaders
//! left has committed (replaying the committed log), and retires it as soon as the
//! replica stops leading in that term; requests then get NOT_COORDINATOR and clients
//! find the new coordinator. Its writes go through the replica with acks=all
//! semantics, and what waits on them is answered only once they committed.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalSender};
use glommio::sync::Semaphore;
use strata_engine::placement::ShardId;
use strata_engine::shard::Shard;
use strata_engine::{AppendOptions, Durability, Log};
use strata_raft::{Role, Term};
use strata_schema::{
    validate_batch, BatchHeader, ErrorCode, NativeBatchBuilder, PayloadFormat, ValidatedBatch,
};

use crate::broker::Broker;
use crate::cluster::replicas::ShardReplicas;
use crate::cluster::replicated_log::ReplicatedLog;
use crate::errors::WireError;
use crate::groups::{
    coordinator_partition, Answer, ClassicJoinRequest, ClassicJoinResponse, Commit,
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse, Coordinator,
    CoordinatorConfig, Effects, GroupDescription, GroupError, GroupListing, JoinRequest,
    JoinResponse, KafkaCommit, LeaveMember, OffsetValue, Record, SyncRequest, SyncResponse, Token,
    TopicPartition, REBALANCE_TIMEOUT_MS_MAX,
};
use crate::metadata::{Topics, CONSUMER_OFFSETS_TOPIC};

/// How often coordinators see the clock (session expiry granularity).
pub const GROUP_TICK_MS: u64 = 100;
/// A held join or sync gives up this long after its deadline (the coordinator
/// answers by the deadline; this only bounds a bug).
const JOIN_WAIT_SLACK_MS: u64 = 5_000;
/// Bytes read per step when replaying `__consumer_offsets`.
const REPLAY_READ_BYTES: usize = 1024 * 1024;
/// Records' bytes per appended batch at most.
const PERSIST_BATCH_BYTES_MAX: usize = 1024 * 1024;
/// Kafka's `offsets.commit.timeout.ms`: how long a replicated coordinator waits for
/// its write to commit before answering that it could not.
const OFFSETS_COMMIT_TIMEOUT_MS: u64 = 5_000;

/// Unix time in milliseconds: the only clock the coordinators see.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What a held request gets: the coordinator's answer, or why it cannot have one
/// (the records it depends on were not written, the coordinator moved).
type HeldAnswer = Result<Answer, WireError>;

/// The coordinator of one `__consumer_offsets` partition.
pub struct Host {
    partition: u32,
    /// The shard the host lives on (for the topic snapshot).
    shard: Shard,
    log: Log,
    /// In a cluster: the partition's Raft replica, which every write goes through,
    /// and the term it was leading in when this host was loaded. The host serves
    /// while that replica leads in that term.
    replica: Option<(Rc<ReplicatedLog>, Term)>,
    /// Set when the replica stopped leading: the host is gone from its shard.
    retired: Cell<bool>,
    coordinator: RefCell<Coordinator>,
    /// Held requests (joins, syncs), by token.
    waiters: RefCell<HashMap<Token, LocalSender<HeldAnswer>>>,
    /// One append at a time, in the order the records were produced.
    persisting: Semaphore,
}

/// This shard's coordinators, stored with `Shard::insert_local`.
#[derive(Default)]
pub struct GroupShard {
    hosts: RefCell<BTreeMap<u32, Rc<Host>>>,
    /// Partitions whose host is being loaded (cluster: just became leader).
    loading: RefCell<BTreeSet<u32>>,
    next_token: Cell<Token>,
    /// The topic snapshot whose partition counts the coordinators have.
    topics_seen: RefCell<Option<Arc<Topics>>>,
}

fn not_coordinator(why: String) -> WireError {
    WireError::new(ErrorCode::NotCoordinator, why)
}

/// Which shard and `__consumer_offsets` partition coordinate `group`.
pub fn coordinator_of(broker: &Broker, group: &str) -> Result<(ShardId, u32), WireError> {
    let topics = broker.topics();
    let meta = topics.get(CONSUMER_OFFSETS_TOPIC).ok_or_else(|| {
        if broker.config.cluster.is_some() {
            // The first group request of a cluster has the controller create it.
            crate::cluster::offsets_topic::request(broker);
            return not_coordinator(format!(
                "the group coordinator is not available yet: topic {CONSUMER_OFFSETS_TOPIC} is being created; retry"
            ));
        }
        not_coordinator(format!(
            "the group coordinator is not available: topic {CONSUMER_OFFSETS_TOPIC} does not exist"
        ))
    })?;
    let p = coordinator_partition(group, meta.partitions);
    Ok((broker.owner(CONSUMER_OFFSETS_TOPIC, p), p))
}

/// The host of `partition` on this shard.
pub fn host(shard: &Shard, partition: u32) -> Result<Rc<Host>, WireError> {
    shard
        .local::<GroupShard>()
        .and_then(|g| g.hosts.borrow().get(&partition).cloned())
        // In a cluster leadership may have moved since the last tick.
        .filter(|h| h.leads())
        .ok_or_else(|| {
            not_coordinator(format!(
                "shard {} does not coordinate {CONSUMER_OFFSETS_TOPIC} partition {partition} \
                 (in a cluster: its leader is another broker, or is still loading it); \
                 find the coordinator again",
                shard.id()
            ))
        })
}

/// Every host on this shard.
fn hosts(shard: &Shard) -> Vec<Rc<Host>> {
    shard
        .local::<GroupShard>()
        .map(|g| g.hosts.borrow().values().cloned().collect())
        .unwrap_or_default()
}

fn partition_counts(topics: &Topics) -> BTreeMap<String, u32> {
    topics
        .topics
        .values()
        .map(|t| (t.name.clone(), t.partitions))
        .collect()
}

/// Loads this shard's coordinators (replaying their partitions) and starts their
/// clock. Runs at startup, before the shard accepts connections.
pub async fn start(broker: &Rc<Broker>) -> Result<(), WireError> {
    let shard = broker.shard.clone();
    let state = Rc::new(GroupShard::default());
    let topics = broker.topics();
    // A cluster's hosts are loaded where their partition's leader is (see
    // `follow_leadership`); its topics are not known yet at startup anyway.
    let single_node = broker.config.cluster.is_none();
    if let Some(meta) = topics.get(CONSUMER_OFFSETS_TOPIC).filter(|_| single_node) {
        for p in 0..meta.partitions {
            if broker.owner(CONSUMER_OFFSETS_TOPIC, p) != shard.id() {
                continue;
            }
            let log = broker.log(CONSUMER_OFFSETS_TOPIC, p).await?;
            let end = log.log_end_offset();
            let host = Host::load(
                p,
                log,
                shard.clone(),
                &topics,
                coordinator_config(broker),
                (None, end),
            )
            .await?;
            // Offsets of topics deleted before their tombstones were written (a
            // crash in between): gone now, durably, before anyone can fetch them.
            let stale = host
                .coordinator
                .borrow_mut()
                .remove_topic_offsets(|t| topics.get(t).is_none());
            if !stale.is_empty() {
                tracing::info!(
                    partition = p,
                    tombstones = stale.len(),
                    "removed offsets of deleted topics"
                );
                host.persist(&stale).await?;
            }
            state.hosts.borrow_mut().insert(p, Rc::new(host));
        }
    }
    shard.insert_local(Rc::clone(&state));
    let b = Rc::clone(broker);
    glommio::spawn_local(async move { tick_loop(b).await }).detach();
    Ok(())
}

/// The coordinators' limits from the broker's `group.*` settings.
fn coordinator_config(broker: &Broker) -> CoordinatorConfig {
    let c = &broker.config;
    CoordinatorConfig {
        session_timeout_ms_min: c.group_min_session_timeout_ms,
        session_timeout_ms_max: c.group_max_session_timeout_ms,
        initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms,
        ..CoordinatorConfig::default()
    }
}

/// Removes the committed offsets of the deleted `topic` from this shard's
/// coordinators, durably (tombstones in `__consumer_offsets`), and deletes the groups
/// left with neither members nor offsets. Runs on every shard after the deletion was
/// published, so a commit that checked the topic before is caught by the check in
/// [`persist_offsets`]. A failure is logged: the startup purge of offsets of unknown
/// topics removes them at the next start, unless the name was created again first.
pub async fn forget_topic(broker: &Broker, topic: &str) {
    for host in hosts(&broker.shard) {
        let records = host
            .coordinator
            .borrow_mut()
            .remove_topic_offsets(|t| t == topic);
        if records.is_empty() {
            continue;
        }
        if let Err(e) = host.persist(&records).await {
            tracing::error!(partition = host.partition, %topic, error = %e.message, "the offsets of a deleted topic were removed but their tombstones could not be written");
        }
    }
}

/// Gives this shard's coordinators the partition counts of the newest topic
/// snapshot, if they have not seen it (topics created or grown since).
fn sync_topics(broker: &Broker) {
    let Some(state) = broker.shard.local::<GroupShard>() else {
        return;
    };
    let topics = broker.topics();
    let seen = state
        .topics_seen
        .borrow()
        .as_ref()
        .is_some_and(|s| Arc::ptr_eq(s, &topics));
    if seen {
        return;
    }
    let counts = partition_counts(&topics);
    *state.topics_seen.borrow_mut() = Some(topics);
    let now = now_ms();
    for host in hosts(&broker.shard) {
        let fx = host
            .coordinator
            .borrow_mut()
            .set_partition_counts(now, counts.clone());
        host.dispatch(fx);
    }
}

async fn tick_loop(broker: Rc<Broker>) {
    let shard = broker.shard.clone();
    loop {
        let tick = glommio::timer::sleep(Duration::from_millis(GROUP_TICK_MS));
        futures_lite::future::or(tick, shard.stopped()).await;
        if shard.is_stopping() {
            break;
        }
        sync_topics(&broker);
        follow_leadership(&broker);
        let now = now_ms();
        for host in hosts(&shard) {
            let fx = host.coordinator.borrow_mut().tick(now);
            host.dispatch(fx);
        }
    }
    // Held requests get an answer before the connections drain: a dropped sender
    // tells its waiter the broker is shutting down.
    for host in hosts(&shard) {
        host.waiters.borrow_mut().clear();
    }
}

/// In a cluster, once a tick: retires the hosts whose replica stopped leading in the
/// term they were loaded in, and starts loading a host for each `__consumer_offsets`
/// partition this shard's replica now leads with a settled log.
fn follow_leadership(broker: &Rc<Broker>) {
    if broker.config.cluster.is_none() {
        return;
    }
    let Some(state) = broker.shard.local::<GroupShard>() else {
        return;
    };
    let stale: Vec<u32> = state
        .hosts
        .borrow()
        .iter()
        .filter(|(_, h)| !h.leads())
        .map(|(p, _)| *p)
        .collect();
    for p in stale {
        let removed = state.hosts.borrow_mut().remove(&p);
        if let Some(host) = removed {
            tracing::info!(partition = p, "group coordinator moved away");
            host.retire();
        }
    }
    let Some(partitions) = broker
        .topics()
        .get(CONSUMER_OFFSETS_TOPIC)
        .map(|m| m.partitions)
    else {
        return;
    };
    let replicas = ShardReplicas::of(&broker.shard);
    for p in 0..partitions {
        if state.hosts.borrow().contains_key(&p) || state.loading.borrow().contains(&p) {
            continue;
        }
        let Some(replica) = replicas.get(CONSUMER_OFFSETS_TOPIC, p) else {
            continue;
        };
        let Some(leading) = replica.settled_leadership() else {
            continue;
        };
        state.loading.borrow_mut().insert(p);
        let (b, s) = (Rc::clone(broker), Rc::clone(&state));
        glommio::spawn_local(async move { load_leader(b, s, p, replica, leading).await }).detach();
    }
}

/// Loads the host of partition `p`, which this shard's `replica` leads in `term`
/// with everything up to `end` committed, and installs it if it still leads then.
async fn load_leader(
    broker: Rc<Broker>,
    state: Rc<GroupShard>,
    p: u32,
    replica: Rc<ReplicatedLog>,
    (term, end): (Term, u64),
) {
    let topics = broker.topics();
    let log = replica.log().clone();
    let loaded = Host::load(
        p,
        log,
        broker.shard.clone(),
        &topics,
        coordinator_config(&broker),
        (Some((replica, term)), end as i64),
    )
    .await;
    state.loading.borrow_mut().remove(&p);
    match loaded {
        // Leadership may have moved during the replay: the next tick loads again.
        Ok(host) if host.leads() => {
            state.hosts.borrow_mut().insert(p, Rc::new(host));
        }
        Ok(_) => tracing::info!(partition = p, term, "leadership moved while loading"),
        Err(e) => {
            tracing::warn!(partition = p, error = %e.message, "group coordinator not loaded; retrying")
        }
    }
}

/// Replays `log` (a `__consumer_offsets` partition) up to `end` into `coordinator`:
/// every record of every native batch, control batches skipped. Returns (records
/// applied, batches or records skipped as unreadable).
async fn replay(
    log: &Log,
    end: i64,
    coordinator: &mut Coordinator,
    now: i64,
    partition: u32,
) -> Result<(u64, u64), WireError> {
    let mut offset = log.log_start_offset();
    let (mut records, mut skipped) = (0u64, 0u64);
    while offset < end {
        let read = log.read(offset, REPLAY_READ_BYTES, Some(end)).await?;
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            let header = BatchHeader::decode(batch)
                .map_err(|e| WireError::new(ErrorCode::StorageError, format!("replaying: {e}")))?;
            offset = header.base_offset + i64::from(header.last_offset_delta) + 1;
            if header.attributes.is_control() {
                // A partition leader's leader-change batch (or a transaction
                // marker): the broker's record, not group state.
                continue;
            }
            if header.payload_format != PayloadFormat::Native {
                skipped += 1;
                continue;
            }
            let view = match validate_batch(batch) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "skipping a bad batch of {CONSUMER_OFFSETS_TOPIC}");
                    skipped += 1;
                    continue;
                }
            };
            let Ok(iter) = view.records() else {
                skipped += 1;
                continue;
            };
            for r in iter {
                let Some(key) = r.key() else { continue };
                match coordinator.apply(now, key, r.value()) {
                    Ok(()) => records += 1,
                    Err(e) => {
                        skipped += 1;
                        tracing::warn!(partition, error = %e, "skipping a record of {CONSUMER_OFFSETS_TOPIC}");
                    }
                }
            }
        }
    }
    Ok((records, skipped))
}

impl Host {
    /// A coordinator holding everything the partition's log says up to `end` (in a
    /// cluster, over `replica` leading in its term).
    async fn load(
        partition: u32,
        log: Log,
        shard: Shard,
        topics: &Topics,
        config: CoordinatorConfig,
        (replica, end): (Option<(Rc<ReplicatedLog>, Term)>, i64),
    ) -> Result<Host, WireError> {
        let now = now_ms();
        let instance = (now as u64) ^ ((shard.id() as u64) << 48) ^ (u64::from(partition) << 40);
        let mut coordinator = Coordinator::new(CoordinatorConfig { instance, ..config });
        let _ = coordinator.set_partition_counts(now, partition_counts(topics));
        let (records, skipped) = replay(&log, end, &mut coordinator, now, partition).await?;
        tracing::info!(
            partition,
            records,
            skipped,
            groups = coordinator.list().len(),
            term = replica.as_ref().map(|(_, t)| *t),
            "group coordinator loaded"
        );
        Ok(Host {
            partition,
            shard,
            log,
            replica,
            retired: Cell::new(false),
            coordinator: RefCell::new(coordinator),
            waiters: RefCell::new(HashMap::new()),
            persisting: Semaphore::new(1),
        })
    }

    /// Whether this host coordinates now: always on one node; in a cluster while its
    /// replica leads in the term the host was loaded in.
    fn leads(&self) -> bool {
        match &self.replica {
            None => true,
            Some((r, term)) => {
                let (role, now, _) = r.leadership();
                !self.retired.get() && role == Role::Leader && now == *term
            }
        }
    }

    fn moved(&self) -> WireError {
        not_coordinator(format!(
            "the coordinator of {CONSUMER_OFFSETS_TOPIC} partition {} moved to another broker; find the coordinator again",
            self.partition
        ))
    }

    /// Takes the host out of service: its held requests are answered NOT_COORDINATOR.
    fn retire(&self) {
        self.retired.set(true);
        let waiters: Vec<_> = self.waiters.borrow_mut().drain().collect();
        for (_, tx) in waiters {
            let _ = tx.try_send(Err(self.moved()));
        }
    }

    /// Appends the coordinator's records, then answers the held requests it
    /// completed (in the background: the records are group metadata, already in
    /// effect here). If the records cannot be written, the held requests get the
    /// error instead: a member is never told of a generation a coordinator that
    /// replays the log would not know.
    fn dispatch(self: &Rc<Self>, fx: Effects) {
        if fx.records.is_empty() {
            self.answer(fx.answers.into_iter().map(|(t, a)| (t, Ok(a))));
            return;
        }
        let host = Rc::clone(self);
        glommio::spawn_local(async move {
            match host.persist(&fx.records).await {
                Ok(()) => host.answer(fx.answers.into_iter().map(|(t, a)| (t, Ok(a)))),
                Err(e) => {
                    tracing::warn!(partition = host.partition, error = %e.message, "persisting group metadata failed");
                    host.answer(fx.answers.into_iter().map(|(t, _)| (t, Err(e.clone()))));
                }
            }
        })
        .detach();
    }

    fn answer(&self, answers: impl Iterator<Item = (Token, HeldAnswer)>) {
        for (token, answer) in answers {
            if let Some(tx) = self.waiters.borrow_mut().remove(&token) {
                let _ = tx.try_send(answer);
            }
        }
    }

    /// Appends `records` durably (in a cluster: committed by the partition's
    /// replicas), in order.
    async fn persist(&self, records: &[Record]) -> Result<(), WireError> {
        let _turn = self
            .persisting
            .acquire_permit(1)
            .await
            .map_err(|_| WireError::new(ErrorCode::BrokerShuttingDown, "shard is stopping"))?;
        let now = now_ms();
        let mut builder = NativeBatchBuilder::new();
        let mut batches = Vec::new();
        for r in records {
            if !builder.is_empty() && builder.estimated_bytes() >= PERSIST_BATCH_BYTES_MAX {
                batches.push(std::mem::take(&mut builder));
            }
            builder.push(now, Some(&r.key), r.value.as_deref(), &[]);
        }
        if !builder.is_empty() {
            batches.push(builder);
        }
        for b in batches {
            let batch = b.try_build().map_err(|e| {
                WireError::new(
                    ErrorCode::Unknown,
                    format!("cannot build a group batch: {e}"),
                )
            })?;
            if let Some((replica, _)) = &self.replica {
                self.append_replicated(replica, batch).await?;
                continue;
            }
            let info = self
                .log
                .append(batch, AppendOptions::new(Durability::Durable))
                .await?;
            // One node: everything durable is committed.
            self.log
                .set_high_watermark(self.log.high_watermark().max(info.last_offset + 1));
        }
        Ok(())
    }

    /// Appends one batch through the partition's replica with acks=all and waits (at
    /// most `OFFSETS_COMMIT_TIMEOUT_MS`) until it committed.
    async fn append_replicated(
        &self,
        replica: &Rc<ReplicatedLog>,
        batch: Vec<u8>,
    ) -> Result<(), WireError> {
        if !self.leads() {
            return Err(self.moved());
        }
        let batch = ValidatedBatch::new(batch).map_err(|e| {
            WireError::new(
                ErrorCode::Unknown,
                format!("cannot build a group batch: {e}"),
            )
        })?;
        let broker = Broker::of(&self.shard);
        let min_insync =
            crate::handlers::produce::min_insync_replicas(&broker, CONSUMER_OFFSETS_TOPIC);
        let r = Rc::clone(replica);
        // A task of its own: a write that outlives the timeout still completes (or
        // fails) in order, and a coordinator that replays the log sees it.
        let appended =
            glommio::spawn_local(
                async move { r.append(batch, Durability::Durable, min_insync).await },
            )
            .detach();
        let outcome = futures_lite::future::or(async { Some(appended.await) }, async {
            glommio::timer::sleep(Duration::from_millis(OFFSETS_COMMIT_TIMEOUT_MS)).await;
            None
        })
        .await;
        match outcome {
            Some(Some(Ok(_))) => Ok(()),
            Some(Some(Err(e))) if e.code == ErrorCode::NotLeaderOrFollower => Err(self.moved()),
            Some(Some(Err(e))) => Err(e),
            Some(None) => Err(WireError::new(
                ErrorCode::BrokerShuttingDown,
                "the broker is shutting down",
            )),
            None => Err(WireError::new(
                ErrorCode::RequestTimedOut,
                format!(
                    "the group's write to {CONSUMER_OFFSETS_TOPIC} partition {} did not commit within \
                     {OFFSETS_COMMIT_TIMEOUT_MS} ms (too few replicas reachable?); retry",
                    self.partition
                ),
            )),
        }
    }

    fn token(shard: &Shard) -> Token {
        let g = shard
            .local::<GroupShard>()
            .expect("hosts exist only where GroupShard was stored");
        let t = g.next_token.get() + 1;
        g.next_token.set(t);
        t
    }
}

// ---- requests, run on the coordinator's shard --------------------------------------

/// Runs `job` on the shard coordinating `group`, with that coordinator.
pub async fn on_coordinator<F, Fut, R, E>(broker: &Broker, group: &str, job: F) -> Result<R, E>
where
    F: FnOnce(Shard, Rc<Host>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<R, E>> + 'static,
    R: Send + 'static,
    E: From<WireError> + Send + 'static,
{
    let (shard, partition) = coordinator_of(broker, group)?;
    broker
        .shard
        .invoke_on(shard, move |s| async move {
            let host = host(&s, partition)?;
            job(s, host).await
        })
        .await
        .map_err(|e| E::from(WireError::from(e)))?
}

/// Parks a request until the coordinator answers `token` (or `wait` passes, or the
/// shard stops).
async fn held(
    shard: &Shard,
    host: &Rc<Host>,
    wait: Duration,
    start: impl FnOnce(&mut Coordinator, Token) -> Effects,
) -> Result<Answer, WireError> {
    let token = Host::token(shard);
    let (tx, rx) = local_channel::new_bounded(1);
    host.waiters.borrow_mut().insert(token, tx);
    let fx = start(&mut host.coordinator.borrow_mut(), token);
    host.dispatch(fx);
    let answer = futures_lite::future::or(async { rx.recv().await }, async {
        futures_lite::future::or(glommio::timer::sleep(wait), shard.stopped()).await;
        None
    })
    .await;
    host.waiters.borrow_mut().remove(&token);
    answer.unwrap_or_else(|| {
        Err(if shard.is_stopping() {
            WireError::new(ErrorCode::BrokerShuttingDown, "the broker is shutting down")
        } else if host.retired.get() {
            host.moved()
        } else {
            WireError::new(
                ErrorCode::RequestTimedOut,
                "the rebalance did not complete in time; join again",
            )
        })
    })
}

fn unexpected(answer: &Answer) -> GroupError {
    tracing::error!(?answer, "a held request got an answer of another kind");
    GroupError::new(
        ErrorCode::Unknown,
        "the coordinator answered another request",
    )
}

/// JoinGroup (native): answers when the rebalance completes.
pub async fn join(
    shard: Shard,
    host: Rc<Host>,
    req: JoinRequest,
) -> Result<JoinResponse, WireError> {
    let wait = Duration::from_millis(
        u64::from(req.rebalance_timeout_ms.max(req.session_timeout_ms)) + JOIN_WAIT_SLACK_MS,
    );
    // A topic created just before the join must be known to the assignor.
    sync_topics(&Broker::of(&shard));
    match held(&shard, &host, wait, |c, token| c.join(now_ms(), token, req)).await? {
        Answer::Join(r) => r.map_err(WireError::from),
        other => Err(unexpected(&other).into()),
    }
}

pub fn heartbeat(
    host: &Host,
    group: &str,
    member_id: &str,
    generation: i32,
) -> Result<(), WireError> {
    Ok(host
        .coordinator
        .borrow_mut()
        .heartbeat(now_ms(), group, member_id, generation)?)
}

pub fn leave(host: &Rc<Host>, group: &str, member_id: &str) -> Result<(), WireError> {
    let fx = host
        .coordinator
        .borrow_mut()
        .leave(now_ms(), group, member_id)?;
    host.dispatch(fx);
    Ok(())
}

/// Appends offset `records` durably, then applies them.
async fn persist_offsets(host: &Host, records: Vec<Record>) -> Result<(), WireError> {
    if records.is_empty() {
        return Ok(());
    }
    host.persist(&records).await?;
    // A topic deleted while the commit was being written: its offsets were removed
    // before this one took effect, so it must not take effect either.
    let topics = Broker::of(&host.shard).topics();
    let deleted = |r: &Record| {
        matches!(crate::groups::decode_record(&r.key, r.value.as_deref()),
            Ok(crate::groups::GroupRecord::Offset { tp, .. }) if topics.get(&tp.topic).is_none())
    };
    let tombstones: Vec<Record> = records
        .iter()
        .filter(|r| deleted(r))
        .map(|r| Record {
            key: r.key.clone(),
            value: None,
        })
        .collect();
    let now = now_ms();
    {
        let mut c = host.coordinator.borrow_mut();
        for r in records.iter().filter(|r| !deleted(r)) {
            c.apply(now, &r.key, r.value.as_deref())
                .expect("records the coordinator encoded decode");
        }
    }
    if !tombstones.is_empty() {
        host.persist(&tombstones).await?;
    }
    Ok(())
}

/// OffsetCommit (native): validated, appended durably, then in effect.
pub async fn commit(
    host: Rc<Host>,
    group: String,
    member_id: String,
    generation: i32,
    commits: Vec<Commit>,
) -> Result<(), WireError> {
    let records =
        host.coordinator
            .borrow_mut()
            .commit(now_ms(), &group, &member_id, generation, &commits)?;
    persist_offsets(&host, records).await
}

pub fn fetch_offsets(
    host: &Host,
    group: &str,
    wanted: Option<&[TopicPartition]>,
) -> Vec<(TopicPartition, Option<OffsetValue>)> {
    host.coordinator.borrow().fetch_offsets(group, wanted)
}

pub fn describe(host: &Host, group: &str) -> GroupDescription {
    host.coordinator.borrow().describe(group)
}

/// DeleteGroup: removed, then its tombstones appended durably.
pub async fn delete(host: Rc<Host>, group: String) -> Result<(), GroupError> {
    let records = host.coordinator.borrow_mut().delete(&group)?;
    Ok(host.persist(&records).await?)
}

/// Every group coordinated on this shard.
pub fn list(shard: &Shard) -> Vec<GroupListing> {
    hosts(shard)
        .iter()
        .flat_map(|h| h.coordinator.borrow().list())
        .collect()
}

/// The groups of every shard, sorted by name, and the error of a shard that could
/// not answer (its groups are then missing).
pub async fn list_all(broker: &Broker) -> (Vec<GroupListing>, Option<WireError>) {
    let mut groups = Vec::new();
    let mut error = None;
    for s in 0..broker.shard.shard_count() {
        match broker
            .shard
            .invoke_on(s, |shard| async move { list(&shard) })
            .await
        {
            Ok(found) => groups.extend(found),
            Err(e) => error = Some(WireError::from(e)),
        }
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    (groups, error)
}

// ---- Kafka requests, run on the coordinator's shard ---------------------------------

/// JoinGroup (Kafka classic): answers when the join phase completes.
pub async fn classic_join(
    shard: Shard,
    host: Rc<Host>,
    req: ClassicJoinRequest,
) -> Result<ClassicJoinResponse, GroupError> {
    let wait = Duration::from_millis(
        u64::from(req.rebalance_timeout_ms.max(req.session_timeout_ms)) + JOIN_WAIT_SLACK_MS,
    );
    match held(&shard, &host, wait, |c, token| {
        c.classic_join(now_ms(), token, req)
    })
    .await?
    {
        Answer::ClassicJoin(r) => r,
        other => Err(unexpected(&other)),
    }
}

/// SyncGroup: answers when the leader's assignment arrives.
pub async fn classic_sync(
    shard: Shard,
    host: Rc<Host>,
    req: SyncRequest,
) -> Result<SyncResponse, GroupError> {
    // The coordinator answers by the group's sync deadline (its largest rebalance
    // timeout); this only bounds a bug.
    let wait = Duration::from_millis(u64::from(REBALANCE_TIMEOUT_MS_MAX) + JOIN_WAIT_SLACK_MS);
    match held(&shard, &host, wait, |c, token| {
        c.classic_sync(now_ms(), token, req)
    })
    .await?
    {
        Answer::Sync(r) => r,
        other => Err(unexpected(&other)),
    }
}

pub fn classic_heartbeat(
    host: &Host,
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<(), GroupError> {
    host.coordinator.borrow_mut().classic_heartbeat(
        now_ms(),
        group,
        member_id,
        instance_id,
        generation,
    )
}

pub fn classic_leave(
    host: &Rc<Host>,
    group: &str,
    leaving: &[LeaveMember],
) -> Result<Vec<Result<(), GroupError>>, GroupError> {
    let (results, fx) = host
        .coordinator
        .borrow_mut()
        .classic_leave(now_ms(), group, leaving)?;
    host.dispatch(fx);
    Ok(results)
}

/// ConsumerGroupHeartbeat (KIP-848).
pub fn consumer_heartbeat(
    shard: &Shard,
    host: &Rc<Host>,
    req: ConsumerHeartbeat,
) -> Result<ConsumerHeartbeatResponse, GroupError> {
    // A topic created just before must be known to the assignor.
    sync_topics(&Broker::of(shard));
    let (result, fx) = host
        .coordinator
        .borrow_mut()
        .consumer_heartbeat(now_ms(), req);
    host.dispatch(fx);
    result
}

pub fn consumer_describe(host: &Host, group: &str) -> Result<ConsumerGroupDescription, GroupError> {
    host.coordinator.borrow().consumer_describe(group)
}

/// OffsetCommit (Kafka): validated, appended durably, then in effect.
pub async fn kafka_commit(
    host: Rc<Host>,
    req: KafkaCommit,
    commits: Vec<Commit>,
) -> Result<(), GroupError> {
    let records = host
        .coordinator
        .borrow_mut()
        .kafka_commit(now_ms(), &req, &commits)?;
    Ok(persist_offsets(&host, records).await?)
}

/// OffsetFetch (Kafka): the committed offsets, after checking the member (if the
/// request names one).
pub fn kafka_fetch_offsets(
    host: &Host,
    group: &str,
    member: Option<(&str, i32)>,
    wanted: Option<&[TopicPartition]>,
) -> Result<Vec<(TopicPartition, Option<OffsetValue>)>, GroupError> {
    let c = host.coordinator.borrow();
    if let Some((member_id, epoch)) = member {
        c.check_fetch(group, member_id, epoch)?;
    }
    Ok(c.fetch_offsets(group, wanted))
}

/// Segment size of `__consumer_offsets`: small, so compaction (which works on closed
/// segments) keeps the replay at startup short.
const OFFSETS_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;

/// The topic configs `__consumer_offsets` is created with (one node or cluster):
/// compacted, small segments.
pub fn offsets_topic_overrides() -> BTreeMap<String, String> {
    [
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        (
            "segment.bytes".to_owned(),
            OFFSETS_SEGMENT_BYTES.to_string(),
        ),
    ]
    .into()
}

/// Adds `__consumer_offsets` (`partitions` partitions, compacted) to
/// `topics` and stores the metadata file, unless it exists. Blocking; at startup,
/// before the shards run.
pub fn ensure_offsets_topic(
    data_dir: &std::path::Path,
    defaults: &BTreeMap<String, String>,
    partitions: u32,
    mut topics: Topics,
) -> Result<Topics, String> {
    if topics.get(CONSUMER_OFFSETS_TOPIC).is_some() {
        return Ok(topics);
    }
    let overrides = offsets_topic_overrides();
    let config = crate::topic_config::TopicConfig::resolve(defaults, &overrides)
        .map_err(|e| format!("{CONSUMER_OFFSETS_TOPIC}: {e}"))?;
    topics.topics.insert(
        CONSUMER_OFFSETS_TOPIC.to_owned(),
        Arc::new(crate::metadata::TopicMeta::new(
            CONSUMER_OFFSETS_TOPIC.to_owned(),
            partitions,
            overrides,
            config,
        )),
    );
    crate::metadata::store_topics(data_dir, &topics.to_text())
        .map_err(|e| format!("cannot store topic metadata with {CONSUMER_OFFSETS_TOPIC}: {e}"))?;
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::offset_record;
    use strata_engine::{run_local, LogConfig, LogEnv};

    /// A `__consumer_offsets` log holding a partition leader's leader-change control
    /// batch between offset commits replays every commit and counts nothing skipped.
    #[test]
    fn replay_skips_leader_change_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run_local(move || async move {
            let log = Log::open(&path, LogConfig::default(), LogEnv::default())
                .await
                .unwrap();
            let tp = TopicPartition::new("t", 0);
            let durable = AppendOptions::new(Durability::Durable);
            let control = strata_schema::leader_change_batch(1, 1, now_ms());
            log.append_validated(control, durable).await.unwrap();
            for offset in [5, 9] {
                let value = OffsetValue {
                    offset,
                    metadata: String::new(),
                    commit_time_ms: now_ms(),
                    leader_epoch: -1,
                };
                let r = offset_record("g", &tp, &value);
                let mut b = NativeBatchBuilder::new();
                b.push(now_ms(), Some(&r.key), r.value.as_deref(), &[]);
                log.append(b.build(), durable).await.unwrap();
                let again = strata_schema::leader_change_batch(2, 3, now_ms());
                log.append_validated(again, durable).await.unwrap();
            }
            let mut coordinator = Coordinator::new(CoordinatorConfig::default());
            let end = log.log_end_offset();
            let (records, skipped) = replay(&log, end, &mut coordinator, now_ms(), 0)
                .await
                .unwrap();
            assert_eq!((records, skipped), (2, 0));
            let got = coordinator.fetch_offsets("g", Some(std::slice::from_ref(&tp)));
            assert_eq!(got[0].1.as_ref().map(|v| v.offset), Some(9));
            log.close().await.unwrap();
        });
    }
}
