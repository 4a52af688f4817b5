//! ElectLeaders (PREFERRED): moves each partition's leadership to its preferred
//! replica (the first of its replicas) when that replica is live and in sync. The
//! controller records the request; the partition's Raft leader hands over with a
//! leadership transfer (`crate::cluster::reassignment`); the answer waits, bounded by
//! the request's timeout, until the image shows the preferred replica leading.
//!
//! UNCLEAN elections are refused: `unclean.leader.election.enable` is off and strata
//! never elects a replica that may miss acknowledged records. A partition that has a
//! leader needs no unclean election (ELECTION_NOT_NEEDED); one that has none gets
//! ELIGIBLE_LEADERS_NOT_AVAILABLE, with a message saying why.

use std::time::{Duration, Instant};

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

use super::admin::{refuse, str_bytes, topic_name, Outcome, OK};
use super::errors::KafkaCode;
use super::Ctx;
use crate::cluster::node;
use crate::controller::error::kafka_codes as K;
use crate::controller::{ControllerCommand, MetadataImage};

/// Kafka's `ElectionType.PREFERRED`.
const ELECTION_PREFERRED: i8 = 0;
/// Kafka's `ElectionType.UNCLEAN`.
const ELECTION_UNCLEAN: i8 = 1;
/// Longest wait for leadership to move, whatever the request's timeout.
const ELECTION_WAIT_MS_MAX: u64 = 30_000;
/// How often the image is looked at while waiting.
const ELECTION_POLL_MS: u64 = 100;

/// One partition the request names, or every partition when it names none.
type Wanted = (String, i32);

/// The partitions of `req`: the listed ones, or every partition of `image`.
fn wanted(req: &ElectLeadersRequest, image: &MetadataImage) -> Vec<Wanted> {
    match &req.topic_partitions {
        Some(tps) => tps
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.as_str().to_owned();
                t.partitions.iter().map(move |&p| (name.clone(), p))
            })
            .collect(),
        None => image
            .topics()
            .values()
            .flat_map(|t| (0..t.partitions.len() as i32).map(move |p| (t.name.clone(), p)))
            .collect(),
    }
}

/// The answer for one partition before any waiting: `Ok(())` when the election was
/// recorded and the leadership is to be watched.
async fn ask(
    ctx: &Ctx,
    election_type: i8,
    image: &MetadataImage,
    (topic, p): &Wanted,
) -> Result<(), Outcome> {
    let Ok(partition) = u32::try_from(*p) else {
        return Err(refuse(
            KafkaCode::UnknownTopicOrPartition,
            format!("partition {p} of topic {topic} does not exist"),
        ));
    };
    match election_type {
        ELECTION_PREFERRED => {}
        ELECTION_UNCLEAN => {
            let found = crate::controller::reassignment::find_partition(image, topic, partition)
                .map_err(|e| (e.kafka_code, Some(e.message)))?;
            return Err(if found.1.leader.is_some() {
                (
                    K::ELECTION_NOT_NEEDED,
                    Some(format!(
                        "partition {topic}-{p} has a leader; no unclean election is needed"
                    )),
                )
            } else {
                (
                    K::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                    Some(format!(
                        "partition {topic}-{p} has no in-sync replica to lead it; unclean leader election \
                         is off (unclean.leader.election.enable=false) because it loses acknowledged records"
                    )),
                )
            });
        }
        other => {
            return Err(refuse(
                KafkaCode::InvalidRequest,
                format!("election type {other} is not PREFERRED (0) or UNCLEAN (1)"),
            ))
        }
    }
    let cmd = ControllerCommand::ElectPreferredLeader {
        topic: topic.clone(),
        partition,
    };
    node::submit_controller(&ctx.broker.shard, cmd)
        .await
        .map(|_| ())
        .map_err(|e| (e.kafka_code, Some(e.message)))
}

/// Whether partition `(topic, p)` is led by its preferred replica in `image`.
fn preferred_leads(image: &MetadataImage, (topic, p): &Wanted) -> bool {
    image
        .topic(topic)
        .and_then(|t| t.partitions.get(*p as usize))
        .is_some_and(|p| p.leader.is_some() && p.leader == p.replicas.first().copied())
}

pub(crate) async fn elect_leaders(ctx: &Ctx, req: ElectLeadersRequest) -> ElectLeadersResponse {
    // v0 has no election type: it is a preferred election.
    let election_type = if ctx.version == 0 {
        ELECTION_PREFERRED
    } else {
        req.election_type
    };
    let Some(image) = node::image(&ctx.broker.shard).await else {
        return single_node(ctx, &req);
    };
    let every = req.topic_partitions.is_none();
    let wanted = wanted(&req, &image);
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(wanted.len());
    for w in &wanted {
        outcomes.push(ask(ctx, election_type, &image, w).await.err());
    }
    let wait_ms = (req.timeout_ms.max(0) as u64).min(ELECTION_WAIT_MS_MAX);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    loop {
        let image = node::image(&ctx.broker.shard).await.unwrap_or_default();
        for (w, o) in wanted.iter().zip(outcomes.iter_mut()) {
            if o.is_none() && preferred_leads(&image, w) {
                *o = Some(OK);
            }
        }
        if outcomes.iter().all(Option::is_some) || Instant::now() >= deadline {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(ELECTION_POLL_MS)).await;
    }
    let results = wanted.into_iter().zip(outcomes).filter_map(|(w, o)| {
        let o = o.unwrap_or_else(|| {
            refuse(
                KafkaCode::RequestTimedOut,
                format!(
                    "the leader of {}-{} was asked to hand over to its preferred replica, \
                     which has not taken over within {wait_ms} ms",
                    w.0, w.1
                ),
            )
        });
        // Asked for every partition: the ones that needed nothing are left out.
        (!(every && o.0 == K::ELECTION_NOT_NEEDED)).then_some((w, o))
    });
    response(results)
}

/// A single-node broker leads every partition it has.
fn single_node(ctx: &Ctx, req: &ElectLeadersRequest) -> ElectLeadersResponse {
    let topics = ctx.broker.topics();
    let every = req.topic_partitions.is_none();
    let mut image_less: Vec<(Wanted, Outcome)> = Vec::new();
    if let Some(tps) = &req.topic_partitions {
        for t in tps {
            let name = t.topic.0.as_str();
            for &p in &t.partitions {
                let known = topics
                    .get(name)
                    .is_some_and(|m| u32::try_from(p).is_ok_and(|p| p < m.partitions));
                let o = if known {
                    (
                        K::ELECTION_NOT_NEEDED,
                        Some("a single-node broker leads every partition".to_owned()),
                    )
                } else {
                    refuse(
                        KafkaCode::UnknownTopicOrPartition,
                        format!("partition {p} of topic {name} does not exist"),
                    )
                };
                image_less.push(((name.to_owned(), p), o));
            }
        }
    }
    debug_assert!(!every || image_less.is_empty());
    response(image_less)
}

/// The response, partitions grouped by topic in the order first named.
fn response(results: impl IntoIterator<Item = (Wanted, Outcome)>) -> ElectLeadersResponse {
    let mut out = ElectLeadersResponse::default();
    for ((topic, p), (code, message)) in results {
        let pr = PartitionResult::default()
            .with_partition_id(p)
            .with_error_code(code)
            .with_error_message(message.map(str_bytes));
        match out
            .replica_election_results
            .iter_mut()
            .find(|r| r.topic.0.as_str() == topic)
        {
            Some(r) => r.partition_result.push(pr),
            None => out.replica_election_results.push(
                ReplicaElectionResult::default()
                    .with_topic(topic_name(topic))
                    .with_partition_result(vec![pr]),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::admin::versions;
    use crate::kafka::codec::assert_encodes;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn responses_group_by_topic_and_encode_at_every_served_version() {
        let out = response(vec![
            (("a".to_owned(), 0), OK),
            (
                ("b".to_owned(), 1),
                (K::ELECTION_NOT_NEEDED, Some("led".to_owned())),
            ),
            (
                ("a".to_owned(), 2),
                (K::PREFERRED_LEADER_NOT_AVAILABLE, None),
            ),
        ]);
        assert_eq!(out.replica_election_results.len(), 2);
        assert_eq!(out.replica_election_results[0].partition_result.len(), 2);
        for version in versions(ApiKey::ElectLeaders) {
            assert_encodes(&out, version);
        }
    }
}
