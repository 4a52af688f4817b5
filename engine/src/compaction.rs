//! Compaction (`cleanup.policy=compact`): keeps the newest value of every key. A pass
//! maps each key to its newest offset over the whole log, then rewrites every closed
//! segment that holds superseded records into `<base>.log.cleaned` and swaps it in by
//! rename. Tombstones (records without a value) are dropped once their segment is
//! older than `delete.retention.ms`. Offsets never change; compacted batches keep
//! their base offset, and a log may have gaps afterwards, as in Kafka.
//!
//! Kafka-format batches are kept whole for now: their records may be compressed, and
//! the broker does not decompress.

use std::collections::HashMap;
use std::rc::Rc;

use strata_schema::{
    retain_native_records, stamp_base_offset, stamp_leader_epoch, stamp_log_append_time,
    validate_batch, PayloadFormat,
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

/// Bytes read per step while compacting.
const COMPACT_READ_BYTES: usize = 4 * 1024 * 1024;

/// What one compaction pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    pub segments_rewritten: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Log {
    /// One compaction pass at wall-clock `now_ms`. Does nothing unless the cleanup
    /// policy compacts.
    pub async fn compact(&self, now_ms: i64) -> Result<CompactionOutcome> {
        let mut outcome = CompactionOutcome::default();
        let config = self.config();
        if !config.cleanup_policy.compacts() {
            return Ok(outcome);
        }
        let latest = self.newest_offset_per_key().await?;
        let closed: Vec<(i64, i64, i64)> = {
            let st = self.inner.state.borrow();
            st.segments
                .iter()
                .filter(|s| s.closed)
                .map(|s| (s.base_offset, s.next_offset, s.max_timestamp_ms))
                .collect()
        };
        for (base, next_offset, max_ts) in closed {
            let tombstones_expire = max_ts < now_ms - config.delete_retention_ms as i64;
            let (batches, removed, before) = self
                .compacted_batches(base, next_offset, &latest, tombstones_expire)
                .await?;
            if removed == 0 {
                continue;
            }
            let after: u64 = batches.iter().map(|b| b.len() as u64).sum();
            self.swap_segment(base, &batches).await?;
            outcome.segments_rewritten += 1;
            outcome.records_removed += removed;
            outcome.bytes_before += before;
            outcome.bytes_after += after;
        }
        Ok(outcome)
    }

    async fn newest_offset_per_key(&self) -> Result<HashMap<Vec<u8>, i64>> {
        let mut latest = HashMap::new();
        let end = self.log_end_offset();
        let mut offset = self.log_start_offset();
        while offset < end {
            let batches = self
                .inner
                .read_batches(offset, end, COMPACT_READ_BYTES)
                .await?;
            if batches.is_empty() {
                break;
            }
            for bytes in &batches {
                let view = validate_batch(bytes)?;
                if view.header().payload_format == PayloadFormat::Native {
                    for r in view.records()? {
                        if let Some(k) = r.key() {
                            latest.insert(k.to_vec(), r.offset());
                        }
                    }
                }
                offset = view.header().last_offset() + 1;
            }
        }
        Ok(latest)
    }

    /// The batches of segment `base` with superseded records removed, the number
    /// removed, and the segment's bytes before.
    async fn compacted_batches(
        &self,
        base: i64,
        next_offset: i64,
        latest: &HashMap<Vec<u8>, i64>,
        tombstones_expire: bool,
    ) -> Result<(Vec<Vec<u8>>, u64, u64)> {
        let mut out = Vec::new();
        let mut removed = 0u64;
        let mut before = 0u64;
        let mut offset = base.max(self.log_start_offset());
        while offset < next_offset {
            let batches = self
                .inner
                .read_batches(offset, next_offset, COMPACT_READ_BYTES)
                .await?;
            if batches.is_empty() {
                break;
            }
            for bytes in &batches {
                before += bytes.len() as u64;
                let view = validate_batch(bytes)?;
                let h = *view.header();
                offset = h.last_offset() + 1;
                if h.payload_format != PayloadFormat::Native {
                    out.push(bytes.to_vec());
                    continue;
                }
                let mut dropped = 0u64;
                let kept = retain_native_records(&view, |r| {
                    let keep = match r.key() {
                        None => true,
                        Some(k) => {
                            latest.get(k).is_none_or(|&o| o == r.offset())
                                && (r.value().is_some() || !tombstones_expire)
                        }
                    };
                    dropped += u64::from(!keep);
                    keep
                })?;
                removed += dropped;
                if let Some(mut b) = kept {
                    stamp_base_offset(&mut b, h.base_offset);
                    stamp_leader_epoch(&mut b, h.leader_epoch);
                    stamp_log_append_time(&mut b, h.log_append_time_ms);
                    out.push(b);
                }
            }
        }
        Ok((out, removed, before))
    }

    /// Writes `batches` as the new content of closed segment `base` and swaps it in.
    async fn swap_segment(&self, base: i64, batches: &[Vec<u8>]) -> Result<()> {
        let inner = &self.inner;
        let dir = inner.dir.clone();
        let cleaned = dir.join(format!("{base:020}.{LOG_SUFFIX}.{CLEANED_SUFFIX}"));
        let config = self.config();
        let interval = u64::from(config.index_interval_bytes);
        let mut seg = Segment::empty(base);
        let file = Rc::new(StorageFile::open_rw(&cleaned, &inner.env.faults).await?);
        file.truncate(0).await?;
        let mut app = AlignedAppender::resume(Rc::clone(&file), 0).await?;
        let mut chunk: Vec<&[u8]> = Vec::new();
        let mut chunk_bytes = 0usize;
        for b in batches {
            let h = strata_schema::check_batch(b)?;
            seg.note_batch(
                seg.size_bytes,
                h.base_offset,
                h.last_offset(),
                b.len() as u64,
                config.batch_time_ms(&h),
                interval,
            );
            chunk.push(b);
            chunk_bytes += b.len();
            if chunk_bytes >= COMPACT_READ_BYTES {
                app.append(&chunk).await?;
                chunk.clear();
                chunk_bytes = 0;
            }
        }
        app.append(&chunk).await?;
        file.truncate(seg.size_bytes).await?;
        file.fdatasync().await?;
        if seg.max_timestamp_ms >= 0 && seg.next_offset > base {
            let (max, rel) = (seg.max_timestamp_ms, seg.rel(seg.next_offset - 1));
            seg.time_index.maybe_push(max, rel);
        }
        drop(app);
        let _io = inner
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| EngineError::Closed { path: dir.clone() })?;
        if inner.state.borrow().segment_index(base).is_none() {
            // Retention removed it meanwhile.
            let _ = crate::retention::remove_segment_files(&dir, base).await;
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
