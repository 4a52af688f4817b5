//! Consumer-group request bodies and response decoding (the group half of
//! `protocol`): pure functions, tested without a socket.

use flatbuffers::FlatBufferBuilder;
use strata_schema::protocol as fb;
use strata_schema::ApiKey;

use crate::error::{ClientError, Result};
use crate::protocol::check;

/// How a group spreads its partitions over its members (computed by the broker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AssignmentStrategy {
    /// Contiguous runs of each topic's partitions per member.
    #[default]
    Range,
    /// All partitions dealt out in turn.
    RoundRobin,
    /// Balanced, keeping partitions with their previous owners where possible.
    Sticky,
}

impl AssignmentStrategy {
    fn wire(self) -> fb::AssignmentStrategy {
        match self {
            AssignmentStrategy::Range => fb::AssignmentStrategy::Range,
            AssignmentStrategy::RoundRobin => fb::AssignmentStrategy::RoundRobin,
            AssignmentStrategy::Sticky => fb::AssignmentStrategy::Sticky,
        }
    }

    fn from_wire(v: fb::AssignmentStrategy) -> AssignmentStrategy {
        match v {
            fb::AssignmentStrategy::RoundRobin => AssignmentStrategy::RoundRobin,
            fb::AssignmentStrategy::Sticky => AssignmentStrategy::Sticky,
            _ => AssignmentStrategy::Range,
        }
    }

    /// `range`, `roundrobin` or `sticky`.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::Sticky => "sticky",
        }
    }
}

impl std::str::FromStr for AssignmentStrategy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "range" => Ok(AssignmentStrategy::Range),
            "roundrobin" | "round-robin" => Ok(AssignmentStrategy::RoundRobin),
            "sticky" => Ok(AssignmentStrategy::Sticky),
            _ => Err(format!(
                "unknown assignment strategy {s:?}; use range, roundrobin or sticky"
            )),
        }
    }
}

/// A group as [`Admin::list_groups`](crate::Admin::list_groups) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    /// `Empty`, `PreparingRebalance` or `Stable`.
    pub state: String,
    pub members: u32,
}

/// One member of a described group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// (topic, partition) pairs this member consumes.
    pub assignment: Vec<(String, u32)>,
}

/// A partition's committed offset and lag (`-1` = unknown / none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    pub committed_offset: i64,
    pub log_end_offset: i64,
    pub lag: i64,
}

/// A group as [`Admin::describe_group`](crate::Admin::describe_group) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// `Empty`, `PreparingRebalance`, `Stable`, or `Dead` when it does not exist.
    pub state: String,
    pub strategy: AssignmentStrategy,
    pub generation: i32,
    pub members: Vec<GroupMember>,
    /// Every assigned or committed partition.
    pub lag: Vec<PartitionLag>,
}

/// A committed offset of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: u32,
    /// `-1` when the group has committed nothing for the partition.
    pub offset: i64,
    pub metadata: String,
}

/// A completed join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    pub member_id: String,
    pub generation: i32,
    pub assignment: Vec<(String, u32)>,
}

fn root<'a, T>(api: ApiKey, body: &'a [u8]) -> Result<T::Inner>
where
    T: flatbuffers::Follow<'a> + flatbuffers::Verifiable + 'a,
{
    flatbuffers::root::<T>(body)
        .map_err(|e| ClientError::Protocol(format!("{} response does not decode: {e}", api.name())))
}

fn finish<T>(mut fbb: FlatBufferBuilder<'_>, root: flatbuffers::WIPOffset<T>) -> Vec<u8> {
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

fn assignment(
    v: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<fb::TopicPartitions<'_>>>>,
) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for tp in v.iter().flatten() {
        for p in tp.partitions().iter().flatten() {
            out.push((tp.topic().to_owned(), p));
        }
    }
    out
}

/// The JoinGroup request of a member (`member_id` empty on the first join).
pub(crate) struct JoinArgs<'a> {
    pub group: &'a str,
    pub member_id: &'a str,
    pub client_id: &'a str,
    pub topics: &'a [String],
    pub strategy: AssignmentStrategy,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
}

pub(crate) fn encode_join(a: &JoinArgs<'_>) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let group = fbb.create_string(a.group);
    let member_id = fbb.create_string(a.member_id);
    let client_id = fbb.create_string(a.client_id);
    let topics: Vec<_> = a.topics.iter().map(|t| fbb.create_string(t)).collect();
    let topics = fbb.create_vector(&topics);
    let req = fb::JoinGroupRequest::create(
        &mut fbb,
        &fb::JoinGroupRequestArgs {
            group: Some(group),
            member_id: Some(member_id),
            client_id: Some(client_id),
            topics: Some(topics),
            strategy: a.strategy.wire(),
            session_timeout_ms: a.session_timeout_ms,
            rebalance_timeout_ms: a.rebalance_timeout_ms,
        },
    );
    finish(fbb, req)
}

pub(crate) fn decode_join(body: &[u8]) -> Result<Joined> {
    let r = root::<fb::JoinGroupResponse>(ApiKey::JoinGroup, body)?;
    check(ApiKey::JoinGroup, r.error())?;
    Ok(Joined {
        member_id: r.member_id().unwrap_or_default().to_owned(),
        generation: r.generation(),
        assignment: assignment(r.assignment()),
    })
}

pub(crate) fn encode_heartbeat(group: &str, member_id: &str, generation: i32) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let group = fbb.create_string(group);
    let member_id = fbb.create_string(member_id);
    let req = fb::HeartbeatRequest::create(
        &mut fbb,
        &fb::HeartbeatRequestArgs {
            group: Some(group),
            member_id: Some(member_id),
            generation,
        },
    );
    finish(fbb, req)
}

pub(crate) fn decode_heartbeat(body: &[u8]) -> Result<()> {
    let r = root::<fb::HeartbeatResponse>(ApiKey::Heartbeat, body)?;
    check(ApiKey::Heartbeat, r.error())
}

pub(crate) fn encode_leave(group: &str, member_id: &str) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let group = fbb.create_string(group);
    let member_id = fbb.create_string(member_id);
    let req = fb::LeaveGroupRequest::create(
        &mut fbb,
        &fb::LeaveGroupRequestArgs {
            group: Some(group),
            member_id: Some(member_id),
        },
    );
    finish(fbb, req)
}

pub(crate) fn decode_leave(body: &[u8]) -> Result<()> {
    let r = root::<fb::LeaveGroupResponse>(ApiKey::LeaveGroup, body)?;
    check(ApiKey::LeaveGroup, r.error())
}

/// An OffsetCommit body; `member_id` empty and `generation` -1 for an admin commit.
pub(crate) fn encode_commit(
    group: &str,
    member_id: &str,
    generation: i32,
    offsets: &[(&str, u32, i64)],
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let parts: Vec<_> = offsets
        .iter()
        .map(|&(topic, partition, offset)| {
            let topic = fbb.create_string(topic);
            fb::CommitPartition::create(
                &mut fbb,
                &fb::CommitPartitionArgs {
                    topic: Some(topic),
                    partition,
                    offset,
                    metadata: None,
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let group = fbb.create_string(group);
    let member_id = fbb.create_string(member_id);
    let req = fb::OffsetCommitRequest::create(
        &mut fbb,
        &fb::OffsetCommitRequestArgs {
            group: Some(group),
            member_id: Some(member_id),
            generation,
            partitions: Some(parts),
        },
    );
    finish(fbb, req)
}

/// `Ok` when the commit and every partition in it succeeded, else the first error.
pub(crate) fn decode_commit(body: &[u8]) -> Result<()> {
    let r = root::<fb::OffsetCommitResponse>(ApiKey::OffsetCommit, body)?;
    check(ApiKey::OffsetCommit, r.error())?;
    for p in r.results().iter().flatten() {
        check(ApiKey::OffsetCommit, p.error())?;
    }
    Ok(())
}

/// An OffsetFetch body: the given partitions, or every committed one with `None`.
pub(crate) fn encode_offset_fetch(group: &str, partitions: Option<&[(&str, u32)]>) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let parts = partitions.map(|parts| {
        let mut by_topic: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
        for &(t, p) in parts {
            by_topic.entry(t).or_default().push(p);
        }
        let tables: Vec<_> = by_topic
            .into_iter()
            .map(|(t, ps)| {
                let topic = fbb.create_string(t);
                let partitions = fbb.create_vector(&ps);
                fb::TopicPartitions::create(
                    &mut fbb,
                    &fb::TopicPartitionsArgs {
                        topic: Some(topic),
                        partitions: Some(partitions),
                    },
                )
            })
            .collect();
        fbb.create_vector(&tables)
    });
    let group = fbb.create_string(group);
    let req = fb::OffsetFetchRequest::create(
        &mut fbb,
        &fb::OffsetFetchRequestArgs {
            group: Some(group),
            partitions: parts,
        },
    );
    finish(fbb, req)
}

pub(crate) fn decode_offset_fetch(body: &[u8]) -> Result<Vec<CommittedOffset>> {
    let r = root::<fb::OffsetFetchResponse>(ApiKey::OffsetFetch, body)?;
    check(ApiKey::OffsetFetch, r.error())?;
    let mut out = Vec::new();
    for o in r.offsets().iter().flatten() {
        check(ApiKey::OffsetFetch, o.error())?;
        out.push(CommittedOffset {
            topic: o.topic().unwrap_or_default().to_owned(),
            partition: o.partition(),
            offset: o.offset(),
            metadata: o.metadata().unwrap_or_default().to_owned(),
        });
    }
    Ok(out)
}

pub(crate) fn encode_describe_group(group: &str) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let group = fbb.create_string(group);
    let req = fb::DescribeGroupRequest::create(
        &mut fbb,
        &fb::DescribeGroupRequestArgs { group: Some(group) },
    );
    finish(fbb, req)
}

pub(crate) fn decode_describe_group(body: &[u8]) -> Result<GroupDescription> {
    let r = root::<fb::DescribeGroupResponse>(ApiKey::DescribeGroup, body)?;
    check(ApiKey::DescribeGroup, r.error())?;
    Ok(GroupDescription {
        group: r.group().unwrap_or_default().to_owned(),
        state: r.state().unwrap_or_default().to_owned(),
        strategy: AssignmentStrategy::from_wire(r.strategy()),
        generation: r.generation(),
        members: r
            .members()
            .iter()
            .flatten()
            .map(|m| GroupMember {
                member_id: m.member_id().unwrap_or_default().to_owned(),
                client_id: m.client_id().unwrap_or_default().to_owned(),
                host: m.host().unwrap_or_default().to_owned(),
                assignment: assignment(m.assignment()),
            })
            .collect(),
        lag: r
            .lag()
            .iter()
            .flatten()
            .map(|l| PartitionLag {
                topic: l.topic().unwrap_or_default().to_owned(),
                partition: l.partition(),
                committed_offset: l.committed_offset(),
                log_end_offset: l.log_end_offset(),
                lag: l.lag(),
            })
            .collect(),
    })
}

pub(crate) fn encode_list_groups() -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let req = fb::ListGroupsRequest::create(&mut fbb, &fb::ListGroupsRequestArgs {});
    finish(fbb, req)
}

pub(crate) fn decode_list_groups(body: &[u8]) -> Result<Vec<GroupListing>> {
    let r = root::<fb::ListGroupsResponse>(ApiKey::ListGroups, body)?;
    check(ApiKey::ListGroups, r.error())?;
    Ok(r.groups()
        .iter()
        .flatten()
        .map(|g| GroupListing {
            group: g.group().unwrap_or_default().to_owned(),
            state: g.state().unwrap_or_default().to_owned(),
            members: g.members(),
        })
        .collect())
}

pub(crate) fn encode_delete_group(group: &str) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let group = fbb.create_string(group);
    let req = fb::DeleteGroupRequest::create(
        &mut fbb,
        &fb::DeleteGroupRequestArgs { group: Some(group) },
    );
    finish(fbb, req)
}

pub(crate) fn decode_delete_group(body: &[u8]) -> Result<()> {
    let r = root::<fb::DeleteGroupResponse>(ApiKey::DeleteGroup, body)?;
    check(ApiKey::DeleteGroup, r.error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_request_carries_every_field() {
        let topics = vec!["a".to_owned(), "b".to_owned()];
        let body = encode_join(&JoinArgs {
            group: "g",
            member_id: "m-1",
            client_id: "c",
            topics: &topics,
            strategy: AssignmentStrategy::Sticky,
            session_timeout_ms: 3000,
            rebalance_timeout_ms: 9000,
        });
        let r = flatbuffers::root::<fb::JoinGroupRequest>(&body).unwrap();
        assert_eq!(r.group(), "g");
        assert_eq!(r.member_id(), Some("m-1"));
        assert_eq!(r.strategy(), fb::AssignmentStrategy::Sticky);
        assert_eq!(r.session_timeout_ms(), 3000);
        assert_eq!(r.topics().unwrap().len(), 2);
    }

    #[test]
    fn join_response_decodes_assignment_and_errors() {
        let mut fbb = FlatBufferBuilder::new();
        let t = fbb.create_string("t");
        let ps = fbb.create_vector(&[1u32, 4]);
        let tp = fb::TopicPartitions::create(
            &mut fbb,
            &fb::TopicPartitionsArgs {
                topic: Some(t),
                partitions: Some(ps),
            },
        );
        let a = fbb.create_vector(&[tp]);
        let m = fbb.create_string("m-1");
        let r = fb::JoinGroupResponse::create(
            &mut fbb,
            &fb::JoinGroupResponseArgs {
                error: None,
                member_id: Some(m),
                generation: 3,
                leader_member_id: None,
                assignment: Some(a),
            },
        );
        fbb.finish_minimal(r);
        let j = decode_join(fbb.finished_data()).unwrap();
        assert_eq!(j.generation, 3);
        assert_eq!(j.assignment, vec![("t".to_owned(), 1), ("t".to_owned(), 4)]);

        let mut fbb = FlatBufferBuilder::new();
        let msg = fbb.create_string("rejoin");
        let e = fb::Error::create(
            &mut fbb,
            &fb::ErrorArgs {
                code: strata_schema::ErrorCode::UnknownMemberId as i16,
                message: Some(msg),
            },
        );
        let r =
            fb::HeartbeatResponse::create(&mut fbb, &fb::HeartbeatResponseArgs { error: Some(e) });
        fbb.finish_minimal(r);
        let err = decode_heartbeat(fbb.finished_data()).unwrap_err();
        assert_eq!(err.code(), Some(strata_schema::ErrorCode::UnknownMemberId));
    }

    #[test]
    fn offset_fetch_groups_partitions_by_topic() {
        let body = encode_offset_fetch("g", Some(&[("t", 0), ("u", 1), ("t", 2)]));
        let r = flatbuffers::root::<fb::OffsetFetchRequest>(&body).unwrap();
        let parts: Vec<(String, Vec<u32>)> = r
            .partitions()
            .unwrap()
            .iter()
            .map(|tp| {
                (
                    tp.topic().to_owned(),
                    tp.partitions().unwrap().iter().collect(),
                )
            })
            .collect();
        assert_eq!(parts, vec![("t".into(), vec![0, 2]), ("u".into(), vec![1])]);
        let all = encode_offset_fetch("g", None);
        assert!(flatbuffers::root::<fb::OffsetFetchRequest>(&all)
            .unwrap()
            .partitions()
            .is_none());
    }

    #[test]
    fn strategies_parse() {
        assert_eq!("Sticky".parse(), Ok(AssignmentStrategy::Sticky));
        assert_eq!("round-robin".parse(), Ok(AssignmentStrategy::RoundRobin));
        assert!("x".parse::<AssignmentStrategy>().is_err());
    }
}
