//! The controller quorum's replicated metadata: what a metadata record is, how the
//! metadata image changes as records apply, how controller commands are validated
//! and placed, and when a silent broker is fenced.
//!
//! Everything here is plain logic — no I/O, no clock, no glommio — unit-tested by
//! feeding it values. The driver that runs it (a Raft group over the voters on shard
//! 0, proposing [`plan`]'s records and applying committed entries to every broker's
//! [`MetadataImage`]) lives elsewhere.
//!
//! - [`records`]: [`MetadataRecord`] and the entry codec ([`encode_records`],
//!   [`decode_records`]); several records ride in one Raft entry.
//! - [`image`]: [`MetadataImage`], `apply` and `snapshot_records`, and the
//!   conversions the broker needs (`to_topics`, replicas, leaders, live brokers).
//! - [`placement`]: replicas of new partitions, rack-aware, leaders spread.
//! - [`commands`]: [`ControllerCommand`] and [`plan`].
//! - [`reassignment`]: reassignments, preferred-leader elections and removing a
//!   broker, as the records the partition leaders then carry out.
//! - [`codec`]: commands and [`ControllerReply`] as bytes for the transport's `call`.
//! - [`liveness`]: [`BrokerLiveness`], heartbeats in, brokers to fence out.
//! - [`leader_balance`]: automatic leader balancing, as preferred-leader elections.

pub mod codec;
pub mod commands;
pub mod error;
pub mod image;
pub mod leader_balance;
pub mod liveness;
pub mod placement;
pub mod reassignment;
pub mod records;
pub mod replicated_config;
#[cfg(test)]
mod test_support;
mod wire;

pub use codec::{
    decode_command, decode_reply, encode_command, encode_reply, ControllerReply, ReplyPayload,
};
pub use commands::{plan, ControllerCommand, ControllerSettings, LeaderReport, LEADER_REPORTS_MAX};
pub use error::ControllerError;
pub use image::{ApplyError, BrokerState, ImageError, MetadataImage, PartitionImage, TopicImage};
pub use liveness::BrokerLiveness;
pub use placement::{place_replicas, validate_assignments};
pub use records::{decode_records, encode_records, BrokerRegistration, MetadataRecord};
pub use replicated_config::{resolve_replicated_config, ReplicatedConfig};
pub use wire::RecordCodecError;
