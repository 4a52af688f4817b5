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
