//! Request bodies the client encodes and response bodies it decodes: pure functions
//! from Rust values to flatbuffers and back, no I/O, so they are tested without a
//! socket. Broker error codes become [`ClientError::Broker`] with the broker's message.

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use strata_schema::protocol as fb;
use strata_schema::ApiKey;

use crate::error::{ClientError, Result};

/// Verifies and returns the root table of a response body.
fn root<'a, T>(api: ApiKey, body: &'a [u8]) -> Result<T::Inner>
where
    T: flatbuffers::Follow<'a> + flatbuffers::Verifiable + 'a,
{
    flatbuffers::root::<T>(body)
        .map_err(|e| ClientError::Protocol(format!("{} response does not decode: {e}", api.name())))
}

/// `Ok` for an absent error or code 0, else the typed broker error.
pub(crate) fn check(api: ApiKey, error: Option<fb::Error<'_>>) -> Result<()> {
    match error {
        None => Ok(()),
        Some(e) => ClientError::check(api, e.code(), e.message()),
    }
}

fn configs<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    entries: &[(&str, Option<&str>)],
) -> WIPOffset<flatbuffers::Vector<'b, flatbuffers::ForwardsUOffset<fb::ConfigEntry<'b>>>> {
    let entries: Vec<_> = entries
        .iter()
        .map(|(key, value)| {
            let key = fbb.create_string(key);
            let value = value.map(|v| fbb.create_string(v));
            fb::ConfigEntry::create(
                fbb,
                &fb::ConfigEntryArgs {
                    key: Some(key),
                    value,
                },
            )
        })
        .collect();
    fbb.create_vector(&entries)
}

// ---- Metadata ----------------------------------------------------------------

/// One partition as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDescription {
    pub partition: u32,
    /// The leader's broker id; -1 while none leads (an election is under way).
    pub leader_broker: i32,
    pub leader_shard: u32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    /// The partition's own error (e.g. fenced), if any.
    pub error: Option<String>,
    /// The leader's epoch (its Raft term); -1 = not known.
    pub leader_epoch: i32,
    /// Broker ids holding the partition, preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas, the leader included.
    pub isr: Vec<i32>,
    /// Replicas whose broker or log is down.
    pub offline: Vec<i32>,
    /// Records each of `replicas` is behind the leader (-1 = not known); empty unless
    /// the answering broker leads the partition.
    pub replica_lag: Vec<i64>,
}

/// One broker as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerDescription {
    pub id: i32,
    pub host: String,
    /// Its native listener's port.
    pub port: u16,
    pub rack: Option<String>,
    /// Shards (cores); 0 = not known.
    pub shards: u32,
    /// Fenced by the controller (silent too long): listed, but leads nothing.
    pub fenced: bool,
}

impl BrokerDescription {
    /// `host:port` of its native listener.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The whole of a Metadata response: the cluster and the topics asked for.
#[derive(Clone, Debug)]
pub struct ClusterDescription {
    /// `None` when the broker does not know it yet.
    pub cluster_id: Option<String>,
    /// The active controller's broker id; -1 = none now.
    pub controller: i32,
    /// Every registered broker, by id.
    pub brokers: Vec<BrokerDescription>,
    /// Each topic asked for: a topic the broker answered with an error (unknown, ...)
    /// is `Err` under its name.
    pub topics: Vec<(String, Result<TopicDescription>)>,
}

/// One topic as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub internal: bool,
    pub partitions: Vec<PartitionDescription>,
    /// Effective value of every topic config; `None` = unset.
    pub configs: Vec<(String, Option<String>)>,
}

impl TopicDescription {
    /// The effective value of one config key.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.configs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

pub(crate) fn encode_metadata(topics: Option<&[&str]>, include_internal: bool) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let topics = topics.map(|names| {
        let names: Vec<_> = names.iter().map(|n| fbb.create_string(n)).collect();
        fbb.create_vector(&names)
    });
    let req = fb::MetadataRequest::create(
        &mut fbb,
        &fb::MetadataRequestArgs {
            topics,
            include_internal,
        },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

/// Every topic of a Metadata response: a topic the broker answered with an error
/// (unknown, ...) is `Err` under its name.
pub(crate) fn decode_metadata(body: &[u8]) -> Result<Vec<(String, Result<TopicDescription>)>> {
    Ok(decode_cluster(body)?.topics)
}

fn ints(v: Option<flatbuffers::Vector<'_, i32>>) -> Vec<i32> {
    v.map(|v| v.iter().collect()).unwrap_or_default()
}

/// A whole Metadata response.
pub(crate) fn decode_cluster(body: &[u8]) -> Result<ClusterDescription> {
    let resp = root::<fb::MetadataResponse>(ApiKey::Metadata, body)?;
    let mut brokers: Vec<BrokerDescription> = resp
        .brokers()
        .iter()
        .flatten()
        .map(|b| BrokerDescription {
            id: b.id(),
            host: b.host().unwrap_or_default().to_owned(),
            port: b.port(),
            rack: b.rack().map(str::to_owned),
            shards: b.shards(),
            fenced: b.fenced(),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let mut topics = Vec::new();
    for topic in resp.topics().iter().flatten() {
        let name = topic.name().to_owned();
        if let Err(e) = check(ApiKey::Metadata, topic.error()) {
            topics.push((name, Err(e)));
            continue;
        }
        let mut partitions: Vec<PartitionDescription> = topic
            .partitions()
            .iter()
            .flatten()
            .map(|p| PartitionDescription {
                partition: p.partition(),
                leader_broker: p.leader_broker(),
                leader_shard: p.leader_shard(),
                log_start_offset: p.log_start_offset(),
                high_watermark: p.high_watermark(),
                size_bytes: p.size_bytes(),
                error: check(ApiKey::Metadata, p.error())
                    .err()
                    .map(|e| e.to_string()),
                leader_epoch: p.leader_epoch(),
                replicas: ints(p.replicas()),
                isr: ints(p.isr()),
                offline: ints(p.offline()),
                replica_lag: p
                    .replica_lag()
                    .map(|v| v.iter().collect())
                    .unwrap_or_default(),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        let configs = topic
            .configs()
            .iter()
            .flatten()
            .map(|c| (c.key().to_owned(), c.value().map(str::to_owned)))
            .collect();
        topics.push((
            name.clone(),
            Ok(TopicDescription {
                name,
                internal: topic.internal(),
                partitions,
                configs,
            }),
        ));
    }
    Ok(ClusterDescription {
        cluster_id: resp.cluster_id().map(str::to_owned),
        controller: resp.controller(),
        brokers,
        topics,
    })
}

// ---- topic administration ---------------------------------------------------

pub(crate) fn encode_create_topics(
    name: &str,
    partitions: u32,
    replication_factor: Option<u16>,
    config: &[(&str, Option<&str>)],
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let name = fbb.create_string(name);
    let configs = configs(&mut fbb, config);
    let req = fb::CreateTopicsRequest::create(
        &mut fbb,
        &fb::CreateTopicsRequestArgs {
            name: Some(name),
            partitions,
            configs: Some(configs),
            validate_only: false,
            replication_factor: replication_factor.map_or(-1, |r| r.min(i16::MAX as u16) as i16),
        },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

pub(crate) fn decode_create_topics(body: &[u8]) -> Result<()> {
    let resp = root::<fb::CreateTopicsResponse>(ApiKey::CreateTopics, body)?;
    check(ApiKey::CreateTopics, resp.error())
}

pub(crate) fn encode_delete_topics(names: &[&str]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let names: Vec<_> = names.iter().map(|n| fbb.create_string(n)).collect();
    let names = fbb.create_vector(&names);
    let req = fb::DeleteTopicsRequest::create(
        &mut fbb,
        &fb::DeleteTopicsRequestArgs { names: Some(names) },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

pub(crate) fn decode_delete_topics(body: &[u8]) -> Result<Vec<(String, Result<()>)>> {
    let resp = root::<fb::DeleteTopicsResponse>(ApiKey::DeleteTopics, body)?;
    Ok(resp
        .results()
        .iter()
        .flatten()
        .map(|r| {
            (
                r.name().unwrap_or_default().to_owned(),
                check(ApiKey::DeleteTopics, r.error()),
            )
        })
        .collect())
}

pub(crate) fn encode_create_partitions(name: &str, total_partitions: u32) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let name = fbb.create_string(name);
    let req = fb::CreatePartitionsRequest::create(
        &mut fbb,
        &fb::CreatePartitionsRequestArgs {
            name: Some(name),
            total_partitions,
        },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

pub(crate) fn decode_create_partitions(body: &[u8]) -> Result<()> {
    let resp = root::<fb::CreatePartitionsResponse>(ApiKey::CreatePartitions, body)?;
    check(ApiKey::CreatePartitions, resp.error())
}

pub(crate) fn encode_alter_configs(name: &str, config: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let name = fbb.create_string(name);
    let configs = configs(&mut fbb, config);
    let req = fb::AlterConfigsRequest::create(
        &mut fbb,
        &fb::AlterConfigsRequestArgs {
            name: Some(name),
            configs: Some(configs),
            validate_only: false,
        },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

pub(crate) fn decode_alter_configs(body: &[u8]) -> Result<()> {
    let resp = root::<fb::AlterConfigsResponse>(ApiKey::AlterConfigs, body)?;
    check(ApiKey::AlterConfigs, resp.error())
}

// ---- Produce ----------------------------------------------------------------------

/// `(partition, bytes of its batches in the tail)`, in tail order.
pub(crate) fn encode_produce(
    topic: &str,
    acks: i8,
    timeout_ms: u32,
    partitions: &[(u32, u32)],
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let topic = fbb.create_string(topic);
    let parts: Vec<_> = partitions
        .iter()
        .map(|&(partition, batch_bytes)| {
            fb::ProducePartition::create(
                &mut fbb,
                &fb::ProducePartitionArgs {
                    partition,
                    batch_bytes,
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let req = fb::ProduceRequest::create(
        &mut fbb,
        &fb::ProduceRequestArgs {
            topic: Some(topic),
            acks,
            timeout_ms,
            partitions: Some(parts),
        },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

/// Where one partition's batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub base_offset: i64,
    /// `-1` unless the topic uses log-append time.
    pub log_append_time_ms: i64,
}

pub(crate) fn decode_produce(body: &[u8]) -> Result<Vec<(u32, Result<Appended>)>> {
    let resp = root::<fb::ProduceResponse>(ApiKey::Produce, body)?;
    Ok(resp
        .results()
        .iter()
        .flatten()
        .map(|r| {
            let result = check(ApiKey::Produce, r.error()).map(|()| Appended {
                base_offset: r.base_offset(),
                log_append_time_ms: r.log_append_time_ms(),
            });
            (r.partition(), result)
        })
        .collect())
}

// ---- InitProducerId ---------------------------------------------------------------

pub(crate) fn encode_init_producer_id() -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let req = fb::InitProducerIdRequest::create(
        &mut fbb,
        &fb::InitProducerIdRequestArgs {
            producer_id: -1,
            producer_epoch: -1,
        },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

/// The producer id and epoch handed out.
pub(crate) fn decode_init_producer_id(body: &[u8]) -> Result<(i64, i16)> {
    let resp = root::<fb::InitProducerIdResponse>(ApiKey::InitProducerId, body)?;
    check(ApiKey::InitProducerId, resp.error())?;
    if resp.producer_id() < 0 || resp.producer_epoch() < 0 {
        return Err(ClientError::Protocol(format!(
            "InitProducerId answered producer id {} epoch {}",
            resp.producer_id(),
            resp.producer_epoch()
        )));
    }
    Ok((resp.producer_id(), resp.producer_epoch()))
}

// ---- Fetch ------------------------------------------------------------------------

/// One partition to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FetchPartition<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub fetch_offset: i64,
    pub max_bytes: u32,
}

pub(crate) fn encode_fetch(
    max_wait_ms: u32,
    min_bytes: u32,
    max_bytes: u32,
    partitions: &[FetchPartition<'_>],
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let parts: Vec<_> = partitions
        .iter()
        .map(|p| {
            let topic = fbb.create_string(p.topic);
            fb::FetchPartition::create(
                &mut fbb,
                &fb::FetchPartitionArgs {
                    topic: Some(topic),
                    partition: p.partition,
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.max_bytes,
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let req = fb::FetchRequest::create(
        &mut fbb,
        &fb::FetchRequestArgs {
            max_wait_ms,
            min_bytes,
            max_bytes,
            partitions: Some(parts),
        },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

/// One partition's part of a Fetch response; its batches are the next `batch_bytes`
/// of the tail.
#[derive(Clone, Debug)]
pub(crate) struct FetchResult {
    pub topic: String,
    pub partition: u32,
    pub result: Result<()>,
    pub high_watermark: i64,
    pub batch_bytes: u32,
}

pub(crate) fn decode_fetch(body: &[u8]) -> Result<Vec<FetchResult>> {
    let resp = root::<fb::FetchResponse>(ApiKey::Fetch, body)?;
    Ok(resp
        .results()
        .iter()
        .flatten()
        .map(|r| FetchResult {
            topic: r.topic().unwrap_or_default().to_owned(),
            partition: r.partition(),
            result: check(ApiKey::Fetch, r.error()),
            high_watermark: r.high_watermark(),
            batch_bytes: r.batch_bytes(),
        })
        .collect())
}

// ---- ListOffsets --------------------------------------------------------------------

/// The wire value for "the earliest offset" in ListOffsets.
pub(crate) const LIST_OFFSETS_EARLIEST: i64 = -2;
/// The wire value for "the next offset to be written" in ListOffsets.
pub(crate) const LIST_OFFSETS_LATEST: i64 = -1;

pub(crate) fn encode_list_offsets(partitions: &[(&str, u32, i64)]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let parts: Vec<_> = partitions
        .iter()
        .map(|&(topic, partition, timestamp_ms)| {
            let topic = fbb.create_string(topic);
            fb::ListOffsetsPartition::create(
                &mut fbb,
                &fb::ListOffsetsPartitionArgs {
                    topic: Some(topic),
                    partition,
                    timestamp_ms,
                },
            )
        })
        .collect();
    let parts = fbb.create_vector(&parts);
    let req = fb::ListOffsetsRequest::create(
        &mut fbb,
        &fb::ListOffsetsRequestArgs {
            partitions: Some(parts),
        },
    );
    fbb.finish_minimal(req);
    fbb.finished_data().to_vec()
}

/// `(topic, partition, Ok((offset, timestamp_ms)))` per answered partition.
pub(crate) type ListedOffset = (String, u32, Result<(i64, i64)>);

pub(crate) fn decode_list_offsets(body: &[u8]) -> Result<Vec<ListedOffset>> {
    let resp = root::<fb::ListOffsetsResponse>(ApiKey::ListOffsets, body)?;
    Ok(resp
        .results()
        .iter()
        .flatten()
        .map(|r| {
            (
                r.topic().unwrap_or_default().to_owned(),
                r.partition(),
                check(ApiKey::ListOffsets, r.error()).map(|()| (r.offset(), r.timestamp_ms())),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_schema::ErrorCode;

    fn error<'b>(
        fbb: &mut FlatBufferBuilder<'b>,
        code: ErrorCode,
        message: &str,
    ) -> WIPOffset<fb::Error<'b>> {
        let message = fbb.create_string(message);
        fb::Error::create(
            fbb,
            &fb::ErrorArgs {
                code: code as i16,
                message: Some(message),
            },
        )
    }

    #[test]
    fn produce_request_roundtrips_and_response_maps_errors() {
        let body = encode_produce("orders", -1, 30_000, &[(0, 100), (3, 250)]);
        let req = flatbuffers::root::<fb::ProduceRequest>(&body).unwrap();
        assert_eq!(req.topic(), "orders");
        assert_eq!(req.acks(), -1);
        let parts: Vec<_> = req
            .partitions()
            .unwrap()
            .iter()
            .map(|p| (p.partition(), p.batch_bytes()))
            .collect();
        assert_eq!(parts, vec![(0, 100), (3, 250)]);

        let mut fbb = FlatBufferBuilder::new();
        let err = error(
            &mut fbb,
            ErrorCode::MessageTooLarge,
            "batch of 2 MiB over 1 MiB",
        );
        let ok = fb::ProducePartitionResult::create(
            &mut fbb,
            &fb::ProducePartitionResultArgs {
                partition: 0,
                error: None,
                base_offset: 41,
                log_append_time_ms: -1,
                log_start_offset: 0,
            },
        );
        let bad = fb::ProducePartitionResult::create(
            &mut fbb,
            &fb::ProducePartitionResultArgs {
                partition: 3,
                error: Some(err),
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
            },
        );
        let results = fbb.create_vector(&[ok, bad]);
        let resp = fb::ProduceResponse::create(
            &mut fbb,
            &fb::ProduceResponseArgs {
                topic: None,
                results: Some(results),
            },
        );
        fbb.finish_minimal(resp);
        let decoded = decode_produce(fbb.finished_data()).unwrap();
        assert_eq!(decoded[0].0, 0);
        assert_eq!(decoded[0].1.as_ref().unwrap().base_offset, 41);
        assert_eq!(decoded[1].0, 3);
        let e = decoded[1].1.as_ref().unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::MessageTooLarge));
        assert!(e.to_string().contains("batch of 2 MiB over 1 MiB"));
    }

    #[test]
    fn metadata_decodes_topics_partitions_and_topic_errors() {
        let mut fbb = FlatBufferBuilder::new();
        let p1 = fb::PartitionInfo::create(
            &mut fbb,
            &fb::PartitionInfoArgs {
                partition: 1,
                high_watermark: 10,
                size_bytes: 999,
                ..Default::default()
            },
        );
        let p0 = fb::PartitionInfo::create(
            &mut fbb,
            &fb::PartitionInfoArgs {
                partition: 0,
                log_start_offset: 5,
                high_watermark: 7,
                ..Default::default()
            },
        );
        let parts = fbb.create_vector(&[p1, p0]);
        let cfg = configs(&mut fbb, &[("retention.ms", Some("1000")), ("x", None)]);
        let name = fbb.create_string("a");
        let a = fb::TopicInfo::create(
            &mut fbb,
            &fb::TopicInfoArgs {
                name: Some(name),
                partitions: Some(parts),
                configs: Some(cfg),
                ..Default::default()
            },
        );
        let err = error(&mut fbb, ErrorCode::UnknownTopic, "no topic `b`");
        let name = fbb.create_string("b");
        let b = fb::TopicInfo::create(
            &mut fbb,
            &fb::TopicInfoArgs {
                name: Some(name),
                error: Some(err),
                ..Default::default()
            },
        );
        let topics = fbb.create_vector(&[a, b]);
        let resp = fb::MetadataResponse::create(
            &mut fbb,
            &fb::MetadataResponseArgs {
                brokers: None,
                topics: Some(topics),
                ..Default::default()
            },
        );
        fbb.finish_minimal(resp);
        let topics = decode_metadata(fbb.finished_data()).unwrap();
        let a = topics[0].1.as_ref().unwrap();
        assert_eq!(a.partitions.len(), 2);
        assert_eq!(a.partitions[0].partition, 0, "sorted by partition");
        assert_eq!(a.partitions[0].log_start_offset, 5);
        assert_eq!(a.partitions[1].size_bytes, 999);
        assert_eq!(a.config("retention.ms"), Some("1000"));
        assert_eq!(a.config("x"), None);
        let e = topics[1].1.as_ref().unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
    }

    #[test]
    fn garbage_body_is_a_protocol_error() {
        let e = decode_fetch(&[1, 2, 3]).unwrap_err();
        assert!(matches!(e, ClientError::Protocol(_)), "{e:?}");
    }

    #[test]
    fn fetch_and_list_offsets_requests_roundtrip() {
        let body = encode_fetch(
            100,
            1,
            1 << 20,
            &[FetchPartition {
                topic: "t",
                partition: 2,
                fetch_offset: 17,
                max_bytes: 4096,
            }],
        );
        let req = flatbuffers::root::<fb::FetchRequest>(&body).unwrap();
        assert_eq!(req.max_wait_ms(), 100);
        let p = req.partitions().unwrap().get(0);
        assert_eq!((p.topic(), p.partition(), p.fetch_offset()), ("t", 2, 17));

        let body = encode_list_offsets(&[("t", 1, LIST_OFFSETS_EARLIEST)]);
        let req = flatbuffers::root::<fb::ListOffsetsRequest>(&body).unwrap();
        assert_eq!(req.partitions().unwrap().get(0).timestamp_ms(), -2);
    }
}
