//! DeleteRecords: moves partitions' log start offsets forward (offset -1 = the high
//! watermark), on each partition's owner shard, through the engine's
//! `Log::delete_records_before`; in a cluster on the partition's leader only, whose
//! followers move their log start to the leader's as its appends and heartbeats tell
//! them. Records below the new start can no longer be read;
//! closed segments wholly below it are deleted. Internal topics are refused: their
//! records are the consumer groups' state. In a cluster only a partition's leader
//! deletes, and a replicated log's new start is the start of the batch holding the
//! requested offset.

use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::admin::{on_owners, owner_of, refuse, Outcome};
use super::errors::{kafka_error, KafkaCode};
use super::Ctx;
use crate::broker::Broker;
use crate::errors::WireError;
use strata_schema::check_batch;

/// The offset that means "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

type Item = (String, i32, i64);
type Done = Result<i64, Outcome>;

async fn delete_before(broker: Rc<Broker>, (topic, partition, offset): Item) -> Done {
    let meta = broker.topic_meta(&topic).map_err(|e| kafka_error(&e))?;
    if meta.internal() {
        return Err(refuse(
            KafkaCode::InvalidTopicException,
            format!("records of internal topic {topic} cannot be deleted"),
        ));
    }
    // In a cluster only the leader deletes (its followers that fall behind its new
    // start restart their logs there); elsewhere NOT_LEADER_OR_FOLLOWER.
    let replica = crate::cluster::replicas::leader_replica(&broker, &topic, partition as u32)
        .map_err(|e| kafka_error(&e))?;
    let log = broker
        .log(&topic, partition as u32)
        .await
        .map_err(|e| kafka_error(&broker.closed_means_deleted(&topic, e)))?;
    let mut target = match offset {
        HIGH_WATERMARK => log.high_watermark(),
        o => o,
    };
    if replica.is_some() && (log.log_start_offset()..log.high_watermark()).contains(&target) {
        // A replicated log starts at a batch boundary (a follower restarted at the
        // start must be able to append the batch there): keep the batch holding it.
        if let Ok(read) = log.read(target, 1, None).await {
            if let Some(h) = read.batches.first().and_then(|b| check_batch(b).ok()) {
                target = target.min(h.base_offset);
            }
        }
    }
    let start = log
        .delete_records_before(target)
        .await
        .map_err(|e| kafka_error(&broker.closed_means_deleted(&topic, WireError::from(e))))?;
    if let Some(r) = replica {
        r.announce_log_start();
    }
    Ok(start)
}

pub(crate) async fn delete_records(ctx: &Ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let broker = &ctx.broker;
    let items = req
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.name.0.as_str();
            t.partitions.iter().map(move |p| {
                let owner = owner_of(broker, topic, p.partition_index)?;
                if p.offset < HIGH_WATERMARK {
                    return Err(refuse(
                        KafkaCode::OffsetOutOfRange,
                        format!(
                            "{} is not an offset (give an offset, or -1 for the high watermark)",
                            p.offset
                        ),
                    ));
                }
                Ok((owner, (topic.to_owned(), p.partition_index, p.offset)))
            })
        })
        .collect();
    let mut done = on_owners(broker, items, delete_before).await.into_iter();
    let mut out = DeleteRecordsResponse::default();
    for t in &req.topics {
        let mut result = DeleteRecordsTopicResult::default().with_name(t.name.clone());
        for p in &t.partitions {
            let r = partition_result(t.name.0.as_str(), p.partition_index, done.next());
            result.partitions.push(r);
        }
        out.topics.push(result);
    }
    out
}

/// One partition's answer (every field is in every version); `None`: the deletion
/// gave no answer.
fn partition_result(
    topic: &str,
    partition: i32,
    done: Option<Done>,
) -> DeleteRecordsPartitionResult {
    let mut r = DeleteRecordsPartitionResult::default()
        .with_partition_index(partition)
        .with_low_watermark(-1);
    match done {
        Some(Ok(low_watermark)) => r.low_watermark = low_watermark,
        Some(Err((code, message))) => {
            tracing::debug!(topic, partition, code, ?message, "delete records refused");
            r.error_code = code;
        }
        None => r.error_code = KafkaCode::UnknownServerError.code(),
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::admin::{topic_name, versions};
    use crate::kafka::codec::assert_encodes;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn responses_encode_at_every_served_version() {
        for version in versions(ApiKey::DeleteRecords) {
            let refused = refuse(KafkaCode::OffsetOutOfRange, "-5 is not an offset");
            let topic = DeleteRecordsTopicResult::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![
                    partition_result("t", 0, Some(Ok(17))),
                    partition_result("t", 1, Some(Err(refused))),
                    partition_result("t", 2, None),
                ]);
            let out = DeleteRecordsResponse::default().with_topics(vec![topic]);
            assert_encodes(&out, version);
        }
    }
}
