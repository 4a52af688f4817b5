//! Replica placement: which brokers hold the replicas of new partitions.
//!
//! Over the unfenced brokers, deterministically (the same image gives the same
//! placement, so tests and the simulation can predict it):
//! - the replicas of one partition are distinct brokers;
//! - when brokers have racks, each replica goes to the rack with the fewest replicas
//!   of the partition so far, so no rack holds more than ceil(RF / racks) of them
//!   (when every rack has enough brokers); a broker without a rack counts as rack "";
//! - the first replica (the preferred leader) goes to the broker that is preferred
//!   leader of the fewest partitions in the whole image, the others to the brokers
//!   with the fewest replicas, so leaders and replicas spread evenly across topics
//!   and new brokers fill up first. Ties go round-robin from an index that grows with
//!   the image's partition count.
//!
//! Explicit assignments (Kafka CreateTopics / CreatePartitions with replica
//! assignments) are validated instead: known broker ids, no broker twice in a
//! partition, every partition the same replication factor.

use std::collections::{BTreeMap, BTreeSet};

use strata_raft::NodeId;

use super::error::ControllerError;
use super::image::MetadataImage;
use super::records::REPLICATION_FACTOR_MAX;

/// Replicas for `partitions` new partitions with `replication_factor` replicas each.
pub fn place_replicas(
    image: &MetadataImage,
    partitions: u32,
    replication_factor: usize,
) -> Result<Vec<Vec<NodeId>>, ControllerError> {
    let live: Vec<(NodeId, &str)> = image
        .live_brokers()
        .map(|b| (b.id, b.rack.as_deref().unwrap_or("")))
        .collect();
    if replication_factor == 0 || replication_factor > REPLICATION_FACTOR_MAX {
        return Err(ControllerError::invalid_replication_factor(format!(
            "replication factor {replication_factor} is not possible; give 1 to {REPLICATION_FACTOR_MAX} \
             (at most the number of live brokers, {})",
            live.len()
        )));
    }
    if replication_factor > live.len() {
        let ids: Vec<String> = live.iter().map(|(id, _)| id.to_string()).collect();
        return Err(ControllerError::invalid_replication_factor(format!(
            "replication factor {replication_factor} is larger than the number of live brokers, {} ({}); \
             use a smaller one or start more brokers",
            live.len(),
            if ids.is_empty() { "none".to_owned() } else { ids.join(", ") }
        )));
    }
    let n = live.len();
    let index_of: BTreeMap<NodeId, usize> = live
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    // Load of the live brokers over the whole image.
    let mut leaders = vec![0usize; n];
    let mut replicas = vec![0usize; n];
    for t in image.topics().values() {
        for p in &t.partitions {
            if let Some(&i) = p.replicas.first().and_then(|id| index_of.get(id)) {
                leaders[i] += 1;
            }
            for id in &p.replicas {
                if let Some(&i) = index_of.get(id) {
                    replicas[i] += 1;
                }
            }
        }
    }
    let start = image.partition_count();
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        // Round-robin position of broker `i` for this partition: ties go to the one
        // nearest after the rotating start.
        let turn = |i: usize| (i + n - (start + p) % n) % n;
        let leader = (0..n)
            .min_by_key(|&i| (leaders[i], replicas[i], turn(i)))
            .expect("at least one live broker (replication factor >= 1)");
        let mut chosen = vec![leader];
        let mut rack_use: BTreeMap<&str, usize> = BTreeMap::new();
        *rack_use.entry(live[leader].1).or_default() += 1;
        while chosen.len() < replication_factor {
            let free: Vec<usize> = (0..n).filter(|i| !chosen.contains(i)).collect();
            // The least-used rack among those that still have a free broker.
            let least = free
                .iter()
                .map(|&i| rack_use.get(live[i].1).copied().unwrap_or(0))
                .min()
                .expect("replication factor <= live brokers");
            let next = free
                .into_iter()
                .filter(|&i| rack_use.get(live[i].1).copied().unwrap_or(0) == least)
                .min_by_key(|&i| (replicas[i], turn(i)))
                .expect("a free broker in the least-used rack");
            *rack_use.entry(live[next].1).or_default() += 1;
            chosen.push(next);
        }
        leaders[leader] += 1;
        for &i in &chosen {
            replicas[i] += 1;
        }
        out.push(chosen.into_iter().map(|i| live[i].0).collect());
    }
    Ok(out)
}

/// Replica counts per broker over the whole image (replicas and reassignment
/// targets both count: a broker being filled is busy already).
pub fn replica_load(image: &MetadataImage) -> BTreeMap<NodeId, usize> {
    let mut load = BTreeMap::new();
    for t in image.topics().values() {
        for p in &t.partitions {
            let mut hosts: BTreeSet<NodeId> = p.replicas.iter().copied().collect();
            hosts.extend(p.target.iter().flatten().copied());
            for id in hosts {
                *load.entry(id).or_default() += 1;
            }
        }
    }
    load
}

/// A live broker to take over `leaving`'s place among `replicas`: not one of them,
/// in the rack the other replicas use least (when racks are set), then the one with
/// the fewest replicas in `load`, then the lowest id. `None` when no broker is free.
pub fn replacement_for(
    image: &MetadataImage,
    replicas: &[NodeId],
    leaving: NodeId,
    load: &BTreeMap<NodeId, usize>,
) -> Option<NodeId> {
    let rack_of = |id: NodeId| {
        image
            .broker(id)
            .and_then(|b| b.registration.rack.clone())
            .unwrap_or_default()
    };
    let mut rack_use: BTreeMap<String, usize> = BTreeMap::new();
    for &r in replicas.iter().filter(|&&r| r != leaving) {
        *rack_use.entry(rack_of(r)).or_default() += 1;
    }
    image
        .live_brokers()
        .map(|b| b.id)
        .filter(|id| *id != leaving && !replicas.contains(id))
        .min_by_key(|&id| {
            let rack = rack_use.get(&rack_of(id)).copied().unwrap_or(0);
            (rack, load.get(&id).copied().unwrap_or(0), id)
        })
}

/// Checks explicit replica assignments: at least one partition, every partition the
/// same number of replicas (`replication_factor` when given), distinct registered
/// brokers, not all of a partition's fenced.
pub fn validate_assignments(
    image: &MetadataImage,
    assignments: &[Vec<NodeId>],
    replication_factor: Option<usize>,
) -> Result<(), ControllerError> {
    let bad = |m: String| ControllerError::invalid_replica_assignment(m);
    let Some(first) = assignments.first() else {
        return Err(bad("the replica assignment lists no partitions".to_owned()));
    };
    let rf = replication_factor.unwrap_or(first.len());
    if rf == 0 || rf > REPLICATION_FACTOR_MAX {
        return Err(bad(format!(
            "partitions need 1 to {REPLICATION_FACTOR_MAX} replicas, the assignment gives {rf}"
        )));
    }
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.len() != rf {
            return Err(bad(format!(
                "partition {p} is assigned {} replicas, the others {rf}; every partition needs the same replication factor",
                replicas.len()
            )));
        }
        let distinct: BTreeSet<NodeId> = replicas.iter().copied().collect();
        if distinct.len() != replicas.len() {
            return Err(bad(format!(
                "partition {p} is assigned broker ids {replicas:?}: a broker may hold only one replica of a partition"
            )));
        }
        if let Some(unknown) = replicas.iter().find(|id| image.broker(**id).is_none()) {
            let known: Vec<String> = image.brokers().keys().map(|id| id.to_string()).collect();
            return Err(bad(format!(
                "partition {p} is assigned broker {unknown}, which is not registered (brokers: {})",
                known.join(", ")
            )));
        }
        if replicas
            .iter()
            .all(|id| image.broker(*id).is_some_and(|b| b.fenced))
        {
            return Err(bad(format!(
                "every broker assigned to partition {p} ({replicas:?}) is fenced (not heard from): the partition would have no leader"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
