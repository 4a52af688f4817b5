//! DescribeQuorum (KIP-595/KIP-836, what `kafka-metadata-quorum describe` asks): the
//! controller quorum's leader, epoch (its Raft term) and high watermark (its commit
//! offset), each voter with its log end offset and when the leader last heard from it
//! and last saw it caught up, and the brokers that are not voters as observers.
//!
//! Only the quorum's leader knows its followers' progress. As Kafka brokers forward
//! this request to the active controller, a broker that does not lead the quorum
//! passes the request on, as it came, to the leader's Kafka listener and hands its
//! answer back (once: a forwarded request is never forwarded again, so a leader
//! change meanwhile ends in NOT_LEADER_OR_FOLLOWER, which Kafka's admin client
//! retries). A single-node broker is its own one-voter quorum.
//!
//! Progress comes from the leader's Raft state: a voter's log end is the end of the
//! prefix it has durably matched, its last fetch is its last answer (to a tick), and
//! it counts as caught up at that answer when it matched the leader's whole log.
//! Observers' progress is not tracked (-1).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};

use super::admin::str_bytes;
use super::codec::decode_body;
use super::errors::KafkaCode;
use super::{Ctx, ServedApi};
use crate::broker::METADATA_SHARD;
use crate::cluster::node::ClusterNode;
use crate::cluster::TICK_MS;
use crate::cluster_config::NodeId;
use crate::cluster_view::kafka_id;
use crate::response::Response;

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::DescribeQuorum, 0, 2)];

/// The topic and partition Kafka names its metadata quorum by.
pub(crate) const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;
/// The `client.id` of a request this broker forwards to the quorum's leader.
const FORWARDED_CLIENT_ID: &str = "strata-forwarded-describe-quorum";
/// The listener name voters' endpoints are given under (the cluster listener).
const VOTER_LISTENER: &str = "CLUSTER";
/// How long forwarding to the leader may take in all.
const FORWARD_TIMEOUT_MS: u64 = 5_000;
/// Largest answer accepted from the leader.
const FORWARDED_RESPONSE_BYTES_MAX: usize = 1 << 20;

/// One voter's progress as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VoterProgress {
    pub id: NodeId,
    pub log_end_offset: i64,
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

/// The quorum as this broker knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Quorum {
    /// This broker leads: the whole state.
    Led {
        leader: NodeId,
        epoch: i32,
        high_watermark: i64,
        voters: Vec<VoterProgress>,
    },
    /// Another broker leads (or none is known).
    Elsewhere { leader: Option<NodeId>, epoch: i32 },
}

/// The quorum from the controller replica on shard 0 (call there).
fn local_quorum(shard: &strata_engine::shard::Shard, now_ms: i64) -> Option<Quorum> {
    let node = ClusterNode::of(shard)?;
    let replica = node.controller.replica();
    Some(replica.inspect(|raft| {
        let epoch = crate::cluster::client_reads::epoch_of_term(raft.term());
        if raft.role() != strata_raft::Role::Leader {
            return Quorum::Elsewhere {
                leader: raft.leader(),
                epoch,
            };
        }
        let me = raft.id();
        let log_end = raft.log_end_offset();
        let voters = raft
            .membership()
            .voters
            .iter()
            .map(|&id| {
                if id == me {
                    return VoterProgress {
                        id,
                        log_end_offset: offset(log_end),
                        last_fetch_ms: now_ms,
                        last_caught_up_ms: now_ms,
                    };
                }
                match raft.progress(id) {
                    Some(p) => {
                        let heard_ms = now_ms - i64::from(p.ticks_since_contact) * TICK_MS as i64;
                        VoterProgress {
                            id,
                            log_end_offset: offset(p.match_end_offset),
                            last_fetch_ms: heard_ms,
                            last_caught_up_ms: if p.match_end_offset >= log_end {
                                heard_ms
                            } else {
                                -1
                            },
                        }
                    }
                    None => VoterProgress {
                        id,
                        log_end_offset: -1,
                        last_fetch_ms: -1,
                        last_caught_up_ms: -1,
                    },
                }
            })
            .collect();
        Quorum::Led {
            leader: me,
            epoch,
            high_watermark: offset(raft.commit_offset()),
            voters,
        }
    }))
}

fn offset(o: u64) -> i64 {
    i64::try_from(o).unwrap_or(i64::MAX)
}

/// The answer for `quorum` at `version`; `observers` are the brokers that do not vote,
/// `endpoints` each voter's cluster listener.
fn response(
    version: i16,
    quorum: &Quorum,
    observers: &[NodeId],
    endpoints: &[(NodeId, SocketAddr)],
) -> DescribeQuorumResponse {
    let mut partition = PartitionData::default().with_partition_index(METADATA_PARTITION);
    match quorum {
        Quorum::Led {
            leader,
            epoch,
            high_watermark,
            voters,
        } => {
            partition.leader_id = BrokerId(kafka_id(*leader));
            partition.leader_epoch = *epoch;
            partition.high_watermark = *high_watermark;
            partition.current_voters = voters
                .iter()
                .map(|v| {
                    let mut r = ReplicaState::default()
                        .with_replica_id(BrokerId(kafka_id(v.id)))
                        .with_log_end_offset(v.log_end_offset);
                    if version >= 1 {
                        r.last_fetch_timestamp = v.last_fetch_ms;
                        r.last_caught_up_timestamp = v.last_caught_up_ms;
                    }
                    r
                })
                .collect();
            partition.observers = observers
                .iter()
                .map(|id| {
                    ReplicaState::default()
                        .with_replica_id(BrokerId(kafka_id(*id)))
                        .with_log_end_offset(-1)
                })
                .collect();
        }
        Quorum::Elsewhere { leader, epoch } => {
            partition.error_code = KafkaCode::NotLeaderOrFollower.code();
            if version >= 2 {
                partition.error_message = Some(str_bytes(format!(
                    "this broker does not lead the controller quorum (leader: {})",
                    leader.map_or("none yet".to_owned(), |l| l.to_string())
                )));
            }
            partition.leader_id = BrokerId(leader.map_or(-1, kafka_id));
            partition.leader_epoch = *epoch;
        }
    }
    let mut out = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
        .with_partitions(vec![partition])]);
    if version >= 2 {
        out.nodes = endpoints
            .iter()
            .map(|(id, addr)| {
                Node::default()
                    .with_node_id(BrokerId(kafka_id(*id)))
                    .with_listeners(vec![Listener::default()
                        .with_name(str_bytes(VOTER_LISTENER))
                        .with_host(str_bytes(addr.ip().to_string()))
                        .with_port(addr.port())])
            })
            .collect();
    }
    out
}

/// The answer (at `version`) when the request names anything but the metadata
/// partition.
fn unknown_partition(version: i16, req: &DescribeQuorumRequest) -> Option<DescribeQuorumResponse> {
    let only_metadata = req.topics.len() == 1
        && req.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && req.topics[0].partitions.len() == 1
        && req.topics[0].partitions[0].partition_index == METADATA_PARTITION;
    if only_metadata {
        return None;
    }
    let mut out = DescribeQuorumResponse::default();
    out.error_code = KafkaCode::InvalidRequest.code();
    if version >= 2 {
        out.error_message = Some(str_bytes(format!(
            "DescribeQuorum describes {METADATA_TOPIC} partition {METADATA_PARTITION} only"
        )));
    }
    Some(out)
}

/// Answers a DescribeQuorum request (`body` as it came, kept for forwarding).
pub(crate) async fn serve(ctx: &Ctx, body: Bytes) -> Response {
    let req: DescribeQuorumRequest = match decode_body(body.clone(), ctx.version) {
        Ok(r) => r,
        Err(e) => return super::dispatch::undecodable(ctx, &e),
    };
    if let Some(refused) = unknown_partition(ctx.version, &req) {
        return super::dispatch::reply(ctx, &refused);
    }
    let view = ctx.broker.cluster_view();
    let now_ms = crate::group_host::now_ms();
    let Some(cluster) = ctx.broker.config.cluster.as_ref() else {
        let me = view.local;
        let single = Quorum::Led {
            leader: me,
            epoch: crate::cluster_view::SINGLE_NODE_LEADER_EPOCH,
            high_watermark: -1,
            voters: vec![VoterProgress {
                id: me,
                log_end_offset: -1,
                last_fetch_ms: now_ms,
                last_caught_up_ms: now_ms,
            }],
        };
        let endpoints = [(me, ctx.broker.config.listen)];
        return super::dispatch::reply(ctx, &response(ctx.version, &single, &[], &endpoints));
    };
    let quorum = ctx
        .broker
        .shard
        .invoke_on(
            METADATA_SHARD,
            move |s| async move { local_quorum(&s, now_ms) },
        )
        .await
        .ok()
        .flatten()
        .unwrap_or(Quorum::Elsewhere {
            leader: None,
            epoch: -1,
        });
    if let Quorum::Elsewhere {
        leader: Some(leader),
        ..
    } = quorum
    {
        if ctx.client_id != FORWARDED_CLIENT_ID {
            if let Some(b) = view.broker(leader) {
                let addr = format!("{}:{}", b.kafka_host, b.kafka_port);
                match forward(&addr, ctx.version, &body).await {
                    Ok(answer) => return framed(ctx.correlation_id, &answer),
                    Err(e) => {
                        tracing::debug!(leader, addr, error = %e, "DescribeQuorum not forwarded")
                    }
                }
            }
        }
    }
    let voters: Vec<NodeId> = cluster.voters.iter().map(|(id, _)| *id).collect();
    let observers: Vec<NodeId> = view
        .brokers
        .iter()
        .map(|b| b.id)
        .filter(|id| !voters.contains(id))
        .collect();
    super::dispatch::reply(
        ctx,
        &response(ctx.version, &quorum, &observers, &cluster.voters),
    )
}

/// The leader's answer (after its correlation id) in a frame for `correlation_id`.
fn framed(correlation_id: i32, answer: &[u8]) -> Response {
    let mut head = Vec::with_capacity(8 + answer.len());
    head.extend_from_slice(&((4 + answer.len()) as u32).to_be_bytes());
    head.extend_from_slice(&correlation_id.to_be_bytes());
    head.extend_from_slice(answer);
    Response {
        head,
        tail: Vec::new(),
    }
}

/// Sends a DescribeQuorum `body` at `version` to the Kafka listener at `addr`; the
/// response after its correlation id.
async fn forward(addr: &str, version: i16, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let timeout = Duration::from_millis(FORWARD_TIMEOUT_MS);
        let mut stream = glommio::net::TcpStream::connect_timeout(addr, timeout).await?;
        stream.set_read_timeout(Some(timeout))?;
        let correlation_id: i32 = 1;
        let mut request = Vec::with_capacity(32 + body.len());
        request.extend_from_slice(&(ApiKey::DescribeQuorum as i16).to_be_bytes());
        request.extend_from_slice(&version.to_be_bytes());
        request.extend_from_slice(&correlation_id.to_be_bytes());
        request.extend_from_slice(&(FORWARDED_CLIENT_ID.len() as i16).to_be_bytes());
        request.extend_from_slice(FORWARDED_CLIENT_ID.as_bytes());
        request.push(0); // no header tagged fields
        request.extend_from_slice(body);
        let mut frame = (request.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&request);
        stream.write_all(&frame).await?;
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await?;
        let size = u32::from_be_bytes(size) as usize;
        if !(4..=FORWARDED_RESPONSE_BYTES_MAX).contains(&size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a {size}-byte DescribeQuorum answer"),
            ));
        }
        let mut answer = vec![0u8; size];
        stream.read_exact(&mut answer).await?;
        if answer[..4] != correlation_id.to_be_bytes() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the answer is for another request",
            ));
        }
        Ok(answer.split_off(4))
    };
    let timer = async {
        glommio::timer::sleep(Duration::from_millis(FORWARD_TIMEOUT_MS)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {FORWARD_TIMEOUT_MS} ms"),
        ))
    };
    futures_lite::future::or(exchange, timer).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;

    fn led() -> Quorum {
        Quorum::Led {
            leader: 2,
            epoch: 4,
            high_watermark: 120,
            voters: vec![
                VoterProgress {
                    id: 1,
                    log_end_offset: 100,
                    last_fetch_ms: 1_000,
                    last_caught_up_ms: -1,
                },
                VoterProgress {
                    id: 2,
                    log_end_offset: 120,
                    last_fetch_ms: 1_100,
                    last_caught_up_ms: 1_100,
                },
            ],
        }
    }

    #[test]
    fn responses_encode_at_every_served_version() {
        let endpoints = [(1, "127.0.0.1:9001".parse().unwrap())];
        for version in APIS[0].min_version..=APIS[0].max_version {
            for q in [
                led(),
                Quorum::Elsewhere {
                    leader: Some(3),
                    epoch: 5,
                },
            ] {
                assert_encodes(&response(version, &q, &[4], &endpoints), version);
            }
        }
    }

    #[test]
    fn the_leader_describes_every_voter() {
        let out = response(2, &led(), &[4], &[(1, "127.0.0.1:9001".parse().unwrap())]);
        let p = &out.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(
            (p.leader_id, p.leader_epoch, p.high_watermark),
            (BrokerId(2), 4, 120)
        );
        let voters: Vec<_> = p
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset, v.last_caught_up_timestamp))
            .collect();
        assert_eq!(voters, [(1, 100, -1), (2, 120, 1_100)]);
        assert_eq!(p.observers.len(), 1);
        assert_eq!(out.nodes[0].listeners[0].port, 9001);
        // v0 has no timestamps.
        let v0 = response(0, &led(), &[], &[]);
        assert_eq!(
            v0.topics[0].partitions[0].current_voters[0].last_fetch_timestamp,
            -1
        );
    }

    #[test]
    fn a_follower_names_the_leader() {
        let out = response(
            1,
            &Quorum::Elsewhere {
                leader: Some(3),
                epoch: 5,
            },
            &[],
            &[],
        );
        let p = &out.topics[0].partitions[0];
        assert_eq!(p.error_code, KafkaCode::NotLeaderOrFollower.code());
        assert_eq!(p.leader_id, BrokerId(3));
    }

    #[test]
    fn only_the_metadata_partition_is_described() {
        let mut req = DescribeQuorumRequest::default();
        assert!(unknown_partition(0, &req).is_some());
        assert_encodes(&unknown_partition(0, &req).unwrap(), 0);
        req.topics = vec![
            kafka_protocol::messages::describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
                .with_partitions(vec![
                    kafka_protocol::messages::describe_quorum_request::PartitionData::default(),
                ]),
        ];
        assert!(unknown_partition(2, &req).is_none());
    }
}
