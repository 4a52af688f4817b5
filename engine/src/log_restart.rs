//! Restarting a log empty at an offset: a replica whose log ends below its leader's
//! log start cannot be sent the missing records, so it drops its whole log and
//! continues, empty, at the leader's start (what a Kafka follower does when its fetch
//! offset falls below the leader's log start).
//!
//! Every segment (log and index files), every producer snapshot and the leader-epoch
//! checkpoint go; an empty active segment file is created at the new start, the
//! log-start checkpoint says the new start, and the epoch checkpoint keeps only the
//! epoch just below it (a replicated log needs the term below its start to match its
//! leader's next append). Producer state starts empty: the batches it described are
//! gone.
//!
//! Crash safety: the intent is written first, durably, to `log-restart` in the
//! partition directory (`<offset> <epoch below>` and a newline). Only then are files
//! removed; the intent is removed last. Opening a log finishes an interrupted restart
//! before it lists the directory, so a crash at any point reopens either the old log
//! (no intent yet) or the empty log at the new start.

use std::path::Path;

use crate::clean_marker::{sync_dir, write_durably};
use crate::delete_records::LOG_START_OFFSET_NAME;
use crate::error::{EngineError, Result};
use crate::leader_epochs::{LeaderEpochs, LEADER_EPOCHS_NAME};
use crate::log::Log;
use crate::producer_state::{ProducerStates, PRODUCER_SNAPSHOT_SUFFIX};
use crate::segment::{
    parse_offset_name, segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// File in a partition directory holding an unfinished [`Log::restart_at`].
pub const LOG_RESTART_NAME: &str = "log-restart";

/// Where a restarted log begins: its first offset and the leader epoch of the entry
/// just below it (-1 if none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RestartIntent {
    offset: i64,
    epoch_below: i32,
}

impl RestartIntent {
    fn encode(self) -> String {
        format!("{} {}\n", self.offset, self.epoch_below)
    }

    /// Strict: a torn or foreign file is no intent (the write is atomic, so a torn one
    /// never replaced a good one).
    fn decode(text: &str) -> Option<Self> {
        let line = text.strip_suffix('\n')?;
        let (offset, epoch) = line.split_once(' ')?;
        let offset = offset.parse::<i64>().ok().filter(|&o| o >= 0)?;
        let epoch_below = epoch.parse::<i32>().ok().filter(|&e| e >= -1)?;
        Some(RestartIntent {
            offset,
            epoch_below,
        })
    }

    /// The epoch checkpoint of the restarted log: the epoch below the start, if any.
    fn epochs(self) -> LeaderEpochs {
        let mut epochs = LeaderEpochs::default();
        if self.offset > 0 {
            epochs.observe(self.epoch_below, self.offset - 1);
        }
        epochs
    }
}

/// Whether a file of the log's own data (segments, their indexes, producer snapshots).
fn is_log_data(name: &str) -> bool {
    [
        LOG_SUFFIX,
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        PRODUCER_SNAPSHOT_SUFFIX,
    ]
    .iter()
    .any(|suffix| parse_offset_name(name, suffix).is_some())
}

/// Carries out a written intent: idempotent, so a crash in the middle is finished by
/// the next open. Blocking.
fn finish_restart(dir: &Path, intent: RestartIntent) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if is_log_data(&entry.file_name().to_string_lossy()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    write_durably(
        &dir.join(LEADER_EPOCHS_NAME),
        intent.epochs().encode().as_bytes(),
    )?;
    write_durably(
        &dir.join(LOG_START_OFFSET_NAME),
        format!("{}\n", intent.offset).as_bytes(),
    )?;
    // An empty segment file names the start: a directory without one reopens at 0.
    std::fs::File::create(segment_path(dir, intent.offset, LOG_SUFFIX))?.sync_all()?;
    sync_dir(dir)?;
    std::fs::remove_file(dir.join(LOG_RESTART_NAME))?;
    sync_dir(dir)
}

/// Finishes a restart a crash interrupted, if `dir` holds an intent. Called by open
/// before it lists the directory. Blocking.
pub(crate) fn finish_interrupted_restart(dir: &Path) -> std::io::Result<()> {
    let text = match std::fs::read_to_string(dir.join(LOG_RESTART_NAME)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    match RestartIntent::decode(&text) {
        Some(intent) => finish_restart(dir, intent),
        // Not written by `restart_at` (its write is atomic): the old log stands.
        None => {
            std::fs::remove_file(dir.join(LOG_RESTART_NAME))?;
            sync_dir(dir)
        }
    }
}

impl Log {
    /// Drops every record and continues the log, empty, at `offset`; `epoch_below` is
    /// the leader epoch of the entry just below it (-1 if none), kept in the epoch
    /// checkpoint. Durable before it returns; a crash in the middle reopens either
    /// the old log or the empty one (see the module comment). Appends wait meanwhile.
    pub async fn restart_at(&self, offset: i64, epoch_below: i32) -> Result<()> {
        if offset < 0 || epoch_below < -1 {
            return Err(EngineError::OffsetOutOfRange {
                requested: offset,
                start: self.log_start_offset(),
                end: self.log_end_offset(),
            });
        }
        self.with_appends_paused(self.restart_paused(RestartIntent {
            offset,
            epoch_below,
        }))
        .await
    }

    async fn restart_paused(&self, intent: RestartIntent) -> Result<()> {
        // Queued writes land first, so none writes into a file removed below.
        self.sync().await?;
        let inner = &self.inner;
        let _io = inner
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| inner.closed_error())?;
        if inner.state.borrow().closed {
            return Err(inner.closed_error());
        }
        {
            let mut st = inner.state.borrow_mut();
            st.writer = None;
            for seg in &mut st.segments {
                seg.file = None;
            }
            st.open_files.clear();
        }
        let dir = inner.dir.clone();
        glommio::executor()
            .spawn_blocking({
                let dir = dir.clone();
                move || {
                    write_durably(&dir.join(LOG_RESTART_NAME), intent.encode().as_bytes())?;
                    finish_restart(&dir, intent)
                }
            })
            .await
            .map_err(|e| EngineError::io("restart the log", &dir, e))?;
        let offset = intent.offset;
        {
            let mut st = inner.state.borrow_mut();
            st.segments = vec![Segment::empty(offset)];
            // New files: the close writes them whole, whatever the open found.
            st.opened_shape = None;
            st.log_start_offset = offset;
            st.high_watermark = offset;
            st.written_end_offset = offset;
            st.durable_end_offset = offset;
            st.durable_wanted_offset = offset;
            st.pending.clear();
            st.pending_bytes = 0;
            st.epochs = intent.epochs();
            st.epochs_dirty = false;
            st.producers = ProducerStates::default();
            st.producer_snapshot_bytes = 0;
            st.wake_all();
        }
        inner.compact_from_offset.set(offset);
        inner.env.cache.remove_log(inner.id);
        Ok(())
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

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 16 * 1024,
            retention_ms: None,
            ..LogConfig::default()
        }
    }

    async fn fill(log: &Log, batches: usize) {
        for _ in 0..batches {
            log.append(batch(2), AppendOptions::new(Durability::Durable))
                .await
                .unwrap();
        }
    }

    #[test]
    fn a_restarted_log_is_empty_at_the_offset_and_stays_so_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run_local(move || async move {
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            fill(&log, 30).await;
            assert!(log.segment_count() > 2);
            log.restart_at(500, 7).await.unwrap();
            assert_eq!(log.log_start_offset(), 500);
            assert_eq!(log.log_end_offset(), 500);
            assert_eq!(log.segment_base_offsets(), vec![500]);
            assert!(log.read(10, 1 << 20, None).await.is_err());
            assert_eq!(log.epoch_end_offset(7), Some((7, 500)));
            // It takes appends at the new start.
            let info = log
                .append(batch(3), AppendOptions::new(Durability::Durable))
                .await
                .unwrap();
            assert_eq!(info.base_offset, 500);
            log.close().await.unwrap();
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            assert_eq!(log.log_start_offset(), 500);
            assert_eq!(log.log_end_offset(), 503);
            let read = log.read(500, 1 << 20, None).await.unwrap();
            assert_eq!(read.batches.len(), 1);
            assert_eq!(log.epoch_end_offset(7), Some((7, 503)));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_restart_to_an_offset_inside_the_old_log_drops_it_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run_local(move || async move {
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            fill(&log, 30).await;
            log.restart_at(20, -1).await.unwrap();
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
            assert_eq!(log.latest_epoch(), None);
            drop(log);
            // Not closed (a crash): recovery finds the empty log.
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_crash_after_the_intent_reopens_the_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run_local(move || async move {
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            fill(&log, 30).await;
            let end = log.log_end_offset();
            log.close().await.unwrap();
            // The crash: the intent is durable, nothing else happened yet.
            let intent = RestartIntent {
                offset: end + 40,
                epoch_below: 3,
            };
            std::fs::write(path.join(LOG_RESTART_NAME), intent.encode()).unwrap();
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            assert_eq!(log.log_start_offset(), end + 40);
            assert_eq!(log.log_end_offset(), end + 40);
            assert_eq!(log.segment_count(), 1);
            assert!(!path.join(LOG_RESTART_NAME).exists());
            assert_eq!(log.epoch_end_offset(3), Some((3, end + 40)));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_crash_before_the_intent_keeps_the_old_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run_local(move || async move {
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            fill(&log, 30).await;
            let end = log.log_end_offset();
            log.close().await.unwrap();
            // A torn intent (the temp file never renamed) and a damaged one.
            std::fs::write(path.join("log-restart.tmp"), "99").unwrap();
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));
            log.close().await.unwrap();
            std::fs::write(path.join(LOG_RESTART_NAME), "99").unwrap();
            let log = Log::open(&path, config(), LogEnv::default()).await.unwrap();
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));
            assert_eq!(
                log.read(0, 1 << 20, None).await.unwrap().log_start_offset,
                0
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn intent_text_is_strict() {
        let i = RestartIntent {
            offset: 42,
            epoch_below: -1,
        };
        assert_eq!(RestartIntent::decode(&i.encode()), Some(i));
        assert_eq!(RestartIntent::decode("42 3"), None);
        assert_eq!(RestartIntent::decode("42\n"), None);
        assert_eq!(RestartIntent::decode("-1 3\n"), None);
        assert_eq!(RestartIntent::decode("4 -2\n"), None);
    }
}
