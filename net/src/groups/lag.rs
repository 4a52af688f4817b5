//! Consumer lag: how far a group's committed offsets trail the partitions' ends.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::TopicPartition;

/// One partition's lag row (-1 = unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LagRow {
    pub tp: TopicPartition,
    pub committed_offset: i64,
    pub log_end_offset: i64,
    pub lag: i64,
}

/// Records between the committed offset and the log end; -1 when either is unknown.
/// Never negative: a log truncated below a commit has nothing left to read.
pub fn partition_lag(committed_offset: i64, log_end_offset: i64) -> i64 {
    if committed_offset < 0 || log_end_offset < 0 {
        return -1;
    }
    (log_end_offset - committed_offset).max(0)
}

/// The lag of every partition that is assigned or has a committed offset, sorted.
/// `log_ends` gives each partition's end (high watermark) where known.
pub fn lag_rows(
    assigned: &BTreeSet<TopicPartition>,
    committed: &BTreeMap<TopicPartition, i64>,
    log_ends: &BTreeMap<TopicPartition, i64>,
) -> Vec<LagRow> {
    let all: BTreeSet<&TopicPartition> = assigned.iter().chain(committed.keys()).collect();
    all.into_iter()
        .map(|tp| {
            let committed_offset = committed.get(tp).copied().unwrap_or(-1);
            let log_end_offset = log_ends.get(tp).copied().unwrap_or(-1);
            LagRow {
                tp: tp.clone(),
                committed_offset,
                log_end_offset,
                lag: partition_lag(committed_offset, log_end_offset),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_end_minus_committed() {
        assert_eq!(partition_lag(10, 15), 5);
        assert_eq!(partition_lag(15, 15), 0);
        assert_eq!(partition_lag(20, 15), 0);
        assert_eq!(partition_lag(-1, 15), -1);
        assert_eq!(partition_lag(3, -1), -1);
    }

    #[test]
    fn rows_cover_assigned_and_committed() {
        let t = |p| TopicPartition::new("t", p);
        let assigned: BTreeSet<_> = [t(0), t(1)].into();
        let committed: BTreeMap<_, _> = [(t(1), 4), (t(2), 9)].into();
        let ends: BTreeMap<_, _> = [(t(0), 3), (t(1), 10), (t(2), 9)].into();
        let rows = lag_rows(&assigned, &committed, &ends);
        let lags: Vec<(u32, i64, i64)> = rows
            .iter()
            .map(|r| (r.tp.partition, r.committed_offset, r.lag))
            .collect();
        assert_eq!(lags, vec![(0, -1, -1), (1, 4, 6), (2, 9, 0)]);
    }
}
