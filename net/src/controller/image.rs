//! The metadata image: the cluster metadata as the records so far make it — every
//! broker applies the controller log to one and hands snapshots of it to its shards.
//!
//! [`MetadataImage::apply`] is deterministic (the same records give the same image on
//! every broker) and atomic per record: a refused record leaves the image as it was.
//! [`MetadataImage::snapshot_records`] writes the image back as records that rebuild
//! an equal image, which is what a controller snapshot holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_raft::NodeId;

use super::records::{BrokerRegistration, MetadataRecord, REPLICATION_FACTOR_MAX};
use super::replicated_config::{resolve_replicated_config, ReplicatedConfig};
use crate::broker_settings::DynamicBrokerConfigs;
use crate::metadata::{TopicMeta, Topics, PARTITIONS_MAX};
use crate::topic_config::ConfigError;

/// The leader epoch of a partition no leader has reported on yet.
pub const LEADER_EPOCH_INITIAL: i32 = 0;

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerState {
    pub registration: BrokerRegistration,
    /// Silent for longer than the session timeout: gets no new replicas or leaders.
    pub fenced: bool,
}

/// One partition's placement and leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    /// The replicas, the first one the preferred leader.
    pub replicas: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub isr: Vec<NodeId>,
    /// The replicas a reassignment in progress moves to (`None`: none in progress).
    pub target: Option<Vec<NodeId>>,
    /// A preferred-leader election asked of the leader of this epoch (moot once the
    /// epoch moved on).
    pub preferred_election_epoch: Option<i32>,
}

impl PartitionImage {
    /// A partition just created: no leader yet, every replica in sync (none has data).
    pub fn new(replicas: Vec<NodeId>) -> PartitionImage {
        PartitionImage {
            isr: replicas.clone(),
            replicas,
            leader: None,
            leader_epoch: LEADER_EPOCH_INITIAL,
            target: None,
            preferred_election_epoch: None,
        }
    }

    /// The replicas a reassignment in progress adds (in the target, not yet replicas).
    pub fn adding(&self) -> Vec<NodeId> {
        self.target.as_ref().map_or_else(Vec::new, |t| {
            t.iter()
                .copied()
                .filter(|r| !self.replicas.contains(r))
                .collect()
        })
    }

    /// The replicas a reassignment in progress removes (replicas not in the target).
    pub fn removing(&self) -> Vec<NodeId> {
        self.target.as_ref().map_or_else(Vec::new, |t| {
            self.replicas
                .iter()
                .copied()
                .filter(|r| !t.contains(r))
                .collect()
        })
    }

    /// Whether broker `id` holds (or is getting) a replica: a replica or in the target.
    pub fn is_hosted_by(&self, id: NodeId) -> bool {
        self.replicas.contains(&id) || self.target.as_ref().is_some_and(|t| t.contains(&id))
    }
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: [u8; 16],
    /// The configs set on this topic (not the defaults).
    pub overrides: BTreeMap<String, String>,
    pub partitions: Vec<PartitionImage>,
}

impl TopicImage {
    /// The replication factor (every partition has the same).
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }
}

/// Why a record does not apply to the image.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    #[error("the cluster id is already set to another value")]
    ClusterIdChanged,
    #[error("broker {0} is not registered")]
    UnknownBroker(NodeId),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("a topic with id {0} already exists")]
    TopicIdExists(String),
    #[error("no topic has id {0}")]
    UnknownTopicId(String),
    #[error("topic {topic}: {reason}")]
    BadPartitions { topic: String, reason: String },
    #[error("producer id block {first}+{count} is not after the next free id {next}")]
    BadProducerIdBlock { first: i64, count: i64, next: i64 },
    #[error("partition {partition} of topic id {topic_id}: {reason}")]
    BadReplicas {
        topic_id: String,
        partition: u32,
        reason: String,
    },
}

/// The cluster metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataImage {
    cluster_id: Option<[u8; 16]>,
    brokers: BTreeMap<NodeId, BrokerState>,
    topics: BTreeMap<String, TopicImage>,
    /// Topic id → name (an index over `topics`).
    names_by_id: BTreeMap<[u8; 16], String>,
    /// The first producer id not handed out yet.
    next_producer_id: i64,
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why one partition's replica list is malformed (empty, too long, a broker twice).
fn check_replica_set(replicas: &[NodeId]) -> Option<String> {
    if replicas.is_empty() || replicas.len() > REPLICATION_FACTOR_MAX {
        return Some(format!(
            "{} replicas, 1 to {REPLICATION_FACTOR_MAX} are allowed",
            replicas.len()
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() != replicas.len()).then(|| format!("a replica is listed twice: {replicas:?}"))
}

/// Why a set of new partitions' replicas is malformed, if it is.
fn check_replicas(replicas: &[Vec<NodeId>], rf: Option<usize>) -> Option<String> {
    let rf = rf.or_else(|| replicas.first().map(Vec::len))?;
    for (p, r) in replicas.iter().enumerate() {
        if r.is_empty() {
            return Some(format!("partition {p} has no replicas"));
        }
        if r.len() != rf {
            return Some(format!(
                "partition {p} has {} replicas, the others {rf}",
                r.len()
            ));
        }
        let mut sorted = r.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != r.len() {
            return Some(format!("partition {p} lists a replica twice: {r:?}"));
        }
    }
    None
}

impl MetadataImage {
    /// The image of an empty log.
    pub fn new() -> MetadataImage {
        MetadataImage::default()
    }

    /// Applies one record. A stale `PartitionLeader` (an epoch below the known one,
    /// or a topic deleted since) changes nothing and is not an error: it raced with
    /// a newer record and lost.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        use MetadataRecord as R;
        match record {
            R::ClusterId(id) => match self.cluster_id {
                Some(known) if known != *id => return Err(ApplyError::ClusterIdChanged),
                _ => self.cluster_id = Some(*id),
            },
            R::RegisterBroker(registration) => {
                self.brokers.insert(
                    registration.id,
                    BrokerState {
                        registration: registration.clone(),
                        fenced: false,
                    },
                );
            }
            R::FenceBroker { id } | R::UnfenceBroker { id } => {
                let broker = self
                    .brokers
                    .get_mut(id)
                    .ok_or(ApplyError::UnknownBroker(*id))?;
                broker.fenced = matches!(record, R::FenceBroker { .. });
            }
            R::CreateTopic {
                name,
                id,
                overrides,
                replicas,
            } => {
                if self.topics.contains_key(name) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                if self.names_by_id.contains_key(id) {
                    return Err(ApplyError::TopicIdExists(hex(id)));
                }
                let bad = |reason: String| ApplyError::BadPartitions {
                    topic: name.clone(),
                    reason,
                };
                if replicas.is_empty() || replicas.len() > PARTITIONS_MAX as usize {
                    return Err(bad(format!(
                        "{} partitions, 1 to {PARTITIONS_MAX} are allowed",
                        replicas.len()
                    )));
                }
                if let Some(reason) = check_replicas(replicas, None) {
                    return Err(bad(reason));
                }
                self.names_by_id.insert(*id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        overrides: overrides.clone(),
                        partitions: replicas.iter().cloned().map(PartitionImage::new).collect(),
                    },
                );
            }
            R::DeleteTopic { id } => {
                let name = self
                    .names_by_id
                    .remove(id)
                    .ok_or_else(|| ApplyError::UnknownTopicId(hex(id)))?;
                self.topics.remove(&name);
            }
            R::CreatePartitions { id, replicas } => {
                let topic = self.topic_by_id_mut(id)?;
                let total = topic.partitions.len() + replicas.len();
                let bad = |reason: String| ApplyError::BadPartitions {
                    topic: topic.name.clone(),
                    reason,
                };
                if replicas.is_empty() || total > PARTITIONS_MAX as usize {
                    return Err(bad(format!(
                        "{} new partitions for a total of {total}, at most {PARTITIONS_MAX} are allowed",
                        replicas.len()
                    )));
                }
                if let Some(reason) = check_replicas(replicas, Some(topic.replication_factor())) {
                    return Err(bad(reason));
                }
                topic
                    .partitions
                    .extend(replicas.iter().cloned().map(PartitionImage::new));
            }
            R::AlterTopicConfigs { id, overrides } => {
                self.topic_by_id_mut(id)?.overrides = overrides.clone();
            }
            R::PartitionLeader {
                topic_id,
                partition,
                leader,
                leader_epoch,
                isr,
            } => {
                let Some(p) = self
                    .names_by_id
                    .get(topic_id)
                    .and_then(|name| self.topics.get_mut(name))
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                else {
                    return Ok(());
                };
                if *leader_epoch < p.leader_epoch {
                    return Ok(());
                }
                p.leader = *leader;
                p.leader_epoch = *leader_epoch;
                p.isr = isr.clone();
            }
            R::AlterReassignment {
                topic_id,
                partition,
                target,
            } => {
                if let Some(reason) = target.as_ref().and_then(|t| check_replica_set(t)) {
                    return Err(ApplyError::BadReplicas {
                        topic_id: hex(topic_id),
                        partition: *partition,
                        reason,
                    });
                }
                let p = self.partition_mut(topic_id, *partition)?;
                p.target = target.clone().filter(|t| *t != p.replicas);
            }
            R::CompleteReassignment {
                topic_id,
                partition,
                replicas,
            } => {
                if let Some(reason) = check_replica_set(replicas) {
                    return Err(ApplyError::BadReplicas {
                        topic_id: hex(topic_id),
                        partition: *partition,
                        reason,
                    });
                }
                let p = self.partition_mut(topic_id, *partition)?;
                p.replicas = replicas.clone();
                p.target = None;
                p.isr.retain(|r| replicas.contains(r));
                if p.leader.is_some_and(|l| !replicas.contains(&l)) {
                    p.leader = None;
                }
            }
            R::ElectPreferredLeader {
                topic_id,
                partition,
                leader_epoch,
            } => {
                let p = self.partition_mut(topic_id, *partition)?;
                p.preferred_election_epoch = Some(*leader_epoch);
            }
            R::UnregisterBroker { id } => {
                if self.brokers.remove(id).is_none() {
                    return Err(ApplyError::UnknownBroker(*id));
                }
            }
            R::ProducerIdBlock { first, count } => {
                let end = first.checked_add(*count).filter(|_| *count >= 0);
                match end {
                    Some(end) if *first >= self.next_producer_id => self.next_producer_id = end,
                    _ => {
                        return Err(ApplyError::BadProducerIdBlock {
                            first: *first,
                            count: *count,
                            next: self.next_producer_id,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies records in order, stopping at the first refused one (the records
    /// before it stay applied, on every broker alike).
    pub fn apply_all(&mut self, records: &[MetadataRecord]) -> Result<(), ApplyError> {
        records.iter().try_for_each(|r| self.apply(r))
    }

    fn partition_mut(
        &mut self,
        topic_id: &[u8; 16],
        partition: u32,
    ) -> Result<&mut PartitionImage, ApplyError> {
        let topic = self.topic_by_id_mut(topic_id)?;
        let count = topic.partitions.len();
        topic
            .partitions
            .get_mut(partition as usize)
            .ok_or_else(|| ApplyError::BadReplicas {
                topic_id: hex(topic_id),
                partition,
                reason: format!("the topic has {count} partitions"),
            })
    }

    fn topic_by_id_mut(&mut self, id: &[u8; 16]) -> Result<&mut TopicImage, ApplyError> {
        self.names_by_id
            .get(id)
            .and_then(|name| self.topics.get_mut(name))
            .ok_or_else(|| ApplyError::UnknownTopicId(hex(id)))
    }

    /// Records that rebuild this image when applied to an empty one.
    pub fn snapshot_records(&self) -> Vec<MetadataRecord> {
        use MetadataRecord as R;
        let mut out = Vec::new();
        if let Some(id) = self.cluster_id {
            out.push(R::ClusterId(id));
        }
        for b in self.brokers.values() {
            out.push(R::RegisterBroker(b.registration.clone()));
            if b.fenced {
                out.push(R::FenceBroker {
                    id: b.registration.id,
                });
            }
        }
        for t in self.topics.values() {
            out.push(R::CreateTopic {
                name: t.name.clone(),
                id: t.id,
                overrides: t.overrides.clone(),
                replicas: t.partitions.iter().map(|p| p.replicas.clone()).collect(),
            });
            for (i, p) in t.partitions.iter().enumerate() {
                // A partition as created needs no record of its own.
                let fresh = PartitionImage::new(p.replicas.clone());
                if (p.leader, p.leader_epoch, &p.isr)
                    != (fresh.leader, fresh.leader_epoch, &fresh.isr)
                {
                    out.push(R::PartitionLeader {
                        topic_id: t.id,
                        partition: i as u32,
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        isr: p.isr.clone(),
                    });
                }
                if let Some(target) = &p.target {
                    out.push(R::AlterReassignment {
                        topic_id: t.id,
                        partition: i as u32,
                        target: Some(target.clone()),
                    });
                }
                if let Some(epoch) = p.preferred_election_epoch {
                    out.push(R::ElectPreferredLeader {
                        topic_id: t.id,
                        partition: i as u32,
                        leader_epoch: epoch,
                    });
                }
            }
        }
        if self.next_producer_id > 0 {
            out.push(R::ProducerIdBlock {
                first: 0,
                count: self.next_producer_id,
            });
        }
        out
    }

    pub fn cluster_id(&self) -> Option<[u8; 16]> {
        self.cluster_id
    }

    /// Every registered broker, fenced or not, by id.
    pub fn brokers(&self) -> &BTreeMap<NodeId, BrokerState> {
        &self.brokers
    }

    pub fn broker(&self, id: NodeId) -> Option<&BrokerState> {
        self.brokers.get(&id)
    }

    /// The unfenced brokers, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| &b.registration)
    }

    /// Every topic, by name.
    pub fn topics(&self) -> &BTreeMap<String, TopicImage> {
        &self.topics
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<&TopicImage> {
        self.names_by_id.get(id).and_then(|n| self.topics.get(n))
    }

    /// Partition `partition` of the topic with id `topic_id`.
    pub fn partition(&self, topic_id: &[u8; 16], partition: u32) -> Option<&PartitionImage> {
        self.topic_by_id(topic_id)?
            .partitions
            .get(partition as usize)
    }

    /// The replicas of a partition, the preferred leader first.
    pub fn replicas(&self, topic_id: &[u8; 16], partition: u32) -> Option<&[NodeId]> {
        self.partition(topic_id, partition)
            .map(|p| p.replicas.as_slice())
    }

    /// The current leader of a partition and its epoch (`None` leader: none yet or
    /// none now).
    pub fn leader(&self, topic_id: &[u8; 16], partition: u32) -> Option<(Option<NodeId>, i32)> {
        self.partition(topic_id, partition)
            .map(|p| (p.leader, p.leader_epoch))
    }

    /// The first producer id not handed out yet.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Partitions in all topics (placement starts its rotation here).
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// The effective config of `topic`, resolved over `defaults` (the broker's topic
    /// defaults, dynamic configs applied) as a single-node topic's is.
    pub fn topic_config(
        &self,
        topic: &TopicImage,
        defaults: &BTreeMap<String, String>,
        min_insync_default: u16,
    ) -> Result<ReplicatedConfig, ConfigError> {
        resolve_replicated_config(
            defaults,
            &topic.overrides,
            topic.replication_factor(),
            min_insync_default,
        )
    }

    /// The topics as the single-node broker publishes them to its shards, configs
    /// resolved over `defaults` (the config file's topic defaults with `dynamic`
    /// applied, `DynamicBrokerConfigs::topic_defaults`), which `dynamic` is kept with.
    pub fn to_topics(
        &self,
        defaults: &BTreeMap<String, String>,
        dynamic: Arc<DynamicBrokerConfigs>,
    ) -> Result<Topics, ImageError> {
        let mut topics = Topics {
            topics: BTreeMap::new(),
            dynamic,
        };
        for t in self.topics.values() {
            let resolved =
                self.topic_config(t, defaults, 1)
                    .map_err(|error| ImageError::TopicConfig {
                        topic: t.name.clone(),
                        error,
                    })?;
            topics.topics.insert(
                t.name.clone(),
                Arc::new(TopicMeta {
                    name: t.name.clone(),
                    partitions: t.partitions.len() as u32,
                    overrides: t.overrides.clone(),
                    config: resolved.config,
                    id: t.id,
                    replicas: t.partitions.iter().map(|p| p.replicas.clone()).collect(),
                }),
            );
        }
        Ok(topics)
    }
}

/// Why the image cannot be turned into what the broker publishes.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    #[error("topic {topic}: {error}")]
    TopicConfig { topic: String, error: ConfigError },
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
