//! The shard's cleaner: a low-priority background loop that runs retention and
//! compaction for every log registered on the shard, one log at a time, so cleanup
//! never competes with appends and reads for the shard's time.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::log::{now_ms, Log, LogInner};
use crate::shard::Shard;

/// How often the cleaner wakes by default.
pub const CLEANER_INTERVAL_MS_DEFAULT: u64 = 30_000;

/// Logs whose cleanup this shard runs. Holds them weakly: a dropped log leaves.
#[derive(Default)]
pub struct Cleaner {
    logs: RefCell<Vec<Weak<LogInner>>>,
}

impl Cleaner {
    /// An empty cleaner.
    pub fn new() -> Rc<Self> {
        Rc::new(Cleaner::default())
    }

    /// Adds a log to clean.
    pub fn register(&self, log: &Log) {
        self.logs.borrow_mut().push(Rc::downgrade(&log.inner));
    }

    /// Logs still alive and open.
    fn live_logs(&self) -> Vec<Log> {
        let mut logs = self.logs.borrow_mut();
        logs.retain(|w| w.upgrade().is_some_and(|l| !l.state.borrow().closed));
        logs.iter()
            .filter_map(Weak::upgrade)
            .map(|inner| Log { inner })
            .collect()
    }

    /// One pass over every registered log: retention, then compaction. Errors are
    /// logged; a failing log does not stop the others.
    pub async fn run_once(&self) {
        for log in self.live_logs() {
            let now = now_ms();
            if let Err(e) = log.apply_retention(now).await {
                tracing::warn!(dir = %log.dir().display(), error = %e, "retention failed");
            }
            if let Err(e) = log.compact(now).await {
                tracing::warn!(dir = %log.dir().display(), error = %e, "compaction failed");
            }
        }
    }

    /// Runs a pass every `interval_ms` in the shard's low-priority queue until the
    /// shard stops.
    pub fn start(self: &Rc<Self>, shard: &Shard, interval_ms: u64) {
        let cleaner = Rc::clone(self);
        let shard_ref = shard.clone();
        shard.spawn_background(async move {
            while !shard_ref.is_stopping() {
                cleaner.run_once().await;
                let tick = glommio::timer::sleep(Duration::from_millis(interval_ms));
                futures_lite::future::or(tick, shard_ref.stopped()).await;
            }
        });
    }
}
