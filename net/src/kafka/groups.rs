//! Kafka consumer groups, on the same coordinators and `__consumer_offsets` as the
//! native protocol's groups (see `crate::groups` for the state machines and
//! `crate::group_host` for where they run).
//!
//! This file: the served table, FindCoordinator, and the admin side
//! (DescribeGroups, ListGroups, DeleteGroups). The classic protocol is in
//! `groups_classic`, KIP-848 in `groups_consumer`, offsets in `groups_offsets`.
//!
//! Errors a Kafka client does not expect from a group api (a storage fault, a
//! shutdown, a timeout) are answered with COORDINATOR_NOT_AVAILABLE: clients retry
//! it after finding the coordinator again, where an unexpected code would be fatal.

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListGroupsRequest,
    ListGroupsResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strata_engine::shard::Shard;
use strata_schema::ErrorCode;

use super::dispatch::call;
use super::errors::{kafka_code, KafkaCode};
use super::{groups_classic, groups_consumer, groups_offsets, Ctx, ServedApi};
use crate::cluster_view::ClusterView;
use crate::group_host::{self, coordinator_of, Host};
use crate::groups::{
    GroupCode, GroupDescription, GroupError, GroupKind, GroupListing, GroupState, TopicPartition,
};
use crate::response::Response;

/// The apis of the group files, and the versions served: every version the codec
/// knows, except OffsetCommit/OffsetFetch v10 (topic ids instead of names).
pub(crate) const APIS: &[ServedApi] = &[
    ServedApi::new(ApiKey::FindCoordinator, 0, 6),
    ServedApi::new(ApiKey::JoinGroup, 0, 9),
    ServedApi::new(ApiKey::SyncGroup, 0, 5),
    ServedApi::new(ApiKey::Heartbeat, 0, 4),
    ServedApi::new(ApiKey::LeaveGroup, 0, 5),
    ServedApi::new(ApiKey::OffsetCommit, 2, 9),
    ServedApi::new(ApiKey::OffsetFetch, 1, 9),
    ServedApi::new(ApiKey::DescribeGroups, 0, 6),
    ServedApi::new(ApiKey::ListGroups, 0, 5),
    ServedApi::new(ApiKey::DeleteGroups, 0, 2),
    ServedApi::new(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    ServedApi::new(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// FindCoordinator key type of consumer groups.
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator key type of transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Newest version of the consumer protocol's subscription and assignment.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// Answers a request of one of [`APIS`].
pub(crate) async fn serve(ctx: &Ctx, body: Bytes) -> Response {
    match ctx.api {
        ApiKey::FindCoordinator => call!(ctx, body, find_coordinator),
        ApiKey::JoinGroup => call!(ctx, body, groups_classic::join_group),
        ApiKey::SyncGroup => call!(ctx, body, groups_classic::sync_group),
        ApiKey::Heartbeat => call!(ctx, body, groups_classic::heartbeat),
        ApiKey::LeaveGroup => call!(ctx, body, groups_classic::leave_group),
        ApiKey::OffsetCommit => call!(ctx, body, groups_offsets::offset_commit),
        ApiKey::OffsetFetch => call!(ctx, body, groups_offsets::offset_fetch),
        ApiKey::DescribeGroups => call!(ctx, body, describe_groups),
        ApiKey::ListGroups => call!(ctx, body, list_groups),
        ApiKey::DeleteGroups => call!(ctx, body, delete_groups),
        ApiKey::ConsumerGroupHeartbeat => {
            call!(ctx, body, groups_consumer::consumer_group_heartbeat)
        }
        ApiKey::ConsumerGroupDescribe => {
            call!(ctx, body, groups_consumer::consumer_group_describe)
        }
        _ => super::dispatch::unsupported(ctx.correlation_id, KafkaCode::UnsupportedVersion),
    }
}

// ---- shared by the group files ------------------------------------------------------

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn group_id(s: &str) -> GroupId {
    GroupId(str_bytes(s))
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// The Kafka code for a group error.
pub(crate) fn group_code(e: &GroupError) -> KafkaCode {
    match &e.code {
        GroupCode::Wire(c) => match c {
            ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::RebalanceInProgress
            | ErrorCode::InvalidSessionTimeout
            | ErrorCode::NotCoordinator
            | ErrorCode::InvalidRequest
            | ErrorCode::UnknownTopic
            | ErrorCode::UnknownPartition
            | ErrorCode::UnsupportedVersion => kafka_code(*c),
            ErrorCode::GroupNotEmpty => KafkaCode::NonEmptyGroup,
            ErrorCode::GroupNotFound => KafkaCode::GroupIdNotFound,
            ErrorCode::None => KafkaCode::None,
            _ => KafkaCode::CoordinatorNotAvailable,
        },
        GroupCode::InvalidGroupId => KafkaCode::InvalidGroupId,
        GroupCode::InconsistentGroupProtocol => KafkaCode::InconsistentGroupProtocol,
        GroupCode::MemberIdRequired(_) => KafkaCode::MemberIdRequired,
        GroupCode::FencedInstanceId => KafkaCode::FencedInstanceId,
        GroupCode::UnreleasedInstanceId => KafkaCode::UnreleasedInstanceId,
        GroupCode::GroupMaxSizeReached => KafkaCode::GroupMaxSizeReached,
        GroupCode::FencedMemberEpoch => KafkaCode::FencedMemberEpoch,
        GroupCode::StaleMemberEpoch => KafkaCode::StaleMemberEpoch,
        GroupCode::UnsupportedAssignor => KafkaCode::UnsupportedAssignor,
        GroupCode::InvalidRegularExpression => KafkaCode::InvalidRegularExpression,
        GroupCode::UnsupportedVersion => KafkaCode::UnsupportedVersion,
        GroupCode::OffsetMetadataTooLarge => KafkaCode::OffsetMetadataTooLarge,
    }
}

/// The Kafka code and message of a group error, logged and counted.
pub(crate) fn group_error(e: &GroupError) -> (i16, Option<String>) {
    let code = group_code(e);
    if code == KafkaCode::None {
        return (0, None);
    }
    crate::metrics::count_error(e.wire_code());
    tracing::debug!(code = ?code, error = %e.message, "kafka group request refused");
    (code.code(), Some(e.message.clone()))
}

/// Runs `job` on the coordinator of `group`, with that coordinator.
pub(crate) async fn on_coordinator<F, Fut, R>(
    ctx: &Ctx,
    group: &str,
    job: F,
) -> Result<R, GroupError>
where
    F: FnOnce(Shard, Rc<Host>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<R, GroupError>> + 'static,
    R: Send + 'static,
{
    group_host::on_coordinator(&ctx.broker, group, job).await
}

/// A Kafka consumer-protocol subscription (ConsumerProtocolSubscription v0) of
/// `topics`: what native and KIP-848 members look like to Kafka tools.
fn subscription_bytes(topics: &[String]) -> Bytes {
    let s = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str_bytes(t.as_str())).collect());
    versioned_bytes(&s)
}

/// A Kafka consumer-protocol assignment (ConsumerProtocolAssignment v0).
fn assignment_bytes(tps: &[TopicPartition]) -> Bytes {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as Tp;
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for tp in tps {
        by_topic
            .entry(&tp.topic)
            .or_default()
            .push(tp.partition as i32);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| Tp::default().with_topic(topic_name(t)).with_partitions(ps))
            .collect(),
    );
    versioned_bytes(&a)
}

fn versioned_bytes<T: Encodable>(m: &T) -> Bytes {
    let mut out = CONSUMER_PROTOCOL_VERSION.to_be_bytes().to_vec();
    m.encode(&mut out, CONSUMER_PROTOCOL_VERSION)
        .expect("a consumer-protocol v0 message always encodes");
    Bytes::from(out)
}

// ---- FindCoordinator ----------------------------------------------------------------

/// The broker that coordinates a key (node id, host, port), or why none does.
type Found = Result<(i32, String, i32), (KafkaCode, String)>;

pub(crate) async fn find_coordinator(
    ctx: &Ctx,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if ctx.version >= 4 {
        req.coordinator_keys
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect()
    } else {
        vec![req.key.as_str().to_owned()]
    };
    let view = ctx.broker.cluster_view();
    let answers: Vec<(String, Found)> = keys
        .into_iter()
        .map(|key| {
            let found = match req.key_type {
                KEY_TYPE_GROUP => coordinator_of(&ctx.broker, &key)
                    .map_err(|e| (KafkaCode::CoordinatorNotAvailable, e.message))
                    .and_then(|(_, partition)| group_coordinator(&view, partition)),
                KEY_TYPE_TRANSACTION => Err((
                    // Fatal for librdkafka and the Java client, as InitProducerId's
                    // answer to a transactional id.
                    KafkaCode::TransactionalIdAuthorizationFailed,
                    format!(
                        "transactional id {key:?}: transactions are not supported by this broker; use an idempotent producer without transactional.id"
                    ),
                )),
                other => Err((
                    KafkaCode::InvalidRequest,
                    format!("coordinator key type {other} is not supported (0 = group)"),
                )),
            };
            (key, found)
        })
        .collect();
    find_coordinator_response(ctx.version, answers)
}

/// The coordinator of the groups of `__consumer_offsets` partition `partition`: its
/// leader (a single-node broker: itself, at its advertised address).
fn group_coordinator(view: &ClusterView, partition: u32) -> Found {
    let leader = view
        .leader_endpoint(crate::metadata::CONSUMER_OFFSETS_TOPIC, partition)
        .filter(|b| !b.fenced)
        .ok_or_else(|| {
            (
                KafkaCode::CoordinatorNotAvailable,
                format!(
                    "{} partition {partition} has no leader now; retry",
                    crate::metadata::CONSUMER_OFFSETS_TOPIC
                ),
            )
        })?;
    Ok((
        leader.kafka_id(),
        leader.kafka_host.clone(),
        i32::from(leader.kafka_port),
    ))
}

/// The FindCoordinator answer for each key: this broker, or why not.
fn find_coordinator_response(
    version: i16,
    answers: Vec<(String, Found)>,
) -> FindCoordinatorResponse {
    let mut out = FindCoordinatorResponse::default();
    if version >= 4 {
        out.coordinators = answers
            .into_iter()
            .map(|(key, found)| {
                let c = Coordinator::default().with_key(str_bytes(key));
                match found {
                    Ok((node, host, port)) => c
                        .with_node_id(BrokerId(node))
                        .with_host(str_bytes(host))
                        .with_port(port),
                    Err((code, message)) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(message))),
                }
            })
            .collect();
        return out;
    }
    let Some((_, found)) = answers.into_iter().next() else {
        return out;
    };
    match found {
        Ok((node, host, port)) => {
            out.node_id = BrokerId(node);
            out.host = str_bytes(host);
            out.port = port;
        }
        Err((code, message)) => {
            out.error_code = code.code();
            out.node_id = BrokerId(-1);
            out.port = -1;
            if version >= 1 {
                out.error_message = Some(str_bytes(message));
            }
        }
    }
    out
}

// ---- DescribeGroups -----------------------------------------------------------------

/// One group as DescribeGroups shows it. Native and KIP-848 groups show as consumer
/// groups, their members' subscriptions and assignments in the consumer protocol,
/// so Kafka tools can read them.
fn described_group(version: i16, d: &GroupDescription) -> DescribedGroup {
    let mut g = DescribedGroup::default()
        .with_group_id(group_id(&d.group))
        .with_group_state(str_bytes(d.state.name()))
        .with_protocol_type(str_bytes(d.protocol_type.as_str()))
        .with_protocol_data(str_bytes(d.protocol.as_str()));
    if version >= 3 {
        g.authorized_operations = i32::MIN;
    }
    // Kafka shows assignments of stable groups only.
    let stable = d.state == GroupState::Stable;
    g.members = d
        .members
        .iter()
        .map(|m| {
            let (metadata, assignment) = match d.kind {
                GroupKind::Classic => (m.metadata.clone(), m.assignment_bytes.clone()),
                _ => (
                    subscription_bytes(&m.topics),
                    assignment_bytes(&m.assignment),
                ),
            };
            let mut member = DescribedGroupMember::default()
                .with_member_id(str_bytes(m.member_id.as_str()))
                .with_client_id(str_bytes(m.client_id.as_str()))
                .with_client_host(str_bytes(m.host.as_str()))
                .with_member_metadata(metadata)
                .with_member_assignment(if stable { assignment } else { Bytes::new() });
            if version >= 4 {
                member.group_instance_id = m.instance_id.clone().map(str_bytes);
            }
            member
        })
        .collect();
    g
}

pub(crate) async fn describe_groups(
    ctx: &Ctx,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut out = DescribeGroupsResponse::default();
    for name in req.groups {
        let name = name.as_str().to_owned();
        let g = name.clone();
        let found = on_coordinator(ctx, &g, move |_, host| async move {
            Ok(group_host::describe(&host, &name))
        })
        .await;
        let described = match found {
            Ok(d) if d.state == GroupState::Dead && ctx.version >= 6 => {
                let e = GroupError::new(
                    ErrorCode::GroupNotFound,
                    format!("group {:?} does not exist", d.group),
                );
                error_group(ctx.version, &d.group, &e)
            }
            Ok(d) => described_group(ctx.version, &d),
            Err(e) => error_group(ctx.version, &g, &e),
        };
        out.groups.push(described);
    }
    out
}

fn error_group(version: i16, group: &str, e: &GroupError) -> DescribedGroup {
    let (code, message) = group_error(e);
    let mut g = DescribedGroup::default()
        .with_group_id(group_id(group))
        .with_error_code(code)
        .with_group_state(str_bytes(GroupState::Dead.name()));
    if version >= 6 {
        g.error_message = message.map(str_bytes);
    }
    if version >= 3 {
        g.authorized_operations = i32::MIN;
    }
    g
}

// ---- ListGroups ---------------------------------------------------------------------

pub(crate) async fn list_groups(ctx: &Ctx, req: ListGroupsRequest) -> ListGroupsResponse {
    let mut out = ListGroupsResponse::default();
    let (groups, error) = group_host::list_all(&ctx.broker).await;
    if let Some(e) = error {
        out.error_code = group_error(&GroupError::from(e)).0;
    }
    out.groups = listed_groups(ctx.version, groups, &req.states_filter, &req.types_filter);
    out
}

/// The groups that pass the filters (states v4+, types v5+; case-insensitive).
fn listed_groups(
    version: i16,
    groups: Vec<GroupListing>,
    states_filter: &[StrBytes],
    types_filter: &[StrBytes],
) -> Vec<ListedGroup> {
    let states: Vec<String> = states_filter
        .iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect();
    let types: Vec<String> = types_filter
        .iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect();
    groups
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_ascii_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.kind.kafka_type()))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(group_id(&g.group))
                .with_protocol_type(str_bytes(g.protocol_type));
            if version >= 4 {
                l.group_state = str_bytes(g.state.name());
            }
            if version >= 5 {
                l.group_type = str_bytes(g.kind.kafka_type());
            }
            l
        })
        .collect()
}

// ---- DeleteGroups -------------------------------------------------------------------

pub(crate) async fn delete_groups(ctx: &Ctx, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut out = DeleteGroupsResponse::default();
    for name in req.groups_names {
        let name = name.as_str().to_owned();
        let g = name.clone();
        let result = on_coordinator(ctx, &g, move |_, host| group_host::delete(host, name)).await;
        let code = match &result {
            Ok(()) => 0,
            Err(e) => group_error(e).0,
        };
        out.results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id(&g))
                .with_error_code(code),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::{MemberDescription, Strategy};

    fn encodes<T: Encodable>(m: &T, versions: std::ops::RangeInclusive<i16>) {
        for v in versions {
            let mut out = Vec::new();
            m.encode(&mut out, v)
                .unwrap_or_else(|e| panic!("{} v{v}: {e}", std::any::type_name::<T>()));
            assert_eq!(out.len(), m.compute_size(v).unwrap());
        }
    }

    #[test]
    fn every_table_version_is_one_the_codec_knows() {
        for a in APIS {
            let known = a.key.valid_versions();
            assert!(
                known.min <= a.min_version && a.max_version <= known.max,
                "{:?} {}..={} outside {:?}",
                a.key,
                a.min_version,
                a.max_version,
                known
            );
        }
    }

    #[test]
    fn consumer_protocol_bytes_round_trip() {
        let tps = vec![
            TopicPartition::new("t", 0),
            TopicPartition::new("t", 2),
            TopicPartition::new("u", 1),
        ];
        let a = assignment_bytes(&tps);
        assert_eq!(crate::groups::assigned_partitions(&a), Some(tps));
        let s = subscription_bytes(&["t".into(), "u".into()]);
        assert_eq!(
            crate::groups::subscribed_topics(&s),
            Some(vec!["t".to_owned(), "u".to_owned()])
        );
    }

    #[test]
    fn find_coordinator_answers_encode_at_every_version() {
        for v in 0..=6 {
            let ok = find_coordinator_response(v, vec![("g".into(), Ok((0, "h".into(), 9092)))]);
            encodes(&ok, v..=v);
            let refused = find_coordinator_response(
                v,
                vec![(
                    "tx".into(),
                    Err((KafkaCode::TransactionalIdAuthorizationFailed, "no".into())),
                )],
            );
            encodes(&refused, v..=v);
        }
    }

    #[test]
    fn the_coordinator_is_the_offsets_partition_leader() {
        use crate::cluster_view::{tests::endpoint, PartitionView};
        use crate::metadata::CONSUMER_OFFSETS_TOPIC;
        let single = ClusterView::single_node(endpoint(0));
        assert_eq!(
            group_coordinator(&single, 3),
            Ok((0, "127.0.0.1".into(), 19_090))
        );
        let mut view = ClusterView::new(1, Some(1), vec![endpoint(1), endpoint(2), endpoint(3)]);
        view.set_partition(CONSUMER_OFFSETS_TOPIC, 0, PartitionView::led_by(3, 2));
        view.set_partition(CONSUMER_OFFSETS_TOPIC, 2, PartitionView::led_by(2, 2));
        assert_eq!(
            group_coordinator(&view, 0),
            Ok((3, "127.0.0.1".into(), 19_093))
        );
        assert_eq!(
            group_coordinator(&view, 2),
            Ok((2, "127.0.0.1".into(), 19_092))
        );
        // Partition 1 has no leader (a placeholder), partition 5 is not known.
        for p in [1, 5] {
            let (code, _) = group_coordinator(&view, p).unwrap_err();
            assert_eq!(code, KafkaCode::CoordinatorNotAvailable);
        }
        // A leader the view has no endpoint for, or a fenced one: not available.
        view.set_partition(CONSUMER_OFFSETS_TOPIC, 4, PartitionView::led_by(9, 1));
        assert!(group_coordinator(&view, 4).is_err());
        view.brokers[1].fenced = true;
        assert!(group_coordinator(&view, 2).is_err());
        let out = find_coordinator_response(
            4,
            vec![
                ("a".into(), group_coordinator(&view, 0)),
                ("b".into(), group_coordinator(&view, 1)),
            ],
        );
        assert_eq!(out.coordinators[0].node_id, BrokerId(3));
        assert_eq!(out.coordinators[0].port, 19_093);
        assert_eq!(
            out.coordinators[1].error_code,
            KafkaCode::CoordinatorNotAvailable.code()
        );
        assert_eq!(out.coordinators[1].node_id, BrokerId(-1));
    }

    #[test]
    fn list_filters_by_state_and_type() {
        let listing = |group: &str, kind, state| GroupListing {
            group: group.into(),
            kind,
            state,
            protocol_type: "consumer".into(),
            members: 0,
        };
        let all = vec![
            listing("a", GroupKind::Classic, GroupState::Stable),
            listing("b", GroupKind::Consumer, GroupState::Empty),
            listing("c", GroupKind::Native, GroupState::Empty),
        ];
        let names = |l: Vec<ListedGroup>| {
            l.iter()
                .map(|g| g.group_id.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(listed_groups(5, all.clone(), &[], &[])).len(), 3);
        assert_eq!(
            names(listed_groups(5, all.clone(), &["empty".into()], &[])),
            ["b", "c"]
        );
        assert_eq!(
            names(listed_groups(5, all.clone(), &[], &["Consumer".into()])),
            ["b"]
        );
        for v in 0..=5 {
            let r =
                ListGroupsResponse::default().with_groups(listed_groups(v, all.clone(), &[], &[]));
            encodes(&r, v..=v);
        }
        let r = DeleteGroupsResponse::default().with_results(vec![DeletableGroupResult::default()
            .with_group_id(group_id("g"))
            .with_error_code(KafkaCode::NonEmptyGroup.code())]);
        encodes(&r, 0..=2);
    }

    #[test]
    fn described_groups_encode_at_every_version() {
        for kind in [
            GroupKind::Native,
            GroupKind::Classic,
            GroupKind::Consumer,
            GroupKind::Simple,
        ] {
            let d = GroupDescription {
                group: "g".into(),
                kind,
                state: GroupState::Stable,
                strategy: Strategy::Range,
                protocol_type: "consumer".into(),
                protocol: "range".into(),
                generation: 3,
                leader: "m".into(),
                members: vec![MemberDescription {
                    member_id: "m".into(),
                    instance_id: Some("i".into()),
                    client_id: "c".into(),
                    host: "h".into(),
                    topics: vec!["t".into()],
                    assignment: vec![TopicPartition::new("t", 0)],
                    metadata: Bytes::from_static(b"\x00\x00"),
                    assignment_bytes: Bytes::new(),
                }],
                offsets: Default::default(),
            };
            for v in 0..=6 {
                let r =
                    DescribeGroupsResponse::default().with_groups(vec![described_group(v, &d), {
                        let e = GroupError::new(ErrorCode::GroupNotFound, "gone");
                        error_group(v, "h", &e)
                    }]);
                encodes(&r, v..=v);
            }
        }
    }
}
