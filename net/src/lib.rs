//! strata-net: the server side of strata's wire protocols.
//!
//! Owns listeners, connections, request routing between shards, the native and Kafka
//! protocol handlers, and the broker-to-broker replication transport. It reaches
//! storage only through `strata-engine`'s API and never looks at segment files.
//!
//! Today it serves one broker over two protocols: [`run_broker`] starts one shard per
//! core; every shard accepts connections on the native port and on the Kafka port
//! (SO_REUSEPORT) and answers requests, sending the parts that touch partitions of
//! other shards to their owners. The Kafka protocol (`kafka`, codecs from the
//! patched `kafka-protocol` crate in `net/kafka-protocol`) reuses the native
//! handlers' produce, fetch and list-offsets paths. Topic metadata lives on shard 0
//! and reaches the others as snapshots. Consumer groups of both protocols are
//! coordinated by the owners of `__consumer_offsets` partitions: the logic is in
//! [`groups`] (no I/O), its hosting in `group_host`.

mod accept_backoff;
mod broker;
pub mod broker_settings;
mod cluster;
pub mod cluster_config;
mod cluster_id;
pub mod cluster_view;
mod config;
mod connection;
mod connection_limits;
mod connection_table;
pub mod controller;
mod disk_space;
mod errors;
mod exclusive;
mod group_host;
pub mod groups;
mod handlers;
mod kafka;
mod meta_file;
mod metadata;
mod metrics;
mod partition_health;
mod producer_id_blocks;
pub mod replication;
mod response;
mod server;
mod topic_config;

pub use config::{
    BrokerConfig, BrokerError, ConnectionConfig, CONNECTIONS_MAX_IDLE_MS_DEFAULT, DATA_DIR_DEFAULT,
    KAFKA_LISTEN_ADDR_DEFAULT, LISTEN_ADDR_DEFAULT, METRICS_ADDR_DEFAULT,
};
pub use connection::{CONNECTION_QUEUED_BYTES_MAX, IN_FLIGHT_REQUESTS_MAX};
pub use connection_table::SHARD_QUEUED_BYTES_MAX;
pub use errors::{engine_error_code, WireError};
pub use metadata::{validate_topic_name, CONSUMER_OFFSETS_TOPIC};
pub use response::SERVED_APIS;
pub use server::run_broker;
pub use topic_config::{ConfigError, TopicConfig, TOPIC_CONFIG_KEYS};
