//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a
//! timestamp, per partition on its owner shard (the native path's lookup).
//!
//! In a cluster only the leader answers; the request's `current_leader_epoch` (v4+)
//! is fenced against the leader's (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH,
//! `cluster::client_reads`) and each answer carries the partition's epoch.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use strata_schema::ErrorCode;

use std::rc::Rc;

use super::errors::kafka_error;
use super::{Ctx, ServedApi};
use crate::broker::{scatter, Broker};
use crate::cluster::client_reads::{check_read, ReadRule};
use crate::errors::WireError;
use crate::handlers::list_offsets::lookup;

/// The apis of this file (v7's max-timestamp lookup is not served).
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::ListOffsets, 1, 6)];

/// A partition's (offset, timestamp) and leader epoch.
type Found = Result<(i64, i64, i32), WireError>;

/// The native lookup, after the leader and its epoch are checked.
async fn lookup_at_epoch(
    broker: Rc<Broker>,
    (topic, partition, timestamp, epoch): (String, u32, i64, i32),
) -> Found {
    let epoch = check_read(&broker, &topic, partition, ReadRule::leader_at(epoch))?;
    let (offset, timestamp) = lookup(broker, (topic, partition, timestamp)).await?;
    Ok((offset, timestamp, epoch))
}

pub(crate) async fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = &ctx.broker;
    let mut items = Vec::new();
    let mut early: Vec<Option<Found>> = Vec::new();
    for t in &req.topics {
        let name = t.name.0.as_str();
        for p in &t.partitions {
            match u32::try_from(p.partition_index) {
                Ok(partition) => {
                    items.push((
                        broker.owner(name, partition),
                        (
                            name.to_owned(),
                            partition,
                            p.timestamp,
                            p.current_leader_epoch,
                        ),
                    ));
                    early.push(None);
                }
                Err(_) => early.push(Some(Err(WireError::new(
                    ErrorCode::UnknownPartition,
                    format!("partition {} does not exist", p.partition_index),
                )))),
            }
        }
    }
    let mut found = scatter(broker, items, lookup_at_epoch, Err)
        .await
        .into_iter();
    let mut results = early
        .into_iter()
        .map(|e| e.unwrap_or_else(|| found.next().expect("one result per item")));
    let mut out = ListOffsetsResponse::default();
    for t in req.topics {
        let mut topic = ListOffsetsTopicResponse::default().with_name(t.name);
        for p in t.partitions {
            let found = results.next().expect("one result per partition");
            let r = partition_response(ctx.version, p.partition_index, found);
            topic.partitions.push(r);
        }
        out.topics.push(topic);
    }
    out
}

/// One partition's answer; the leader epoch only from v4, which has it.
fn partition_response(version: i16, index: i32, found: Found) -> ListOffsetsPartitionResponse {
    let mut r = ListOffsetsPartitionResponse::default().with_partition_index(index);
    match found {
        Ok((offset, timestamp, epoch)) => {
            r.offset = offset;
            r.timestamp = timestamp;
            if version >= 4 {
                r.leader_epoch = epoch;
            }
        }
        Err(e) => {
            r.error_code = kafka_error(&e).0;
            r.offset = -1;
            r.timestamp = -1;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;

    #[test]
    fn responses_encode_at_every_served_version() {
        for version in APIS[0].min_version..=APIS[0].max_version {
            let mut topic = ListOffsetsTopicResponse::default();
            topic.partitions = vec![
                partition_response(version, 0, Ok((5, 1_700_000_000_000, 3))),
                partition_response(version, 1, Err(crate::broker::unknown_topic("x"))),
            ];
            let out = ListOffsetsResponse::default().with_topics(vec![topic]);
            assert_encodes(&out, version);
        }
    }
}
