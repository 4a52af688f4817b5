//! Compaction (`cleanup.policy=compact`): keeps the newest value of every key, over
//! native and Kafka-format batches alike (one key space: a key written by a Kafka
//! client and then by a native one is one key).
//!
//! A pass has three steps:
//! 1. Map keys to their newest offset, reading the log from a cursor. The map is
//!    bounded ([`COMPACT_KEY_MAP_BYTES_MAX`]); when it fills, the scan stops there and
//!    the next pass starts its map at that offset, so a log with more distinct keys
//!    than fit is compacted window by window, as Kafka's cleaner does with its
//!    dedupe buffer. Every offset in the map is that of a real, newer record of its
//!    key, so a record below it may go whatever the map's window was; a key the map
//!    does not hold keeps all its records.
//! 2. For each closed segment, count what would go (a dry run, decoding only).
//! 3. Rewrite each segment that loses records into `<base>.log.cleaned`, streamed in
//!    bounded chunks, and swap it in by rename (a crash before the rename leaves the
//!    old segment, and recovery deletes the leftover; after it, the new one).
//!
//! What goes: a record whose key has a newer record, and a tombstone (a record
//! without a value) whose segment is older than `delete.retention.ms`. Offsets never
//! change: compacted batches keep their base offset and `last_offset_delta`, and the
//! log has gaps afterwards, as in Kafka. Kafka-format batches are decompressed,
//! filtered and compressed again with their own codec
//! ([`strata_schema::retain_kafka_records`], which says which header fields are kept).
//!
//! Left whole, as Kafka's cleaner also treats them specially:
//! - control batches (transaction markers), and transactional batches: without an
//!   aborted-transaction index the cleaner cannot tell committed records from aborted
//!   ones, so they neither supersede records nor lose any;
//! - records without a key (a compacted topic refuses them at produce; older ones
//!   stay);
//! - a batch of an idempotent producer that would lose every record while the
//!   partition still remembers it among the producer's last batches: Kafka keeps such
//!   a batch as an empty header so that the producer's sequence survives; a strata
//!   batch header cannot be empty (record count 0 is refused on read), so the batch
//!   is kept as it is, until newer batches of that producer push it out of the cache.

use std::collections::HashMap;
use std::rc::Rc;

use strata_schema::{
    batches, retain_kafka_records, retain_native_records, validate_batch, BatchView, PayloadFormat,
};

use crate::appender::AlignedAppender;
use crate::clean_marker::sync_dir;
use crate::error::{EngineError, Result};
use crate::file::StorageFile;
use crate::log::Log;
use crate::recovery::write_index_file;
use crate::segment::{
    segment_path, Segment, CLEANED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Bytes read per step while compacting, and written per step to a cleaned segment.
const COMPACT_READ_BYTES: usize = 4 * 1024 * 1024;

/// Memory the key map of one pass may use, keys and bookkeeping together. Passes run
/// one log at a time per shard, so this bounds compaction's memory per shard (Kafka's
/// `log.cleaner.dedupe.buffer.size` is 128 MiB across its cleaner threads).
pub const COMPACT_KEY_MAP_BYTES_MAX: usize = 32 * 1024 * 1024;

/// What a map entry costs besides its key bytes: the hash table slot, the key's
/// `Vec` header and the offset, rounded up.
const KEY_MAP_ENTRY_OVERHEAD_BYTES: usize = 64;

/// What one compaction pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    pub segments_rewritten: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Where the key map filled and the next pass starts its map; `None` when this
    /// pass's map reached the log end (the next one starts at the log start).
    pub key_map_full_at_offset: Option<i64>,
}

/// The newest offset of each key seen in a window of the log, within a byte bound.
struct KeyMap {
    latest: HashMap<Vec<u8>, i64>,
    bytes: usize,
    bytes_max: usize,
}

impl KeyMap {
    fn new(bytes_max: usize) -> Self {
        KeyMap {
            latest: HashMap::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Records `offset` as the newest of `key`; false when a new key does not fit.
    fn insert(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(newest) = self.latest.get_mut(key) {
            *newest = offset;
            return true;
        }
        let cost = key.len() + KEY_MAP_ENTRY_OVERHEAD_BYTES;
        if self.bytes + cost > self.bytes_max {
            return false;
        }
        self.bytes += cost;
        self.latest.insert(key.to_vec(), offset);
        true
    }
}

/// Decides record by record what a pass keeps.
struct Retention<'a> {
    map: &'a KeyMap,
    tombstones_expire: bool,
}

impl Retention<'_> {
    fn keeps(&self, key: Option<&[u8]>, has_value: bool, offset: i64) -> bool {
        let Some(key) = key else {
            return true;
        };
        match self.map.latest.get(key) {
            None => true,
            Some(&newest) if newest > offset => false,
            // The newest record of its key: a tombstone goes once expired, because
            // every older record of the key goes in this same pass (segments are
            // rewritten oldest first).
            Some(_) => has_value || !self.tombstones_expire,
        }
    }
}

/// Batches compaction leaves whole (see the module comment).
fn left_whole(view: &BatchView<'_>) -> bool {
    let a = view.header().attributes;
    a.is_control() || a.is_transactional()
}

impl Log {
    /// One compaction pass at wall-clock `now_ms`, the key map starting where the
    /// last pass's filled. Does nothing unless the cleanup policy compacts.
    pub async fn compact(&self, now_ms: i64) -> Result<CompactionOutcome> {
        let from = self.inner.compact_from_offset.get();
        let outcome = self
            .compact_with(now_ms, from, COMPACT_KEY_MAP_BYTES_MAX)
            .await?;
        self.inner
            .compact_from_offset
            .set(outcome.key_map_full_at_offset.unwrap_or(0));
        Ok(outcome)
    }

    /// One compaction pass whose key map covers the log from `map_from_offset` (or
    /// its start) and holds at most `key_map_bytes_max` bytes.
    pub async fn compact_with(
        &self,
        now_ms: i64,
        map_from_offset: i64,
        key_map_bytes_max: usize,
    ) -> Result<CompactionOutcome> {
        let mut outcome = CompactionOutcome::default();
        let config = self.config();
        if !config.cleanup_policy.compacts() {
            return Ok(outcome);
        }
        let (map, full_at) = self
            .newest_offset_per_key(map_from_offset, key_map_bytes_max)
            .await?;
        outcome.key_map_full_at_offset = full_at;
        let closed: Vec<(i64, i64, i64)> = {
            let st = self.inner.state.borrow();
            st.segments
                .iter()
                .filter(|s| s.closed)
                .map(|s| (s.base_offset, s.next_offset, s.max_timestamp_ms))
                .collect()
        };
        for (base, next_offset, max_ts) in closed {
            let retention = Retention {
                map: &map,
                tombstones_expire: max_ts < now_ms - config.delete_retention_ms as i64,
            };
            if self.count_removable(base, next_offset, &retention).await? == 0 {
                continue;
            }
            let (removed, before, after) =
                self.rewrite_segment(base, next_offset, &retention).await?;
            outcome.segments_rewritten += 1;
            outcome.records_removed += removed;
            outcome.bytes_before += before;
            outcome.bytes_after += after;
        }
        Ok(outcome)
    }

    /// Calls `f` with every stored batch of `from..end`, read in bounded steps.
    async fn for_each_batch(
        &self,
        from: i64,
        end: i64,
        mut f: impl FnMut(&[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut offset = from.max(self.log_start_offset());
        while offset < end {
            let read = self
                .inner
                .read_batches(offset, end, COMPACT_READ_BYTES)
                .await?;
            if read.is_empty() {
                break;
            }
            for bytes in &read {
                let header = strata_schema::check_batch(bytes)?;
                if header.base_offset >= end {
                    return Ok(());
                }
                offset = header.last_offset() + 1;
                if !f(&bytes[..])? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The key map from `from` on, and where it filled (`None`: it reached the end).
    async fn newest_offset_per_key(
        &self,
        from: i64,
        bytes_max: usize,
    ) -> Result<(KeyMap, Option<i64>)> {
        let mut map = KeyMap::new(bytes_max);
        let mut full_at = None;
        let mut first_batch = true;
        let end = self.log_end_offset();
        self.for_each_batch(from, end, |bytes| {
            let view = validate_batch(bytes)?;
            if left_whole(&view) {
                return Ok(true);
            }
            let base = view.header().base_offset;
            let mut fits = true;
            match view.header().payload_format {
                PayloadFormat::Native => {
                    for r in view.records()? {
                        if let Some(k) = r.key() {
                            fits = fits && map.insert(k, r.offset());
                        }
                    }
                }
                PayloadFormat::Kafka => {
                    let records = strata_schema::decode_kafka_records(view.payload())?;
                    let mut iter = records.iter();
                    while let Some(r) = iter.next_view() {
                        let r = r?;
                        if let Some(k) = r.key {
                            fits = fits && map.insert(k, base + i64::from(r.offset_delta));
                        }
                    }
                }
            }
            if !fits {
                // Records of this batch may be in the map (their offsets are real);
                // the next pass's window starts here, or after it if it alone has
                // more keys than the map holds (so that windows always move on).
                full_at = Some(if first_batch {
                    view.header().last_offset() + 1
                } else {
                    base
                });
            }
            first_batch = false;
            Ok(fits)
        })
        .await?;
        Ok((map, full_at))
    }

    /// Records of segment `base` that `retention` would remove.
    async fn count_removable(
        &self,
        base: i64,
        next_offset: i64,
        retention: &Retention<'_>,
    ) -> Result<u64> {
        let mut removable = 0u64;
        self.for_each_batch(base, next_offset, |bytes| {
            let view = validate_batch(bytes)?;
            if left_whole(&view) {
                return Ok(true);
            }
            let mut gone = 0u64;
            let mut seen = 0u64;
            match view.header().payload_format {
                PayloadFormat::Native => {
                    for r in view.records()? {
                        seen += 1;
                        gone +=
                            u64::from(!retention.keeps(r.key(), r.value().is_some(), r.offset()));
                    }
                }
                PayloadFormat::Kafka => {
                    let base = view.header().base_offset;
                    let records = strata_schema::decode_kafka_records(view.payload())?;
                    let mut iter = records.iter();
                    while let Some(r) = iter.next_view() {
                        let r = r?;
                        seen += 1;
                        let offset = base + i64::from(r.offset_delta);
                        gone += u64::from(!retention.keeps(r.key, r.value.is_some(), offset));
                    }
                }
            }
            if gone == seen && self.holds_producer_state(&view) {
                gone = 0;
            }
            removable += gone;
            Ok(true)
        })
        .await?;
        Ok(removable)
    }

    /// Whether `view` is among its idempotent producer's last batches that the
    /// partition remembers (and answers retries from).
    fn holds_producer_state(&self, view: &BatchView<'_>) -> bool {
        let h = view.header();
        h.producer_id >= 0
            && self
                .inner
                .state
                .borrow()
                .producers
                .get(h.producer_id)
                .is_some_and(|p| p.batches().iter().any(|b| b.base_offset == h.base_offset))
    }

    /// `view` as compaction leaves it: `None` if it goes entirely, and the number of
    /// records removed.
    fn compacted_batch(
        &self,
        view: &BatchView<'_>,
        retention: &Retention<'_>,
    ) -> Result<(Option<Vec<u8>>, u64)> {
        if left_whole(view) {
            return Ok((Some(view.bytes().to_vec()), 0));
        }
        let total = u64::from(view.header().record_count);
        let kept = match view.header().payload_format {
            PayloadFormat::Native => retain_native_records(view, |r| {
                retention.keeps(r.key(), r.value().is_some(), r.offset())
            })?,
            PayloadFormat::Kafka => retain_kafka_records(view, |r, offset| {
                retention.keeps(r.key, r.value.is_some(), offset)
            })?,
        };
        match kept {
            None if self.holds_producer_state(view) => Ok((Some(view.bytes().to_vec()), 0)),
            None => Ok((None, total)),
            Some(b) => {
                let left = u64::from(strata_schema::check_batch(&b)?.record_count);
                Ok((Some(b), total - left))
            }
        }
    }

    /// Rewrites closed segment `base` as compaction leaves it into
    /// `<base>.log.cleaned`, streamed in bounded chunks, and swaps it in. Returns the
    /// records removed and the segment's bytes before and after.
    async fn rewrite_segment(
        &self,
        base: i64,
        next_offset: i64,
        retention: &Retention<'_>,
    ) -> Result<(u64, u64, u64)> {
        let inner = &self.inner;
        let dir = inner.dir.clone();
        let cleaned = dir.join(format!("{base:020}.{LOG_SUFFIX}.{CLEANED_SUFFIX}"));
        let config = self.config();
        let interval = u64::from(config.index_interval_bytes);
        let mut seg = Segment::empty(base);
        let file = Rc::new(StorageFile::open_rw(&cleaned, &inner.env.faults).await?);
        file.truncate(0).await?;
        let mut app = AlignedAppender::resume(Rc::clone(&file), 0).await?;
        let (mut removed, mut before) = (0u64, 0u64);
        let mut offset = base.max(self.log_start_offset());
        while offset < next_offset {
            let read = inner
                .read_batches(offset, next_offset, COMPACT_READ_BYTES)
                .await?;
            if read.is_empty() {
                break;
            }
            let mut chunk: Vec<Vec<u8>> = Vec::new();
            for bytes in &read {
                let Some(view) = batches(bytes).next().transpose()? else {
                    continue;
                };
                let h = *view.header();
                if h.base_offset >= next_offset {
                    break;
                }
                offset = h.last_offset() + 1;
                before += bytes.len() as u64;
                let (kept, gone) = self.compacted_batch(&view, retention)?;
                removed += gone;
                if let Some(b) = kept {
                    seg.note_batch(
                        seg.size_bytes,
                        h.base_offset,
                        h.last_offset(),
                        b.len() as u64,
                        config.batch_time_ms(&h),
                        interval,
                    );
                    chunk.push(b);
                }
            }
            // At most one read's worth (plus what recompression added) is held.
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            app.append(&refs).await?;
        }
        file.truncate(seg.size_bytes).await?;
        file.fdatasync().await?;
        if seg.max_timestamp_ms >= 0 && seg.next_offset > base {
            let (max, rel) = (seg.max_timestamp_ms, seg.rel(seg.next_offset - 1));
            seg.time_index.maybe_push(max, rel);
        }
        drop(app);
        let after = seg.size_bytes;
        self.swap_segment(base, cleaned, file, seg).await?;
        Ok((removed, before, after))
    }

    /// Swaps the synced `cleaned` file in for closed segment `base`.
    async fn swap_segment(
        &self,
        base: i64,
        cleaned: std::path::PathBuf,
        file: Rc<StorageFile>,
        seg: Segment,
    ) -> Result<()> {
        let inner = &self.inner;
        let dir = inner.dir.clone();
        let _io = inner
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| EngineError::Closed { path: dir.clone() })?;
        if inner.state.borrow().segment_index(base).is_none() {
            // Retention removed it meanwhile.
            let _ = crate::retention::remove_segment_files(&dir, base).await;
            let _ = glommio::executor()
                .spawn_blocking(move || std::fs::remove_file(cleaned))
                .await;
            return Ok(());
        }
        let target = segment_path(&dir, base, LOG_SUFFIX);
        glommio::executor()
            .spawn_blocking({
                let (cleaned, target, dir) = (cleaned.clone(), target.clone(), dir.clone());
                move || {
                    std::fs::rename(&cleaned, &target)?;
                    sync_dir(&dir)
                }
            })
            .await
            .map_err(|e| EngineError::io("swap compacted segment", &target, e))?;
        write_index_file(
            inner,
            &segment_path(&dir, base, INDEX_SUFFIX),
            &seg.index.encode_from(0),
        )
        .await?;
        write_index_file(
            inner,
            &segment_path(&dir, base, TIME_INDEX_SUFFIX),
            &seg.time_index.encode_from(0),
        )
        .await?;
        let active_base = {
            let mut st = inner.state.borrow_mut();
            if let Some(i) = st.segment_index(base) {
                let s = &mut st.segments[i];
                s.size_bytes = seg.size_bytes;
                s.written_bytes = seg.size_bytes;
                s.index = seg.index;
                s.time_index = seg.time_index;
                s.indexes_loaded = true;
                s.file = Some(file);
                s.file_writable = true;
            }
            st.active().base_offset
        };
        // Cached batches of closed segments may hold records just removed.
        inner.env.cache.drop_before(inner.id, active_base);
        Ok(())
    }
}
