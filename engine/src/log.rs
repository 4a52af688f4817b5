//! The partition log: an ordered sequence of segments that whole batches are
//! appended to, with offsets assigned here, read back by offset, truncated for
//! replication, and written with group commit.
//!
//! Appends are decided synchronously (offsets, positions, index entries, roll) and
//! queued; one flusher task per log writes the queue in aligned O_DIRECT writes and
//! ends each cycle with fdatasync as the flush policy asks. Appends that arrive while
//! a cycle is in flight are written and synced together by the next one. Batches are
//! `Bytes` shared by the queue, the tail cache and readers: nothing is copied but the
//! one copy into the aligned write buffer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use glommio::sync::Semaphore;
use strata_schema::{
    check_batch, stamp_base_offset, stamp_leader_epoch, stamp_log_append_time, validate_batch,
    BatchHeader, PayloadFormat, ValidatedBatch, BATCH_HEADER_BYTES,
};

use crate::appender::AlignedAppender;
use crate::batch_cache::BatchCache;
use crate::clean_marker::MetaSync;
use crate::config::{FlushPolicy, LogConfig};
use crate::error::{EngineError, Result};
use crate::faults::FaultInjector;
use crate::file::StorageFile;
use crate::index::INDEX_ENTRY_BYTES;
use crate::leader_epochs::LeaderEpochs;
use crate::producer_state::{
    ProducerBatch, ProducerEntry, ProducerStates, SequenceCheck, PRODUCER_SNAPSHOT_INTERVAL_BYTES,
};
use crate::segment::{
    segment_path, Segment, SegmentWriter, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::time_index::TIME_ENTRY_BYTES;

/// Bytes written by one flush cycle at most (one aligned write per segment touched).
pub const WRITE_CYCLE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bytes of appended batches waiting for the disk before appends wait (back-pressure).
pub const PENDING_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Index entries of the active segment are written once this many are pending (and
/// always when a segment closes): recovery rescans at most this many index intervals,
/// and durable appends do not pay an index write per flush cycle.
const INDEX_PERSIST_ENTRIES: usize = 256;
/// Segment files a log keeps open for reading at most (least recently opened close).
const OPEN_SEGMENT_FILES_MAX: usize = 16;
/// First wait before a write that failed on a full disk or a short resource is
/// retried; the wait doubles up to `STALL_RETRY_MS_MAX`.
const STALL_RETRY_MS_MIN: u64 = 50;
/// Longest wait between retries of a stalled write: how late writes resume after
/// space or descriptors come back.
const STALL_RETRY_MS_MAX: u64 = 1_000;
/// Bytes read from disk per read beyond the index interval and the byte budget.
const READ_SLACK_BYTES: usize = 16 * 1024;

/// When an append resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Once the batch is written to the file (O_DIRECT, not yet synced).
    Written,
    /// Once the batch is durable (fdatasync'ed), by the topic's flush policy.
    Durable,
}

/// How to append a batch.
#[derive(Clone, Copy, Debug)]
pub struct AppendOptions {
    pub durability: Durability,
    /// Leader epoch stamped into the batch header (-1 for none).
    pub leader_epoch: i32,
}

impl AppendOptions {
    /// Options with no leader epoch.
    pub fn new(durability: Durability) -> Self {
        AppendOptions {
            durability,
            leader_epoch: -1,
        }
    }
}

/// Where an appended batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    /// The batch is an idempotent producer's retry of one already in the log: nothing
    /// was written, and the offsets and time are the original's. Answer it as success.
    pub duplicate: bool,
}

/// Batches returned by a read, with the log's bounds at the time.
#[derive(Clone, Debug, Default)]
pub struct ReadBatches {
    /// Whole batches, the first one holding the requested offset.
    pub batches: Vec<Bytes>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
}

impl ReadBatches {
    /// Bytes returned.
    pub fn total_bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

/// What a log needs from its shard: the tail cache and the fault seam.
#[derive(Clone, Debug)]
pub struct LogEnv {
    pub cache: Rc<BatchCache>,
    pub faults: FaultInjector,
    pub metrics: Rc<crate::storage_metrics::StorageMetrics>,
}

impl Default for LogEnv {
    fn default() -> Self {
        LogEnv {
            cache: BatchCache::new(crate::batch_cache::CACHE_BUDGET_BYTES_DEFAULT),
            faults: FaultInjector::default(),
            metrics: Rc::default(),
        }
    }
}

/// A partition log, owned by one shard. Cheap to clone; all clones are the same log.
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Rc<LogInner>,
}

pub(crate) struct LogInner {
    pub(crate) id: u64,
    pub(crate) dir: PathBuf,
    pub(crate) env: LogEnv,
    /// Serialises file work: flush cycles, syncs, seals, truncation, segment swaps.
    pub(crate) io_lock: Semaphore,
    pub(crate) state: RefCell<LogState>,
    /// Where the next compaction pass starts its key map (see `compaction`).
    pub(crate) compact_from_offset: Cell<i64>,
}

/// Why a log refuses writes, and how far it can still be read.
#[derive(Clone, Debug)]
pub(crate) struct Fence {
    pub reason: String,
    pub readable_end_offset: i64,
    /// The fault that fenced the log: appends that were waiting on it get this.
    pub cause: Option<EngineError>,
}

#[derive(Clone, Debug)]
pub(crate) enum PendingOp {
    Write {
        segment_base: i64,
        base_offset: i64,
        last_offset: i64,
        bytes: Bytes,
    },
    Seal {
        segment_base: i64,
    },
    /// Producer state covering every batch below `offset`, encoded when that was the
    /// log end; written after the ops queued before it.
    ProducerSnapshot {
        offset: i64,
        bytes: Bytes,
    },
}

pub(crate) struct LogState {
    pub config: LogConfig,
    /// Ordered by base offset; the last one is active.
    pub segments: Vec<Segment>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub pending: VecDeque<PendingOp>,
    pub pending_bytes: usize,
    pub writer: Option<SegmentWriter>,
    pub flusher_running: bool,
    pub sync_timer_armed: bool,
    pub written_end_offset: i64,
    pub durable_end_offset: i64,
    /// Highest end offset an append asked to be durable.
    pub durable_wanted_offset: i64,
    pub fence: Option<Fence>,
    /// Writing stopped on a condition that heals (full disk, no descriptors): queued
    /// writes are retried with back-off, new appends are refused with this error.
    pub stall: Option<EngineError>,
    /// Wait before the next retry of a stalled write.
    pub stall_retry_ms: u64,
    pub appends_paused: bool,
    pub closed: bool,
    pub waiters: Vec<Waker>,
    pub epochs: LeaderEpochs,
    pub epochs_dirty: bool,
    /// Idempotent producers' sequences; checked and updated as offsets are assigned.
    pub producers: ProducerStates,
    /// Bytes appended since the producer state was last queued for a snapshot.
    pub producer_snapshot_bytes: u64,
    /// How the last open found the log.
    pub opened: OpenKind,
    /// The log's shape when the open finished: a close that finds it unchanged
    /// (and nothing written) has nothing to flush or re-index.
    pub opened_shape: Option<LogShape>,
    /// Segments whose file handle was opened through `segment_file`, oldest first.
    pub open_files: VecDeque<i64>,
}

/// What a close compares with the open to see that a log was left as it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogShape {
    log_start_offset: i64,
    log_end_offset: i64,
    segments: usize,
    active_base_offset: i64,
    active_size_bytes: u64,
}

/// How `Log::open` found the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenKind {
    /// A new, empty log.
    Created,
    /// A clean-shutdown marker matched the files: no recovery scan.
    Clean,
    /// No usable marker: the active segment's tail was validated by a scan.
    Recovered,
}

impl LogState {
    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    pub(crate) fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub(crate) fn shape(&self) -> LogShape {
        let a = self.active();
        LogShape {
            log_start_offset: self.log_start_offset,
            log_end_offset: a.next_offset,
            segments: self.segments.len(),
            active_base_offset: a.base_offset,
            active_size_bytes: a.size_bytes,
        }
    }

    /// Whether the files are exactly as a clean open found them (or a new log left
    /// them: none), so a close only has to write the clean marker.
    fn untouched_since_open(&self) -> bool {
        matches!(self.opened, OpenKind::Clean | OpenKind::Created)
            && self.opened_shape == Some(self.shape())
            && self.writer.is_none()
            && self.pending.is_empty()
            && !self.epochs_dirty
            && self.fence.is_none()
            && self.producer_snapshot_bytes == 0
    }

    pub(crate) fn segment_index(&self, base_offset: i64) -> Option<usize> {
        self.segments
            .binary_search_by_key(&base_offset, |s| s.base_offset)
            .ok()
    }

    /// Index of the segment that holds `offset` (the last one starting at or below it).
    pub(crate) fn segment_for(&self, offset: i64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.base_offset <= offset);
        i.checked_sub(1)
    }

    pub(crate) fn wake_all(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

thread_local! {
    static NEXT_LOG_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

pub(crate) fn next_log_id() -> u64 {
    NEXT_LOG_ID.with(|c| {
        let id = c.get();
        c.set(id + 1);
        id
    })
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering from a crash if needed.
    pub async fn open(dir: impl AsRef<Path>, config: LogConfig, env: LogEnv) -> Result<Log> {
        Self::open_with(dir, config, env, MetaSync::Each).await
    }

    /// [`open`](Self::open), with the marker removal and a new log's first producer
    /// snapshot synced as `sync` says; with `MetaSync::Deferred` the caller runs
    /// `clean_marker::sync_filesystem` before it appends to the log.
    pub async fn open_with(
        dir: impl AsRef<Path>,
        config: LogConfig,
        env: LogEnv,
        sync: MetaSync,
    ) -> Result<Log> {
        crate::recovery::open_log(dir.as_ref(), config, env, sync).await
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.borrow().log_start_offset
    }

    /// The offset the next batch will get.
    pub fn log_end_offset(&self) -> i64 {
        self.inner.state.borrow().log_end_offset()
    }

    /// Offsets below this are durable.
    pub fn durable_end_offset(&self) -> i64 {
        self.inner.state.borrow().durable_end_offset
    }

    /// The high watermark the owner set (readers stop there by default).
    pub fn high_watermark(&self) -> i64 {
        self.inner.state.borrow().high_watermark
    }

    /// Sets the high watermark; clamped to the log's bounds. Wakes readers waiting in
    /// `wait_for_data_beyond`.
    pub fn set_high_watermark(&self, offset: i64) {
        let mut st = self.inner.state.borrow_mut();
        let end = st.log_end_offset();
        let hw = offset.clamp(st.log_start_offset, end);
        if hw != st.high_watermark {
            st.high_watermark = hw;
            st.wake_all();
        }
    }

    /// Resolves once the high watermark is above `offset` (there is data to read
    /// there); fails if the log is fenced or closed first. For long-poll fetches.
    pub async fn wait_for_data_beyond(&self, offset: i64) -> Result<()> {
        self.inner.wait_for(|st| st.high_watermark > offset).await
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        self.inner.state.borrow().config.clone()
    }

    /// Replaces the configuration; it applies to the next append, roll and cleanup.
    pub fn set_config(&self, config: LogConfig) {
        self.inner.state.borrow_mut().config = config;
    }

    /// How the last open found the log (clean marker, recovery scan, or new).
    pub fn opened(&self) -> OpenKind {
        self.inner.state.borrow().opened
    }

    /// Why the log is fenced (read-only), if it is.
    pub fn fenced_reason(&self) -> Option<String> {
        self.inner
            .state
            .borrow()
            .fence
            .as_ref()
            .map(|f| f.reason.clone())
    }

    /// Whether the log is fenced by an I/O fault that reopening may clear (as opposed
    /// to corrupt data, which needs an operator): `None` when not fenced.
    pub fn fence_may_heal(&self) -> Option<bool> {
        self.inner
            .state
            .borrow()
            .fence
            .as_ref()
            .map(|f| f.cause.is_some())
    }

    /// Why writes are stalled (full disk, no descriptors) and retried, if they are.
    pub fn stalled_reason(&self) -> Option<String> {
        self.inner
            .state
            .borrow()
            .stall
            .as_ref()
            .map(ToString::to_string)
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.inner.state.borrow().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.inner
            .state
            .borrow()
            .segments
            .iter()
            .map(|s| s.base_offset)
            .collect()
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner
            .state
            .borrow()
            .segments
            .iter()
            .map(|s| s.size_bytes)
            .sum()
    }

    /// Approximate heap bytes of the log's in-memory state (not the shard cache).
    pub fn heap_bytes(&self) -> usize {
        let st = self.inner.state.borrow();
        std::mem::size_of::<LogInner>()
            + st.segments.iter().map(Segment::heap_bytes).sum::<usize>()
            + st.segments.capacity() * std::mem::size_of::<Segment>()
            + st.producers.heap_bytes()
    }

    /// What the partition knows about idempotent producer `producer_id`: its epoch and
    /// last batches (`None` if untracked, evicted or expired and removed).
    pub fn producer(&self, producer_id: i64) -> Option<ProducerEntry> {
        self.inner
            .state
            .borrow()
            .producers
            .get(producer_id)
            .cloned()
    }

    /// Idempotent producers tracked.
    pub fn producer_count(&self) -> usize {
        self.inner.state.borrow().producers.len()
    }

    /// For replication: the largest epoch at or below `epoch` and where it ended.
    pub fn epoch_end_offset(&self, epoch: i32) -> Option<(i32, i64)> {
        let st = self.inner.state.borrow();
        st.epochs.end_offset_for(epoch, st.log_end_offset())
    }

    /// The newest leader epoch written.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.inner.state.borrow().epochs.latest()
    }

    /// Validates and appends one batch, assigning its offsets, and resolves as
    /// `options.durability` asks.
    ///
    /// A batch with a producer id (Kafka's idempotent producer) must continue that
    /// producer's sequence; a retry of one of its last five batches is not written again
    /// but answered with the original's offsets (`AppendInfo::duplicate`), once the
    /// original is as durable as asked. Errors: `ProducerFenced`, `OutOfOrderSequence`,
    /// `UnknownProducerId`, `InvalidProducerFields` (see `producer_state`).
    pub async fn append(&self, batch: Vec<u8>, options: AppendOptions) -> Result<AppendInfo> {
        self.append_validated(ValidatedBatch::new(batch)?, options)
            .await
    }

    /// [`append`](Self::append) of a batch already validated, so that the produce
    /// path passes over a batch's records once (with its topic's produce rules).
    pub async fn append_validated(
        &self,
        batch: ValidatedBatch,
        options: AppendOptions,
    ) -> Result<AppendInfo> {
        let epoch = options.leader_epoch;
        self.append_deciding_epoch(batch, options.durability, move |_, _| Ok(epoch))
            .await
    }

    /// [`append_validated`](Self::append_validated) with the leader epoch decided by
    /// `decide_epoch(base_offset, offsets)` in the same synchronous step that assigns
    /// the offsets, after the producer-state check (a duplicate never calls it). If it
    /// fails, nothing is queued and producer state is unchanged.
    pub(crate) async fn append_deciding_epoch(
        &self,
        batch: ValidatedBatch,
        durability: Durability,
        decide_epoch: impl FnOnce(i64, u64) -> Result<i32>,
    ) -> Result<AppendInfo> {
        let header = *batch.header();
        let mut batch = batch.into_bytes();
        let max_bytes = self.inner.state.borrow().config.max_batch_bytes;
        if batch.len() > max_bytes {
            return Err(EngineError::BatchTooLarge {
                len_bytes: batch.len(),
                max_bytes,
            });
        }
        self.wait_for_room().await?;
        let info = self.inner.assign(&mut batch, &header, decide_epoch)?;
        if !info.duplicate {
            self.inner.kick_flusher();
        }
        if durability == Durability::Durable {
            self.inner.want_durable(info.last_offset + 1);
        }
        self.inner
            .wait_until(info.last_offset + 1, durability)
            .await?;
        Ok(info)
    }

    pub(crate) async fn wait_for_room(&self) -> Result<()> {
        let inner = &self.inner;
        futures_lite::future::poll_fn(|cx| {
            let mut st = inner.state.borrow_mut();
            if st.closed {
                return Poll::Ready(Err(EngineError::Closed {
                    path: inner.dir.clone(),
                }));
            }
            if let Some(f) = &st.fence {
                return Poll::Ready(Err(fenced_error(&inner.dir, f)));
            }
            if let Some(e) = &st.stall {
                return Poll::Ready(Err(e.clone()));
            }
            if !st.appends_paused && st.pending_bytes < PENDING_BYTES_MAX {
                return Poll::Ready(Ok(()));
            }
            st.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Whole batches from the one holding `from_offset`, up to `max_bytes` (at least
    /// one batch) and stopping before `max_offset` (default: the high watermark).
    pub async fn read(
        &self,
        from_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
    ) -> Result<ReadBatches> {
        let (start, end, hw, limit) = {
            let st = self.inner.state.borrow();
            let end = st.log_end_offset();
            let mut limit = max_offset.unwrap_or(st.high_watermark).min(end);
            if let Some(f) = &st.fence {
                limit = limit.min(f.readable_end_offset);
            }
            (st.log_start_offset, end, st.high_watermark, limit)
        };
        if from_offset < start || from_offset > end {
            return Err(EngineError::OffsetOutOfRange {
                requested: from_offset,
                start,
                end,
            });
        }
        let mut out = ReadBatches {
            batches: Vec::new(),
            log_start_offset: start,
            log_end_offset: end,
            high_watermark: hw,
        };
        if from_offset >= limit {
            return Ok(out);
        }
        out.batches = self
            .inner
            .read_batches(from_offset, limit, max_bytes)
            .await?;
        Ok(out)
    }

    /// The first batch whose timestamp is at or after `timestamp_ms`: (offset,
    /// timestamp). For native batches the offset is that of the first such record.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>> {
        let start = {
            let st = self.inner.state.borrow();
            let Some(seg) = st
                .segments
                .iter()
                .find(|s| s.max_timestamp_ms >= timestamp_ms)
            else {
                return Ok(None);
            };
            match seg.time_index.older_than(timestamp_ms) {
                Some(rel) if seg.indexes_loaded => seg.base_offset + i64::from(rel) + 1,
                _ => seg.base_offset,
            }
            .max(st.log_start_offset)
        };
        let mut offset = start;
        let end = self.log_end_offset();
        while offset < end {
            let batches = self.inner.read_batches(offset, end, 1 << 20).await?;
            if batches.is_empty() {
                break;
            }
            let config = self.inner.state.borrow().config.clone();
            for bytes in &batches {
                let view = check_batch(bytes)?;
                let batch_time = config.batch_time_ms(&view);
                if batch_time >= timestamp_ms {
                    if config.log_append_time {
                        return Ok(Some((view.base_offset, batch_time)));
                    }
                    return Ok(Some(first_record_at_or_after(bytes, &view, timestamp_ms)));
                }
                offset = view.last_offset() + 1;
            }
        }
        Ok(None)
    }

    /// Waits until everything appended so far is durable.
    pub async fn sync(&self) -> Result<()> {
        let end = self.log_end_offset();
        self.inner.want_durable(end);
        self.inner.kick_flusher();
        self.inner.force_sync_if_idle().await?;
        self.inner.wait_until(end, Durability::Durable).await
    }

    /// Closes the active segment and starts a new one at the log end.
    pub async fn roll(&self) -> Result<()> {
        let sealed_base = {
            let mut st = self.inner.state.borrow_mut();
            if st.active().is_empty() {
                return Ok(());
            }
            let base = st.active().base_offset;
            self.inner.roll_locked(&mut st);
            base
        };
        self.inner.kick_flusher();
        self.inner
            .wait_for(|st| {
                st.segment_index(sealed_base)
                    .is_none_or(|i| st.segments[i].closed)
            })
            .await?;
        self.sync().await
    }

    /// Removes every batch at or after `offset`, which must be a batch boundary
    /// within [log start, log end]. Durable before it returns.
    pub async fn truncate(&self, offset: i64) -> Result<()> {
        self.with_appends_paused(self.truncate_paused(offset)).await
    }

    /// Runs `work` (which rewrites the log's tail) with new appends held back, then
    /// lets them go.
    pub(crate) async fn with_appends_paused<T>(
        &self,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.inner.state.borrow_mut().appends_paused = true;
        let result = work.await;
        let mut st = self.inner.state.borrow_mut();
        st.appends_paused = false;
        st.wake_all();
        result
    }

    async fn truncate_paused(&self, offset: i64) -> Result<()> {
        self.sync().await?;
        let inner = &self.inner;
        let _io = inner
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| inner.closed_error())?;
        let (start, end) = {
            let st = inner.state.borrow();
            (st.log_start_offset, st.log_end_offset())
        };
        if offset < start || offset > end {
            return Err(EngineError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        if offset == end {
            return Ok(());
        }
        let seg_i = inner.state.borrow().segment_for(offset).unwrap_or(0);
        let seg_base = inner.state.borrow().segments[seg_i].base_offset;
        let (position, max_ts) = inner.find_batch_start(seg_base, offset).await?;
        // Snapshots of producer state past the new end would describe removed batches.
        crate::recovery::remove_producer_snapshots_above(inner, offset).await?;
        // Drop the writer: the segment it belongs to is cut or deleted below.
        let old_writer = inner.state.borrow_mut().writer.take();
        drop(old_writer);
        let removed: Vec<Segment> = inner
            .state
            .borrow_mut()
            .segments
            .drain(seg_i + 1..)
            .collect();
        for seg in removed {
            crate::retention::remove_segment_files(&inner.dir, seg.base_offset).await?;
        }
        let file = inner.segment_file(seg_base, true).await?;
        file.truncate(position).await?;
        file.fdatasync().await?;
        // The active segment's indexes are rewritten when its writer opens; until then
        // stale index files are only hints that recovery validates.
        {
            let mut st = inner.state.borrow_mut();
            let seg = st.active_mut();
            let rel = seg.rel(offset);
            seg.index.truncate_to_position(position);
            seg.time_index.truncate_to_offset(rel);
            seg.size_bytes = position;
            seg.written_bytes = position;
            seg.next_offset = offset;
            seg.max_timestamp_ms = max_ts;
            seg.bytes_since_index = position - seg.index.last().map_or(0, |(_, p)| u64::from(p));
            seg.closed = false;
            seg.file = Some(file);
            seg.file_writable = true;
            if position == 0 {
                seg.first_append_ms = -1;
            }
            st.written_end_offset = offset;
            st.durable_end_offset = offset;
            st.durable_wanted_offset = st.durable_wanted_offset.min(offset);
            // The files differ from what the open found even when the shape is back
            // where it was (a cut to the opened end): the close re-indexes.
            st.opened_shape = None;
            st.high_watermark = st.high_watermark.min(offset);
            st.epochs.truncate_from(offset);
            st.epochs_dirty = true;
            // A roll queued meanwhile snapshotted the state before the cut.
            st.pending.retain(
                |op| !matches!(op, PendingOp::ProducerSnapshot { offset: o, .. } if *o > offset),
            );
        }
        inner.env.cache.truncate_from(inner.id, offset);
        inner.persist_epochs_if_dirty().await?;
        // Producer state as of the new end: the newest snapshot at or below it plus the
        // batches after that; saved at the new end so the next open starts from there.
        let producers = crate::recovery::rebuild_producers(inner, offset).await?;
        let bytes = producers.encode(offset);
        {
            let mut st = inner.state.borrow_mut();
            st.producers = producers;
            st.producer_snapshot_bytes = 0;
        }
        crate::recovery::write_producer_snapshot(inner, offset, bytes.into()).await
    }

    /// Flushes everything, writes exact indexes and the clean-shutdown marker.
    pub async fn close(&self) -> Result<()> {
        self.close_with(MetaSync::Each).await
    }

    /// [`close`](Self::close), with the clean marker synced as `sync` says; with
    /// `MetaSync::Deferred` the caller runs `clean_marker::sync_filesystem` after
    /// closing its logs (the data itself is always durable before the marker is
    /// written, and a marker lost to a crash only costs the next open a scan).
    pub async fn close_with(&self, sync: MetaSync) -> Result<()> {
        self.inner.state.borrow_mut().appends_paused = true;
        // Writes stalled on a full disk may never finish: close without them (they
        // were never acknowledged) rather than wait; the next open recovers.
        let stall = self.inner.state.borrow().stall.clone();
        if let Some(e) = stall {
            self.inner.fail(&e);
        }
        let synced = self.sync().await;
        let inner = &self.inner;
        let _io = inner
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| inner.closed_error())?;
        let fenced = inner.state.borrow().fence.is_some();
        let untouched = inner.state.borrow().untouched_since_open();
        let result = match (synced, fenced) {
            // Nothing to flush or re-index: the files are as the open found them.
            (Ok(()), false) if untouched => inner.write_clean_marker(sync).await,
            (Ok(()), false) => inner.finish_clean(sync).await,
            (Ok(()), true) => Ok(()),
            (Err(e), _) => Err(e),
        };
        let mut st = inner.state.borrow_mut();
        st.closed = true;
        st.writer = None;
        for seg in &mut st.segments {
            seg.file = None;
        }
        st.wake_all();
        drop(st);
        inner.env.cache.remove_log(inner.id);
        result
    }
}

/// The offset and timestamp of the first record at or after `ts` in a batch whose
/// max timestamp is at or after it.
fn first_record_at_or_after(bytes: &[u8], header: &BatchHeader, ts: i64) -> (i64, i64) {
    if header.payload_format == PayloadFormat::Kafka {
        // Records of Kafka batches (compressed or not, decompressed once) carry time
        // deltas from the batch's first timestamp.
        if let Ok((_, decoded)) = strata_schema::validate_kafka_batch(bytes) {
            let first_ms = decoded.header().base_timestamp_ms;
            for r in decoded.iter().flatten() {
                let at_ms = first_ms + r.timestamp_delta_ms;
                if at_ms >= ts {
                    return (header.base_offset + i64::from(r.offset_delta), at_ms);
                }
            }
        }
    } else if let Ok(view) = validate_batch(bytes) {
        if let Ok(records) = view.records() {
            for r in records {
                if r.timestamp_ms() >= ts {
                    return (r.offset(), r.timestamp_ms());
                }
            }
        }
    }
    (header.base_offset, header.max_timestamp_ms)
}

/// Queues a snapshot of the producer state as of the log end (every batch assigned so
/// far), dropping producers expired at `now_ms` first.
pub(crate) fn queue_producer_snapshot(st: &mut LogState, now_ms: i64) {
    let offset = st.log_end_offset();
    st.producers.remove_expired(now_ms);
    let bytes = Bytes::from(st.producers.encode(offset));
    st.pending
        .push_back(PendingOp::ProducerSnapshot { offset, bytes });
    st.producer_snapshot_bytes = 0;
}

pub(crate) fn fenced_error(dir: &Path, fence: &Fence) -> EngineError {
    EngineError::Fenced {
        path: dir.to_path_buf(),
        reason: fence.reason.clone(),
    }
}

/// A batch whose offsets are decided and whose bytes are stamped, as it is queued.
pub(crate) struct QueuedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub leader_epoch: i32,
    /// The time the time index and retention see for the batch.
    pub batch_time_ms: i64,
    /// The producer batch to record, with its append time.
    pub producer: Option<(ProducerBatch, i64)>,
}

impl LogInner {
    /// Queues a decided batch at the log end: the active segment's index entries, the
    /// write queue, the leader epochs, the producer state and the tail cache. The
    /// one place both the leader's and a follower's appends go through.
    pub(crate) fn queue_batch(
        &self,
        mut st: std::cell::RefMut<'_, LogState>,
        batch: Vec<u8>,
        q: QueuedBatch,
        now: i64,
    ) {
        let len = batch.len() as u64;
        let interval = u64::from(st.config.index_interval_bytes);
        let seg = st.active_mut();
        let position = seg.size_bytes;
        if seg.first_append_ms < 0 {
            seg.first_append_ms = now;
        }
        seg.note_batch(
            position,
            q.base_offset,
            q.last_offset,
            len,
            q.batch_time_ms,
            interval,
        );
        let segment_base = seg.base_offset;
        let bytes = Bytes::from(batch);
        st.pending_bytes += bytes.len();
        st.pending.push_back(PendingOp::Write {
            segment_base,
            base_offset: q.base_offset,
            last_offset: q.last_offset,
            bytes: bytes.clone(),
        });
        if st.epochs.observe(q.leader_epoch, q.base_offset) {
            st.epochs_dirty = true;
        }
        if let Some((p, append_ms)) = &q.producer {
            st.producers
                .record(p, q.base_offset, q.last_offset, *append_ms);
        }
        st.producer_snapshot_bytes += len;
        if st.producer_snapshot_bytes >= PRODUCER_SNAPSHOT_INTERVAL_BYTES {
            queue_producer_snapshot(&mut st, now);
        }
        drop(st);
        self.env
            .cache
            .insert(self.id, q.base_offset, q.last_offset, bytes);
    }

    pub(crate) fn closed_error(&self) -> EngineError {
        EngineError::Closed {
            path: self.dir.clone(),
        }
    }

    /// Assigns offsets and a position to a validated batch and queues it.
    /// `decide_epoch(base_offset, offsets)` runs after the producer-state check and
    /// before anything changes; the state is not borrowed while it runs (it may read
    /// the log), and no await separates it from the assignment, so nothing else can
    /// append in between.
    fn assign(
        &self,
        batch: &mut Vec<u8>,
        header: &BatchHeader,
        decide_epoch: impl FnOnce(i64, u64) -> Result<i32>,
    ) -> Result<AppendInfo> {
        let now = now_ms();
        let st = self.state.borrow();
        if let Some(f) = &st.fence {
            return Err(fenced_error(&self.dir, f));
        }
        let producer = ProducerBatch::from_header(header);
        if let Some(p) = &producer {
            if let SequenceCheck::Duplicate(original) = st.producers.check(p, now)? {
                return Ok(AppendInfo {
                    base_offset: original.base_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: original.append_ms,
                    duplicate: true,
                });
            }
        }
        let base_offset = st.log_end_offset();
        drop(st);
        let delta = i64::from(header.last_offset_delta);
        let leader_epoch = decide_epoch(base_offset, header.last_offset_delta as u64 + 1)?;
        let mut st = self.state.borrow_mut();
        debug_assert_eq!(st.log_end_offset(), base_offset, "decide_epoch appended");
        let len = batch.len() as u64;
        self.roll_if_due(&mut st, len, delta, now);
        let base_offset = st.log_end_offset();
        let last_offset = base_offset + delta;
        stamp_base_offset(batch, base_offset);
        stamp_leader_epoch(batch, leader_epoch);
        stamp_log_append_time(batch, now);
        let batch_time_ms = if st.config.log_append_time {
            now
        } else {
            header.max_timestamp_ms
        };
        let producer = producer.map(|p| (p, now));
        self.queue_batch(
            st,
            std::mem::take(batch),
            QueuedBatch {
                base_offset,
                last_offset,
                leader_epoch,
                batch_time_ms,
                producer,
            },
            now,
        );
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: now,
            duplicate: false,
        })
    }

    /// Rolls the active segment if a batch of `len` bytes spanning `delta + 1`
    /// offsets would make it too big or it is too old (at broker time `now`).
    pub(crate) fn roll_if_due(&self, st: &mut LogState, len: u64, delta: i64, now: i64) {
        let cfg = &st.config;
        let active = st.active();
        // Index positions are u32: no segment grows past 4 GiB whatever the config.
        let too_big = active.size_bytes + len > cfg.segment_bytes.min(u64::from(u32::MAX));
        let too_old = active.first_append_ms >= 0
            && now.saturating_sub(active.first_append_ms) >= cfg.segment_ms as i64;
        let rel_overflow = active.next_offset + delta - active.base_offset > i64::from(u32::MAX);
        if !active.is_empty() && (too_big || too_old || rel_overflow) {
            self.roll_locked(st);
        }
    }

    /// Seals the active segment and opens a new, empty one at the log end. The
    /// producer state as of the new segment's base is snapshotted after the seal, so
    /// that retention may delete the sealed segments without losing it.
    pub(crate) fn roll_locked(&self, st: &mut LogState) {
        let base = st.active().base_offset;
        let next = st.log_end_offset();
        st.pending.push_back(PendingOp::Seal { segment_base: base });
        queue_producer_snapshot(st, now_ms());
        st.segments.push(Segment::empty(next));
    }

    pub(crate) fn want_durable(&self, end_offset: i64) {
        let mut st = self.state.borrow_mut();
        st.durable_wanted_offset = st.durable_wanted_offset.max(end_offset);
    }

    /// Waits until offsets below `end_offset` are written or durable.
    pub(crate) async fn wait_until(&self, end_offset: i64, durability: Durability) -> Result<()> {
        self.wait_for(|st| match durability {
            Durability::Written => st.written_end_offset >= end_offset,
            Durability::Durable => st.durable_end_offset >= end_offset,
        })
        .await
    }

    /// Waits until `reached(state)` holds; fails if the log is fenced or closed first.
    pub(crate) async fn wait_for(&self, reached: impl Fn(&LogState) -> bool) -> Result<()> {
        futures_lite::future::poll_fn(|cx| {
            let mut st = self.state.borrow_mut();
            if reached(&st) {
                return Poll::Ready(Ok(()));
            }
            if let Some(f) = &st.fence {
                let err = f
                    .cause
                    .clone()
                    .unwrap_or_else(|| fenced_error(&self.dir, f));
                return Poll::Ready(Err(err));
            }
            if st.closed {
                return Poll::Ready(Err(self.closed_error()));
            }
            st.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Starts the flusher task if there is queued work and none is running.
    pub(crate) fn kick_flusher(self: &Rc<Self>) {
        if self.state.borrow().stall.is_some() {
            // The stall's retry timer restarts the flusher.
            return;
        }
        self.start_flusher();
    }

    fn start_flusher(self: &Rc<Self>) {
        let mut st = self.state.borrow_mut();
        if st.flusher_running || st.pending.is_empty() || st.fence.is_some() || st.closed {
            return;
        }
        st.flusher_running = true;
        drop(st);
        let inner = Rc::clone(self);
        glommio::spawn_local(async move { inner.flush_loop().await }).detach();
    }

    /// Syncs now if nothing is queued but written data is not yet durable.
    async fn force_sync_if_idle(self: &Rc<Self>) -> Result<()> {
        let needs = {
            let st = self.state.borrow();
            !st.flusher_running && st.durable_end_offset < st.written_end_offset
        };
        if needs {
            let _io = self
                .io_lock
                .acquire_permit(1)
                .await
                .map_err(|_| self.closed_error())?;
            if let Err(e) = self.sync_active().await {
                self.fail(&e);
                return Err(e);
            }
            self.state.borrow_mut().wake_all();
        }
        Ok(())
    }

    async fn flush_loop(self: Rc<Self>) {
        let Ok(_io) = self.io_lock.acquire_permit(1).await else {
            self.state.borrow_mut().flusher_running = false;
            return;
        };
        let mut stalled = false;
        loop {
            let ops = self.take_cycle();
            if ops.is_empty() {
                break;
            }
            let (done, written) = self.write_cycle(&ops).await;
            // Ops that completed are never written again, even when a later one failed.
            self.finish_cycle(done);
            let result = match written {
                Ok(()) => {
                    self.clear_stall();
                    async {
                        if self.sync_due_now() {
                            self.sync_active().await?;
                        }
                        match self.persist_epochs_if_dirty().await {
                            // Still dirty: written by the next cycle or the close.
                            Err(e) if e.heals() => {
                                tracing::debug!(error = %e, "leader epochs write deferred");
                                Ok(())
                            }
                            other => other,
                        }
                    }
                    .await
                }
                Err(e) if e.heals() => {
                    self.stall(e);
                    stalled = true;
                    break;
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                // A failed fdatasync leaves the written data's fate unknown: fence,
                // whatever the errno.
                self.fail(&e);
                break;
            }
            self.state.borrow_mut().wake_all();
        }
        if stalled {
            let retry_ms = self.state.borrow().stall_retry_ms;
            let inner = Rc::clone(&self);
            drop(_io);
            self.state.borrow_mut().flusher_running = false;
            glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_millis(retry_ms)).await;
                inner.start_flusher();
            })
            .detach();
            return;
        }
        let arm_timer = {
            let mut st = self.state.borrow_mut();
            st.flusher_running = false;
            st.wake_all();
            match st.config.flush {
                FlushPolicy::IntervalMs(ms)
                    if !st.sync_timer_armed && st.durable_end_offset < st.written_end_offset =>
                {
                    st.sync_timer_armed = true;
                    Some(ms)
                }
                _ => None,
            }
        };
        if let Some(ms) = arm_timer {
            let inner = Rc::clone(&self);
            glommio::spawn_local(async move { inner.interval_sync(ms).await }).detach();
        }
    }

    async fn interval_sync(self: Rc<Self>, interval_ms: u64) {
        glommio::timer::sleep(Duration::from_millis(interval_ms)).await;
        let Ok(_io) = self.io_lock.acquire_permit(1).await else {
            return;
        };
        self.state.borrow_mut().sync_timer_armed = false;
        if self.state.borrow().closed {
            return;
        }
        if let Err(e) = self.sync_active().await {
            self.fail(&e);
        }
        self.state.borrow_mut().wake_all();
    }

    /// Records that writing stopped on a condition that heals; the flusher retries.
    fn stall(&self, err: EngineError) {
        let mut st = self.state.borrow_mut();
        if st.stall.is_none() {
            tracing::warn!(dir = %self.dir.display(), error = %err, "partition writes stalled; retrying");
            st.stall_retry_ms = STALL_RETRY_MS_MIN;
        } else {
            st.stall_retry_ms = (st.stall_retry_ms * 2).min(STALL_RETRY_MS_MAX);
        }
        st.stall = Some(err);
        st.wake_all();
    }

    fn clear_stall(&self) {
        let mut st = self.state.borrow_mut();
        if st.stall.take().is_some() {
            tracing::info!(dir = %self.dir.display(), "partition writes resumed");
            st.wake_all();
        }
    }

    /// The queued ops the next cycle writes: whole ops up to the cycle's byte limit.
    fn take_cycle(&self) -> Vec<PendingOp> {
        let st = self.state.borrow();
        if st.fence.is_some() {
            return Vec::new();
        }
        let mut bytes = 0usize;
        let mut ops = Vec::new();
        for op in &st.pending {
            if let PendingOp::Write { bytes: b, .. } = op {
                if !ops.is_empty() && bytes + b.len() > WRITE_CYCLE_BYTES_MAX {
                    break;
                }
                bytes += b.len();
            }
            ops.push(op.clone());
        }
        ops
    }

    fn finish_cycle(&self, ops: usize) {
        let mut st = self.state.borrow_mut();
        for op in st.pending.drain(..ops).collect::<Vec<_>>() {
            if let PendingOp::Write { bytes, .. } = op {
                st.pending_bytes -= bytes.len();
            }
        }
    }

    fn sync_due_now(&self) -> bool {
        let st = self.state.borrow();
        st.durable_end_offset < st.written_end_offset
            && (st.config.flush == FlushPolicy::EveryBatch
                || st.durable_wanted_offset > st.durable_end_offset
                    && st.config.flush == FlushPolicy::Os)
    }

    /// Writes `ops` in order; returns how many completed and how the cycle ended.
    /// Each op either completes or changes nothing that a retry would repeat.
    async fn write_cycle(&self, ops: &[PendingOp]) -> (usize, Result<()>) {
        let mut i = 0;
        while i < ops.len() {
            let (next, done) = match &ops[i] {
                PendingOp::Write { segment_base, .. } => {
                    let run_end = ops[i..]
                        .iter()
                        .position(|op| !matches!(op, PendingOp::Write { segment_base: b, .. } if b == segment_base))
                        .map_or(ops.len(), |n| i + n);
                    (
                        run_end,
                        self.write_run(*segment_base, &ops[i..run_end]).await,
                    )
                }
                PendingOp::Seal { segment_base } => (i + 1, self.seal(*segment_base).await),
                PendingOp::ProducerSnapshot { offset, bytes } => (
                    i + 1,
                    crate::recovery::write_producer_snapshot(self, *offset, bytes.clone()).await,
                ),
            };
            if let Err(e) = done {
                return (i, Err(e));
            }
            i = next;
        }
        (i, Ok(()))
    }

    async fn write_run(&self, segment_base: i64, run: &[PendingOp]) -> Result<()> {
        let mut writer = self.take_writer(segment_base).await?;
        let chunks: Vec<&[u8]> = run
            .iter()
            .filter_map(|op| match op {
                PendingOp::Write { bytes, .. } => Some(&bytes[..]),
                PendingOp::Seal { .. } | PendingOp::ProducerSnapshot { .. } => None,
            })
            .collect();
        let end_offset = match run.last() {
            Some(PendingOp::Write { last_offset, .. }) => last_offset + 1,
            _ => return Ok(()),
        };
        self.reserve_space(&mut writer, chunks.iter().map(|c| c.len() as u64).sum())
            .await?;
        let started = std::time::Instant::now();
        writer.log.append(&chunks).await?;
        let written = writer.log.size_bytes();
        let bytes: usize = chunks.iter().map(|c| c.len()).sum();
        self.env
            .metrics
            .record_write(bytes as u64, started.elapsed());
        {
            let mut st = self.state.borrow_mut();
            if let Some(i) = st.segment_index(segment_base) {
                st.segments[i].written_bytes = written;
            }
            st.written_end_offset = st.written_end_offset.max(end_offset);
        }
        match self
            .persist_index_entries(&mut writer, written, end_offset, false)
            .await
        {
            Ok(()) => self.state.borrow_mut().writer = Some(writer),
            // The batches are in the log file, so the run is done and must not be
            // written again; the next writer rewrites the index files from memory.
            Err(e) if e.heals() => {
                tracing::debug!(error = %e, "index write deferred");
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Extends the log file's reservation ahead of a write of `more_bytes`.
    async fn reserve_space(&self, w: &mut SegmentWriter, more_bytes: u64) -> Result<()> {
        let (preallocate, segment_bytes) = {
            let st = self.state.borrow();
            (st.config.preallocate, st.config.segment_bytes)
        };
        if !preallocate {
            return Ok(());
        }
        let before = w.reservation;
        let needed = w.log.size_bytes() + more_bytes;
        if let Some(target) = w.reservation.extend_for(needed, segment_bytes) {
            match w.log.file().preallocate(target).await {
                Ok(()) => {}
                // A reservation is an optimisation: the write itself may still fit.
                Err(e) if e.heals() => w.reservation = before,
                Err(e) => {
                    w.reservation = before;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Appends index entries of data now on disk (below `written` bytes); unsynced,
    /// they are hints that recovery validates.
    async fn persist_index_entries(
        &self,
        w: &mut SegmentWriter,
        written: u64,
        written_end_offset: i64,
        all: bool,
    ) -> Result<()> {
        let (index_bytes, index_n, time_bytes, time_n) = {
            let st = self.state.borrow();
            let Some(i) = st.segment_index(w.base_offset) else {
                return Ok(());
            };
            let seg = &st.segments[i];
            let index_n = seg.index.count_below(written);
            if !all && index_n < w.index_persisted + INDEX_PERSIST_ENTRIES {
                return Ok(());
            }
            let time_n = if written_end_offset > seg.base_offset {
                seg.time_index.count_upto(seg.rel(written_end_offset - 1))
            } else {
                0
            };
            (
                seg.index.encode_range(w.index_persisted, index_n),
                index_n,
                seg.time_index.encode_range(w.time_persisted, time_n),
                time_n,
            )
        };
        if index_n > w.index_persisted {
            w.index.append(&[&index_bytes]).await?;
            w.index_persisted = index_n;
        }
        if time_n > w.time_persisted {
            w.time_index.append(&[&time_bytes]).await?;
            w.time_persisted = time_n;
        }
        Ok(())
    }

    /// The writer for `segment_base`, opening its files if needed. Index files are
    /// rewritten from the in-memory indexes when a writer opens.
    async fn take_writer(&self, segment_base: i64) -> Result<SegmentWriter> {
        if let Some(w) = self.state.borrow_mut().writer.take() {
            if w.base_offset == segment_base {
                return Ok(w);
            }
            debug_assert!(
                false,
                "writer for {} while writing {}",
                w.base_offset, segment_base
            );
        }
        let written = {
            let st = self.state.borrow();
            let i = st
                .segment_index(segment_base)
                .ok_or_else(|| self.closed_error())?;
            st.segments[i].written_bytes
        };
        let faults = &self.env.faults;
        let log_file = self.segment_file(segment_base, true).await?;
        let index_file = Rc::new(
            StorageFile::open_rw(&segment_path(&self.dir, segment_base, INDEX_SUFFIX), faults)
                .await?,
        );
        index_file.truncate(0).await?;
        let time_file = Rc::new(
            StorageFile::open_rw(
                &segment_path(&self.dir, segment_base, TIME_INDEX_SUFFIX),
                faults,
            )
            .await?,
        );
        time_file.truncate(0).await?;
        Ok(SegmentWriter {
            base_offset: segment_base,
            log: AlignedAppender::resume(log_file, written).await?,
            index: AlignedAppender::resume(index_file, 0).await?,
            time_index: AlignedAppender::resume(time_file, 0).await?,
            index_persisted: 0,
            time_persisted: 0,
            reservation: crate::preallocation::Reservation::new(
                self.state.borrow().config.preallocate_step_bytes_min,
            ),
        })
    }

    /// The segment's file handle, opened (read-write when `writable`) on first use.
    pub(crate) async fn segment_file(
        &self,
        segment_base: i64,
        writable: bool,
    ) -> Result<Rc<StorageFile>> {
        {
            let st = self.state.borrow();
            if let Some(i) = st.segment_index(segment_base) {
                if let Some(f) = &st.segments[i].file {
                    if !writable || st.segments[i].file_writable {
                        return Ok(Rc::clone(f));
                    }
                }
            }
        }
        let path = segment_path(&self.dir, segment_base, LOG_SUFFIX);
        let file = Rc::new(if writable {
            StorageFile::open_rw(&path, &self.env.faults).await?
        } else {
            StorageFile::open_read(&path, &self.env.faults).await?
        });
        let mut st = self.state.borrow_mut();
        if let Some(i) = st.segment_index(segment_base) {
            st.segments[i].file = Some(Rc::clone(&file));
            st.segments[i].file_writable = writable;
            // Bound the descriptors a long log holds: readers of old segments reopen
            // them; handles in use by in-flight reads stay valid (`Rc`).
            st.open_files.push_back(segment_base);
            while st.open_files.len() > OPEN_SEGMENT_FILES_MAX {
                let Some(old) = st.open_files.pop_front() else {
                    break;
                };
                if old == segment_base {
                    st.open_files.push_back(old);
                    continue;
                }
                if let Some(j) = st.segment_index(old) {
                    if st.segments[j].closed {
                        st.segments[j].file = None;
                        st.segments[j].file_writable = false;
                    }
                }
            }
        }
        Ok(file)
    }

    /// Makes a segment closed: all its data synced, the file cut to its exact size,
    /// its indexes written exactly and synced.
    async fn seal(&self, segment_base: i64) -> Result<()> {
        let mut w = self.take_writer(segment_base).await?;
        let (size, next_offset) = {
            let mut st = self.state.borrow_mut();
            let i = st
                .segment_index(segment_base)
                .ok_or_else(|| self.closed_error())?;
            let seg = &mut st.segments[i];
            let last_rel = seg.rel((seg.next_offset - 1).max(seg.base_offset));
            let max_ts = seg.max_timestamp_ms;
            seg.time_index.maybe_push(max_ts, last_rel);
            (seg.size_bytes, seg.next_offset)
        };
        debug_assert_eq!(w.log.size_bytes(), size);
        self.persist_index_entries(&mut w, size, next_offset, true)
            .await?;
        finish_segment_files(&w, size).await?;
        let mut st = self.state.borrow_mut();
        if let Some(i) = st.segment_index(segment_base) {
            let seg = &mut st.segments[i];
            seg.closed = true;
            seg.written_bytes = size;
            seg.file = Some(Rc::clone(w.log.file()));
            seg.file_writable = true;
        }
        st.durable_end_offset = st.durable_end_offset.max(next_offset);
        Ok(())
    }

    /// fdatasync of the file being written; everything written before is durable.
    async fn sync_active(&self) -> Result<()> {
        let (file, target) = {
            let st = self.state.borrow();
            (
                st.writer.as_ref().map(|w| Rc::clone(w.log.file())),
                st.written_end_offset,
            )
        };
        if let Some(f) = file {
            let started = std::time::Instant::now();
            f.fdatasync().await?;
            self.env.metrics.record_fsync(started.elapsed());
        }
        let mut st = self.state.borrow_mut();
        st.durable_end_offset = st.durable_end_offset.max(target);
        Ok(())
    }

    /// Fences the log after a storage fault: it stays readable up to what is durable,
    /// refuses writes, and waiting appends fail. Reopening runs recovery.
    pub(crate) fn fail(&self, err: &EngineError) {
        let mut st = self.state.borrow_mut();
        tracing::error!(dir = %self.dir.display(), error = %err, "partition fenced after storage fault");
        if st.fence.is_none() {
            let readable_end_offset = st.durable_end_offset;
            st.fence = Some(Fence {
                reason: format!("storage fault: {err}"),
                readable_end_offset,
                cause: Some(err.clone()),
            });
        }
        st.writer = None;
        st.wake_all();
    }

    async fn finish_clean(&self, sync: MetaSync) -> Result<()> {
        let (base, next_offset, size) = {
            let st = self.state.borrow();
            let a = st.active();
            (a.base_offset, a.next_offset, a.size_bytes)
        };
        let mut w = self.take_writer(base).await?;
        {
            let mut st = self.state.borrow_mut();
            let seg = st.active_mut();
            let last_rel = seg.rel((seg.next_offset - 1).max(seg.base_offset));
            let max_ts = seg.max_timestamp_ms;
            if max_ts >= 0 {
                seg.time_index.maybe_push(max_ts, last_rel);
            }
        }
        self.persist_index_entries(&mut w, size, next_offset, true)
            .await?;
        finish_segment_files(&w, size).await?;
        self.persist_epochs_if_dirty().await?;
        let producers = {
            let mut st = self.state.borrow_mut();
            st.producers.remove_expired(now_ms());
            st.producers.encode(next_offset)
        };
        crate::recovery::write_producer_snapshot(self, next_offset, producers.into()).await?;
        self.write_clean_marker(sync).await
    }

    /// Writes the marker that lets the next open trust the active segment as it is.
    async fn write_clean_marker(&self, sync: MetaSync) -> Result<()> {
        let marker = {
            let st = self.state.borrow();
            let a = st.active();
            crate::clean_marker::CleanMarker {
                next_offset: a.next_offset,
                active_base_offset: a.base_offset,
                active_size_bytes: a.size_bytes,
            }
        };
        let path = crate::clean_marker::CleanMarker::path(&self.dir);
        let text = marker.encode();
        glommio::executor()
            .spawn_blocking(move || crate::clean_marker::write_with(&path, text.as_bytes(), sync))
            .await
            .map_err(|e| EngineError::io("write clean marker", &self.dir, e))
    }

    pub(crate) async fn persist_epochs_if_dirty(&self) -> Result<()> {
        let text = {
            let mut st = self.state.borrow_mut();
            if !st.epochs_dirty {
                return Ok(());
            }
            st.epochs_dirty = false;
            st.epochs.encode()
        };
        let path = self.dir.join(crate::leader_epochs::LEADER_EPOCHS_NAME);
        let written = glommio::executor()
            .spawn_blocking(move || crate::clean_marker::write_durably(&path, text.as_bytes()))
            .await
            .map_err(|e| EngineError::io("write leader epochs", &self.dir, e));
        if written.is_err() {
            // Written again by the next cycle.
            self.state.borrow_mut().epochs_dirty = true;
        }
        written
    }

    /// Finds where the batch starting at `offset` sits in segment `segment_base`, and
    /// the segment's largest timestamp before it.
    async fn find_batch_start(&self, segment_base: i64, offset: i64) -> Result<(u64, i64)> {
        self.ensure_indexes(segment_base).await?;
        let (from_pos, limit, max_before) = {
            let st = self.state.borrow();
            let i = st
                .segment_index(segment_base)
                .ok_or_else(|| self.closed_error())?;
            let seg = &st.segments[i];
            if offset == seg.next_offset {
                return Ok((seg.size_bytes, seg.max_timestamp_ms));
            }
            let (rel, pos) = seg.index.lookup(seg.rel(offset));
            let mut t = seg.time_index.clone();
            t.truncate_to_offset(rel);
            (
                u64::from(pos),
                seg.written_bytes,
                t.max_timestamp_ms().unwrap_or(-1),
            )
        };
        let file = self.segment_file(segment_base, false).await?;
        let config = self.state.borrow().config.clone();
        let mut found = None;
        let mut max_ts = max_before;
        let mut boundary_err = None;
        crate::recovery::scan_batches(&file, from_pos, limit, |pos, h| {
            if h.base_offset == offset {
                found = Some(pos);
                return false;
            }
            if h.last_offset() >= offset {
                boundary_err = Some(h.base_offset);
                return false;
            }
            max_ts = max_ts.max(config.batch_time_ms(h));
            true
        })
        .await?;
        if let Some(b) = boundary_err {
            return Err(EngineError::NotBatchBoundary {
                offset,
                batch_base_offset: b,
            });
        }
        match found {
            Some(pos) => Ok((pos, max_ts)),
            None => Err(EngineError::Corrupt {
                path: file.path().to_path_buf(),
                position_bytes: from_pos,
                detail: format!("offset {offset} not found where the index says it is"),
            }),
        }
    }

    /// Loads a closed segment's indexes on first use (rebuilding stale ones).
    pub(crate) async fn ensure_indexes(&self, segment_base: i64) -> Result<()> {
        let loaded = {
            let st = self.state.borrow();
            st.segment_index(segment_base)
                .is_none_or(|i| st.segments[i].indexes_loaded)
        };
        if loaded {
            return Ok(());
        }
        crate::recovery::load_segment_indexes(self, segment_base).await
    }

    /// Whole batches from `from` (< `limit`): tail cache, then the write queue, then disk.
    pub(crate) async fn read_batches(
        &self,
        from: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<Bytes>> {
        if let Some(b) = self.env.cache.read(self.id, from, limit, max_bytes) {
            if !b.is_empty() {
                return Ok(b);
            }
        }
        if let Some(b) = self.read_pending(from, limit, max_bytes) {
            return Ok(b);
        }
        let mut from = from;
        loop {
            let seg_base = {
                let st = self.state.borrow();
                match st.segment_for(from) {
                    Some(i) => st.segments[i].base_offset,
                    None => return Ok(Vec::new()),
                }
            };
            let got = self.read_segment(seg_base, from, limit, max_bytes).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            // Nothing at or after `from` in that segment (compaction can leave a gap at
            // its end): continue in the next one.
            let next = {
                let st = self.state.borrow();
                st.segment_index(seg_base)
                    .and_then(|i| st.segments.get(i + 1))
                    .map(|s| s.base_offset)
            };
            match next {
                Some(b) if b < limit => from = b,
                _ => return Ok(Vec::new()),
            }
        }
    }

    fn read_pending(&self, from: i64, limit: i64, max_bytes: usize) -> Option<Vec<Bytes>> {
        let st = self.state.borrow();
        let mut out = Vec::new();
        let mut total = 0;
        for op in &st.pending {
            let PendingOp::Write {
                base_offset,
                last_offset,
                bytes,
                ..
            } = op
            else {
                continue;
            };
            if *last_offset < from {
                continue;
            }
            if out.is_empty() && *base_offset > from {
                return None;
            }
            if *base_offset >= limit || (!out.is_empty() && total + bytes.len() > max_bytes) {
                break;
            }
            total += bytes.len();
            out.push(bytes.clone());
        }
        (!out.is_empty()).then_some(out)
    }

    async fn read_segment(
        &self,
        segment_base: i64,
        from: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<Bytes>> {
        self.ensure_indexes(segment_base).await?;
        let file = self.segment_file(segment_base, false).await?;
        let (mut pos, end_pos, interval, mut good_end) = {
            let st = self.state.borrow();
            let Some(i) = st.segment_index(segment_base) else {
                return Ok(Vec::new());
            };
            let seg = &st.segments[i];
            let (rel, pos) = seg.index.lookup(seg.rel(from.max(seg.base_offset)));
            let good_end = seg.base_offset + i64::from(rel);
            (
                u64::from(pos),
                seg.written_bytes,
                st.config.index_interval_bytes as usize,
                good_end,
            )
        };
        let mut want = max_bytes.saturating_add(interval + READ_SLACK_BYTES);
        loop {
            if pos >= end_pos {
                return Ok(Vec::new());
            }
            let len = want.min((end_pos - pos) as usize);
            let chunk = file.read_at(pos, len).await?;
            let mut at = 0usize;
            let mut ranges: Vec<(usize, usize)> = Vec::new();
            let mut total = 0usize;
            let mut need_more = None;
            while at < chunk.len() {
                let Some(batch_len) = strata_schema::peek_batch_len(&chunk[at..]) else {
                    need_more = Some(BATCH_HEADER_BYTES);
                    break;
                };
                if at + batch_len > chunk.len() {
                    need_more = Some(batch_len);
                    break;
                }
                let h = match check_batch(&chunk[at..at + batch_len]) {
                    Ok(h) => h,
                    Err(e) => {
                        return Err(self.corrupt(
                            file.path(),
                            pos + at as u64,
                            e.to_string(),
                            good_end,
                        ))
                    }
                };
                good_end = h.last_offset() + 1;
                if h.last_offset() >= from {
                    if h.base_offset >= limit
                        || (!ranges.is_empty() && total + batch_len > max_bytes)
                    {
                        need_more = None;
                        break;
                    }
                    ranges.push((at, at + batch_len));
                    total += batch_len;
                    if total >= max_bytes {
                        break;
                    }
                }
                at += batch_len;
            }
            if ranges.is_empty() {
                match need_more {
                    Some(n) if pos + at as u64 + (n as u64) <= end_pos => {
                        // Skip what was scanned and read the batch in full.
                        pos += at as u64;
                        want = n.max(want);
                        continue;
                    }
                    Some(_) => {
                        return Err(self.corrupt(
                            file.path(),
                            pos + at as u64,
                            "batch runs past the written end of the segment".into(),
                            good_end,
                        ))
                    }
                    None => return Ok(Vec::new()),
                }
            }
            let first = ranges[0].0;
            let last = ranges[ranges.len() - 1].1;
            let copy = Bytes::copy_from_slice(&chunk[first..last]);
            return Ok(ranges
                .iter()
                .map(|&(s, e)| copy.slice(s - first..e - first))
                .collect());
        }
    }

    /// Fences the log for corruption found at `position` and returns the error.
    pub(crate) fn corrupt(
        &self,
        path: &Path,
        position: u64,
        detail: String,
        readable_end: i64,
    ) -> EngineError {
        let err = EngineError::Corrupt {
            path: path.to_path_buf(),
            position_bytes: position,
            detail,
        };
        let mut st = self.state.borrow_mut();
        if st.fence.is_none() {
            tracing::error!(error = %err, "partition fenced: corrupt data");
            st.fence = Some(Fence {
                reason: err.to_string(),
                readable_end_offset: readable_end,
                cause: None,
            });
            st.wake_all();
        }
        err
    }
}

/// Cuts a segment's files to their exact sizes and syncs them.
async fn finish_segment_files(w: &SegmentWriter, size_bytes: u64) -> Result<()> {
    let log = w.log.file();
    log.truncate(size_bytes).await?;
    log.fdatasync().await?;
    let index = w.index.file();
    index
        .truncate((w.index_persisted * INDEX_ENTRY_BYTES) as u64)
        .await?;
    index.fdatasync().await?;
    let time = w.time_index.file();
    time.truncate((w.time_persisted * TIME_ENTRY_BYTES) as u64)
        .await?;
    time.fdatasync().await
}

/// Runs `fut` to completion on a fresh single-shard executor (tests, tools).
pub fn run_local<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(f)
        .expect("start a glommio executor")
        .join()
        .expect("glommio executor panicked")
}
