//! In a cluster the controller decides the topics; each broker applies the topics of
//! every new metadata image (on the metadata shard): removes the data of topics that
//! are gone, publishes the snapshot, gives changed configs to open logs, and opens
//! (with their Raft replicas) the partitions this broker hosts.

use std::sync::Arc;

use super::topic_id_marker::{claim_partition_dir, Claim};
use super::{stopping, Broker, PartitionKey, METADATA_SHARD};
use crate::errors::WireError;
use crate::metadata::{partition_dir, Topics};

impl Broker {
    /// Applies the topics of a new metadata image. Runs on the metadata shard.
    pub(crate) async fn apply_cluster_topics(&self, new: Topics) -> Result<(), WireError> {
        debug_assert_eq!(self.shard.id(), METADATA_SHARD);
        let _lock = self
            .meta_lock
            .acquire_permit(1)
            .await
            .map_err(|_| stopping())?;
        let old = self.topics();
        // Deleted, or deleted and created again (another id): their data goes first.
        let gone: Vec<(String, u32)> = old
            .topics
            .values()
            .filter(|t| new.get(&t.name).is_none_or(|n| n.id != t.id))
            .map(|t| (t.name.clone(), t.partitions))
            .collect();
        if !gone.is_empty() {
            let mut interim = (*old).clone();
            for (name, _) in &gone {
                interim.topics.remove(name);
            }
            self.meta_cell.publish(Arc::new(interim));
            for (name, partitions) in &gone {
                self.on_every_shard(name, |b, t| {
                    Box::pin(async move { b.close_topic(&t).await })
                })
                .await;
                self.on_every_shard(name, |b, t| {
                    Box::pin(async move { crate::group_host::forget_topic(&b, &t).await })
                })
                .await;
                self.remove_partition_dirs(name, 0, *partitions).await?;
            }
        }
        let old = self.topics();
        let mut configs_changed = Vec::new();
        for t in new.topics.values() {
            // A topic new to this snapshot keeps what its directories hold: after a
            // restart every topic is new here (the image is replayed from the log),
            // and its partitions' data is the replica's data. A topic deleted while
            // this broker was down and created again under its name has another id:
            // `host_assigned_partitions` finds its directories' `topic.id` marker
            // differs and empties them before opening.
            match old.get(&t.name) {
                None => {}
                Some(o) => {
                    if o.partitions < t.partitions {
                        self.remove_partition_dirs(&t.name, o.partitions, t.partitions)
                            .await?;
                    }
                    if o.config != t.config {
                        configs_changed.push(t.name.clone());
                    }
                }
            }
        }
        self.meta_cell.publish(Arc::new(new));
        for name in configs_changed {
            self.on_every_shard(&name, |b, t| Box::pin(async move { b.apply_config(&t) }))
                .await;
        }
        for s in 0..self.shard.shard_count() {
            if let Err(e) = self
                .shard
                .invoke_on(s, |shard| async move {
                    Broker::of(&shard).host_assigned_partitions().await;
                })
                .await
            {
                tracing::warn!(shard = s, error = %e, "partition hosting did not reach a shard");
            }
        }
        Ok(())
    }

    /// Closes, and deletes the data of, the partitions whose replica runs on this shard
    /// but that this broker no longer hosts (a reassignment moved them away).
    async fn release_unhosted_partitions(
        &self,
        me: u64,
        topics: &Topics,
        goals: &crate::cluster::reassignment::PartitionGoals,
    ) {
        let replicas = crate::cluster::replicas::ShardReplicas::of(&self.shard);
        let gone: Vec<(PartitionKey, strata_engine::Log)> = {
            let mut logs = self.logs.borrow_mut();
            let keys: Vec<PartitionKey> = logs
                .keys()
                .filter(|(name, p)| replicas.get(name, *p).is_some())
                .filter(|(name, p)| {
                    topics.get(name).is_some_and(|t| {
                        let group = crate::replication::GroupId::Partition {
                            topic_id: t.id,
                            partition: *p,
                        };
                        let replica = t.replicas.get(*p as usize).is_some_and(|r| r.contains(&me));
                        !replica && !goals.is_adding(&group, me)
                    })
                })
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| logs.remove(&k).map(|log| (k, log)))
                .collect()
        };
        if gone.is_empty() {
            return;
        }
        for (key, _) in &gone {
            crate::cluster::replicas::detach(&self.shard, key);
            tracing::info!(topic = %key.0, partition = key.1, "replica moved away: its data is deleted");
        }
        let keys: Vec<PartitionKey> = gone.iter().map(|(k, _)| k.clone()).collect();
        self.close_many(gone).await;
        for (topic, p) in keys {
            if let Err(e) = self.remove_partition_dirs(&topic, p, p + 1).await {
                tracing::warn!(%topic, partition = p, error = %e.message, "moved replica's data not deleted");
            }
        }
    }

    /// Opens, with their replicas, the partitions this shard owns that the topics
    /// place on this broker and that have no replica here yet.
    pub(crate) async fn host_assigned_partitions(&self) {
        let Some(cluster) = self.config.cluster.as_ref() else {
            return;
        };
        let me = cluster.node_id;
        let replicas = crate::cluster::replicas::ShardReplicas::of(&self.shard);
        let goals = crate::cluster::reassignment::PartitionGoals::of(&self.shard);
        let topics = self.topics();
        self.release_unhosted_partitions(me, &topics, &goals).await;
        let mut to_open: Vec<PartitionKey> = Vec::new();
        let mut to_attach = Vec::new();
        for t in topics.topics.values() {
            for p in 0..t.partitions {
                if self.owner(&t.name, p) != self.shard.id() {
                    continue;
                }
                let group = crate::replication::GroupId::Partition {
                    topic_id: t.id,
                    partition: p,
                };
                let hosted = t.replicas.get(p as usize).is_some_and(|r| r.contains(&me))
                    || goals.is_adding(&group, me);
                if !hosted || replicas.get(&t.name, p).is_some() {
                    continue;
                }
                let key = (t.name.clone(), p);
                match self.logs.borrow().get(&key) {
                    Some(log) => to_attach.push((key, log.clone())),
                    None => to_open.push(key),
                }
            }
        }
        for (key, log) in to_attach {
            crate::cluster::replicas::attach_or_retry(self, &key, &log).await;
        }
        if !to_open.is_empty() {
            self.claim_partition_dirs(&topics, &to_open).await;
            if let Err((topic, partition, e)) = self.open_many(to_open).await {
                tracing::warn!(%topic, partition, error = %e.message, "partition offline");
            }
        }
    }

    /// Marks each partition directory about to open with its topic's id, emptying one
    /// that holds another id's data (see `topic_id_marker`).
    async fn claim_partition_dirs(&self, topics: &crate::metadata::Topics, keys: &[PartitionKey]) {
        let dirs: Vec<(std::path::PathBuf, [u8; 16])> = keys
            .iter()
            .filter_map(|(name, p)| {
                let id = topics.get(name)?.id;
                Some((partition_dir(&self.config.data_dir, name, *p), id))
            })
            .collect();
        let results = glommio::executor()
            .spawn_blocking(move || {
                dirs.into_iter()
                    .map(|(dir, id)| {
                        let r = claim_partition_dir(&dir, &id);
                        (dir, r)
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        for (dir, r) in results {
            match r {
                Ok(Claim::Kept) => {}
                Ok(Claim::Replaced { old_id }) => tracing::info!(
                    dir = %dir.display(),
                    %old_id,
                    "removed the data of an earlier topic of the same name"
                ),
                // The open that follows reports the directory's trouble.
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot mark the partition directory")
                }
            }
        }
    }
}
