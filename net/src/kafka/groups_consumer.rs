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
    ConsumerGroupHeartbeatResponse as HeartbeatResponse,
};

use super::groups::{group_error, group_id, on_coordinator, str_bytes, topic_name};
use super::metadata::topic_uuid;
use super::Ctx;
use crate::group_host;
use crate::groups::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse, GroupError,
    TopicPartition,
};
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
) -> HeartbeatResponse {
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
        // An empty name is no preference.
        server_assignor: req
            .server_assignor
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str().to_owned()),
        owned,
        client_id: ctx.client_id.clone(),
        host: ctx.peer.to_string(),
    };
    let group = heartbeat.group.clone();
    let result = on_coordinator(ctx, &group, move |s, host| async move {
        group_host::consumer_heartbeat(&s, &host, heartbeat)
    })
    .await;
    // The topics as they are now: a topic created since the request began may be in
    // the assignment.
    heartbeat_response(&ctx.broker.topics(), result)
}

fn heartbeat_response(
    topics: &Topics,
    result: Result<ConsumerHeartbeatResponse, GroupError>,
) -> HeartbeatResponse {
    let mut out = HeartbeatResponse::default();
    match result {
        Ok(r) => {
            out.member_id = Some(str_bytes(r.member_id));
            out.member_epoch = r.member_epoch;
            out.heartbeat_interval_ms = r.heartbeat_interval_ms;
            out.assignment = r.assignment.map(|tps| {
                Assignment::default().with_topic_partitions(
                    by_topic_id(topics, &tps)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use strata_schema::ErrorCode;

    use super::*;
    use crate::groups::{ConsumerMemberDescription, GroupState};
    use crate::kafka::codec::assert_encodes as encodes;
    use crate::metadata::TopicMeta;
    use crate::topic_config::TopicConfig;

    fn topics() -> Topics {
        let config = TopicConfig::resolve(&BTreeMap::new(), &BTreeMap::new()).unwrap();
        let mut t = Topics::default();
        t.topics.insert(
            "t".into(),
            Arc::new(TopicMeta::new("t".into(), 4, BTreeMap::new(), config)),
        );
        t
    }

    #[test]
    fn assignments_travel_by_topic_id_and_drop_deleted_topics() {
        let topics = topics();
        let r = heartbeat_response(
            &topics,
            Ok(ConsumerHeartbeatResponse {
                member_id: "m".into(),
                member_epoch: 3,
                heartbeat_interval_ms: 5_000,
                assignment: Some(vec![
                    TopicPartition::new("t", 0),
                    TopicPartition::new("t", 3),
                    TopicPartition::new("gone", 1),
                ]),
            }),
        );
        let a = r.assignment.as_ref().unwrap();
        assert_eq!(a.topic_partitions.len(), 1);
        assert_eq!(
            a.topic_partitions[0].topic_id,
            topic_uuid(&topics.get("t").unwrap().id)
        );
        assert_eq!(a.topic_partitions[0].partitions, vec![0, 3]);
        for v in 0..=1 {
            encodes(&r, v);
            let e = GroupError::new(ErrorCode::UnknownMemberId, "who");
            encodes(&heartbeat_response(&topics, Err(e)), v);
        }
    }

    #[test]
    fn described_consumer_groups_encode_at_every_version() {
        let d = ConsumerGroupDescription {
            group: "g".into(),
            state: GroupState::Reconciling,
            group_epoch: 3,
            assignment_epoch: 3,
            assignor: "uniform".into(),
            members: vec![ConsumerMemberDescription {
                member_id: "m".into(),
                instance_id: None,
                rack_id: Some("r".into()),
                member_epoch: 2,
                client_id: "c".into(),
                host: "h".into(),
                topics: vec!["t".into()],
                regex: None,
                assignment: vec![TopicPartition::new("t", 0)],
                target: vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)],
            }],
        };
        for v in 0..=1 {
            let r = ConsumerGroupDescribeResponse::default().with_groups(vec![described_group(
                v,
                &topics(),
                d.clone(),
            )]);
            encodes(&r, v);
        }
    }
}
