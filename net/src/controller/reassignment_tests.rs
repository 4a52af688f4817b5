use super::*;
use crate::controller::error::kafka_codes as K;
use crate::controller::test_support::{image_with_brokers, image_with_racks};
use crate::controller::{plan, ControllerCommand, ControllerSettings};

const T: [u8; 16] = [7; 16];

/// An image with brokers `brokers` and topic "t" of `replicas` (one per partition).
fn image(brokers: &[NodeId], replicas: Vec<Vec<NodeId>>) -> MetadataImage {
    let mut image = image_with_brokers(brokers);
    add_topic(&mut image, replicas);
    image
}

fn add_topic(image: &mut MetadataImage, replicas: Vec<Vec<NodeId>>) {
    image
        .apply(&MetadataRecord::CreateTopic {
            name: "t".to_owned(),
            id: T,
            overrides: Default::default(),
            replicas,
        })
        .unwrap();
}

fn run(image: &mut MetadataImage, cmd: ControllerCommand) -> Result<usize, ControllerError> {
    let records = plan(image, &cmd, &ControllerSettings::default(), 0, 1)?;
    image.apply_all(&records).expect("planned records apply");
    Ok(records.len())
}

fn alter(partition: u32, target: Option<Vec<NodeId>>) -> ControllerCommand {
    ControllerCommand::AlterReassignment {
        topic: "t".to_owned(),
        partition,
        target,
    }
}

fn lead(image: &mut MetadataImage, partition: u32, leader: NodeId, epoch: i32, isr: Vec<NodeId>) {
    image
        .apply(&MetadataRecord::PartitionLeader {
            topic_id: T,
            partition,
            leader: Some(leader),
            leader_epoch: epoch,
            isr,
        })
        .unwrap();
}

#[test]
fn a_reassignment_is_recorded_listed_completed_and_cancelled() {
    let mut image = image(&[1, 2, 3, 4], vec![vec![1, 2, 3]]);
    assert_eq!(run(&mut image, alter(0, Some(vec![2, 3, 4]))), Ok(1));
    let p = image.partition(&T, 0).unwrap();
    assert_eq!(p.target, Some(vec![2, 3, 4]));
    assert_eq!((p.adding(), p.removing()), (vec![4], vec![1]));
    assert!(p.is_hosted_by(1) && p.is_hosted_by(4));
    // The new replica may report itself leader and in sync before the move is done.
    run(
        &mut image,
        ControllerCommand::ReportLeader {
            topic_id: T,
            partition: 0,
            leader: Some(4),
            leader_epoch: 3,
            isr: vec![2, 3, 4],
        },
    )
    .unwrap();
    // A completion that does not match the target is refused.
    let stale = ControllerCommand::CompleteReassignment {
        topic_id: T,
        partition: 0,
        voters: vec![1, 2, 3],
    };
    assert_eq!(
        run(&mut image, stale).unwrap_err().kafka_code,
        K::INVALID_REQUEST
    );
    let done = ControllerCommand::CompleteReassignment {
        topic_id: T,
        partition: 0,
        voters: vec![4, 3, 2],
    };
    assert_eq!(run(&mut image, done.clone()), Ok(1));
    let p = image.partition(&T, 0).unwrap();
    assert_eq!(
        p.replicas,
        vec![2, 3, 4],
        "the target's order: 2 is preferred"
    );
    assert_eq!(p.target, None);
    assert!(!p.is_hosted_by(1));
    assert_eq!(
        run(&mut image, done).unwrap_err().kafka_code,
        K::NO_REASSIGNMENT_IN_PROGRESS
    );
    // Cancel: none in progress is an error; one in progress goes.
    assert_eq!(
        run(&mut image, alter(0, None)).unwrap_err().kafka_code,
        K::NO_REASSIGNMENT_IN_PROGRESS
    );
    run(&mut image, alter(0, Some(vec![2, 3]))).unwrap();
    assert_eq!(run(&mut image, alter(0, None)), Ok(1));
    assert_eq!(image.partition(&T, 0).unwrap().target, None);
    // The replicas it has already: nothing to do.
    assert_eq!(run(&mut image, alter(0, Some(vec![2, 3, 4]))), Ok(0));
    // Through a snapshot, a reassignment in progress survives.
    run(&mut image, alter(0, Some(vec![1, 2, 3, 4]))).unwrap();
    let mut rebuilt = MetadataImage::new();
    rebuilt.apply_all(&image.snapshot_records()).unwrap();
    assert_eq!(rebuilt, image);
}

#[test]
fn bad_targets_are_refused_as_kafka_does() {
    let mut image = image(&[1, 2, 3, 4], vec![vec![1, 2, 3]]);
    image.apply(&MetadataRecord::FenceBroker { id: 4 }).unwrap();
    let code = |image: &mut MetadataImage, cmd| run(image, cmd).unwrap_err().kafka_code;
    assert_eq!(
        code(&mut image, alter(0, Some(vec![1, 2, 9]))),
        K::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        code(&mut image, alter(0, Some(vec![1, 2, 2]))),
        K::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        code(&mut image, alter(0, Some(vec![1, 2, 4]))),
        K::INVALID_REPLICA_ASSIGNMENT,
        "fenced broker"
    );
    assert_eq!(
        code(&mut image, alter(0, Some(vec![]))),
        K::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        code(&mut image, alter(1, Some(vec![1]))),
        K::UNKNOWN_TOPIC_OR_PARTITION
    );
    let other = ControllerCommand::AlterReassignment {
        topic: "nope".to_owned(),
        partition: 0,
        target: Some(vec![1]),
    };
    assert_eq!(code(&mut image, other), K::UNKNOWN_TOPIC_OR_PARTITION);
    let message = run(&mut image, alter(0, Some(vec![1, 2, 9])))
        .unwrap_err()
        .message;
    assert!(message.contains("broker 9 is not registered"), "{message}");
}

#[test]
fn preferred_election_needs_a_live_in_sync_preferred_replica() {
    let mut image = image(&[1, 2, 3], vec![vec![1, 2, 3]]);
    let elect = || ControllerCommand::ElectPreferredLeader {
        topic: "t".to_owned(),
        partition: 0,
    };
    let code = |image: &mut MetadataImage| run(image, elect()).unwrap_err().kafka_code;
    // No leader yet.
    assert_eq!(code(&mut image), K::PREFERRED_LEADER_NOT_AVAILABLE);
    lead(&mut image, 0, 1, 1, vec![1, 2, 3]);
    assert_eq!(code(&mut image), K::ELECTION_NOT_NEEDED);
    lead(&mut image, 0, 2, 2, vec![2, 3]);
    assert_eq!(
        code(&mut image),
        K::PREFERRED_LEADER_NOT_AVAILABLE,
        "1 is not in sync"
    );
    lead(&mut image, 0, 2, 2, vec![1, 2, 3]);
    image.apply(&MetadataRecord::FenceBroker { id: 1 }).unwrap();
    assert_eq!(
        code(&mut image),
        K::PREFERRED_LEADER_NOT_AVAILABLE,
        "1 is fenced"
    );
    image
        .apply(&MetadataRecord::UnfenceBroker { id: 1 })
        .unwrap();
    assert_eq!(run(&mut image, elect()), Ok(1));
    assert_eq!(
        image.partition(&T, 0).unwrap().preferred_election_epoch,
        Some(2)
    );
}

#[test]
fn unregistering_a_broker_moves_its_replicas_first() {
    let mut image = image_with_racks(&[
        (1, Some("a")),
        (2, Some("a")),
        (3, Some("b")),
        (4, Some("b")),
    ]);
    add_topic(&mut image, vec![vec![1, 3], vec![3, 2], vec![2, 4]]);
    let unregister = || ControllerCommand::UnregisterBroker { id: 3 };
    assert_eq!(run(&mut image, unregister()), Ok(2));
    let targets: Vec<_> = (0..3)
        .map(|p| image.partition(&T, p).unwrap().target.clone())
        .collect();
    // Broker 3's place goes to the other broker of rack b, in the same position.
    assert_eq!(targets, vec![Some(vec![1, 4]), Some(vec![4, 2]), None]);
    assert_eq!(partitions_hosted_by(&image, 3), 2);
    // Asked again while the moves run: nothing new.
    assert_eq!(run(&mut image, unregister()), Ok(0));
    assert!(image.broker(3).is_some());
    for (p, voters) in [(0u32, vec![1, 4]), (1, vec![4, 2])] {
        run(
            &mut image,
            ControllerCommand::CompleteReassignment {
                topic_id: T,
                partition: p,
                voters,
            },
        )
        .unwrap();
    }
    assert_eq!(run(&mut image, unregister()), Ok(1));
    assert!(image.broker(3).is_none());
    assert_eq!(
        run(&mut image, unregister()).unwrap_err().kafka_code,
        K::BROKER_ID_NOT_REGISTERED
    );
}

#[test]
fn a_broker_cannot_leave_when_no_other_can_take_its_replicas() {
    let mut image = image(&[1, 2], vec![vec![1, 2]]);
    let refused = run(&mut image, ControllerCommand::UnregisterBroker { id: 2 }).unwrap_err();
    assert_eq!(refused.kafka_code, K::INVALID_REPLICA_ASSIGNMENT);
    assert!(
        refused.message.contains("start another broker"),
        "{}",
        refused.message
    );
}
