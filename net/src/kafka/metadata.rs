//! Metadata: the brokers, the controller and the topics asked for (all when none are
//! named), each partition with its leader, leader epoch, replicas, in-sync and
//! offline replicas, all from the cluster view (`cluster_view`; a single-node broker
//! leads every partition). Topics a client names that do not exist are
//! created when the request and the broker allow it (`auto.create.topics.enable`,
//! on by default), with the broker's `num.partitions` partitions and its defaults.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_schema::ErrorCode;

use super::errors::{kafka_code, KafkaCode};
use super::{Ctx, ServedApi};
use crate::cluster_config::NodeId;
use crate::cluster_view::{
    kafka_id, kafka_id_or_none, BrokerEndpoint, ClusterView, PartitionView, NO_NODE_KAFKA_ID,
};
use crate::errors::WireError;
use crate::metadata::{validate_topic_name, TopicMeta};

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::Metadata, 0, 12)];

/// A Kafka topic id from a strata topic id.
pub(crate) fn topic_uuid(id: &[u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id)
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// Where a client refused with NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH should
/// go instead (KIP-951's `CurrentLeader` and its `NodeEndpoints` entry): the
/// partition's leader, its epoch and its endpoint, from the cluster view. `None` when
/// the view knows no leader, or names this broker (the view is behind the replica
/// that just refused): the client then asks Metadata as before KIP-951.
pub(crate) fn new_leader<'v>(
    view: &'v ClusterView,
    topic: &str,
    partition: u32,
) -> Option<(i32, &'v BrokerEndpoint)> {
    let p = view.partition(topic, partition)?;
    let leader = p.leader.filter(|l| *l != view.local)?;
    Some((p.leader_epoch, view.broker(leader)?))
}

/// Whether a partition error code asks for KIP-951's current leader.
pub(crate) fn wants_new_leader(error_code: i16) -> bool {
    error_code == KafkaCode::NotLeaderOrFollower.code()
        || error_code == KafkaCode::FencedLeaderEpoch.code()
}

/// KIP-951 for one refused partition of a Produce or Fetch answer: when
/// `$error_code` asks for it and the view knows the leader of `$topic`-`$partition`,
/// sets `$current_leader` (that api's `LeaderIdAndEpoch`) and, when `$with_endpoint`,
/// adds the leader's endpoint once to `$endpoints` (that api's `NodeEndpoint`s). A
/// macro because each api has its own generated, identical, types.
macro_rules! point_to_leader {
    ($view:expr, $topic:expr, $partition:expr, $error_code:expr, $current_leader:expr,
     $endpoints:expr, $with_endpoint:expr, $Leader:ident, $Endpoint:ident) => {{
        let leader = u32::try_from($partition)
            .ok()
            .filter(|_| $crate::kafka::metadata::wants_new_leader($error_code))
            .and_then(|p| $crate::kafka::metadata::new_leader($view, $topic, p));
        if let Some((epoch, leader)) = leader {
            let id = kafka_protocol::messages::BrokerId(leader.kafka_id());
            $current_leader = $Leader::default()
                .with_leader_id(id)
                .with_leader_epoch(epoch);
            if $with_endpoint && !$endpoints.iter().any(|e: &$Endpoint| e.node_id == id) {
                $endpoints.push(
                    $Endpoint::default()
                        .with_node_id(id)
                        .with_host(kafka_protocol::protocol::StrBytes::from_string(
                            leader.kafka_host.clone(),
                        ))
                        .with_port(i32::from(leader.kafka_port))
                        .with_rack(
                            leader
                                .rack
                                .clone()
                                .map(kafka_protocol::protocol::StrBytes::from_string),
                        ),
                );
            }
        }
    }};
}
pub(crate) use point_to_leader;

pub(crate) fn broker_ids(ids: &[NodeId]) -> Vec<BrokerId> {
    ids.iter().map(|id| BrokerId(kafka_id(*id))).collect()
}

/// A partition's entry from its view; `None` (the view does not know it yet) and a
/// partition without a leader answer LEADER_NOT_AVAILABLE, which clients retry.
fn partition_entry(
    p: u32,
    view: Option<&PartitionView>,
    version: i16,
) -> MetadataResponsePartition {
    let mut partition = MetadataResponsePartition::default().with_partition_index(p as i32);
    let Some(view) = view else {
        return partition
            .with_error_code(KafkaCode::LeaderNotAvailable.code())
            .with_leader_id(BrokerId(NO_NODE_KAFKA_ID));
    };
    partition.leader_id = BrokerId(kafka_id_or_none(view.leader));
    partition.replica_nodes = broker_ids(&view.replicas);
    partition.isr_nodes = broker_ids(&view.isr);
    if view.leader.is_none() {
        partition.error_code = KafkaCode::LeaderNotAvailable.code();
    }
    if version >= 5 {
        partition.offline_replicas = broker_ids(&view.offline);
    }
    if version >= 7 {
        partition.leader_epoch = view.leader_epoch;
    }
    partition
}

/// A topic's entry; fields the response `version` lacks stay at their defaults (the
/// codec refuses to encode them otherwise).
fn topic_entry(meta: &TopicMeta, view: &ClusterView, version: i16) -> MetadataResponseTopic {
    let partitions = (0..meta.partitions)
        .map(|p| partition_entry(p, view.partition(&meta.name, p), version))
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(topic_name(&meta.name)))
        .with_partitions(partitions);
    if version >= 10 {
        topic.topic_id = topic_uuid(&meta.id);
    }
    if version >= 1 {
        topic.is_internal = meta.internal();
    }
    topic
}

/// The response around `topics`: the view's brokers (with their racks from v1), the
/// cluster id (v2+) and the controller (v1+, -1 while there is none), as `version`
/// has them.
fn response(version: i16, view: &ClusterView, cluster_id: Option<String>) -> MetadataResponse {
    let brokers = view
        .brokers
        .iter()
        .map(|b| {
            let mut entry = MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.kafka_id()))
                .with_host(StrBytes::from_string(b.kafka_host.clone()))
                .with_port(i32::from(b.kafka_port));
            if version >= 1 {
                entry.rack = b.rack.clone().map(StrBytes::from_string);
            }
            entry
        })
        .collect();
    let mut out = MetadataResponse::default().with_brokers(brokers);
    if version >= 1 {
        out.controller_id = BrokerId(kafka_id_or_none(view.controller));
    }
    if version >= 2 {
        out.cluster_id = cluster_id.map(StrBytes::from_string);
    }
    out
}

fn topic_error(name: Option<&str>, e: &WireError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_error_code(kafka_code(e.code).code())
}

/// Creates `name` on the metadata shard; an existing topic is not an error.
async fn auto_create(ctx: &Ctx, name: String) -> Result<(), WireError> {
    validate_topic_name(&name).map_err(|e| WireError::new(ErrorCode::InvalidTopicName, e))?;
    let created = ctx
        .broker
        .on_metadata_shard(move |b| async move {
            let partitions = b.config.num_partitions;
            b.create_topic(name, partitions, BTreeMap::new(), false)
                .await
        })
        .await;
    match created {
        Err(e) if e.code != ErrorCode::TopicAlreadyExists => Err(e),
        _ => Ok(()),
    }
}

pub(crate) async fn handle(ctx: &Ctx, req: MetadataRequest) -> MetadataResponse {
    let version = ctx.version;
    let view = ctx.broker.cluster_view();
    let mut out = response(version, &view, super::cluster_id(&ctx.broker));
    // v0 has no null topic list: an empty list means every topic there.
    let wanted = match req.topics {
        Some(t) if !(t.is_empty() && ctx.version == 0) => t,
        _ => {
            let topics = ctx.broker.topics();
            out.topics = topics
                .topics
                .values()
                .map(|t| topic_entry(t, &view, version))
                .collect();
            return out;
        }
    };
    let auto_create =
        (req.allow_auto_topic_creation || ctx.version < 4) && ctx.broker.config.auto_create_topics;
    for want in wanted {
        let by_name = want.name.as_ref().map(|n| n.0.as_str().to_owned());
        let topics = ctx.broker.topics();
        let found: Option<Arc<TopicMeta>> = match &by_name {
            Some(name) => topics.get(name).cloned(),
            None => topics.by_id(want.topic_id.as_bytes()).cloned(),
        };
        let entry = match (found, by_name) {
            (Some(meta), _) => topic_entry(&meta, &view, version),
            (None, Some(name)) if auto_create && !name.starts_with("__") => {
                match auto_create_and_get(ctx, name.clone()).await {
                    Ok(meta) => topic_entry(&meta, &view, version),
                    Err(e) => topic_error(Some(&name), &e),
                }
            }
            (None, Some(name)) => topic_error(Some(&name), &crate::broker::unknown_topic(&name)),
            (None, None) => MetadataResponseTopic::default()
                .with_topic_id(want.topic_id)
                .with_error_code(KafkaCode::UnknownTopicId.code()),
        };
        out.topics.push(entry);
    }
    out
}

async fn auto_create_and_get(ctx: &Ctx, name: String) -> Result<Arc<TopicMeta>, WireError> {
    auto_create(ctx, name.clone()).await?;
    ctx.broker
        .topics()
        .get(&name)
        .cloned()
        .ok_or_else(|| crate::broker::unknown_topic(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;
    use crate::topic_config::TopicConfig;

    #[test]
    fn responses_encode_at_every_served_version() {
        let config = TopicConfig::resolve(&Default::default(), &Default::default()).unwrap();
        let internal = TopicMeta::new(
            "__consumer_offsets".into(),
            2,
            Default::default(),
            config.clone(),
        );
        let plain = TopicMeta::new("t".into(), 3, Default::default(), config);
        let single = ClusterView::single_node(crate::cluster_view::tests::endpoint(0));
        let cluster = crate::cluster_view::tests::three_brokers();
        for version in APIS[0].min_version..=APIS[0].max_version {
            for view in [&single, &cluster] {
                let mut out = response(version, view, Some("id".into()));
                out.topics = vec![
                    topic_entry(&internal, view, version),
                    topic_entry(&plain, view, version),
                    topic_error(Some("x"), &crate::broker::unknown_topic("x")),
                ];
                assert_encodes(&out, version);
            }
        }
    }

    fn plain_topic(partitions: u32) -> TopicMeta {
        let config = TopicConfig::resolve(&Default::default(), &Default::default()).unwrap();
        TopicMeta::new("t".into(), partitions, Default::default(), config)
    }

    #[test]
    fn a_single_node_answers_as_before() {
        let mut me = crate::cluster_view::tests::endpoint(0);
        me.rack = None;
        let view = ClusterView::single_node(me);
        let out = response(12, &view, None);
        assert_eq!(out.controller_id, BrokerId(0));
        assert_eq!(out.brokers.len(), 1);
        assert_eq!(out.brokers[0].node_id, BrokerId(0));
        assert_eq!(out.brokers[0].rack, None);
        let topic = topic_entry(&plain_topic(2), &view, 12);
        for p in &topic.partitions {
            assert_eq!(p.error_code, 0);
            assert_eq!(p.leader_id, BrokerId(0));
            assert_eq!(
                p.leader_epoch,
                crate::cluster_view::SINGLE_NODE_LEADER_EPOCH
            );
            assert_eq!(p.replica_nodes, vec![BrokerId(0)]);
            assert_eq!(p.isr_nodes, vec![BrokerId(0)]);
            assert!(p.offline_replicas.is_empty());
        }
    }

    #[test]
    fn a_cluster_answers_with_its_brokers_and_leaders() {
        let view = crate::cluster_view::tests::three_brokers();
        let out = response(12, &view, None);
        assert_eq!(out.controller_id, BrokerId(2));
        let ids: Vec<_> = out.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
        assert_eq!(ids, [(1, 19_091), (2, 19_092), (3, 19_093)]);
        assert_eq!(
            out.brokers[2].rack.as_ref().map(|r| r.as_str()),
            Some("rack-3")
        );
        let topic = topic_entry(&plain_topic(3), &view, 12);
        let p0 = &topic.partitions[0];
        assert_eq!(p0.error_code, 0);
        assert_eq!(p0.leader_id, BrokerId(2));
        assert_eq!(p0.leader_epoch, 7);
        assert_eq!(
            p0.replica_nodes,
            vec![BrokerId(2), BrokerId(3), BrokerId(1)]
        );
        assert_eq!(p0.isr_nodes, vec![BrokerId(2), BrokerId(1)]);
        assert_eq!(p0.offline_replicas, vec![BrokerId(3)]);
        // No leader: LEADER_NOT_AVAILABLE with what is known.
        let p1 = &topic.partitions[1];
        assert_eq!(p1.error_code, KafkaCode::LeaderNotAvailable.code());
        assert_eq!(p1.leader_id, BrokerId(-1));
        assert_eq!(p1.leader_epoch, 8);
        // Not in the view yet.
        let p2 = &topic.partitions[2];
        assert_eq!(p2.error_code, KafkaCode::LeaderNotAvailable.code());
        assert_eq!(p2.leader_id, BrokerId(-1));
        // Older versions leave out what they lack.
        let v4 = topic_entry(&plain_topic(1), &view, 4);
        assert!(v4.partitions[0].offline_replicas.is_empty());
        assert_eq!(v4.partitions[0].leader_epoch, -1);
        let v0 = response(0, &view, None);
        assert_eq!(v0.brokers[0].rack, None);
        // No controller elected.
        let mut none = view;
        none.controller = None;
        assert_eq!(response(1, &none, None).controller_id, BrokerId(-1));
    }
}
