use std::collections::BTreeMap;

use super::*;
use crate::controller::test_support::registration;

fn every_kind() -> Vec<MetadataRecord> {
    let mut overrides = BTreeMap::new();
    overrides.insert("retention.ms".to_owned(), "1000".to_owned());
    overrides.insert("min.insync.replicas".to_owned(), "2".to_owned());
    vec![
        MetadataRecord::ClusterId([9; 16]),
        MetadataRecord::RegisterBroker(registration(1, Some("rack-a"))),
        MetadataRecord::RegisterBroker(registration(2, None)),
        MetadataRecord::FenceBroker { id: 2 },
        MetadataRecord::UnfenceBroker { id: 2 },
        MetadataRecord::CreateTopic {
            name: "orders".to_owned(),
            id: [1; 16],
            overrides: overrides.clone(),
            replicas: vec![vec![1, 2], vec![2, 1]],
        },
        MetadataRecord::CreatePartitions {
            id: [1; 16],
            replicas: vec![vec![1, 2]],
        },
        MetadataRecord::AlterTopicConfigs {
            id: [1; 16],
            overrides,
        },
        MetadataRecord::PartitionLeader {
            topic_id: [1; 16],
            partition: 2,
            leader: Some(1),
            leader_epoch: 5,
            isr: vec![1],
        },
        MetadataRecord::PartitionLeader {
            topic_id: [1; 16],
            partition: 0,
            leader: None,
            leader_epoch: 6,
            isr: vec![],
        },
        MetadataRecord::DeleteTopic { id: [1; 16] },
        MetadataRecord::ProducerIdBlock {
            first: 0,
            count: 1000,
        },
        MetadataRecord::AlterReassignment {
            topic_id: [1; 16],
            partition: 0,
            target: Some(vec![2, 3, 4]),
        },
        MetadataRecord::AlterReassignment {
            topic_id: [1; 16],
            partition: 1,
            target: None,
        },
        MetadataRecord::CompleteReassignment {
            topic_id: [1; 16],
            partition: 0,
            replicas: vec![2, 3, 4],
        },
        MetadataRecord::ElectPreferredLeader {
            topic_id: [1; 16],
            partition: 0,
            leader_epoch: 7,
        },
        MetadataRecord::UnregisterBroker { id: 4 },
    ]
}

#[test]
fn every_record_kind_round_trips_in_one_entry() {
    let records = every_kind();
    let bytes = encode_records(&records);
    assert_eq!(decode_records(&bytes).unwrap(), records);
    assert_eq!(decode_records(&encode_records(&[])).unwrap(), vec![]);
}

#[test]
fn every_truncation_and_trailing_byte_is_an_error() {
    let bytes = encode_records(&every_kind());
    for cut in 0..bytes.len() {
        assert!(decode_records(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        decode_records(&longer),
        Err(RecordCodecError::Trailing { .. })
    ));
}

#[test]
fn corrupt_lengths_tags_and_versions_are_typed_errors_not_allocations() {
    // A count far larger than the bytes can hold.
    let mut huge = vec![0xff, 0xff, 0x0f, 0x00];
    huge.extend_from_slice(&[0; 8]);
    assert!(matches!(
        decode_records(&huge),
        Err(RecordCodecError::Truncated { .. })
    ));
    assert!(matches!(
        decode_records(&[0xff, 0xff, 0xff, 0xff]),
        Err(RecordCodecError::TooMany { .. })
    ));
    let one = encode_records(&[MetadataRecord::FenceBroker { id: 3 }]);
    let mut bad_tag = one.clone();
    bad_tag[4] = 200;
    assert!(matches!(
        decode_records(&bad_tag),
        Err(RecordCodecError::UnknownTag { tag: 200, .. })
    ));
    let mut newer = one.clone();
    newer[5] = 2;
    assert!(matches!(
        decode_records(&newer),
        Err(RecordCodecError::UnknownVersion { version: 2, .. })
    ));
    // A body longer than its record's fields: refused, not skipped.
    let mut padded = one.clone();
    padded[6] += 1;
    padded.push(0);
    assert!(matches!(
        decode_records(&padded),
        Err(RecordCodecError::Trailing { .. })
    ));
    // Too many replicas for one partition.
    let wide = encode_records(&[MetadataRecord::PartitionLeader {
        topic_id: [0; 16],
        partition: 0,
        leader: None,
        leader_epoch: 0,
        isr: (0..REPLICATION_FACTOR_MAX as u64 + 1).collect(),
    }]);
    assert!(matches!(
        decode_records(&wide),
        Err(RecordCodecError::TooMany { .. })
    ));
    // A topic name longer than Kafka allows.
    let long = encode_records(&[MetadataRecord::CreateTopic {
        name: "x".repeat(300),
        id: [0; 16],
        overrides: BTreeMap::new(),
        replicas: vec![vec![1]],
    }]);
    assert!(matches!(
        decode_records(&long),
        Err(RecordCodecError::TooLong { .. })
    ));
}

#[test]
fn the_layout_is_little_endian_with_a_version_per_record() {
    let bytes = encode_records(&[MetadataRecord::UnfenceBroker { id: 0x0102 }]);
    assert_eq!(
        bytes,
        [
            1,
            0,
            0,
            0, // one record
            TAG_UNFENCE_BROKER,
            RECORD_VERSION,
            8,
            0,
            0,
            0, // body bytes
            2,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ]
    );
}
