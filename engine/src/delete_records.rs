//! Deleting records on request (Kafka's DeleteRecords): the log start offset moves
//! forward to a requested offset, and closed segments wholly below it are deleted.
//!
//! Only whole segments are removed; records below the new start in the first
//! remaining segment stay on disk but are no longer readable. The new start is
//! written to `log-start-offset` in the partition directory (text: the offset and a
//! newline, written durably); opening the log restores it (see
//! [`read_log_start_checkpoint`]).
//!
//! One closed segment is always kept in front of the active one: the active
//! segment's file may not exist yet, and a log directory with no segment file at all
//! would reopen at offset 0.

use std::path::Path;

use crate::error::{EngineError, Result};
use crate::log::Log;

/// File in a partition directory holding the log start offset set by
/// [`Log::delete_records_before`].
pub const LOG_START_OFFSET_NAME: &str = "log-start-offset";

/// The log start offset stored in `dir`, if a valid one is there. Blocking.
pub fn read_log_start_checkpoint(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(LOG_START_OFFSET_NAME)).ok()?;
    parse_checkpoint(&text)
}

fn parse_checkpoint(text: &str) -> Option<i64> {
    let line = text.strip_suffix('\n')?;
    line.parse::<i64>().ok().filter(|&o| o >= 0)
}

impl Log {
    /// Makes `offset` the log start offset when it is above the current one (records
    /// below it can no longer be read) and deletes the closed segments wholly below
    /// it. `offset` must be at most the high watermark. Returns the log start offset
    /// afterwards.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let (start, hw) = (self.log_start_offset(), self.high_watermark());
        if offset < 0 || offset > hw {
            return Err(EngineError::OffsetOutOfRange {
                requested: offset,
                start,
                end: hw,
            });
        }
        if offset <= start {
            return Ok(start);
        }
        let dir = self.dir().to_path_buf();
        let _io = self
            .inner
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| EngineError::Closed { path: dir.clone() })?;
        {
            let st = self.inner.state.borrow();
            if st.closed {
                return Err(EngineError::Closed { path: dir });
            }
            if offset <= st.log_start_offset {
                return Ok(st.log_start_offset);
            }
        }
        // Durable before it takes effect: a reader never sees a start that a
        // restart could take back (once recovery reads the checkpoint).
        let path = dir.join(LOG_START_OFFSET_NAME);
        let text = format!("{offset}\n");
        glommio::executor()
            .spawn_blocking(move || crate::clean_marker::write_durably(&path, text.as_bytes()))
            .await
            .map_err(|e| EngineError::io("write log start offset", &dir, e))?;
        {
            let mut st = self.inner.state.borrow_mut();
            st.log_start_offset = st.log_start_offset.max(offset);
            st.high_watermark = st.high_watermark.max(st.log_start_offset);
        }
        self.inner.env.cache.drop_before(self.inner.id, offset);
        // segments[1] closed means it is not the active one and its file is durable,
        // so the log keeps a segment file on disk.
        self.remove_oldest_segments(|st| {
            st.segments.len() > 2
                && st.segments[0].closed
                && st.segments[1].closed
                && st.segments[1].base_offset <= offset
        })
        .await?;
        Ok(self.log_start_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{run_local, AppendOptions, Durability, LogEnv};
    use crate::LogConfig;
    use strata_schema::NativeBatchBuilder;

    fn batch(records: usize) -> Vec<u8> {
        let mut b = NativeBatchBuilder::new();
        for i in 0..records {
            b.push(1_000 + i as i64, None, Some(&[b'x'; 900]), &[]);
        }
        b.build()
    }

    #[test]
    fn start_moves_forward_and_whole_segments_below_it_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run_local(move || async move {
            let config = LogConfig {
                segment_bytes: 16 * 1024,
                retention_ms: None,
                ..LogConfig::default()
            };
            let log = Log::open(&path, config.clone(), LogEnv::default())
                .await
                .unwrap();
            for _ in 0..40 {
                let info = log
                    .append(batch(2), AppendOptions::new(Durability::Durable))
                    .await
                    .unwrap();
                log.set_high_watermark(info.last_offset + 1);
            }
            let segments_before = log.segment_count();
            assert!(segments_before > 3, "{segments_before} segments");
            let hw = log.high_watermark();
            assert_eq!(hw, 80);
            assert!(log.delete_records_before(hw + 1).await.is_err());
            // Mid-batch and mid-segment: allowed, as in Kafka.
            assert_eq!(log.delete_records_before(51).await.unwrap(), 51);
            assert_eq!(log.log_start_offset(), 51);
            assert!(log.segment_count() < segments_before);
            assert!(log.segment_base_offsets()[0] <= 51);
            assert!(log.read(40, 1 << 20, None).await.is_err());
            let read = log.read(51, 1 << 20, None).await.unwrap();
            assert_eq!(read.log_start_offset, 51);
            assert!(!read.batches.is_empty());
            // Going back is a no-op.
            assert_eq!(log.delete_records_before(10).await.unwrap(), 51);
            // Everything: the active segment stays, with one closed one before it.
            assert_eq!(log.delete_records_before(hw).await.unwrap(), hw);
            assert!(log.segment_count() <= 2);
            assert_eq!(read_log_start_checkpoint(log.dir()), Some(hw));
            log.close().await.unwrap();
            let log = Log::open(&path, config, LogEnv::default()).await.unwrap();
            assert_eq!(log.log_end_offset(), hw, "offsets survive the delete");
            assert_eq!(
                log.log_start_offset(),
                hw,
                "the start offset survives a reopen"
            );
        });
    }

    #[test]
    fn checkpoint_text_is_one_offset_line() {
        assert_eq!(parse_checkpoint("42\n"), Some(42));
        assert_eq!(parse_checkpoint("42"), None, "a torn write has no newline");
        assert_eq!(parse_checkpoint("-3\n"), None);
        assert_eq!(parse_checkpoint("x\n"), None);
    }
}
