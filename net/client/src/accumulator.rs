//! The producer's record accumulator: per-partition batches that are sealed by size or
//! by linger time, queued for sending in order, retried at the front of their queue.
//!
//! Pure state: the caller passes the clock (`now`) in, so batching is tested without
//! sleeping, and the sender thread owns all I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_schema::NativeBatchBuilder;

use crate::completion::Completer;
use crate::error::{ClientError, Result};
use crate::producer::RecordMetadata;

/// Bytes a record is charged against `batch_bytes` and `buffer_bytes` beyond its key,
/// value and headers (its archived fields).
pub(crate) const RECORD_OVERHEAD_BYTES: usize = 48;

/// One record's pending result.
pub(crate) type RecordCompleter = Completer<Result<RecordMetadata>>;

/// The size a record is charged.
pub(crate) fn record_bytes(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(String, Option<Vec<u8>>)],
) -> usize {
    RECORD_OVERHEAD_BYTES
        + key.map_or(0, <[u8]>::len)
        + value.map_or(0, <[u8]>::len)
        + headers
            .iter()
            .map(|(k, v)| RECORD_OVERHEAD_BYTES / 2 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
}

struct OpenBatch {
    builder: NativeBatchBuilder,
    records: Vec<(i64, RecordCompleter)>,
    charged_bytes: usize,
    created: Instant,
}

/// A sealed batch on its way to the broker.
pub(crate) struct ReadyBatch {
    pub topic: Arc<str>,
    pub partition: u32,
    /// The built batch, or why it could not be built.
    pub bytes: Result<Vec<u8>>,
    /// Each record's timestamp and completion, in offset order.
    pub records: Vec<(i64, RecordCompleter)>,
    /// What it holds of the producer's buffer.
    pub charged_bytes: usize,
    /// Sends so far that failed with a retriable error.
    pub attempts: u32,
    /// Not to be sent before this (retry backoff).
    pub not_before: Option<Instant>,
    /// When its first record arrived (bounds retries after leader moves).
    pub created: Instant,
}

impl ReadyBatch {
    /// Completes every record with its offset from the batch's base offset.
    pub fn succeed(self, base_offset: i64, log_append_time_ms: i64) {
        for (i, (ts, completer)) in self.records.into_iter().enumerate() {
            let offset = if base_offset < 0 {
                -1
            } else {
                base_offset + i as i64
            };
            completer.complete(Ok(RecordMetadata {
                topic: self.topic.clone(),
                partition: self.partition,
                offset,
                timestamp_ms: if log_append_time_ms >= 0 {
                    log_append_time_ms
                } else {
                    ts
                },
            }));
        }
    }

    /// Fails every record with `error`.
    pub fn fail(self, error: &ClientError) {
        for (_, completer) in self.records {
            completer.complete(Err(error.clone()));
        }
    }
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    sealed: VecDeque<ReadyBatch>,
    in_flight: usize,
    /// An idempotent producer's sequence number for the next sealed batch.
    next_sequence: i32,
}

/// The sequence number after a batch of `records` starting at `sequence` (after
/// `i32::MAX` comes 0, as brokers expect).
pub(crate) fn next_sequence(sequence: i32, records: usize) -> i32 {
    let next = (i64::from(sequence) + records as i64) % (i64::from(i32::MAX) + 1);
    next as i32
}

/// Whether an append sealed the partition's previous or current batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub sealed: bool,
    /// The record started a new batch (and its linger clock).
    pub opened: bool,
}

/// Per-partition batching state of one producer.
pub(crate) struct Accumulator {
    batch_bytes: usize,
    linger: Duration,
    queues: HashMap<(Arc<str>, u32), PartitionQueue>,
    buffered_bytes: usize,
    in_flight: usize,
    /// An idempotent producer's id and epoch, stamped on every batch with its
    /// partition's sequence number.
    producer: Option<(i64, i16)>,
}

impl Accumulator {
    pub fn new(batch_bytes: usize, linger: Duration) -> Accumulator {
        assert!(batch_bytes > 0, "batch_bytes must be positive");
        Accumulator {
            batch_bytes,
            linger,
            queues: HashMap::new(),
            buffered_bytes: 0,
            in_flight: 0,
            producer: None,
        }
    }

    /// Stamps every batch sealed from now on with this producer id and epoch and the
    /// partition's next sequence number.
    pub fn with_producer(mut self, producer_id: i64, producer_epoch: i16) -> Accumulator {
        self.producer = Some((producer_id, producer_epoch));
        self
    }

    /// Bytes of records accepted and not yet completed.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Whether nothing is buffered or in flight.
    pub fn is_idle(&self) -> bool {
        self.buffered_bytes == 0 && self.in_flight == 0
    }

    /// Adds a record to its partition's open batch, sealing the open batch first if the
    /// record would overflow it, and the new one if it is now full.
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &mut self,
        topic: &Arc<str>,
        partition: u32,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Option<Vec<u8>>)],
        completer: RecordCompleter,
        now: Instant,
    ) -> Appended {
        let charged = record_bytes(key, value, headers);
        let queue = self.queues.entry((topic.clone(), partition)).or_default();
        let mut sealed = false;
        if queue
            .open
            .as_ref()
            .is_some_and(|open| open.charged_bytes + charged > self.batch_bytes)
        {
            seal(topic, partition, queue, self.producer);
            sealed = true;
        }
        let opened = queue.open.is_none();
        let open = queue.open.get_or_insert_with(|| OpenBatch {
            builder: NativeBatchBuilder::new(),
            records: Vec::new(),
            charged_bytes: 0,
            created: now,
        });
        let header_refs: Vec<(&str, Option<&[u8]>)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        open.builder.push(timestamp_ms, key, value, &header_refs);
        open.records.push((timestamp_ms, completer));
        open.charged_bytes += charged;
        self.buffered_bytes += charged;
        if open.charged_bytes >= self.batch_bytes {
            seal(topic, partition, queue, self.producer);
            sealed = true;
        }
        Appended { sealed, opened }
    }

    /// Batches to send now, at most `slots` of them and at most
    /// `partition_in_flight_max` in flight per partition, oldest first per partition.
    /// Open batches are sealed when their linger has passed, or all of them with
    /// `flush`. Returns the sealed partitions too (for the sticky partitioner).
    pub fn drain(
        &mut self,
        now: Instant,
        flush: bool,
        slots: usize,
        partition_in_flight_max: usize,
    ) -> (Vec<ReadyBatch>, Vec<(Arc<str>, u32)>) {
        let mut ready = Vec::new();
        let mut sealed = Vec::new();
        for ((topic, partition), queue) in self.queues.iter_mut() {
            if let Some(open) = &queue.open {
                if flush || now.duration_since(open.created) >= self.linger {
                    seal(topic, *partition, queue, self.producer);
                    sealed.push((topic.clone(), *partition));
                }
            }
            while ready.len() < slots && queue.in_flight < partition_in_flight_max {
                match queue.sealed.front() {
                    Some(b) if b.not_before.is_none_or(|t| t <= now) => {}
                    _ => break,
                }
                let Some(batch) = queue.sealed.pop_front() else {
                    break;
                };
                queue.in_flight += 1;
                self.in_flight += 1;
                ready.push(batch);
            }
        }
        (ready, sealed)
    }

    /// A drained batch finished (completed or failed for good): frees its buffer.
    pub fn finished(&mut self, batch: &ReadyBatch) {
        if let Some(queue) = self.queues.get_mut(&(batch.topic.clone(), batch.partition)) {
            debug_assert!(queue.in_flight > 0);
            queue.in_flight -= 1;
        }
        debug_assert!(self.in_flight > 0 && self.buffered_bytes >= batch.charged_bytes);
        self.in_flight -= 1;
        self.buffered_bytes -= batch.charged_bytes;
    }

    /// A drained batch goes back to the front of its partition's queue to be sent
    /// again after `backoff`; order within the partition is kept.
    pub fn retry(&mut self, mut batch: ReadyBatch, now: Instant, backoff: Duration) {
        batch.attempts += 1;
        batch.not_before = Some(now + backoff);
        self.in_flight -= 1;
        let queue = self
            .queues
            .entry((batch.topic.clone(), batch.partition))
            .or_default();
        queue.in_flight -= 1;
        queue.sealed.push_front(batch);
    }

    /// When [`drain`](Self::drain) may next have something: the earliest linger
    /// deadline or retry time. (Batches held back by the in-flight limits become
    /// ready when a response arrives, which wakes the sender anyway.)
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .values()
            .flat_map(|q| {
                let linger = q.open.as_ref().map(|o| o.created + self.linger);
                let retry = q.sealed.front().and_then(|b| b.not_before);
                linger.into_iter().chain(retry)
            })
            .min()
    }
}

fn seal(
    topic: &Arc<str>,
    partition: u32,
    queue: &mut PartitionQueue,
    producer: Option<(i64, i16)>,
) {
    let Some(open) = queue.open.take() else {
        return;
    };
    let builder = match producer {
        Some((id, epoch)) => {
            let sequence = queue.next_sequence;
            queue.next_sequence = next_sequence(sequence, open.records.len());
            open.builder.with_producer(id, epoch, sequence)
        }
        None => open.builder,
    };
    queue.sealed.push_back(ReadyBatch {
        topic: topic.clone(),
        partition,
        bytes: builder.try_build().map_err(ClientError::from),
        records: open.records,
        charged_bytes: open.charged_bytes,
        attempts: 0,
        not_before: None,
        created: open.created,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::{completion, Pending};
    use strata_schema::validate_batch;

    fn add(
        acc: &mut Accumulator,
        partition: u32,
        value: &[u8],
        now: Instant,
    ) -> (Appended, Pending<Result<RecordMetadata>>) {
        let (c, p) = completion();
        let topic: Arc<str> = Arc::from("t");
        (
            acc.append(&topic, partition, 1_000, None, Some(value), &[], c, now),
            p,
        )
    }

    #[test]
    fn an_idempotent_producer_numbers_each_partitions_batches() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(1 << 20, Duration::ZERO).with_producer(42, 3);
        add(&mut acc, 0, b"a", t0);
        add(&mut acc, 0, b"b", t0);
        add(&mut acc, 1, b"c", t0);
        let (ready, _) = acc.drain(t0, true, 10, 1);
        add(&mut acc, 0, b"d", t0);
        let header =
            |b: &ReadyBatch| strata_schema::BatchHeader::decode(b.bytes.as_ref().unwrap()).unwrap();
        for b in &ready {
            let h = header(b);
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, 0)
            );
            acc.finished(b);
        }
        let (next, _) = acc.drain(t0, true, 10, 1);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].partition, 0);
        assert_eq!(
            header(&next[0]).base_sequence,
            2,
            "after the 2 records of batch 0"
        );
        assert_eq!(
            next_sequence(i32::MAX - 1, 3),
            1,
            "wraps to 0 after i32::MAX"
        );
    }

    #[test]
    fn seals_by_size_before_overflowing() {
        let t0 = Instant::now();
        let per_record = record_bytes(None, Some(&[0; 100]), &[]);
        let mut acc = Accumulator::new(per_record * 3, Duration::from_secs(3600));
        assert!(!add(&mut acc, 0, &[0; 100], t0).0.sealed);
        assert!(!add(&mut acc, 0, &[0; 100], t0).0.sealed);
        // The third fills the batch exactly: sealed now, without waiting for linger.
        assert!(add(&mut acc, 0, &[0; 100], t0).0.sealed);
        let (ready, _) = acc.drain(t0, false, 10, 1);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].records.len(), 3);
        let bytes = ready[0].bytes.as_ref().unwrap();
        assert_eq!(validate_batch(bytes).unwrap().records().unwrap().len(), 3);
        // A record that would overflow the open batch seals it first.
        add(&mut acc, 1, &[0; 100], t0);
        assert!(add(&mut acc, 1, &[0; 250], t0).0.sealed);
        acc.finished(&ready[0]);
        let (ready, _) = acc.drain(t0, false, 10, 1);
        assert_eq!(ready.len(), 1);
        assert_eq!(
            ready[0].records.len(),
            1,
            "the overflowing record went to a new batch"
        );
    }

    #[test]
    fn seals_by_linger_on_a_fake_clock() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(1 << 20, Duration::from_millis(5));
        add(&mut acc, 0, b"a", t0);
        add(&mut acc, 0, b"b", t0 + Duration::from_millis(1));
        assert!(acc
            .drain(t0 + Duration::from_millis(4), false, 10, 1)
            .0
            .is_empty());
        assert_eq!(acc.next_deadline(), Some(t0 + Duration::from_millis(5)));
        let (ready, sealed) = acc.drain(t0 + Duration::from_millis(5), false, 10, 1);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].records.len(), 2);
        assert_eq!(sealed.len(), 1);
        // Flush seals without waiting.
        add(&mut acc, 0, b"c", t0);
        let (ready2, _) = acc.drain(t0, true, 10, 2);
        assert_eq!(ready2.len(), 1);
    }

    #[test]
    fn one_in_flight_per_partition_and_retry_keeps_order() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(1, Duration::ZERO); // every record its own batch
        let (_, mut p1) = add(&mut acc, 0, b"1", t0);
        let (_, mut p2) = add(&mut acc, 0, b"2", t0);
        let (_, _p3) = add(&mut acc, 1, b"3", t0);
        let (ready, _) = acc.drain(t0, false, 10, 1);
        assert_eq!(ready.len(), 2, "one per partition");
        let mut ready: Vec<_> = ready.into_iter().collect();
        ready.sort_by_key(|b| b.partition);
        let first = ready.remove(0);
        assert!(acc.drain(t0, false, 10, 1).0.is_empty());
        // Retry the first batch of partition 0: it goes before the second.
        acc.retry(first, t0, Duration::from_millis(10));
        assert!(acc.drain(t0, false, 10, 1).0.is_empty(), "backoff");
        let (again, _) = acc.drain(t0 + Duration::from_millis(10), false, 10, 1);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        let again = again.into_iter().next().unwrap();
        acc.finished(&again);
        again.succeed(40, -1);
        assert_eq!(p1.try_take().unwrap().unwrap().offset, 40);
        let (next, _) = acc.drain(t0 + Duration::from_millis(10), false, 10, 1);
        let next = next.into_iter().next().unwrap();
        acc.finished(&next);
        next.succeed(41, -1);
        assert_eq!(p2.try_take().unwrap().unwrap().offset, 41);
        acc.finished(&ready[0]);
        assert!(acc.is_idle());
    }
}
