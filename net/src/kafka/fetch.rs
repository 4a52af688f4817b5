//! Fetch: the native path's read and long poll (`handlers::fetch::gather`), with
//! fetch sessions, topic ids (v13+), and batches served as Kafka RecordBatch v2:
//! batches produced through the Kafka protocol go out as they were stored (the
//! strata header sliced off, no copy of the batch itself); native batches are
//! converted.

use std::cell::RefCell;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use strata_schema::{
    log_append_time_kafka_header, native_to_kafka_into, BatchHeader, ErrorCode, PayloadFormat,
    TimestampType, BATCH_HEADER_BYTES, KAFKA_HEADER_BYTES,
};

use super::errors::{kafka_error, KafkaCode};
use super::fetch_sessions::{FetchSessions, PartitionKey};
use super::metadata::{topic_name, topic_uuid};
use super::{Ctx, ServedApi};
use crate::errors::WireError;
use crate::handlers::fetch::{gather, Fetched, Wanted, MAX_WAIT_MS_MAX};

/// The apis of this file.
pub(crate) const APIS: &[ServedApi] = &[ServedApi::new(ApiKey::Fetch, 4, 16)];

thread_local! {
    /// This shard's fetch sessions (a shard is a thread).
    static SESSIONS: RefCell<FetchSessions> = RefCell::new(FetchSessions::default());
}

/// Appends one stored batch to `out` as Kafka consumers read it. On a
/// LogAppendTime topic the batch's timestamp becomes its append time: the Kafka
/// header is replaced (its CRC patched without reading the records) and native
/// batches are converted with that timestamp type.
fn push_kafka_batch(
    batch: &Bytes,
    log_append_time: bool,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let corrupt = |e: strata_schema::BatchError| {
        WireError::new(
            ErrorCode::CorruptBatch,
            format!("stored batch does not serve as a Kafka batch: {e}"),
        )
    };
    let header = BatchHeader::decode(batch).map_err(corrupt)?;
    match header.payload_format {
        PayloadFormat::Kafka => {
            let kafka = &batch[BATCH_HEADER_BYTES..];
            if log_append_time {
                let head = log_append_time_kafka_header(kafka, header.log_append_time_ms)
                    .map_err(corrupt)?;
                out.extend_from_slice(&head);
                out.extend_from_slice(&kafka[KAFKA_HEADER_BYTES..]);
            } else {
                out.extend_from_slice(kafka);
            }
        }
        PayloadFormat::Native => {
            let timestamp_type = if log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            };
            native_to_kafka_into(batch, timestamp_type, out).map_err(corrupt)?;
        }
    }
    Ok(())
}

/// The records field of one partition: its batches back to back. One Kafka batch
/// on a CreateTime topic is served from the engine's buffer without a copy.
fn records(batches: &[Bytes], log_append_time: bool) -> Result<Option<Bytes>, WireError> {
    if let [one] = batches {
        if !log_append_time
            && BatchHeader::decode(one).is_ok_and(|h| h.payload_format == PayloadFormat::Kafka)
        {
            return Ok(Some(one.slice(BATCH_HEADER_BYTES..)));
        }
    }
    if batches.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(batches.iter().map(Bytes::len).sum());
    for b in batches {
        push_kafka_batch(b, log_append_time, &mut out)?;
    }
    Ok(Some(Bytes::from(out)))
}

pub(crate) async fn handle(ctx: &Ctx, req: FetchRequest) -> FetchResponse {
    let by_id = ctx.version >= 13;
    let topics = ctx.broker.topics();
    // Resolve topic ids to names; unknown ids are answered per partition.
    let mut unknown_ids: Vec<(uuid::Uuid, i32)> = Vec::new();
    let mut wanted_keys = Vec::new();
    for t in &req.topics {
        let name = if by_id {
            match topics.by_id(t.topic_id.as_bytes()) {
                Some(m) => m.name.clone(),
                None => {
                    unknown_ids.extend(t.partitions.iter().map(|p| (t.topic_id, p.partition)));
                    continue;
                }
            }
        } else {
            t.topic.0.as_str().to_owned()
        };
        for p in &t.partitions {
            wanted_keys.push((
                (name.clone(), p.partition),
                p.fetch_offset,
                p.partition_max_bytes,
            ));
        }
    }
    let forgotten: Vec<PartitionKey> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|f| {
            let name = if by_id {
                topics.by_id(f.topic_id.as_bytes()).map(|m| m.name.clone())
            } else {
                Some(f.topic.0.as_str().to_owned())
            };
            name.into_iter()
                .flat_map(move |n| f.partitions.iter().map(move |p| (n.clone(), *p)))
        })
        .collect();
    let mut out = FetchResponse::default();
    let plan = SESSIONS.with(|s| {
        s.borrow_mut().plan(
            req.session_id,
            req.session_epoch,
            crate::group_host::now_ms(),
            wanted_keys,
            forgotten,
        )
    });
    let plan = match plan {
        Ok(plan) => plan,
        Err(code) => {
            out.error_code = code.code();
            out.session_id = req.session_id;
            return out;
        }
    };
    out.session_id = plan.session_id;
    let wanted: Vec<Wanted> = plan
        .partitions
        .iter()
        .map(|((topic, partition), offset, max_bytes)| Wanted {
            topic: topic.clone(),
            // Negative partitions can't exist; u32::MAX is rejected by the log lookup.
            partition: u32::try_from(*partition).unwrap_or(u32::MAX),
            fetch_offset: *offset,
            max_bytes: usize::try_from(*max_bytes).unwrap_or(0),
        })
        .collect();
    let fetched = gather(
        &ctx.broker,
        &wanted,
        usize::try_from(req.min_bytes).unwrap_or(0),
        usize::try_from(req.max_bytes).unwrap_or(0),
        u32::try_from(req.max_wait_ms)
            .unwrap_or(0)
            .min(MAX_WAIT_MS_MAX),
    )
    .await;
    for ((key, _, _), f) in plan.partitions.iter().zip(fetched) {
        let log_append_time = topics
            .get(&key.0)
            .is_some_and(|t| t.config.timestamp_type == TimestampType::LogAppendTime);
        let (data, news) = partition_data(ctx.version, key.1, f, log_append_time);
        // Every partition sent is remembered by its session; an incremental
        // response leaves out the ones without news.
        let is_news = plan.session_id == 0
            || SESSIONS.with(|s| {
                s.borrow_mut().sent(
                    plan.session_id,
                    key,
                    news,
                    data.high_watermark,
                    data.log_start_offset,
                )
            });
        let keep = !plan.incremental || is_news;
        if !keep {
            continue;
        }
        topic_response(&mut out, &key.0, &topics, by_id)
            .partitions
            .push(data);
    }
    for (id, partition) in unknown_ids {
        let mut t = FetchableTopicResponse::default().with_topic_id(id);
        t.partitions.push(
            PartitionData::default()
                .with_partition_index(partition)
                .with_error_code(KafkaCode::UnknownTopicId.code())
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1),
        );
        out.responses.push(t);
    }
    out
}

/// The response entry of `topic`, added at the end if it is not the last one.
fn topic_response<'a>(
    out: &'a mut FetchResponse,
    topic: &str,
    topics: &crate::metadata::Topics,
    by_id: bool,
) -> &'a mut FetchableTopicResponse {
    let same = out.responses.last().is_some_and(|t| {
        if by_id {
            topics
                .get(topic)
                .is_some_and(|m| t.topic_id == topic_uuid(&m.id))
        } else {
            t.topic.0.as_str() == topic
        }
    });
    if !same {
        // Names up to v12, ids from v13.
        let mut t = FetchableTopicResponse::default();
        if by_id {
            if let Some(m) = topics.get(topic) {
                t.topic_id = topic_uuid(&m.id);
            }
        } else {
            t.topic = topic_name(topic);
        }
        out.responses.push(t);
    }
    out.responses.last_mut().expect("just pushed")
}

/// One partition's answer, and whether it carries records or an error.
/// Fields the response `version` lacks stay at their defaults (the codec refuses to
/// encode them otherwise).
fn partition_data(
    version: i16,
    partition: i32,
    f: Fetched,
    log_append_time: bool,
) -> (PartitionData, bool) {
    let mut data = PartitionData::default().with_partition_index(partition);
    let records = match &f.error {
        Some(_) => Err(f.error.clone().expect("checked")),
        None => records(&f.batches, log_append_time),
    };
    match records {
        Ok(records) => {
            let news = records.is_some();
            data.high_watermark = f.high_watermark;
            data.last_stable_offset = f.high_watermark;
            if version >= 5 {
                data.log_start_offset = f.log_start_offset;
            }
            data.records = Some(records.unwrap_or_default());
            (data, news)
        }
        Err(e) => {
            let (code, _) = kafka_error(&e);
            data.error_code = code;
            data.high_watermark = -1;
            data.last_stable_offset = -1;
            data.records = Some(Bytes::new());
            (data, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::assert_encodes;

    #[test]
    fn responses_encode_at_every_served_version() {
        let mut b = strata_schema::KafkaBatchBuilder::new();
        b.push(1, Some(b"k"), Some(b"v"), &[]);
        let mut stored = strata_schema::wrap_kafka_batch(&b.build()).unwrap();
        strata_schema::stamp_base_offset(&mut stored, 7);
        for version in APIS[0].min_version..=APIS[0].max_version {
            let fetched = Fetched {
                batches: vec![Bytes::from(stored.clone())],
                high_watermark: 8,
                log_start_offset: 2,
                log_end_offset: 8,
                error: None,
            };
            let failed = Fetched::failed(crate::broker::unknown_topic("x"));
            let mut topic = FetchableTopicResponse::default();
            topic
                .partitions
                .push(partition_data(version, 0, fetched, false).0);
            topic
                .partitions
                .push(partition_data(version, 1, failed, false).0);
            if version >= 13 {
                topic.topic_id = uuid::Uuid::from_bytes([1; 16]);
            } else {
                topic.topic = topic_name("t");
            }
            let mut out = FetchResponse::default().with_responses(vec![topic]);
            if version >= 7 {
                out.session_id = 3;
            }
            assert_encodes(&out, version);
        }
    }
}
