//! Topic metadata: which topics exist, their partition counts and configs, and the
//! durable file (`data_dir/__meta/topics`) they are kept in.
//!
//! Shard 0 owns the metadata: it applies every change, writes the file (temp file,
//! fsync, rename, directory fsync) and publishes the new state to every shard as an
//! immutable [`Topics`] snapshot. Everything here is plain data and text; the I/O
//! functions are blocking and run at startup or on a blocking thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::topic_config::{ConfigError, TopicConfig};

/// Longest topic name (Kafka's rule).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Most partitions a topic may have.
pub const PARTITIONS_MAX: u32 = 10_000;
/// The consumer groups' internal topic (created by the group coordinator).
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Directory under the data dir that holds the metadata file.
pub const META_DIR: &str = "__meta";
const TOPICS_FILE: &str = "topics";
const TOPICS_FILE_HEADER: &str = "strata-topics v1";

/// Checks a topic name against Kafka's rules: 1..=249 of `[a-zA-Z0-9._-]`, not `.`
/// or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".to_owned());
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "topic name is {} characters long, at most {TOPIC_NAME_BYTES_MAX} are allowed",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name {name:?} is reserved"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    if name == META_DIR {
        return Err(format!(
            "topic name {name:?} is reserved for broker metadata"
        ));
    }
    Ok(())
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: u32,
    /// The configs set on this topic (not the defaults).
    pub overrides: BTreeMap<String, String>,
    /// Effective configuration (defaults and overrides resolved).
    pub config: TopicConfig,
    /// The topic's id (Kafka's topic UUID): new for every topic created, so a
    /// topic deleted and created again under the same name has another id.
    pub id: [u8; 16],
    /// In a cluster: the replicas (broker ids) of each partition, the first the
    /// preferred leader, as the controller placed them. Empty on a single node.
    pub replicas: Vec<Vec<u64>>,
}

impl TopicMeta {
    /// A new topic with a fresh id.
    pub fn new(
        name: String,
        partitions: u32,
        overrides: BTreeMap<String, String>,
        config: TopicConfig,
    ) -> TopicMeta {
        let id = new_topic_id(&name);
        TopicMeta {
            name,
            partitions,
            overrides,
            config,
            id,
            replicas: Vec::new(),
        }
    }

    /// Whether this is a broker-internal topic.
    pub fn internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

/// A random topic id (version-4 UUID layout), from the std library's per-process
/// random hash keys, the name and the clock.
fn new_topic_id(name: &str) -> [u8; 16] {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        *half = std::collections::hash_map::RandomState::new().hash_one((name, nanos, i));
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&halves[0].to_be_bytes());
    id[8..].copy_from_slice(&halves[1].to_be_bytes());
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// The id of a topic written by a broker that did not store ids: derived from the
/// name, so it stays the same across restarts.
fn legacy_topic_id(name: &str) -> [u8; 16] {
    let a = crc32c::crc32c(name.as_bytes());
    let b = crc32c::crc32c_append(a, b"strata-topic-id");
    let c = crc32c::crc32c_append(b, name.as_bytes());
    let d = crc32c::crc32c_append(c, b"v1");
    let mut id = [0u8; 16];
    for (i, w) in [a, b, c, d].iter().enumerate() {
        id[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn parse_hex_id(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(id)
}

/// Every topic, as one immutable snapshot.
#[derive(Clone, Debug, Default)]
pub struct Topics {
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// The dynamic broker configs the topics' configs were resolved over (kept in
    /// their own file, `broker_settings::store_dynamic`, not in the topics file).
    pub dynamic: Arc<crate::broker_settings::DynamicBrokerConfigs>,
}

impl Topics {
    /// The topic called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    /// The topic whose id is `id`.
    pub fn by_id(&self, id: &[u8; 16]) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| &t.id == id)
    }

    /// The file text for these topics: a header line, then per topic a `topic NAME
    /// PARTITIONS ID` line (ID in hex; absent in files of older brokers) followed by its `config KEY=VALUE` lines. Names, keys and
    /// values are validated before they get here and contain no whitespace or `=`.
    pub fn to_text(&self) -> String {
        let mut out = format!("{TOPICS_FILE_HEADER}\n");
        for t in self.topics.values() {
            out.push_str(&format!(
                "topic {} {} {}\n",
                t.name,
                t.partitions,
                hex(&t.id)
            ));
            for (k, v) in &t.overrides {
                out.push_str(&format!("config {k}={v}\n"));
            }
        }
        out
    }

    /// Parses [`to_text`](Self::to_text) output, resolving configs over `defaults`.
    pub fn from_text(text: &str, defaults: &BTreeMap<String, String>) -> Result<Topics, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, TOPICS_FILE_HEADER)) => {}
            other => {
                return Err(format!(
                    "expected header {TOPICS_FILE_HEADER:?}, found {:?}",
                    other.map(|(_, l)| l)
                ))
            }
        }
        // (name, partitions, id, overrides) per topic, configs resolved at the end.
        type Pending = (String, u32, [u8; 16], BTreeMap<String, String>);
        let mut pending: Vec<Pending> = Vec::new();
        for (i, line) in lines {
            let line_no = i + 1;
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("topic ") {
                let mut fields = rest.split(' ');
                let (Some(name), Some(count)) = (fields.next(), fields.next()) else {
                    return Err(format!(
                        "line {line_no}: expected `topic NAME PARTITIONS ID`"
                    ));
                };
                validate_topic_name(name).map_err(|e| format!("line {line_no}: {e}"))?;
                let count: u32 = count
                    .parse()
                    .map_err(|_| format!("line {line_no}: bad partition count {count:?}"))?;
                let id = match fields.next() {
                    Some(text) => parse_hex_id(text)
                        .ok_or_else(|| format!("line {line_no}: bad topic id {text:?}"))?,
                    None => legacy_topic_id(name),
                };
                pending.push((name.to_owned(), count, id, BTreeMap::new()));
            } else if let Some(rest) = line.strip_prefix("config ") {
                let (k, v) = rest
                    .split_once('=')
                    .ok_or_else(|| format!("line {line_no}: expected `config KEY=VALUE`"))?;
                let topic = pending
                    .last_mut()
                    .ok_or_else(|| format!("line {line_no}: config before any topic"))?;
                topic.3.insert(k.to_owned(), v.to_owned());
            } else {
                return Err(format!("line {line_no}: unexpected {line:?}"));
            }
        }
        let mut topics = Topics::default();
        for (name, partitions, id, overrides) in pending {
            let config = TopicConfig::resolve(defaults, &overrides)
                .map_err(|e: ConfigError| format!("topic {name}: {e}"))?;
            topics.topics.insert(
                name.clone(),
                Arc::new(TopicMeta {
                    name,
                    partitions,
                    overrides,
                    config,
                    id,
                    replicas: Vec::new(),
                }),
            );
        }
        Ok(topics)
    }
}

/// Where partition `partition` of `topic` keeps its log.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Reads the topics file (blocking; at startup). No file = no topics.
pub fn load_topics(data_dir: &Path, defaults: &BTreeMap<String, String>) -> Result<Topics, String> {
    let path = || {
        crate::meta_file::meta_path(data_dir, TOPICS_FILE)
            .display()
            .to_string()
    };
    match crate::meta_file::read_meta_file(data_dir, TOPICS_FILE) {
        Ok(Some(text)) => {
            Topics::from_text(&text, defaults).map_err(|e| format!("{}: {e}", path()))
        }
        Ok(None) => Ok(Topics::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path())),
    }
}

/// Writes the topics file atomically and durably (blocking: run it on a blocking
/// thread).
pub fn store_topics(data_dir: &Path, text: &str) -> std::io::Result<()> {
    crate::meta_file::write_meta_file(data_dir, TOPICS_FILE, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name(".").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn text_round_trips() {
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_owned(), "-1".to_owned());
        let defaults = BTreeMap::new();
        let config = TopicConfig::resolve(&defaults, &overrides).unwrap();
        let mut topics = Topics::default();
        topics.topics.insert(
            "t".to_owned(),
            Arc::new(TopicMeta::new("t".to_owned(), 3, overrides, config)),
        );
        let back = Topics::from_text(&topics.to_text(), &defaults).unwrap();
        assert_eq!(
            back.get("t").unwrap().as_ref(),
            topics.get("t").unwrap().as_ref()
        );
        assert!(Topics::from_text("garbage", &defaults).is_err());
        // Files of brokers that stored no ids get a stable id per name.
        let old = "strata-topics v1\ntopic t 3\n";
        let a = Topics::from_text(old, &defaults).unwrap();
        let b = Topics::from_text(old, &defaults).unwrap();
        assert_eq!(a.get("t").unwrap().id, b.get("t").unwrap().id);
        assert_ne!(a.get("t").unwrap().id, back.get("t").unwrap().id);
    }
}
