//! Partitions that are not serving, and how they come back without a restart.
//!
//! A partition whose log fails to open (at startup or on first use) is *offline*:
//! requests for it are answered with the open error, the rest of the broker serves,
//! and the shard retries opening it with back-off. A partition whose log fenced
//! itself after an I/O fault that may pass (a failed write, a full disk, no
//! descriptors) is reopened the same way, which runs recovery (the unsynced tail is
//! checked and cut). Corrupt data is not retried (it would fence again on the next
//! read of it): an operator reopens such a partition with `strata topic repair`.
//! Descriptor and memory shortages never fence: the log retries its writes itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use strata_schema::ErrorCode;

use crate::broker::Broker;
use crate::errors::WireError;

/// How often a shard looks for partitions to bring back.
pub const HEAL_TICK_MS: u64 = 250;
/// First wait before a failed partition is opened again; doubles per failure.
pub const HEAL_BACKOFF_MS_MIN: u64 = 500;
/// Longest wait between two attempts to bring a partition back.
pub const HEAL_BACKOFF_MS_MAX: u64 = 30_000;

type Key = (String, u32);

/// The next wait after one of `backoff_ms` failed.
pub fn next_backoff_ms(backoff_ms: u64) -> u64 {
    backoff_ms
        .saturating_mul(2)
        .clamp(HEAL_BACKOFF_MS_MIN, HEAL_BACKOFF_MS_MAX)
}

#[derive(Clone, Debug)]
struct Unhealthy {
    /// Why the partition is offline (no open log), `None` once it opened again.
    offline: Option<WireError>,
    /// When the next attempt to open or reopen it is due.
    retry_at: Instant,
    backoff_ms: u64,
}

/// One shard's offline and healing partitions.
#[derive(Default)]
pub struct PartitionHealth {
    unhealthy: RefCell<HashMap<Key, Unhealthy>>,
}

impl PartitionHealth {
    /// The error to answer instead of opening the partition now (it failed to open
    /// and its next attempt is not due yet).
    pub fn refuse_open(&self, key: &Key) -> Option<WireError> {
        let map = self.unhealthy.borrow();
        let u = map.get(key)?;
        let e = u.offline.as_ref()?;
        (Instant::now() < u.retry_at).then(|| e.clone())
    }

    /// Records that opening the partition failed with `e`; returns the error to
    /// answer, which says the partition is offline and will be retried.
    pub fn open_failed(&self, key: &Key, e: WireError) -> WireError {
        let mut map = self.unhealthy.borrow_mut();
        let backoff_ms = map
            .get(key)
            .map_or(HEAL_BACKOFF_MS_MIN, |u| next_backoff_ms(u.backoff_ms));
        let first = map.get(key).is_none_or(|u| u.offline.is_none());
        if first {
            tracing::warn!(topic = %key.0, partition = key.1, error = %e.message,
                "partition offline: it failed to open; retrying with back-off");
        }
        let e = if e.message.contains("is offline") {
            e
        } else {
            WireError::new(
                e.code,
                format!(
                    "partition {}-{} is offline: {}; the broker retries opening it (or run \
                     `strata topic repair {}`)",
                    key.0, key.1, e.message, key.0
                ),
            )
        };
        map.insert(
            key.clone(),
            Unhealthy {
                offline: Some(e.clone()),
                retry_at: Instant::now() + Duration::from_millis(backoff_ms),
                backoff_ms,
            },
        );
        e
    }

    /// Records that the partition's log opened.
    pub fn opened(&self, key: &Key) {
        if let Some(u) = self.unhealthy.borrow_mut().get_mut(key) {
            if u.offline.take().is_some() {
                tracing::info!(topic = %key.0, partition = key.1, "partition back online");
            }
        }
    }

    /// Forgets the partition's history (an operator repairs it, or it was deleted).
    pub fn forget(&self, key: &Key) {
        self.unhealthy.borrow_mut().remove(key);
    }

    /// Forgets every partition of a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        self.unhealthy.borrow_mut().retain(|(t, _), _| t != topic);
    }

    /// Whether a fenced log of the partition is due to be reopened now; the first
    /// time a fence is seen, its reopen is scheduled after the minimum back-off.
    fn fenced_reopen_due(&self, key: &Key, now: Instant) -> bool {
        let mut map = self.unhealthy.borrow_mut();
        match map.get_mut(key) {
            None => {
                map.insert(
                    key.clone(),
                    Unhealthy {
                        offline: None,
                        retry_at: now + Duration::from_millis(HEAL_BACKOFF_MS_MIN),
                        backoff_ms: HEAL_BACKOFF_MS_MIN,
                    },
                );
                false
            }
            Some(u) if now >= u.retry_at => {
                // A log that fences again soon after its reopen waits longer next time.
                u.backoff_ms = next_backoff_ms(u.backoff_ms);
                u.retry_at = now + Duration::from_millis(u.backoff_ms);
                true
            }
            Some(_) => false,
        }
    }

    /// Offline partitions whose next attempt is due.
    fn due_offline(&self, now: Instant) -> Vec<Key> {
        self.unhealthy
            .borrow()
            .iter()
            .filter(|(_, u)| u.offline.is_some() && now >= u.retry_at)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Drops the history of partitions that stayed healthy for a whole back-off.
    fn forget_healthy(&self, now: Instant, healthy: impl Fn(&Key) -> bool) {
        self.unhealthy.borrow_mut().retain(|k, u| {
            u.offline.is_some()
                || now < u.retry_at + Duration::from_millis(u.backoff_ms)
                || !healthy(k)
        });
    }

    /// Partitions offline now.
    #[cfg(test)]
    fn offline_count(&self) -> usize {
        self.unhealthy
            .borrow()
            .values()
            .filter(|u| u.offline.is_some())
            .count()
    }
}

impl Broker {
    /// Brings this shard's offline and fenced partitions back, every `HEAL_TICK_MS`,
    /// in the shard's low-priority queue, until the shard stops.
    pub fn start_healer(self: &Rc<Self>) {
        let (broker, shard) = (Rc::clone(self), self.shard.clone());
        self.shard.spawn_background(async move {
            while !shard.is_stopping() {
                broker.heal_once().await;
                let tick = glommio::timer::sleep(Duration::from_millis(HEAL_TICK_MS));
                futures_lite::future::or(tick, shard.stopped()).await;
            }
        });
    }

    async fn heal_once(&self) {
        let now = Instant::now();
        let topics = self.topics();
        for (t, p) in self.health.due_offline(now) {
            if topics.get(&t).is_none_or(|m| p >= m.partitions) {
                self.health.forget(&(t, p));
                continue;
            }
            // `log` records the outcome.
            let _ = self.log(&t, p).await;
        }
        let fenced: Vec<Key> = self
            .open_logs()
            .into_iter()
            .filter(|(_, log)| log.fence_may_heal() == Some(true))
            .map(|(k, _)| k)
            .collect();
        for key in fenced {
            if self.health.fenced_reopen_due(&key, now) {
                tracing::info!(topic = %key.0, partition = key.1, "reopening a fenced partition");
                let _ = self.reopen(&key.0, key.1).await;
            }
        }
        crate::cluster::replicas::retry_unstarted(self).await;
        let logs = self.open_logs();
        self.health.forget_healthy(now, |k| {
            logs.iter()
                .any(|(lk, log)| lk == k && log.fenced_reason().is_none())
        });
    }

    /// Closes the partition's log (if open) and opens it again, running recovery.
    pub async fn reopen(&self, topic: &str, partition: u32) -> Result<(), WireError> {
        self.close_log(topic, partition).await?;
        self.log(topic, partition).await.map(drop)
    }

    /// `strata topic repair`: reopens the partition if it is fenced, stalled or
    /// offline (a healthy one is left alone) and says what it found.
    pub async fn repair(&self, topic: &str, partition: u32) -> Result<(), WireError> {
        let key = (topic.to_owned(), partition);
        self.health.forget(&key);
        let open = self
            .open_logs()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, l)| l);
        match open {
            Some(log) if log.fenced_reason().is_none() && log.stalled_reason().is_none() => Ok(()),
            Some(_) => {
                tracing::info!(topic, partition, "repair: reopening the partition");
                self.reopen(topic, partition).await
            }
            None => self.log(topic, partition).await.map(drop),
        }
    }
}

/// What a repair request for partition `-1` (all) or one partition covers.
pub fn repair_targets(partitions: u32, which: Option<u32>) -> Result<Vec<u32>, WireError> {
    match which {
        None => Ok((0..partitions).collect()),
        Some(p) if p < partitions => Ok(vec![p]),
        Some(p) => Err(WireError::new(
            ErrorCode::UnknownPartition,
            format!("the topic has {partitions} partitions; partition {p} does not exist"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = 0;
        let mut seen = Vec::new();
        for _ in 0..12 {
            b = next_backoff_ms(b);
            seen.push(b);
        }
        assert_eq!(seen[0], HEAL_BACKOFF_MS_MIN);
        assert_eq!(seen[1], 2 * HEAL_BACKOFF_MS_MIN);
        assert_eq!(*seen.last().unwrap_or(&0), HEAL_BACKOFF_MS_MAX);
    }

    #[test]
    fn an_offline_partition_is_refused_until_its_retry_is_due() {
        let h = PartitionHealth::default();
        let key = ("t".to_owned(), 3);
        assert!(h.refuse_open(&key).is_none());
        let e = h.open_failed(
            &key,
            WireError::new(ErrorCode::ResourceExhausted, "Too many open files"),
        );
        assert_eq!(e.code, ErrorCode::ResourceExhausted);
        assert!(e.message.contains("t-3 is offline"), "{}", e.message);
        assert_eq!(
            h.refuse_open(&key).map(|e| e.code),
            Some(ErrorCode::ResourceExhausted)
        );
        assert_eq!(h.offline_count(), 1);
        assert!(h.due_offline(Instant::now()).is_empty());
        let later = Instant::now() + Duration::from_millis(HEAL_BACKOFF_MS_MIN + 1);
        assert_eq!(h.due_offline(later), vec![key.clone()]);
        h.opened(&key);
        assert!(h.refuse_open(&key).is_none());
        assert_eq!(h.offline_count(), 0);
    }

    #[test]
    fn a_fenced_log_is_reopened_after_a_growing_backoff() {
        let h = PartitionHealth::default();
        let key = ("t".to_owned(), 0);
        let t0 = Instant::now();
        assert!(!h.fenced_reopen_due(&key, t0), "first sight only schedules");
        let t1 = t0 + Duration::from_millis(HEAL_BACKOFF_MS_MIN);
        assert!(h.fenced_reopen_due(&key, t1));
        assert!(!h.fenced_reopen_due(&key, t1 + Duration::from_millis(HEAL_BACKOFF_MS_MIN)));
        let t2 = t1 + Duration::from_millis(2 * HEAL_BACKOFF_MS_MIN);
        assert!(h.fenced_reopen_due(&key, t2));
        // Healthy long enough: forgotten.
        h.forget_healthy(t2 + Duration::from_secs(60), |_| true);
        assert!(h.unhealthy.borrow().is_empty());
    }

    #[test]
    fn repair_targets_one_or_all() {
        assert_eq!(repair_targets(3, None).ok(), Some(vec![0, 1, 2]));
        assert_eq!(repair_targets(3, Some(1)).ok(), Some(vec![1]));
        assert!(repair_targets(3, Some(3)).is_err());
    }
}
