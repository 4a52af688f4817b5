//! The shard's tail cache: recent batches of every partition on the shard, kept in
//! memory under one byte budget so that readers at the tail never touch the disk.
//! Each partition keeps a contiguous run of its newest batches; when the shard is over
//! budget the batches inserted longest ago go first. Batches are `Bytes` handed over
//! by the append path, so caching them copies nothing.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;

/// Default budget of a shard's cache.
pub const CACHE_BUDGET_BYTES_DEFAULT: usize = 64 * 1024 * 1024;

#[derive(Debug)]
struct CachedBatch {
    base_offset: i64,
    last_offset: i64,
    bytes: Bytes,
}

#[derive(Debug, Default)]
struct CacheState {
    used_bytes: usize,
    logs: HashMap<u64, VecDeque<CachedBatch>>,
    /// Insertion order across logs: (log id, base offset). Entries whose batch was
    /// already dropped by truncation or retention are skipped when popped.
    fifo: VecDeque<(u64, i64)>,
}

/// A shard's cache of recent batches (shard-local; `Rc`, no locks).
#[derive(Debug)]
pub struct BatchCache {
    budget_bytes: usize,
    state: RefCell<CacheState>,
}

impl BatchCache {
    /// A cache holding at most about `budget_bytes` of batches.
    pub fn new(budget_bytes: usize) -> Rc<Self> {
        Rc::new(BatchCache {
            budget_bytes,
            state: RefCell::new(CacheState::default()),
        })
    }

    /// Bytes of batches held now.
    pub fn used_bytes(&self) -> usize {
        self.state.borrow().used_bytes
    }

    /// The budget.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Adds the newest batch of `log_id`; it must follow the log's cached run.
    pub(crate) fn insert(&self, log_id: u64, base_offset: i64, last_offset: i64, bytes: Bytes) {
        let mut st = self.state.borrow_mut();
        let len = bytes.len();
        let run = st.logs.entry(log_id).or_default();
        debug_assert!(run.back().is_none_or(|b| b.last_offset < base_offset));
        run.push_back(CachedBatch {
            base_offset,
            last_offset,
            bytes,
        });
        st.used_bytes += len;
        st.fifo.push_back((log_id, base_offset));
        while st.used_bytes > self.budget_bytes {
            let Some((id, base)) = st.fifo.pop_front() else {
                break;
            };
            let freed = match st.logs.get_mut(&id) {
                Some(run) if run.front().is_some_and(|b| b.base_offset == base) => {
                    run.pop_front().map_or(0, |b| b.bytes.len())
                }
                _ => 0,
            };
            st.used_bytes -= freed;
            if st.logs.get(&id).is_some_and(VecDeque::is_empty) {
                st.logs.remove(&id);
            }
        }
    }

    /// Whole batches of `log_id` from the one holding `from_offset`, stopping before
    /// `end_offset` and once `max_bytes` are gathered (at least one batch). `None`
    /// when the cache does not hold `from_offset`.
    pub(crate) fn read(
        &self,
        log_id: u64,
        from_offset: i64,
        end_offset: i64,
        max_bytes: usize,
    ) -> Option<Vec<Bytes>> {
        let st = self.state.borrow();
        let run = st.logs.get(&log_id)?;
        let first = run.front()?;
        if from_offset < first.base_offset || from_offset > run.back()?.last_offset {
            return None;
        }
        let start = run.partition_point(|b| b.last_offset < from_offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for b in run.iter().skip(start) {
            if b.base_offset >= end_offset || (!out.is_empty() && total + b.bytes.len() > max_bytes)
            {
                break;
            }
            total += b.bytes.len();
            out.push(b.bytes.clone());
        }
        Some(out)
    }

    /// Drops batches of `log_id` that start at or after `offset` (log truncation).
    pub(crate) fn truncate_from(&self, log_id: u64, offset: i64) {
        let mut st = self.state.borrow_mut();
        let Some(run) = st.logs.get_mut(&log_id) else {
            return;
        };
        let mut freed = 0;
        while run.back().is_some_and(|b| b.base_offset >= offset) {
            freed += run.pop_back().map_or(0, |b| b.bytes.len());
        }
        st.used_bytes -= freed;
    }

    /// Drops batches of `log_id` that end before `offset` (retention).
    pub(crate) fn drop_before(&self, log_id: u64, offset: i64) {
        let mut st = self.state.borrow_mut();
        let Some(run) = st.logs.get_mut(&log_id) else {
            return;
        };
        let mut freed = 0;
        while run.front().is_some_and(|b| b.last_offset < offset) {
            freed += run.pop_front().map_or(0, |b| b.bytes.len());
        }
        st.used_bytes -= freed;
    }

    /// Forgets everything of `log_id`.
    pub(crate) fn remove_log(&self, log_id: u64) {
        let mut st = self.state.borrow_mut();
        if let Some(run) = st.logs.remove(&log_id) {
            st.used_bytes -= run.iter().map(|b| b.bytes.len()).sum::<usize>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn evicts_oldest_across_logs_within_budget() {
        let cache = BatchCache::new(300);
        cache.insert(1, 0, 9, batch(100));
        cache.insert(2, 0, 0, batch(100));
        cache.insert(1, 10, 19, batch(100));
        assert_eq!(cache.used_bytes(), 300);
        cache.insert(2, 1, 1, batch(100));
        assert_eq!(cache.used_bytes(), 300);
        assert!(
            cache.read(1, 0, 100, 1000).is_none(),
            "oldest batch of log 1 evicted"
        );
        assert_eq!(cache.read(1, 15, 100, 1000).map(|v| v.len()), Some(1));
        assert_eq!(cache.read(2, 0, 100, 1000).map(|v| v.len()), Some(2));
    }

    #[test]
    fn read_respects_end_and_budget_but_returns_one() {
        let cache = BatchCache::new(1 << 20);
        for i in 0..5 {
            cache.insert(1, i * 10, i * 10 + 9, batch(100));
        }
        assert_eq!(cache.read(1, 0, 1000, 1).map(|v| v.len()), Some(1));
        assert_eq!(cache.read(1, 5, 1000, 250).map(|v| v.len()), Some(2));
        assert_eq!(cache.read(1, 0, 20, 10_000).map(|v| v.len()), Some(2));
        assert!(cache.read(1, 50, 1000, 10).is_none());
        cache.truncate_from(1, 20);
        assert_eq!(cache.used_bytes(), 200);
        cache.drop_before(1, 10);
        assert_eq!(cache.used_bytes(), 100);
        cache.remove_log(1);
        assert_eq!(cache.used_bytes(), 0);
    }
}
