//! The records of the internal compacted topic `__consumer_offsets`.
//!
//! Keys (compaction keeps the newest value per key):
//! - offset: `u16 1 | str group | str topic | u32 partition`
//! - group metadata: `u16 2 | str group`
//!
//! Values start with a `u16` version (0):
//! - offset: `i64 offset | str metadata | i64 commit_time_ms`
//! - group metadata: `i8 strategy | i32 generation | str leader | u32 members`, then
//!   per member `str id | str client_id | str host | u32 session_timeout_ms |
//!   u32 rebalance_timeout_ms | u32 topics | str topic… | u32 assigned |
//!   (str topic | u32 partition)…`
//!
//! A deleted key is a tombstone (no value). `str` is a `u16` byte length then UTF-8;
//! integers are little endian.

use super::assignor::{Strategy, TopicPartition};

const KEY_OFFSET: u16 = 1;
const KEY_METADATA: u16 = 2;
const VALUE_VERSION: u16 = 0;

/// One record to append: key and value (none = tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub metadata: String,
    pub commit_time_ms: i64,
}

/// One member as the group metadata record keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub topics: Vec<String>,
    pub assignment: Vec<TopicPartition>,
}

/// A group's state after its last rebalance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataValue {
    pub strategy: Strategy,
    pub generation: i32,
    pub leader: String,
    pub members: Vec<MemberRecord>,
}

/// A decoded record of `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group: String,
        tp: TopicPartition,
        value: Option<OffsetValue>,
    },
    Metadata {
        group: String,
        value: Option<MetadataValue>,
    },
}

/// Why a record of `__consumer_offsets` does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record ends early: {what} needs {needed} bytes, {left} are left")]
    Truncated {
        what: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("unknown key kind {0}")]
    UnknownKey(u16),
    #[error("unknown value version {0}")]
    UnknownVersion(u16),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("unknown assignment strategy {0}")]
    UnknownStrategy(i8),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("a string of {0} bytes is longer than a record allows")]
    StringTooLong(usize),
}

struct Writer(Vec<u8>);

impl Writer {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Strings longer than `u16::MAX` bytes are refused before they get here.
    fn str(&mut self, s: &str) {
        let len = u16::try_from(s.len()).expect("string lengths are checked by the caller");
        self.u16(len);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn len_u32(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("counts are bounded far below u32::MAX"));
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated {
                what,
                needed: n,
                left: self.0.len(),
            });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, RecordError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, RecordError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, RecordError> {
        let b = self.take(8, what)?;
        Ok(i64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn str(&mut self, what: &'static str) -> Result<String, RecordError> {
        let n = usize::from(self.u16(what)?);
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| RecordError::NotUtf8(what))
    }
    fn end(&self) -> Result<(), RecordError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(RecordError::Trailing(n)),
        }
    }
}

/// Checks that a string fits a record (`u16` length).
pub fn check_str(s: &str) -> Result<(), RecordError> {
    if s.len() > usize::from(u16::MAX) {
        return Err(RecordError::StringTooLong(s.len()));
    }
    Ok(())
}

/// The key of a committed offset.
pub fn offset_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(
        2 + 2 + group.len() + 2 + tp.topic.len() + 4,
    ));
    w.u16(KEY_OFFSET);
    w.str(group);
    w.str(&tp.topic);
    w.u32(tp.partition);
    w.0
}

/// The key of a group's metadata.
pub fn metadata_key(group: &str) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(4 + group.len()));
    w.u16(KEY_METADATA);
    w.str(group);
    w.0
}

/// The record of a committed offset.
pub fn offset_record(group: &str, tp: &TopicPartition, v: &OffsetValue) -> Record {
    let mut w = Writer(Vec::with_capacity(2 + 8 + 2 + v.metadata.len() + 8));
    w.u16(VALUE_VERSION);
    w.i64(v.offset);
    w.str(&v.metadata);
    w.i64(v.commit_time_ms);
    Record {
        key: offset_key(group, tp),
        value: Some(w.0),
    }
}

/// The record of a group's metadata.
pub fn metadata_record(group: &str, v: &MetadataValue) -> Record {
    let mut w = Writer(Vec::new());
    w.u16(VALUE_VERSION);
    w.0.push(v.strategy.to_i8() as u8);
    w.u32(v.generation as u32);
    w.str(&v.leader);
    w.len_u32(v.members.len());
    for m in &v.members {
        w.str(&m.member_id);
        w.str(&m.client_id);
        w.str(&m.host);
        w.u32(m.session_timeout_ms);
        w.u32(m.rebalance_timeout_ms);
        w.len_u32(m.topics.len());
        for t in &m.topics {
            w.str(t);
        }
        w.len_u32(m.assignment.len());
        for tp in &m.assignment {
            w.str(&tp.topic);
            w.u32(tp.partition);
        }
    }
    Record {
        key: metadata_key(group),
        value: Some(w.0),
    }
}

/// Decodes one record of `__consumer_offsets` (`value` none = tombstone).
pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, RecordError> {
    let mut k = Reader(key);
    match k.u16("key kind")? {
        KEY_OFFSET => {
            let group = k.str("group")?;
            let topic = k.str("topic")?;
            let partition = k.u32("partition")?;
            k.end()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(GroupRecord::Offset {
                group,
                tp: TopicPartition { topic, partition },
                value,
            })
        }
        KEY_METADATA => {
            let group = k.str("group")?;
            k.end()?;
            let value = value.map(decode_metadata_value).transpose()?;
            Ok(GroupRecord::Metadata { group, value })
        }
        other => Err(RecordError::UnknownKey(other)),
    }
}

fn version(r: &mut Reader<'_>) -> Result<(), RecordError> {
    match r.u16("value version")? {
        VALUE_VERSION => Ok(()),
        v => Err(RecordError::UnknownVersion(v)),
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader(bytes);
    version(&mut r)?;
    let v = OffsetValue {
        offset: r.i64("offset")?,
        metadata: r.str("metadata")?,
        commit_time_ms: r.i64("commit time")?,
    };
    r.end()?;
    Ok(v)
}

fn decode_metadata_value(bytes: &[u8]) -> Result<MetadataValue, RecordError> {
    let mut r = Reader(bytes);
    version(&mut r)?;
    let s = r.take(1, "strategy")?[0] as i8;
    let strategy = Strategy::from_i8(s).ok_or(RecordError::UnknownStrategy(s))?;
    let generation = r.u32("generation")? as i32;
    let leader = r.str("leader")?;
    let count = r.u32("member count")?;
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.str("member id")?;
        let client_id = r.str("client id")?;
        let host = r.str("host")?;
        let session_timeout_ms = r.u32("session timeout")?;
        let rebalance_timeout_ms = r.u32("rebalance timeout")?;
        let mut topics = Vec::new();
        for _ in 0..r.u32("topic count")? {
            topics.push(r.str("topic")?);
        }
        let mut assignment = Vec::new();
        for _ in 0..r.u32("assignment count")? {
            let topic = r.str("assigned topic")?;
            let partition = r.u32("assigned partition")?;
            assignment.push(TopicPartition { topic, partition });
        }
        members.push(MemberRecord {
            member_id,
            client_id,
            host,
            session_timeout_ms,
            rebalance_timeout_ms,
            topics,
            assignment,
        });
    }
    r.end()?;
    Ok(MetadataValue {
        strategy,
        generation,
        leader,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let tp = TopicPartition::new("orders", 7);
        let v = OffsetValue {
            offset: 42,
            metadata: "m".into(),
            commit_time_ms: 1_700_000_000_000,
        };
        let r = offset_record("g", &tp, &v);
        let back = decode_record(&r.key, r.value.as_deref()).unwrap();
        assert_eq!(
            back,
            GroupRecord::Offset {
                group: "g".into(),
                tp: tp.clone(),
                value: Some(v)
            }
        );
        let tombstone = decode_record(&offset_key("g", &tp), None).unwrap();
        assert_eq!(
            tombstone,
            GroupRecord::Offset {
                group: "g".into(),
                tp,
                value: None
            }
        );
    }

    #[test]
    fn metadata_round_trips() {
        let v = MetadataValue {
            strategy: Strategy::Sticky,
            generation: 5,
            leader: "a-1".into(),
            members: vec![MemberRecord {
                member_id: "a-1".into(),
                client_id: "a".into(),
                host: "127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                topics: vec!["t".into(), "u".into()],
                assignment: vec![TopicPartition::new("t", 0), TopicPartition::new("u", 3)],
            }],
        };
        let r = metadata_record("g", &v);
        assert_eq!(
            decode_record(&r.key, r.value.as_deref()).unwrap(),
            GroupRecord::Metadata {
                group: "g".into(),
                value: Some(v)
            }
        );
    }

    #[test]
    fn keys_differ_per_group_topic_and_partition() {
        let a = offset_key("g", &TopicPartition::new("t", 1));
        assert_ne!(a, offset_key("g", &TopicPartition::new("t", 2)));
        assert_ne!(a, offset_key("g", &TopicPartition::new("u", 1)));
        assert_ne!(a, offset_key("h", &TopicPartition::new("t", 1)));
        assert_ne!(metadata_key("g"), metadata_key("h"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let r = offset_record(
            "g",
            &TopicPartition::new("t", 1),
            &OffsetValue {
                offset: 1,
                metadata: String::new(),
                commit_time_ms: 0,
            },
        );
        let value = r.value.unwrap();
        for cut in 0..value.len() {
            assert!(decode_record(&r.key, Some(&value[..cut])).is_err());
        }
        for cut in 0..r.key.len() {
            assert!(decode_record(&r.key[..cut], None).is_err());
        }
        assert_eq!(
            decode_record(&[9, 0], None),
            Err(RecordError::UnknownKey(9))
        );
        let mut long = value.clone();
        long.push(0);
        assert_eq!(
            decode_record(&r.key, Some(&long)),
            Err(RecordError::Trailing(1))
        );
    }
}
