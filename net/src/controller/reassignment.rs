//! Moving replicas and leaders: what the controller records for partition
//! reassignments (Kafka AlterPartitionReassignments), preferred-leader elections
//! (ElectLeaders) and the removal of a broker (UnregisterBroker, which first moves
//! the broker's replicas away), validated against the image.
//!
//! The controller only records intent. Each partition's Raft leader carries it out —
//! a new replica joins as a learner, catches up, becomes a voter, the replicas that
//! leave are removed one at a time, leadership is handed over with a Raft transfer —
//! and reports back with [`ControllerCommand::CompleteReassignment`]; the driver that
//! does this lives in `crate::cluster::reassignment`.
//!
//! [`ControllerCommand::CompleteReassignment`]: super::ControllerCommand::CompleteReassignment

use std::collections::BTreeSet;

use strata_raft::{NodeId, MEMBERS_MAX};

use super::error::ControllerError;
use super::image::{MetadataImage, PartitionImage, TopicImage};
use super::placement::{replacement_for, replica_load};
use super::records::MetadataRecord;

/// The topic and partition a command names, or UNKNOWN_TOPIC_OR_PARTITION.
pub fn find_partition<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: u32,
) -> Result<(&'a TopicImage, &'a PartitionImage), ControllerError> {
    let t = image
        .topic(topic)
        .ok_or_else(|| ControllerError::unknown_topic(topic))?;
    let p = t.partitions.get(partition as usize).ok_or_else(|| {
        ControllerError::unknown_partition(format!(
            "topic {topic} has {} partitions; partition {partition} does not exist",
            t.partitions.len()
        ))
    })?;
    Ok((t, p))
}

/// Checks a reassignment's target: 1 to [`MEMBERS_MAX`] distinct brokers, each
/// registered and not fenced (INVALID_REPLICA_ASSIGNMENT otherwise).
pub fn validate_target(
    image: &MetadataImage,
    what: &str,
    target: &[NodeId],
) -> Result<(), ControllerError> {
    let bad = |m: String| ControllerError::invalid_replica_assignment(format!("{what}: {m}"));
    if target.is_empty() || target.len() > MEMBERS_MAX {
        return Err(bad(format!(
            "a partition needs 1 to {MEMBERS_MAX} replicas, the target lists {}",
            target.len()
        )));
    }
    let distinct: BTreeSet<NodeId> = target.iter().copied().collect();
    if distinct.len() != target.len() {
        return Err(bad(format!(
            "the target {target:?} lists a broker twice; a broker holds one replica of a partition"
        )));
    }
    for &id in target {
        match image.broker(id) {
            None => {
                let known: Vec<String> = image.brokers().keys().map(|b| b.to_string()).collect();
                return Err(bad(format!(
                    "broker {id} is not registered (brokers: {})",
                    known.join(", ")
                )));
            }
            Some(b) if b.fenced => {
                return Err(bad(format!(
                    "broker {id} is fenced (not heard from); a new replica could not catch up there"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// AlterPartitionReassignments for one partition: `Some(target)` starts (or
/// replaces) a reassignment, `None` cancels the one in progress.
pub fn plan_alter(
    image: &MetadataImage,
    topic: &str,
    partition: u32,
    target: Option<&[NodeId]>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let (t, p) = find_partition(image, topic, partition)?;
    let what = format!("partition {topic}-{partition}");
    match target {
        None => {
            if p.target.is_none() {
                return Err(ControllerError::no_reassignment_in_progress(format!(
                    "{what} has no reassignment in progress to cancel"
                )));
            }
        }
        Some(target) => {
            validate_target(image, &what, target)?;
            // Asking for the replicas it has, with nothing in progress: done already.
            if p.target.is_none() && target == p.replicas.as_slice() {
                return Ok(vec![]);
            }
        }
    }
    Ok(vec![MetadataRecord::AlterReassignment {
        topic_id: t.id,
        partition,
        target: target.map(<[NodeId]>::to_vec),
    }])
}

/// The partition leader's report that its group's voters are exactly the target.
pub fn plan_complete(
    image: &MetadataImage,
    topic_id: &[u8; 16],
    partition: u32,
    voters: &[NodeId],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let t = image
        .topic_by_id(topic_id)
        .ok_or_else(|| ControllerError::unknown_topic_id(topic_id))?;
    let Some(p) = t.partitions.get(partition as usize) else {
        return Err(ControllerError::unknown_partition(format!(
            "topic {} has {} partitions; partition {partition} does not exist",
            t.name,
            t.partitions.len()
        )));
    };
    let as_set = |v: &[NodeId]| v.iter().copied().collect::<BTreeSet<NodeId>>();
    match &p.target {
        Some(target) if as_set(target) == as_set(voters) => {
            Ok(vec![MetadataRecord::CompleteReassignment {
                topic_id: *topic_id,
                partition,
                replicas: target.clone(),
            }])
        }
        Some(target) => Err(ControllerError::invalid_request(format!(
            "partition {}-{partition}: voters {voters:?} are not the target {target:?} (the target changed)",
            t.name
        ))),
        None => Err(ControllerError::no_reassignment_in_progress(format!(
            "partition {}-{partition} has no reassignment in progress (it was cancelled or is done)",
            t.name
        ))),
    }
}

/// ElectLeaders (PREFERRED) for one partition: asks its leader to hand over to the
/// first replica, if that one is live, in sync and not the leader already.
pub fn plan_elect_preferred(
    image: &MetadataImage,
    topic: &str,
    partition: u32,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let (t, p) = find_partition(image, topic, partition)?;
    let what = format!("partition {topic}-{partition}");
    let Some(&preferred) = p.replicas.first() else {
        return Err(ControllerError::preferred_leader_not_available(format!(
            "{what} has no replicas"
        )));
    };
    if p.leader == Some(preferred) {
        return Err(ControllerError::election_not_needed(format!(
            "{what} is led by its preferred replica {preferred} already"
        )));
    }
    if image.broker(preferred).is_none_or(|b| b.fenced) {
        return Err(ControllerError::preferred_leader_not_available(format!(
            "{what}: the preferred replica {preferred} is not live"
        )));
    }
    if !p.isr.contains(&preferred) {
        return Err(ControllerError::preferred_leader_not_available(format!(
            "{what}: the preferred replica {preferred} is not in sync ({:?}); it would lose acknowledged records",
            p.isr
        )));
    }
    if p.leader.is_none() {
        return Err(ControllerError::preferred_leader_not_available(format!(
            "{what} has no leader right now; its replicas are electing one"
        )));
    }
    Ok(vec![MetadataRecord::ElectPreferredLeader {
        topic_id: t.id,
        partition,
        leader_epoch: p.leader_epoch,
    }])
}

/// UnregisterBroker: a broker that holds no replicas (nor is getting any) leaves at
/// once. One that does has them reassigned to other live brokers first (placement's
/// rules: rack spread, fewest replicas) and stays registered until they moved; the
/// caller asks again then. The records are empty when every move is under way.
pub fn plan_unregister(
    image: &MetadataImage,
    id: NodeId,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if image.broker(id).is_none() {
        return Err(ControllerError::broker_not_registered(format!(
            "broker {id} is not registered"
        )));
    }
    let mut load = replica_load(image);
    let mut records = Vec::new();
    let mut hosting = false;
    for t in image.topics().values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if !p.is_hosted_by(id) {
                continue;
            }
            hosting = true;
            let base = p.target.as_ref().unwrap_or(&p.replicas);
            if !base.contains(&id) {
                continue; // moving away already
            }
            let Some(to) = replacement_for(image, base, id, &load) else {
                return Err(ControllerError::invalid_replica_assignment(format!(
                    "partition {}-{i} ({base:?}) has no other live broker to move broker {id}'s replica to; \
                     start another broker first",
                    t.name
                )));
            };
            *load.entry(to).or_default() += 1;
            let target = base.iter().map(|&r| if r == id { to } else { r }).collect();
            records.push(MetadataRecord::AlterReassignment {
                topic_id: t.id,
                partition: i as u32,
                target: Some(target),
            });
        }
    }
    if !hosting {
        return Ok(vec![MetadataRecord::UnregisterBroker { id }]);
    }
    Ok(records)
}

/// How many partitions broker `id` still holds or is getting a replica of.
pub fn partitions_hosted_by(image: &MetadataImage, id: NodeId) -> usize {
    image
        .topics()
        .values()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.is_hosted_by(id))
        .count()
}

#[cfg(test)]
#[path = "reassignment_tests.rs"]
mod tests;
