use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::controller::records::MetadataRecord;
use crate::controller::test_support::{image_with_brokers, image_with_racks};

fn add_topic(image: &mut MetadataImage, name: &str, replicas: Vec<Vec<NodeId>>) {
    let id = [image.topics().len() as u8 + 1; 16];
    image
        .apply(&MetadataRecord::CreateTopic {
            name: name.to_owned(),
            id,
            overrides: BTreeMap::new(),
            replicas,
        })
        .unwrap();
}

fn count_leaders(placed: &[Vec<NodeId>]) -> BTreeMap<NodeId, usize> {
    let mut out = BTreeMap::new();
    for p in placed {
        *out.entry(p[0]).or_default() += 1;
    }
    out
}

#[test]
fn replicas_are_distinct_and_leaders_spread_evenly() {
    let image = image_with_brokers(&[1, 2, 3]);
    let placed = place_replicas(&image, 6, 3).unwrap();
    assert_eq!(placed.len(), 6);
    for p in &placed {
        assert_eq!(p.iter().collect::<BTreeSet<_>>().len(), 3, "{p:?}");
    }
    assert_eq!(
        count_leaders(&placed).values().collect::<Vec<_>>(),
        [&2, &2, &2]
    );
    // The same image gives the same placement.
    assert_eq!(place_replicas(&image, 6, 3).unwrap(), placed);
}

#[test]
fn leaders_spread_across_topics_and_fill_new_brokers_first() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    let mut leaders = Vec::new();
    for i in 0..3 {
        let placed = place_replicas(&image, 1, 2).unwrap();
        leaders.push(placed[0][0]);
        add_topic(&mut image, &format!("t{i}"), placed);
    }
    leaders.sort_unstable();
    assert_eq!(
        leaders,
        vec![1, 2, 3],
        "one single-partition topic per broker"
    );
    // A fourth broker joins: it is the least loaded, so it leads next.
    image
        .apply(&MetadataRecord::RegisterBroker(
            crate::controller::test_support::registration(4, None),
        ))
        .unwrap();
    let placed = place_replicas(&image, 1, 2).unwrap();
    assert_eq!(placed[0][0], 4);
    // Replicas spread too: on 4 brokers, 4 partitions of RF 2 give each broker 2.
    let image = image_with_brokers(&[1, 2, 3, 4]);
    let placed = place_replicas(&image, 4, 2).unwrap();
    let mut per_broker = BTreeMap::new();
    for id in placed.iter().flatten() {
        *per_broker.entry(*id).or_insert(0) += 1;
    }
    assert_eq!(per_broker.values().collect::<Vec<_>>(), [&2, &2, &2, &2]);
}

#[test]
fn replicas_spread_over_racks() {
    let image = image_with_racks(&[
        (1, Some("a")),
        (2, Some("a")),
        (3, Some("b")),
        (4, Some("b")),
        (5, Some("c")),
        (6, Some("c")),
    ]);
    let rack = |id: NodeId| image.broker(id).unwrap().registration.rack.clone().unwrap();
    for rf in 1..=6usize {
        let cap = rf.div_ceil(3);
        for p in place_replicas(&image, 12, rf).unwrap() {
            let mut per_rack: BTreeMap<String, usize> = BTreeMap::new();
            for id in &p {
                *per_rack.entry(rack(*id)).or_default() += 1;
            }
            assert!(
                per_rack.values().all(|&n| n <= cap),
                "rf {rf}: {p:?} {per_rack:?}"
            );
            assert_eq!(p.iter().collect::<BTreeSet<_>>().len(), rf);
        }
    }
    let placed = place_replicas(&image, 6, 3).unwrap();
    assert_eq!(
        count_leaders(&placed).len(),
        6,
        "six partitions, six leaders"
    );
}

#[test]
fn replication_factor_above_the_live_brokers_is_refused() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    image.apply(&MetadataRecord::FenceBroker { id: 3 }).unwrap();
    let e = place_replicas(&image, 1, 3).unwrap_err();
    assert_eq!(
        e.kafka_code,
        crate::controller::error::kafka_codes::INVALID_REPLICATION_FACTOR
    );
    assert!(
        e.message.contains("live brokers, 2 (1, 2)"),
        "{}",
        e.message
    );
    // Fenced brokers get nothing.
    for p in place_replicas(&image, 10, 2).unwrap() {
        assert!(!p.contains(&3));
    }
    assert!(place_replicas(&image, 1, 0).is_err());
    assert!(place_replicas(&MetadataImage::new(), 1, 1).is_err());
}

#[test]
fn explicit_assignments_are_checked() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    assert!(validate_assignments(&image, &[vec![1, 2], vec![3, 1]], None).is_ok());
    for (a, rf, want) in [
        (vec![], None, "no partitions"),
        (vec![vec![]], None, "1 to"),
        (vec![vec![1, 2], vec![3]], None, "same replication factor"),
        (vec![vec![1, 1]], None, "only one replica"),
        (vec![vec![1, 9]], None, "broker 9, which is not registered"),
        (vec![vec![1, 2]], Some(3), "the others 3"),
    ] {
        let e = validate_assignments(&image, &a, rf).unwrap_err();
        assert_eq!(
            e.kafka_code,
            crate::controller::error::kafka_codes::INVALID_REPLICA_ASSIGNMENT
        );
        assert!(e.message.contains(want), "{a:?}: {}", e.message);
    }
    image.apply(&MetadataRecord::FenceBroker { id: 1 }).unwrap();
    image.apply(&MetadataRecord::FenceBroker { id: 2 }).unwrap();
    assert!(validate_assignments(&image, &[vec![1, 3]], None).is_ok());
    let e = validate_assignments(&image, &[vec![1, 2]], None).unwrap_err();
    assert!(e.message.contains("fenced"), "{}", e.message);
}
