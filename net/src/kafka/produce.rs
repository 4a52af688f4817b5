//! Produce: Kafka RecordBatch v2 batches, stored as sent (compressed or not) behind
//! strata's batch header, appended on each partition's owner shard with the native
//! path's `append` (same ordering, durability and idempotence rules).
//!
//! acks 0 gets no response at all (as Kafka does); 1 waits until written, -1 until
//! durable. Each batch is validated fully, in one pass (Kafka CRC, records decoded
//! once), before anything is appended; a bad batch fails its partition with
//! CORRUPT_MESSAGE, a keyless record on a compacted topic with INVALID_RECORD (as
//! Kafka answers), and nothing of that partition is appended.
//!
//! In a cluster a partition this broker does not lead is refused with
//! NOT_LEADER_OR_FOLLOWER; from v10 the answer names the current leader and the
//! response carries its endpoint (KIP-951), from the cluster view, so the producer
//! goes there without asking Metadata first.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use strata_engine::Durability;
use strata_schema::{wrap_kafka_batch_produced, ErrorCode, ProduceRules, ValidatedBatch};

use super::errors::kafka_error;
use super::metadata::point_to_leader;
use super::{Ctx, ServedApi};
use crate::broker::{scatter, Broker};
use crate::errors::{batch_error, WireError};
use crate::handlers::produce::{
    append, produce_rules, produce_timeout_ms, Appended, PartitionAppend,
};

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::Produce, 3, 12)];

/// The first Produce version with KIP-951's current leader and node endpoints.
const NEW_LEADER_VERSION: i16 = 10;

/// Bytes of a Kafka batch before its `batchLength` field ends.
const KAFKA_LENGTH_PREFIX_BYTES: usize = 12;

/// Splits a partition's records into Kafka batches and wraps each as a strata batch,
/// validated fully and once with the topic's produce `rules`.
fn wrap_batches(records: &[u8], rules: ProduceRules) -> Result<Vec<ValidatedBatch>, WireError> {
    let corrupt = |m: String| WireError::new(ErrorCode::CorruptBatch, m);
    if records.is_empty() {
        return Err(corrupt("the partition carries no record batch".into()));
    }
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < records.len() {
        let rest = &records[at..];
        let i = out.len();
        if rest.len() < KAFKA_LENGTH_PREFIX_BYTES {
            return Err(corrupt(format!(
                "batch {i}: {} bytes left, fewer than a batch header",
                rest.len()
            )));
        }
        let declared = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let len = usize::try_from(declared)
            .ok()
            .and_then(|n| n.checked_add(KAFKA_LENGTH_PREFIX_BYTES))
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| {
                corrupt(format!(
                    "batch {i}: batchLength {declared} does not fit in the {} bytes left",
                    rest.len()
                ))
            })?;
        out.push(wrap_kafka_batch_produced(&rest[..len], rules).map_err(|e| batch_error(i, &e))?);
        at += len;
    }
    Ok(out)
}

struct Slot {
    topic: usize,
    name: String,
    partition: i32,
}

pub(crate) async fn handle(ctx: &Ctx, req: ProduceRequest) -> ProduceResponse {
    let broker: &Broker = &ctx.broker;
    let durability = match req.acks {
        0 | 1 => Some(Durability::Written),
        -1 => Some(Durability::Durable),
        _ => None,
    };
    let timeout_ms = produce_timeout_ms(i64::from(req.timeout_ms));
    let topics = broker.topics();
    let mut out = ProduceResponse::default();
    let mut slots: Vec<Slot> = Vec::new();
    let mut results: Vec<Option<Appended>> = Vec::new();
    let mut items = Vec::new();
    let mut item_slots = Vec::new();
    for (t, data) in req.topic_data.into_iter().enumerate() {
        let meta = if ctx.version >= 13 {
            topics
                .by_id(data.topic_id.as_bytes())
                .cloned()
                .ok_or_else(|| {
                    WireError::new(
                        ErrorCode::UnknownTopic,
                        format!("no topic has id {}", data.topic_id),
                    )
                })
        } else {
            broker.topic_meta(data.name.0.as_str())
        };
        let name = meta
            .as_ref()
            .map_or_else(|_| data.name.0.as_str().to_owned(), |m| m.name.clone());
        out.responses.push(
            TopicProduceResponse::default()
                .with_name(data.name.clone())
                .with_topic_id(data.topic_id),
        );
        for part in data.partition_data {
            let checked = (|| {
                let durability = durability.ok_or_else(|| {
                    WireError::new(
                        ErrorCode::InvalidAcks,
                        format!("acks must be 0, 1 or -1 (all), not {}", req.acks),
                    )
                })?;
                let m = meta.as_ref().map_err(Clone::clone)?;
                let partition = u32::try_from(part.index)
                    .ok()
                    .filter(|&p| p < m.partitions)
                    .ok_or_else(|| {
                        WireError::new(
                            ErrorCode::UnknownPartition,
                            format!(
                                "topic {name} has {} partitions; partition {} does not exist",
                                m.partitions, part.index
                            ),
                        )
                    })?;
                if m.internal() {
                    return Err(WireError::new(
                        ErrorCode::InvalidTopicName,
                        format!(
                            "topic {name} is internal to the broker; clients cannot produce to it"
                        ),
                    ));
                }
                let records: Bytes = part.records.clone().unwrap_or_default();
                Ok(PartitionAppend {
                    topic: name.clone(),
                    partition,
                    batches: wrap_batches(&records, produce_rules(&m.config))?,
                    durability,
                    timeout_ms,
                })
            })();
            slots.push(Slot {
                topic: t,
                name: name.clone(),
                partition: part.index,
            });
            match checked {
                Ok(append) => {
                    items.push((broker.owner(&append.topic, append.partition), append));
                    item_slots.push(results.len());
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
    }
    if req.acks == 0 {
        let shard_broker = Broker::of(&broker.shard);
        glommio::spawn_local(async move {
            for r in scatter(&shard_broker, items, append, Err).await {
                if let Err(e) = r {
                    tracing::debug!(error = %e.message, "acks=0 append failed");
                }
            }
        })
        .detach();
        return out;
    }
    for (i, a) in item_slots
        .into_iter()
        .zip(scatter(broker, items, append, Err).await)
    {
        results[i] = Some(a);
    }
    let view = broker.cluster_view();
    for (slot, result) in slots.into_iter().zip(results) {
        let result = result.expect("every partition has a result");
        let mut p = partition_response(ctx.version, slot.partition, result);
        if ctx.version >= NEW_LEADER_VERSION {
            point_to_leader!(
                &view,
                &slot.name,
                p.index,
                p.error_code,
                p.current_leader,
                out.node_endpoints,
                true,
                LeaderIdAndEpoch,
                NodeEndpoint
            );
        }
        out.responses[slot.topic].partition_responses.push(p);
    }
    out
}

/// One partition's answer; fields the response `version` lacks stay at their
/// defaults (the codec refuses to encode them otherwise).
fn partition_response(version: i16, index: i32, result: Appended) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok((base_offset, log_append_time_ms, log_start_offset)) => {
            p.base_offset = base_offset;
            p.log_append_time_ms = log_append_time_ms;
            if version >= 5 {
                p.log_start_offset = log_start_offset;
            }
        }
        Err(e) => {
            let (code, message) = kafka_error(&e);
            p.error_code = code;
            if version >= 8 {
                p.error_message = message.map(StrBytes::from_string);
            }
            p.base_offset = -1;
            p.log_append_time_ms = -1;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;

    #[test]
    fn responses_encode_at_every_served_version() {
        for version in APIS[0].min_version..=APIS[0].max_version {
            let mut topic = TopicProduceResponse::default();
            topic.partition_responses = vec![
                partition_response(version, 0, Ok((10, 1_700_000_000_000, 3))),
                partition_response(
                    version,
                    1,
                    Err(WireError::new(ErrorCode::CorruptBatch, "bad crc")),
                ),
            ];
            let out = ProduceResponse::default().with_responses(vec![topic]);
            assert_encodes(&out, version);
        }
    }

    #[test]
    fn not_leader_names_the_leader_from_v10() {
        let view = crate::cluster_view::tests::three_brokers();
        let refused = || {
            partition_response(
                12,
                0,
                Err(WireError::new(ErrorCode::NotLeaderOrFollower, "not here")),
            )
        };
        let mut out = ProduceResponse::default();
        let mut p = refused();
        point_to_leader!(
            &view,
            "t",
            p.index,
            p.error_code,
            p.current_leader,
            out.node_endpoints,
            true,
            LeaderIdAndEpoch,
            NodeEndpoint
        );
        assert_eq!(
            (p.current_leader.leader_id.0, p.current_leader.leader_epoch),
            (2, 7)
        );
        assert_eq!(out.node_endpoints.len(), 1);
        assert_eq!(out.node_endpoints[0].port, 19_092);
        out.responses = vec![TopicProduceResponse::default().with_partition_responses(vec![p])];
        assert_encodes(&out, 12);
        // Other errors name nobody.
        let mut other = partition_response(
            12,
            0,
            Err(WireError::new(ErrorCode::CorruptBatch, "bad crc")),
        );
        let mut endpoints: Vec<NodeEndpoint> = Vec::new();
        point_to_leader!(
            &view,
            "t",
            other.index,
            other.error_code,
            other.current_leader,
            endpoints,
            true,
            LeaderIdAndEpoch,
            NodeEndpoint
        );
        assert_eq!(other.current_leader, LeaderIdAndEpoch::default());
        assert!(endpoints.is_empty());
        let _ = &mut other;
    }
}
