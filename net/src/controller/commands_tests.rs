use std::collections::BTreeMap;

use strata_schema::ErrorCode;

use super::*;
use crate::controller::error::kafka_codes as K;
use crate::controller::test_support::{image_with_brokers, registration};

const NOW_MS: i64 = 1_700_000_000_000;

fn settings() -> ControllerSettings {
    ControllerSettings {
        default_replication_factor: 3,
        min_insync_replicas: 2,
        default_partitions: 2,
        topic_defaults: BTreeMap::new(),
    }
}

/// Different random bits for every plan, as the driver's RNG gives.
fn next_entropy() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn create(name: &str, partitions: Option<u32>, rf: Option<u16>) -> ControllerCommand {
    ControllerCommand::CreateTopic {
        name: name.to_owned(),
        partitions,
        replication_factor: rf,
        assignments: None,
        configs: BTreeMap::new(),
        validate_only: false,
    }
}

/// Plans and applies `cmd`, returning its records.
fn run(
    image: &mut MetadataImage,
    cmd: &ControllerCommand,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let records = plan(image, cmd, &settings(), NOW_MS, next_entropy())?;
    image.apply_all(&records).expect("planned records apply");
    Ok(records)
}

fn refused(image: &MetadataImage, cmd: &ControllerCommand) -> ControllerError {
    plan(image, cmd, &settings(), NOW_MS, 0).expect_err("refused")
}

// ---- RegisterBroker / BrokerHeartbeat / SetClusterId ----------------------------

#[test]
fn registration_new_restart_retry_and_stale() {
    let mut image = MetadataImage::new();
    let r1 = registration(1, Some("a"));
    let records = run(&mut image, &ControllerCommand::RegisterBroker(r1.clone())).unwrap();
    assert_eq!(records, vec![MetadataRecord::RegisterBroker(r1.clone())]);
    // A retried call changes nothing.
    assert_eq!(
        run(&mut image, &ControllerCommand::RegisterBroker(r1.clone())).unwrap(),
        vec![]
    );
    // ... but lifts a fence.
    image.apply(&MetadataRecord::FenceBroker { id: 1 }).unwrap();
    assert_eq!(
        run(&mut image, &ControllerCommand::RegisterBroker(r1.clone())).unwrap(),
        vec![MetadataRecord::UnfenceBroker { id: 1 }]
    );
    // A restart (higher incarnation) with new endpoints replaces the registration.
    let mut restarted = r1.clone();
    restarted.incarnation += 1;
    restarted.native_addr = "127.0.0.1:9999".to_owned();
    run(
        &mut image,
        &ControllerCommand::RegisterBroker(restarted.clone()),
    )
    .unwrap();
    assert_eq!(image.broker(1).unwrap().registration, restarted);
    // The old process registering again is stale.
    let e = refused(&image, &ControllerCommand::RegisterBroker(r1.clone()));
    assert_eq!(e.kafka_code, K::STALE_BROKER_EPOCH);
    // Another process with the same id and incarnation but other endpoints.
    let mut twin = restarted.clone();
    twin.cluster_addr = "10.0.0.1:1".to_owned();
    let e = refused(&image, &ControllerCommand::RegisterBroker(twin));
    assert_eq!(e.kafka_code, K::DUPLICATE_BROKER_REGISTRATION);
    assert!(e.message.contains("two processes"), "{}", e.message);
}

#[test]
fn malformed_registrations_are_refused() {
    let image = MetadataImage::new();
    let ok = registration(1, None);
    let cases: Vec<(BrokerRegistration, &str)> = vec![
        (
            BrokerRegistration {
                kafka_host: String::new(),
                ..ok.clone()
            },
            "Kafka host",
        ),
        (
            BrokerRegistration {
                kafka_port: 0,
                ..ok.clone()
            },
            "Kafka port",
        ),
        (
            BrokerRegistration {
                native_addr: "nohost".into(),
                ..ok.clone()
            },
            "native address",
        ),
        (
            BrokerRegistration {
                cluster_addr: "h:0".into(),
                ..ok.clone()
            },
            "cluster address",
        ),
        (
            BrokerRegistration {
                rack: Some(String::new()),
                ..ok.clone()
            },
            "rack",
        ),
    ];
    for (r, want) in cases {
        let e = refused(&image, &ControllerCommand::RegisterBroker(r));
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains(want), "{}", e.message);
    }
}

#[test]
fn heartbeats_unfence_and_refuse_strangers() {
    let mut image = image_with_brokers(&[1]);
    let hb = |incarnation| ControllerCommand::BrokerHeartbeat { id: 1, incarnation };
    assert_eq!(run(&mut image, &hb(7)).unwrap(), vec![]);
    image.apply(&MetadataRecord::FenceBroker { id: 1 }).unwrap();
    assert_eq!(
        run(&mut image, &hb(7)).unwrap(),
        vec![MetadataRecord::UnfenceBroker { id: 1 }]
    );
    assert!(!image.broker(1).unwrap().fenced);
    assert_eq!(refused(&image, &hb(6)).kafka_code, K::STALE_BROKER_EPOCH);
    let e = refused(
        &image,
        &ControllerCommand::BrokerHeartbeat {
            id: 5,
            incarnation: 7,
        },
    );
    assert_eq!(e.kafka_code, K::BROKER_ID_NOT_REGISTERED);
}

#[test]
fn the_cluster_id_is_set_once() {
    let mut image = MetadataImage::new();
    assert_eq!(
        run(&mut image, &ControllerCommand::SetClusterId([1; 16]))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        run(&mut image, &ControllerCommand::SetClusterId([1; 16])).unwrap(),
        vec![]
    );
    assert_eq!(
        refused(&image, &ControllerCommand::SetClusterId([2; 16])).kafka_code,
        K::INCONSISTENT_CLUSTER_ID
    );
}

// ---- CreateTopic ----------------------------------------------------------------

#[test]
fn create_topic_places_replicas_and_gives_a_fresh_id() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    let records = run(&mut image, &create("orders", Some(6), None)).unwrap();
    let [MetadataRecord::CreateTopic {
        name, id, replicas, ..
    }] = records.as_slice()
    else {
        panic!("one CreateTopic: {records:?}");
    };
    assert_eq!(name, "orders");
    assert_eq!(replicas.len(), 6);
    assert!(
        replicas.iter().all(|r| r.len() == 3),
        "default.replication.factor 3"
    );
    let topic = image.topic("orders").unwrap();
    assert_eq!(topic.id, *id);
    assert_eq!(id[6] >> 4, 4, "version-4 UUID layout");
    // Deleted and created again: another id.
    run(
        &mut image,
        &ControllerCommand::DeleteTopic {
            name: "orders".into(),
        },
    )
    .unwrap();
    let again = run(&mut image, &create("orders", Some(6), None)).unwrap();
    let [MetadataRecord::CreateTopic { id: id2, .. }] = again.as_slice() else {
        panic!("one CreateTopic");
    };
    assert_ne!(id, id2);
    // Defaults: num.partitions.
    run(&mut image, &create("dflt", None, Some(1))).unwrap();
    assert_eq!(image.topic("dflt").unwrap().partitions.len(), 2);
}

#[test]
fn create_topic_refusals_carry_the_single_node_codes() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    run(&mut image, &create("taken", Some(1), Some(1))).unwrap();
    let with_configs = |k: &str, v: &str, rf: u16| ControllerCommand::CreateTopic {
        name: "c".into(),
        partitions: Some(1),
        replication_factor: Some(rf),
        assignments: None,
        configs: [(k.to_owned(), v.to_owned())].into_iter().collect(),
        validate_only: false,
    };
    for (cmd, code, kafka, want) in [
        (
            create("a b", Some(1), None),
            ErrorCode::InvalidTopicName,
            K::INVALID_TOPIC_EXCEPTION,
            "contains",
        ),
        (
            create("p", Some(0), None),
            ErrorCode::InvalidPartitions,
            K::INVALID_PARTITIONS,
            "1 to 10000 partitions",
        ),
        (
            create("p", Some(10_001), None),
            ErrorCode::InvalidPartitions,
            K::INVALID_PARTITIONS,
            "10001 were asked",
        ),
        (
            create("taken", Some(1), Some(1)),
            ErrorCode::TopicAlreadyExists,
            K::TOPIC_ALREADY_EXISTS,
            "already exists",
        ),
        (
            create("big", Some(1), Some(4)),
            ErrorCode::InvalidRequest,
            K::INVALID_REPLICATION_FACTOR,
            "live brokers, 3",
        ),
        (
            create("zero", Some(1), Some(0)),
            ErrorCode::InvalidRequest,
            K::INVALID_REPLICATION_FACTOR,
            "not possible",
        ),
        (
            with_configs("retention.msx", "1", 1),
            ErrorCode::InvalidConfig,
            K::INVALID_CONFIG,
            "unknown topic config",
        ),
        (
            with_configs("min.insync.replicas", "3", 2),
            ErrorCode::InvalidConfig,
            K::INVALID_CONFIG,
            "replication factor, 2",
        ),
    ] {
        let e = refused(&image, &cmd);
        assert_eq!((e.code, e.kafka_code), (code, kafka), "{cmd:?}: {e}");
        assert!(e.message.contains(want), "{cmd:?}: {}", e.message);
    }
    // min.insync.replicas up to the factor is fine on a cluster.
    run(&mut image, &with_configs("min.insync.replicas", "2", 2)).unwrap();
}

#[test]
fn create_topic_validate_only_and_explicit_assignments() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    let mut cmd = create("v", Some(3), Some(2));
    if let ControllerCommand::CreateTopic { validate_only, .. } = &mut cmd {
        *validate_only = true;
    }
    assert_eq!(run(&mut image, &cmd).unwrap(), vec![]);
    assert!(image.topic("v").is_none());
    let assigned = |a: Vec<Vec<NodeId>>, partitions: Option<u32>, rf: Option<u16>| {
        ControllerCommand::CreateTopic {
            name: "manual".into(),
            partitions,
            replication_factor: rf,
            assignments: Some(a),
            configs: BTreeMap::new(),
            validate_only: false,
        }
    };
    assert_eq!(
        refused(&image, &assigned(vec![vec![1, 9]], None, None)).kafka_code,
        K::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        refused(&image, &assigned(vec![vec![1, 2]], Some(3), None)).kafka_code,
        K::INVALID_REQUEST
    );
    assert_eq!(
        refused(&image, &assigned(vec![vec![1, 2]], None, Some(3))).kafka_code,
        K::INVALID_REQUEST
    );
    run(
        &mut image,
        &assigned(vec![vec![3, 1], vec![2, 3]], Some(2), Some(2)),
    )
    .unwrap();
    assert_eq!(
        image.replicas(&image.topic("manual").unwrap().id, 1),
        Some(&[2, 3][..])
    );
}

// ---- DeleteTopic / CreatePartitions / AlterTopicConfigs ------------------------

fn image_with_topic() -> MetadataImage {
    let mut image = image_with_brokers(&[1, 2, 3]);
    run(&mut image, &create("orders", Some(2), Some(2))).unwrap();
    image
}

#[test]
fn delete_topic_removes_it_and_refuses_the_offsets_topic() {
    let mut image = image_with_topic();
    let id = image.topic("orders").unwrap().id;
    assert_eq!(
        run(
            &mut image,
            &ControllerCommand::DeleteTopic {
                name: "orders".into()
            }
        )
        .unwrap(),
        vec![MetadataRecord::DeleteTopic { id }]
    );
    assert!(image.topic("orders").is_none());
    let e = refused(
        &image,
        &ControllerCommand::DeleteTopic {
            name: "orders".into(),
        },
    );
    assert_eq!(
        (e.code, e.kafka_code),
        (ErrorCode::UnknownTopic, K::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(e.message, "topic \"orders\" does not exist");
    let e = refused(
        &image,
        &ControllerCommand::DeleteTopic {
            name: "__consumer_offsets".into(),
        },
    );
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(e.message.contains("cannot be deleted"), "{}", e.message);
}

#[test]
fn create_partitions_adds_placed_or_assigned_partitions() {
    let mut image = image_with_topic();
    let grow = |total, assignments: Option<Vec<Vec<NodeId>>>, validate_only| {
        ControllerCommand::CreatePartitions {
            name: "orders".into(),
            total,
            assignments,
            validate_only,
        }
    };
    assert_eq!(run(&mut image, &grow(4, None, true)).unwrap(), vec![]);
    run(&mut image, &grow(4, None, false)).unwrap();
    let topic = image.topic("orders").unwrap();
    assert_eq!(topic.partitions.len(), 4);
    assert!(
        topic.partitions.iter().all(|p| p.replicas.len() == 2),
        "the topic's factor"
    );
    run(&mut image, &grow(5, Some(vec![vec![3, 1]]), false)).unwrap();
    assert_eq!(
        image.replicas(&image.topic("orders").unwrap().id, 4),
        Some(&[3, 1][..])
    );
    for (cmd, kafka, want) in [
        (
            grow(5, None, false),
            K::INVALID_PARTITIONS,
            "has 5 partitions; the new count must be larger",
        ),
        (
            grow(10_001, None, false),
            K::INVALID_PARTITIONS,
            "at most 10000",
        ),
        (
            grow(7, Some(vec![vec![1, 2]]), false),
            K::INVALID_REPLICA_ASSIGNMENT,
            "must list 2 new partitions",
        ),
        (
            grow(6, Some(vec![vec![1]]), false),
            K::INVALID_REPLICA_ASSIGNMENT,
            "the others 2",
        ),
    ] {
        let e = refused(&image, &cmd);
        assert_eq!(e.kafka_code, kafka, "{cmd:?}: {e}");
        assert!(e.message.contains(want), "{cmd:?}: {}", e.message);
    }
    let e = refused(
        &image,
        &ControllerCommand::CreatePartitions {
            name: "nope".into(),
            total: 3,
            assignments: None,
            validate_only: false,
        },
    );
    assert_eq!(e.code, ErrorCode::UnknownTopic);
    // More replicas than live brokers.
    image.apply(&MetadataRecord::FenceBroker { id: 1 }).unwrap();
    image.apply(&MetadataRecord::FenceBroker { id: 2 }).unwrap();
    assert_eq!(
        refused(&image, &grow(6, None, false)).kafka_code,
        K::INVALID_REPLICATION_FACTOR
    );
}

#[test]
fn alter_topic_configs_incremental_and_whole() {
    let mut image = image_with_topic();
    let alter =
        |set: &[(&str, &str)], delete: &[&str], incremental| ControllerCommand::AlterTopicConfigs {
            name: "orders".into(),
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            delete: delete.iter().map(|k| k.to_string()).collect(),
            incremental,
            validate_only: false,
        };
    run(
        &mut image,
        &alter(
            &[("retention.ms", "1000"), ("segment.ms", "5000")],
            &[],
            true,
        ),
    )
    .unwrap();
    run(
        &mut image,
        &alter(&[("cleanup.policy", "compact")], &["segment.ms"], true),
    )
    .unwrap();
    let o = &image.topic("orders").unwrap().overrides;
    assert_eq!(
        o.keys().collect::<Vec<_>>(),
        ["cleanup.policy", "retention.ms"]
    );
    // Nothing changes: no record.
    assert_eq!(
        run(&mut image, &alter(&[("retention.ms", "1000")], &[], true)).unwrap(),
        vec![]
    );
    // Non-incremental: exactly the given set.
    run(
        &mut image,
        &alter(&[("min.insync.replicas", "2")], &[], false),
    )
    .unwrap();
    let o = &image.topic("orders").unwrap().overrides;
    assert_eq!(o.keys().collect::<Vec<_>>(), ["min.insync.replicas"]);
    for (cmd, code, want) in [
        (
            alter(&[("min.insync.replicas", "3")], &[], true),
            ErrorCode::InvalidConfig,
            "replication factor, 2",
        ),
        (
            alter(&[("segment.bytes", "10")], &[], true),
            ErrorCode::InvalidConfig,
            "segment.bytes",
        ),
        (
            alter(&[], &["retention.msx"], true),
            ErrorCode::InvalidConfig,
            "retention.msx",
        ),
        (
            alter(&[], &["retention.ms"], false),
            ErrorCode::InvalidRequest,
            "deletes nothing",
        ),
    ] {
        let e = refused(&image, &cmd);
        assert_eq!(e.code, code, "{cmd:?}: {e}");
        assert!(e.message.contains(want), "{cmd:?}: {}", e.message);
    }
    let mut check = alter(&[("retention.ms", "7")], &[], true);
    if let ControllerCommand::AlterTopicConfigs { validate_only, .. } = &mut check {
        *validate_only = true;
    }
    assert_eq!(run(&mut image, &check).unwrap(), vec![]);
    assert!(!image
        .topic("orders")
        .unwrap()
        .overrides
        .contains_key("retention.ms"));
}

// ---- ReportLeader / AllocateProducerIds ---------------------------------------

#[test]
fn leader_reports_are_checked_against_replicas_and_epochs() {
    let mut image = image_with_topic();
    let topic = image.topic("orders").unwrap();
    let (id, replicas) = (topic.id, topic.partitions[0].replicas.clone());
    let (a, b) = (replicas[0], replicas[1]);
    let other = (1..=3).find(|n| !replicas.contains(n)).unwrap();
    let report =
        |leader: Option<NodeId>, epoch, isr: Vec<NodeId>| ControllerCommand::ReportLeader {
            topic_id: id,
            partition: 0,
            leader,
            leader_epoch: epoch,
            isr,
        };
    run(&mut image, &report(Some(a), 1, vec![a, b])).unwrap();
    assert_eq!(image.leader(&id, 0), Some((Some(a), 1)));
    assert_eq!(
        run(&mut image, &report(Some(a), 1, vec![a, b])).unwrap(),
        vec![],
        "no change, no record"
    );
    run(&mut image, &report(Some(a), 1, vec![a])).unwrap();
    assert_eq!(image.partition(&id, 0).unwrap().isr, vec![a]);
    for (cmd, kafka, want) in [
        (report(Some(b), 0, vec![b]), K::FENCED_LEADER_EPOCH, "stale"),
        (report(Some(b), 1, vec![b]), K::FENCED_LEADER_EPOCH, "stale"),
        (
            report(Some(other), 2, vec![other]),
            K::INVALID_REQUEST,
            "not a replica",
        ),
        (
            report(Some(b), 2, vec![a]),
            K::INVALID_REQUEST,
            "must include the leader",
        ),
        (
            report(Some(b), 2, vec![b, b]),
            K::INVALID_REQUEST,
            "distinct",
        ),
        (
            report(Some(b), 2, vec![b, other]),
            K::INVALID_REQUEST,
            "distinct",
        ),
    ] {
        let e = refused(&image, &cmd);
        assert_eq!(e.kafka_code, kafka, "{cmd:?}: {e}");
        assert!(e.message.contains(want), "{cmd:?}: {}", e.message);
    }
    run(&mut image, &report(Some(b), 2, vec![b])).unwrap();
    assert_eq!(image.leader(&id, 0), Some((Some(b), 2)));
    let e = refused(
        &image,
        &ControllerCommand::ReportLeader {
            topic_id: [0xee; 16],
            partition: 0,
            leader: None,
            leader_epoch: 1,
            isr: vec![],
        },
    );
    assert_eq!(e.kafka_code, K::UNKNOWN_TOPIC_ID);
    let e = refused(
        &image,
        &ControllerCommand::ReportLeader {
            topic_id: id,
            partition: 9,
            leader: Some(a),
            leader_epoch: 3,
            isr: vec![a],
        },
    );
    assert_eq!(e.code, ErrorCode::UnknownPartition);
}

#[test]
fn coalesced_leader_reports_take_the_good_ones_and_leave_stale_ones_out() {
    let mut image = image_with_topic();
    let topic = image.topic("orders").unwrap();
    let id = topic.id;
    let leaders: Vec<NodeId> = topic.partitions.iter().map(|p| p.replicas[0]).collect();
    assert!(leaders.len() >= 2, "the test topic has several partitions");
    let report = |partition: u32, leader: NodeId, epoch| crate::controller::LeaderReport {
        topic_id: id,
        partition,
        leader: Some(leader),
        leader_epoch: epoch,
        isr: vec![leader],
    };
    let first = ControllerCommand::ReportLeaders(
        leaders
            .iter()
            .enumerate()
            .map(|(i, l)| report(i as u32, *l, 2))
            .collect(),
    );
    let records = run(&mut image, &first).unwrap();
    assert_eq!(
        records.len(),
        leaders.len(),
        "one record per partition, one entry"
    );
    for (i, l) in leaders.iter().enumerate() {
        assert_eq!(image.leader(&id, i as u32), Some((Some(*l), 2)));
    }
    // A stale report (epoch 1) beside a new one: only the new one is taken.
    let mixed =
        ControllerCommand::ReportLeaders(vec![report(0, leaders[0], 1), report(1, leaders[1], 3)]);
    assert_eq!(run(&mut image, &mixed).unwrap().len(), 1);
    assert_eq!(image.leader(&id, 0), Some((Some(leaders[0]), 2)));
    assert_eq!(image.leader(&id, 1), Some((Some(leaders[1]), 3)));
    let too_many = ControllerCommand::ReportLeaders(vec![
        report(0, leaders[0], 4);
        crate::controller::LEADER_REPORTS_MAX + 1
    ]);
    assert_eq!(refused(&image, &too_many).kafka_code, K::INVALID_REQUEST);
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut image = MetadataImage::new();
    let take = |count| ControllerCommand::AllocateProducerIds { count };
    assert_eq!(
        run(&mut image, &take(1000)).unwrap(),
        vec![MetadataRecord::ProducerIdBlock {
            first: 0,
            count: 1000
        }]
    );
    assert_eq!(
        run(&mut image, &take(10)).unwrap(),
        vec![MetadataRecord::ProducerIdBlock {
            first: 1000,
            count: 10
        }]
    );
    assert_eq!(image.next_producer_id(), 1010);
    assert_eq!(refused(&image, &take(0)).code, ErrorCode::InvalidRequest);
    assert_eq!(
        refused(&image, &take(PRODUCER_IDS_PER_BLOCK_MAX + 1)).code,
        ErrorCode::InvalidRequest
    );
    image
        .apply(&MetadataRecord::ProducerIdBlock {
            first: 1010,
            count: i64::MAX - 1010 - 5,
        })
        .unwrap();
    assert!(refused(&image, &take(10))
        .message
        .contains("every producer id"));
}

#[test]
fn a_planned_history_survives_a_snapshot() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    run(&mut image, &ControllerCommand::SetClusterId([4; 16])).unwrap();
    for i in 0..5 {
        run(&mut image, &create(&format!("t{i}"), Some(3), Some(2))).unwrap();
    }
    run(
        &mut image,
        &ControllerCommand::DeleteTopic { name: "t2".into() },
    )
    .unwrap();
    run(
        &mut image,
        &ControllerCommand::AllocateProducerIds { count: 1000 },
    )
    .unwrap();
    let mut rebuilt = MetadataImage::new();
    rebuilt.apply_all(&image.snapshot_records()).unwrap();
    assert_eq!(rebuilt, image);
    // Leaders over the 12 partitions spread evenly over the 3 brokers.
    let mut leaders = BTreeMap::new();
    for t in image.topics().values() {
        for p in &t.partitions {
            *leaders.entry(p.replicas[0]).or_insert(0) += 1;
        }
    }
    assert_eq!(leaders.values().collect::<Vec<_>>(), [&4, &4, &4]);
}
