//! Automatic leader balancing (Kafka's `auto.leader.rebalance.enable`): after a
//! failover, leadership stays where the election put it, so the brokers that stayed
//! up lead more than their share. Each partition's first replica is its preferred
//! leader, and placement spreads those over the brokers; the controller leader looks
//! every `leader.imbalance.check.interval.seconds` and, for each live broker whose
//! share of not-led preferred partitions exceeds `leader.imbalance.per.broker.percentage`,
//! asks for a preferred-leader election of each of them that can move now (the same
//! records ElectLeaders writes; the partitions' leaders carry them out).

use std::collections::BTreeMap;

use strata_raft::NodeId;

use super::image::MetadataImage;
use super::reassignment::plan_elect_preferred;
use super::records::MetadataRecord;

/// Kafka's `leader.imbalance.check.interval.seconds` default.
pub const IMBALANCE_CHECK_INTERVAL_S_DEFAULT: u64 = 300;
/// Kafka's `leader.imbalance.per.broker.percentage` default.
pub const IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT: u32 = 10;

/// Per preferred broker: the partitions it is preferred for, those it does not
/// lead, and of these the ones an election may be asked for now (topic, partition).
#[derive(Default)]
struct Preferred<'a> {
    partitions: u64,
    not_led: u64,
    movable: Vec<(&'a str, u32)>,
}

/// The preferred-leader elections that bring every broker's imbalance (partitions it
/// is preferred for but does not lead, over those it is preferred for) to at most
/// `imbalance_percentage`. A partition is left alone when its preferred replica is
/// fenced or out of sync, when it has no leader, when it is being reassigned, or when
/// an election is already asked in its current epoch.
pub fn plan_leader_rebalance(
    image: &MetadataImage,
    imbalance_percentage: u32,
) -> Vec<MetadataRecord> {
    let mut preferred: BTreeMap<NodeId, Preferred> = BTreeMap::new();
    for t in image.topics().values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let Some(&first) = p.replicas.first() else {
                continue;
            };
            let entry = preferred.entry(first).or_default();
            entry.partitions += 1;
            if p.leader == Some(first) {
                continue;
            }
            entry.not_led += 1;
            if p.target.is_none() && p.preferred_election_epoch != Some(p.leader_epoch) {
                entry.movable.push((t.name.as_str(), i as u32));
            }
        }
    }
    let mut out = Vec::new();
    for (broker, p) in preferred {
        if image.broker(broker).is_none_or(|b| b.fenced) {
            continue;
        }
        // Integer form of not_led / partitions > percentage / 100.
        if p.not_led * 100 <= p.partitions * u64::from(imbalance_percentage) {
            continue;
        }
        for (topic, partition) in p.movable {
            if let Ok(records) = plan_elect_preferred(image, topic, partition) {
                out.extend(records);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::image_with_brokers;

    const T: [u8; 16] = [3; 16];

    /// Brokers 1–3, topic "t" with `partitions` partitions whose preferred leaders
    /// rotate 1, 2, 3, each led by `leaders[p]` with all three in sync.
    fn image(leaders: &[NodeId]) -> MetadataImage {
        let mut image = image_with_brokers(&[1, 2, 3]);
        let replicas: Vec<Vec<NodeId>> = (0..leaders.len() as u64)
            .map(|p| (0..3).map(|r| (p + r) % 3 + 1).collect())
            .collect();
        image
            .apply(&MetadataRecord::CreateTopic {
                name: "t".into(),
                id: T,
                overrides: Default::default(),
                replicas,
            })
            .unwrap();
        for (p, &leader) in leaders.iter().enumerate() {
            image
                .apply(&MetadataRecord::PartitionLeader {
                    topic_id: T,
                    partition: p as u32,
                    leader: Some(leader),
                    leader_epoch: 2,
                    isr: vec![1, 2, 3],
                })
                .unwrap();
        }
        image
    }

    fn elected(records: &[MetadataRecord]) -> Vec<u32> {
        records
            .iter()
            .map(|r| match r {
                MetadataRecord::ElectPreferredLeader { partition, .. } => *partition,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_balanced_cluster_asks_for_nothing() {
        assert_eq!(
            plan_leader_rebalance(&image(&[1, 2, 3, 1, 2, 3]), 10),
            vec![]
        );
    }

    #[test]
    fn leaders_taken_over_in_a_failover_go_back_to_their_preferred_broker() {
        // Broker 1 died and came back: its partitions 0 and 3 are led by 2 and 3.
        let records = plan_leader_rebalance(&image(&[2, 2, 3, 3, 2, 3]), 10);
        assert_eq!(elected(&records), vec![0, 3]);
        // Once asked, the same epoch is not asked again.
        let mut asked = image(&[2, 2, 3, 3, 2, 3]);
        asked.apply_all(&records).unwrap();
        assert_eq!(plan_leader_rebalance(&asked, 10), vec![]);
    }

    #[test]
    fn an_imbalance_within_the_percentage_is_left_alone() {
        // Broker 1 is preferred for 4 partitions and leads 3 of them: 25 % imbalance.
        let leaders = [2, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3];
        assert_eq!(
            elected(&plan_leader_rebalance(&image(&leaders), 10)),
            vec![0]
        );
        assert_eq!(plan_leader_rebalance(&image(&leaders), 25), vec![]);
    }

    #[test]
    fn a_fenced_or_lagging_preferred_replica_is_not_made_leader() {
        let mut fenced = image(&[2, 2, 3]);
        fenced
            .apply(&MetadataRecord::FenceBroker { id: 1 })
            .unwrap();
        assert_eq!(plan_leader_rebalance(&fenced, 10), vec![]);

        let mut lagging = image(&[2, 2, 3]);
        lagging
            .apply(&MetadataRecord::PartitionLeader {
                topic_id: T,
                partition: 0,
                leader: Some(2),
                leader_epoch: 3,
                isr: vec![2, 3],
            })
            .unwrap();
        assert_eq!(plan_leader_rebalance(&lagging, 10), vec![]);
    }
}
