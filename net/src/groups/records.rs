//! The records of the internal compacted topic `__consumer_offsets`.
//!
//! Keys (compaction keeps the newest value per key):
//! - offset: `u16 1 | str group | str topic | u32 partition`
//! - group metadata: `u16 2 | str group`
//!
//! Values start with a `u16` format:
//! - offset, format 0: `i64 offset | str metadata | i64 commit_time_ms`; format 1
//!   adds `| i32 leader_epoch` (-1 unknown). Format 1 is written.
//! - group metadata, format 0 (a native group, assigned by the broker):
//!   `i8 strategy | i32 generation | str leader | u32 members`, then per member
//!   `str id | str client_id | str host | u32 session_timeout_ms |
//!   u32 rebalance_timeout_ms | u32 topics | str topic… | tps assignment`
//! - group metadata, format 1 (a Kafka classic group, assigned by its leader):
//!   `i32 generation | str protocol_type | ostr protocol | ostr leader | u32 members`,
//!   then per member `str id | ostr instance_id | str client_id | str host |
//!   u32 session_timeout_ms | u32 rebalance_timeout_ms | bytes subscription |
//!   bytes assignment`
//! - group metadata, format 2 (a KIP-848 consumer group, assigned by the broker
//!   and reconciled member by member): `i32 group_epoch | i32 assignment_epoch |
//!   u32 members`, then per member `str id | ostr instance_id | ostr rack_id |
//!   str client_id | str host | u32 rebalance_timeout_ms | u32 topics | str topic… |
//!   ostr regex | ostr server_assignor | i32 epoch | i32 previous_epoch | u8 state |
//!   tps assigned | tps revoking | tps target`
//!
//! A deleted key is a tombstone (no value). `str` is a `u16` byte length then UTF-8;
//! `ostr` is a `u8` 0 (none) or 1 then a `str`; `bytes` is a `u32` length then the
//! bytes; `tps` is `u32 count | (str topic | u32 partition)…`; integers are little
//! endian.

use super::assignor::{Strategy, TopicPartition};
use super::consumer::MemberState;

const KEY_OFFSET: u16 = 1;
const KEY_METADATA: u16 = 2;
const OFFSET_FORMAT_V0: u16 = 0;
const OFFSET_FORMAT_V1: u16 = 1;
const METADATA_NATIVE: u16 = 0;
const METADATA_CLASSIC: u16 = 1;
const METADATA_CONSUMER: u16 = 2;
/// Most bytes one `bytes` field may hold (member metadata and assignments).
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;

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
    /// The leader epoch of the record before `offset`, as the client saw it (-1
    /// unknown); Kafka clients use it to detect log truncation.
    pub leader_epoch: i32,
}

/// One member of a native group as the metadata record keeps it.
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

/// A native group's state after its last rebalance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataValue {
    pub strategy: Strategy,
    pub generation: i32,
    pub leader: String,
    pub members: Vec<MemberRecord>,
}

/// One member of a Kafka classic group as the metadata record keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicMemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// The member's metadata for the group's protocol.
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A Kafka classic group's state after its last completed sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicMetadata {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<ClassicMemberRecord>,
}

/// One member of a KIP-848 consumer group as the metadata record keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerMemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub rebalance_timeout_ms: u32,
    pub topics: Vec<String>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Vec<TopicPartition>,
    pub revoking: Vec<TopicPartition>,
    pub target: Vec<TopicPartition>,
}

/// A KIP-848 consumer group's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerMetadata {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ConsumerMemberRecord>,
}

/// The metadata of a group, by the protocol that runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupMetadata {
    Native(MetadataValue),
    Classic(ClassicMetadata),
    Consumer(ConsumerMetadata),
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
        value: Option<GroupMetadata>,
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
    #[error("unknown value format {0}")]
    UnknownVersion(u16),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("unknown assignment strategy {0}")]
    UnknownStrategy(i8),
    #[error("unknown {what} {value}")]
    UnknownTag { what: &'static str, value: u8 },
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("a string of {0} bytes is longer than a record allows")]
    StringTooLong(usize),
    #[error("{what} of {len} bytes is longer than a record allows ({RECORD_BYTES_MAX})")]
    BytesTooLong { what: &'static str, len: usize },
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
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
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    /// Blobs longer than `RECORD_BYTES_MAX` are refused before they get here.
    fn bytes(&mut self, b: &[u8]) {
        debug_assert!(b.len() <= RECORD_BYTES_MAX);
        self.len_u32(b.len());
        self.0.extend_from_slice(b);
    }
    fn len_u32(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("counts are bounded far below u32::MAX"));
    }
    fn strs(&mut self, v: &[String]) {
        self.len_u32(v.len());
        for s in v {
            self.str(s);
        }
    }
    fn tps(&mut self, v: &[TopicPartition]) {
        self.len_u32(v.len());
        for tp in v {
            self.str(&tp.topic);
            self.u32(tp.partition);
        }
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
    fn u8(&mut self, what: &'static str) -> Result<u8, RecordError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, RecordError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, RecordError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, RecordError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes(b.try_into().expect("4 bytes")))
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
    fn opt_str(&mut self, what: &'static str) -> Result<Option<String>, RecordError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.str(what)?)),
            value => Err(RecordError::UnknownTag { what, value }),
        }
    }
    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, RecordError> {
        let n = self.u32(what)? as usize;
        if n > RECORD_BYTES_MAX {
            return Err(RecordError::BytesTooLong { what, len: n });
        }
        Ok(self.take(n, what)?.to_vec())
    }
    /// A count of items that take at least `item_bytes_min` bytes each: a count the
    /// rest of the record cannot hold is an error, not a huge allocation.
    fn count(&mut self, what: &'static str, item_bytes_min: usize) -> Result<usize, RecordError> {
        let n = self.u32(what)? as usize;
        let needed = n.saturating_mul(item_bytes_min);
        if needed > self.0.len() {
            return Err(RecordError::Truncated {
                what,
                needed,
                left: self.0.len(),
            });
        }
        Ok(n)
    }
    fn strs(&mut self, what: &'static str) -> Result<Vec<String>, RecordError> {
        let n = self.count(what, 2)?;
        (0..n).map(|_| self.str(what)).collect()
    }
    fn tps(&mut self, what: &'static str) -> Result<Vec<TopicPartition>, RecordError> {
        let n = self.count(what, 6)?;
        (0..n)
            .map(|_| {
                let topic = self.str(what)?;
                let partition = self.u32(what)?;
                Ok(TopicPartition { topic, partition })
            })
            .collect()
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

/// Checks that a blob fits a record.
pub fn check_bytes(what: &'static str, b: &[u8]) -> Result<(), RecordError> {
    if b.len() > RECORD_BYTES_MAX {
        return Err(RecordError::BytesTooLong { what, len: b.len() });
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
    let mut w = Writer(Vec::with_capacity(2 + 8 + 2 + v.metadata.len() + 8 + 4));
    w.u16(OFFSET_FORMAT_V1);
    w.i64(v.offset);
    w.str(&v.metadata);
    w.i64(v.commit_time_ms);
    w.i32(v.leader_epoch);
    Record {
        key: offset_key(group, tp),
        value: Some(w.0),
    }
}

/// The record of a group's metadata.
pub fn metadata_record(group: &str, v: &GroupMetadata) -> Record {
    let mut w = Writer(Vec::new());
    match v {
        GroupMetadata::Native(v) => write_native(&mut w, v),
        GroupMetadata::Classic(v) => write_classic(&mut w, v),
        GroupMetadata::Consumer(v) => write_consumer(&mut w, v),
    }
    Record {
        key: metadata_key(group),
        value: Some(w.0),
    }
}

fn write_native(w: &mut Writer, v: &MetadataValue) {
    w.u16(METADATA_NATIVE);
    w.u8(v.strategy.to_i8() as u8);
    w.i32(v.generation);
    w.str(&v.leader);
    w.len_u32(v.members.len());
    for m in &v.members {
        w.str(&m.member_id);
        w.str(&m.client_id);
        w.str(&m.host);
        w.u32(m.session_timeout_ms);
        w.u32(m.rebalance_timeout_ms);
        w.strs(&m.topics);
        w.tps(&m.assignment);
    }
}

fn write_classic(w: &mut Writer, v: &ClassicMetadata) {
    w.u16(METADATA_CLASSIC);
    w.i32(v.generation);
    w.str(&v.protocol_type);
    w.opt_str(v.protocol.as_deref());
    w.opt_str(v.leader.as_deref());
    w.len_u32(v.members.len());
    for m in &v.members {
        w.str(&m.member_id);
        w.opt_str(m.instance_id.as_deref());
        w.str(&m.client_id);
        w.str(&m.host);
        w.u32(m.session_timeout_ms);
        w.u32(m.rebalance_timeout_ms);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
    }
}

fn write_consumer(w: &mut Writer, v: &ConsumerMetadata) {
    w.u16(METADATA_CONSUMER);
    w.i32(v.group_epoch);
    w.i32(v.assignment_epoch);
    w.len_u32(v.members.len());
    for m in &v.members {
        w.str(&m.member_id);
        w.opt_str(m.instance_id.as_deref());
        w.opt_str(m.rack_id.as_deref());
        w.str(&m.client_id);
        w.str(&m.host);
        w.u32(m.rebalance_timeout_ms);
        w.strs(&m.topics);
        w.opt_str(m.regex.as_deref());
        w.opt_str(m.server_assignor.as_deref());
        w.i32(m.epoch);
        w.i32(m.previous_epoch);
        w.u8(m.state.to_u8());
        w.tps(&m.assigned);
        w.tps(&m.revoking);
        w.tps(&m.target);
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
            let value = value.map(decode_metadata).transpose()?;
            Ok(GroupRecord::Metadata { group, value })
        }
        other => Err(RecordError::UnknownKey(other)),
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader(bytes);
    let format = r.u16("value format")?;
    if format != OFFSET_FORMAT_V0 && format != OFFSET_FORMAT_V1 {
        return Err(RecordError::UnknownVersion(format));
    }
    let mut v = OffsetValue {
        offset: r.i64("offset")?,
        metadata: r.str("metadata")?,
        commit_time_ms: r.i64("commit time")?,
        leader_epoch: -1,
    };
    if format == OFFSET_FORMAT_V1 {
        v.leader_epoch = r.i32("leader epoch")?;
    }
    r.end()?;
    Ok(v)
}

fn decode_metadata(bytes: &[u8]) -> Result<GroupMetadata, RecordError> {
    let mut r = Reader(bytes);
    let v = match r.u16("value format")? {
        METADATA_NATIVE => GroupMetadata::Native(read_native(&mut r)?),
        METADATA_CLASSIC => GroupMetadata::Classic(read_classic(&mut r)?),
        METADATA_CONSUMER => GroupMetadata::Consumer(read_consumer(&mut r)?),
        v => return Err(RecordError::UnknownVersion(v)),
    };
    r.end()?;
    Ok(v)
}

fn read_native(r: &mut Reader<'_>) -> Result<MetadataValue, RecordError> {
    let s = r.u8("strategy")? as i8;
    let strategy = Strategy::from_i8(s).ok_or(RecordError::UnknownStrategy(s))?;
    let generation = r.i32("generation")?;
    let leader = r.str("leader")?;
    let count = r.count("member count", 20)?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(MemberRecord {
            member_id: r.str("member id")?,
            client_id: r.str("client id")?,
            host: r.str("host")?,
            session_timeout_ms: r.u32("session timeout")?,
            rebalance_timeout_ms: r.u32("rebalance timeout")?,
            topics: r.strs("topics")?,
            assignment: r.tps("assignment")?,
        });
    }
    Ok(MetadataValue {
        strategy,
        generation,
        leader,
        members,
    })
}

fn read_classic(r: &mut Reader<'_>) -> Result<ClassicMetadata, RecordError> {
    let generation = r.i32("generation")?;
    let protocol_type = r.str("protocol type")?;
    let protocol = r.opt_str("protocol")?;
    let leader = r.opt_str("leader")?;
    let count = r.count("member count", 23)?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(ClassicMemberRecord {
            member_id: r.str("member id")?,
            instance_id: r.opt_str("instance id")?,
            client_id: r.str("client id")?,
            host: r.str("host")?,
            session_timeout_ms: r.u32("session timeout")?,
            rebalance_timeout_ms: r.u32("rebalance timeout")?,
            subscription: r.bytes("subscription")?,
            assignment: r.bytes("assignment")?,
        });
    }
    Ok(ClassicMetadata {
        generation,
        protocol_type,
        protocol,
        leader,
        members,
    })
}

fn read_consumer(r: &mut Reader<'_>) -> Result<ConsumerMetadata, RecordError> {
    let group_epoch = r.i32("group epoch")?;
    let assignment_epoch = r.i32("assignment epoch")?;
    let count = r.count("member count", 39)?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(ConsumerMemberRecord {
            member_id: r.str("member id")?,
            instance_id: r.opt_str("instance id")?,
            rack_id: r.opt_str("rack id")?,
            client_id: r.str("client id")?,
            host: r.str("host")?,
            rebalance_timeout_ms: r.u32("rebalance timeout")?,
            topics: r.strs("topics")?,
            regex: r.opt_str("regex")?,
            server_assignor: r.opt_str("server assignor")?,
            epoch: r.i32("member epoch")?,
            previous_epoch: r.i32("previous member epoch")?,
            state: {
                let value = r.u8("member state")?;
                MemberState::from_u8(value).ok_or(RecordError::UnknownTag {
                    what: "member state",
                    value,
                })?
            },
            assigned: r.tps("assigned partitions")?,
            revoking: r.tps("partitions pending revocation")?,
            target: r.tps("target partitions")?,
        });
    }
    Ok(ConsumerMetadata {
        group_epoch,
        assignment_epoch,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(offset: i64, leader_epoch: i32) -> OffsetValue {
        OffsetValue {
            offset,
            metadata: "m".into(),
            commit_time_ms: 1_700_000_000_000,
            leader_epoch,
        }
    }

    fn round_trip(v: GroupMetadata) {
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
    fn offsets_round_trip() {
        let tp = TopicPartition::new("orders", 7);
        let v = offset(42, 3);
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
    fn format_0_offsets_still_decode_without_a_leader_epoch() {
        let tp = TopicPartition::new("t", 0);
        let mut w = Writer(Vec::new());
        w.u16(OFFSET_FORMAT_V0);
        w.i64(9);
        w.str("m");
        w.i64(1_700_000_000_000);
        let back = decode_record(&offset_key("g", &tp), Some(&w.0)).unwrap();
        assert_eq!(
            back,
            GroupRecord::Offset {
                group: "g".into(),
                tp,
                value: Some(offset(9, -1))
            }
        );
    }

    #[test]
    fn native_metadata_round_trips() {
        round_trip(GroupMetadata::Native(MetadataValue {
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
        }));
    }

    #[test]
    fn classic_metadata_round_trips() {
        round_trip(GroupMetadata::Classic(ClassicMetadata {
            generation: 7,
            protocol_type: "consumer".into(),
            protocol: Some("range".into()),
            leader: Some("c-1".into()),
            members: vec![
                ClassicMemberRecord {
                    member_id: "c-1".into(),
                    instance_id: Some("i-1".into()),
                    client_id: "c".into(),
                    host: "10.0.0.1".into(),
                    session_timeout_ms: 45_000,
                    rebalance_timeout_ms: 300_000,
                    subscription: vec![0, 1, 2],
                    assignment: vec![3, 4],
                },
                ClassicMemberRecord {
                    member_id: "c-2".into(),
                    instance_id: None,
                    client_id: String::new(),
                    host: String::new(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 10_000,
                    subscription: Vec::new(),
                    assignment: Vec::new(),
                },
            ],
        }));
        round_trip(GroupMetadata::Classic(ClassicMetadata {
            generation: 8,
            protocol_type: "consumer".into(),
            protocol: None,
            leader: None,
            members: Vec::new(),
        }));
    }

    #[test]
    fn consumer_metadata_round_trips() {
        round_trip(GroupMetadata::Consumer(ConsumerMetadata {
            group_epoch: 4,
            assignment_epoch: 4,
            members: vec![ConsumerMemberRecord {
                member_id: "m".into(),
                instance_id: None,
                rack_id: Some("r1".into()),
                client_id: "c".into(),
                host: "h".into(),
                rebalance_timeout_ms: 30_000,
                topics: vec!["t".into()],
                regex: Some("^t.*".into()),
                server_assignor: Some("uniform".into()),
                epoch: 4,
                previous_epoch: 3,
                state: MemberState::UnrevokedPartitions,
                assigned: vec![TopicPartition::new("t", 0)],
                revoking: vec![TopicPartition::new("t", 1)],
                target: vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)],
            }],
        }));
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
        let r = offset_record("g", &TopicPartition::new("t", 1), &offset(1, 0));
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
        // Every cut of a metadata value fails cleanly too, whatever its format.
        let classic = metadata_record(
            "g",
            &GroupMetadata::Classic(ClassicMetadata {
                generation: 1,
                protocol_type: "consumer".into(),
                protocol: Some("range".into()),
                leader: Some("a".into()),
                members: vec![ClassicMemberRecord {
                    member_id: "a".into(),
                    instance_id: None,
                    client_id: "c".into(),
                    host: "h".into(),
                    session_timeout_ms: 1,
                    rebalance_timeout_ms: 1,
                    subscription: vec![1; 10],
                    assignment: vec![2; 10],
                }],
            }),
        );
        let value = classic.value.unwrap();
        for cut in 0..value.len() {
            assert!(decode_record(&classic.key, Some(&value[..cut])).is_err());
        }
        // A huge member count in a short value is an error, not an allocation.
        let mut w = Writer(Vec::new());
        w.u16(METADATA_CONSUMER);
        w.i32(1);
        w.i32(1);
        w.u32(u32::MAX);
        assert!(matches!(
            decode_record(&metadata_key("g"), Some(&w.0)),
            Err(RecordError::Truncated { .. })
        ));
    }
}
