//! Controller commands and replies as bytes: the payload of the transport's `call`
//! from a broker to the controller leader, and what comes back.
//!
//! Layout, little endian: `u8 version, u8 tag, fields`; the whole payload is read,
//! nothing may be left over. Counts and lengths are bounded as in [`super::records`].

use strata_raft::NodeId;
use strata_schema::ErrorCode;

use super::commands::{ControllerCommand, LeaderReport, LEADER_REPORTS_MAX};
use super::error::ControllerError;
use super::records::{
    decode_assignment, decode_registration, encode_assignment, encode_registration, MetadataRecord,
    REPLICATION_FACTOR_MAX, TOPIC_OVERRIDES_MAX,
};
use super::wire::{Reader, RecordCodecError, Writer};
use crate::metadata::TOPIC_NAME_BYTES_MAX;

/// The layout version this code writes (and the newest it reads).
const CALL_VERSION: u8 = 1;
/// Longest error message carried in a reply (longer ones are cut).
pub const REPLY_MESSAGE_BYTES_MAX: usize = 4096;

/// What a command produced, for the broker that asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyPayload {
    /// Nothing beyond "done".
    None,
    /// The id of the topic just created.
    TopicId([u8; 16]),
    /// Producer ids `first..first + count` are the caller's.
    ProducerIds { first: i64, count: i64 },
}

impl ReplyPayload {
    /// The payload the committed `records` of one command carry.
    pub fn of(records: &[MetadataRecord]) -> ReplyPayload {
        records
            .iter()
            .find_map(|r| match r {
                MetadataRecord::CreateTopic { id, .. } => Some(ReplyPayload::TopicId(*id)),
                MetadataRecord::ProducerIdBlock { first, count } => {
                    Some(ReplyPayload::ProducerIds {
                        first: *first,
                        count: *count,
                    })
                }
                _ => None,
            })
            .unwrap_or(ReplyPayload::None)
    }
}

/// The controller's answer to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerReply {
    /// The command's records are committed; once the caller's own image has applied
    /// the controller log up to `applied_offset` (exclusive end) it sees the change.
    Ok {
        applied_offset: u64,
        payload: ReplyPayload,
    },
    /// The called broker does not lead the controller quorum; ask `leader` (`None`:
    /// no leader known right now, retry shortly).
    NotController { leader: Option<NodeId> },
    /// The command was refused.
    Err(ControllerError),
}

const CMD_SET_CLUSTER_ID: u8 = 1;
const CMD_REGISTER_BROKER: u8 = 2;
const CMD_BROKER_HEARTBEAT: u8 = 3;
const CMD_CREATE_TOPIC: u8 = 4;
const CMD_DELETE_TOPIC: u8 = 5;
const CMD_CREATE_PARTITIONS: u8 = 6;
const CMD_ALTER_TOPIC_CONFIGS: u8 = 7;
const CMD_REPORT_LEADER: u8 = 8;
const CMD_ALLOCATE_PRODUCER_IDS: u8 = 9;
const CMD_ALTER_REASSIGNMENT: u8 = 10;
const CMD_COMPLETE_REASSIGNMENT: u8 = 11;
const CMD_ELECT_PREFERRED_LEADER: u8 = 12;
const CMD_UNREGISTER_BROKER: u8 = 13;
const CMD_REPORT_LEADERS: u8 = 14;

const REPLY_OK: u8 = 1;
const REPLY_NOT_CONTROLLER: u8 = 2;
const REPLY_ERR: u8 = 3;

const PAYLOAD_NONE: u8 = 0;
const PAYLOAD_TOPIC_ID: u8 = 1;
const PAYLOAD_PRODUCER_IDS: u8 = 2;

fn opt_assignment(w: &mut Writer, a: &Option<Vec<Vec<NodeId>>>) {
    match a {
        None => w.u8(0),
        Some(a) => {
            w.u8(1);
            encode_assignment(w, a);
        }
    }
}

fn read_opt_assignment(r: &mut Reader<'_>) -> Result<Option<Vec<Vec<NodeId>>>, RecordCodecError> {
    match r.u8("assignment present")? {
        0 => Ok(None),
        1 => Ok(Some(decode_assignment(r)?)),
        tag => Err(RecordCodecError::UnknownTag {
            what: "assignment present",
            tag,
        }),
    }
}

fn version(r: &mut Reader<'_>, what: &'static str) -> Result<(), RecordCodecError> {
    let version = r.u8(what)?;
    if version == 0 || version > CALL_VERSION {
        return Err(RecordCodecError::UnknownVersion {
            what,
            version,
            known: CALL_VERSION,
        });
    }
    Ok(())
}

/// The `call` payload for `cmd`.
pub fn encode_command(cmd: &ControllerCommand) -> Vec<u8> {
    use ControllerCommand as C;
    let mut w = Writer::default();
    w.u8(CALL_VERSION);
    match cmd {
        C::SetClusterId(id) => {
            w.u8(CMD_SET_CLUSTER_ID);
            w.id16(id);
        }
        C::RegisterBroker(b) => {
            w.u8(CMD_REGISTER_BROKER);
            encode_registration(&mut w, b);
        }
        C::BrokerHeartbeat { id, incarnation } => {
            w.u8(CMD_BROKER_HEARTBEAT);
            w.u64(*id);
            w.u64(*incarnation);
        }
        C::CreateTopic {
            name,
            partitions,
            replication_factor,
            assignments,
            configs,
            validate_only,
        } => {
            w.u8(CMD_CREATE_TOPIC);
            w.str(name);
            match partitions {
                None => w.u8(0),
                Some(p) => {
                    w.u8(1);
                    w.u32(*p);
                }
            }
            match replication_factor {
                None => w.u8(0),
                Some(rf) => {
                    w.u8(1);
                    w.u16(*rf);
                }
            }
            opt_assignment(&mut w, assignments);
            w.str_map(configs);
            w.bool(*validate_only);
        }
        C::DeleteTopic { name } => {
            w.u8(CMD_DELETE_TOPIC);
            w.str(name);
        }
        C::CreatePartitions {
            name,
            total,
            assignments,
            validate_only,
        } => {
            w.u8(CMD_CREATE_PARTITIONS);
            w.str(name);
            w.u32(*total);
            opt_assignment(&mut w, assignments);
            w.bool(*validate_only);
        }
        C::AlterTopicConfigs {
            name,
            set,
            delete,
            incremental,
            validate_only,
        } => {
            w.u8(CMD_ALTER_TOPIC_CONFIGS);
            w.str(name);
            w.str_map(set);
            w.strs(delete);
            w.bool(*incremental);
            w.bool(*validate_only);
        }
        C::ReportLeaders(reports) => {
            w.u8(CMD_REPORT_LEADERS);
            w.u32(reports.len() as u32);
            for r in reports {
                write_report(
                    &mut w,
                    &r.topic_id,
                    r.partition,
                    r.leader,
                    r.leader_epoch,
                    &r.isr,
                );
            }
        }
        C::ReportLeader {
            topic_id,
            partition,
            leader,
            leader_epoch,
            isr,
        } => {
            w.u8(CMD_REPORT_LEADER);
            write_report(&mut w, topic_id, *partition, *leader, *leader_epoch, isr);
        }
        C::AllocateProducerIds { count } => {
            w.u8(CMD_ALLOCATE_PRODUCER_IDS);
            w.i64(*count);
        }
        C::AlterReassignment {
            topic,
            partition,
            target,
        } => {
            w.u8(CMD_ALTER_REASSIGNMENT);
            w.str(topic);
            w.u32(*partition);
            w.opt_nodes(target.as_deref());
        }
        C::CompleteReassignment {
            topic_id,
            partition,
            voters,
        } => {
            w.u8(CMD_COMPLETE_REASSIGNMENT);
            w.id16(topic_id);
            w.u32(*partition);
            w.nodes(voters);
        }
        C::ElectPreferredLeader { topic, partition } => {
            w.u8(CMD_ELECT_PREFERRED_LEADER);
            w.str(topic);
            w.u32(*partition);
        }
        C::UnregisterBroker { id } => {
            w.u8(CMD_UNREGISTER_BROKER);
            w.u64(*id);
        }
    }
    w.0
}

/// The command in a `call` payload written by [`encode_command`].
pub fn decode_command(bytes: &[u8]) -> Result<ControllerCommand, RecordCodecError> {
    use ControllerCommand as C;
    let mut r = Reader(bytes);
    version(&mut r, "controller command")?;
    let cmd = match r.u8("controller command tag")? {
        CMD_SET_CLUSTER_ID => C::SetClusterId(r.id16("cluster id")?),
        CMD_REGISTER_BROKER => C::RegisterBroker(decode_registration(&mut r)?),
        CMD_BROKER_HEARTBEAT => C::BrokerHeartbeat {
            id: r.u64("broker id")?,
            incarnation: r.u64("broker incarnation")?,
        },
        CMD_CREATE_TOPIC => C::CreateTopic {
            name: r.str_max("topic name", TOPIC_NAME_BYTES_MAX)?,
            partitions: match r.u8("partitions present")? {
                0 => None,
                1 => Some(r.u32("partitions")?),
                tag => {
                    return Err(RecordCodecError::UnknownTag {
                        what: "partitions present",
                        tag,
                    })
                }
            },
            replication_factor: match r.u8("replication factor present")? {
                0 => None,
                1 => Some(r.u16("replication factor")?),
                tag => {
                    return Err(RecordCodecError::UnknownTag {
                        what: "replication factor present",
                        tag,
                    })
                }
            },
            assignments: read_opt_assignment(&mut r)?,
            configs: r.str_map("topic configs", TOPIC_OVERRIDES_MAX)?,
            validate_only: r.bool("validate only")?,
        },
        CMD_DELETE_TOPIC => C::DeleteTopic {
            name: r.str_max("topic name", TOPIC_NAME_BYTES_MAX)?,
        },
        CMD_CREATE_PARTITIONS => C::CreatePartitions {
            name: r.str_max("topic name", TOPIC_NAME_BYTES_MAX)?,
            total: r.u32("partition count")?,
            assignments: read_opt_assignment(&mut r)?,
            validate_only: r.bool("validate only")?,
        },
        CMD_ALTER_TOPIC_CONFIGS => C::AlterTopicConfigs {
            name: r.str_max("topic name", TOPIC_NAME_BYTES_MAX)?,
            set: r.str_map("configs to set", TOPIC_OVERRIDES_MAX)?,
            delete: r.strs("configs to delete", TOPIC_OVERRIDES_MAX)?,
            incremental: r.bool("incremental")?,
            validate_only: r.bool("validate only")?,
        },
        CMD_REPORT_LEADER => {
            let LeaderReport {
                topic_id,
                partition,
                leader,
                leader_epoch,
                isr,
            } = read_report(&mut r)?;
            C::ReportLeader {
                topic_id,
                partition,
                leader,
                leader_epoch,
                isr,
            }
        }
        CMD_REPORT_LEADERS => {
            let n = r.u32("leader reports")? as usize;
            if n > LEADER_REPORTS_MAX {
                return Err(RecordCodecError::TooMany {
                    what: "leader reports",
                    count: n,
                    max: LEADER_REPORTS_MAX,
                });
            }
            let mut reports = Vec::with_capacity(n);
            for _ in 0..n {
                reports.push(read_report(&mut r)?);
            }
            C::ReportLeaders(reports)
        }
        CMD_ALLOCATE_PRODUCER_IDS => C::AllocateProducerIds {
            count: r.i64("producer id count")?,
        },
        CMD_ALTER_REASSIGNMENT => C::AlterReassignment {
            topic: r.str_max("topic name", TOPIC_NAME_BYTES_MAX)?,
            partition: r.u32("partition")?,
            target: r.opt_nodes("reassignment target", REPLICATION_FACTOR_MAX)?,
        },
        CMD_COMPLETE_REASSIGNMENT => C::CompleteReassignment {
            topic_id: r.id16("topic id")?,
            partition: r.u32("partition")?,
            voters: r.nodes("voters", REPLICATION_FACTOR_MAX)?,
        },
        CMD_ELECT_PREFERRED_LEADER => C::ElectPreferredLeader {
            topic: r.str_max("topic name", TOPIC_NAME_BYTES_MAX)?,
            partition: r.u32("partition")?,
        },
        CMD_UNREGISTER_BROKER => C::UnregisterBroker {
            id: r.u64("broker id")?,
        },
        tag => {
            return Err(RecordCodecError::UnknownTag {
                what: "controller command",
                tag,
            })
        }
    };
    r.end("controller command")?;
    Ok(cmd)
}

/// The `call` reply bytes for `reply`.
pub fn encode_reply(reply: &ControllerReply) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(CALL_VERSION);
    match reply {
        ControllerReply::Ok {
            applied_offset,
            payload,
        } => {
            w.u8(REPLY_OK);
            w.u64(*applied_offset);
            match payload {
                ReplyPayload::None => w.u8(PAYLOAD_NONE),
                ReplyPayload::TopicId(id) => {
                    w.u8(PAYLOAD_TOPIC_ID);
                    w.id16(id);
                }
                ReplyPayload::ProducerIds { first, count } => {
                    w.u8(PAYLOAD_PRODUCER_IDS);
                    w.i64(*first);
                    w.i64(*count);
                }
            }
        }
        ControllerReply::NotController { leader } => {
            w.u8(REPLY_NOT_CONTROLLER);
            w.opt_node(*leader);
        }
        ControllerReply::Err(e) => {
            w.u8(REPLY_ERR);
            w.u16(e.code as i16 as u16);
            w.u16(e.kafka_code as u16);
            let mut end = e.message.len().min(REPLY_MESSAGE_BYTES_MAX);
            while !e.message.is_char_boundary(end) {
                end -= 1;
            }
            w.str(&e.message[..end]);
        }
    }
    w.0
}

/// The reply in bytes written by [`encode_reply`].
pub fn decode_reply(bytes: &[u8]) -> Result<ControllerReply, RecordCodecError> {
    let mut r = Reader(bytes);
    version(&mut r, "controller reply")?;
    let reply = match r.u8("controller reply tag")? {
        REPLY_OK => ControllerReply::Ok {
            applied_offset: r.u64("applied offset")?,
            payload: match r.u8("reply payload tag")? {
                PAYLOAD_NONE => ReplyPayload::None,
                PAYLOAD_TOPIC_ID => ReplyPayload::TopicId(r.id16("topic id")?),
                PAYLOAD_PRODUCER_IDS => ReplyPayload::ProducerIds {
                    first: r.i64("first producer id")?,
                    count: r.i64("producer id count")?,
                },
                tag => {
                    return Err(RecordCodecError::UnknownTag {
                        what: "reply payload",
                        tag,
                    })
                }
            },
        },
        REPLY_NOT_CONTROLLER => ControllerReply::NotController {
            leader: r.opt_node("controller leader")?,
        },
        REPLY_ERR => {
            let code = ErrorCode::from_i16(r.u16("error code")? as i16);
            let kafka_code = r.u16("kafka error code")? as i16;
            let message = r.str_max("error message", REPLY_MESSAGE_BYTES_MAX)?;
            ControllerReply::Err(ControllerError {
                code,
                kafka_code,
                message,
            })
        }
        tag => {
            return Err(RecordCodecError::UnknownTag {
                what: "controller reply",
                tag,
            })
        }
    };
    r.end("controller reply")?;
    Ok(reply)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;

/// One partition leader's report, as `ReportLeader` and `ReportLeaders` carry it.
fn write_report(
    w: &mut Writer,
    topic_id: &[u8; 16],
    partition: u32,
    leader: Option<NodeId>,
    leader_epoch: i32,
    isr: &[NodeId],
) {
    w.id16(topic_id);
    w.u32(partition);
    w.opt_node(leader);
    w.i32(leader_epoch);
    w.nodes(isr);
}

fn read_report(r: &mut Reader<'_>) -> Result<LeaderReport, RecordCodecError> {
    Ok(LeaderReport {
        topic_id: r.id16("topic id")?,
        partition: r.u32("partition")?,
        leader: r.opt_node("leader")?,
        leader_epoch: r.i32("leader epoch")?,
        isr: r.nodes("in-sync replicas", REPLICATION_FACTOR_MAX)?,
    })
}
