use std::collections::BTreeMap;

use super::*;
use crate::controller::test_support::registration;

fn every_command() -> Vec<ControllerCommand> {
    use ControllerCommand as C;
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_owned(), "compact".to_owned());
    vec![
        C::SetClusterId([3; 16]),
        C::RegisterBroker(registration(4, Some("r1"))),
        C::BrokerHeartbeat {
            id: 4,
            incarnation: 9,
        },
        C::CreateTopic {
            name: "t".to_owned(),
            partitions: Some(3),
            replication_factor: Some(2),
            assignments: None,
            configs: configs.clone(),
            validate_only: true,
        },
        C::CreateTopic {
            name: "u".to_owned(),
            partitions: None,
            replication_factor: None,
            assignments: Some(vec![vec![1, 2], vec![2, 3]]),
            configs: BTreeMap::new(),
            validate_only: false,
        },
        C::DeleteTopic {
            name: "t".to_owned(),
        },
        C::CreatePartitions {
            name: "t".to_owned(),
            total: 5,
            assignments: Some(vec![vec![1], vec![2]]),
            validate_only: false,
        },
        C::AlterTopicConfigs {
            name: "t".to_owned(),
            set: configs,
            delete: vec!["retention.ms".to_owned()],
            incremental: true,
            validate_only: false,
        },
        C::ReportLeader {
            topic_id: [5; 16],
            partition: 1,
            leader: Some(2),
            leader_epoch: 4,
            isr: vec![2, 3],
        },
        C::ReportLeaders(vec![
            crate::controller::LeaderReport {
                topic_id: [5; 16],
                partition: 1,
                leader: Some(2),
                leader_epoch: 4,
                isr: vec![2, 3],
            },
            crate::controller::LeaderReport {
                topic_id: [6; 16],
                partition: 0,
                leader: None,
                leader_epoch: 0,
                isr: vec![],
            },
        ]),
        C::AllocateProducerIds { count: 1000 },
        C::AlterReassignment {
            topic: "t".to_owned(),
            partition: 2,
            target: Some(vec![2, 3, 4]),
        },
        C::AlterReassignment {
            topic: "t".to_owned(),
            partition: 0,
            target: None,
        },
        C::CompleteReassignment {
            topic_id: [5; 16],
            partition: 2,
            voters: vec![4, 2, 3],
        },
        C::ElectPreferredLeader {
            topic: "t".to_owned(),
            partition: 1,
        },
        C::UnregisterBroker { id: 4 },
    ]
}

#[test]
fn every_command_round_trips_and_every_truncation_is_refused() {
    for cmd in every_command() {
        let bytes = encode_command(&cmd);
        assert_eq!(decode_command(&bytes).unwrap(), cmd);
        for cut in 0..bytes.len() {
            assert!(
                decode_command(&bytes[..cut]).is_err(),
                "{cmd:?} cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(1);
        assert!(decode_command(&longer).is_err());
    }
    assert!(matches!(
        decode_command(&[CALL_VERSION + 1, CMD_DELETE_TOPIC]),
        Err(RecordCodecError::UnknownVersion { .. })
    ));
    assert!(matches!(
        decode_command(&[CALL_VERSION, 99]),
        Err(RecordCodecError::UnknownTag { tag: 99, .. })
    ));
}

#[test]
fn every_reply_round_trips() {
    let replies = [
        ControllerReply::Ok {
            applied_offset: 17,
            payload: ReplyPayload::None,
        },
        ControllerReply::Ok {
            applied_offset: 18,
            payload: ReplyPayload::TopicId([7; 16]),
        },
        ControllerReply::Ok {
            applied_offset: 19,
            payload: ReplyPayload::ProducerIds {
                first: 1000,
                count: 1000,
            },
        },
        ControllerReply::NotController { leader: Some(3) },
        ControllerReply::NotController { leader: None },
        ControllerReply::Err(ControllerError::invalid_replication_factor("too big")),
        ControllerReply::Err(ControllerError::unknown_topic("gone")),
    ];
    for reply in replies {
        let bytes = encode_reply(&reply);
        assert_eq!(decode_reply(&bytes).unwrap(), reply);
        for cut in 0..bytes.len() {
            assert!(decode_reply(&bytes[..cut]).is_err());
        }
    }
    // A long message is cut to the bound, at a char boundary.
    let long = ControllerReply::Err(ControllerError::invalid_request(
        "é".repeat(REPLY_MESSAGE_BYTES_MAX),
    ));
    let ControllerReply::Err(back) = decode_reply(&encode_reply(&long)).unwrap() else {
        panic!("an error reply");
    };
    assert!(back.message.len() <= REPLY_MESSAGE_BYTES_MAX && back.message.len() > 4000);
}

#[test]
fn the_reply_payload_comes_from_the_committed_records() {
    assert_eq!(
        ReplyPayload::of(&[MetadataRecord::CreateTopic {
            name: "t".into(),
            id: [2; 16],
            overrides: BTreeMap::new(),
            replicas: vec![vec![1]],
        }]),
        ReplyPayload::TopicId([2; 16])
    );
    assert_eq!(
        ReplyPayload::of(&[MetadataRecord::ProducerIdBlock { first: 5, count: 6 }]),
        ReplyPayload::ProducerIds { first: 5, count: 6 }
    );
    assert_eq!(ReplyPayload::of(&[]), ReplyPayload::None);
}
