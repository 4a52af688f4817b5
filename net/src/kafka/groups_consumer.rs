//! Kafka's consumer group protocol (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. The broker assigns ("uniform" or "range") and moves each
//! member to its target assignment heartbeat by heartbeat
//! (`crate::groups::consumer`); partitions travel by topic id.

use std::collections::BTreeMap;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};

use super::groups::{group_error, group_id, on_coordinator, str_bytes, topic_name};
use super::metadata::topic_uuid;
use super::Ctx;
use crate::group_host;
use crate::groups::{ConsumerGroupDescription, ConsumerHeartbeat, TopicPartition};
use crate::metadata::Topics;

/// ConsumerGroupDescribe's member type of KIP-848 members (0 would be classic).
const MEMBER_TYPE_CONSUMER: i8 = 1;

/// Partitions by topic id, of the topics that (still) exist.
fn by_topic_id(topics: &Topics, tps: &[TopicPartition]) -> Vec<(uuid::Uuid, String, Vec<i32>)> {
    let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        grouped
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition as i32);
    }
    grouped
        .into_iter()
        .filter_map(|(name, ps)| {
            let meta = topics.get(name)?;
            Some((topic_uuid(&meta.id), name.to_owned(), ps))
        })
        .collect()
}

pub(crate) async fn consumer_group_heartbeat(
    ctx: &Ctx,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let topics = ctx.broker.topics();
    let owned = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            // Partitions of topics deleted since are not owned any more.
            .filter_map(|t| Some((topics.by_id(t.topic_id.as_bytes())?, &t.partitions)))
            .flat_map(|(meta, ps)| {
                ps.iter()
                    .filter_map(|p| u32::try_from(*p).ok())
                    .map(|p| TopicPartition::new(meta.name.as_str(), p))
            })
            .collect()
    });
    let heartbeat = ConsumerHeartbeat {
        group: req.group_id.as_str().to_owned(),
        member_id: req.member_id.as_str().to_owned(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.as_str().to_owned()),
        rack_id: req.rack_id.as_ref().map(|s| s.as_str().to_owned()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.as_str().to_owned()).collect()),
        subscribed_topic_regex: req
            .subscribed_topic_regex
            .as_ref()
            .map(|s| s.as_str().to_owned()),
        server_assignor: req.server_assignor.as_ref().map(|s| s.as_str().to_owned()),
        owned,
        client_id: ctx.client_id.clone(),
        host: ctx.peer.to_string(),
    };
    let group = heartbeat.group.clone();
    let result = on_coordinator(ctx, &group, move |s, host| async move {
        group_host::consumer_heartbeat(&s, &host, heartbeat)
    })
    .await;
    let mut out = ConsumerGroupHeartbeatResponse::default();
    match result {
        Ok(r) => {
            out.member_id = Some(str_bytes(r.member_id));
            out.member_epoch = r.member_epoch;
            out.heartbeat_interval_ms = r.heartbeat_interval_ms;
            // The topics as they are now: a topic created since the request began is
            // in the assignment, so take a fresh snapshot.
            let topics = ctx.broker.topics();
            out.assignment = r.assignment.map(|tps| {
                Assignment::default().with_topic_partitions(
                    by_topic_id(&topics, &tps)
                        .into_iter()
                        .map(|(id, _, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            });
        }
        Err(e) => {
            let (code, message) = group_error(&e);
            out.error_code = code;
            out.error_message = message.map(str_bytes);
        }
    }
    out
}

fn described_assignment(topics: &Topics, tps: &[TopicPartition]) -> DescribedAssignment {
    DescribedAssignment::default().with_topic_partitions(
        by_topic_id(topics, tps)
            .into_iter()
            .map(|(id, name, ps)| {
                DescribedTopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(topic_name(&name))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

fn described_group(version: i16, topics: &Topics, d: ConsumerGroupDescription) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(group_id(&d.group))
        .with_group_state(str_bytes(d.state.name()))
        .with_group_epoch(d.group_epoch)
        .with_assignment_epoch(d.assignment_epoch)
        .with_assignor_name(str_bytes(d.assignor))
        .with_authorized_operations(i32::MIN)
        .with_members(
            d.members
                .into_iter()
                .map(|m| {
                    let mut member = Member::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_instance_id(m.instance_id.map(str_bytes))
                        .with_rack_id(m.rack_id.map(str_bytes))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.host))
                        .with_subscribed_topic_names(
                            m.topics.iter().map(|t| topic_name(t)).collect(),
                        )
                        .with_subscribed_topic_regex(m.regex.map(str_bytes))
                        .with_assignment(described_assignment(topics, &m.assignment))
                        .with_target_assignment(described_assignment(topics, &m.target));
                    if version >= 1 {
                        member.member_type = MEMBER_TYPE_CONSUMER;
                    }
                    member
                })
                .collect(),
        )
}

pub(crate) async fn consumer_group_describe(
    ctx: &Ctx,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut out = ConsumerGroupDescribeResponse::default();
    for name in req.group_ids {
        let name = name.as_str().to_owned();
        let g = name.clone();
        let result = on_coordinator(ctx, &g, move |_, host| async move {
            group_host::consumer_describe(&host, &name)
        })
        .await;
        let topics = ctx.broker.topics();
        out.groups.push(match result {
            Ok(d) => described_group(ctx.version, &topics, d),
            Err(e) => {
                let (code, message) = group_error(&e);
                DescribedGroup::default()
                    .with_group_id(group_id(&g))
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes))
                    .with_group_state(str_bytes("Dead"))
                    .with_authorized_operations(i32::MIN)
            }
        });
    }
    out
}
