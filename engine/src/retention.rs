//! Retention: deletes whole closed segments that are older than `retention.ms` or
//! beyond `retention.bytes`, oldest first, never a segment holding records at or
//! above the high watermark. The active segment is rolled first when it
//! alone is past `retention.ms`, so idle data does not live forever.

use std::path::Path;

use crate::clean_marker::sync_dir;
use crate::error::{EngineError, Result};
use crate::log::{Log, LogState};
use crate::segment::{segment_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// What one retention pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

/// Removes a segment's files and makes the removal durable. Blocking work runs on
/// glommio's blocking pool.
pub(crate) async fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<()> {
    let dir = dir.to_path_buf();
    glommio::executor()
        .spawn_blocking({
            let dir = dir.clone();
            move || {
                for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                    match std::fs::remove_file(segment_path(&dir, base_offset, suffix)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                sync_dir(&dir)
            }
        })
        .await
        .map_err(|e| EngineError::io("delete segment", &dir, e))
}

impl Log {
    /// The one segment-removal loop (retention and DeleteRecords): while `deletable`
    /// says so of the log's state, removes the oldest segment, moves the log start
    /// to the next one's base if it was below, and deletes the files. The caller holds
    /// the io lock. Returns the segments and bytes removed.
    pub(crate) async fn remove_oldest_segments(
        &self,
        deletable: impl Fn(&LogState) -> bool,
    ) -> Result<(usize, u64)> {
        let (mut segments, mut bytes) = (0usize, 0u64);
        loop {
            let removed = {
                let mut st = self.inner.state.borrow_mut();
                if !deletable(&st) {
                    None
                } else {
                    let seg = st.segments.remove(0);
                    let start = st.log_start_offset.max(st.segments[0].base_offset);
                    st.log_start_offset = start;
                    st.high_watermark = st.high_watermark.max(start);
                    Some((seg.base_offset, seg.size_bytes, start))
                }
            };
            let Some((base, size, start)) = removed else {
                break;
            };
            self.inner.env.cache.drop_before(self.inner.id, start);
            remove_segment_files(self.dir(), base).await?;
            segments += 1;
            bytes += size;
        }
        Ok((segments, bytes))
    }

    /// One retention pass at wall-clock `now_ms`. Does nothing unless the cleanup
    /// policy deletes.
    pub async fn apply_retention(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let config = self.config();
        let mut outcome = RetentionOutcome {
            log_start_offset: self.log_start_offset(),
            ..RetentionOutcome::default()
        };
        if !config.cleanup_policy.deletes() {
            return Ok(outcome);
        }
        let expired = |max_ts: i64| {
            config
                .retention_ms
                .is_some_and(|ms| max_ts < now_ms - ms as i64)
        };
        let active_expired = {
            let st = self.inner.state.borrow();
            let a = st.active();
            !a.is_empty() && st.segments.len() == 1 && expired(a.max_timestamp_ms)
        };
        if active_expired {
            self.roll().await?;
        }
        let _io = self
            .inner
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| EngineError::Closed {
                path: self.dir().to_path_buf(),
            })?;
        let (deleted, bytes) = self
            .remove_oldest_segments(|st| {
                let total: u64 = st.segments.iter().map(|s| s.size_bytes).sum();
                let oldest = &st.segments[0];
                // Only records below the high watermark may go: on a replica the rest
                // is not committed yet (Kafka's rule too).
                st.segments.len() > 1
                    && oldest.closed
                    && st.segments[1].base_offset <= st.high_watermark
                    && (expired(oldest.max_timestamp_ms)
                        || config
                            .retention_bytes
                            .is_some_and(|max| total - oldest.size_bytes >= max))
            })
            .await?;
        outcome.segments_deleted = deleted;
        outcome.bytes_deleted = bytes;
        outcome.log_start_offset = self.log_start_offset();
        Ok(outcome)
    }
}
