//! The name of a Raft group on the wire and in the shard's tables.

use std::fmt;

/// A Raft group: the controller quorum, or one partition of a topic (by the topic's
/// 16-byte id, so a deleted and re-created topic of the same name is another group).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupId {
    /// The controller group over the voter brokers.
    Controller,
    /// A partition's replicas.
    Partition {
        /// The topic's id (`TopicMeta::id`).
        topic_id: [u8; 16],
        /// The partition number.
        partition: u32,
    },
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupId::Controller => write!(f, "controller"),
            GroupId::Partition {
                topic_id,
                partition,
            } => {
                for b in topic_id {
                    write!(f, "{b:02x}")?;
                }
                write!(f, "-{partition}")
            }
        }
    }
}
