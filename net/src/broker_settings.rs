//! Broker settings under Kafka's names: the `strata serve --config` file's Kafka
//! keys (`num.partitions`, `listeners`, `log.retention.hours`, …), the dynamic
//! broker configs that IncrementalAlterConfigs sets at runtime, and the durable file
//! those live in (`data_dir/__meta/broker-configs`).
//!
//! One source of truth for topic defaults: a broker key that is the default of a
//! topic config (`log.retention.ms` of `retention.ms`, `message.max.bytes` of
//! `max.message.bytes`, …; see `topic_config::TopicConfigKey::broker_key`) is stored
//! as that topic default in `BrokerConfig::topic_defaults`, the same map the older
//! `topic.KEY = VALUE` lines fill. Dynamic broker configs overlay it: this broker's
//! own (resource name = its id, DYNAMIC_BROKER_CONFIG) over the cluster-wide ones
//! (empty resource name, DYNAMIC_DEFAULT_BROKER_CONFIG) over the file
//! (STATIC_BROKER_CONFIG) over the built-in defaults (DEFAULT_CONFIG), as in Kafka.
//! Only topic defaults are dynamic; everything else is read when the broker starts.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use crate::config::BrokerConfig;
use crate::metadata::PARTITIONS_MAX;
use crate::topic_config::{by_broker_key, TopicConfig, REPLICATION_FACTOR};

/// The metadata file dynamic broker configs are kept in.
const BROKER_CONFIGS_FILE: &str = "broker-configs";
const BROKER_CONFIGS_HEADER: &str = "strata-broker-configs v1";
/// Most dynamic configs one resource may hold (there are fewer dynamic keys; this
/// only bounds a corrupt file).
pub const DYNAMIC_CONFIGS_MAX: usize = 1_000;

/// Kafka's `num.partitions` default.
pub const NUM_PARTITIONS_DEFAULT: u32 = 1;
/// Kafka's `group.initial.rebalance.delay.ms` default.
pub const GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT: u32 = 3_000;
/// Kafka's `group.min.session.timeout.ms` default.
pub const GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT: u32 = 6_000;
/// Kafka's `group.max.session.timeout.ms` default.
pub const GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT: u32 = 1_800_000;
/// Kafka's `offsets.topic.num.partitions` is 50; this broker's groups live on
/// fewer partitions, so a fresh data dir starts with this many.
pub const OFFSETS_TOPIC_NUM_PARTITIONS_DEFAULT: u32 = crate::groups::OFFSETS_TOPIC_PARTITIONS;

/// A broker setting that cannot be taken: which key, which value, why.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    #[error("invalid value {value:?} for broker config {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("broker config {key} cannot be changed while the broker runs{hint}; set it in the `strata serve --config` file")]
    ReadOnly { key: String, hint: String },
    #[error("unknown broker config {key:?}")]
    Unknown { key: String },
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> SettingError {
    SettingError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn ranged<T: TryFrom<i64>>(key: &str, value: &str, min: i64, max: i64) -> Result<T, SettingError> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))?;
    if v < min || v > max {
        return Err(invalid(
            key,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    T::try_from(v).map_err(|_| invalid(key, value, "out of range"))
}

fn boolean(key: &str, value: &str) -> Result<bool, SettingError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "must be true or false")),
    }
}

/// The `host:port` of a Kafka listener list with one PLAINTEXT listener
/// (`PLAINTEXT://host:port`; a bare `host:port` is taken too).
fn single_listener<'v>(key: &str, value: &'v str) -> Result<&'v str, SettingError> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    let [one] = items.as_slice() else {
        return Err(invalid(
            key,
            value,
            "this broker has one Kafka listener; give exactly one PLAINTEXT://host:port",
        ));
    };
    let addr = match one.split_once("://") {
        Some(("PLAINTEXT", addr)) => addr,
        Some((name, _)) => {
            return Err(invalid(
                key,
                value,
                format!("listener {name} is not supported; this broker serves PLAINTEXT only"),
            ))
        }
        None => one,
    };
    Ok(addr)
}

/// A listener address to bind: an empty host means every interface, a name is
/// resolved (blocking: the config file is read before the broker starts).
fn bind_addr(key: &str, value: &str, host_port: &str) -> Result<SocketAddr, SettingError> {
    let Some((host, port)) = host_port.rsplit_once(':') else {
        return Err(invalid(key, value, "expected host:port"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, value, "the port is not a number"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(SocketAddr::is_ipv4).or_else(|| a.next()))
        .ok_or_else(|| invalid(key, value, format!("cannot resolve host {host:?}")))
}

/// Applies `key = value` of the config file if `key` is one of Kafka's broker
/// settings (`Ok(false)`: it is not). Order-independent: `log.retention.ms` wins
/// over `log.retention.minutes`, which wins over `log.retention.hours`, whatever
/// line comes first (likewise `log.roll.ms` over `log.roll.hours`), as in Kafka.
pub fn apply_static(
    config: &mut BrokerConfig,
    key: &str,
    value: &str,
) -> Result<bool, SettingError> {
    let v = value.trim();
    match key {
        "broker.id" | "node.id" => config.broker_id = ranged(key, v, 0, i64::from(i32::MAX))?,
        "listeners" => {
            let addr = single_listener(key, v)?;
            config.kafka_listen = Some(bind_addr(key, v, addr)?);
        }
        "advertised.listeners" => {
            let addr = single_listener(key, v)?;
            let ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                return Err(invalid(
                    key,
                    v,
                    "expected PLAINTEXT://host:port with a host and a port",
                ));
            }
            config.kafka_advertised = Some(addr.to_owned());
        }
        "log.dirs" | "log.dir" => {
            if v.contains(',') {
                return Err(invalid(
                    key,
                    v,
                    "this broker keeps its data in one directory",
                ));
            }
            config.data_dir = v.into();
        }
        "num.partitions" => config.num_partitions = ranged(key, v, 1, i64::from(PARTITIONS_MAX))?,
        // Checked against the broker's role by `check_replication` once the cluster
        // keys are known (they may come later in the file, or as flags).
        "default.replication.factor" => {
            config.default_replication_factor = ranged(key, v, 1, i64::from(i16::MAX))?
        }
        "offsets.topic.replication.factor" => {
            config.offsets_topic_replication_factor = Some(ranged(key, v, 1, i64::from(i16::MAX))?)
        }
        "metadata.log.max.record.bytes.between.snapshots" => {
            config.metadata_snapshot_interval_bytes = ranged(key, v, 1, i64::MAX)?
        }
        "auto.leader.rebalance.enable" => config.auto_leader_rebalance = boolean(key, v)?,
        "leader.imbalance.check.interval.seconds" => {
            config.leader_imbalance_check_interval_s = ranged(key, v, 1, i64::from(u32::MAX))?
        }
        "leader.imbalance.per.broker.percentage" => {
            config.leader_imbalance_per_broker_percentage = ranged(key, v, 0, 100)?
        }
        "auto.create.topics.enable" => config.auto_create_topics = boolean(key, v)?,
        "group.initial.rebalance.delay.ms" => {
            config.group_initial_rebalance_delay_ms = ranged(
                key,
                v,
                0,
                i64::from(crate::groups::REBALANCE_TIMEOUT_MS_MAX),
            )?
        }
        "group.min.session.timeout.ms" => {
            config.group_min_session_timeout_ms = ranged(key, v, 1, i64::from(i32::MAX))?
        }
        "group.max.session.timeout.ms" => {
            config.group_max_session_timeout_ms = ranged(key, v, 1, i64::from(i32::MAX))?
        }
        "connections.max.idle.ms" => {
            config.connections.max_idle_ms = ranged(key, v, -1, i64::MAX)?;
            if config.connections.max_idle_ms == 0 {
                return Err(invalid(
                    key,
                    v,
                    "expected a positive number of milliseconds, or -1",
                ));
            }
        }
        "offsets.topic.num.partitions" => {
            config.offsets_topic_num_partitions = ranged(key, v, 1, i64::from(PARTITIONS_MAX))?
        }
        "log.retention.hours" | "log.retention.minutes" | "log.roll.hours" => {
            let (unit_ms, topic_key, stronger): (i64, &str, &[&str]) = match key {
                "log.retention.hours" => (
                    3_600_000,
                    "retention.ms",
                    &["log.retention.ms", "log.retention.minutes"],
                ),
                "log.retention.minutes" => (60_000, "retention.ms", &["log.retention.ms"]),
                _ => (3_600_000, "segment.ms", &["log.roll.ms"]),
            };
            let n: i64 = ranged(key, v, i64::MIN, i64::MAX)?;
            let ms = match n.checked_mul(unit_ms) {
                // Kafka: a negative retention is infinite.
                Some(ms) if ms < 0 && topic_key == "retention.ms" => -1,
                Some(ms) => ms,
                None => return Err(invalid(key, v, "too large")),
            };
            let ms = ms.to_string();
            TopicConfig::default()
                .apply(topic_key, &ms)
                .map_err(|e| invalid(key, v, e.to_string()))?;
            if !stronger
                .iter()
                .any(|k| config.static_kafka_keys.contains_key(*k))
            {
                config.topic_defaults.insert(topic_key.to_owned(), ms);
            }
        }
        _ => {
            let Some(spec) = by_broker_key(key) else {
                return Ok(false);
            };
            TopicConfig::default()
                .apply(spec.key, v)
                .map_err(|e| invalid(key, v, e.to_string()))?;
            config
                .topic_defaults
                .insert(spec.key.to_owned(), v.to_owned());
        }
    }
    config
        .static_kafka_keys
        .insert(key.to_owned(), v.to_owned());
    Ok(true)
}

/// Checks settings that only make sense together (after the whole file is read).
pub fn check_static(config: &BrokerConfig) -> Result<(), SettingError> {
    if config.group_min_session_timeout_ms > config.group_max_session_timeout_ms {
        return Err(invalid(
            "group.min.session.timeout.ms",
            &config.group_min_session_timeout_ms.to_string(),
            format!(
                "is above group.max.session.timeout.ms ({})",
                config.group_max_session_timeout_ms
            ),
        ));
    }
    Ok(())
}

/// Checks the replication factors against what the broker is: a single node keeps
/// one replica of everything; a cluster member takes any factor (CreateTopics checks
/// it against the live brokers). Call once the cluster settings are resolved.
pub fn check_replication(config: &BrokerConfig) -> Result<(), SettingError> {
    if config.cluster.is_some() {
        return Ok(());
    }
    let factors = [
        (
            "default.replication.factor",
            Some(config.default_replication_factor),
        ),
        (
            "offsets.topic.replication.factor",
            config.offsets_topic_replication_factor,
        ),
    ];
    for (key, rf) in factors {
        if let Some(rf) = rf.filter(|rf| *rf as i16 != REPLICATION_FACTOR) {
            return Err(invalid(
                key,
                &rf.to_string(),
                format!(
                    "this broker is a single node: the replication factor is {REPLICATION_FACTOR} \
                     (a cluster member, started with --node-id, --cluster-listen and --voters, takes more)"
                ),
            ));
        }
    }
    Ok(())
}

/// The dynamic broker configs (Kafka broker keys → values), as IncrementalAlterConfigs
/// and AlterConfigs on the BROKER resource set them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicBrokerConfigs {
    /// Resource name = this broker's id (DYNAMIC_BROKER_CONFIG).
    pub broker: BTreeMap<String, String>,
    /// Empty resource name: every broker's default (DYNAMIC_DEFAULT_BROKER_CONFIG).
    pub cluster_default: BTreeMap<String, String>,
}

impl DynamicBrokerConfigs {
    /// The configs of one resource: the cluster-wide defaults or this broker's.
    pub fn layer(&self, cluster_default: bool) -> &BTreeMap<String, String> {
        if cluster_default {
            &self.cluster_default
        } else {
            &self.broker
        }
    }

    pub fn layer_mut(&mut self, cluster_default: bool) -> &mut BTreeMap<String, String> {
        if cluster_default {
            &mut self.cluster_default
        } else {
            &mut self.broker
        }
    }

    /// The topic defaults of a broker whose file gave `static_defaults`: the
    /// cluster-wide dynamic configs over them, this broker's over those.
    pub fn topic_defaults(
        &self,
        static_defaults: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out = static_defaults.clone();
        for (k, v) in self.cluster_default.iter().chain(&self.broker) {
            if let Some(spec) = by_broker_key(k) {
                out.insert(spec.key.to_owned(), v.clone());
            }
        }
        out
    }

    /// The file text: a header, then `broker KEY=VALUE` and `default KEY=VALUE` lines.
    pub fn to_text(&self) -> String {
        let mut out = format!("{BROKER_CONFIGS_HEADER}\n");
        for (scope, map) in [("broker", &self.broker), ("default", &self.cluster_default)] {
            for (k, v) in map {
                out.push_str(&format!("{scope} {k}={v}\n"));
            }
        }
        out
    }

    /// Parses [`to_text`](Self::to_text) output.
    pub fn from_text(text: &str) -> Result<DynamicBrokerConfigs, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, BROKER_CONFIGS_HEADER)) => {}
            other => {
                return Err(format!(
                    "expected header {BROKER_CONFIGS_HEADER:?}, found {:?}",
                    other.map(|(_, l)| l)
                ))
            }
        }
        let mut out = DynamicBrokerConfigs::default();
        for (i, line) in lines {
            if line.is_empty() {
                continue;
            }
            let bad = || {
                format!(
                    "line {}: expected `broker KEY=VALUE` or `default KEY=VALUE`",
                    i + 1
                )
            };
            let (scope, rest) = line.split_once(' ').ok_or_else(bad)?;
            let (k, v) = rest.split_once('=').ok_or_else(bad)?;
            let map = match scope {
                "broker" => &mut out.broker,
                "default" => &mut out.cluster_default,
                _ => return Err(bad()),
            };
            if map.len() >= DYNAMIC_CONFIGS_MAX {
                return Err(format!("more than {DYNAMIC_CONFIGS_MAX} {scope} configs"));
            }
            map.insert(k.to_owned(), v.to_owned());
        }
        Ok(out)
    }
}

/// Checks that `key = value` may be set dynamically; the value comes back as it
/// is to be stored.
pub fn check_dynamic(key: &str, value: &str) -> Result<String, SettingError> {
    let Some(spec) = by_broker_key(key) else {
        if is_static_key(key) {
            let hint = match key {
                "log.retention.hours" | "log.retention.minutes" => {
                    " (log.retention.ms can)".to_owned()
                }
                "log.roll.hours" => " (log.roll.ms can)".to_owned(),
                _ => String::new(),
            };
            return Err(SettingError::ReadOnly {
                key: key.to_owned(),
                hint,
            });
        }
        return Err(SettingError::Unknown {
            key: key.to_owned(),
        });
    };
    let v = value.trim();
    TopicConfig::default()
        .apply(spec.key, v)
        .map_err(|e| invalid(key, v, e.to_string()))?;
    Ok(v.to_owned())
}

/// Whether `key` is a broker setting read only at startup.
pub fn is_static_key(key: &str) -> bool {
    STATIC_KEYS.contains(&key)
}

/// The broker settings that are not topic defaults (those come from
/// `topic_config::TOPIC_CONFIG_KEY_SPECS`), in the order DescribeConfigs lists them.
pub const STATIC_KEYS: [&str; 21] = [
    "advertised.listeners",
    "listeners",
    "broker.id",
    "node.id",
    "log.dirs",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "connections.max.idle.ms",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "metadata.log.max.record.bytes.between.snapshots",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
    "leader.imbalance.per.broker.percentage",
    "log.retention.hours",
    "log.retention.minutes",
    "log.roll.hours",
];

/// Reads the dynamic broker configs (blocking; at startup). No file = none.
pub fn load_dynamic(data_dir: &Path) -> Result<DynamicBrokerConfigs, String> {
    let path = || {
        crate::meta_file::meta_path(data_dir, BROKER_CONFIGS_FILE)
            .display()
            .to_string()
    };
    match crate::meta_file::read_meta_file(data_dir, BROKER_CONFIGS_FILE) {
        Ok(Some(text)) => {
            DynamicBrokerConfigs::from_text(&text).map_err(|e| format!("{}: {e}", path()))
        }
        Ok(None) => Ok(DynamicBrokerConfigs::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path())),
    }
}

/// Stores the dynamic broker configs durably (blocking: run it on a blocking thread).
pub fn store_dynamic(data_dir: &Path, text: &str) -> std::io::Result<()> {
    crate::meta_file::write_meta_file(data_dir, BROKER_CONFIGS_FILE, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(lines: &[(&str, &str)]) -> Result<BrokerConfig, SettingError> {
        let mut c = BrokerConfig::default();
        for (k, v) in lines {
            assert!(apply_static(&mut c, k, v)?, "{k} is a broker key");
        }
        check_static(&c)?;
        check_replication(&c)?;
        Ok(c)
    }

    #[test]
    fn kafka_broker_keys_set_the_broker_config() {
        let c = file(&[
            ("node.id", "3"),
            ("listeners", "PLAINTEXT://127.0.0.1:19092"),
            (
                "advertised.listeners",
                "PLAINTEXT://broker.example.com:9092",
            ),
            ("num.partitions", "4"),
            ("default.replication.factor", "1"),
            ("auto.create.topics.enable", "false"),
            ("group.initial.rebalance.delay.ms", "0"),
            ("group.min.session.timeout.ms", "500"),
            ("group.max.session.timeout.ms", "60000"),
            ("connections.max.idle.ms", "1000"),
            ("offsets.topic.num.partitions", "3"),
            ("message.max.bytes", "2000000"),
            ("log.segment.bytes", "1048576"),
            ("log.cleanup.policy", "compact"),
            ("compression.type", "producer"),
        ])
        .unwrap();
        assert_eq!(c.broker_id, 3);
        assert_eq!(c.kafka_listen, Some("127.0.0.1:19092".parse().unwrap()));
        assert_eq!(
            c.kafka_advertised.as_deref(),
            Some("broker.example.com:9092")
        );
        assert_eq!(c.num_partitions, 4);
        assert!(!c.auto_create_topics);
        assert_eq!(c.group_initial_rebalance_delay_ms, 0);
        assert_eq!(c.group_min_session_timeout_ms, 500);
        assert_eq!(c.group_max_session_timeout_ms, 60_000);
        assert_eq!(c.connections.max_idle_ms, 1000);
        assert_eq!(c.offsets_topic_num_partitions, 3);
        // Topic defaults under their topic names: one source of truth.
        assert_eq!(c.topic_defaults["max.message.bytes"], "2000000");
        assert_eq!(c.topic_defaults["segment.bytes"], "1048576");
        assert_eq!(c.topic_defaults["cleanup.policy"], "compact");
        assert_eq!(c.static_kafka_keys["num.partitions"], "4");
        // Non-Kafka keys are left to the caller.
        let mut d = BrokerConfig::default();
        assert!(!apply_static(&mut d, "data-dir", "/x").unwrap());
    }

    #[test]
    fn retention_units_take_kafka_precedence_whatever_the_order() {
        let c = file(&[("log.retention.ms", "5000"), ("log.retention.hours", "1")]).unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "5000");
        let c = file(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]).unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "120000");
        let c = file(&[("log.retention.minutes", "2"), ("log.retention.hours", "1")]).unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "120000");
        let c = file(&[("log.retention.hours", "-1")]).unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "-1");
        let c = file(&[("log.roll.hours", "2")]).unwrap();
        assert_eq!(c.topic_defaults["segment.ms"], "7200000");
        let c = file(&[("log.roll.ms", "1000"), ("log.roll.hours", "2")]).unwrap();
        assert_eq!(c.topic_defaults["segment.ms"], "1000");
    }

    #[test]
    fn bad_values_are_refused_with_the_key_and_reason() {
        for (k, v, why) in [
            ("num.partitions", "0", "between 1"),
            ("default.replication.factor", "3", "single node"),
            ("listeners", "SSL://:9093", "PLAINTEXT only"),
            (
                "listeners",
                "PLAINTEXT://:1,PLAINTEXT://:2",
                "one Kafka listener",
            ),
            ("advertised.listeners", "PLAINTEXT://:9092", "host"),
            ("auto.create.topics.enable", "maybe", "true or false"),
            ("log.segment.bytes", "10", "segment.bytes"),
            ("compression.type", "zstd", "never recompresses"),
            ("log.dirs", "/a,/b", "one directory"),
        ] {
            let e = file(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains(why), "{k}={v}: {e}");
        }
        let e = file(&[
            ("group.min.session.timeout.ms", "10000"),
            ("group.max.session.timeout.ms", "5000"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("above"), "{e}");
    }

    #[test]
    fn dynamic_configs_layer_and_round_trip() {
        let mut d = DynamicBrokerConfigs::default();
        d.cluster_default
            .insert("log.retention.ms".into(), "1000".into());
        d.cluster_default
            .insert("log.segment.bytes".into(), "1048576".into());
        d.broker.insert("log.retention.ms".into(), "2000".into());
        let statics: BTreeMap<String, String> =
            [("retention.ms".to_owned(), "500".to_owned())].into();
        let eff = d.topic_defaults(&statics);
        assert_eq!(eff["retention.ms"], "2000");
        assert_eq!(eff["segment.bytes"], "1048576");
        assert_eq!(DynamicBrokerConfigs::from_text(&d.to_text()).unwrap(), d);
        assert!(DynamicBrokerConfigs::from_text("junk").is_err());
        assert!(DynamicBrokerConfigs::from_text("strata-broker-configs v1\nother a=b\n").is_err());
        assert_eq!(check_dynamic("log.retention.ms", " 5 ").unwrap(), "5");
        assert!(matches!(
            check_dynamic("num.partitions", "5"),
            Err(SettingError::ReadOnly { .. })
        ));
        assert!(matches!(
            check_dynamic("nope", "5"),
            Err(SettingError::Unknown { .. })
        ));
        assert!(matches!(
            check_dynamic("log.retention.ms", "x"),
            Err(SettingError::Invalid { .. })
        ));
    }
}
