//! Topic configs: the `key=value` settings a topic is created or altered with,
//! validated and turned into the engine's `LogConfig`.
//!
//! Effective value of a key: the topic's own value, else the broker's default for
//! topics (`BrokerConfig::topic_defaults`), else the built-in default below.
//!
//! | key | values | built-in default |
//! | --- | --- | --- |
//! | `retention.ms` | -1 (infinite) or ms ≥ 0 | 604800000 (7 days) |
//! | `retention.bytes` | -1 (infinite) or bytes ≥ 0 | -1 |
//! | `cleanup.policy` | `delete`, `compact`, `compact,delete` | `delete` |
//! | `segment.bytes` | 64 KiB ..= 4 GiB - 1 | 1 GiB |
//! | `segment.ms` | ms ≥ 1 | 604800000 |
//! | `flush.ms` | 0 = fsync every batch (group commit), N = at most every N ms, -1 = left to the OS | 0 |
//! | `max.message.bytes` | 80 ..= 64 MiB (largest batch) | 1052672 |
//! | `message.timestamp.type` | `CreateTime`, `LogAppendTime` | `CreateTime` |
//! | `delete.retention.ms` | ms ≥ 0 | 86400000 |
//!
//! With `flush.ms` ≠ 0, `acks=all` still waits for the data to be durable: it waits
//! for the next interval's fsync (or forces one with `-1`).

use std::collections::BTreeMap;

use strata_engine::{CleanupPolicy, FlushPolicy, LogConfig};
use strata_schema::{TimestampType, BATCH_BYTES_MAX, BATCH_HEADER_BYTES};

/// Smallest accepted `segment.bytes`.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest accepted `segment.bytes` (segment positions are 32-bit).
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;

/// Every key a topic accepts.
pub const TOPIC_CONFIG_KEYS: [&str; 9] = [
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "segment.bytes",
    "segment.ms",
    "flush.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "delete.retention.ms",
];

/// The kind of value a topic config key takes (as Kafka types its configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigValueType {
    Long,
    Int,
    String,
    /// Comma-separated values (Kafka's LIST): the only kind that can be appended to.
    List,
}

/// What describes one topic config key besides its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicConfigKey {
    pub key: &'static str,
    pub value_type: ConfigValueType,
    /// The broker-wide setting that Kafka names this key's default with (a topic
    /// default `retention.ms` is Kafka's `log.retention.ms`).
    pub broker_key: &'static str,
    /// One line for people.
    pub doc: &'static str,
}

/// Every key of [`TOPIC_CONFIG_KEYS`], in the same order, with its type, broker
/// name and description.
pub const TOPIC_CONFIG_KEY_SPECS: [TopicConfigKey; 9] = [
    TopicConfigKey {
        key: "retention.ms",
        value_type: ConfigValueType::Long,
        broker_key: "log.retention.ms",
        doc: "Closed segments whose newest record is older than this are deleted; -1 keeps them forever.",
    },
    TopicConfigKey {
        key: "retention.bytes",
        value_type: ConfigValueType::Long,
        broker_key: "log.retention.bytes",
        doc: "Oldest closed segments are deleted while a partition is larger than this; -1 = no limit.",
    },
    TopicConfigKey {
        key: "cleanup.policy",
        value_type: ConfigValueType::List,
        broker_key: "log.cleanup.policy",
        doc: "delete (retention), compact (newest value per key) or both.",
    },
    TopicConfigKey {
        key: "segment.bytes",
        value_type: ConfigValueType::Long,
        broker_key: "log.segment.bytes",
        doc: "Size at which the active segment is closed and a new one started.",
    },
    TopicConfigKey {
        key: "segment.ms",
        value_type: ConfigValueType::Long,
        broker_key: "log.roll.ms",
        doc: "Age at which the active segment is closed and a new one started.",
    },
    TopicConfigKey {
        key: "flush.ms",
        value_type: ConfigValueType::Long,
        broker_key: "log.flush.interval.ms",
        doc: "0 = fsync every batch (group commit), N = at most every N ms, -1 = left to the OS.",
    },
    TopicConfigKey {
        key: "max.message.bytes",
        value_type: ConfigValueType::Int,
        broker_key: "message.max.bytes",
        doc: "Largest record batch a producer may send to this topic.",
    },
    TopicConfigKey {
        key: "message.timestamp.type",
        value_type: ConfigValueType::String,
        broker_key: "log.message.timestamp.type",
        doc: "CreateTime (the producer's) or LogAppendTime (the broker's) record timestamps.",
    },
    TopicConfigKey {
        key: "delete.retention.ms",
        value_type: ConfigValueType::Long,
        broker_key: "log.cleaner.delete.retention.ms",
        doc: "How long tombstones stay readable in compacted topics.",
    },
];

/// The description of topic config `key`, if it is one.
pub fn key_spec(key: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIG_KEY_SPECS.iter().find(|s| s.key == key)
}

/// A rejected topic config: which key, which value, why.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown topic config key {key:?}; known keys: {}", TOPIC_CONFIG_KEYS.join(", "))]
    UnknownKey { key: String },
    #[error("invalid value {value:?} for topic config {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A topic's effective configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    /// What the engine's logs of this topic run with.
    pub log: LogConfig,
    /// Which timestamp consumers should use; `LogAppendTime` makes produce replies
    /// carry the broker's append time.
    pub timestamp_type: TimestampType,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            log: LogConfig::default(),
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

fn parse_i64(key: &str, value: &str) -> Result<i64, ConfigError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ConfigError::invalid(key, value, "not an integer"))
}

fn parse_ranged(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let v = parse_i64(key, value)?;
    if v < min || v > max {
        return Err(ConfigError::invalid(
            key,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

/// -1 = none, otherwise a non-negative amount.
fn parse_optional(key: &str, value: &str) -> Result<Option<u64>, ConfigError> {
    match parse_i64(key, value)? {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v as u64)),
        _ => Err(ConfigError::invalid(
            key,
            value,
            "must be -1 (infinite) or at least 0",
        )),
    }
}

impl TopicConfig {
    /// Sets one key, checking its value.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let log = &mut self.log;
        match key {
            "retention.ms" => log.retention_ms = parse_optional(key, value)?,
            "retention.bytes" => log.retention_bytes = parse_optional(key, value)?,
            "cleanup.policy" => {
                let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
                parts.sort_unstable();
                parts.dedup();
                log.cleanup_policy = match parts.as_slice() {
                    ["delete"] => CleanupPolicy::Delete,
                    ["compact"] => CleanupPolicy::Compact,
                    ["compact", "delete"] => CleanupPolicy::CompactDelete,
                    _ => {
                        return Err(ConfigError::invalid(
                            key,
                            value,
                            "must be delete, compact or compact,delete",
                        ))
                    }
                };
            }
            "segment.bytes" => {
                log.segment_bytes = parse_ranged(
                    key,
                    value,
                    SEGMENT_BYTES_MIN as i64,
                    SEGMENT_BYTES_MAX as i64,
                )? as u64
            }
            "segment.ms" => log.segment_ms = parse_ranged(key, value, 1, i64::MAX)? as u64,
            "flush.ms" => {
                log.flush = match parse_i64(key, value)? {
                    -1 => FlushPolicy::Os,
                    0 => FlushPolicy::EveryBatch,
                    n if n > 0 => FlushPolicy::IntervalMs(n as u64),
                    _ => return Err(ConfigError::invalid(
                        key,
                        value,
                        "must be -1 (left to the OS), 0 (every batch) or a positive interval in ms",
                    )),
                }
            }
            "max.message.bytes" => {
                log.max_batch_bytes = parse_ranged(
                    key,
                    value,
                    BATCH_HEADER_BYTES as i64,
                    BATCH_BYTES_MAX as i64,
                )? as usize
            }
            "message.timestamp.type" => {
                self.timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => {
                        return Err(ConfigError::invalid(
                            key,
                            value,
                            "must be CreateTime or LogAppendTime",
                        ))
                    }
                };
                // The engine indexes and retains by append time under LogAppendTime.
                self.log.log_append_time = self.timestamp_type == TimestampType::LogAppendTime;
            }
            "delete.retention.ms" => {
                log.delete_retention_ms = parse_ranged(key, value, 0, i64::MAX)? as u64
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_owned(),
                })
            }
        }
        Ok(())
    }

    /// Built-in defaults, then `defaults`, then `overrides`.
    pub fn resolve(
        defaults: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        let mut config = TopicConfig::default();
        for (k, v) in defaults.iter().chain(overrides) {
            config.apply(k, v)?;
        }
        Ok(config)
    }

    /// The effective value of every key, in `TOPIC_CONFIG_KEYS` order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<u64>| v.map_or("-1".to_owned(), |v| v.to_string());
        let log = &self.log;
        TOPIC_CONFIG_KEYS
            .iter()
            .map(|&key| {
                let value = match key {
                    "retention.ms" => opt(log.retention_ms),
                    "retention.bytes" => opt(log.retention_bytes),
                    "cleanup.policy" => match log.cleanup_policy {
                        CleanupPolicy::Delete => "delete",
                        CleanupPolicy::Compact => "compact",
                        CleanupPolicy::CompactDelete => "compact,delete",
                    }
                    .to_owned(),
                    "segment.bytes" => log.segment_bytes.to_string(),
                    "segment.ms" => log.segment_ms.to_string(),
                    "flush.ms" => match log.flush {
                        FlushPolicy::Os => "-1".to_owned(),
                        FlushPolicy::EveryBatch => "0".to_owned(),
                        FlushPolicy::IntervalMs(n) => n.to_string(),
                    },
                    "max.message.bytes" => log.max_batch_bytes.to_string(),
                    "message.timestamp.type" => match self.timestamp_type {
                        TimestampType::LogAppendTime => "LogAppendTime",
                        TimestampType::CreateTime => "CreateTime",
                    }
                    .to_owned(),
                    "delete.retention.ms" => log.delete_retention_ms.to_string(),
                    _ => unreachable!("every key in TOPIC_CONFIG_KEYS has a value"),
                };
                (key, value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_through_entries() {
        let mut c = TopicConfig::default();
        for (k, v) in [
            ("retention.ms", "-1"),
            ("retention.bytes", "1000000"),
            ("cleanup.policy", "delete,compact"),
            ("segment.bytes", "1048576"),
            ("segment.ms", "60000"),
            ("flush.ms", "-1"),
            ("max.message.bytes", "2000000"),
            ("message.timestamp.type", "LogAppendTime"),
            ("delete.retention.ms", "0"),
        ] {
            c.apply(k, v).unwrap();
        }
        let entries: BTreeMap<_, _> = c.entries().into_iter().collect();
        assert_eq!(entries["cleanup.policy"], "compact,delete");
        assert_eq!(entries["retention.ms"], "-1");
        assert_eq!(entries["flush.ms"], "-1");
        let again = TopicConfig::resolve(
            &BTreeMap::new(),
            &entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
        .unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn every_key_has_a_spec_in_the_same_order() {
        let keys: Vec<&str> = TOPIC_CONFIG_KEY_SPECS.iter().map(|s| s.key).collect();
        assert_eq!(keys, TOPIC_CONFIG_KEYS);
        assert_eq!(
            key_spec("cleanup.policy").map(|s| s.value_type),
            Some(ConfigValueType::List)
        );
        assert!(key_spec("nope").is_none());
    }

    #[test]
    fn errors_name_key_value_and_reason() {
        let mut c = TopicConfig::default();
        let e = c.apply("retention.msx", "5").unwrap_err();
        assert!(e.to_string().contains("retention.msx"), "{e}");
        let e = c.apply("segment.bytes", "10").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("segment.bytes") && text.contains("\"10\""),
            "{text}"
        );
        assert!(c.apply("cleanup.policy", "keep").is_err());
        assert!(c.apply("flush.ms", "-7").is_err());
        assert!(c.apply("retention.bytes", "x").is_err());
    }
}
