//! OffsetCommit and OffsetFetch: committed offsets in `__consumer_offsets`, the same
//! ones the native protocol commits and reads. A commit is checked against the
//! group's protocol (classic generation, KIP-848 member epoch, or generation -1 and
//! no member for consumers that assign partitions themselves), appended durably,
//! then answered.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};

use super::errors::KafkaCode;
use super::groups::{group_error, group_id, on_coordinator, str_bytes, topic_name};
use super::Ctx;
use crate::group_host;
use crate::groups::{
    Commit, GroupError, KafkaCommit, OffsetValue, TopicPartition, OFFSET_METADATA_BYTES_MAX,
};

/// A partition of a commit, and its own error (none: it goes to the coordinator).
type PartitionResult = (i32, Option<KafkaCode>);

pub(crate) async fn offset_commit(ctx: &Ctx, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.version;
    let topics = ctx.broker.topics();
    // Per partition: an error of its own, or it goes to the coordinator.
    let mut results: Vec<(String, Vec<PartitionResult>)> = Vec::new();
    let mut commits = Vec::new();
    for t in &req.topics {
        let name = t.name.as_str();
        let meta = topics.get(name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let index = p.partition_index;
            let metadata = p
                .committed_metadata
                .as_ref()
                .map(|m| m.as_str())
                .unwrap_or("");
            let own_error = match meta {
                Some(m) if index >= 0 && (index as u32) < m.partitions => {
                    if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                        Some(KafkaCode::OffsetMetadataTooLarge)
                    } else if p.committed_offset < 0 {
                        Some(KafkaCode::InvalidRequest)
                    } else {
                        None
                    }
                }
                _ => Some(KafkaCode::UnknownTopicOrPartition),
            };
            if own_error.is_none() {
                commits.push(Commit {
                    tp: TopicPartition::new(name, index as u32),
                    offset: p.committed_offset,
                    metadata: metadata.to_owned(),
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                });
            }
            partitions.push((index, own_error));
        }
        results.push((name.to_owned(), partitions));
    }
    let commit = KafkaCommit {
        group: req.group_id.as_str().to_owned(),
        member_id: req.member_id.as_str().to_owned(),
        instance_id: req
            .group_instance_id
            .as_ref()
            .filter(|_| v >= 7)
            .map(|i| i.as_str().to_owned()),
        generation_or_epoch: req.generation_id_or_member_epoch,
        member_epoch_api: v >= 9,
    };
    let group = commit.group.clone();
    let result = on_coordinator(ctx, &group, move |_, host| {
        group_host::kafka_commit(host, commit, commits)
    })
    .await;
    let group_code = result.err().map(|e| group_error(&e).0);
    OffsetCommitResponse::default().with_topics(
        results
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, own)| {
                                let code = own.map(KafkaCode::code).or(group_code).unwrap_or(0);
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// Committed offsets of one group: of the partitions asked for, or all of them.
async fn fetch_group(
    ctx: &Ctx,
    group: String,
    member: Option<(String, i32)>,
    wanted: Option<Vec<TopicPartition>>,
) -> Result<Vec<(TopicPartition, Option<OffsetValue>)>, GroupError> {
    let g = group.clone();
    on_coordinator(ctx, &g, move |_, host| async move {
        let member = member.as_ref().map(|(m, e)| (m.as_str(), *e));
        group_host::kafka_fetch_offsets(&host, &group, member, wanted.as_deref())
    })
    .await
}

/// Offsets grouped by topic, in order.
fn by_topic(
    found: Vec<(TopicPartition, Option<OffsetValue>)>,
) -> BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> {
    let mut out: BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> = BTreeMap::new();
    for (tp, v) in found {
        out.entry(tp.topic)
            .or_default()
            .push((tp.partition as i32, v));
    }
    out
}

fn wanted_partitions<'a>(
    topics: impl Iterator<Item = (&'a str, &'a [i32])>,
) -> Vec<TopicPartition> {
    topics
        .flat_map(|(name, ps)| {
            ps.iter()
                .filter_map(|p| u32::try_from(*p).ok())
                .map(move |p| TopicPartition::new(name, p))
        })
        .collect()
}

pub(crate) async fn offset_fetch(ctx: &Ctx, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.version;
    if v >= 8 {
        let mut out = OffsetFetchResponse::default();
        for g in req.groups {
            let wanted = g.topics.as_ref().map(|ts| {
                wanted_partitions(
                    ts.iter()
                        .map(|t| (t.name.as_str(), t.partition_indexes.as_slice())),
                )
            });
            let member = g
                .member_id
                .as_ref()
                .filter(|_| v >= 9)
                .map(|m| (m.as_str().to_owned(), g.member_epoch));
            let name = g.group_id.as_str().to_owned();
            let result = fetch_group(ctx, name.clone(), member, wanted).await;
            out.groups.push(group_offsets(&name, result));
        }
        return out;
    }
    // v1..v7: one group; no topics (v2+) means every committed offset.
    let wanted = req.topics.as_ref().map(|ts| {
        wanted_partitions(
            ts.iter()
                .map(|t| (t.name.as_str(), t.partition_indexes.as_slice())),
        )
    });
    let asked: Vec<TopicPartition> = wanted.clone().unwrap_or_default();
    let result = fetch_group(ctx, req.group_id.as_str().to_owned(), None, wanted).await;
    let (found, error) = match result {
        Ok(found) => (found, 0),
        // v1 has no top-level error: each partition carries it.
        Err(e) => (
            asked.into_iter().map(|tp| (tp, None)).collect(),
            group_error(&e).0,
        ),
    };
    legacy_fetch_response(v, found, error)
}

/// OffsetFetch v8+: one group's offsets, or its error.
fn group_offsets(
    name: &str,
    result: Result<Vec<(TopicPartition, Option<OffsetValue>)>, GroupError>,
) -> OffsetFetchResponseGroup {
    let mut group = OffsetFetchResponseGroup::default().with_group_id(group_id(name));
    match result {
        Ok(found) => {
            group.topics = by_topic(found)
                .into_iter()
                .map(|(topic, ps)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(&topic))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(index, v)| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(index)
                                        .with_committed_offset(v.as_ref().map_or(-1, |v| v.offset))
                                        .with_committed_leader_epoch(
                                            v.as_ref().map_or(-1, |v| v.leader_epoch),
                                        )
                                        .with_metadata(Some(str_bytes(
                                            v.map(|v| v.metadata).unwrap_or_default(),
                                        )))
                                })
                                .collect(),
                        )
                })
                .collect();
        }
        Err(e) => group.error_code = group_error(&e).0,
    }
    group
}

/// OffsetFetch v1..v7: one group's offsets; its error at the top (v2+) or on
/// every partition (v1).
fn legacy_fetch_response(
    v: i16,
    found: Vec<(TopicPartition, Option<OffsetValue>)>,
    error: i16,
) -> OffsetFetchResponse {
    let mut out = OffsetFetchResponse::default();
    if v >= 2 {
        out.error_code = error;
    }
    out.topics = by_topic(found)
        .into_iter()
        .map(|(topic, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(
                    ps.into_iter()
                        .map(|(index, o)| {
                            let mut p = OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(o.as_ref().map_or(-1, |o| o.offset))
                                .with_error_code(if v < 2 { error } else { 0 });
                            if v >= 5 {
                                p.committed_leader_epoch =
                                    o.as_ref().map_or(-1, |o| o.leader_epoch);
                            }
                            p.metadata = Some(str_bytes(o.map(|o| o.metadata).unwrap_or_default()));
                            p
                        })
                        .collect(),
                )
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use strata_schema::ErrorCode;

    use super::*;
    use crate::kafka::codec::assert_encodes as encodes;

    fn found() -> Vec<(TopicPartition, Option<OffsetValue>)> {
        vec![
            (
                TopicPartition::new("t", 0),
                Some(OffsetValue {
                    offset: 5,
                    metadata: "m".into(),
                    commit_time_ms: 0,
                    leader_epoch: 2,
                }),
            ),
            (TopicPartition::new("t", 1), None),
        ]
    }

    #[test]
    fn fetch_answers_encode_at_every_version() {
        for v in 1..=7 {
            encodes(&legacy_fetch_response(v, found(), 0), v);
            encodes(&legacy_fetch_response(v, found(), 16), v);
        }
        for v in 8..=9 {
            let e = GroupError::new(ErrorCode::GroupNotFound, "gone");
            let r = OffsetFetchResponse::default().with_groups(vec![
                group_offsets("g", Ok(found())),
                group_offsets("h", Err(e)),
            ]);
            encodes(&r, v);
        }
        let r = legacy_fetch_response(1, found(), 0);
        assert_eq!(r.topics[0].partitions[0].committed_offset, 5);
        assert_eq!(r.topics[0].partitions[1].committed_offset, -1);
    }

    #[test]
    fn commit_answers_encode_at_every_version() {
        let r =
            OffsetCommitResponse::default().with_topics(vec![OffsetCommitResponseTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![OffsetCommitResponsePartition::default()
                    .with_partition_index(0)
                    .with_error_code(22)])]);
        for v in 2..=9 {
            encodes(&r, v);
        }
    }
}
