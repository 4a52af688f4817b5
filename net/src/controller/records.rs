//! Metadata records: the entries of the controller's Raft log, and their binary codec.
//!
//! Several records ride in one Raft entry (one native batch value): a `CreateTopic`
//! and nothing else, or a snapshot's whole image. Layout, little endian:
//! `u32 record count`, then per record `u8 tag, u8 version, u32 body bytes, body`.
//! Each record carries its own version so that a record kind can grow a field
//! without a new log format; a version newer than this code knows is an error, never
//! a guess. Every count and length is checked against a named bound and against the
//! bytes left before anything is allocated.

use std::collections::BTreeMap;

use strata_raft::NodeId;

use super::wire::{Reader, RecordCodecError, Writer};
use crate::metadata::{PARTITIONS_MAX, TOPIC_NAME_BYTES_MAX};

/// Most replicas one partition may have (Kafka's replication factor is an `i16`;
/// nobody runs more than a handful, so a small bound keeps a bad record small).
pub const REPLICATION_FACTOR_MAX: usize = 128;
/// Most config overrides one topic may carry (Kafka 4.x knows 36 topic keys).
pub const TOPIC_OVERRIDES_MAX: usize = 256;
/// Most records in one Raft entry (a snapshot of a large cluster is one entry).
pub const RECORDS_PER_ENTRY_MAX: usize = 1 << 20;
/// Longest host name (DNS: 253) or rack name.
pub const HOST_BYTES_MAX: usize = 255;
/// Longest `host:port` address.
pub const ADDRESS_BYTES_MAX: usize = HOST_BYTES_MAX + 7;

/// The record layout version this code writes (and the newest it reads).
const RECORD_VERSION: u8 = 1;

/// What a broker tells the controller about itself when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: NodeId,
    /// Grows with every start of the broker process, so the controller can tell a
    /// restart (higher) from a stale process that still runs (lower).
    pub incarnation: u64,
    /// The host Kafka clients connect to (the advertised one).
    pub kafka_host: String,
    pub kafka_port: u16,
    /// `host:port` of the native listener.
    pub native_addr: String,
    /// `host:port` of the broker-to-broker listener (`--cluster-listen`).
    pub cluster_addr: String,
    pub rack: Option<String>,
}

/// One change of the cluster metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    /// The cluster's id (Kafka's cluster UUID), set once.
    ClusterId([u8; 16]),
    /// A broker joined or restarted; it is unfenced (its registration is a sign of life).
    RegisterBroker(BrokerRegistration),
    /// A broker went silent: no new leaders or replicas go to it.
    FenceBroker {
        id: NodeId,
    },
    /// A fenced broker is heard from again.
    UnfenceBroker {
        id: NodeId,
    },
    /// A new topic; `replicas[p]` are partition `p`'s replicas, the first one its
    /// preferred leader.
    CreateTopic {
        name: String,
        id: [u8; 16],
        overrides: BTreeMap<String, String>,
        replicas: Vec<Vec<NodeId>>,
    },
    DeleteTopic {
        id: [u8; 16],
    },
    /// Partitions added at the end of a topic, `replicas` for the new ones only.
    CreatePartitions {
        id: [u8; 16],
        replicas: Vec<Vec<NodeId>>,
    },
    /// The topic's overrides now (all of them, not a difference).
    AlterTopicConfigs {
        id: [u8; 16],
        overrides: BTreeMap<String, String>,
    },
    /// The leader and in-sync replicas a partition's Raft group reported.
    PartitionLeader {
        topic_id: [u8; 16],
        partition: u32,
        leader: Option<NodeId>,
        leader_epoch: i32,
        isr: Vec<NodeId>,
    },
    /// Producer ids `first..first + count` are handed out.
    ProducerIdBlock {
        first: i64,
        count: i64,
    },
    /// A partition's replicas are to become `target` (the first its preferred
    /// leader); `None` cancels the reassignment in progress. The partition's leader
    /// carries it out one membership step at a time.
    AlterReassignment {
        topic_id: [u8; 16],
        partition: u32,
        target: Option<Vec<NodeId>>,
    },
    /// A reassignment is done: the partition's Raft group has exactly these voters;
    /// they are its replicas now (in the target's order) and no reassignment is left.
    CompleteReassignment {
        topic_id: [u8; 16],
        partition: u32,
        replicas: Vec<NodeId>,
    },
    /// The leader of a partition in `leader_epoch` is asked to hand leadership to the
    /// preferred replica (the first); a later epoch makes the request moot.
    ElectPreferredLeader {
        topic_id: [u8; 16],
        partition: u32,
        leader_epoch: i32,
    },
    /// A broker leaves the cluster (it holds no replicas any more).
    UnregisterBroker {
        id: NodeId,
    },
}

const TAG_CLUSTER_ID: u8 = 1;
const TAG_REGISTER_BROKER: u8 = 2;
const TAG_FENCE_BROKER: u8 = 3;
const TAG_UNFENCE_BROKER: u8 = 4;
const TAG_CREATE_TOPIC: u8 = 5;
const TAG_DELETE_TOPIC: u8 = 6;
const TAG_CREATE_PARTITIONS: u8 = 7;
const TAG_ALTER_TOPIC_CONFIGS: u8 = 8;
const TAG_PARTITION_LEADER: u8 = 9;
const TAG_PRODUCER_ID_BLOCK: u8 = 10;
const TAG_ALTER_REASSIGNMENT: u8 = 11;
const TAG_COMPLETE_REASSIGNMENT: u8 = 12;
const TAG_ELECT_PREFERRED_LEADER: u8 = 13;
const TAG_UNREGISTER_BROKER: u8 = 14;

/// The bytes of one Raft entry holding `records`.
pub fn encode_records(records: &[MetadataRecord]) -> Vec<u8> {
    let mut w = Writer::default();
    w.count(records.len());
    for r in records {
        encode_record(&mut w, r);
    }
    w.0
}

/// The records of one Raft entry written by [`encode_records`].
pub fn decode_records(bytes: &[u8]) -> Result<Vec<MetadataRecord>, RecordCodecError> {
    let mut r = Reader(bytes);
    // A record takes at least its tag, version and body length.
    let n = r.count("metadata records", RECORDS_PER_ENTRY_MAX, 6)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(decode_record(&mut r)?);
    }
    r.end("metadata entry")?;
    Ok(out)
}

pub(crate) fn encode_record(w: &mut Writer, record: &MetadataRecord) {
    use MetadataRecord as R;
    let tag = match record {
        R::ClusterId(_) => TAG_CLUSTER_ID,
        R::RegisterBroker(_) => TAG_REGISTER_BROKER,
        R::FenceBroker { .. } => TAG_FENCE_BROKER,
        R::UnfenceBroker { .. } => TAG_UNFENCE_BROKER,
        R::CreateTopic { .. } => TAG_CREATE_TOPIC,
        R::DeleteTopic { .. } => TAG_DELETE_TOPIC,
        R::CreatePartitions { .. } => TAG_CREATE_PARTITIONS,
        R::AlterTopicConfigs { .. } => TAG_ALTER_TOPIC_CONFIGS,
        R::PartitionLeader { .. } => TAG_PARTITION_LEADER,
        R::ProducerIdBlock { .. } => TAG_PRODUCER_ID_BLOCK,
        R::AlterReassignment { .. } => TAG_ALTER_REASSIGNMENT,
        R::CompleteReassignment { .. } => TAG_COMPLETE_REASSIGNMENT,
        R::ElectPreferredLeader { .. } => TAG_ELECT_PREFERRED_LEADER,
        R::UnregisterBroker { .. } => TAG_UNREGISTER_BROKER,
    };
    w.u8(tag);
    w.u8(RECORD_VERSION);
    w.section(|w| match record {
        R::ClusterId(id) => w.id16(id),
        R::RegisterBroker(b) => encode_registration(w, b),
        R::FenceBroker { id } | R::UnfenceBroker { id } | R::UnregisterBroker { id } => w.u64(*id),
        R::CreateTopic {
            name,
            id,
            overrides,
            replicas,
        } => {
            w.str(name);
            w.id16(id);
            w.str_map(overrides);
            encode_assignment(w, replicas);
        }
        R::DeleteTopic { id } => w.id16(id),
        R::CreatePartitions { id, replicas } => {
            w.id16(id);
            encode_assignment(w, replicas);
        }
        R::AlterTopicConfigs { id, overrides } => {
            w.id16(id);
            w.str_map(overrides);
        }
        R::PartitionLeader {
            topic_id,
            partition,
            leader,
            leader_epoch,
            isr,
        } => {
            w.id16(topic_id);
            w.u32(*partition);
            w.opt_node(*leader);
            w.i32(*leader_epoch);
            w.nodes(isr);
        }
        R::ProducerIdBlock { first, count } => {
            w.i64(*first);
            w.i64(*count);
        }
        R::AlterReassignment {
            topic_id,
            partition,
            target,
        } => {
            w.id16(topic_id);
            w.u32(*partition);
            w.opt_nodes(target.as_deref());
        }
        R::CompleteReassignment {
            topic_id,
            partition,
            replicas,
        } => {
            w.id16(topic_id);
            w.u32(*partition);
            w.nodes(replicas);
        }
        R::ElectPreferredLeader {
            topic_id,
            partition,
            leader_epoch,
        } => {
            w.id16(topic_id);
            w.u32(*partition);
            w.i32(*leader_epoch);
        }
    });
}

pub(crate) fn decode_record(r: &mut Reader<'_>) -> Result<MetadataRecord, RecordCodecError> {
    use MetadataRecord as R;
    let tag = r.u8("metadata record tag")?;
    let version = r.u8("metadata record version")?;
    if version == 0 || version > RECORD_VERSION {
        return Err(RecordCodecError::UnknownVersion {
            what: "metadata record",
            version,
            known: RECORD_VERSION,
        });
    }
    let mut b = r.section("metadata record body")?;
    let record = match tag {
        TAG_CLUSTER_ID => R::ClusterId(b.id16("cluster id")?),
        TAG_REGISTER_BROKER => R::RegisterBroker(decode_registration(&mut b)?),
        TAG_FENCE_BROKER => R::FenceBroker {
            id: b.u64("broker id")?,
        },
        TAG_UNFENCE_BROKER => R::UnfenceBroker {
            id: b.u64("broker id")?,
        },
        TAG_CREATE_TOPIC => R::CreateTopic {
            name: b.str_max("topic name", TOPIC_NAME_BYTES_MAX)?,
            id: b.id16("topic id")?,
            overrides: b.str_map("topic overrides", TOPIC_OVERRIDES_MAX)?,
            replicas: decode_assignment(&mut b)?,
        },
        TAG_DELETE_TOPIC => R::DeleteTopic {
            id: b.id16("topic id")?,
        },
        TAG_CREATE_PARTITIONS => R::CreatePartitions {
            id: b.id16("topic id")?,
            replicas: decode_assignment(&mut b)?,
        },
        TAG_ALTER_TOPIC_CONFIGS => R::AlterTopicConfigs {
            id: b.id16("topic id")?,
            overrides: b.str_map("topic overrides", TOPIC_OVERRIDES_MAX)?,
        },
        TAG_PARTITION_LEADER => R::PartitionLeader {
            topic_id: b.id16("topic id")?,
            partition: b.u32("partition")?,
            leader: b.opt_node("leader")?,
            leader_epoch: b.i32("leader epoch")?,
            isr: b.nodes("in-sync replicas", REPLICATION_FACTOR_MAX)?,
        },
        TAG_PRODUCER_ID_BLOCK => R::ProducerIdBlock {
            first: b.i64("first producer id")?,
            count: b.i64("producer id count")?,
        },
        TAG_ALTER_REASSIGNMENT => R::AlterReassignment {
            topic_id: b.id16("topic id")?,
            partition: b.u32("partition")?,
            target: b.opt_nodes("reassignment target", REPLICATION_FACTOR_MAX)?,
        },
        TAG_COMPLETE_REASSIGNMENT => R::CompleteReassignment {
            topic_id: b.id16("topic id")?,
            partition: b.u32("partition")?,
            replicas: b.nodes("replicas", REPLICATION_FACTOR_MAX)?,
        },
        TAG_ELECT_PREFERRED_LEADER => R::ElectPreferredLeader {
            topic_id: b.id16("topic id")?,
            partition: b.u32("partition")?,
            leader_epoch: b.i32("leader epoch")?,
        },
        TAG_UNREGISTER_BROKER => R::UnregisterBroker {
            id: b.u64("broker id")?,
        },
        tag => {
            return Err(RecordCodecError::UnknownTag {
                what: "metadata record",
                tag,
            })
        }
    };
    b.end("metadata record body")?;
    Ok(record)
}

pub(crate) fn encode_registration(w: &mut Writer, b: &BrokerRegistration) {
    w.u64(b.id);
    w.u64(b.incarnation);
    w.str(&b.kafka_host);
    w.u16(b.kafka_port);
    w.str(&b.native_addr);
    w.str(&b.cluster_addr);
    w.opt_str(b.rack.as_deref());
}

pub(crate) fn decode_registration(
    r: &mut Reader<'_>,
) -> Result<BrokerRegistration, RecordCodecError> {
    Ok(BrokerRegistration {
        id: r.u64("broker id")?,
        incarnation: r.u64("broker incarnation")?,
        kafka_host: r.str_max("kafka host", HOST_BYTES_MAX)?,
        kafka_port: r.u16("kafka port")?,
        native_addr: r.str_max("native address", ADDRESS_BYTES_MAX)?,
        cluster_addr: r.str_max("cluster address", ADDRESS_BYTES_MAX)?,
        rack: match r.opt_str("rack")? {
            Some(rack) if rack.len() > HOST_BYTES_MAX => {
                return Err(RecordCodecError::TooLong {
                    what: "rack",
                    len: rack.len(),
                    max: HOST_BYTES_MAX,
                })
            }
            rack => rack,
        },
    })
}

/// Replicas per partition: `u32 partitions`, then per partition `u32 n, n × u64`.
pub(crate) fn encode_assignment(w: &mut Writer, replicas: &[Vec<NodeId>]) {
    w.count(replicas.len());
    for p in replicas {
        w.nodes(p);
    }
}

pub(crate) fn decode_assignment(r: &mut Reader<'_>) -> Result<Vec<Vec<NodeId>>, RecordCodecError> {
    let n = r.count("partitions", PARTITIONS_MAX as usize, 4)?;
    (0..n)
        .map(|_| r.nodes("replicas", REPLICATION_FACTOR_MAX))
        .collect()
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
