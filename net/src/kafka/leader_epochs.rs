//! OffsetForLeaderEpoch: where a leader epoch ended in a partition's log, from the
//! owner shard's leader-epoch cache — what consumers use to detect a truncated log
//! after a leader change (KIP-320).
//!
//! On a single node a partition's current leader epoch is the newest epoch written to
//! its log, or 0 when none was ([`leader_epoch`]); a single-node log is never
//! truncated under its readers, so where the cache cannot say (an epoch older than
//! every cached one) the log end is the answer: no truncation. In a cluster only the
//! leader answers, and the current epoch is its Raft term — what Metadata
//! advertises and what it stamps into the batches it writes
//! (`cluster::client_reads`).

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use strata_engine::Log;

use super::admin::{on_owners, owner_of, Outcome};
use super::errors::{kafka_error, KafkaCode};
use super::Ctx;
use crate::broker::Broker;
use crate::cluster::client_reads::{check_epoch, check_read, ReadRule};

/// Kafka's "no epoch" and "no offset".
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_OFFSET: i64 = -1;

/// The current leader epoch of a partition whose log is `log`.
pub(crate) fn leader_epoch(log: &Log) -> i32 {
    log.latest_epoch().unwrap_or(0).max(0)
}

/// Kafka's answer for `requested`: (epoch, end offset). `current` is the partition's
/// leader epoch, `cached` what the log's epoch cache says for `requested` (the
/// largest epoch at or below it and where it ended), `log_end` the log end offset.
pub(crate) fn epoch_end(
    requested: i32,
    current: i32,
    cached: Option<(i32, i64)>,
    log_end: i64,
) -> (i32, i64) {
    if requested < 0 || requested > current {
        return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
    }
    if requested == current {
        return (requested, log_end);
    }
    cached.unwrap_or((requested, log_end))
}

type Item = (String, i32, i32, i32);
type Found = Result<(i32, i64), Outcome>;

async fn lookup(broker: Rc<Broker>, (topic, partition, client, requested): Item) -> Found {
    let log = broker
        .log(&topic, partition as u32)
        .await
        .map_err(|e| kafka_error(&broker.closed_means_deleted(&topic, e)))?;
    let current = if broker.config.cluster.is_some() {
        check_read(
            &broker,
            &topic,
            partition as u32,
            ReadRule::leader_at(client),
        )
        .map_err(|e| kafka_error(&e))?
    } else {
        let current = leader_epoch(&log);
        check_epoch(client, current, &format!("{topic}-{partition}"))
            .map_err(|e| kafka_error(&e))?;
        current
    };
    Ok(epoch_end(
        requested,
        current,
        log.epoch_end_offset(requested),
        log.log_end_offset(),
    ))
}

pub(crate) async fn offset_for_leader_epoch(
    ctx: &Ctx,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let broker = &ctx.broker;
    let items = req
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.topic.0.as_str();
            t.partitions.iter().map(move |p| {
                let owner = owner_of(broker, topic, p.partition)?;
                Ok((
                    owner,
                    (
                        topic.to_owned(),
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    ),
                ))
            })
        })
        .collect();
    let mut found = on_owners(broker, items, lookup).await.into_iter();
    let mut out = OffsetForLeaderEpochResponse::default();
    for t in &req.topics {
        let mut result = OffsetForLeaderTopicResult::default().with_topic(t.topic.clone());
        for p in &t.partitions {
            result
                .partitions
                .push(epoch_end_offset(p.partition, found.next()));
        }
        out.topics.push(result);
    }
    out
}

/// One partition's answer (every field is in every served version); `None`: the
/// lookup gave no answer.
fn epoch_end_offset(partition: i32, found: Option<Found>) -> EpochEndOffset {
    let mut e = EpochEndOffset::default().with_partition(partition);
    match found {
        Some(Ok((epoch, end))) => {
            e.leader_epoch = epoch;
            e.end_offset = end;
        }
        Some(Err((code, _))) => e.error_code = code,
        None => e.error_code = KafkaCode::UnknownServerError.code(),
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::admin::{topic_name, versions};
    use crate::kafka::codec::assert_encodes;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn responses_encode_at_every_served_version() {
        for version in versions(ApiKey::OffsetForLeaderEpoch) {
            let fenced = kafka_error(&check_epoch(2, 3, "t-2").unwrap_err());
            let topic = OffsetForLeaderTopicResult::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![
                    epoch_end_offset(0, Some(Ok((3, 42)))),
                    epoch_end_offset(1, Some(Ok((UNDEFINED_EPOCH, UNDEFINED_OFFSET)))),
                    epoch_end_offset(2, Some(Err(fenced))),
                    epoch_end_offset(3, None),
                ]);
            let out = OffsetForLeaderEpochResponse::default().with_topics(vec![topic]);
            assert_encodes(&out, version);
        }
    }

    #[test]
    fn epoch_answers_follow_kafka() {
        // No epoch written: the current epoch is 0 and runs to the log end.
        assert_eq!(epoch_end(0, 0, None, 42), (0, 42));
        assert_eq!(epoch_end(-1, 0, None, 42), (-1, -1));
        assert_eq!(epoch_end(3, 0, None, 42), (-1, -1), "newer than any epoch");
        // Epochs 2 (from 0) and 5 (from 10): epoch 3 ended where 5 began.
        assert_eq!(epoch_end(3, 5, Some((2, 10)), 42), (2, 10));
        assert_eq!(epoch_end(5, 5, Some((5, 42)), 42), (5, 42));
        assert_eq!(epoch_end(1, 5, None, 42), (1, 42), "older than every epoch");
    }
}
