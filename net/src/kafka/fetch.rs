//! Fetch: the native path's read and long poll (`handlers::fetch::gather`), with
//! fetch sessions, topic ids (v13+), and batches served as Kafka RecordBatch v2:
//! batches produced through the Kafka protocol go out as they were stored (the
//! strata header sliced off, no copy of the batch itself); native batches are
//! converted.
//!
//! In a cluster, as Kafka does:
//! - each partition's `current_leader_epoch` (v9+) is fenced against the replica's
//!   (`cluster::client_reads`): FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH;
//! - a consumer fetch from v11 on carries client metadata, so a follower answers it
//!   too, up to the high watermark it knows (KIP-392); the leader names an in-sync
//!   replica in the consumer's `rack_id` as `preferred_read_replica` (without
//!   records, at once) when it is not in that rack itself;
//! - a partition refused with NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH carries
//!   the current leader (v12+) and the response that leader's endpoint (v16+,
//!   KIP-951), from the cluster view.

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use strata_schema::{
    log_append_time_kafka_header, native_to_kafka_into, BatchHeader, ErrorCode, PayloadFormat,
    TimestampType, BATCH_HEADER_BYTES, KAFKA_HEADER_BYTES,
};

use super::errors::{kafka_error, KafkaCode};
use super::fetch_sessions::{FetchSessions, PartitionKey};
use super::metadata::{point_to_leader, topic_name, topic_uuid};
use super::{Ctx, ServedApi};
use crate::cluster::client_reads::{ReadRule, NO_EPOCH_CHECK};
use crate::cluster_config::NodeId;
use crate::cluster_view::{kafka_id, ClusterView};
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

/// The first fetch version whose requests carry client metadata (a rack id): from it
/// on, a follower answers consumers (KIP-392).
const CLIENT_METADATA_VERSION: i16 = 11;
/// The first fetch version with a partition's current leader (KIP-951).
const CURRENT_LEADER_VERSION: i16 = 12;
/// The first fetch version with the leaders' node endpoints (KIP-951).
const NODE_ENDPOINTS_VERSION: i16 = 16;

/// The in-sync replica in `rack` a consumer there should read `topic`-`partition`
/// from, when this broker leads it (by `view`) and is in another rack.
fn preferred_read_replica(
    view: &ClusterView,
    topic: &str,
    partition: u32,
    rack: &str,
) -> Option<NodeId> {
    if rack.is_empty() || !view.is_local_leader(topic, partition) {
        return None;
    }
    let in_rack = |id: &NodeId| {
        view.broker(*id)
            .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(rack))
    };
    if in_rack(&view.local) {
        return None;
    }
    let p = view.partition(topic, partition)?;
    p.isr
        .iter()
        .copied()
        .find(|id| *id != view.local && in_rack(id))
}

pub(crate) async fn handle(ctx: &Ctx, req: FetchRequest) -> FetchResponse {
    let by_id = ctx.version >= 13;
    let topics = ctx.broker.topics();
    let view = ctx.broker.cluster_view();
    let replica_id = if ctx.version >= 15 {
        req.replica_state.replica_id
    } else {
        req.replica_id
    };
    let follower_ok = ctx.version >= CLIENT_METADATA_VERSION && replica_id.0 < 0;
    let rack = if follower_ok {
        req.rack_id.as_str()
    } else {
        ""
    };
    // The epoch each partition named in this request was fetched at (partitions a
    // session carries from earlier requests are not checked).
    let mut epochs: HashMap<PartitionKey, i32> = HashMap::new();
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
            epochs.insert((name.clone(), p.partition), p.current_leader_epoch);
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
        .map(|(key, offset, max_bytes)| Wanted {
            topic: key.0.clone(),
            // Negative partitions can't exist; u32::MAX is rejected by the log lookup.
            partition: u32::try_from(key.1).unwrap_or(u32::MAX),
            fetch_offset: *offset,
            max_bytes: usize::try_from(*max_bytes).unwrap_or(0),
            rule: ReadRule {
                current_leader_epoch: epochs.get(key).copied().unwrap_or(NO_EPOCH_CHECK),
                follower_ok,
            },
        })
        .collect();
    let redirects: Vec<Option<NodeId>> = wanted
        .iter()
        .map(|w| preferred_read_replica(&view, &w.topic, w.partition, rack))
        .collect();
    // A redirect is answered at once (as Kafka does), without waiting for min_bytes.
    let min_bytes = if redirects.iter().any(Option::is_some) {
        0
    } else {
        usize::try_from(req.min_bytes).unwrap_or(0)
    };
    let fetched = gather(
        &ctx.broker,
        &wanted,
        min_bytes,
        usize::try_from(req.max_bytes).unwrap_or(0),
        u32::try_from(req.max_wait_ms)
            .unwrap_or(0)
            .min(MAX_WAIT_MS_MAX),
    )
    .await;
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    for (((key, _, _), f), redirect) in plan.partitions.iter().zip(fetched).zip(redirects) {
        let log_append_time = topics
            .get(&key.0)
            .is_some_and(|t| t.config.timestamp_type == TimestampType::LogAppendTime);
        let (mut data, mut news) = partition_data(ctx.version, key.1, f, log_append_time);
        if let Some(to) = redirect.filter(|_| data.error_code == 0) {
            data.records = Some(Bytes::new());
            data.preferred_read_replica = BrokerId(kafka_id(to));
            news = true;
        }
        if ctx.version >= CURRENT_LEADER_VERSION {
            point_to_leader!(
                &view,
                &key.0,
                key.1,
                data.error_code,
                data.current_leader,
                endpoints,
                ctx.version >= NODE_ENDPOINTS_VERSION,
                LeaderIdAndEpoch,
                NodeEndpoint
            );
        }
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
    out.node_endpoints = endpoints;
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

    #[test]
    fn a_leader_in_another_rack_names_a_replica_in_the_consumers() {
        use crate::cluster_view::PartitionView;
        let mut view = crate::cluster_view::tests::three_brokers();
        view.set_partition(
            "r",
            0,
            PartitionView {
                leader: Some(1),
                leader_epoch: 3,
                replicas: vec![1, 2, 3],
                isr: vec![1, 3, 2],
                offline: vec![],
            },
        );
        assert_eq!(preferred_read_replica(&view, "r", 0, "rack-2"), Some(2));
        assert_eq!(
            preferred_read_replica(&view, "r", 0, "rack-1"),
            None,
            "leader's rack"
        );
        assert_eq!(preferred_read_replica(&view, "r", 0, "elsewhere"), None);
        assert_eq!(preferred_read_replica(&view, "r", 0, ""), None, "no rack");
        // Not led here: only the leader redirects.
        assert_eq!(preferred_read_replica(&view, "t", 0, "rack-1"), None);
        // Out of sync replicas are not named.
        view.set_partition(
            "r",
            0,
            PartitionView {
                leader: Some(1),
                leader_epoch: 3,
                replicas: vec![1, 2, 3],
                isr: vec![1, 3],
                offline: vec![],
            },
        );
        assert_eq!(preferred_read_replica(&view, "r", 0, "rack-2"), None);
        assert_eq!(preferred_read_replica(&view, "r", 0, "rack-3"), Some(3));
    }

    #[test]
    fn a_refused_partition_names_the_current_leader() {
        let view = crate::cluster_view::tests::three_brokers();
        let mut endpoints: Vec<NodeEndpoint> = Vec::new();
        let mut data = PartitionData::default()
            .with_partition_index(0)
            .with_error_code(KafkaCode::NotLeaderOrFollower.code());
        for _ in 0..2 {
            point_to_leader!(
                &view,
                "t",
                data.partition_index,
                data.error_code,
                data.current_leader,
                endpoints,
                true,
                LeaderIdAndEpoch,
                NodeEndpoint
            );
        }
        assert_eq!(
            (
                data.current_leader.leader_id,
                data.current_leader.leader_epoch
            ),
            (BrokerId(2), 7)
        );
        assert_eq!(endpoints.len(), 1, "one endpoint per leader");
        assert_eq!(endpoints[0].port, 19_092);
        assert_eq!(
            endpoints[0].rack.as_ref().map(|r| r.as_str()),
            Some("rack-2")
        );
        let out = FetchResponse::default()
            .with_responses(vec![FetchableTopicResponse::default()
                .with_topic_id(uuid::Uuid::from_bytes([1; 16]))
                .with_partitions(vec![data])])
            .with_node_endpoints(endpoints);
        assert_encodes(&out, 16);
        // No leader known: nothing to point to.
        let mut none = PartitionData::default()
            .with_partition_index(1)
            .with_error_code(KafkaCode::NotLeaderOrFollower.code());
        let mut endpoints: Vec<NodeEndpoint> = Vec::new();
        point_to_leader!(
            &view,
            "t",
            none.partition_index,
            none.error_code,
            none.current_leader,
            endpoints,
            true,
            LeaderIdAndEpoch,
            NodeEndpoint
        );
        assert_eq!(none.current_leader, LeaderIdAndEpoch::default());
        assert!(endpoints.is_empty());
    }
}
