//! Topic configs: the `key=value` settings a topic is created or altered with,
//! validated and turned into the engine's `LogConfig`.
//!
//! Effective value of a key: the topic's own value, else the broker's default for
//! topics (`BrokerConfig::topic_defaults`, overlaid by dynamic broker configs), else
//! the built-in default below.
//!
//! Every topic config Kafka 4.x lists is known here, and each is one of:
//! - honoured (the table below);
//! - accepted with no effect ([`KeyEffect::Inert`]): validated as Kafka validates
//!   it and described back, but nothing here acts on it, for the reason its spec
//!   gives (tiered storage, replication throttles, … on a single node). Kafka
//!   clients (Streams, Connect) create topics with several of these set, so refusing
//!   them would break those clients;
//! - honoured for the values this broker can honour, refused with a reason for the
//!   others (`compression.type`: only `producer`, since batches are stored as the
//!   producer sent them and never recompressed; `min.insync.replicas`: only 1 on a
//!   single node; `remote.storage.enable`: only false).
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
//! | `message.timestamp.before.max.ms` | ms ≥ 0 | 9223372036854775807 |
//! | `message.timestamp.after.max.ms` | ms ≥ 0 | 3600000 (Kafka 4.0's) |
//! | `message.timestamp.difference.max.ms` | ms ≥ 0 (both directions) | 9223372036854775807 |
//! | `index.interval.bytes` | bytes ≥ 0 | 4096 |
//! | `preallocate` | true, false | true |
//! | `compression.type` | `producer` | `producer` |
//! | `min.insync.replicas` | 1 | 1 |
//!
//! With `flush.ms` ≠ 0, `acks=all` still waits for the data to be durable: it waits
//! for the next interval's fsync (or forces one with `-1`). The timestamp window
//! (`message.timestamp.*`) is checked at produce time against the broker's clock for
//! `CreateTime` topics: a batch with a timestamp outside it is refused with
//! INVALID_TIMESTAMP.

use std::collections::BTreeMap;

use strata_engine::{CleanupPolicy, FlushPolicy, LogConfig};
use strata_schema::{TimestampType, BATCH_BYTES_MAX, BATCH_HEADER_BYTES};

/// Smallest accepted `segment.bytes`.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest accepted `segment.bytes` (segment positions are 32-bit).
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// `message.timestamp.after.max.ms` when nothing sets it (Kafka 4.0's default, KIP-1030).
pub const TIMESTAMP_AFTER_MAX_MS_DEFAULT: u64 = 3_600_000;
/// "No limit" for the timestamp window keys (Kafka's `Long.MAX_VALUE`).
pub const TIMESTAMP_UNBOUNDED_MS: u64 = i64::MAX as u64;
/// The only replication factor of this single-node broker (and so the largest
/// `min.insync.replicas`).
pub const REPLICATION_FACTOR: i16 = 1;

/// The kind of value a topic config key takes (as Kafka types its configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigValueType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    /// Comma-separated values (Kafka's LIST): the only kind that can be appended to.
    List,
}

/// How an inert key's value is checked (as Kafka checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueCheck {
    Boolean,
    /// An integer in `min..=max`.
    Range(i64, i64),
    /// A decimal in `0.0..=1.0`.
    Ratio,
    /// Replica throttle lists: empty, `*`, or `partition:broker` pairs.
    ThrottledReplicas,
    /// Any text (keys kept only so that older tools setting them keep working).
    Any,
}

/// What a key does on this broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEffect {
    /// The broker acts on it.
    Honoured,
    /// Accepted and described, acted on by nothing here.
    Inert {
        /// Why it has no effect (shown to users in the config's documentation).
        why: &'static str,
        check: ValueCheck,
        default: &'static str,
    },
}

/// What describes one topic config key besides its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicConfigKey {
    pub key: &'static str,
    pub value_type: ConfigValueType,
    /// The broker-wide setting that Kafka names this key's default with (a topic
    /// default `retention.ms` is Kafka's `log.retention.ms`); `None` for keys with
    /// no broker-wide default.
    pub broker_key: Option<&'static str>,
    /// One line for people.
    pub doc: &'static str,
    pub effect: KeyEffect,
}

const fn honoured(
    key: &'static str,
    value_type: ConfigValueType,
    broker_key: &'static str,
    doc: &'static str,
) -> TopicConfigKey {
    TopicConfigKey {
        key,
        value_type,
        broker_key: Some(broker_key),
        doc,
        effect: KeyEffect::Honoured,
    }
}

const fn inert(
    key: &'static str,
    value_type: ConfigValueType,
    broker_key: Option<&'static str>,
    default: &'static str,
    check: ValueCheck,
    why: &'static str,
) -> TopicConfigKey {
    TopicConfigKey {
        key,
        value_type,
        broker_key,
        doc: why,
        effect: KeyEffect::Inert {
            why,
            check,
            default,
        },
    }
}

use ConfigValueType as T;

const NO_REMOTE: &str =
    "Accepted, no effect: this broker has no tiered storage; every segment stays local.";
const NO_REPLICAS: &str =
    "Accepted, no effect: this broker is a single node, so there are no followers to throttle or elect.";
const NO_RECOMPRESSION: &str =
    "Accepted, no effect: the broker never recompresses (compression.type accepts only producer).";
const NUMBER_OF_KEYS: usize = 36;

/// Every key a topic accepts: honoured keys first, then the inert ones.
pub const TOPIC_CONFIG_KEY_SPECS: [TopicConfigKey; NUMBER_OF_KEYS] = [
    honoured("retention.ms", T::Long, "log.retention.ms",
        "Closed segments whose newest record is older than this are deleted; -1 keeps them forever."),
    honoured("retention.bytes", T::Long, "log.retention.bytes",
        "Oldest closed segments are deleted while a partition is larger than this; -1 = no limit."),
    honoured("cleanup.policy", T::List, "log.cleanup.policy",
        "delete (retention), compact (newest value per key) or both."),
    honoured("segment.bytes", T::Int, "log.segment.bytes",
        "Size at which the active segment is closed and a new one started."),
    honoured("segment.ms", T::Long, "log.roll.ms",
        "Age at which the active segment is closed and a new one started."),
    honoured("flush.ms", T::Long, "log.flush.interval.ms",
        "0 = fsync every batch (group commit), N = at most every N ms, -1 = left to the OS."),
    honoured("max.message.bytes", T::Int, "message.max.bytes",
        "Largest record batch a producer may send to this topic."),
    honoured("message.timestamp.type", T::String, "log.message.timestamp.type",
        "CreateTime (the producer's) or LogAppendTime (the broker's) record timestamps."),
    honoured("delete.retention.ms", T::Long, "log.cleaner.delete.retention.ms",
        "How long tombstones stay readable in compacted topics."),
    honoured("message.timestamp.before.max.ms", T::Long, "log.message.timestamp.before.max.ms",
        "CreateTime topics refuse (INVALID_TIMESTAMP) batches with a timestamp more than this before the broker's clock."),
    honoured("message.timestamp.after.max.ms", T::Long, "log.message.timestamp.after.max.ms",
        "CreateTime topics refuse (INVALID_TIMESTAMP) batches with a timestamp more than this after the broker's clock."),
    honoured("message.timestamp.difference.max.ms", T::Long, "log.message.timestamp.difference.max.ms",
        "Deprecated by Kafka: bounds the timestamp window in both directions (the tighter of it and before/after applies)."),
    honoured("index.interval.bytes", T::Int, "log.index.interval.bytes",
        "Bytes of log between two entries of the sparse offset index."),
    honoured("preallocate", T::Boolean, "log.preallocate",
        "Reserve disk space for segments ahead of writes."),
    honoured("compression.type", T::String, "compression.type",
        "producer: batches are stored as the producer compressed them (the broker never recompresses)."),
    honoured("min.insync.replicas", T::Int, "min.insync.replicas",
        "Replicas that must have an acks=all write; at most the replication factor, which is 1 on this single node."),
    inert("min.compaction.lag.ms", T::Long, Some("log.cleaner.min.compaction.lag.ms"), "0",
        ValueCheck::Range(0, i64::MAX),
        "Accepted, no effect: the cleaner compacts closed segments only, on its own interval."),
    inert("max.compaction.lag.ms", T::Long, Some("log.cleaner.max.compaction.lag.ms"), "9223372036854775807",
        ValueCheck::Range(1, i64::MAX),
        "Accepted, no effect: the cleaner compacts every closed segment on each run (segment.ms bounds how long the active one stays open)."),
    inert("min.cleanable.dirty.ratio", T::Double, Some("log.cleaner.min.cleanable.ratio"), "0.5",
        ValueCheck::Ratio,
        "Accepted, no effect: the cleaner compacts every closed segment on each run, whatever its dirty ratio."),
    inert("segment.index.bytes", T::Int, Some("log.index.size.max.bytes"), "10485760",
        ValueCheck::Range(4, i32::MAX as i64),
        "Accepted, no effect: index files grow with their segment instead of being preallocated."),
    inert("segment.jitter.ms", T::Long, Some("log.roll.jitter.ms"), "0",
        ValueCheck::Range(0, i64::MAX),
        "Accepted, no effect: segments roll at segment.ms exactly."),
    inert("file.delete.delay.ms", T::Long, Some("log.segment.delete.delay.ms"), "60000",
        ValueCheck::Range(0, i64::MAX),
        "Accepted, no effect: a segment is deleted once no reader holds it, without a delay."),
    inert("flush.messages", T::Long, Some("log.flush.interval.messages"), "9223372036854775807",
        ValueCheck::Range(1, i64::MAX),
        "Accepted, no effect: when data is fsynced is set by flush.ms (every batch by default)."),
    inert("unclean.leader.election.enable", T::Boolean, Some("unclean.leader.election.enable"), "false",
        ValueCheck::Boolean, NO_REPLICAS),
    inert("follower.replication.throttled.replicas", T::List, None, "",
        ValueCheck::ThrottledReplicas, NO_REPLICAS),
    inert("leader.replication.throttled.replicas", T::List, None, "",
        ValueCheck::ThrottledReplicas, NO_REPLICAS),
    inert("message.downconversion.enable", T::Boolean, Some("log.message.downconversion.enable"), "true",
        ValueCheck::Boolean,
        "Accepted, no effect: batches are served in the format they were written in (Kafka 4 removed down-conversion too)."),
    inert("compression.gzip.level", T::Int, Some("compression.gzip.level"), "-1",
        ValueCheck::Range(-1, 9), NO_RECOMPRESSION),
    inert("compression.lz4.level", T::Int, Some("compression.lz4.level"), "9",
        ValueCheck::Range(1, 17), NO_RECOMPRESSION),
    inert("compression.zstd.level", T::Int, Some("compression.zstd.level"), "3",
        ValueCheck::Range(-131072, 22), NO_RECOMPRESSION),
    inert("local.retention.ms", T::Long, Some("log.local.retention.ms"), "-2",
        ValueCheck::Range(-2, i64::MAX), NO_REMOTE),
    inert("local.retention.bytes", T::Long, Some("log.local.retention.bytes"), "-2",
        ValueCheck::Range(-2, i64::MAX), NO_REMOTE),
    honoured_remote(),
    inert("remote.log.copy.disable", T::Boolean, None, "false", ValueCheck::Boolean, NO_REMOTE),
    inert("remote.log.delete.on.disable", T::Boolean, None, "false", ValueCheck::Boolean, NO_REMOTE),
    inert("message.format.version", T::String, Some("log.message.format.version"), "3.0-IV1",
        ValueCheck::Any,
        "Accepted, no effect: Kafka 4 ignores it too; batches are stored as produced (format v2)."),
];

/// `remote.storage.enable`: false is honoured; true is refused (no tiered storage).
const fn honoured_remote() -> TopicConfigKey {
    TopicConfigKey {
        key: "remote.storage.enable",
        value_type: T::Boolean,
        broker_key: None,
        doc: "Tiered storage; only false: this broker keeps every segment local.",
        effect: KeyEffect::Honoured,
    }
}

const fn spec_keys() -> [&'static str; NUMBER_OF_KEYS] {
    let mut out = [""; NUMBER_OF_KEYS];
    let mut i = 0;
    while i < NUMBER_OF_KEYS {
        out[i] = TOPIC_CONFIG_KEY_SPECS[i].key;
        i += 1;
    }
    out
}

/// Every key a topic accepts, in [`TOPIC_CONFIG_KEY_SPECS`] order.
pub const TOPIC_CONFIG_KEYS: [&str; NUMBER_OF_KEYS] = spec_keys();

/// The description of topic config `key`, if it is one.
pub fn key_spec(key: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIG_KEY_SPECS.iter().find(|s| s.key == key)
}

/// The topic config whose broker-wide default Kafka names `broker_key`.
pub fn by_broker_key(broker_key: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIG_KEY_SPECS
        .iter()
        .find(|s| s.broker_key == Some(broker_key))
}

/// A rejected topic config: which key, which value, why.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown topic config key {key:?}; this broker knows Kafka's topic configs: {}", TOPIC_CONFIG_KEYS.join(", "))]
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
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: u64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: u64,
    /// `message.timestamp.difference.max.ms` (Kafka's deprecated both-ways bound).
    pub timestamp_difference_max_ms: u64,
    /// The value of every inert key (see [`KeyEffect::Inert`]), as given.
    pub inert: BTreeMap<&'static str, String>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            log: LogConfig::default(),
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: TIMESTAMP_UNBOUNDED_MS,
            timestamp_after_max_ms: TIMESTAMP_AFTER_MAX_MS_DEFAULT,
            timestamp_difference_max_ms: TIMESTAMP_UNBOUNDED_MS,
            inert: TOPIC_CONFIG_KEY_SPECS
                .iter()
                .filter_map(|s| match s.effect {
                    KeyEffect::Inert { default, .. } => Some((s.key, default.to_owned())),
                    KeyEffect::Honoured => None,
                })
                .collect(),
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

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::invalid(key, value, "must be true or false")),
    }
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

/// The value of an inert key, checked and normalised.
fn check_inert(key: &str, value: &str, check: ValueCheck) -> Result<String, ConfigError> {
    let v = value.trim();
    match check {
        ValueCheck::Boolean => Ok(parse_bool(key, v)?.to_string()),
        ValueCheck::Any => Ok(v.to_owned()),
        ValueCheck::Range(min, max) => Ok(parse_ranged(key, v, min, max)?.to_string()),
        ValueCheck::Ratio => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(v.to_owned()),
            _ => Err(ConfigError::invalid(
                key,
                value,
                "must be a number between 0 and 1",
            )),
        },
        ValueCheck::ThrottledReplicas => {
            let ok = v.is_empty()
                || v == "*"
                || v.split(',').all(|pair| {
                    pair.trim().split_once(':').is_some_and(|(p, b)| {
                        p.trim().parse::<u32>().is_ok() && b.trim().parse::<i32>().is_ok()
                    })
                });
            if !ok {
                return Err(ConfigError::invalid(
                    key,
                    value,
                    "must be empty, * or a list of partition:broker pairs",
                ));
            }
            Ok(v.to_owned())
        }
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
            "message.timestamp.before.max.ms" => {
                self.timestamp_before_max_ms = parse_ranged(key, value, 0, i64::MAX)? as u64
            }
            "message.timestamp.after.max.ms" => {
                self.timestamp_after_max_ms = parse_ranged(key, value, 0, i64::MAX)? as u64
            }
            "message.timestamp.difference.max.ms" => {
                self.timestamp_difference_max_ms = parse_ranged(key, value, 0, i64::MAX)? as u64
            }
            "index.interval.bytes" => {
                log.index_interval_bytes = parse_ranged(key, value, 0, i64::from(i32::MAX))? as u32
            }
            "preallocate" => log.preallocate = parse_bool(key, value)?,
            "compression.type" => match value.trim() {
                "producer" => {}
                "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => {
                    return Err(ConfigError::invalid(
                        key,
                        value,
                        "this broker stores batches exactly as the producer sent them and never \
                         recompresses, so only `producer` is accepted; set the codec on the \
                         producer instead (its compression.type)",
                    ))
                }
                _ => {
                    return Err(ConfigError::invalid(
                        key,
                        value,
                        "must be producer (uncompressed, gzip, snappy, lz4 and zstd would need \
                         the broker to recompress, which it does not)",
                    ))
                }
            },
            "min.insync.replicas" => {
                let n = parse_i64(key, value)?;
                if n != i64::from(REPLICATION_FACTOR) {
                    return Err(ConfigError::invalid(
                        key,
                        value,
                        format!(
                            "must be between 1 and the replication factor, which is \
                             {REPLICATION_FACTOR} on this single-node broker"
                        ),
                    ));
                }
            }
            "remote.storage.enable" => {
                if parse_bool(key, value)? {
                    return Err(ConfigError::invalid(
                        key,
                        value,
                        "this broker has no tiered storage; only false is accepted",
                    ));
                }
            }
            _ => {
                let Some(spec) = key_spec(key) else {
                    return Err(ConfigError::UnknownKey {
                        key: key.to_owned(),
                    });
                };
                let KeyEffect::Inert { check, .. } = spec.effect else {
                    unreachable!("every honoured key has its own arm above: {key}");
                };
                self.inert.insert(spec.key, check_inert(key, value, check)?);
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

    /// The window around the broker's clock that a CreateTime record timestamp
    /// must fall in: (ms before, ms after), the deprecated both-ways bound applied.
    pub fn timestamp_window_ms(&self) -> (u64, u64) {
        let d = self.timestamp_difference_max_ms;
        (
            self.timestamp_before_max_ms.min(d),
            self.timestamp_after_max_ms.min(d),
        )
    }

    /// Why a batch with record timestamps `first_ms..=max_ms` may not be appended
    /// at `now_ms` (Kafka's INVALID_TIMESTAMP), if it may not. LogAppendTime topics
    /// take every timestamp: the broker's replaces them.
    pub fn timestamp_refusal(&self, now_ms: i64, first_ms: i64, max_ms: i64) -> Option<String> {
        if self.timestamp_type == TimestampType::LogAppendTime {
            return None;
        }
        let (before, after) = self.timestamp_window_ms();
        let earliest = now_ms.saturating_sub(i64::try_from(before).unwrap_or(i64::MAX));
        let latest = now_ms.saturating_add(i64::try_from(after).unwrap_or(i64::MAX));
        [first_ms, max_ms]
            .into_iter()
            // -1: a record without a timestamp (older clients); nothing to check.
            .filter(|&t| t >= 0)
            .find(|&t| t < earliest || t > latest)
            .map(|t| {
                format!(
                    "timestamp {t} is out of range: the topic accepts {earliest}..={latest} \
                     (broker time {now_ms}, message.timestamp.before.max.ms {before}, \
                     message.timestamp.after.max.ms {after})"
                )
            })
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
                    "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
                    "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
                    "message.timestamp.difference.max.ms" => {
                        self.timestamp_difference_max_ms.to_string()
                    }
                    "index.interval.bytes" => log.index_interval_bytes.to_string(),
                    "preallocate" => log.preallocate.to_string(),
                    "compression.type" => "producer".to_owned(),
                    "min.insync.replicas" => REPLICATION_FACTOR.to_string(),
                    "remote.storage.enable" => "false".to_owned(),
                    other => self.inert.get(other).cloned().unwrap_or_default(),
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
            ("message.timestamp.before.max.ms", "1000"),
            ("message.timestamp.after.max.ms", "2000"),
            ("message.timestamp.difference.max.ms", "3000"),
            ("index.interval.bytes", "0"),
            ("preallocate", "false"),
            ("min.compaction.lag.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("unclean.leader.election.enable", "TRUE"),
            ("leader.replication.throttled.replicas", "0:0,1:0"),
        ] {
            c.apply(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
        let entries: BTreeMap<_, _> = c.entries().into_iter().collect();
        assert_eq!(entries.len(), TOPIC_CONFIG_KEYS.len());
        assert_eq!(entries["cleanup.policy"], "compact,delete");
        assert_eq!(entries["retention.ms"], "-1");
        assert_eq!(entries["flush.ms"], "-1");
        assert_eq!(entries["unclean.leader.election.enable"], "true");
        assert_eq!(entries["segment.index.bytes"], "10485760");
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
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "a key is listed twice");
        assert_eq!(
            key_spec("cleanup.policy").map(|s| s.value_type),
            Some(ConfigValueType::List)
        );
        assert!(key_spec("nope").is_none());
        assert_eq!(
            by_broker_key("log.retention.ms").map(|s| s.key),
            Some("retention.ms")
        );
        // Every default value is one the key accepts.
        let defaults: BTreeMap<String, String> = TopicConfig::default()
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        TopicConfig::resolve(&defaults, &BTreeMap::new()).unwrap();
    }

    #[test]
    fn kafka_streams_and_connect_topic_configs_are_accepted() {
        // What Kafka Streams puts on a changelog and a repartition topic, and what
        // Kafka Connect puts on its internal topics.
        for configs in [
            &[
                ("cleanup.policy", "compact"),
                ("message.timestamp.type", "CreateTime"),
                ("min.compaction.lag.ms", "0"),
                ("min.insync.replicas", "1"),
            ][..],
            &[
                ("cleanup.policy", "delete"),
                ("segment.bytes", "52428800"),
                ("retention.ms", "-1"),
                ("message.timestamp.type", "CreateTime"),
                ("segment.ms", "600000"),
            ],
            &[
                ("cleanup.policy", "compact"),
                ("compression.type", "producer"),
                ("max.compaction.lag.ms", "9223372036854775807"),
                ("min.cleanable.dirty.ratio", "0.5"),
            ],
        ] {
            let overrides = configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            TopicConfig::resolve(&BTreeMap::new(), &overrides).unwrap();
        }
    }

    #[test]
    fn values_this_broker_cannot_honour_are_refused_with_the_reason() {
        let mut c = TopicConfig::default();
        for (k, v, why) in [
            ("compression.type", "zstd", "never recompresses"),
            ("compression.type", "bogus", "must be producer"),
            ("min.insync.replicas", "2", "single-node"),
            ("min.insync.replicas", "0", "between 1"),
            ("remote.storage.enable", "true", "tiered storage"),
            ("min.cleanable.dirty.ratio", "1.5", "between 0 and 1"),
            ("preallocate", "yes", "true or false"),
            ("segment.index.bytes", "2", "between 4"),
            ("follower.replication.throttled.replicas", "x", "pairs"),
        ] {
            let e = c.apply(k, v).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains(why), "{k}={v}: {e}");
        }
    }

    #[test]
    fn timestamps_outside_the_window_are_refused_on_create_time_topics() {
        let now = 1_700_000_000_000;
        let mut c = TopicConfig::default();
        // Defaults: anything in the past, at most an hour ahead.
        assert_eq!(c.timestamp_refusal(now, 0, now), None);
        assert_eq!(c.timestamp_refusal(now, -1, -1), None);
        assert!(c.timestamp_refusal(now, now, now + 3_600_001).is_some());
        c.apply("message.timestamp.before.max.ms", "1000").unwrap();
        assert!(c.timestamp_refusal(now, now - 1001, now).is_some());
        assert_eq!(c.timestamp_refusal(now, now - 1000, now + 1000), None);
        c.apply("message.timestamp.difference.max.ms", "10")
            .unwrap();
        assert_eq!(c.timestamp_window_ms(), (10, 10));
        let why = c.timestamp_refusal(now, now, now + 11).unwrap();
        assert!(why.contains("out of range"), "{why}");
        c.apply("message.timestamp.type", "LogAppendTime").unwrap();
        assert_eq!(c.timestamp_refusal(now, 0, i64::MAX), None);
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
