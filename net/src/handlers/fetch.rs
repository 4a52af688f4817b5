//! Fetch: read each partition from its fetch offset up to the high watermark on its
//! owner shard, and long-poll while fewer than `min_bytes` are available.
//!
//! The batches come back as the engine's `Bytes` (shared with its tail cache or read
//! buffers) and go into the response tail as they are; the connection writes large
//! ones straight from those buffers (small ones are coalesced, see `connection`).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flatbuffers::FlatBufferBuilder;
use strata_schema::protocol::*;
use strata_schema::{ApiKey, BatchHeader};

use super::{decode, Request};
use crate::broker::Broker;
use crate::cluster::client_reads::{check_read, ReadRule};
use crate::errors::WireError;
use crate::response::{error_table, Response};

/// How often a long-poll wait on another shard checks whether its fetch is done.
const CANCEL_POLL_MS: u64 = 5;
/// Longest long poll, whatever the request asks for.
pub const MAX_WAIT_MS_MAX: u32 = 60_000;

/// One partition a fetch reads.
pub(crate) struct Wanted {
    pub topic: String,
    pub partition: u32,
    pub fetch_offset: i64,
    pub max_bytes: usize,
    /// Which replica may answer, and the client's leader epoch.
    pub rule: ReadRule,
}

/// What a fetch read from one partition.
#[derive(Default)]
pub(crate) struct Fetched {
    pub batches: Vec<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub error: Option<WireError>,
}

impl Fetched {
    pub(crate) fn failed(e: WireError) -> Self {
        Fetched {
            high_watermark: -1,
            log_start_offset: -1,
            log_end_offset: -1,
            error: Some(e),
            ..Default::default()
        }
    }
}

async fn read(
    broker: Rc<Broker>,
    (topic, partition, offset, max_bytes, rule): (String, u32, i64, usize, ReadRule),
) -> Fetched {
    // In a cluster the leader serves reads (and a follower, when `rule` lets it).
    if let Err(e) = check_read(&broker, &topic, partition, rule) {
        return Fetched::failed(e);
    }
    let log = match broker.log(&topic, partition).await {
        Ok(log) => log,
        Err(e) => return Fetched::failed(e),
    };
    match log.read(offset, max_bytes.max(1), None).await {
        Ok(r) => Fetched {
            batches: r.batches,
            high_watermark: r.high_watermark,
            log_start_offset: r.log_start_offset,
            log_end_offset: r.log_end_offset,
            error: None,
        },
        Err(e) => Fetched::failed(broker.closed_means_deleted(&topic, e.into())),
    }
}

/// On one shard: resolves once any of `waits` (topic, partition, offset) has data
/// beyond its offset, the time is up, the shard stops, or the fetch no longer waits
/// (`cancelled`, checked every `CANCEL_POLL_MS`: a job sent to another shard runs to
/// its end even when its caller stopped waiting).
async fn wait_any(
    broker: Rc<Broker>,
    waits: Vec<(String, u32, i64)>,
    timeout: Duration,
    cancelled: Arc<AtomicBool>,
) {
    let mut futures: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
    for (topic, partition, offset) in waits {
        if let Ok(log) = broker.log(&topic, partition).await {
            futures.push(Box::pin(async move {
                let _ = log.wait_for_data_beyond(offset).await;
            }));
        }
    }
    let shard = broker.shard.clone();
    futures.push(Box::pin(async move { shard.stopped().await }));
    futures.push(Box::pin(async move {
        glommio::timer::sleep(timeout).await;
    }));
    futures.push(Box::pin(async move {
        while !cancelled.load(Ordering::Acquire) {
            glommio::timer::sleep(Duration::from_millis(CANCEL_POLL_MS)).await;
        }
    }));
    first_of(futures).await;
}

/// Sets its flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Resolves when the first of `futures` does.
async fn first_of(mut futures: Vec<Pin<Box<dyn Future<Output = ()>>>>) {
    futures_lite::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

pub async fn handle(broker: &Broker, req: &Request<'_>) -> Result<Response, WireError> {
    let r = decode::<FetchRequest>(req.body, ApiKey::Fetch)?;
    let wanted: Vec<Wanted> = r
        .partitions()
        .iter()
        .flatten()
        .map(|p| Wanted {
            topic: p.topic().to_owned(),
            partition: p.partition(),
            fetch_offset: p.fetch_offset(),
            max_bytes: p.max_bytes() as usize,
            rule: ReadRule::LEADER,
        })
        .collect();
    let max_wait_ms = r.max_wait_ms().min(MAX_WAIT_MS_MAX);
    let fetched = gather(
        broker,
        &wanted,
        r.min_bytes() as usize,
        r.max_bytes() as usize,
        max_wait_ms,
    )
    .await;
    let mut fbb = FlatBufferBuilder::new();
    let mut tail = Vec::new();
    let results: Vec<_> = wanted
        .iter()
        .zip(fetched)
        .map(|(w, f)| {
            let topic = fbb.create_string(&w.topic);
            let error = error_table(&mut fbb, f.error.as_ref());
            let batch_bytes = total_bytes(&f.batches) as u32;
            if batch_bytes > 0 {
                let records: u64 = f
                    .batches
                    .iter()
                    .filter_map(|b| BatchHeader::decode(b).ok())
                    .map(|h| u64::from(h.record_count))
                    .sum();
                crate::metrics::count_partition(&w.topic, w.partition, |c| {
                    c.bytes_out += u64::from(batch_bytes);
                    c.records_out += records;
                });
            }
            tail.extend(f.batches);
            FetchPartitionResult::create(
                &mut fbb,
                &FetchPartitionResultArgs {
                    topic: Some(topic),
                    partition: w.partition,
                    error,
                    high_watermark: f.high_watermark,
                    log_start_offset: f.log_start_offset,
                    log_end_offset: f.log_end_offset,
                    batch_bytes,
                },
            )
        })
        .collect();
    let results = fbb.create_vector(&results);
    let root = FetchResponse::create(
        &mut fbb,
        &FetchResponseArgs {
            results: Some(results),
        },
    );
    fbb.finish(root, None);
    Ok(req.reply(fbb.finished_data(), tail))
}

/// Reads every wanted partition, long-polling up to `max_wait_ms` while fewer than
/// `min_bytes` are available (and no partition failed), then keeps whole batches in
/// partition order within `total_max_bytes` (at least one batch goes out).
pub(crate) async fn gather(
    broker: &Broker,
    wanted: &[Wanted],
    min_bytes: usize,
    total_max_bytes: usize,
    max_wait_ms: u32,
) -> Vec<Fetched> {
    let max_wait = Duration::from_millis(u64::from(max_wait_ms.min(MAX_WAIT_MS_MAX)));
    let deadline = Instant::now() + max_wait;
    let mut fetched = read_all(broker, wanted).await;
    loop {
        let available: usize = fetched.iter().map(|f| total_bytes(&f.batches)).sum();
        let any_error = fetched.iter().any(|f| f.error.is_some());
        let now = Instant::now();
        if available >= min_bytes || any_error || now >= deadline || broker.shard.is_stopping() {
            break;
        }
        // Wait for new data on any partition, on every owner shard at once.
        let mut by_shard: std::collections::BTreeMap<usize, Vec<(String, u32, i64)>> =
            Default::default();
        for (w, f) in wanted.iter().zip(&fetched) {
            let beyond = w.fetch_offset.max(f.high_watermark);
            by_shard
                .entry(broker.owner(&w.topic, w.partition))
                .or_default()
                .push((w.topic.clone(), w.partition, beyond));
        }
        let timeout = deadline - now;
        let cancelled = Arc::new(AtomicBool::new(false));
        // Also when this fetch is dropped (its connection closed) while it waits.
        let _cancel = CancelOnDrop(Arc::clone(&cancelled));
        let mut waits: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
        for (s, group) in by_shard {
            let shard = broker.shard.clone();
            let cancelled = Arc::clone(&cancelled);
            waits.push(Box::pin(async move {
                let _ = shard
                    .invoke_on(s, move |shard| async move {
                        wait_any(Broker::of(&shard), group, timeout, cancelled).await
                    })
                    .await;
            }));
        }
        let shard = broker.shard.clone();
        waits.push(Box::pin(async move { shard.stopped().await }));
        waits.push(Box::pin(async move {
            glommio::timer::sleep(timeout).await;
        }));
        first_of(waits).await;
        fetched = read_all(broker, wanted).await;
    }

    // The request's byte budget, in partition order; at least one batch goes out.
    let mut budget = total_max_bytes;
    let mut sent_any = false;
    for f in fetched.iter_mut() {
        let mut keep = 0;
        for b in &f.batches {
            if b.len() > budget && sent_any {
                break;
            }
            budget = budget.saturating_sub(b.len());
            sent_any = true;
            keep += 1;
        }
        f.batches.truncate(keep);
    }

    fetched
}

fn total_bytes(batches: &[Bytes]) -> usize {
    batches.iter().map(Bytes::len).sum()
}

async fn read_all(broker: &Broker, wanted: &[Wanted]) -> Vec<Fetched> {
    let items = wanted
        .iter()
        .map(|w| {
            (
                broker.owner(&w.topic, w.partition),
                (
                    w.topic.clone(),
                    w.partition,
                    w.fetch_offset,
                    w.max_bytes,
                    w.rule,
                ),
            )
        })
        .collect();
    crate::broker::scatter(broker, items, read, Fetched::failed).await
}
