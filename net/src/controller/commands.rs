//! Controller commands: what brokers ask the controller for, and [`plan`], which
//! validates a command against the image and turns it into the records to commit.
//!
//! `plan` is pure: no clock (`now_ms` is passed in), no I/O. The controller leader
//! plans each command against its image, proposes the records, and answers once they
//! are committed. Validations give the codes and words the single-node broker gives
//! today (`Broker::create_topic`, `delete_topic`, `create_partitions`,
//! `alter_configs`), plus what only a cluster can get wrong (replication factors,
//! replica assignments, broker registrations, leader epochs).

use std::collections::BTreeMap;

use strata_raft::NodeId;

use super::error::ControllerError;
use super::image::MetadataImage;
use super::placement::{place_replicas, validate_assignments};
use super::reassignment::{plan_alter, plan_complete, plan_elect_preferred, plan_unregister};
use super::records::{BrokerRegistration, MetadataRecord, ADDRESS_BYTES_MAX, HOST_BYTES_MAX};
use super::replicated_config::resolve_replicated_config;
use crate::metadata::{validate_topic_name, CONSUMER_OFFSETS_TOPIC, PARTITIONS_MAX};
use crate::topic_config::{key_spec, ConfigError};

/// Most producer ids one [`ControllerCommand::AllocateProducerIds`] may take.
pub const PRODUCER_IDS_PER_BLOCK_MAX: i64 = 1_000_000;

/// Most leader reports one [`ControllerCommand::ReportLeaders`] carries.
pub const LEADER_REPORTS_MAX: usize = 1_000;

/// One partition leader's report: its leadership and in-sync set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderReport {
    pub topic_id: [u8; 16],
    pub partition: u32,
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub isr: Vec<NodeId>,
}

/// What a broker asks the controller for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerCommand {
    /// Set the cluster id once (the first controller leader proposes a fresh one,
    /// or the one a single-node data dir already has).
    SetClusterId([u8; 16]),
    RegisterBroker(BrokerRegistration),
    /// A broker is alive (liveness itself is [`super::liveness::BrokerLiveness`]);
    /// a fenced one is unfenced.
    BrokerHeartbeat {
        id: NodeId,
        incarnation: u64,
    },
    CreateTopic {
        name: String,
        /// `None`: as many as `assignments` lists, else the settings' default.
        partitions: Option<u32>,
        /// `None`: `default.replication.factor` (or the assignments' factor).
        replication_factor: Option<u16>,
        /// Explicit replicas per partition (Kafka CreateTopics assignments).
        assignments: Option<Vec<Vec<NodeId>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        /// The new partition count.
        total: u32,
        /// Replicas of the new partitions only.
        assignments: Option<Vec<Vec<NodeId>>>,
        validate_only: bool,
    },
    /// `incremental`: set `set`, remove `delete`, keep the rest (Kafka's
    /// IncrementalAlterConfigs); otherwise the overrides become exactly `set`
    /// (AlterConfigs) and `delete` must be empty.
    AlterTopicConfigs {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        incremental: bool,
        validate_only: bool,
    },
    /// A partition's Raft leader reports its leadership and in-sync set.
    ReportLeader {
        topic_id: [u8; 16],
        partition: u32,
        leader: Option<NodeId>,
        leader_epoch: i32,
        isr: Vec<NodeId>,
    },
    /// Many partition leaders' reports in one command (a broker's reports of one
    /// moment, coalesced: one metadata-log entry instead of one each). Each is
    /// planned like a [`ReportLeader`](Self::ReportLeader); a refused one (a stale
    /// epoch) is left out, the others are taken.
    ReportLeaders(Vec<LeaderReport>),
    /// A block of producer ids for a broker's idempotent producers.
    AllocateProducerIds {
        count: i64,
    },
    /// Kafka AlterPartitionReassignments for one partition: move it to `target`, or
    /// (`None`) cancel the reassignment in progress.
    AlterReassignment {
        topic: String,
        partition: u32,
        target: Option<Vec<NodeId>>,
    },
    /// A partition's Raft leader: the group's voters are the reassignment's target now.
    CompleteReassignment {
        topic_id: [u8; 16],
        partition: u32,
        voters: Vec<NodeId>,
    },
    /// Kafka ElectLeaders (PREFERRED) for one partition.
    ElectPreferredLeader {
        topic: String,
        partition: u32,
    },
    /// Kafka UnregisterBroker: move the broker's replicas away, then forget it.
    UnregisterBroker {
        id: NodeId,
    },
}

/// The cluster-level settings commands are validated with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerSettings {
    /// `default.replication.factor`.
    pub default_replication_factor: u16,
    /// `min.insync.replicas` where neither the topic nor the topic defaults set it.
    pub min_insync_replicas: u16,
    /// `num.partitions`.
    pub default_partitions: u32,
    /// The topic defaults (config file with dynamic broker configs applied), which
    /// topic configs resolve over.
    pub topic_defaults: BTreeMap<String, String>,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            default_replication_factor: 1,
            min_insync_replicas: 1,
            default_partitions: 1,
            topic_defaults: BTreeMap::new(),
        }
    }
}

/// The records that carry out `cmd` on `image` (none: nothing to change, or
/// `validate_only`), or why it is refused. `now_ms` and `entropy` (random bits from
/// the driver's RNG, seeded in the simulation) only go into new topic ids, so that a
/// topic deleted and created again, even within one millisecond, gets another id.
pub fn plan(
    image: &MetadataImage,
    cmd: &ControllerCommand,
    settings: &ControllerSettings,
    now_ms: i64,
    entropy: u64,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    use ControllerCommand as C;
    match cmd {
        C::SetClusterId(id) => match image.cluster_id() {
            None => Ok(vec![MetadataRecord::ClusterId(*id)]),
            Some(known) if known == *id => Ok(vec![]),
            Some(_) => Err(ControllerError::inconsistent_cluster_id(
                "the cluster already has another id; this broker's data belongs to another cluster",
            )),
        },
        C::RegisterBroker(registration) => plan_register(image, registration),
        C::BrokerHeartbeat { id, incarnation } => {
            let Some(b) = image.broker(*id) else {
                return Err(ControllerError::broker_not_registered(format!(
                    "broker {id} sent a heartbeat but is not registered; it registers when it starts"
                )));
            };
            if b.registration.incarnation != *incarnation {
                return Err(ControllerError::stale_broker_epoch(format!(
                    "broker {id} heartbeat from incarnation {incarnation}, but incarnation {} is registered: \
                     another process with this node id started",
                    b.registration.incarnation
                )));
            }
            Ok(if b.fenced {
                vec![MetadataRecord::UnfenceBroker { id: *id }]
            } else {
                vec![]
            })
        }
        C::CreateTopic {
            name,
            partitions,
            replication_factor,
            assignments,
            configs,
            validate_only,
        } => plan_create_topic(
            image,
            settings,
            (now_ms, entropy),
            CreateTopic {
                name,
                partitions: *partitions,
                replication_factor: *replication_factor,
                assignments: assignments.as_deref(),
                configs,
                validate_only: *validate_only,
            },
        ),
        C::DeleteTopic { name } => {
            refuse_offsets_topic(name, "deleted")?;
            let topic = image
                .topic(name)
                .ok_or_else(|| ControllerError::unknown_topic(name))?;
            Ok(vec![MetadataRecord::DeleteTopic { id: topic.id }])
        }
        C::CreatePartitions {
            name,
            total,
            assignments,
            validate_only,
        } => {
            refuse_offsets_topic(name, "given more partitions")?;
            let topic = image
                .topic(name)
                .ok_or_else(|| ControllerError::unknown_topic(name))?;
            let current = topic.partitions.len() as u32;
            if *total <= current || *total > PARTITIONS_MAX {
                return Err(ControllerError::invalid_partitions(format!(
                    "topic {name} has {current} partitions; the new count must be larger and at most {PARTITIONS_MAX}, {total} was asked for"
                )));
            }
            let added = total - current;
            let rf = topic.replication_factor();
            let replicas = match assignments {
                Some(a) => {
                    if a.len() != added as usize {
                        return Err(ControllerError::invalid_replica_assignment(format!(
                            "topic {name} goes from {current} to {total} partitions, so the assignment must list \
                             {added} new partitions; it lists {}",
                            a.len()
                        )));
                    }
                    validate_assignments(image, a, Some(rf))?;
                    a.clone()
                }
                None => place_replicas(image, added, rf)?,
            };
            if *validate_only {
                return Ok(vec![]);
            }
            Ok(vec![MetadataRecord::CreatePartitions {
                id: topic.id,
                replicas,
            }])
        }
        C::AlterTopicConfigs {
            name,
            set,
            delete,
            incremental,
            validate_only,
        } => {
            let topic = image
                .topic(name)
                .ok_or_else(|| ControllerError::unknown_topic(name))?;
            let overrides = if *incremental {
                let mut o = topic.overrides.clone();
                for k in delete {
                    // Resetting an unknown key is still an error that names it.
                    if key_spec(k).is_none() {
                        return Err(ControllerError::invalid_config(
                            ConfigError::UnknownKey { key: k.clone() }.to_string(),
                        ));
                    }
                    o.remove(k);
                }
                o.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                o
            } else {
                if !delete.is_empty() {
                    return Err(ControllerError::invalid_request(
                        "a non-incremental config change replaces every override; it deletes nothing by name",
                    ));
                }
                set.clone()
            };
            resolve_replicated_config(
                &settings.topic_defaults,
                &overrides,
                topic.replication_factor(),
                settings.min_insync_replicas,
            )
            .map_err(|e| ControllerError::invalid_config(e.to_string()))?;
            if *validate_only || overrides == topic.overrides {
                return Ok(vec![]);
            }
            Ok(vec![MetadataRecord::AlterTopicConfigs {
                id: topic.id,
                overrides,
            }])
        }
        C::ReportLeader {
            topic_id,
            partition,
            leader,
            leader_epoch,
            isr,
        } => plan_report_leader(image, topic_id, *partition, *leader, *leader_epoch, isr),
        C::ReportLeaders(reports) => {
            if reports.len() > LEADER_REPORTS_MAX {
                return Err(ControllerError::invalid_request(format!(
                    "{} leader reports in one command; at most {LEADER_REPORTS_MAX}",
                    reports.len()
                )));
            }
            let mut records = Vec::with_capacity(reports.len());
            for r in reports {
                match plan_report_leader(
                    image,
                    &r.topic_id,
                    r.partition,
                    r.leader,
                    r.leader_epoch,
                    &r.isr,
                ) {
                    Ok(taken) => records.extend(taken),
                    Err(e) => tracing::debug!(error = %e.message, "a leader report left out"),
                }
            }
            Ok(records)
        }
        C::AllocateProducerIds { count } => {
            if *count < 1 || *count > PRODUCER_IDS_PER_BLOCK_MAX {
                return Err(ControllerError::invalid_request(format!(
                    "a producer id block holds 1 to {PRODUCER_IDS_PER_BLOCK_MAX} ids, {count} were asked for"
                )));
            }
            let first = image.next_producer_id();
            if first.checked_add(*count).is_none() {
                return Err(ControllerError::producer_ids_exhausted(
                    "every producer id has been handed out; this cluster cannot start new idempotent producers",
                ));
            }
            Ok(vec![MetadataRecord::ProducerIdBlock {
                first,
                count: *count,
            }])
        }
        C::AlterReassignment {
            topic,
            partition,
            target,
        } => plan_alter(image, topic, *partition, target.as_deref()),
        C::CompleteReassignment {
            topic_id,
            partition,
            voters,
        } => plan_complete(image, topic_id, *partition, voters),
        C::ElectPreferredLeader { topic, partition } => {
            plan_elect_preferred(image, topic, *partition)
        }
        C::UnregisterBroker { id } => plan_unregister(image, *id),
    }
}

fn plan_register(
    image: &MetadataImage,
    r: &BrokerRegistration,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let bad = |m: String| ControllerError::invalid_request(format!("broker {}: {m}", r.id));
    if r.kafka_host.is_empty() || r.kafka_host.len() > HOST_BYTES_MAX {
        return Err(bad(format!(
            "the Kafka host must be 1 to {HOST_BYTES_MAX} bytes, it is {:?}",
            r.kafka_host
        )));
    }
    if r.kafka_port == 0 {
        return Err(bad("the Kafka port is 0".to_owned()));
    }
    for (what, addr) in [("native", &r.native_addr), ("cluster", &r.cluster_addr)] {
        let port_ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if addr.len() > ADDRESS_BYTES_MAX || !port_ok {
            return Err(bad(format!(
                "the {what} address must be HOST:PORT of at most {ADDRESS_BYTES_MAX} bytes, it is {addr:?}"
            )));
        }
    }
    if let Some(rack) = &r.rack {
        if rack.is_empty() || rack.len() > HOST_BYTES_MAX {
            return Err(bad(format!(
                "the rack must be 1 to {HOST_BYTES_MAX} bytes, it is {rack:?}"
            )));
        }
    }
    let Some(known) = image.broker(r.id) else {
        return Ok(vec![MetadataRecord::RegisterBroker(r.clone())]);
    };
    let known_incarnation = known.registration.incarnation;
    if r.incarnation < known_incarnation {
        return Err(ControllerError::stale_broker_epoch(format!(
            "broker {} registers incarnation {}, but incarnation {known_incarnation} is already registered: \
             this process is older than the one that registered last; stop it",
            r.id, r.incarnation
        )));
    }
    if r.incarnation > known_incarnation {
        return Ok(vec![MetadataRecord::RegisterBroker(r.clone())]);
    }
    if known.registration != *r {
        return Err(ControllerError::duplicate_broker_registration(format!(
            "broker {} incarnation {} is already registered with other endpoints ({}, {}); \
             two processes seem to use node id {}",
            r.id,
            r.incarnation,
            known.registration.native_addr,
            known.registration.cluster_addr,
            r.id
        )));
    }
    // The same registration again (a retried call): only a fence to lift.
    Ok(if known.fenced {
        vec![MetadataRecord::UnfenceBroker { id: r.id }]
    } else {
        vec![]
    })
}

/// The fields of [`ControllerCommand::CreateTopic`], borrowed.
struct CreateTopic<'a> {
    name: &'a str,
    partitions: Option<u32>,
    replication_factor: Option<u16>,
    assignments: Option<&'a [Vec<NodeId>]>,
    configs: &'a BTreeMap<String, String>,
    validate_only: bool,
}

fn plan_create_topic(
    image: &MetadataImage,
    settings: &ControllerSettings,
    (now_ms, entropy): (i64, u64),
    c: CreateTopic<'_>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let name = c.name;
    validate_topic_name(name).map_err(ControllerError::invalid_topic_name)?;
    if let Some(a) = c.assignments {
        if c.partitions.is_some_and(|p| p as usize != a.len()) {
            return Err(ControllerError::invalid_request(format!(
                "topic {name}: give either a partition count or a replica assignment (it lists {} partitions), not both",
                a.len()
            )));
        }
        if let Some(rf) = c.replication_factor {
            if a.first().is_some_and(|r| r.len() != usize::from(rf)) {
                return Err(ControllerError::invalid_request(format!(
                    "topic {name}: give either a replication factor or a replica assignment, not both"
                )));
            }
        }
    }
    let partitions = match (c.assignments, c.partitions) {
        (Some(a), _) => u32::try_from(a.len()).unwrap_or(u32::MAX),
        (None, Some(p)) => p,
        (None, None) => settings.default_partitions,
    };
    if partitions == 0 || partitions > PARTITIONS_MAX {
        return Err(ControllerError::invalid_partitions(format!(
            "a topic needs 1 to {PARTITIONS_MAX} partitions, {partitions} were asked for"
        )));
    }
    let rf = match c.assignments.and_then(|a| a.first()) {
        Some(first) => first.len(),
        None => usize::from(
            c.replication_factor
                .unwrap_or(settings.default_replication_factor),
        ),
    };
    resolve_replicated_config(
        &settings.topic_defaults,
        c.configs,
        rf.max(1),
        settings.min_insync_replicas,
    )
    .map_err(|e| ControllerError::invalid_config(e.to_string()))?;
    if image.topic(name).is_some() {
        return Err(ControllerError::topic_already_exists(format!(
            "topic {name} already exists"
        )));
    }
    let replicas = match c.assignments {
        Some(a) => {
            validate_assignments(image, a, None)?;
            a.to_vec()
        }
        None => place_replicas(image, partitions, rf)?,
    };
    if c.validate_only {
        return Ok(vec![]);
    }
    Ok(vec![MetadataRecord::CreateTopic {
        name: name.to_owned(),
        id: new_topic_id(image, name, now_ms, entropy),
        overrides: c.configs.clone(),
        replicas,
    }])
}

fn plan_report_leader(
    image: &MetadataImage,
    topic_id: &[u8; 16],
    partition: u32,
    leader: Option<NodeId>,
    leader_epoch: i32,
    isr: &[NodeId],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image
        .topic_by_id(topic_id)
        .ok_or_else(|| ControllerError::unknown_topic_id(topic_id))?;
    let Some(p) = topic.partitions.get(partition as usize) else {
        return Err(ControllerError::unknown_partition(format!(
            "topic {} has {} partitions; partition {partition} does not exist",
            topic.name,
            topic.partitions.len()
        )));
    };
    let what = || format!("partition {}-{partition}", topic.name);
    if leader_epoch < p.leader_epoch
        || (leader_epoch == p.leader_epoch && p.leader.is_some() && leader != p.leader)
    {
        return Err(ControllerError::fenced_leader_epoch(format!(
            "{}: leader epoch {leader_epoch} of broker {leader:?} is stale; broker {:?} leads in epoch {}",
            what(),
            p.leader,
            p.leader_epoch
        )));
    }
    // During a reassignment the target's new replicas may lead and be in sync too.
    if let Some(l) = leader {
        if !p.is_hosted_by(l) {
            return Err(ControllerError::invalid_request(format!(
                "{}: broker {l} reports itself leader but is not a replica ({:?})",
                what(),
                p.replicas
            )));
        }
        if !isr.contains(&l) {
            return Err(ControllerError::invalid_request(format!(
                "{}: the in-sync replicas {isr:?} must include the leader {l}",
                what()
            )));
        }
    }
    let mut sorted = isr.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != isr.len() || isr.iter().any(|r| !p.is_hosted_by(*r)) {
        return Err(ControllerError::invalid_request(format!(
            "{}: the in-sync replicas {isr:?} must be distinct replicas of the partition ({:?})",
            what(),
            p.replicas
        )));
    }
    if p.leader == leader && p.leader_epoch == leader_epoch && p.isr == isr {
        return Ok(vec![]);
    }
    Ok(vec![MetadataRecord::PartitionLeader {
        topic_id: *topic_id,
        partition,
        leader,
        leader_epoch,
        isr: isr.to_vec(),
    }])
}

/// The group coordinators live in `__consumer_offsets`; it must stay as it is (the
/// single-node broker's words).
fn refuse_offsets_topic(name: &str, what: &str) -> Result<(), ControllerError> {
    if name == CONSUMER_OFFSETS_TOPIC {
        return Err(ControllerError::invalid_request(format!(
            "topic {name} holds the consumer groups' offsets and cannot be {what}"
        )));
    }
    Ok(())
}

/// A topic id (version-4 UUID layout) no topic of `image` has: 64 bits of the
/// caller's entropy and the time, mixed with the cluster id and the name. Pure: the
/// caller passes both.
fn new_topic_id(image: &MetadataImage, name: &str, now_ms: i64, entropy: u64) -> [u8; 16] {
    let cluster = image.cluster_id().unwrap_or_default();
    let context = crc32c::crc32c_append(crc32c::crc32c(&cluster), name.as_bytes());
    let mut salt = 0u64;
    loop {
        let high = splitmix64(entropy ^ u64::from(context) ^ salt);
        let low = splitmix64(high ^ now_ms as u64);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&high.to_be_bytes());
        id[8..].copy_from_slice(&low.to_be_bytes());
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        if image.topic_by_id(&id).is_none() {
            return id;
        }
        salt = salt.wrapping_add(1);
    }
}

/// A 64-bit finaliser (SplitMix64's): every input bit reaches every output bit.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
