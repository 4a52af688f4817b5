//! The sparse offset index of a segment (`.index`): entries of (offset relative to
//! the segment's base, byte position of the batch starting there), 8 bytes each,
//! little endian, one per `index.interval.bytes` of log. Lookups find where to start
//! scanning for an offset.

/// Bytes of one `.index` entry.
pub const INDEX_ENTRY_BYTES: usize = 8;

/// In-memory copy of a segment's offset index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    /// Parses index bytes, keeping the longest prefix of well-formed entries (strictly
    /// increasing offsets and positions); the zero padding of an O_DIRECT tail or a
    /// torn write ends the prefix.
    pub fn decode(bytes: &[u8]) -> Self {
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(bytes.len() / INDEX_ENTRY_BYTES);
        for raw in bytes.chunks_exact(INDEX_ENTRY_BYTES) {
            let rel = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let pos = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            if let Some(&(last_rel, last_pos)) = entries.last() {
                if rel <= last_rel || pos <= last_pos {
                    break;
                }
            } else if pos != 0 {
                // Every segment's first entry is its first batch (whose offset may be
                // above the base after compaction).
                break;
            }
            entries.push((rel, pos));
        }
        OffsetIndex { entries }
    }

    /// Encodes entries `from..` for appending to the file.
    pub fn encode_from(&self, from: usize) -> Vec<u8> {
        self.encode_range(from, self.entries.len())
    }

    /// Encodes entries `from..to`.
    pub fn encode_range(&self, from: usize, to: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(to.saturating_sub(from) * INDEX_ENTRY_BYTES);
        for &(rel, pos) in self.entries.get(from..to).unwrap_or(&[]) {
            out.extend_from_slice(&rel.to_le_bytes());
            out.extend_from_slice(&pos.to_le_bytes());
        }
        out
    }

    /// Number of entries whose batch starts below `position_bytes`.
    pub fn count_below(&self, position_bytes: u64) -> usize {
        self.entries
            .partition_point(|&(_, p)| u64::from(p) < position_bytes)
    }

    /// Adds an entry; entries must grow in both fields.
    pub fn push(&mut self, rel_offset: u32, position_bytes: u32) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|&(r, p)| rel_offset > r && position_bytes > p));
        self.entries.push((rel_offset, position_bytes));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry.
    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// The entry to start scanning from for `rel_offset`: the last one at or below it.
    pub fn lookup(&self, rel_offset: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|&(r, _)| r <= rel_offset);
        if i == 0 {
            (0, 0)
        } else {
            self.entries[i - 1]
        }
    }

    /// Drops entries at or past `position_bytes`.
    pub fn truncate_to_position(&mut self, position_bytes: u64) {
        let keep = self
            .entries
            .partition_point(|&(_, p)| u64::from(p) < position_bytes);
        self.entries.truncate(keep);
    }

    /// Drops the last entry (used while validating a stale index).
    pub fn pop(&mut self) {
        self.entries.pop();
    }

    /// Bytes this index occupies in memory.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(u32, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_stops_at_padding_and_disorder() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4096);
        idx.push(20, 9000);
        let mut bytes = idx.encode_from(0);
        bytes.extend_from_slice(&[0u8; 16]);
        assert_eq!(OffsetIndex::decode(&bytes), idx);
        let torn = &bytes[..bytes.len() - 16 - 3];
        assert_eq!(OffsetIndex::decode(torn).len(), 2);
    }

    #[test]
    fn lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4096);
        assert_eq!(idx.lookup(9), (0, 0));
        assert_eq!(idx.lookup(10), (10, 4096));
        assert_eq!(idx.lookup(500), (10, 4096));
        idx.truncate_to_position(4096);
        assert_eq!(idx.lookup(500), (0, 0));
    }
}
