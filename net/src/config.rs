//! How a broker is started: `BrokerConfig`, and what can stop it from starting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use strata_engine::shard::ShardError;

/// Default native protocol listener.
pub const LISTEN_ADDR_DEFAULT: &str = "127.0.0.1:9250";
/// Default Kafka protocol listener of `strata serve`.
pub const KAFKA_LISTEN_ADDR_DEFAULT: &str = "127.0.0.1:9092";
/// Default Prometheus metrics address.
pub const METRICS_ADDR_DEFAULT: &str = "127.0.0.1:9251";
/// Default data directory.
pub const DATA_DIR_DEFAULT: &str = "./strata-data";

/// Everything `run_broker` needs.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Where topic metadata and partition logs live.
    pub data_dir: PathBuf,
    /// Native protocol listener; every shard binds it (SO_REUSEPORT).
    pub listen: SocketAddr,
    /// Kafka protocol listener; every shard binds it (SO_REUSEPORT). `None` = no
    /// Kafka listener (the `strata serve` default is `KAFKA_LISTEN_ADDR_DEFAULT`).
    pub kafka_listen: Option<SocketAddr>,
    /// The `host:port` Kafka clients are told to connect to (Metadata,
    /// FindCoordinator); `None` = the Kafka listen address.
    pub kafka_advertised: Option<String>,
    /// Prometheus text metrics over HTTP (any path), served by shard 0; `None` = no
    /// metrics listener.
    pub metrics_addr: Option<SocketAddr>,
    /// Number of shards (one per core); 0 = every core this process may run on.
    pub cores: usize,
    /// Pin each shard to its own core.
    pub pin_to_cores: bool,
    /// Default topic configs (`retention.ms` → `-1`, …), applied under each topic's
    /// own; see `topic_config` for the keys.
    pub topic_defaults: BTreeMap<String, String>,
    /// This broker's id in Metadata responses.
    pub broker_id: i32,
    /// How often each shard's cleaner runs retention and compaction.
    pub cleaner_interval_ms: u64,
    /// `storage.min.free.bytes`: produces are refused while the data directory's
    /// filesystem has less free space; `None` = 64 MiB or 5% of a smaller disk, 0 =
    /// no floor (see `disk_space`).
    pub storage_min_free_bytes: Option<u64>,
    /// Connection limits and the idle timeout.
    pub connections: ConnectionConfig,
    /// Kafka's `num.partitions`: partitions of auto-created topics and of
    /// CreateTopics entries with `num_partitions` -1.
    pub num_partitions: u32,
    /// Kafka's `auto.create.topics.enable`: whether Metadata creates unknown topics.
    pub auto_create_topics: bool,
    /// Kafka's `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u32,
    /// Kafka's `group.min.session.timeout.ms`: shorter session timeouts are refused
    /// (INVALID_SESSION_TIMEOUT), for Kafka and native groups alike.
    pub group_min_session_timeout_ms: u32,
    /// Kafka's `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: u32,
    /// Kafka's `offsets.topic.num.partitions`: partitions `__consumer_offsets` is
    /// created with (an existing one keeps its count).
    pub offsets_topic_num_partitions: u32,
    /// The Kafka broker keys the config file set, as written (DescribeConfigs shows
    /// them as STATIC_BROKER_CONFIG).
    pub static_kafka_keys: BTreeMap<String, String>,
    /// Kafka's `default.replication.factor`: replicas of topics created without one
    /// (a cluster only; a single node keeps 1).
    pub default_replication_factor: u16,
    /// Kafka's `offsets.topic.replication.factor`: replicas of `__consumer_offsets` in
    /// a cluster; `None` = 3, or fewer while fewer brokers are registered.
    pub offsets_topic_replication_factor: Option<u16>,
    /// Kafka's `metadata.log.max.record.bytes.between.snapshots`: bytes of the
    /// metadata log a controller replica applies before it writes a new snapshot of
    /// its image and lets the log start move up (a cluster only).
    pub metadata_snapshot_interval_bytes: u64,
    /// Kafka's `auto.leader.rebalance.enable`: the controller leader moves leadership
    /// back to preferred replicas (a cluster only).
    pub auto_leader_rebalance: bool,
    /// Kafka's `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_s: u64,
    /// Kafka's `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_per_broker_percentage: u32,
    /// The cluster this broker is a member of (`--node-id`, `--cluster-listen`,
    /// `--voters`, `--rack`); `None` = a single-node broker. When set, `broker_id`
    /// is its node id.
    pub cluster: Option<crate::cluster_config::ClusterConfig>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            listen: LISTEN_ADDR_DEFAULT
                .parse()
                .expect("a valid literal address"),
            kafka_listen: None,
            kafka_advertised: None,
            metrics_addr: Some(
                METRICS_ADDR_DEFAULT
                    .parse()
                    .expect("a valid literal address"),
            ),
            cores: 0,
            pin_to_cores: true,
            topic_defaults: BTreeMap::new(),
            broker_id: 0,
            cleaner_interval_ms: strata_engine::cleaner::CLEANER_INTERVAL_MS_DEFAULT,
            storage_min_free_bytes: None,
            connections: ConnectionConfig::default(),
            num_partitions: crate::broker_settings::NUM_PARTITIONS_DEFAULT,
            auto_create_topics: true,
            group_initial_rebalance_delay_ms:
                crate::broker_settings::GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT,
            group_min_session_timeout_ms:
                crate::broker_settings::GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT,
            group_max_session_timeout_ms:
                crate::broker_settings::GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT,
            default_replication_factor: 1,
            offsets_topic_replication_factor: None,
            metadata_snapshot_interval_bytes:
                crate::cluster::metadata_snapshot::SNAPSHOT_INTERVAL_BYTES_DEFAULT,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_s:
                crate::controller::leader_balance::IMBALANCE_CHECK_INTERVAL_S_DEFAULT,
            leader_imbalance_per_broker_percentage:
                crate::controller::leader_balance::IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT,
            offsets_topic_num_partitions:
                crate::broker_settings::OFFSETS_TOPIC_NUM_PARTITIONS_DEFAULT,
            static_kafka_keys: BTreeMap::new(),
            cluster: None,
        }
    }
}

/// Kafka's default `connections.max.idle.ms`: 10 minutes.
pub const CONNECTIONS_MAX_IDLE_MS_DEFAULT: i64 = 600_000;

/// Connection limits, with Kafka's names (`connections.max.idle.ms`,
/// `max.connections`, `max.connections.per.ip`) in the config file. Both listeners
/// count together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// A connection that moves no bytes either way for this long is closed (a client
    /// that stopped reading its responses too); -1 = never.
    pub max_idle_ms: i64,
    /// Connections the broker serves at once; a new one beyond it is closed at once.
    pub max_connections: u32,
    /// Connections one client IP address may have open at once; a new one beyond
    /// it is closed at once.
    pub max_connections_per_ip: u32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        // Kafka's defaults: no limit (Int.MaxValue) on either count.
        ConnectionConfig {
            max_idle_ms: CONNECTIONS_MAX_IDLE_MS_DEFAULT,
            max_connections: i32::MAX as u32,
            max_connections_per_ip: i32::MAX as u32,
        }
    }
}

impl ConnectionConfig {
    /// Whether either count is limited (only then does an accept ask shard 0).
    pub fn limits_connections(&self) -> bool {
        let unlimited = ConnectionConfig::default();
        self.max_connections < unlimited.max_connections
            || self.max_connections_per_ip < unlimited.max_connections_per_ip
    }
}

/// Why the broker could not start or stopped with an error.
#[derive(thiserror::Error, Debug)]
pub enum BrokerError {
    /// A setting is invalid.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// The data directory or its metadata could not be read or created.
    #[error("data directory problem: {0}")]
    DataDir(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {reason} (is another broker running on that port?)")]
    Bind { addr: SocketAddr, reason: String },
    /// A partition log could not be opened at startup.
    #[error("cannot open partition {topic}-{partition}: {reason}")]
    OpenPartition {
        topic: String,
        partition: u32,
        reason: String,
    },
    /// The shard runtime failed.
    #[error(transparent)]
    Shards(#[from] ShardError),
}
