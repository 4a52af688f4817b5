//! The metadata hand-off between threads: one writer publishes immutable snapshots,
//! every shard reads the newest one.
//!
//! Cluster metadata (topics, configs, which shard owns which partition) reaches the
//! shards as an immutable `Arc<T>` that is replaced, never mutated. A [`SnapshotCell`]
//! is shared by all shards (behind an `Arc`); each shard keeps its own
//! [`SnapshotReader`], whose [`get`](SnapshotReader::get) costs one `Acquire` load of a
//! version counter while nothing changed, and takes the slow path (a mutex) only after
//! a publish. Readers hold on to the snapshot they read for as long as they like: a
//! publish never invalidates it.
//!
//! This is one of the few structures shared across threads, so it is written against
//! the [`sync`] shim and model-checked with loom (`RUSTFLAGS="--cfg loom"`).

/// Synchronisation primitives for the engine's cross-thread structures: `std`
/// normally, `loom`'s model-checked doubles under `cfg(loom)`. Anything shared between
/// shard threads takes its atomics and locks from here, so one loom run covers it.
pub(crate) mod sync {
    #[cfg(loom)]
    pub(crate) use loom::sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
        Arc, Mutex, MutexGuard,
    };
    #[cfg(not(loom))]
    pub(crate) use std::sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
        Arc, Mutex, MutexGuard,
    };
}

use sync::{Arc, AtomicU64, Mutex, MutexGuard, Ordering};

/// The newest published snapshot of a `T`, shared by every shard through an `Arc`.
pub struct SnapshotCell<T> {
    /// Bumped by every publish, inside the lock, after the snapshot was replaced.
    /// Readers poll it; a changed value sends them to the slow path.
    version: AtomicU64,
    /// The current snapshot. A mutex is fine here: it is taken only by publishers
    /// (control path: a metadata change) and by a reader once per change, never on
    /// the data path, where a reader's `get` touches only `version`.
    current: Mutex<Arc<T>>,
}

impl<T> SnapshotCell<T> {
    /// A cell holding `initial` as version 0.
    pub fn new(initial: Arc<T>) -> Self {
        Self {
            version: AtomicU64::new(0),
            current: Mutex::new(initial),
        }
    }

    /// Replaces the current snapshot; returns the new version. Readers see it on
    /// their next [`SnapshotReader::get`]. Concurrent publishers are ordered by the
    /// lock: the one that gets the highest version is the one that stays visible.
    pub fn publish(&self, snapshot: Arc<T>) -> u64 {
        let mut current = self.lock();
        let previous = std::mem::replace(&mut *current, snapshot);
        // Release pairs with the readers' Acquire load in `get`: a reader that sees
        // this version also sees everything the publisher wrote before publishing.
        let version = self.version.fetch_add(1, Ordering::Release) + 1;
        drop(current);
        // The old snapshot's last owner may be this publisher: run its destructor
        // outside the lock.
        drop(previous);
        version
    }

    /// Version of the newest snapshot: 0 until the first publish.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The newest snapshot (slow path: takes the lock). Shards should hold a
    /// [`SnapshotReader`] instead.
    pub fn load(&self) -> Arc<T> {
        self.load_versioned().1
    }

    /// The newest snapshot and its version, read together under the lock so they
    /// always match.
    fn load_versioned(&self) -> (u64, Arc<T>) {
        let current = self.lock();
        // Every store to `version` happens under this lock, so Relaxed reads the
        // value that belongs to `current`.
        let version = self.version.load(Ordering::Relaxed);
        (version, Arc::clone(&current))
    }

    fn lock(&self) -> MutexGuard<'_, Arc<T>> {
        // A panic while the lock was held cannot leave a half-written snapshot: the
        // only mutation is a whole `Arc` replaced by `mem::replace`. Keep serving.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T> std::fmt::Debug for SnapshotCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCell")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// One shard's view of a [`SnapshotCell`]: caches the last snapshot it fetched and
/// re-fetches only when the cell's version moved. Not shared: each shard owns one.
pub struct SnapshotReader<T> {
    cell: Arc<SnapshotCell<T>>,
    version: u64,
    snapshot: Arc<T>,
}

impl<T> SnapshotReader<T> {
    /// A reader of `cell`, starting at its newest snapshot.
    pub fn new(cell: Arc<SnapshotCell<T>>) -> Self {
        let (version, snapshot) = cell.load_versioned();
        Self {
            cell,
            version,
            snapshot,
        }
    }

    /// The newest snapshot. Fast path: one `Acquire` load; after a publish, one
    /// trip through the cell's lock.
    pub fn get(&mut self) -> &Arc<T> {
        let published = self.cell.version.load(Ordering::Acquire);
        if published != self.version {
            self.refresh();
        }
        &self.snapshot
    }

    /// Version of the snapshot [`get`](Self::get) returned last.
    pub fn version(&self) -> u64 {
        self.version
    }

    #[cold]
    fn refresh(&mut self) {
        let (version, snapshot) = self.cell.load_versioned();
        // The lock orders publishes, so a later fetch never returns an older one.
        debug_assert!(version >= self.version);
        self.version = version;
        self.snapshot = snapshot;
    }
}

impl<T> std::fmt::Debug for SnapshotReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reader_starts_at_the_current_snapshot() {
        let cell = Arc::new(SnapshotCell::new(Arc::new("v0")));
        let mut reader = SnapshotReader::new(Arc::clone(&cell));
        assert_eq!(**reader.get(), "v0");
        assert_eq!(reader.version(), 0);
        assert_eq!(cell.version(), 0);
    }

    #[test]
    fn reader_sees_each_publish_and_keeps_old_snapshots_alive() {
        let cell = Arc::new(SnapshotCell::new(Arc::new(vec![0u32])));
        let mut reader = SnapshotReader::new(Arc::clone(&cell));
        let held = Arc::clone(reader.get());
        assert_eq!(cell.publish(Arc::new(vec![1])), 1);
        assert_eq!(cell.publish(Arc::new(vec![2])), 2);
        assert_eq!(**reader.get(), vec![2]);
        assert_eq!(reader.version(), 2);
        // What a reader took before the publish is still intact.
        assert_eq!(*held, vec![0]);
    }

    #[test]
    fn unchanged_cell_returns_the_cached_arc() {
        let cell = Arc::new(SnapshotCell::new(Arc::new(7u64)));
        let mut reader = SnapshotReader::new(Arc::clone(&cell));
        let first = Arc::as_ptr(reader.get());
        let second = Arc::as_ptr(reader.get());
        assert_eq!(first, second);
        assert_eq!(Arc::strong_count(reader.get()), 2); // the cell's and the reader's
    }

    #[test]
    fn readers_on_many_threads_converge_on_the_last_publish() {
        let cell = Arc::new(SnapshotCell::new(Arc::new((0u64, 0u64))));
        let publisher = {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || {
                for n in 1..=1_000u64 {
                    cell.publish(Arc::new((n, n)));
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let mut reader = SnapshotReader::new(Arc::clone(&cell));
                std::thread::spawn(move || {
                    let mut last = 0;
                    while last < 1_000 {
                        let (a, b) = **reader.get();
                        assert_eq!(a, b, "torn snapshot");
                        assert!(a >= last, "went back from {last} to {a}");
                        last = a;
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        publisher.join().expect("publisher thread panicked");
        for reader in readers {
            reader.join().expect("reader thread panicked");
        }
        assert_eq!(*cell.load(), (1_000, 1_000));
    }
}

/// Loom models of the hand-off: run with
/// `RUSTFLAGS="--cfg loom" cargo test -p strata-engine --release --lib snapshot`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// A snapshot whose two halves are written together: a reader that ever sees
    /// them differ has seen a torn snapshot.
    #[derive(Debug)]
    struct Meta {
        epoch: u64,
        epoch_copy: u64,
    }

    fn meta(epoch: u64) -> Arc<Meta> {
        Arc::new(Meta {
            epoch,
            epoch_copy: epoch,
        })
    }

    fn whole(snapshot: &Meta) -> u64 {
        assert_eq!(snapshot.epoch, snapshot.epoch_copy, "torn snapshot");
        snapshot.epoch
    }

    #[test]
    fn reader_that_saw_the_new_version_never_gets_the_old_snapshot() {
        loom::model(|| {
            let cell = Arc::new(SnapshotCell::new(meta(0)));
            let mut reader = SnapshotReader::new(Arc::clone(&cell));
            let publisher = {
                let cell = Arc::clone(&cell);
                thread::spawn(move || cell.publish(meta(1)))
            };

            let first = whole(reader.get());
            let seen_version = cell.version();
            let second = whole(reader.get());
            assert!(second >= first, "went back from {first} to {second}");
            if seen_version == 1 {
                assert_eq!(second, 1, "saw version 1 but read the old snapshot");
                assert_eq!(reader.version(), 1);
            }

            assert_eq!(publisher.join().expect("publisher panicked"), 1);
            assert_eq!(whole(reader.get()), 1);
        });
    }

    #[test]
    fn reader_on_another_thread_sees_what_the_publisher_wrote_before() {
        loom::model(|| {
            let cell = Arc::new(SnapshotCell::new(meta(0)));
            let reader_thread = {
                let mut reader = SnapshotReader::new(Arc::clone(&cell));
                thread::spawn(move || {
                    let before = whole(reader.get());
                    let after = whole(reader.get());
                    assert!(after >= before);
                    (reader.version(), after)
                })
            };
            cell.publish(meta(1));
            let (version, epoch) = reader_thread.join().expect("reader panicked");
            // The version a reader reports always belongs to the snapshot it returned.
            assert_eq!(version, epoch);
        });
    }

    #[test]
    fn concurrent_publishers_leave_the_last_published_value_visible() {
        loom::model(|| {
            let cell = Arc::new(SnapshotCell::new(meta(0)));
            let mut reader = SnapshotReader::new(Arc::clone(&cell));
            let publishers: Vec<_> = [1, 2]
                .into_iter()
                .map(|epoch| {
                    let cell = Arc::clone(&cell);
                    thread::spawn(move || (cell.publish(meta(epoch)), epoch))
                })
                .collect();

            // Read while the publishers race: every (version, snapshot) pair seen
            // must be one a publisher produced, and versions never go back.
            let first = whole(reader.get());
            let first_version = reader.version();
            let second = whole(reader.get());
            let second_version = reader.version();
            assert!(second_version >= first_version);

            let mut published: Vec<(u64, u64)> = publishers
                .into_iter()
                .map(|publisher| publisher.join().expect("publisher panicked"))
                .collect();
            published.push((0, 0));
            for (version, epoch) in [(first_version, first), (second_version, second)] {
                assert!(
                    published.contains(&(version, epoch)),
                    "version {version} paired with snapshot {epoch}; published {published:?}"
                );
            }

            let &(last_version, last_epoch) = published
                .iter()
                .max_by_key(|(version, _)| *version)
                .expect("two publishes");
            assert_eq!(last_version, 2);
            assert_eq!(cell.version(), 2);
            assert_eq!(whole(&cell.load()), last_epoch);
            assert_eq!(whole(reader.get()), last_epoch);
        });
    }
}
