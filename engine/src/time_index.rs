//! The sparse time index of a segment (`.timeindex`): entries of (largest timestamp
//! seen so far, offset relative to the segment's base of the last record covered),
//! 12 bytes each, little endian. Every batch up to an entry's offset has timestamps at
//! or below the entry's, so a lookup for "first batch with timestamp >= T" may start
//! after the last entry below T.

/// Bytes of one `.timeindex` entry.
pub const TIME_ENTRY_BYTES: usize = 12;

/// In-memory copy of a segment's time index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Parses the longest well-formed prefix (timestamps non-decreasing, offsets
    /// strictly increasing, no all-zero padding entry after the first).
    pub fn decode(bytes: &[u8]) -> Self {
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / TIME_ENTRY_BYTES);
        for raw in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&raw[..8]);
            let ts = i64::from_le_bytes(ts);
            let rel = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
            if let Some(&(last_ts, last_rel)) = entries.last() {
                if ts < last_ts || rel <= last_rel {
                    break;
                }
            }
            entries.push((ts, rel));
        }
        TimeIndex { entries }
    }

    /// Encodes entries `from..` for appending to the file.
    pub fn encode_from(&self, from: usize) -> Vec<u8> {
        self.encode_range(from, self.entries.len())
    }

    /// Encodes entries `from..to`.
    pub fn encode_range(&self, from: usize, to: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(to.saturating_sub(from) * TIME_ENTRY_BYTES);
        for &(ts, rel) in self.entries.get(from..to).unwrap_or(&[]) {
            out.extend_from_slice(&ts.to_le_bytes());
            out.extend_from_slice(&rel.to_le_bytes());
        }
        out
    }

    /// Number of entries covering offsets up to `rel_offset`.
    pub fn count_upto(&self, rel_offset: u32) -> usize {
        self.entries.partition_point(|&(_, r)| r <= rel_offset)
    }

    /// Records that every batch up to `rel_offset` has timestamps <= `max_timestamp_ms`.
    /// Ignored unless it adds information.
    pub fn maybe_push(&mut self, max_timestamp_ms: i64, rel_offset: u32) {
        match self.entries.last() {
            Some(&(ts, rel)) if max_timestamp_ms <= ts || rel_offset <= rel => {}
            _ => self.entries.push((max_timestamp_ms, rel_offset)),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The largest timestamp recorded.
    pub fn max_timestamp_ms(&self) -> Option<i64> {
        self.entries.last().map(|&(ts, _)| ts)
    }

    /// The relative offset after which a search for timestamp >= `target_ms` may
    /// start (every batch at or before it is older), if any.
    pub fn older_than(&self, target_ms: i64) -> Option<u32> {
        let i = self.entries.partition_point(|&(ts, _)| ts < target_ms);
        (i > 0).then(|| self.entries[i - 1].1)
    }

    /// Drops entries covering offsets at or past `rel_offset`.
    pub fn truncate_to_offset(&mut self, rel_offset: u32) {
        let keep = self.entries.partition_point(|&(_, r)| r < rel_offset);
        self.entries.truncate(keep);
    }

    /// Bytes this index occupies in memory.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(i64, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_than_and_roundtrip() {
        let mut t = TimeIndex::default();
        t.maybe_push(100, 3);
        t.maybe_push(90, 5); // no new information
        t.maybe_push(200, 9);
        assert_eq!(t.len(), 2);
        assert_eq!(TimeIndex::decode(&t.encode_from(0)), t);
        assert_eq!(t.older_than(100), None);
        assert_eq!(t.older_than(101), Some(3));
        assert_eq!(t.older_than(1000), Some(9));
        t.truncate_to_offset(9);
        assert_eq!(t.len(), 1);
    }
}
