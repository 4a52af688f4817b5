//! Metadata: this broker, and the topics asked for (all when none are named), with
//! this broker leading every partition. Topics a client names that do not exist are
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
use crate::errors::WireError;
use crate::metadata::{validate_topic_name, TopicMeta};

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::Metadata, 0, 12)];

/// The leader epoch every partition reports: one broker, which never changes.
pub(crate) const LEADER_EPOCH: i32 = 0;

/// A Kafka topic id from a strata topic id.
pub(crate) fn topic_uuid(id: &[u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id)
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// A topic's entry; fields the response `version` lacks stay at their defaults (the
/// codec refuses to encode them otherwise).
fn topic_entry(meta: &TopicMeta, broker_id: i32, version: i16) -> MetadataResponseTopic {
    let partitions = (0..meta.partitions)
        .map(|p| {
            let mut partition = MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(broker_id))
                .with_replica_nodes(vec![BrokerId(broker_id)])
                .with_isr_nodes(vec![BrokerId(broker_id)]);
            if version >= 7 {
                partition.leader_epoch = LEADER_EPOCH;
            }
            partition
        })
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

/// The response around `topics`: this broker, the cluster id (v2+) and the
/// controller (v1+), as `version` has them.
fn response(
    version: i16,
    broker_id: i32,
    (host, port): (String, i32),
    cluster_id: Option<String>,
) -> MetadataResponse {
    let mut out = MetadataResponse::default().with_brokers(vec![MetadataResponseBroker::default()
        .with_node_id(BrokerId(broker_id))
        .with_host(StrBytes::from_string(host))
        .with_port(port)]);
    if version >= 1 {
        out.controller_id = BrokerId(broker_id);
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
    let broker_id = ctx.broker.config.broker_id;
    let version = ctx.version;
    let mut out = response(
        version,
        broker_id,
        super::advertised(&ctx.broker),
        super::cluster_id(&ctx.broker),
    );
    // v0 has no null topic list: an empty list means every topic there.
    let wanted = match req.topics {
        Some(t) if !(t.is_empty() && ctx.version == 0) => t,
        _ => {
            let topics = ctx.broker.topics();
            out.topics = topics
                .topics
                .values()
                .map(|t| topic_entry(t, broker_id, version))
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
            (Some(meta), _) => topic_entry(&meta, broker_id, version),
            (None, Some(name)) if auto_create && !name.starts_with("__") => {
                match auto_create_and_get(ctx, name.clone()).await {
                    Ok(meta) => topic_entry(&meta, broker_id, version),
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
        for version in APIS[0].min_version..=APIS[0].max_version {
            let mut out = response(version, 0, ("localhost".into(), 9092), Some("id".into()));
            out.topics = vec![
                topic_entry(&internal, 0, version),
                topic_entry(&plain, 0, version),
                topic_error(Some("x"), &crate::broker::unknown_topic("x")),
            ];
            assert_encodes(&out, version);
        }
    }
}
