//! The free-space floor (`storage.min.free.bytes`, like Redpanda's
//! `storage_min_free_bytes`): produces are refused with a storage error while the
//! data directory's filesystem has less free space than the floor, so that the disk
//! never fills under the logs (where writes would fail with ENOSPC) and there is
//! room left for metadata, group offsets and deletions. Writes resume by themselves
//! once space is back (a topic deleted, retention run, files removed).
//!
//! Each shard samples the filesystem (statvfs, on a blocking thread) every
//! `DISK_SPACE_POLL_MS` and, between samples, counts the bytes it admitted against
//! the sample, so a burst cannot run far past the floor before the next sample.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use strata_engine::shard::Shard;
use strata_schema::ErrorCode;

use crate::errors::WireError;

/// How often each shard samples the free space of the data directory.
pub const DISK_SPACE_POLL_MS: u64 = 250;
/// The default floor on a large filesystem.
pub const MIN_FREE_BYTES_DEFAULT_MAX: u64 = 64 * 1024 * 1024;
/// On a small filesystem the default floor is this fraction (1/n) of its size.
const MIN_FREE_SIZE_DIVISOR: u64 = 20;

/// The floor for a filesystem of `total_bytes`: the configured one, or by default
/// 64 MiB but at most 5% of the filesystem.
pub fn floor_bytes(configured: Option<u64>, total_bytes: u64) -> u64 {
    configured
        .unwrap_or_else(|| MIN_FREE_BYTES_DEFAULT_MAX.min(total_bytes / MIN_FREE_SIZE_DIVISOR))
}

/// Whether writing `bytes` more keeps `free_bytes` at or above `floor_bytes`.
pub fn admits(free_bytes: u64, floor_bytes: u64, bytes: u64) -> bool {
    free_bytes.saturating_sub(bytes) >= floor_bytes && free_bytes >= bytes
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    /// Free bytes at the last sample minus the bytes admitted since.
    free_bytes: u64,
    floor_bytes: u64,
}

/// One shard's view of the data directory's free space.
pub struct DiskSpace {
    data_dir: PathBuf,
    configured_floor_bytes: Option<u64>,
    /// `None` until the first sample (or while sampling fails): everything is admitted.
    sample: Cell<Option<Sample>>,
}

impl DiskSpace {
    /// A monitor of `data_dir`'s filesystem with the floor `configured_floor_bytes`
    /// (`None` = the default; 0 = no floor).
    pub fn new(data_dir: &Path, configured_floor_bytes: Option<u64>) -> Rc<Self> {
        Rc::new(DiskSpace {
            data_dir: data_dir.to_path_buf(),
            configured_floor_bytes,
            sample: Cell::new(None),
        })
    }

    /// Counts `bytes` about to be appended, or refuses them with STORAGE_ERROR when
    /// they would take the free space below the floor.
    pub fn admit(&self, bytes: u64) -> Result<(), WireError> {
        let Some(mut s) = self.sample.get() else {
            return Ok(());
        };
        if s.floor_bytes == 0 {
            return Ok(());
        }
        if !admits(s.free_bytes, s.floor_bytes, bytes) {
            return Err(WireError::new(
                ErrorCode::StorageError,
                format!(
                    "the disk of {} has {} bytes free, below storage.min.free.bytes = {}: \
                     produces are refused until space is freed (delete topics, lower \
                     retention); they resume by themselves",
                    self.data_dir.display(),
                    s.free_bytes,
                    s.floor_bytes
                ),
            ));
        }
        s.free_bytes -= bytes;
        self.sample.set(Some(s));
        Ok(())
    }

    /// Samples the filesystem now.
    pub async fn refresh(&self) {
        let dir = self.data_dir.clone();
        let stat = glommio::executor()
            .spawn_blocking(move || statvfs_bytes(&dir))
            .await;
        match stat {
            Ok((free_bytes, total_bytes)) => self.sample.set(Some(Sample {
                free_bytes,
                floor_bytes: floor_bytes(self.configured_floor_bytes, total_bytes),
            })),
            Err(e) => {
                tracing::debug!(error = %e, "cannot sample free disk space");
                self.sample.set(None);
            }
        }
    }

    /// Samples every `DISK_SPACE_POLL_MS` until the shard stops.
    pub fn start(self: &Rc<Self>, shard: &Shard) {
        let (me, shard) = (Rc::clone(self), shard.clone());
        glommio::spawn_local(async move {
            while !shard.is_stopping() {
                me.refresh().await;
                let tick = glommio::timer::sleep(Duration::from_millis(DISK_SPACE_POLL_MS));
                futures_lite::future::or(tick, shard.stopped()).await;
            }
        })
        .detach();
    }
}

/// (bytes available to unprivileged writers, filesystem size) of `dir`'s filesystem.
/// Blocking.
pub(crate) fn statvfs_bytes(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs only writes the struct we pass; `path` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = st.f_frsize as u64;
    Ok((st.f_bavail as u64 * block, st.f_blocks as u64 * block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_floor_is_64_mib_or_5_percent_of_a_small_disk() {
        assert_eq!(floor_bytes(None, 1 << 40), MIN_FREE_BYTES_DEFAULT_MAX);
        assert_eq!(floor_bytes(None, 100 << 20), 5 << 20);
        assert_eq!(floor_bytes(Some(123), 1 << 40), 123);
        assert_eq!(floor_bytes(Some(0), 1 << 40), 0);
    }

    #[test]
    fn writes_are_admitted_down_to_the_floor_only() {
        assert!(admits(100, 10, 90));
        assert!(!admits(100, 10, 91));
        assert!(!admits(5, 10, 0), "already below the floor");
        assert!(!admits(5, 0, 6), "more than is free");
    }

    #[test]
    fn admitted_bytes_count_against_the_sample() {
        let d = DiskSpace::new(Path::new("/"), Some(1000));
        d.sample.set(Some(Sample {
            free_bytes: 3000,
            floor_bytes: 1000,
        }));
        assert!(d.admit(1500).is_ok());
        let e = d.admit(600).expect_err("1500 + 600 would leave 900 < 1000");
        assert_eq!(e.code, ErrorCode::StorageError);
        assert!(
            e.message.contains("storage.min.free.bytes"),
            "{}",
            e.message
        );
        assert!(d.admit(500).is_ok(), "what fits still fits");
    }
}
