//! Idempotent-producer state of one partition, as Kafka's broker keeps it
//! (`ProducerStateManager`): per producer id, its epoch and the sequence and offset
//! ranges of its last [`PRODUCER_BATCHES_CACHED`] batches, so that a retried batch is
//! answered with the offsets it already has instead of being written twice, and a
//! gap in the sequence or a stale epoch is refused.
//!
//! A plain state machine without I/O. `Log` checks a batch with
//! [`ProducerStates::check`] and records it with [`ProducerStates::record`] in the same
//! synchronous step that assigns its offsets, so pipelined batches are judged in append
//! order. After a restart the state comes from a snapshot ([`ProducerStates::encode`],
//! written at segment roll, every [`PRODUCER_SNAPSHOT_INTERVAL_BYTES`] and at clean
//! close) plus the batch headers stored after it, replayed with `record`.
//!
//! Rules for a batch from a client (Kafka's `ProducerAppendInfo`):
//! - producer id < 0, or a control batch: not tracked, always appended.
//! - producer id >= 0 with a negative epoch or base sequence: refused
//!   ([`EngineError::InvalidProducerFields`]).
//! - unknown producer (never seen, evicted, or idle past the expiration): its first
//!   batch must have sequence 0, else [`EngineError::UnknownProducerId`]. Kafka brokers
//!   since 2.5 accept any sequence here; refusing is the older, stricter behaviour,
//!   which clients answer by bumping their epoch and restarting at sequence 0.
//! - epoch below the known one: [`EngineError::ProducerFenced`].
//! - epoch above the known one: must start at sequence 0, else
//!   [`EngineError::OutOfOrderSequence`] expecting 0. The new epoch drops the cache.
//! - same epoch and the same (first, last) sequence as a cached batch: a duplicate,
//!   answered with that batch's offsets ([`SequenceCheck::Duplicate`]).
//! - same epoch otherwise: the first sequence must follow the last one (`i32::MAX` is
//!   followed by 0), else [`EngineError::OutOfOrderSequence`].

use std::collections::{BTreeMap, HashMap};

use strata_schema::BatchHeader;

use crate::error::{EngineError, Result};

/// Batches remembered per producer: Kafka's limit, matching the most requests a client
/// keeps in flight per connection (`max.in.flight.requests.per.connection` <= 5).
pub const PRODUCER_BATCHES_CACHED: usize = 5;
/// Producers tracked per partition at most; the least recently appending one is
/// forgotten to make room (its next batch is then answered as from an unknown producer).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 8192;
/// A producer that appended nothing for this long is forgotten (Kafka's
/// `producer.id.expiration.ms` default, 24 hours).
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 24 * 3600 * 1000;
/// Bytes appended between two periodic snapshots of the active segment's state, so
/// that recovery after a crash replays at most about this much.
pub const PRODUCER_SNAPSHOT_INTERVAL_BYTES: u64 = 64 * 1024 * 1024;
/// Snapshot files kept per partition (older ones are deleted).
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 2;
/// Suffix of snapshot files, named `<offset, 20 digits>.producers` like segments.
pub const PRODUCER_SNAPSHOT_SUFFIX: &str = "producers";

/// First bytes of a snapshot file.
const SNAPSHOT_MAGIC: [u8; 4] = *b"SPRS";
/// The snapshot format this build reads and writes.
const SNAPSHOT_VERSION: u16 = 1;
/// Fixed header: magic, version, reserved, offset, producer count, reserved.
const SNAPSHOT_HEADER_BYTES: usize = 24;
/// Per producer: id, last append time, epoch, batch count, reserved.
const SNAPSHOT_PRODUCER_BYTES: usize = 24;
/// Per cached batch: first and last sequence, base and last offset, append time.
const SNAPSHOT_BATCH_BYTES: usize = 32;
/// Trailing CRC32C of everything before it.
const SNAPSHOT_CRC_BYTES: usize = 4;

/// Bounds of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerLimits {
    /// Producers tracked at most (least recently used ones are evicted).
    pub producers_max: usize,
    /// Idle time after which a producer is forgotten.
    pub expiration_ms: i64,
}

impl Default for ProducerLimits {
    fn default() -> Self {
        ProducerLimits {
            producers_max: PRODUCERS_PER_PARTITION_MAX,
            expiration_ms: PRODUCER_ID_EXPIRATION_MS_DEFAULT,
        }
    }
}

/// The producer identity and sequence range of one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    /// `first_seq + last_offset_delta`, wrapping past `i32::MAX` to 0 as Kafka does.
    pub last_seq: i32,
}

impl ProducerBatch {
    /// A batch of `producer_id` whose sequences start at `first_seq` and span
    /// `last_offset_delta + 1` offsets.
    pub fn new(producer_id: i64, epoch: i16, first_seq: i32, last_offset_delta: u32) -> Self {
        ProducerBatch {
            producer_id,
            epoch,
            first_seq,
            last_seq: seq_add(first_seq, last_offset_delta),
        }
    }

    /// The tracked identity of a stored or produced batch; `None` when it has no
    /// producer id or is a control batch (transaction markers carry no sequence).
    pub fn from_header(h: &BatchHeader) -> Option<Self> {
        if h.producer_id < 0 || h.attributes.is_control() {
            return None;
        }
        Some(ProducerBatch::new(
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.last_offset_delta,
        ))
    }
}

/// `seq + delta` in Kafka's sequence space: past `i32::MAX` it continues at 0.
fn seq_add(seq: i32, delta: u32) -> i32 {
    let sum = i64::from(seq.max(0)) + i64::from(delta);
    (sum % (i64::from(i32::MAX) + 1)) as i32
}

/// The sequence that must follow `last_seq`.
fn next_seq(last_seq: i32) -> i32 {
    seq_add(last_seq, 1)
}

/// One appended batch a producer may retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// Broker time of the append (the batch's stamped log-append time).
    pub append_ms: i64,
}

const EMPTY_BATCH: CachedBatch = CachedBatch {
    first_seq: -1,
    last_seq: -1,
    base_offset: -1,
    last_offset: -1,
    append_ms: -1,
};

/// What a partition knows about one producer.
#[derive(Clone, Debug)]
pub struct ProducerEntry {
    epoch: i16,
    /// Oldest first; `batches[..len]` are in use.
    batches: [CachedBatch; PRODUCER_BATCHES_CACHED],
    len: u8,
    last_append_ms: i64,
    /// Position in the LRU order (key of `ProducerStates::lru`).
    tick: u64,
}

impl PartialEq for ProducerEntry {
    fn eq(&self, other: &Self) -> bool {
        self.epoch == other.epoch
            && self.batches() == other.batches()
            && self.last_append_ms == other.last_append_ms
    }
}

impl Eq for ProducerEntry {}

impl ProducerEntry {
    fn new(epoch: i16) -> Self {
        ProducerEntry {
            epoch,
            batches: [EMPTY_BATCH; PRODUCER_BATCHES_CACHED],
            len: 0,
            last_append_ms: -1,
            tick: 0,
        }
    }

    /// The producer's current epoch.
    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// The cached batches of the current epoch, oldest first (never empty).
    pub fn batches(&self) -> &[CachedBatch] {
        &self.batches[..usize::from(self.len)]
    }

    /// The newest appended batch.
    pub fn last_batch(&self) -> CachedBatch {
        self.batches().last().copied().unwrap_or(EMPTY_BATCH)
    }

    /// The last sequence appended.
    pub fn last_seq(&self) -> i32 {
        self.last_batch().last_seq
    }

    /// Broker time of the producer's last append.
    pub fn last_append_ms(&self) -> i64 {
        self.last_append_ms
    }

    fn push(&mut self, b: CachedBatch) {
        let len = usize::from(self.len);
        if len == PRODUCER_BATCHES_CACHED {
            self.batches.rotate_left(1);
            self.batches[PRODUCER_BATCHES_CACHED - 1] = b;
        } else {
            self.batches[len] = b;
            self.len += 1;
        }
        debug_assert!(self
            .batches()
            .windows(2)
            .all(|w| w[0].last_offset < w[1].base_offset));
    }

    fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_append_ms) >= expiration_ms
    }
}

/// How a checked batch is to be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data in sequence (or untracked): append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, write nothing.
    Duplicate(CachedBatch),
}

/// Producer state of one partition.
#[derive(Clone, Debug)]
pub struct ProducerStates {
    limits: ProducerLimits,
    entries: HashMap<i64, ProducerEntry>,
    /// Producer ids by the tick of their last append: the first is the least recently used.
    lru: BTreeMap<u64, i64>,
    next_tick: u64,
}

impl Default for ProducerStates {
    fn default() -> Self {
        ProducerStates::new(ProducerLimits::default())
    }
}

impl PartialEq for ProducerStates {
    /// Same producers with the same state in the same LRU order.
    fn eq(&self, other: &Self) -> bool {
        self.limits == other.limits
            && self.entries.len() == other.entries.len()
            && self.iter().eq(other.iter())
    }
}

impl ProducerStates {
    /// An empty table with `limits`.
    pub fn new(limits: ProducerLimits) -> Self {
        assert!(limits.producers_max > 0, "producers_max must be positive");
        ProducerStates {
            limits,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            next_tick: 0,
        }
    }

    /// The table's bounds.
    pub fn limits(&self) -> ProducerLimits {
        self.limits
    }

    /// Producers tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What is known about `producer_id` (expired entries included until removed).
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id)
    }

    /// Producers, least recently appending first.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> + '_ {
        self.lru.values().filter_map(|pid| {
            let e = self.entries.get(pid)?;
            Some((*pid, e))
        })
    }

    /// Judges a client batch at broker time `now_ms`; changes nothing.
    pub fn check(&self, b: &ProducerBatch, now_ms: i64) -> Result<SequenceCheck> {
        if b.epoch < 0 || b.first_seq < 0 {
            return Err(EngineError::InvalidProducerFields {
                producer_id: b.producer_id,
                producer_epoch: b.epoch,
                base_sequence: b.first_seq,
            });
        }
        let entry = self
            .entries
            .get(&b.producer_id)
            .filter(|e| !e.expired(now_ms, self.limits.expiration_ms));
        let Some(e) = entry else {
            if b.first_seq == 0 {
                return Ok(SequenceCheck::Append);
            }
            return Err(EngineError::UnknownProducerId {
                producer_id: b.producer_id,
                producer_epoch: b.epoch,
                base_sequence: b.first_seq,
            });
        };
        if b.epoch < e.epoch {
            return Err(EngineError::ProducerFenced {
                producer_id: b.producer_id,
                producer_epoch: b.epoch,
                current_epoch: e.epoch,
            });
        }
        if b.epoch > e.epoch {
            if b.first_seq == 0 {
                return Ok(SequenceCheck::Append);
            }
            return Err(EngineError::OutOfOrderSequence {
                producer_id: b.producer_id,
                producer_epoch: b.epoch,
                expected: 0,
                got: b.first_seq,
            });
        }
        if let Some(dup) = e
            .batches()
            .iter()
            .find(|c| c.first_seq == b.first_seq && c.last_seq == b.last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = next_seq(e.last_seq());
        if b.first_seq != expected {
            return Err(EngineError::OutOfOrderSequence {
                producer_id: b.producer_id,
                producer_epoch: b.epoch,
                expected,
                got: b.first_seq,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch appended at `[base_offset, last_offset]` at broker time
    /// `append_ms`: after a successful `check`, or replaying the log (no checks: what
    /// is stored was accepted).
    pub fn record(
        &mut self,
        b: &ProducerBatch,
        base_offset: i64,
        last_offset: i64,
        append_ms: i64,
    ) {
        debug_assert!(base_offset <= last_offset);
        let expiration_ms = self.limits.expiration_ms;
        if !self.entries.contains_key(&b.producer_id) {
            self.make_room(append_ms);
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        let e = self
            .entries
            .entry(b.producer_id)
            .or_insert_with(|| ProducerEntry::new(b.epoch));
        if e.len > 0 {
            self.lru.remove(&e.tick);
        }
        // A new epoch restarts the sequence; so does a producer that was idle past the
        // expiration (it is new as far as `check` was concerned).
        if e.epoch != b.epoch || (e.len > 0 && e.expired(append_ms, expiration_ms)) {
            e.epoch = b.epoch;
            e.len = 0;
        }
        e.push(CachedBatch {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            base_offset,
            last_offset,
            append_ms,
        });
        e.last_append_ms = append_ms;
        e.tick = tick;
        self.lru.insert(tick, b.producer_id);
        debug_assert_eq!(self.lru.len(), self.entries.len());
    }

    /// Evicts expired producers, then the least recently used ones, until one more fits.
    fn make_room(&mut self, now_ms: i64) {
        self.remove_expired(now_ms);
        while self.entries.len() >= self.limits.producers_max {
            let Some((_, pid)) = self.lru.pop_first() else {
                break;
            };
            self.entries.remove(&pid);
        }
    }

    /// Forgets producers idle for the expiration time at `now_ms`; returns how many.
    pub fn remove_expired(&mut self, now_ms: i64) -> usize {
        let mut removed = 0;
        while let Some((&tick, &pid)) = self.lru.first_key_value() {
            let expired = self
                .entries
                .get(&pid)
                .is_none_or(|e| e.expired(now_ms, self.limits.expiration_ms));
            // Append times follow append order closely but a clock step can break it:
            // stop at the first live one rather than scan everything.
            if !expired {
                break;
            }
            self.lru.remove(&tick);
            self.entries.remove(&pid);
            removed += 1;
        }
        removed
    }

    /// Approximate heap bytes of the table.
    pub fn heap_bytes(&self) -> usize {
        // HashMap slots plus a BTreeMap entry (with node overhead) per producer.
        self.entries.capacity()
            * (std::mem::size_of::<(i64, ProducerEntry)>() + std::mem::size_of::<u64>())
            + self.lru.len() * 2 * std::mem::size_of::<(u64, i64)>()
    }

    /// The snapshot form of the state of a log whose batches below `offset` it covers;
    /// see [`ProducerStates::decode`] for the layout.
    pub fn encode(&self, offset: i64) -> Vec<u8> {
        let batches: usize = self.entries.values().map(|e| e.batches().len()).sum();
        let len = SNAPSHOT_HEADER_BYTES
            + self.entries.len() * SNAPSHOT_PRODUCER_BYTES
            + batches * SNAPSHOT_BATCH_BYTES
            + SNAPSHOT_CRC_BYTES;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for (pid, e) in self.iter() {
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&e.last_append_ms.to_le_bytes());
            out.extend_from_slice(&e.epoch.to_le_bytes());
            out.push(e.len);
            out.push(0);
            out.extend_from_slice(&0u32.to_le_bytes());
            for b in e.batches() {
                out.extend_from_slice(&b.first_seq.to_le_bytes());
                out.extend_from_slice(&b.last_seq.to_le_bytes());
                out.extend_from_slice(&b.base_offset.to_le_bytes());
                out.extend_from_slice(&b.last_offset.to_le_bytes());
                out.extend_from_slice(&b.append_ms.to_le_bytes());
            }
        }
        let crc = crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len(), len);
        out
    }

    /// Parses a snapshot: the offset it covers up to and the state, with `limits`
    /// (producers beyond `limits.producers_max` are evicted, least recent first).
    ///
    /// Layout, all integers little endian:
    ///
    /// | bytes | field |
    /// | ----- | ----- |
    /// | 0..4 | magic `SPRS` |
    /// | 4..6 | version u16 = 1 |
    /// | 6..8 | reserved, zero |
    /// | 8..16 | offset i64: the state covers every batch below it |
    /// | 16..20 | producer count u32 |
    /// | 20..24 | reserved, zero |
    /// | per producer, least recently appending first: | |
    /// | +0..8 | producer id i64 |
    /// | +8..16 | last append time ms i64 |
    /// | +16..18 | epoch i16 |
    /// | +18 | cached batch count u8, 1..=5 |
    /// | +19..24 | reserved, zero |
    /// | then per cached batch, oldest first: | |
    /// | +0..4 / +4..8 | first / last sequence i32 |
    /// | +8..16 / +16..24 | base / last offset i64 |
    /// | +24..32 | append time ms i64 |
    /// | last 4 | CRC32C of every byte before it |
    pub fn decode(bytes: &[u8], limits: ProducerLimits) -> Result<(i64, Self), String> {
        let min = SNAPSHOT_HEADER_BYTES + SNAPSHOT_CRC_BYTES;
        if bytes.len() < min {
            return Err(format!(
                "{} bytes, shorter than the {min}-byte minimum",
                bytes.len()
            ));
        }
        let (body, crc) = bytes.split_at(bytes.len() - SNAPSHOT_CRC_BYTES);
        let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
        let actual = crc32c(body);
        if stored != actual {
            return Err(format!(
                "CRC mismatch: stored {stored:#010x}, computed {actual:#010x}"
            ));
        }
        let mut r = Reader { bytes: body, at: 0 };
        if r.take::<4>()? != SNAPSHOT_MAGIC {
            return Err("not a producer snapshot (bad magic)".into());
        }
        let version = u16::from_le_bytes(r.take()?);
        if version != SNAPSHOT_VERSION {
            return Err(format!("unsupported snapshot version {version}"));
        }
        r.take::<2>()?;
        let offset = i64::from_le_bytes(r.take()?);
        let count = u32::from_le_bytes(r.take()?) as usize;
        r.take::<4>()?;
        if count > body.len() / SNAPSHOT_PRODUCER_BYTES {
            return Err(format!("producer count {count} exceeds the file"));
        }
        let mut out = ProducerStates::new(limits);
        for _ in 0..count {
            let pid = i64::from_le_bytes(r.take()?);
            let last_append_ms = i64::from_le_bytes(r.take()?);
            let epoch = i16::from_le_bytes(r.take()?);
            let [n] = r.take::<1>()?;
            r.take::<5>()?;
            if pid < 0 || out.entries.contains_key(&pid) {
                return Err(format!("bad or repeated producer id {pid}"));
            }
            if n == 0 || usize::from(n) > PRODUCER_BATCHES_CACHED {
                return Err(format!("producer {pid} has {n} cached batches"));
            }
            let mut e = ProducerEntry::new(epoch);
            for _ in 0..n {
                let b = CachedBatch {
                    first_seq: i32::from_le_bytes(r.take()?),
                    last_seq: i32::from_le_bytes(r.take()?),
                    base_offset: i64::from_le_bytes(r.take()?),
                    last_offset: i64::from_le_bytes(r.take()?),
                    append_ms: i64::from_le_bytes(r.take()?),
                };
                let ordered = e
                    .batches()
                    .last()
                    .is_none_or(|p| p.last_offset < b.base_offset);
                if b.base_offset > b.last_offset || b.last_offset >= offset || !ordered {
                    return Err(format!(
                        "producer {pid}: batch [{}, {}] out of order or not below {offset}",
                        b.base_offset, b.last_offset
                    ));
                }
                e.push(b);
            }
            e.last_append_ms = last_append_ms;
            e.tick = out.next_tick;
            out.lru.insert(out.next_tick, pid);
            out.next_tick += 1;
            out.entries.insert(pid, e);
        }
        if r.at != body.len() {
            return Err(format!("{} trailing bytes", body.len() - r.at));
        }
        while out.entries.len() > limits.producers_max {
            let Some((_, pid)) = out.lru.pop_first() else {
                break;
            };
            out.entries.remove(&pid);
        }
        Ok((offset, out))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let raw = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at += N;
        let mut out = [0u8; N];
        out.copy_from_slice(raw);
        Ok(out)
    }
}

/// CRC32C (Castagnoli) of a snapshot's bytes.
fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn pb(pid: i64, epoch: i16, first_seq: i32, records: u32) -> ProducerBatch {
        ProducerBatch::new(pid, epoch, first_seq, records - 1)
    }

    /// Checks and, if new, records `b` at `*next`; returns the check.
    fn append(s: &mut ProducerStates, b: ProducerBatch, next: &mut i64) -> Result<SequenceCheck> {
        let c = s.check(&b, NOW)?;
        if c == SequenceCheck::Append {
            let delta = (i64::from(b.last_seq) - i64::from(b.first_seq)).rem_euclid(1 << 31);
            let last = *next + delta;
            s.record(&b, *next, last, NOW);
            *next = last + 1;
        }
        Ok(c)
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn in_sequence_batches_append_and_retries_are_duplicates() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        assert_eq!(
            append(&mut s, pb(7, 0, 0, 3), &mut next).unwrap(),
            SequenceCheck::Append
        );
        assert_eq!(
            append(&mut s, pb(7, 0, 3, 2), &mut next).unwrap(),
            SequenceCheck::Append
        );
        assert_eq!(next, 5);
        let dup = append(&mut s, pb(7, 0, 0, 3), &mut next).unwrap();
        assert_eq!(
            dup,
            SequenceCheck::Duplicate(CachedBatch {
                first_seq: 0,
                last_seq: 2,
                base_offset: 0,
                last_offset: 2,
                append_ms: NOW
            })
        );
        assert_eq!(next, 5, "a duplicate is not appended");
        assert_eq!(s.get(7).unwrap().last_seq(), 4);
    }

    #[test]
    fn gaps_and_overlaps_are_out_of_order() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        append(&mut s, pb(1, 0, 0, 5), &mut next).unwrap();
        let gap = append(&mut s, pb(1, 0, 6, 1), &mut next).unwrap_err();
        assert!(
            matches!(
                gap,
                EngineError::OutOfOrderSequence {
                    expected: 5,
                    got: 6,
                    ..
                }
            ),
            "{gap:?}"
        );
        // Same start as a cached batch but a different length: not a retry of it.
        let overlap = append(&mut s, pb(1, 0, 0, 2), &mut next).unwrap_err();
        assert!(matches!(
            overlap,
            EngineError::OutOfOrderSequence {
                expected: 5,
                got: 0,
                ..
            }
        ));
        assert!(gap.to_string().contains("expects sequence 5"), "{gap}");
    }

    #[test]
    fn unknown_producer_must_start_at_zero() {
        let s = ProducerStates::default();
        let err = s.check(&pb(9, 0, 4, 1), NOW).unwrap_err();
        assert!(matches!(
            err,
            EngineError::UnknownProducerId {
                producer_id: 9,
                base_sequence: 4,
                ..
            }
        ));
        assert_eq!(
            s.check(&pb(9, 0, 0, 1), NOW).unwrap(),
            SequenceCheck::Append
        );
        let bad = s.check(&pb(9, 0, -1, 1), NOW).unwrap_err();
        assert!(matches!(bad, EngineError::InvalidProducerFields { .. }));
        let bad = s.check(&pb(9, -1, 0, 1), NOW).unwrap_err();
        assert!(matches!(bad, EngineError::InvalidProducerFields { .. }));
    }

    #[test]
    fn untracked_batches_have_no_producer_or_are_control() {
        let mut h = BatchHeader {
            base_offset: 0,
            payload_len_bytes: 0,
            leader_epoch: -1,
            log_append_time_ms: -1,
            crc32c: 0,
            version: strata_schema::BATCH_VERSION,
            payload_format: strata_schema::PayloadFormat::Native,
            attributes: strata_schema::Attributes::default(),
            producer_epoch: -1,
            last_offset_delta: 2,
            record_count: 3,
            base_sequence: -1,
            first_timestamp_ms: 0,
            max_timestamp_ms: 0,
            producer_id: -1,
        };
        assert_eq!(ProducerBatch::from_header(&h), None);
        h.producer_id = 5;
        h.producer_epoch = 2;
        h.base_sequence = 10;
        assert_eq!(ProducerBatch::from_header(&h), Some(pb(5, 2, 10, 3)));
        h.attributes = h.attributes.with_control(true);
        assert_eq!(ProducerBatch::from_header(&h), None);
    }

    #[test]
    fn older_epoch_is_fenced_newer_epoch_restarts_at_zero() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        append(&mut s, pb(3, 2, 0, 4), &mut next).unwrap();
        let fenced = append(&mut s, pb(3, 1, 4, 1), &mut next).unwrap_err();
        assert!(matches!(
            fenced,
            EngineError::ProducerFenced {
                producer_epoch: 1,
                current_epoch: 2,
                ..
            }
        ));
        let bad = append(&mut s, pb(3, 3, 4, 1), &mut next).unwrap_err();
        assert!(matches!(
            bad,
            EngineError::OutOfOrderSequence {
                expected: 0,
                got: 4,
                ..
            }
        ));
        assert_eq!(
            append(&mut s, pb(3, 3, 0, 2), &mut next).unwrap(),
            SequenceCheck::Append
        );
        let e = s.get(3).unwrap();
        assert_eq!((e.epoch(), e.batches().len(), e.last_seq()), (3, 1, 1));
        // The old epoch's batches are forgotten: their retry is fenced, not a duplicate.
        assert!(matches!(
            append(&mut s, pb(3, 2, 0, 4), &mut next).unwrap_err(),
            EngineError::ProducerFenced { .. }
        ));
    }

    #[test]
    fn sequence_wraps_past_i32_max() {
        let mut s = ProducerStates::default();
        assert_eq!(pb(1, 0, i32::MAX - 1, 4).last_seq, 1);
        s.record(&pb(1, 0, i32::MAX - 2, 3), 0, 2, NOW);
        assert_eq!(s.get(1).unwrap().last_seq(), i32::MAX);
        assert_eq!(
            s.check(&pb(1, 0, 0, 1), NOW).unwrap(),
            SequenceCheck::Append
        );
        s.record(&pb(1, 0, 0, 1), 3, 3, NOW);
        assert!(matches!(
            s.check(&pb(1, 0, 2, 1), NOW).unwrap_err(),
            EngineError::OutOfOrderSequence {
                expected: 1,
                got: 2,
                ..
            }
        ));
        // A batch spanning the wrap is a duplicate by its wrapped range too.
        s.record(&pb(2, 0, i32::MAX - 1, 4), 4, 7, NOW);
        assert!(matches!(
            s.check(&pb(2, 0, i32::MAX - 1, 4), NOW).unwrap(),
            SequenceCheck::Duplicate(CachedBatch {
                base_offset: 4,
                last_offset: 7,
                ..
            })
        ));
        assert_eq!(
            s.check(&pb(2, 0, 2, 1), NOW).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn only_the_last_five_batches_are_duplicates() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        for seq in 0..7 {
            append(&mut s, pb(1, 0, seq, 1), &mut next).unwrap();
        }
        assert_eq!(s.get(1).unwrap().batches().len(), PRODUCER_BATCHES_CACHED);
        for seq in 2..7 {
            assert!(matches!(
                s.check(&pb(1, 0, seq, 1), NOW).unwrap(),
                SequenceCheck::Duplicate(CachedBatch { base_offset, .. }) if base_offset == i64::from(seq)
            ));
        }
        for seq in 0..2 {
            assert!(matches!(
                s.check(&pb(1, 0, seq, 1), NOW).unwrap_err(),
                EngineError::OutOfOrderSequence { expected: 7, .. }
            ));
        }
    }

    #[test]
    fn least_recently_used_producer_is_evicted() {
        let limits = ProducerLimits {
            producers_max: 3,
            ..ProducerLimits::default()
        };
        let mut s = ProducerStates::new(limits);
        let mut next = 0;
        for pid in 0..3 {
            append(&mut s, pb(pid, 0, 0, 1), &mut next).unwrap();
        }
        // Producer 0 appends again, so 1 is now the least recently used.
        append(&mut s, pb(0, 0, 1, 1), &mut next).unwrap();
        append(&mut s, pb(3, 0, 0, 1), &mut next).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.get(1).is_none());
        assert_eq!(s.iter().map(|(p, _)| p).collect::<Vec<_>>(), vec![2, 0, 3]);
        assert!(matches!(
            s.check(&pb(1, 0, 1, 1), NOW).unwrap_err(),
            EngineError::UnknownProducerId { .. }
        ));
    }

    #[test]
    fn idle_producers_expire() {
        let limits = ProducerLimits {
            expiration_ms: 1000,
            ..ProducerLimits::default()
        };
        let mut s = ProducerStates::new(limits);
        s.record(&pb(1, 0, 0, 1), 0, 0, 10);
        s.record(&pb(2, 0, 0, 1), 1, 1, 500);
        // Expired but not yet removed: judged as unknown.
        assert!(matches!(
            s.check(&pb(1, 0, 1, 1), 1010).unwrap_err(),
            EngineError::UnknownProducerId { .. }
        ));
        assert_eq!(
            s.check(&pb(1, 0, 0, 1), 1010).unwrap(),
            SequenceCheck::Append
        );
        assert_eq!(s.remove_expired(1010), 1);
        assert!(s.get(1).is_none() && s.get(2).is_some());
        // A restarted expired producer keeps nothing of its old window.
        s.record(&pb(2, 0, 0, 1), 5, 5, 2000);
        assert_eq!(s.get(2).unwrap().batches().len(), 1);
    }

    #[test]
    fn snapshot_roundtrip_and_damage() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        for pid in [5i64, 1, 9] {
            for j in 0..(pid as i32) {
                append(&mut s, pb(pid, 2, 2 * j, 2), &mut next).unwrap();
            }
        }
        let bytes = s.encode(next);
        let (offset, back) = ProducerStates::decode(&bytes, ProducerLimits::default()).unwrap();
        assert_eq!(offset, next);
        assert_eq!(back, s);
        assert_eq!(
            back.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            s.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
        for cut in [0, 10, bytes.len() - 1] {
            assert!(ProducerStates::decode(&bytes[..cut], ProducerLimits::default()).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        let err = ProducerStates::decode(&flipped, ProducerLimits::default()).unwrap_err();
        assert!(err.contains("CRC"), "{err}");
        let empty = ProducerStates::default().encode(0);
        assert_eq!(empty.len(), SNAPSHOT_HEADER_BYTES + SNAPSHOT_CRC_BYTES);
        assert!(ProducerStates::decode(&empty, ProducerLimits::default())
            .unwrap()
            .1
            .is_empty());
        // Decoding under a smaller bound keeps the most recent producers.
        let small = ProducerLimits {
            producers_max: 1,
            ..ProducerLimits::default()
        };
        let (_, one) = ProducerStates::decode(&bytes, small).unwrap();
        assert_eq!(one.iter().map(|(p, _)| p).collect::<Vec<_>>(), vec![9]);
    }

    #[test]
    fn replaying_records_rebuilds_the_same_state() {
        let mut live = ProducerStates::default();
        let mut log = Vec::new();
        let mut next = 0;
        for i in 0..40i32 {
            let pid = i64::from(i % 3);
            let seq = live.get(pid).map_or(0, |e| next_seq(e.last_seq()));
            let b = pb(pid, 0, seq, 1 + (i % 4) as u32);
            let base = next;
            append(&mut live, b, &mut next).unwrap();
            log.push((b, base, next - 1));
        }
        let mut replayed = ProducerStates::default();
        for (b, base, last) in &log {
            replayed.record(b, *base, *last, NOW);
        }
        assert_eq!(replayed, live);
    }
}
