use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::controller::test_support::{image_with_brokers, registration};
use crate::topic_config::TopicConfig;

const T: [u8; 16] = [1; 16];

fn create(name: &str, id: [u8; 16], replicas: Vec<Vec<NodeId>>) -> MetadataRecord {
    MetadataRecord::CreateTopic {
        name: name.to_owned(),
        id,
        overrides: BTreeMap::new(),
        replicas,
    }
}

fn leader(partition: u32, leader: Option<NodeId>, epoch: i32, isr: Vec<NodeId>) -> MetadataRecord {
    MetadataRecord::PartitionLeader {
        topic_id: T,
        partition,
        leader,
        leader_epoch: epoch,
        isr,
    }
}

/// An image with something of every kind in it.
fn busy_image() -> MetadataImage {
    let mut image = image_with_brokers(&[1, 2, 3]);
    let mut overrides = BTreeMap::new();
    overrides.insert("retention.ms".to_owned(), "60000".to_owned());
    image
        .apply_all(&[
            MetadataRecord::ClusterId([8; 16]),
            create("orders", T, vec![vec![1, 2, 3], vec![2, 3, 1]]),
            create("gone", [2; 16], vec![vec![1]]),
            MetadataRecord::DeleteTopic { id: [2; 16] },
            create("logs", [3; 16], vec![vec![3]]),
            MetadataRecord::CreatePartitions {
                id: T,
                replicas: vec![vec![3, 1, 2]],
            },
            MetadataRecord::AlterTopicConfigs { id: T, overrides },
            leader(0, Some(2), 3, vec![2, 1]),
            MetadataRecord::FenceBroker { id: 3 },
            MetadataRecord::ProducerIdBlock {
                first: 0,
                count: 2000,
            },
        ])
        .unwrap();
    image
}

#[test]
fn records_build_the_image() {
    let image = busy_image();
    assert_eq!(image.cluster_id(), Some([8; 16]));
    assert_eq!(
        image.topics().keys().collect::<Vec<_>>(),
        ["logs", "orders"]
    );
    assert!(image.topic_by_id(&[2; 16]).is_none());
    let orders = image.topic("orders").unwrap();
    assert_eq!(orders.partitions.len(), 3);
    assert_eq!(orders.replication_factor(), 3);
    assert_eq!(orders.overrides["retention.ms"], "60000");
    assert_eq!(image.replicas(&T, 2), Some(&[3, 1, 2][..]));
    assert_eq!(image.leader(&T, 0), Some((Some(2), 3)));
    assert_eq!(image.leader(&T, 1), Some((None, LEADER_EPOCH_INITIAL)));
    assert_eq!(image.partition(&T, 1).unwrap().isr, vec![2, 3, 1]);
    assert!(image.partition(&T, 3).is_none());
    assert_eq!(
        image.live_brokers().map(|b| b.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(image.broker(3).unwrap().fenced);
    assert_eq!(image.next_producer_id(), 2000);
    assert_eq!(image.partition_count(), 4);
}

#[test]
fn a_snapshot_rebuilds_an_equal_image() {
    let image = busy_image();
    let mut rebuilt = MetadataImage::new();
    rebuilt.apply_all(&image.snapshot_records()).unwrap();
    assert_eq!(rebuilt, image);
    // Through the codec too, as a snapshot travels.
    let bytes = crate::controller::encode_records(&image.snapshot_records());
    let mut decoded = MetadataImage::new();
    decoded
        .apply_all(&crate::controller::decode_records(&bytes).unwrap())
        .unwrap();
    assert_eq!(decoded, image);
    assert_eq!(MetadataImage::new().snapshot_records(), vec![]);
}

#[test]
fn a_stale_leader_report_is_ignored() {
    let mut image = busy_image();
    image.apply(&leader(0, Some(1), 2, vec![1])).unwrap();
    assert_eq!(image.leader(&T, 0), Some((Some(2), 3)));
    // The same epoch updates the in-sync set; a newer one the leader.
    image.apply(&leader(0, Some(2), 3, vec![2])).unwrap();
    assert_eq!(image.partition(&T, 0).unwrap().isr, vec![2]);
    image.apply(&leader(0, Some(1), 4, vec![1, 2])).unwrap();
    assert_eq!(image.leader(&T, 0), Some((Some(1), 4)));
    // A report for a deleted topic raced with the delete: nothing happens.
    let before = image.clone();
    image
        .apply(&MetadataRecord::PartitionLeader {
            topic_id: [2; 16],
            partition: 0,
            leader: Some(1),
            leader_epoch: 9,
            isr: vec![1],
        })
        .unwrap();
    assert_eq!(image, before);
}

#[test]
fn refused_records_leave_the_image_unchanged() {
    let mut image = busy_image();
    let before = image.clone();
    for (record, want) in [
        (MetadataRecord::ClusterId([9; 16]), "cluster id"),
        (MetadataRecord::FenceBroker { id: 42 }, "broker 42"),
        (create("orders", [5; 16], vec![vec![1]]), "already exists"),
        (create("new", T, vec![vec![1]]), "id"),
        (create("new", [5; 16], vec![]), "partitions"),
        (create("new", [5; 16], vec![vec![1, 1]]), "twice"),
        (
            create("new", [5; 16], vec![vec![1, 2], vec![1]]),
            "replicas",
        ),
        (MetadataRecord::DeleteTopic { id: [9; 16] }, "no topic"),
        (
            MetadataRecord::CreatePartitions {
                id: T,
                replicas: vec![vec![1]],
            },
            "replicas",
        ),
        (
            MetadataRecord::AlterTopicConfigs {
                id: [9; 16],
                overrides: BTreeMap::new(),
            },
            "no topic",
        ),
        (
            MetadataRecord::ProducerIdBlock {
                first: 1000,
                count: 10,
            },
            "producer id",
        ),
        (
            MetadataRecord::ProducerIdBlock {
                first: i64::MAX,
                count: 10,
            },
            "producer id",
        ),
    ] {
        let e = image.apply(&record).unwrap_err();
        assert!(e.to_string().contains(want), "{record:?}: {e}");
        assert_eq!(image, before, "{record:?} changed the image");
    }
}

#[test]
fn a_registration_replaces_the_last_one_and_unfences() {
    let mut image = busy_image();
    let mut again = registration(3, Some("r9"));
    again.incarnation = 8;
    image
        .apply(&MetadataRecord::RegisterBroker(again.clone()))
        .unwrap();
    let b = image.broker(3).unwrap();
    assert!(!b.fenced);
    assert_eq!(b.registration, again);
}

#[test]
fn topics_resolve_their_configs_as_single_node_topics_do() {
    let image = busy_image();
    let mut defaults = BTreeMap::new();
    defaults.insert("segment.bytes".to_owned(), "1048576".to_owned());
    defaults.insert("min.insync.replicas".to_owned(), "2".to_owned());
    let dynamic = Arc::new(crate::broker_settings::DynamicBrokerConfigs::default());
    let topics = image.to_topics(&defaults, Arc::clone(&dynamic)).unwrap();
    let orders = topics.get("orders").unwrap();
    assert_eq!(orders.partitions, 3);
    assert_eq!(orders.id, T);
    assert_eq!(topics.by_id(&[3; 16]).unwrap().name, "logs");
    let mut plain_defaults = defaults.clone();
    plain_defaults.remove("min.insync.replicas");
    assert_eq!(
        orders.config,
        TopicConfig::resolve(&plain_defaults, &orders.overrides).unwrap()
    );
    assert_eq!(
        image
            .topic_config(image.topic("orders").unwrap(), &defaults, 1)
            .unwrap()
            .min_insync_replicas,
        2
    );
    // A default the topic's overrides cannot resolve over names the topic.
    let mut bad = BTreeMap::new();
    bad.insert("segment.bytes".to_owned(), "1".to_owned());
    let e = image.to_topics(&bad, dynamic).unwrap_err();
    assert!(e.to_string().contains("topic "), "{e}");
}
