//! AlterPartitionReassignments, ListPartitionReassignments and UnregisterBroker: an
//! operator moving replicas between brokers, and removing a broker once its replicas
//! moved away. Each partition's change goes through the controller (which validates
//! it and records the target); the partition's Raft leader carries it out
//! (`crate::cluster::reassignment`). List answers from this broker's metadata image.
//!
//! UnregisterBroker of a broker that still holds replicas starts moving them (to the
//! brokers placement picks) and answers REASSIGNMENT_IN_PROGRESS; asked again once
//! they have moved, it unregisters the broker. `strata cluster decommission` does
//! exactly this.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};

use super::admin::{refuse, str_bytes, topic_name, Outcome, OK};
use super::errors::KafkaCode;
use super::Ctx;
use crate::cluster::node;
use crate::controller::error::kafka_codes as K;
use crate::controller::reassignment::{find_partition, partitions_hosted_by};
use crate::controller::{ControllerCommand, MetadataImage, PartitionImage};

fn single_node() -> Outcome {
    refuse(
        KafkaCode::InvalidReplicaAssignment,
        "this broker is a single node: it has no other broker to move replicas to",
    )
}

fn broker_ids(ids: &[u64]) -> Vec<BrokerId> {
    ids.iter()
        .map(|&id| BrokerId(i32::try_from(id).unwrap_or(-1)))
        .collect()
}

/// One partition of an AlterPartitionReassignments request.
async fn alter_one(
    ctx: &Ctx,
    image: Option<&MetadataImage>,
    topic: &str,
    partition: i32,
    replicas: Option<&[BrokerId]>,
    allow_rf_change: bool,
) -> Outcome {
    let Some(image) = image else {
        return single_node();
    };
    let Ok(partition) = u32::try_from(partition) else {
        return refuse(
            KafkaCode::UnknownTopicOrPartition,
            format!("partition {partition} of topic {topic} does not exist"),
        );
    };
    let target = match replicas {
        None => None,
        Some(ids) => {
            let mut target = Vec::with_capacity(ids.len());
            for id in ids {
                match u64::try_from(id.0) {
                    Ok(id) => target.push(id),
                    Err(_) => {
                        return refuse(
                            KafkaCode::InvalidReplicaAssignment,
                            format!("{} is not a broker id", id.0),
                        )
                    }
                }
            }
            Some(target)
        }
    };
    if let (Some(t), false) = (&target, allow_rf_change) {
        if let Ok((_, p)) = find_partition(image, topic, partition) {
            if t.len() != p.replicas.len() {
                return refuse(
                    KafkaCode::InvalidReplicationFactor,
                    format!(
                        "partition {topic}-{partition} has {} replicas, the target {} and the request \
                         does not allow a replication factor change",
                        p.replicas.len(),
                        t.len()
                    ),
                );
            }
        }
    }
    let cmd = ControllerCommand::AlterReassignment {
        topic: topic.to_owned(),
        partition,
        target,
    };
    match node::submit_controller(&ctx.broker.shard, cmd).await {
        Ok(_) => OK,
        Err(e) => (e.kafka_code, Some(e.message)),
    }
}

pub(crate) async fn alter_partition_reassignments(
    ctx: &Ctx,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let image = node::image(&ctx.broker.shard).await;
    // v0 has no such field (it decodes as true: a change was always allowed).
    let allow_rf_change = req.allow_replication_factor_change;
    let mut out = AlterPartitionReassignmentsResponse::default();
    if ctx.version >= 1 {
        out.allow_replication_factor_change = req.allow_replication_factor_change;
    }
    for t in &req.topics {
        let name = t.name.0.as_str();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let (code, message) = alter_one(
                ctx,
                image.as_ref(),
                name,
                p.partition_index,
                p.replicas.as_deref(),
                allow_rf_change,
            )
            .await;
            partitions.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes)),
            );
        }
        out.responses.push(
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    out
}

/// A reassignment in progress as Kafka lists it: the replicas are the target and
/// the ones still to leave.
fn ongoing(partition: u32, p: &PartitionImage) -> Option<OngoingPartitionReassignment> {
    let target = p.target.as_ref()?;
    let removing = p.removing();
    let mut all = target.clone();
    all.extend(removing.iter().copied());
    Some(
        OngoingPartitionReassignment::default()
            .with_partition_index(partition as i32)
            .with_replicas(broker_ids(&all))
            .with_adding_replicas(broker_ids(&p.adding()))
            .with_removing_replicas(broker_ids(&removing)),
    )
}

/// The reassignments in progress in `image`, of the listed partitions or all.
pub(crate) fn list(
    image: &MetadataImage,
    req: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut out = ListPartitionReassignmentsResponse::default();
    let mut push = |name: &str, partitions: Vec<OngoingPartitionReassignment>| {
        if !partitions.is_empty() {
            out.topics.push(
                OngoingTopicReassignment::default()
                    .with_name(topic_name(name))
                    .with_partitions(partitions),
            );
        }
    };
    match &req.topics {
        None => {
            for t in image.topics().values() {
                let ps = t
                    .partitions
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| ongoing(i as u32, p))
                    .collect();
                push(&t.name, ps);
            }
        }
        Some(topics) => {
            for rt in topics {
                let Some(t) = image.topic(rt.name.0.as_str()) else {
                    continue;
                };
                let ps = rt
                    .partition_indexes
                    .iter()
                    .filter_map(|&i| {
                        let i = u32::try_from(i).ok()?;
                        ongoing(i, t.partitions.get(i as usize)?)
                    })
                    .collect();
                push(&t.name, ps);
            }
        }
    }
    out
}

pub(crate) async fn list_partition_reassignments(
    ctx: &Ctx,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    match node::image(&ctx.broker.shard).await {
        Some(image) => list(&image, &req),
        None => ListPartitionReassignmentsResponse::default(),
    }
}

pub(crate) async fn unregister_broker(
    ctx: &Ctx,
    req: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let (code, message) = unregister(ctx, req.broker_id.0).await;
    UnregisterBrokerResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(str_bytes))
}

async fn unregister(ctx: &Ctx, id: i32) -> Outcome {
    if ctx.broker.config.cluster.is_none() {
        return refuse(
            KafkaCode::InvalidRequest,
            "this broker is a single node; there is no cluster to leave",
        );
    }
    let Ok(id) = u64::try_from(id) else {
        return (
            K::BROKER_ID_NOT_REGISTERED,
            Some(format!("{id} is not a broker id")),
        );
    };
    let shard = &ctx.broker.shard;
    if let Err(e) = node::submit_controller(shard, ControllerCommand::UnregisterBroker { id }).await
    {
        return (e.kafka_code, Some(e.message));
    }
    let image = node::image(shard).await.unwrap_or_default();
    if image.broker(id).is_none() {
        return OK;
    }
    let left = partitions_hosted_by(&image, id);
    (
        K::REASSIGNMENT_IN_PROGRESS,
        Some(format!(
            "broker {id} still holds replicas of {left} partitions; they are being moved to other \
             brokers; ask again once they have moved (ListPartitionReassignments shows none)"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::MetadataRecord;
    use crate::kafka::admin::versions;
    use crate::kafka::codec::assert_encodes;
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn a_reassignment_in_progress_is_listed_with_adding_and_removing() {
        let mut image = MetadataImage::new();
        image
            .apply_all(&[
                MetadataRecord::CreateTopic {
                    name: "t".to_owned(),
                    id: [3; 16],
                    overrides: Default::default(),
                    replicas: vec![vec![1, 2, 3], vec![1, 2, 3]],
                },
                MetadataRecord::AlterReassignment {
                    topic_id: [3; 16],
                    partition: 1,
                    target: Some(vec![2, 3, 4]),
                },
            ])
            .unwrap();
        let all = list(&image, &ListPartitionReassignmentsRequest::default());
        assert_eq!(all.topics.len(), 1);
        let p = &all.topics[0].partitions;
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].partition_index, 1);
        assert_eq!(p[0].replicas, broker_ids(&[2, 3, 4, 1]));
        assert_eq!(p[0].adding_replicas, broker_ids(&[4]));
        assert_eq!(p[0].removing_replicas, broker_ids(&[1]));
        let only_0 = ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(topic_name("t"))
                .with_partition_indexes(vec![0, -1, 9]),
        ]));
        assert!(list(&image, &only_0).topics.is_empty());
        for v in versions(ApiKey::ListPartitionReassignments) {
            assert_encodes(&all, v);
        }
        for v in versions(ApiKey::AlterPartitionReassignments) {
            let out = AlterPartitionReassignmentsResponse::default().with_responses(vec![
                ReassignableTopicResponse::default().with_partitions(vec![
                    ReassignablePartitionResponse::default()
                        .with_error_code(K::NO_REASSIGNMENT_IN_PROGRESS)
                        .with_error_message(Some(str_bytes("none"))),
                ]),
            ]);
            assert_encodes(&out, v);
        }
        for v in versions(ApiKey::UnregisterBroker) {
            assert_encodes(
                &UnregisterBrokerResponse::default()
                    .with_error_code(K::REASSIGNMENT_IN_PROGRESS)
                    .with_error_message(Some(str_bytes("moving"))),
                v,
            );
        }
    }
}
