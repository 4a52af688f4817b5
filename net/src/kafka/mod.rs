//! The Kafka wire protocol, served on its own listener over the same shards, topics,
//! logs and group coordinator as the native protocol.
//!
//! Messages are decoded and encoded with the `kafka-protocol` crate (generated from
//! Kafka's own JSON message specs, flexible versions included). Each api family
//! lives in its own file and lists the versions it serves in an `APIS` table;
//! [`api_versions`] answers with the union of those tables, and [`dispatch`] sends a
//! request to its family. Errors inside a decoded request go in that api's own
//! response; a request for an api or version this broker does not serve gets an
//! `ApiVersions`-shaped reply with UNSUPPORTED_VERSION (what Kafka brokers send for
//! versions they do not know) and the connection stays open.

mod admin;
mod api_versions;
mod cluster;
mod codec;
mod configs;
mod connection;
mod delete_records;
mod describe_quorum;
mod describe_topic_partitions;
mod dispatch;
mod elect_leaders;
mod errors;
mod fetch;
mod fetch_sessions;
mod groups;
mod groups_classic;
mod groups_consumer;
mod groups_offsets;
mod leader_epochs;
mod list_offsets;
mod log_dirs;
mod metadata;
mod produce;
mod producer_ids;
mod reassignments;

pub(crate) use connection::KafkaProtocol;
pub(crate) use dispatch::Ctx;

/// One served api and its version range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServedApi {
    pub key: kafka_protocol::messages::ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

impl ServedApi {
    pub const fn new(
        key: kafka_protocol::messages::ApiKey,
        min_version: i16,
        max_version: i16,
    ) -> Self {
        ServedApi {
            key,
            min_version,
            max_version,
        }
    }
}

/// The cluster id shown to Kafka clients, once one is stored.
pub(crate) fn cluster_id(broker: &crate::broker::Broker) -> Option<String> {
    crate::cluster_id::cached(broker).map(|id| id.to_string())
}
