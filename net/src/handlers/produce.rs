//! Produce: split the tail per partition (`batch_bytes`) and into batches, send each
//! partition's batches to its owner shard, append them in order, and answer per
//! partition.
//!
//! acks: 1 waits until the batches are written, -1 (all) until they are durable; 0
//! starts the appends and answers at once without offsets. Every batch is validated
//! fully, once, before any of its partition is appended (so acks 0 still hears about
//! bad batches): CRC, structure, dense offsets, and a key on every record of a
//! compacted topic (INVALID_RECORD otherwise, as Kafka answers).
//!
//! Copies: the connection reads each partition's bytes into their own buffer. A
//! partition carrying one batch (the usual case) hands that buffer to the engine as
//! it is; it then moves to the owner shard and into the engine's write queue and
//! tail cache without further copies (the engine's one copy is into its aligned
//! O_DIRECT write buffer). A partition carrying several batches has each batch
//! copied once into its own buffer, because the engine owns exactly one batch per
//! append.
//!
//! Order: requests are handled concurrently, but each one's appends are queued on
//! the owner shard in request order (tasks start in spawn order and cross-shard
//! calls are FIFO), and a partition's batches are appended one after another.

use std::rc::Rc;
use std::time::Duration;

use flatbuffers::FlatBufferBuilder;
use strata_engine::{AppendOptions, Durability};
use strata_schema::protocol::*;
use strata_schema::{
    peek_batch_len, ApiKey, ErrorCode, ProduceRules, TimestampType, ValidatedBatch,
    BATCH_HEADER_BYTES,
};

use super::{decode, Request};
use crate::broker::Broker;
use crate::connection::Tail;
use crate::errors::{batch_error, WireError};
use crate::response::{error_table, Response};
use crate::topic_config::TopicConfig;

/// Where a partition's batches landed: (base offset, log-append time, log start).
pub(crate) type Appended = Result<(i64, i64, i64), WireError>;

pub(crate) struct PartitionAppend {
    pub topic: String,
    pub partition: u32,
    pub batches: Vec<ValidatedBatch>,
    pub durability: Durability,
    /// The request's `timeout_ms`: answered REQUEST_TIMED_OUT if not done by then.
    pub timeout_ms: u64,
}

/// The produce timeout when a request gives none (0 or negative): Kafka's default
/// `request.timeout.ms`.
pub(crate) const PRODUCE_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// A request's produce timeout in ms: its own, or the default when it gives none.
pub(crate) fn produce_timeout_ms(requested_ms: i64) -> u64 {
    u64::try_from(requested_ms)
        .ok()
        .filter(|&ms| ms > 0)
        .unwrap_or(PRODUCE_TIMEOUT_MS_DEFAULT)
}

/// One partition's batch bytes: its own buffer (read straight from the socket) or
/// a slice of the request's tail.
enum PartBytes<'a> {
    Owned(Vec<u8>),
    Borrowed(&'a [u8]),
}

/// Splits one partition's bytes into whole batches and validates each fully, once,
/// with the topic's produce `rules` (offsets dense, as every producer's batch is;
/// keys present on a compacted topic). A partition of exactly one batch in its own
/// buffer keeps that buffer; otherwise each batch is copied out.
fn split_batches(
    part: PartBytes<'_>,
    rules: ProduceRules,
) -> Result<Vec<ValidatedBatch>, WireError> {
    let corrupt = |m: String| WireError::new(ErrorCode::CorruptBatch, m);
    let all: &[u8] = match &part {
        PartBytes::Owned(v) => v,
        PartBytes::Borrowed(s) => s,
    };
    if all.is_empty() {
        return Err(corrupt("the partition has no batch bytes".to_owned()));
    }
    let mut ranges = Vec::new();
    let mut at = 0usize;
    while at < all.len() {
        let bytes = &all[at..];
        let i = ranges.len();
        let len = peek_batch_len(bytes)
            .filter(|&n| n >= BATCH_HEADER_BYTES && n <= bytes.len())
            .ok_or_else(|| {
                corrupt(format!(
                    "batch {i} does not fit in the {} bytes left for the partition",
                    bytes.len()
                ))
            })?;
        ranges.push(at..at + len);
        at += len;
    }
    let owned: Vec<Vec<u8>> = match part {
        PartBytes::Owned(v) if ranges.len() == 1 => vec![v],
        _ => ranges.into_iter().map(|r| all[r].to_vec()).collect(),
    };
    owned
        .into_iter()
        .enumerate()
        .map(|(i, b)| ValidatedBatch::produced(b, rules).map_err(|e| batch_error(i, &e)))
        .collect()
}

/// What a producer's batches must satisfy on `topic`: keys on a compacted topic.
pub(crate) fn produce_rules(config: &TopicConfig) -> ProduceRules {
    ProduceRules {
        keys_required: config.log.cleanup_policy.compacts(),
    }
}

/// Refuses the whole produce (INVALID_TIMESTAMP, as Kafka does) when a batch has a
/// timestamp outside the topic's `message.timestamp.*` window. Checks the batch
/// header's first and max timestamps: no per-record work on the append path.
fn check_timestamps(
    config: &crate::topic_config::TopicConfig,
    batches: &[ValidatedBatch],
) -> Result<(), WireError> {
    let now_ms = crate::group_host::now_ms();
    for (i, batch) in batches.iter().enumerate() {
        let h = batch.header();
        if let Some(why) =
            config.timestamp_refusal(now_ms, h.first_timestamp_ms, h.max_timestamp_ms)
        {
            return Err(WireError::new(
                ErrorCode::InvalidTimestamp,
                format!("batch {i}: {why}"),
            ));
        }
    }
    Ok(())
}

/// Appends one partition's batches in order on its owner shard, answering
/// REQUEST_TIMED_OUT if that takes longer than the request's `timeout_ms` (the
/// appends still complete, in their own task, and advance the high watermark).
pub(crate) async fn append(broker: Rc<Broker>, p: PartitionAppend) -> Appended {
    let timeout_ms = p.timeout_ms;
    let durable = p.durability == Durability::Durable;
    let (topic, partition) = (p.topic.clone(), p.partition);
    let work = glommio::spawn_local(append_now(broker, p)).detach();
    let timer = async {
        glommio::timer::sleep(Duration::from_millis(timeout_ms)).await;
        None
    };
    match futures_lite::future::or(async { Some(work.await) }, timer).await {
        Some(Some(appended)) => appended,
        Some(None) => Err(WireError::new(
            ErrorCode::BrokerShuttingDown,
            format!("the append to {topic}-{partition} was cancelled: the shard is stopping"),
        )),
        None => Err(WireError::new(
            ErrorCode::RequestTimedOut,
            format!(
                "the batches for {topic}-{partition} were not {} within the request's \
                 timeout_ms = {timeout_ms}; they may still be appended (an idempotent \
                 producer's retry is answered with their offsets)",
                if durable { "durable" } else { "written" }
            ),
        )),
    }
}

async fn append_now(broker: Rc<Broker>, p: PartitionAppend) -> Appended {
    // In a cluster the partition's leader appends through its Raft group.
    let replica = crate::cluster::replicas::leader_replica(&broker, &p.topic, p.partition)?;
    let log = broker.log(&p.topic, p.partition).await?;
    let bytes: usize = p.batches.iter().map(|b| b.bytes().len()).sum();
    broker.disk.admit(bytes as u64)?;
    let meta = broker.topics().get(&p.topic).cloned();
    let log_append_time = meta
        .as_ref()
        .is_some_and(|t| t.config.timestamp_type == TimestampType::LogAppendTime);
    if let Some(meta) = &meta {
        check_timestamps(&meta.config, &p.batches)?;
    }
    let count = p.batches.len();
    let mut first = None;
    for (i, batch) in p.batches.into_iter().enumerate() {
        // Only the last append needs to wait for durability: it covers the others.
        let durability = if i + 1 == count {
            p.durability
        } else {
            Durability::Written
        };
        let (bytes, records) = (
            batch.bytes().len() as u64,
            u64::from(batch.header().record_count),
        );
        let info = match &replica {
            Some(r) => {
                let min_insync = match durability {
                    Durability::Durable => min_insync_replicas(&broker, &p.topic),
                    Durability::Written => 1,
                };
                r.append(batch, durability, min_insync).await
            }
            None => log
                .append_validated(batch, AppendOptions::new(durability))
                .await
                .map_err(WireError::from),
        };
        let info = match info {
            Ok(info) => info,
            Err(e) => {
                let mut e = broker.closed_means_deleted(&p.topic, e);
                if i > 0 {
                    e.message = format!(
                        "{} (the partition's first {i} batches were appended)",
                        e.message
                    );
                }
                return Err(e);
            }
        };
        crate::metrics::count_partition(&p.topic, p.partition, |c| {
            if info.duplicate {
                c.duplicate_batches += 1;
            } else {
                c.bytes_in += bytes;
                c.records_in += records;
            }
        });
        if replica.is_none() {
            // One node: everything appended is committed.
            log.set_high_watermark(log.high_watermark().max(info.last_offset + 1));
        }
        first.get_or_insert(info);
    }
    let info = first.expect("split_batches never returns no batches");
    let time = if log_append_time {
        info.log_append_time_ms
    } else {
        -1
    };
    Ok((info.base_offset, time, log.log_start_offset()))
}

/// A topic's `min.insync.replicas` (its override, else the broker's default, else 1).
pub(crate) fn min_insync_replicas(broker: &Broker, topic: &str) -> usize {
    let key = "min.insync.replicas";
    broker
        .topics()
        .get(topic)
        .and_then(|m| m.overrides.get(key).cloned())
        .or_else(|| broker.topic_defaults().get(key).cloned())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

pub async fn handle(broker: &Broker, req: &Request<'_>, tail: Tail) -> Result<Response, WireError> {
    let r = decode::<ProduceRequest>(req.body, ApiKey::Produce)?;
    let topic = r.topic().to_owned();
    let acks = r.acks();
    let timeout_ms = produce_timeout_ms(i64::from(r.timeout_ms()));
    let parts: Vec<(u32, u32)> = r
        .partitions()
        .iter()
        .flatten()
        .map(|p| (p.partition(), p.batch_bytes()))
        .collect();
    let durability = match acks {
        0 | 1 => Some(Durability::Written),
        -1 => Some(Durability::Durable),
        _ => None,
    };
    let meta = broker.topic_meta(&topic);
    // Per partition: an early error, or the batches to append.
    let mut results: Vec<Option<Appended>> = Vec::with_capacity(parts.len());
    let mut items = Vec::new();
    let mut slots = Vec::new();
    let (whole, mut owned) = match tail {
        Tail::Whole(v) => (v, None),
        Tail::Parts { parts, rest } => {
            if !rest.is_empty() {
                tracing::debug!(extra = rest.len(), "produce tail has undeclared bytes");
            }
            (Vec::new(), Some(parts.into_iter()))
        }
    };
    let mut cursor = 0usize;
    for (i, &(partition, batch_bytes)) in parts.iter().enumerate() {
        let start = cursor;
        cursor = cursor.saturating_add(batch_bytes as usize);
        let bytes = match owned.as_mut() {
            Some(parts) => parts.next().map(PartBytes::Owned),
            None => whole.get(start..cursor).map(PartBytes::Borrowed),
        };
        let checked = (|| {
            let bytes = bytes.ok_or_else(|| {
                WireError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "partition {partition} claims {batch_bytes} batch bytes but the tail ends {} bytes after its start",
                        whole.len().saturating_sub(start)
                    ),
                )
            })?;
            let durability = durability.ok_or_else(|| {
                WireError::new(
                    ErrorCode::InvalidAcks,
                    format!("acks must be 0, 1 or -1 (all), not {acks}"),
                )
            })?;
            let m = meta.as_ref().map_err(Clone::clone)?;
            if m.internal() {
                return Err(WireError::new(
                    ErrorCode::InvalidTopicName,
                    format!(
                        "topic {topic} is internal to the broker; clients cannot produce to it"
                    ),
                ));
            }
            if partition >= m.partitions {
                return Err(WireError::new(
                    ErrorCode::UnknownPartition,
                    format!(
                        "topic {topic} has {} partitions; partition {partition} does not exist",
                        m.partitions
                    ),
                ));
            }
            if parts[..i].iter().any(|(p, _)| *p == partition) {
                return Err(WireError::new(
                    ErrorCode::InvalidRequest,
                    format!("partition {partition} appears twice in the request"),
                ));
            }
            Ok(PartitionAppend {
                topic: topic.clone(),
                partition,
                batches: split_batches(bytes, produce_rules(&m.config))?,
                durability,
                timeout_ms,
            })
        })();
        let early = match checked {
            Ok(append) => {
                items.push((broker.owner(&topic, partition), append));
                slots.push(i);
                None
            }
            Err(e) => Some(e),
        };
        results.push(early.map(Err));
    }
    if acks == 0 {
        let shard_broker = Broker::of(&broker.shard);
        glommio::spawn_local(async move {
            for r in crate::broker::scatter(&shard_broker, items, append, Err).await {
                if let Err(e) = r {
                    tracing::debug!(error = %e.message, "acks=0 append failed");
                }
            }
        })
        .detach();
        for i in slots {
            results[i] = Some(Ok((-1, -1, -1)));
        }
    } else {
        let appended = crate::broker::scatter(broker, items, append, Err).await;
        for (i, a) in slots.into_iter().zip(appended) {
            results[i] = Some(a);
        }
    }

    let mut fbb = FlatBufferBuilder::new();
    let results: Vec<_> = parts
        .iter()
        .zip(results)
        .map(|(&(partition, _), r)| {
            let r = r.expect("every partition has a result");
            let (base_offset, log_append_time_ms, log_start_offset, error) = match r {
                Ok((b, t, s)) => (b, t, s, None),
                Err(e) => (-1, -1, -1, Some(e)),
            };
            let error = error_table(&mut fbb, error.as_ref());
            ProducePartitionResult::create(
                &mut fbb,
                &ProducePartitionResultArgs {
                    partition,
                    error,
                    base_offset,
                    log_append_time_ms,
                    log_start_offset,
                },
            )
        })
        .collect();
    let results = fbb.create_vector(&results);
    let topic = fbb.create_string(&topic);
    let root = ProduceResponse::create(
        &mut fbb,
        &ProduceResponseArgs {
            topic: Some(topic),
            results: Some(results),
        },
    );
    fbb.finish(root, None);
    Ok(req.reply(fbb.finished_data(), Vec::new()))
}
