//! A segment: one `.log` file of whole batches starting at `base_offset`, with its
//! `.index` and `.timeindex`. The newest segment of a log is active (appended to);
//! the others are closed: durable, exactly sized, indexed, and never appended again.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::appender::AlignedAppender;
use crate::file::StorageFile;
use crate::index::OffsetIndex;
use crate::time_index::TimeIndex;

/// File name suffixes of a segment.
pub const LOG_SUFFIX: &str = "log";
/// Offset index suffix.
pub const INDEX_SUFFIX: &str = "index";
/// Time index suffix.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Suffix of a compacted copy being written, swapped in by rename.
pub const CLEANED_SUFFIX: &str = "cleaned";

/// `dir/<base offset, 20 digits>.<suffix>`, as Kafka names segments.
pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Parses a segment base offset out of a `.log` file name.
pub fn parse_segment_name(name: &str) -> Option<i64> {
    parse_offset_name(name, LOG_SUFFIX)
}

/// Parses the offset out of a `<offset, 20 digits>.<suffix>` file name.
pub fn parse_offset_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// In-memory state of one segment.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    /// Offset after the last batch assigned to this segment.
    pub next_offset: i64,
    /// Bytes assigned to this segment (written or waiting to be written).
    pub size_bytes: u64,
    /// Bytes known to be on disk; reads from disk stop here.
    pub written_bytes: u64,
    /// Largest batch timestamp in the segment, -1 when empty.
    pub max_timestamp_ms: i64,
    /// Append time of the first batch (for `segment.ms`), -1 when empty.
    pub first_append_ms: i64,
    /// Offset index; for closed segments loaded on first use.
    pub index: OffsetIndex,
    /// Time index; for closed segments loaded on first use.
    pub time_index: TimeIndex,
    /// Whether `index`/`time_index` hold the segment's full indexes.
    pub indexes_loaded: bool,
    /// Log bytes since the last index entry.
    pub bytes_since_index: u64,
    /// File handle, opened on first use.
    pub file: Option<Rc<StorageFile>>,
    /// Whether `file` was opened for writing.
    pub file_writable: bool,
    /// Closed segments are durable and immutable.
    pub closed: bool,
}

impl Segment {
    /// A new, empty active segment.
    pub fn empty(base_offset: i64) -> Self {
        Segment {
            base_offset,
            next_offset: base_offset,
            size_bytes: 0,
            written_bytes: 0,
            max_timestamp_ms: -1,
            first_append_ms: -1,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            indexes_loaded: true,
            bytes_since_index: 0,
            file: None,
            file_writable: false,
            closed: false,
        }
    }

    /// Whether no batch was assigned to it.
    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// Offset relative to the base, as indexes store it.
    pub fn rel(&self, offset: i64) -> u32 {
        debug_assert!(
            offset >= self.base_offset && offset - self.base_offset <= i64::from(u32::MAX)
        );
        (offset - self.base_offset) as u32
    }

    /// Records a batch assigned at `position`: indexes it when the interval is due.
    pub fn note_batch(
        &mut self,
        position: u64,
        base_offset: i64,
        last_offset: i64,
        len_bytes: u64,
        max_timestamp_ms: i64,
        index_interval_bytes: u64,
    ) {
        if self.index.is_empty() || self.bytes_since_index >= index_interval_bytes {
            // The time entry covers every batch before this one, the index entry starts here:
            // a timestamp search may skip to the index entry after the last older time entry.
            if base_offset > self.base_offset && self.max_timestamp_ms >= 0 {
                self.time_index
                    .maybe_push(self.max_timestamp_ms, self.rel(base_offset - 1));
            }
            self.index.push(self.rel(base_offset), position as u32);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len_bytes;
        self.max_timestamp_ms = self.max_timestamp_ms.max(max_timestamp_ms);
        self.next_offset = last_offset + 1;
        self.size_bytes = position + len_bytes;
    }

    /// Approximate heap bytes held by this segment's in-memory state.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.index.heap_bytes() + self.time_index.heap_bytes()
    }
}

/// The files the flusher is writing for the segment at `base_offset`.
#[derive(Debug)]
pub struct SegmentWriter {
    pub base_offset: i64,
    pub log: AlignedAppender,
    pub index: AlignedAppender,
    pub time_index: AlignedAppender,
    /// Index entries already handed to `index` / `time_index`.
    pub index_persisted: usize,
    pub time_persisted: usize,
    /// Disk reserved ahead of the log file's writes (see `preallocation`).
    pub reservation: crate::preallocation::Reservation,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        let p = segment_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_segment_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("00000000000000000042.index"), None);
        assert_eq!(parse_segment_name("00000000000000000042log"), None);
        assert_eq!(
            parse_offset_name("00000000000000000007.producers", "producers"),
            Some(7)
        );
    }
}
