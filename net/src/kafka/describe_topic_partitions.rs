//! DescribeTopicPartitions (KIP-966): what Kafka 4's `kafka-topics --describe` asks
//! for — the topics named (every topic, by name, when none are), each partition with
//! its leader, leader epoch, replicas, in-sync and offline replicas from the cluster
//! view (the same answers as Metadata), paged by `response_partition_limit` with a
//! cursor naming where the next page starts.
//!
//! Eligible leader replicas (KIP-966's ELR) are not kept: unclean election is off,
//! only in-sync replicas lead, so both ELR lists are null, as a Kafka cluster without
//! `eligible.leader.replicas.enable` answers.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};

use super::errors::KafkaCode;
use super::metadata::{broker_ids, topic_name, topic_uuid};
use super::{Ctx, ServedApi};
use crate::cluster_view::{kafka_id_or_none, ClusterView, NO_NODE_KAFKA_ID};
use crate::metadata::{TopicMeta, Topics};

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::DescribeTopicPartitions, 0, 0)];

/// Most partitions one answer lists, whatever the request asks (Kafka's default
/// `max.request.partition.size.limit`).
pub(crate) const PARTITIONS_PER_RESPONSE_MAX: usize = 2000;

/// One partition's entry, from the view (LEADER_NOT_AVAILABLE while it has none).
fn partition_entry(
    view: &ClusterView,
    topic: &str,
    partition: u32,
) -> DescribeTopicPartitionsResponsePartition {
    let entry =
        DescribeTopicPartitionsResponsePartition::default().with_partition_index(partition as i32);
    let Some(p) = view.partition(topic, partition) else {
        return entry
            .with_error_code(KafkaCode::LeaderNotAvailable.code())
            .with_leader_id(BrokerId(NO_NODE_KAFKA_ID));
    };
    let error = if p.leader.is_none() {
        KafkaCode::LeaderNotAvailable.code()
    } else {
        0
    };
    entry
        .with_error_code(error)
        .with_leader_id(BrokerId(kafka_id_or_none(p.leader)))
        .with_leader_epoch(p.leader_epoch)
        .with_replica_nodes(broker_ids(&p.replicas))
        .with_isr_nodes(broker_ids(&p.isr))
        .with_offline_replicas(broker_ids(&p.offline))
}

fn topic_entry(meta: &TopicMeta) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(&meta.name)))
        .with_topic_id(topic_uuid(&meta.id))
        .with_is_internal(meta.internal())
}

/// The page of `names` (sorted) starting at `cursor` (topic, first partition), at most
/// `limit` partitions, and the cursor of the next page when there is one.
fn page(
    view: &ClusterView,
    topics: &Topics,
    names: &[String],
    cursor: Option<(&str, u32)>,
    limit: usize,
) -> (Vec<DescribeTopicPartitionsResponseTopic>, Option<Cursor>) {
    let mut out = Vec::new();
    let mut left = limit;
    for name in names {
        if cursor.is_some_and(|(t, _)| name.as_str() < t) {
            continue;
        }
        let Some(meta) = topics.get(name) else {
            out.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name(name)))
                    .with_error_code(KafkaCode::UnknownTopicOrPartition.code()),
            );
            continue;
        };
        let first = match cursor {
            Some((t, p)) if t == name => p.min(meta.partitions),
            _ => 0,
        };
        if left == 0 {
            return (out, Some(next_cursor(name, first)));
        }
        let end = meta
            .partitions
            .min(first.saturating_add(u32::try_from(left).unwrap_or(u32::MAX)));
        let mut topic = topic_entry(meta);
        topic.partitions = (first..end)
            .map(|p| partition_entry(view, name, p))
            .collect();
        left -= (end - first) as usize;
        out.push(topic);
        if end < meta.partitions {
            return (out, Some(next_cursor(name, end)));
        }
    }
    (out, None)
}

fn next_cursor(topic: &str, partition: u32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(topic))
        .with_partition_index(partition as i32)
}

pub(crate) async fn handle(
    ctx: &Ctx,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let view = ctx.broker.cluster_view();
    let topics = ctx.broker.topics();
    let mut names: Vec<String> = if req.topics.is_empty() {
        topics.topics.values().map(|m| m.name.clone()).collect()
    } else {
        req.topics
            .iter()
            .map(|t| t.name.0.as_str().to_owned())
            .collect()
    };
    names.sort_unstable();
    names.dedup();
    let limit = usize::try_from(req.response_partition_limit)
        .unwrap_or(0)
        .clamp(1, PARTITIONS_PER_RESPONSE_MAX);
    let cursor = req.cursor.as_ref().map(|c| {
        (
            c.topic_name.0.as_str(),
            u32::try_from(c.partition_index).unwrap_or(0),
        )
    });
    let (topics, next) = page(&view, &topics, &names, cursor, limit);
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;
    use crate::topic_config::TopicConfig;

    fn topics(list: &[(&str, u32)]) -> Topics {
        let config = TopicConfig::resolve(&Default::default(), &Default::default()).unwrap();
        let mut t = Topics::default();
        for (name, partitions) in list {
            let meta = TopicMeta::new(
                (*name).to_owned(),
                *partitions,
                Default::default(),
                config.clone(),
            );
            t.topics
                .insert((*name).to_owned(), std::sync::Arc::new(meta));
        }
        t
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn partitions_come_from_the_view() {
        let view = crate::cluster_view::tests::three_brokers();
        let all = topics(&[("t", 3)]);
        let (out, next) = page(&view, &all, &names(&["t"]), None, 100);
        assert!(next.is_none());
        let p = &out[0].partitions;
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].leader_id, BrokerId(2));
        assert_eq!(p[0].leader_epoch, 7);
        assert_eq!(p[0].replica_nodes, broker_ids(&[2, 3, 1]));
        assert_eq!(p[0].isr_nodes, broker_ids(&[2, 1]));
        assert_eq!(p[0].offline_replicas, broker_ids(&[3]));
        assert_eq!(p[1].error_code, KafkaCode::LeaderNotAvailable.code());
        assert_eq!(p[2].leader_id, BrokerId(-1));
        let resp = DescribeTopicPartitionsResponse::default().with_topics(out);
        assert_encodes(&resp, 0);
    }

    #[test]
    fn pages_follow_the_cursor() {
        let view = crate::cluster_view::tests::three_brokers();
        let all = topics(&[("a", 3), ("b", 2), ("c", 1)]);
        let asked = names(&["a", "b", "c", "zz"]);
        let (first, next) = page(&view, &all, &asked, None, 4);
        let got: Vec<(String, usize)> = first
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.partitions.len()))
            .collect();
        assert_eq!(got, [("a".to_owned(), 3), ("b".to_owned(), 1)]);
        let next = next.expect("more to come");
        assert_eq!((next.topic_name.0.as_str(), next.partition_index), ("b", 1));
        let (second, last) = page(&view, &all, &asked, Some(("b", 1)), 4);
        let got: Vec<(String, i16, Vec<i32>)> = second
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().unwrap().0.to_string(),
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("b".to_owned(), 0, vec![1]),
                ("c".to_owned(), 0, vec![0]),
                (
                    "zz".to_owned(),
                    KafkaCode::UnknownTopicOrPartition.code(),
                    vec![]
                ),
            ]
        );
        assert!(last.is_none());
        let resp = DescribeTopicPartitionsResponse::default()
            .with_topics(second)
            .with_next_cursor(Some(next_cursor("c", 0)));
        assert_encodes(&resp, 0);
    }
}
