//! Consumer groups: JoinGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! DescribeGroup, ListGroups, DeleteGroup. Each request for a group goes to the
//! shard that coordinates it (see `group_host`); group errors are answered in the
//! api's own `error` field.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::rc::Rc;

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use strata_engine::shard::Shard;
use strata_schema::protocol as fb;
use strata_schema::{ApiKey, ErrorCode};

use super::{decode, Request};
use crate::broker::{scatter, unknown_topic, Broker};
use crate::cluster::group_forward::{self, FORWARD_TIMEOUT_MS};
use crate::errors::WireError;
use crate::group_host::{self, Host};
use crate::groups::{lag_rows, Commit, JoinRequest, Strategy, TopicPartition};
use crate::response::{error_table, Response};

// ---- routing: in a cluster a request goes to the broker coordinating its group -----

/// Forwards `req` to the broker coordinating `group` when that is another broker
/// (`cluster::group_forward`); `None`: this broker answers it.
async fn forwarded(
    broker: &Broker,
    req: &Request<'_>,
    group: &str,
    timeout_ms: u64,
) -> Option<Result<Response, WireError>> {
    let to = group_forward::remote_coordinator(broker, group)?;
    Some(group_forward::forward(broker, req, to, timeout_ms).await)
}

/// Declares the routed handler `$name`, which answers here with `$here` unless
/// another broker coordinates the group `$group(&decoded body)` names.
macro_rules! routed {
    ($name:ident, $here:ident, $table:ty, $api:expr, |$r:ident| $group:expr, $timeout_ms:expr) => {
        pub async fn $name(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
            let $r = decode::<$table>(req.body, $api)?;
            if let Some(done) = forwarded(broker, req, $group, $timeout_ms).await {
                return done;
            }
            $here(broker, req).await
        }
    };
}

/// A forwarded join is held until its rebalance completes.
fn join_timeout_ms(r: &fb::JoinGroupRequest<'_>) -> u64 {
    u64::from(r.rebalance_timeout_ms().max(r.session_timeout_ms()))
        + group_forward::FORWARD_TIMEOUT_MS
}

routed!(
    join,
    join_here,
    fb::JoinGroupRequest,
    ApiKey::JoinGroup,
    |r| r.group(),
    join_timeout_ms(&r)
);
routed!(
    heartbeat,
    heartbeat_here,
    fb::HeartbeatRequest,
    ApiKey::Heartbeat,
    |r| r.group(),
    FORWARD_TIMEOUT_MS
);
routed!(
    leave,
    leave_here,
    fb::LeaveGroupRequest,
    ApiKey::LeaveGroup,
    |r| r.group(),
    FORWARD_TIMEOUT_MS
);
routed!(
    commit,
    commit_here,
    fb::OffsetCommitRequest,
    ApiKey::OffsetCommit,
    |r| r.group(),
    FORWARD_TIMEOUT_MS
);
routed!(
    offset_fetch,
    offset_fetch_here,
    fb::OffsetFetchRequest,
    ApiKey::OffsetFetch,
    |r| r.group(),
    FORWARD_TIMEOUT_MS
);
routed!(
    describe,
    describe_here,
    fb::DescribeGroupRequest,
    ApiKey::DescribeGroup,
    |r| r.group(),
    FORWARD_TIMEOUT_MS
);
routed!(
    delete,
    delete_here,
    fb::DeleteGroupRequest,
    ApiKey::DeleteGroup,
    |r| r.group(),
    FORWARD_TIMEOUT_MS
);

/// Answers a request another broker forwarded here, on this broker, never
/// forwarding it again.
pub(crate) async fn serve_here(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    match ApiKey::from_u16(req.header.api) {
        Some(ApiKey::JoinGroup) => join_here(broker, req).await,
        Some(ApiKey::Heartbeat) => heartbeat_here(broker, req).await,
        Some(ApiKey::LeaveGroup) => leave_here(broker, req).await,
        Some(ApiKey::OffsetCommit) => commit_here(broker, req).await,
        Some(ApiKey::OffsetFetch) => offset_fetch_here(broker, req).await,
        Some(ApiKey::DescribeGroup) => describe_here(broker, req).await,
        Some(ApiKey::DeleteGroup) => delete_here(broker, req).await,
        _ => Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!(
                "api {} is not a group request; only group requests are forwarded",
                req.header.api
            ),
        )),
    }
}

/// Runs `job` on the shard coordinating `group`, with that coordinator.
async fn on_coordinator<F, Fut, R>(broker: &Broker, group: &str, job: F) -> Result<R, WireError>
where
    F: FnOnce(Shard, Rc<Host>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<R, WireError>> + 'static,
    R: Send + 'static,
{
    group_host::on_coordinator(broker, group, job).await
}

/// `TopicPartitions` tables for a sorted list of partitions.
fn topic_partitions<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    tps: &[TopicPartition],
) -> WIPOffset<flatbuffers::Vector<'b, flatbuffers::ForwardsUOffset<fb::TopicPartitions<'b>>>> {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for tp in tps {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let tables: Vec<_> = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let topic = fbb.create_string(t);
            let partitions = fbb.create_vector(&ps);
            fb::TopicPartitions::create(
                fbb,
                &fb::TopicPartitionsArgs {
                    topic: Some(topic),
                    partitions: Some(partitions),
                },
            )
        })
        .collect();
    fbb.create_vector(&tables)
}

fn finish<T>(mut fbb: FlatBufferBuilder<'_>, root: WIPOffset<T>, req: &Request<'_>) -> Response {
    fbb.finish(root, None);
    req.reply(fbb.finished_data(), Vec::new())
}

async fn join_here(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<fb::JoinGroupRequest>(req.body, ApiKey::JoinGroup)?;
    let strategy = Strategy::from_i8(r.strategy().0).ok_or_else(|| {
        WireError::new(
            ErrorCode::InvalidRequest,
            format!("unknown assignment strategy {}", r.strategy().0),
        )
    });
    let join = JoinRequest {
        group: r.group().to_owned(),
        member_id: r.member_id().unwrap_or_default().to_owned(),
        client_id: r.client_id().unwrap_or_default().to_owned(),
        host: req.peer.to_owned(),
        topics: r.topics().iter().flatten().map(str::to_owned).collect(),
        strategy: strategy.clone().unwrap_or_default(),
        session_timeout_ms: r.session_timeout_ms(),
        rebalance_timeout_ms: r.rebalance_timeout_ms(),
    };
    let result = match strategy {
        Err(e) => Err(e),
        Ok(_) => {
            let group = join.group.clone();
            on_coordinator(broker, &group, move |s, host| {
                group_host::join(s, host, join)
            })
            .await
        }
    };
    let mut fbb = FlatBufferBuilder::new();
    let (error, member_id, generation, leader, assignment) = match &result {
        Ok(j) => {
            let m = fbb.create_string(&j.member_id);
            let l = fbb.create_string(&j.leader_member_id);
            let a = topic_partitions(&mut fbb, &j.assignment);
            (None, Some(m), j.generation, Some(l), Some(a))
        }
        Err(e) => (error_table(&mut fbb, Some(e)), None, -1, None, None),
    };
    let root = fb::JoinGroupResponse::create(
        &mut fbb,
        &fb::JoinGroupResponseArgs {
            error,
            member_id,
            generation,
            leader_member_id: leader,
            assignment,
        },
    );
    Ok(finish(fbb, root, req))
}

async fn heartbeat_here(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<fb::HeartbeatRequest>(req.body, ApiKey::Heartbeat)?;
    let (group, member, generation) = (
        r.group().to_owned(),
        r.member_id().to_owned(),
        r.generation(),
    );
    let g = group.clone();
    let result = on_coordinator(broker, &g, move |_, host| async move {
        group_host::heartbeat(&host, &group, &member, generation)
    })
    .await;
    let mut fbb = FlatBufferBuilder::new();
    let error = error_table(&mut fbb, result.err().as_ref());
    let root = fb::HeartbeatResponse::create(&mut fbb, &fb::HeartbeatResponseArgs { error });
    Ok(finish(fbb, root, req))
}

async fn leave_here(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<fb::LeaveGroupRequest>(req.body, ApiKey::LeaveGroup)?;
    let (group, member) = (r.group().to_owned(), r.member_id().to_owned());
    let g = group.clone();
    let result = on_coordinator(broker, &g, move |_, host| async move {
        group_host::leave(&host, &group, &member)
    })
    .await;
    let mut fbb = FlatBufferBuilder::new();
    let error = error_table(&mut fbb, result.err().as_ref());
    let root = fb::LeaveGroupResponse::create(&mut fbb, &fb::LeaveGroupResponseArgs { error });
    Ok(finish(fbb, root, req))
}

async fn commit_here(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<fb::OffsetCommitRequest>(req.body, ApiKey::OffsetCommit)?;
    let group = r.group().to_owned();
    let member = r.member_id().unwrap_or_default().to_owned();
    let generation = r.generation();
    let topics = broker.topics();
    // Per partition: an error of its own, or it goes to the coordinator.
    let mut results: Vec<(TopicPartition, Option<WireError>)> = Vec::new();
    let mut commits = Vec::new();
    for p in r.partitions().iter().flatten() {
        let tp = TopicPartition::new(p.topic(), p.partition());
        let error = match topics.get(p.topic()) {
            None => Some(unknown_topic(p.topic())),
            Some(t) if p.partition() >= t.partitions => Some(WireError::new(
                ErrorCode::UnknownPartition,
                format!(
                    "topic {} has {} partitions; partition {} does not exist",
                    t.name,
                    t.partitions,
                    p.partition()
                ),
            )),
            Some(_) => {
                commits.push(Commit {
                    tp: tp.clone(),
                    offset: p.offset(),
                    metadata: p.metadata().unwrap_or_default().to_owned(),
                    leader_epoch: -1,
                });
                None
            }
        };
        results.push((tp, error));
    }
    let g = group.clone();
    let result = on_coordinator(broker, &g, move |_, host| {
        group_host::commit(host, group, member, generation, commits)
    })
    .await;
    let mut fbb = FlatBufferBuilder::new();
    let items: Vec<_> = results
        .iter()
        .map(|(tp, e)| {
            let topic = fbb.create_string(&tp.topic);
            let error = error_table(&mut fbb, e.as_ref());
            fb::CommitResult::create(
                &mut fbb,
                &fb::CommitResultArgs {
                    topic: Some(topic),
                    partition: tp.partition,
                    error,
                },
            )
        })
        .collect();
    let items = fbb.create_vector(&items);
    let error = error_table(&mut fbb, result.err().as_ref());
    let root = fb::OffsetCommitResponse::create(
        &mut fbb,
        &fb::OffsetCommitResponseArgs {
            error,
            results: Some(items),
        },
    );
    Ok(finish(fbb, root, req))
}

async fn offset_fetch_here(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<fb::OffsetFetchRequest>(req.body, ApiKey::OffsetFetch)?;
    let group = r.group().to_owned();
    let wanted: Option<Vec<TopicPartition>> = r.partitions().map(|v| {
        v.iter()
            .flat_map(|tp| {
                let topic = tp.topic().to_owned();
                tp.partitions()
                    .into_iter()
                    .flatten()
                    .map(move |p| TopicPartition::new(topic.clone(), p))
            })
            .collect()
    });
    let g = group.clone();
    let result = on_coordinator(broker, &g, move |_, host| async move {
        Ok(group_host::fetch_offsets(&host, &group, wanted.as_deref()))
    })
    .await;
    let mut fbb = FlatBufferBuilder::new();
    let (error, offsets) = match &result {
        Ok(found) => {
            let items: Vec<_> = found
                .iter()
                .map(|(tp, v)| {
                    let topic = fbb.create_string(&tp.topic);
                    let metadata = v.as_ref().map(|v| fbb.create_string(&v.metadata));
                    fb::CommittedOffset::create(
                        &mut fbb,
                        &fb::CommittedOffsetArgs {
                            topic: Some(topic),
                            partition: tp.partition,
                            offset: v.as_ref().map_or(-1, |v| v.offset),
                            metadata,
                            error: None,
                        },
                    )
                })
                .collect();
            (None, Some(fbb.create_vector(&items)))
        }
        Err(e) => (error_table(&mut fbb, Some(e)), None),
    };
    let root =
        fb::OffsetFetchResponse::create(&mut fbb, &fb::OffsetFetchResponseArgs { error, offsets });
    Ok(finish(fbb, root, req))
}

async fn high_watermark(broker: Rc<Broker>, (topic, partition): (String, u32)) -> i64 {
    match broker.log(&topic, partition).await {
        Ok(log) => log.high_watermark(),
        Err(_) => -1,
    }
}

async fn describe_here(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<fb::DescribeGroupRequest>(req.body, ApiKey::DescribeGroup)?;
    let group = r.group().to_owned();
    let g = group.clone();
    let result = on_coordinator(broker, &g, move |_, host| async move {
        Ok(group_host::describe(&host, &group))
    })
    .await;
    let mut fbb = FlatBufferBuilder::new();
    let root = match result {
        Ok(d) => {
            let assigned: BTreeSet<TopicPartition> = d
                .members
                .iter()
                .flat_map(|m| m.assignment.iter().cloned())
                .collect();
            let committed: BTreeMap<TopicPartition, i64> = d
                .offsets
                .iter()
                .map(|(tp, v)| (tp.clone(), v.offset))
                .collect();
            let all: Vec<(String, u32)> = assigned
                .iter()
                .chain(committed.keys())
                .map(|tp| (tp.topic.clone(), tp.partition))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let items = all
                .iter()
                .map(|(t, p)| (broker.owner(t, *p), (t.clone(), *p)))
                .collect();
            let ends = scatter(broker, items, high_watermark, |_| -1).await;
            let log_ends: BTreeMap<TopicPartition, i64> = all
                .into_iter()
                .zip(ends)
                .map(|((t, p), e)| (TopicPartition::new(t, p), e))
                .collect();
            let rows = lag_rows(&assigned, &committed, &log_ends);
            let members: Vec<_> = d
                .members
                .iter()
                .map(|m| {
                    let member_id = fbb.create_string(&m.member_id);
                    let client_id = fbb.create_string(&m.client_id);
                    let host = fbb.create_string(&m.host);
                    let assignment = topic_partitions(&mut fbb, &m.assignment);
                    fb::MemberInfo::create(
                        &mut fbb,
                        &fb::MemberInfoArgs {
                            member_id: Some(member_id),
                            client_id: Some(client_id),
                            host: Some(host),
                            assignment: Some(assignment),
                        },
                    )
                })
                .collect();
            let members = fbb.create_vector(&members);
            let lag: Vec<_> = rows
                .iter()
                .map(|row| {
                    let topic = fbb.create_string(&row.tp.topic);
                    fb::PartitionLag::create(
                        &mut fbb,
                        &fb::PartitionLagArgs {
                            topic: Some(topic),
                            partition: row.tp.partition,
                            committed_offset: row.committed_offset,
                            log_end_offset: row.log_end_offset,
                            lag: row.lag,
                        },
                    )
                })
                .collect();
            let lag = fbb.create_vector(&lag);
            let group = fbb.create_string(&d.group);
            let state = fbb.create_string(d.state.name());
            fb::DescribeGroupResponse::create(
                &mut fbb,
                &fb::DescribeGroupResponseArgs {
                    error: None,
                    group: Some(group),
                    state: Some(state),
                    strategy: fb::AssignmentStrategy(d.strategy.to_i8()),
                    generation: d.generation,
                    members: Some(members),
                    lag: Some(lag),
                },
            )
        }
        Err(e) => {
            let error = error_table(&mut fbb, Some(&e));
            fb::DescribeGroupResponse::create(
                &mut fbb,
                &fb::DescribeGroupResponseArgs {
                    error,
                    ..Default::default()
                },
            )
        }
    };
    Ok(finish(fbb, root, req))
}

pub async fn list(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    decode::<fb::ListGroupsRequest>(req.body, ApiKey::ListGroups)?;
    let (groups, error) = group_host::list_all(broker).await;
    let mut fbb = FlatBufferBuilder::new();
    let items: Vec<_> = groups
        .iter()
        .map(|g| {
            let group = fbb.create_string(&g.group);
            let state = fbb.create_string(g.state.name());
            fb::GroupListing::create(
                &mut fbb,
                &fb::GroupListingArgs {
                    group: Some(group),
                    state: Some(state),
                    members: g.members,
                },
            )
        })
        .collect();
    let items = fbb.create_vector(&items);
    let error = error_table(&mut fbb, error.as_ref());
    let root = fb::ListGroupsResponse::create(
        &mut fbb,
        &fb::ListGroupsResponseArgs {
            error,
            groups: Some(items),
        },
    );
    Ok(finish(fbb, root, req))
}

async fn delete_here(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<fb::DeleteGroupRequest>(req.body, ApiKey::DeleteGroup)?;
    let group = r.group().to_owned();
    let g = group.clone();
    let result = on_coordinator(broker, &g, move |_, host| async move {
        Ok(group_host::delete(host, group).await?)
    })
    .await;
    let mut fbb = FlatBufferBuilder::new();
    let error = error_table(&mut fbb, result.err().as_ref());
    let root = fb::DeleteGroupResponse::create(&mut fbb, &fb::DeleteGroupResponseArgs { error });
    Ok(finish(fbb, root, req))
}
