//! One shard's broker state: the topic snapshot it reads, the partition logs it owns,
//! and (on shard 0) the metadata changes it applies for every shard.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;
use strata_engine::clean_marker::MetaSync;
use strata_engine::placement::{Placement, ShardId};
use strata_engine::shard::Shard;
use strata_engine::snapshot::{SnapshotCell, SnapshotReader};
use strata_engine::{BatchCache, Cleaner, Log, LogEnv};
use strata_schema::ErrorCode;

use crate::cluster_view::ClusterView;
use crate::config::BrokerConfig;
use crate::controller::ControllerCommand;
use crate::errors::WireError;
use crate::metadata::{
    partition_dir, store_topics, validate_topic_name, TopicMeta, Topics, PARTITIONS_MAX,
};
use crate::topic_config::TopicConfig;

mod cluster_topics;
mod dynamic_configs;
mod topic_id_marker;

/// A job a metadata change runs on every shard.
type LocalJob = std::pin::Pin<Box<dyn Future<Output = ()>>>;

/// The shard that owns topic metadata and applies every change to it.
pub const METADATA_SHARD: ShardId = 0;
/// Partition opens in flight on one shard at most (at startup and when a topic is
/// created): enough to keep the blocking pool and the disk busy, few enough that the
/// buffers of the indexes being read stay small.
pub const PARTITION_OPENS_IN_FLIGHT_MAX: usize = 64;
/// Partition closes in flight on one shard at most (at shutdown, topic deletion).
pub const PARTITION_CLOSES_IN_FLIGHT_MAX: usize = 64;

/// A partition: its topic and index.
type PartitionKey = (String, u32);

/// A shard's broker state, stored with `Shard::insert_local`.
pub struct Broker {
    pub shard: Shard,
    pub config: Arc<BrokerConfig>,
    pub placement: Placement,
    meta_cell: Arc<SnapshotCell<Topics>>,
    meta: RefCell<SnapshotReader<Topics>>,
    /// The cluster as clients are told it (`cluster_view`), shared by every shard.
    view_cell: Arc<SnapshotCell<ClusterView>>,
    view: RefCell<SnapshotReader<ClusterView>>,
    logs: RefCell<HashMap<PartitionKey, Log>>,
    /// Partitions being opened, with the gate their other users wait at (closed when
    /// the open ends), so a partition is never opened twice.
    opening: RefCell<HashMap<PartitionKey, Rc<Semaphore>>>,
    /// Bounds the opens in flight on this shard.
    open_slots: Rc<Semaphore>,
    pub(crate) env: LogEnv,
    cleaner: Rc<Cleaner>,
    /// Serialises metadata changes (used on `METADATA_SHARD` only).
    meta_lock: Semaphore,
    /// Partitions offline or fenced, and when they are retried.
    pub(crate) health: crate::partition_health::PartitionHealth,
    /// The free-space floor produces are admitted against.
    pub disk: Rc<crate::disk_space::DiskSpace>,
}

impl Broker {
    /// The state of `shard`, with the shard's own tail cache and cleaner.
    pub fn new(
        shard: Shard,
        config: Arc<BrokerConfig>,
        meta_cell: Arc<SnapshotCell<Topics>>,
        view_cell: Arc<SnapshotCell<ClusterView>>,
    ) -> Self {
        let placement = Placement::new(shard.shard_count());
        let disk =
            crate::disk_space::DiskSpace::new(&config.data_dir, config.storage_min_free_bytes);
        Broker {
            shard,
            config,
            placement,
            meta: RefCell::new(SnapshotReader::new(Arc::clone(&meta_cell))),
            meta_cell,
            view: RefCell::new(SnapshotReader::new(Arc::clone(&view_cell))),
            view_cell,
            logs: RefCell::new(HashMap::new()),
            opening: RefCell::new(HashMap::new()),
            open_slots: Rc::new(Semaphore::new(PARTITION_OPENS_IN_FLIGHT_MAX as u64)),
            env: LogEnv {
                cache: BatchCache::new(strata_engine::batch_cache::CACHE_BUDGET_BYTES_DEFAULT),
                faults: Default::default(),
                metrics: Default::default(),
            },
            cleaner: Cleaner::new(),
            meta_lock: Semaphore::new(1),
            health: Default::default(),
            disk,
        }
    }

    /// This shard's broker, from inside a job sent with `invoke_on`.
    pub fn of(shard: &Shard) -> Rc<Broker> {
        shard
            .local::<Broker>()
            .expect("every shard stores its Broker before it serves anything")
    }

    /// The newest topic snapshot.
    pub fn topics(&self) -> Arc<Topics> {
        Arc::clone(self.meta.borrow_mut().get())
    }

    /// The newest cluster view: brokers, controller, partition leaders.
    pub fn cluster_view(&self) -> Arc<ClusterView> {
        Arc::clone(self.view.borrow_mut().get())
    }

    /// Replaces the cluster view on every shard (each sees it on its next
    /// `cluster_view`).
    // Called by the cluster's controller driver as the metadata it applies changes.
    #[allow(dead_code)]
    pub fn set_cluster_view(&self, view: Arc<ClusterView>) {
        self.view_cell.publish(view);
    }

    /// The broker's topic defaults now: the config file's, under the dynamic broker
    /// configs (`broker_settings`).
    pub fn topic_defaults(&self) -> BTreeMap<String, String> {
        self.topics()
            .dynamic
            .topic_defaults(&self.config.topic_defaults)
    }

    /// Starts this shard's cleaner.
    pub fn start_cleaner(&self) {
        self.cleaner
            .start(&self.shard, self.config.cleaner_interval_ms);
    }

    /// Which shard owns a partition.
    pub fn owner(&self, topic: &str, partition: u32) -> ShardId {
        self.placement.shard_for(topic, partition)
    }

    /// The open log of a partition this shard owns, opening it on first use.
    pub async fn log(&self, topic: &str, partition: u32) -> Result<Log, WireError> {
        debug_assert_eq!(self.owner(topic, partition), self.shard.id());
        let key = (topic.to_owned(), partition);
        loop {
            if let Some(log) = self.logs.borrow().get(&key) {
                return Ok(log.clone());
            }
            let meta = self.topic_meta(topic)?;
            check_partition(&meta, partition)?;
            let Some(claim) = self.claim(&key) else {
                // Being opened by someone else: wait until that ends, then look again.
                let gate = self.opening.borrow().get(&key).cloned();
                if let Some(gate) = gate {
                    let _ended = gate.acquire(1).await;
                }
                continue;
            };
            let log = self
                .open_claimed(&key, &meta, MetaSync::Each)
                .await
                .map_err(|(_, _, e)| e)?;
            self.install(claim, log.clone()).await?;
            return Ok(log);
        }
    }

    /// Claims `key` for opening, unless it is open or being opened.
    fn claim(&self, key: &PartitionKey) -> Option<OpenClaim> {
        if self.logs.borrow().contains_key(key) {
            return None;
        }
        let mut opening = self.opening.borrow_mut();
        if opening.contains_key(key) {
            return None;
        }
        let gate = Rc::new(Semaphore::new(0));
        opening.insert(key.clone(), Rc::clone(&gate));
        Some(OpenClaim {
            broker: Broker::of(&self.shard),
            key: key.clone(),
            gate,
        })
    }

    /// Opens a claimed partition (one of `PARTITION_OPENS_IN_FLIGHT_MAX` at a time).
    async fn open_claimed(
        &self,
        key: &PartitionKey,
        meta: &TopicMeta,
        sync: MetaSync,
    ) -> Result<Log, (String, u32, WireError)> {
        let failed = |e: WireError| (key.0.clone(), key.1, e);
        let _slot = self
            .open_slots
            .acquire_permit(1)
            .await
            .map_err(|_| failed(stopping()))?;
        if let Some(e) = self.health.refuse_open(key) {
            return Err(failed(e));
        }
        let dir = partition_dir(&self.config.data_dir, &key.0, key.1);
        match Log::open_with(&dir, meta.config.log.clone(), self.env.clone(), sync).await {
            Ok(log) => {
                self.health.opened(key);
                Ok(log)
            }
            // Offline, not fatal: answered with this error, retried in the background.
            Err(e) => Err(failed(self.health.open_failed(key, e.into()))),
        }
    }

    /// Makes an opened log the partition's, unless its topic was deleted while it
    /// opened (then it is closed again).
    async fn install(&self, claim: OpenClaim, log: Log) -> Result<(), WireError> {
        let (topic, partition) = (&claim.key.0, claim.key.1);
        if self
            .topics()
            .get(topic)
            .is_none_or(|t| partition >= t.partitions)
        {
            let _ = log.close().await;
            return Err(unknown_topic(topic));
        }
        self.cleaner.register(&log);
        self.logs
            .borrow_mut()
            .insert(claim.key.clone(), log.clone());
        // In a cluster the partition's Raft replica starts with its log.
        crate::cluster::replicas::attach_or_retry(self, &claim.key, &log).await;
        Ok(())
    }

    /// Opens the partitions `keys` (all owned by this shard) that are not open yet,
    /// `PARTITION_OPENS_IN_FLIGHT_MAX` at a time, makes the files their opens wrote
    /// durable with one filesystem sync (instead of two fsyncs per partition), and
    /// only then lets requests use them. Returns the first partition that failed.
    pub async fn open_many(&self, keys: Vec<PartitionKey>) -> Result<(), (String, u32, WireError)> {
        // The probe must run alone: concurrent opens would race on its file, and a
        // read of it while another open recreates it breaks the shard's DMA reads.
        strata_engine::file::ensure_dma_reads(&self.config.data_dir)
            .await
            .map_err(|e| {
                let key = keys.first().cloned().unwrap_or_default();
                (key.0, key.1, WireError::from(e))
            })?;
        let mut claims = Vec::with_capacity(keys.len());
        let mut metas: HashMap<String, Arc<TopicMeta>> = HashMap::new();
        for key in keys {
            debug_assert_eq!(self.owner(&key.0, key.1), self.shard.id());
            let meta = match metas.get(&key.0) {
                Some(m) => Arc::clone(m),
                None => {
                    let m = self
                        .topic_meta(&key.0)
                        .map_err(|e| (key.0.clone(), key.1, e))?;
                    metas.insert(key.0.clone(), Arc::clone(&m));
                    m
                }
            };
            check_partition(&meta, key.1).map_err(|e| (key.0.clone(), key.1, e))?;
            if let Some(claim) = self.claim(&key) {
                claims.push((claim, meta));
            }
        }
        let me = Broker::of(&self.shard);
        let opened = run_bounded(
            claims,
            PARTITION_OPENS_IN_FLIGHT_MAX,
            move |(claim, meta)| {
                let b = Rc::clone(&me);
                async move {
                    let log = b.open_claimed(&claim.key, &meta, MetaSync::Deferred).await;
                    (claim, log)
                }
            },
        )
        .await;
        let mut first_error = None;
        let mut ready = Vec::with_capacity(opened.len());
        for (claim, log) in opened {
            match log {
                Ok(log) => ready.push((claim, log)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some((claim, _)) = ready.first() {
            let key = claim.key.clone();
            self.sync_data_dir().await.map_err(|e| (key.0, key.1, e))?;
        }
        for (claim, log) in ready {
            let key = claim.key.clone();
            if let Err(e) = self.install(claim, log).await {
                first_error.get_or_insert((key.0, key.1, e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Makes everything the shard wrote without syncing durable (see `MetaSync`).
    async fn sync_data_dir(&self) -> Result<(), WireError> {
        let data_dir = self.config.data_dir.clone();
        glommio::executor()
            .spawn_blocking(move || strata_engine::clean_marker::sync_filesystem(&data_dir))
            .await
            .map_err(|e| {
                WireError::new(
                    ErrorCode::StorageError,
                    format!("cannot sync the data directory: {e}"),
                )
            })
    }

    /// Closes `logs`, `PARTITION_CLOSES_IN_FLIGHT_MAX` at a time, and makes their clean
    /// markers durable with one filesystem sync.
    async fn close_many(&self, logs: Vec<(PartitionKey, Log)>) {
        if logs.is_empty() {
            return;
        }
        run_bounded(logs, PARTITION_CLOSES_IN_FLIGHT_MAX, |((t, p), log)| async move {
            if let Err(e) = log.close_with(MetaSync::Deferred).await {
                tracing::warn!(topic = %t, partition = p, error = %e, "closing a partition failed");
            }
        })
        .await;
        if let Err(e) = self.sync_data_dir().await {
            tracing::warn!(error = %e.message, "clean markers may not be durable");
        }
    }

    /// `e`, or UnknownTopic when `e` comes from a log closed because its topic was
    /// deleted meanwhile.
    pub fn closed_means_deleted(&self, topic: &str, e: WireError) -> WireError {
        if e.code == ErrorCode::BrokerShuttingDown && self.topics().get(topic).is_none() {
            return unknown_topic(topic);
        }
        e
    }

    /// The topic called `name`, or UnknownTopic.
    pub fn topic_meta(&self, name: &str) -> Result<Arc<TopicMeta>, WireError> {
        self.topics()
            .get(name)
            .cloned()
            .ok_or_else(|| unknown_topic(name))
    }

    /// Opens every partition of every topic that this shard owns (at startup).
    pub async fn open_owned(&self) -> Result<(), (String, u32, WireError)> {
        let topics = self.topics();
        let mut keys = Vec::new();
        for t in topics.topics.values() {
            for p in 0..t.partitions {
                if self.owner(&t.name, p) == self.shard.id() {
                    keys.push((t.name.clone(), p));
                }
            }
        }
        // A partition that fails to open is offline (its requests get the error, the
        // healer retries it); the rest of the broker serves.
        if let Err((topic, partition, e)) = self.open_many(keys).await {
            tracing::warn!(%topic, partition, error = %e.message, "partition offline at start");
        }
        Ok(())
    }

    /// The logs this shard has open.
    pub(crate) fn open_logs(&self) -> Vec<((String, u32), Log)> {
        self.logs
            .borrow()
            .iter()
            .map(|(k, l)| (k.clone(), l.clone()))
            .collect()
    }

    /// The partition's log if this shard has it open.
    pub(crate) fn open_log(&self, key: &(String, u32)) -> Option<Log> {
        self.logs.borrow().get(key).cloned()
    }

    /// Closes and forgets one open log, so that the next `log` opens it again. Holds
    /// the partition's open claim meanwhile: the partition is never open twice.
    pub(crate) async fn close_log(&self, topic: &str, partition: u32) -> Result<(), WireError> {
        let key = (topic.to_owned(), partition);
        // Take the log out and claim the key in one step (no await between), so an
        // open waits for this close.
        let log = self.logs.borrow_mut().remove(&key);
        crate::cluster::replicas::detach(&self.shard, &key);
        let Some(_claim) = self.claim(&key) else {
            // Being opened by someone else already: that open is the reopen.
            if let Some(log) = log {
                self.logs.borrow_mut().insert(key, log);
            }
            return Ok(());
        };
        if let Some(log) = log {
            if let Err(e) = log.close().await {
                tracing::debug!(topic, partition, error = %e, "closing a fenced partition");
            }
        }
        Ok(())
    }

    /// Closes every log this shard has open (writes their clean markers).
    pub async fn close_all(&self) {
        let logs: Vec<(PartitionKey, Log)> = self.logs.borrow_mut().drain().collect();
        for (key, _) in &logs {
            crate::cluster::replicas::detach(&self.shard, key);
        }
        self.close_many(logs).await;
    }

    /// Closes and forgets this shard's logs of `topic`.
    async fn close_topic(&self, topic: &str) {
        let logs: Vec<(PartitionKey, Log)> = {
            let mut map = self.logs.borrow_mut();
            let keys: Vec<_> = map.keys().filter(|(t, _)| t == topic).cloned().collect();
            keys.into_iter()
                .filter_map(|k| map.remove(&k).map(|log| (k, log)))
                .collect()
        };
        for (key, _) in &logs {
            crate::cluster::replicas::detach(&self.shard, key);
        }
        self.close_many(logs).await;
        crate::metrics::forget_topic(topic);
        self.health.forget_topic(topic);
    }

    /// Gives this shard's open logs of `topic` its current config.
    fn apply_config(&self, topic: &str) {
        let Some(meta) = self.topics().get(topic).cloned() else {
            return;
        };
        for ((t, _), log) in self.logs.borrow().iter() {
            if t == topic {
                log.set_config(meta.config.log.clone());
            }
        }
    }

    // ---- metadata changes: run on METADATA_SHARD -------------------------------

    /// Runs a metadata change on the metadata shard.
    pub async fn on_metadata_shard<F, Fut>(&self, job: F) -> Result<(), WireError>
    where
        F: FnOnce(Rc<Broker>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), WireError>> + 'static,
    {
        self.shard
            .invoke_on(METADATA_SHARD, move |shard| async move {
                job(Broker::of(&shard)).await
            })
            .await?
    }

    /// Writes `topics` durably, then publishes it to every shard.
    async fn commit(&self, topics: Topics) -> Result<(), WireError> {
        if self.config.cluster.is_some() {
            // The controller's metadata log is the record; no file of our own.
            self.meta_cell.publish(Arc::new(topics));
            return Ok(());
        }
        let text = topics.to_text();
        let data_dir = self.config.data_dir.clone();
        glommio::executor()
            .spawn_blocking(move || store_topics(&data_dir, &text))
            .await
            .map_err(|e| {
                WireError::new(
                    ErrorCode::StorageError,
                    format!("cannot write topic metadata: {e}"),
                )
            })?;
        self.meta_cell.publish(Arc::new(topics));
        Ok(())
    }

    /// Runs `job(topic)` on every shard, in turn.
    async fn on_every_shard(&self, topic: &str, job: fn(Rc<Broker>, String) -> LocalJob) {
        for s in 0..self.shard.shard_count() {
            let topic = topic.to_owned();
            if let Err(e) = self
                .shard
                .invoke_on(s, move |shard| job(Broker::of(&shard), topic))
                .await
            {
                tracing::warn!(shard = s, error = %e, "metadata change did not reach a shard");
            }
        }
    }

    /// Opens the partitions `from..to` of `topic` on their owners (creating them):
    /// one request per shard, all shards at once, each opening its share
    /// concurrently (see `open_many`).
    async fn open_partitions(&self, topic: &str, from: u32, to: u32) -> Result<(), WireError> {
        let mut by_shard: BTreeMap<ShardId, Vec<PartitionKey>> = BTreeMap::new();
        for p in from..to {
            by_shard
                .entry(self.owner(topic, p))
                .or_default()
                .push((topic.to_owned(), p));
        }
        let tasks: Vec<_> = by_shard
            .into_iter()
            .map(|(s, keys)| {
                let shard = self.shard.clone();
                glommio::spawn_local(async move {
                    shard
                        .invoke_on(s, move |shard| async move {
                            Broker::of(&shard)
                                .open_many(keys)
                                .await
                                .map_err(|(_, _, e)| e)
                        })
                        .await
                })
            })
            .collect();
        let mut first_error = None;
        for t in tasks {
            let result = t.await.map_err(WireError::from).and_then(|r| r);
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn remove_partition_dirs(
        &self,
        topic: &str,
        from: u32,
        to: u32,
    ) -> Result<(), WireError> {
        let dirs: Vec<PathBuf> = (from..to)
            .map(|p| partition_dir(&self.config.data_dir, topic, p))
            .collect();
        glommio::executor()
            .spawn_blocking(move || {
                for d in dirs {
                    match std::fs::remove_dir_all(&d) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(format!("cannot remove {}: {e}", d.display())),
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| WireError::new(ErrorCode::StorageError, e))
    }

    /// Creates a topic. Runs on the metadata shard.
    pub async fn create_topic(
        &self,
        name: String,
        partitions: u32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), WireError> {
        debug_assert_eq!(self.shard.id(), METADATA_SHARD);
        if self.config.cluster.is_some() {
            return self
                .submit_create_topic(name, partitions, None, None, overrides, validate_only)
                .await;
        }
        validate_topic_name(&name).map_err(|e| WireError::new(ErrorCode::InvalidTopicName, e))?;
        if partitions == 0 || partitions > PARTITIONS_MAX {
            return Err(WireError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "a topic needs 1 to {PARTITIONS_MAX} partitions, {partitions} were asked for"
                ),
            ));
        }
        let config = TopicConfig::resolve(&self.topic_defaults(), &overrides)
            .map_err(|e| WireError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        let _lock = self
            .meta_lock
            .acquire_permit(1)
            .await
            .map_err(|_| stopping())?;
        let mut topics = (*self.topics()).clone();
        if topics.get(&name).is_some() {
            return Err(WireError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        // Leftovers of an interrupted delete must not come back as data.
        self.remove_partition_dirs(&name, 0, partitions).await?;
        topics.topics.insert(
            name.clone(),
            Arc::new(TopicMeta::new(name.clone(), partitions, overrides, config)),
        );
        self.commit(topics).await?;
        self.open_partitions(&name, 0, partitions).await
    }

    /// Deletes a topic and its data. Runs on the metadata shard.
    pub async fn delete_topic(&self, name: String) -> Result<(), WireError> {
        debug_assert_eq!(self.shard.id(), METADATA_SHARD);
        refuse_offsets_topic(&name, "deleted")?;
        if self.config.cluster.is_some() {
            return self.submit(ControllerCommand::DeleteTopic { name }).await;
        }
        let _lock = self
            .meta_lock
            .acquire_permit(1)
            .await
            .map_err(|_| stopping())?;
        let mut topics = (*self.topics()).clone();
        let Some(meta) = topics.topics.remove(&name) else {
            return Err(unknown_topic(&name));
        };
        if let Err(e) = self.commit(topics.clone()).await {
            if !RESOURCE_SHORT_TEXTS.iter().any(|t| e.message.contains(t)) {
                return Err(e);
            }
            // The disk is full or descriptors ran out, which deleting this topic is
            // meant to fix: close and free its data first, then record the deletion. (A crash in between leaves the
            // topic listed with empty partitions, which a second delete removes.)
            tracing::warn!(topic = %name, "disk full: removing the topic's data before its metadata");
            self.on_every_shard(&name, |b, t| {
                Box::pin(async move { b.close_topic(&t).await })
            })
            .await;
            self.remove_partition_dirs(&name, 0, meta.partitions)
                .await?;
            return self.commit(topics).await;
        }
        self.on_every_shard(&name, |b, t| {
            Box::pin(async move { b.close_topic(&t).await })
        })
        .await;
        // Kafka removes a deleted topic's committed offsets: a topic created again
        // under the name must not start its groups at the old positions.
        self.on_every_shard(&name, |b, t| {
            Box::pin(async move { crate::group_host::forget_topic(&b, &t).await })
        })
        .await;
        self.remove_partition_dirs(&name, 0, meta.partitions).await
    }

    /// Raises a topic's partition count. Runs on the metadata shard.
    pub async fn create_partitions(&self, name: String, total: u32) -> Result<(), WireError> {
        debug_assert_eq!(self.shard.id(), METADATA_SHARD);
        // Its partition count decides which partition coordinates each group.
        refuse_offsets_topic(&name, "given more partitions")?;
        if self.config.cluster.is_some() {
            return self
                .submit(ControllerCommand::CreatePartitions {
                    name,
                    total,
                    assignments: None,
                    validate_only: false,
                })
                .await;
        }
        let _lock = self
            .meta_lock
            .acquire_permit(1)
            .await
            .map_err(|_| stopping())?;
        let mut topics = (*self.topics()).clone();
        let Some(meta) = topics.topics.get(&name).cloned() else {
            return Err(unknown_topic(&name));
        };
        if total <= meta.partitions || total > PARTITIONS_MAX {
            return Err(WireError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "topic {name} has {} partitions; the new count must be larger and at most {PARTITIONS_MAX}, {total} was asked for",
                    meta.partitions
                ),
            ));
        }
        self.remove_partition_dirs(&name, meta.partitions, total)
            .await?;
        let mut new_meta = (*meta).clone();
        new_meta.partitions = total;
        topics.topics.insert(name.clone(), Arc::new(new_meta));
        self.commit(topics).await?;
        self.open_partitions(&name, meta.partitions, total).await
    }

    /// Sets (value) or resets (no value) topic configs. Runs on the metadata shard.
    pub async fn alter_configs(
        &self,
        name: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), WireError> {
        debug_assert_eq!(self.shard.id(), METADATA_SHARD);
        if self.config.cluster.is_some() {
            let mut set = BTreeMap::new();
            let mut delete = Vec::new();
            for (k, v) in changes {
                match v {
                    Some(v) => {
                        set.insert(k, v);
                    }
                    None => delete.push(k),
                }
            }
            return self
                .submit(ControllerCommand::AlterTopicConfigs {
                    name,
                    set,
                    delete,
                    incremental: true,
                    validate_only,
                })
                .await;
        }
        let _lock = self
            .meta_lock
            .acquire_permit(1)
            .await
            .map_err(|_| stopping())?;
        let mut topics = (*self.topics()).clone();
        let Some(meta) = topics.topics.get(&name).cloned() else {
            return Err(unknown_topic(&name));
        };
        let mut overrides = meta.overrides.clone();
        for (k, v) in changes {
            match v {
                Some(v) => {
                    overrides.insert(k, v);
                }
                None => {
                    // Resetting an unknown key is still an error that names it.
                    TopicConfig::default()
                        .apply(&k, "")
                        .err()
                        .filter(|e| {
                            matches!(e, crate::topic_config::ConfigError::UnknownKey { .. })
                        })
                        .map_or(Ok(()), |e| {
                            Err(WireError::new(ErrorCode::InvalidConfig, e.to_string()))
                        })?;
                    overrides.remove(&k);
                }
            }
        }
        let config = TopicConfig::resolve(&self.topic_defaults(), &overrides)
            .map_err(|e| WireError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let mut new_meta = (*meta).clone();
        new_meta.overrides = overrides;
        new_meta.config = config;
        topics.topics.insert(name.clone(), Arc::new(new_meta));
        self.commit(topics).await?;
        self.on_every_shard(&name, |b, t| Box::pin(async move { b.apply_config(&t) }))
            .await;
        Ok(())
    }
}

impl Broker {
    /// Creates a topic with a replication factor and/or explicit replica assignments
    /// (Kafka CreateTopics); on a single node only the defaults are possible.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_topic_replicated(
        &self,
        name: String,
        partitions: u32,
        replication_factor: Option<u16>,
        assignments: Option<Vec<Vec<u64>>>,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), WireError> {
        if self.config.cluster.is_none() {
            if replication_factor.is_some_and(|rf| rf != 1) || assignments.is_some() {
                return Err(WireError::new(
                    ErrorCode::InvalidReplicationFactor,
                    "this broker is a single node: topics have one replica; start a cluster \
                     (--node-id, --cluster-listen, --voters) for more",
                ));
            }
            return self
                .create_topic(name, partitions, overrides, validate_only)
                .await;
        }
        self.submit_create_topic(
            name,
            partitions,
            replication_factor,
            assignments,
            overrides,
            validate_only,
        )
        .await
    }

    async fn submit_create_topic(
        &self,
        name: String,
        partitions: u32,
        replication_factor: Option<u16>,
        assignments: Option<Vec<Vec<u64>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), WireError> {
        self.submit(ControllerCommand::CreateTopic {
            name,
            partitions: Some(partitions).filter(|_| assignments.is_none()),
            replication_factor,
            assignments,
            configs,
            validate_only,
        })
        .await
    }

    /// Carries out a metadata change through the controller quorum (a cluster only).
    async fn submit(&self, cmd: ControllerCommand) -> Result<(), WireError> {
        crate::cluster::node::submit(&self.shard, cmd)
            .await
            .map(|_| ())
    }
}

/// A claim to open one partition; dropping it lets the partition's other users look
/// again (they find the log, or claim the open themselves if this one failed).
struct OpenClaim {
    broker: Rc<Broker>,
    key: PartitionKey,
    gate: Rc<Semaphore>,
}

impl Drop for OpenClaim {
    fn drop(&mut self) {
        self.broker.opening.borrow_mut().remove(&self.key);
        self.gate.close();
    }
}

/// UnknownPartition unless `partition` is one of `meta`'s.
fn check_partition(meta: &TopicMeta, partition: u32) -> Result<(), WireError> {
    if partition >= meta.partitions {
        return Err(WireError::new(
            ErrorCode::UnknownPartition,
            format!(
                "topic {} has {} partitions; partition {partition} does not exist",
                meta.name, meta.partitions
            ),
        ));
    }
    Ok(())
}

/// Runs `job` on every item on this shard, `workers` at a time, and returns the
/// results in item order.
async fn run_bounded<T, R, Fut>(
    items: Vec<T>,
    workers: usize,
    job: impl Fn(T) -> Fut + Clone + 'static,
) -> Vec<R>
where
    T: 'static,
    R: 'static,
    Fut: Future<Output = R> + 'static,
{
    let n = items.len();
    let queue = Rc::new(RefCell::new(
        items
            .into_iter()
            .enumerate()
            .collect::<std::collections::VecDeque<_>>(),
    ));
    let results: Rc<RefCell<Vec<Option<R>>>> =
        Rc::new(RefCell::new((0..n).map(|_| None).collect()));
    let running: Vec<_> = (0..workers.min(n))
        .map(|_| {
            let (queue, results, job) = (Rc::clone(&queue), Rc::clone(&results), job.clone());
            glommio::spawn_local(async move {
                loop {
                    let next = queue.borrow_mut().pop_front();
                    let Some((i, item)) = next else { break };
                    let r = job(item).await;
                    results.borrow_mut()[i] = Some(r);
                }
            })
        })
        .collect();
    for t in running {
        t.await;
    }
    let results = std::mem::take(&mut *results.borrow_mut());
    results
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// UnknownTopic for `name`.
pub fn unknown_topic(name: &str) -> WireError {
    WireError::new(
        ErrorCode::UnknownTopic,
        format!("topic {name:?} does not exist"),
    )
}

/// The group coordinators live in `__consumer_offsets`; it must stay as it is.
fn refuse_offsets_topic(name: &str, what: &str) -> Result<(), WireError> {
    if name == crate::metadata::CONSUMER_OFFSETS_TOPIC {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("topic {name} holds the consumer groups' offsets and cannot be {what}"),
        ));
    }
    Ok(())
}

/// How a full disk (ENOSPC) and running out of descriptors (EMFILE, ENFILE) read in
/// an `std::io::Error` message.
const RESOURCE_SHORT_TEXTS: [&str; 3] = [
    "No space left on device",
    "Too many open files",
    "Too many open files in system",
];

fn stopping() -> WireError {
    WireError::new(ErrorCode::BrokerShuttingDown, "the broker is shutting down")
}

/// Runs `job(broker, item)` for every item on the shard that owns it (one
/// `invoke_on` per shard, items of one shard run concurrently), and returns the
/// results in item order. Items move to their shard by ownership.
pub async fn scatter<T, R, Fut>(
    broker: &Broker,
    items: Vec<(ShardId, T)>,
    job: fn(Rc<Broker>, T) -> Fut,
    failed: fn(WireError) -> R,
) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let n = items.len();
    let mut by_shard: BTreeMap<ShardId, Vec<(usize, T)>> = BTreeMap::new();
    for (i, (s, item)) in items.into_iter().enumerate() {
        by_shard.entry(s).or_default().push((i, item));
    }
    let mut tasks = Vec::with_capacity(by_shard.len());
    for (s, group) in by_shard {
        let indexes: Vec<usize> = group.iter().map(|(i, _)| *i).collect();
        let shard = broker.shard.clone();
        let task = glommio::spawn_local(async move {
            shard
                .invoke_on(s, move |shard| async move {
                    let b = Broker::of(&shard);
                    let running: Vec<_> = group
                        .into_iter()
                        .map(|(_, item)| glommio::spawn_local(job(Rc::clone(&b), item)))
                        .collect();
                    let mut out = Vec::with_capacity(running.len());
                    for t in running {
                        out.push(t.await);
                    }
                    out
                })
                .await
        });
        tasks.push((indexes, task));
    }
    let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for (indexes, task) in tasks {
        match task.await {
            Ok(out) => {
                for (i, r) in indexes.into_iter().zip(out) {
                    results[i] = Some(r);
                }
            }
            Err(e) => {
                let e = WireError::from(e);
                for i in indexes {
                    results[i] = Some(failed(e.clone()));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every item got a result"))
        .collect()
}
