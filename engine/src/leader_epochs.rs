//! Leader epochs of a log: the first offset written in each epoch, as replication
//! needs for divergence checks (Kafka's OffsetForLeaderEpoch). Every batch also
//! carries its epoch in its header, so this cache can be rebuilt from the log.

/// File holding the epoch cache in a partition directory.
pub const LEADER_EPOCHS_NAME: &str = "leader-epochs";

/// Ordered (epoch, start offset) pairs; both strictly increase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochs {
    /// Notes a batch of `epoch` starting at `base_offset`. Returns whether it changed.
    pub fn observe(&mut self, epoch: i32, base_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(&(e, _)) if epoch <= e => false,
            _ => {
                self.entries.push((epoch, base_offset));
                true
            }
        }
    }

    /// Forgets epochs that start at or after `offset` (log truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        self.entries.retain(|&(_, start)| start < offset);
    }

    /// The (epoch, start offset) pairs, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// The newest epoch, if any.
    pub fn latest(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// For `epoch`: the largest known epoch at or below it and the offset where that
    /// epoch ended (the next epoch's start, or `log_end_offset` for the newest).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let i = self.entries.partition_point(|&(e, _)| e <= epoch);
        if i == 0 {
            return None;
        }
        let found = self.entries[i - 1].0;
        let end = self.entries.get(i).map_or(log_end_offset, |&(_, s)| s);
        Some((found, end))
    }

    /// Text form, one `epoch start` per line.
    pub fn encode(&self) -> String {
        self.entries
            .iter()
            .map(|(e, s)| format!("{e} {s}\n"))
            .collect()
    }

    /// Parses the text form, keeping the well-formed increasing prefix.
    pub fn decode(text: &str) -> Self {
        let mut out = LeaderEpochs::default();
        for line in text.lines() {
            let mut it = line.split(' ');
            let (Some(e), Some(s)) = (it.next(), it.next()) else {
                break;
            };
            let (Ok(e), Ok(s)) = (e.parse::<i32>(), s.parse::<i64>()) else {
                break;
            };
            if out
                .entries
                .last()
                .is_some_and(|&(pe, ps)| e <= pe || s < ps)
            {
                break;
            }
            out.entries.push((e, s));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_and_truncation() {
        let mut le = LeaderEpochs::default();
        assert!(le.observe(1, 0));
        assert!(!le.observe(1, 5));
        assert!(le.observe(3, 10));
        assert_eq!(le.end_offset_for(1, 20), Some((1, 10)));
        assert_eq!(le.end_offset_for(2, 20), Some((1, 10)));
        assert_eq!(le.end_offset_for(3, 20), Some((3, 20)));
        assert_eq!(le.end_offset_for(0, 20), None);
        assert_eq!(LeaderEpochs::decode(&le.encode()), le);
        le.truncate_from(10);
        assert_eq!(le.latest(), Some(1));
    }
}
