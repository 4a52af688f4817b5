//! Control batches the broker writes into a partition itself: the leader-change batch
//! a new partition leader appends first (Raft's no-op entry of its term, so entries of
//! earlier terms can commit), and the membership batch a leader appends for each step
//! of a reassignment (the group's next voters and learners).
//!
//! It is a Kafka RecordBatch v2 control batch, as KRaft writes its LeaderChange: the
//! control attribute set, no producer, one record whose key is the control key
//! (version 0, type 2 = LEADER_CHANGE) and whose value is a LeaderChangeMessage v0.
//! Kafka clients skip control batches by themselves; every strata reader skips it with
//! [`is_control_batch`] (or `BatchHeader::attributes.is_control()`).

use crate::attributes::Attributes;
use crate::batch::ValidatedBatch;
use crate::header::BatchHeader;
use crate::kafka::{wrap_kafka_batch_produced, KafkaBatchBuilder};
use crate::ProduceRules;

/// Kafka's control record type of a leader change (KRaft's `ControlRecordType.LEADER_CHANGE`).
pub const CONTROL_TYPE_LEADER_CHANGE: i16 = 2;

/// A control record's key: version 0, then the type (both big-endian i16).
fn control_key(control_type: i16) -> [u8; 4] {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&control_type.to_be_bytes());
    key
}

/// KRaft's LeaderChangeMessage v0 (a flexible version): Version i16 = 0, LeaderId
/// i32, Voters and GrantingVoters as empty compact arrays, no tagged fields. A leader
/// id beyond i32 (Kafka's broker id type) is written as -1.
fn leader_change_value(leader: u64) -> [u8; 9] {
    let leader_id = i32::try_from(leader).unwrap_or(-1);
    let mut value = [0u8; 9];
    value[2..6].copy_from_slice(&leader_id.to_be_bytes());
    // Compact arrays count length + 1 as an unsigned varint: 1 = empty.
    value[6] = 1;
    value[7] = 1;
    // Tagged fields: none.
    value[8] = 0;
    value
}

/// The one-offset leader-change control batch a new leader of `leader_epoch` appends
/// first, stamped with nothing yet (the append assigns base offset and epoch).
pub fn leader_change_batch(leader_epoch: i32, leader: u64, timestamp_ms: i64) -> ValidatedBatch {
    let mut b = KafkaBatchBuilder::new().with_attributes(Attributes::default().with_control(true));
    b.push(
        timestamp_ms,
        Some(&control_key(CONTROL_TYPE_LEADER_CHANGE)),
        Some(&leader_change_value(leader)),
        &[],
    );
    let kafka = b.build();
    let mut batch = match wrap_kafka_batch_produced(&kafka, ProduceRules::default()) {
        Ok(batch) => batch,
        // A fixed-size batch built here: it cannot fail validation.
        Err(e) => unreachable!("leader-change batch fails validation: {e}"),
    };
    crate::stamp_leader_epoch(&mut batch.bytes, leader_epoch);
    batch.header.leader_epoch = leader_epoch;
    batch
}

/// strata's control record type for a Raft membership change. Kafka defines no such
/// type; its clients skip control batches whatever their type.
pub const CONTROL_TYPE_MEMBERSHIP: i16 = 100;

/// Most members one membership batch may list (far above any replication factor).
const MEMBERSHIP_MEMBERS_MAX: usize = 64;

/// The value of a membership record: version i16 = 0, then the voters and the
/// learners, each as a u16 count and that many u64 broker ids (big-endian).
fn membership_value(voters: &[u64], learners: &[u64]) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + 8 * (voters.len() + learners.len()));
    v.extend_from_slice(&0i16.to_be_bytes());
    for list in [voters, learners] {
        v.extend_from_slice(&(list.len() as u16).to_be_bytes());
        for id in list {
            v.extend_from_slice(&id.to_be_bytes());
        }
    }
    v
}

/// The one-offset control batch carrying a group's next membership, stamped with
/// `leader_epoch` (the append assigns the base offset).
pub fn membership_batch(
    leader_epoch: i32,
    voters: &[u64],
    learners: &[u64],
    timestamp_ms: i64,
) -> ValidatedBatch {
    let mut b = KafkaBatchBuilder::new().with_attributes(Attributes::default().with_control(true));
    b.push(
        timestamp_ms,
        Some(&control_key(CONTROL_TYPE_MEMBERSHIP)),
        Some(&membership_value(voters, learners)),
        &[],
    );
    let kafka = b.build();
    let mut batch = match wrap_kafka_batch_produced(&kafka, ProduceRules::default()) {
        Ok(batch) => batch,
        // Built here from a bounded membership: it cannot fail validation.
        Err(e) => unreachable!("membership batch fails validation: {e}"),
    };
    crate::stamp_leader_epoch(&mut batch.bytes, leader_epoch);
    batch.header.leader_epoch = leader_epoch;
    batch
}

/// The (voters, learners) a stored membership batch carries; `None` for any other
/// batch (data, leader change, transaction marker) or a malformed one.
pub fn membership_of_batch(bytes: &[u8]) -> Option<(Vec<u64>, Vec<u64>)> {
    let header = crate::check_batch(bytes).ok()?;
    if !header.attributes.is_control() {
        return None;
    }
    let (_, batch) = crate::validate_kafka_batch(bytes).ok()?;
    let record = batch.iter().next()?.ok()?;
    if record.key != Some(&control_key(CONTROL_TYPE_MEMBERSHIP)[..]) {
        return None;
    }
    let mut value = record.value?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = value.split_at_checked(n)?;
        value = rest;
        Some(head)
    };
    if take(2)? != [0, 0] {
        return None;
    }
    let mut lists = [Vec::new(), Vec::new()];
    for list in &mut lists {
        let n = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
        if n > MEMBERSHIP_MEMBERS_MAX {
            return None;
        }
        for _ in 0..n {
            list.push(u64::from_be_bytes(take(8)?.try_into().ok()?));
        }
    }
    if !value.is_empty() {
        return None;
    }
    let [voters, learners] = lists;
    Some((voters, learners))
}

/// Whether a stored batch is a control batch (leader change, transaction marker):
/// broker records that consumers, compaction and state replays skip.
pub fn is_control_batch(header: &BatchHeader) -> bool {
    header.attributes.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check_batch, kafka_payload, validate_batch, validate_kafka_batch, PayloadFormat};

    #[test]
    fn leader_change_is_a_one_offset_kafka_control_batch() {
        let batch = leader_change_batch(7, 3, 1_234);
        let h = *batch.header();
        assert!(is_control_batch(&h));
        assert!(!h.attributes.is_transactional());
        assert_eq!(h.payload_format, PayloadFormat::Kafka);
        assert_eq!((h.last_offset_delta, h.record_count), (0, 1));
        assert_eq!((h.producer_id, h.leader_epoch), (-1, 7));
        assert_eq!(h.first_timestamp_ms, 1_234);
        let bytes = batch.bytes();
        assert_eq!(check_batch(bytes).unwrap().leader_epoch, 7);
        validate_batch(bytes).unwrap();
        let kafka = kafka_payload(bytes).unwrap();
        // Kafka's partitionLeaderEpoch (bytes 12..16) and attributes (21..23, bit 5).
        assert_eq!(&kafka[12..16], &7i32.to_be_bytes());
        assert_eq!(i16::from_be_bytes([kafka[21], kafka[22]]) & 0x20, 0x20);
        let (_, records) = validate_kafka_batch(bytes).unwrap();
        let recs: Vec<_> = records.iter().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].key, Some(&[0u8, 0, 0, 2][..]));
        let value = recs[0].value.unwrap();
        assert_eq!(&value[..6], &[0, 0, 0, 0, 0, 3]);
        // An id Kafka cannot hold is written as -1.
        assert_eq!(&leader_change_value(u64::MAX)[2..6], &(-1i32).to_be_bytes());
    }

    #[test]
    fn membership_batches_carry_voters_and_learners_and_nothing_else_parses_as_one() {
        let batch = membership_batch(4, &[1, 2, 3], &[7], 99);
        let h = *batch.header();
        assert!(is_control_batch(&h));
        assert_eq!((h.last_offset_delta, h.leader_epoch), (0, 4));
        validate_batch(batch.bytes()).unwrap();
        assert_eq!(
            membership_of_batch(batch.bytes()),
            Some((vec![1, 2, 3], vec![7]))
        );
        let empty = membership_batch(1, &[5], &[], 0);
        assert_eq!(membership_of_batch(empty.bytes()), Some((vec![5], vec![])));
        assert_eq!(
            membership_of_batch(leader_change_batch(4, 1, 0).bytes()),
            None
        );
        assert_eq!(membership_of_batch(&[0u8; 10]), None);
    }
}
