//! The clean-shutdown marker: written last by a clean close, removed first by open.
//! When present and consistent with the files, open trusts the active segment's size
//! and indexes and skips the recovery scan.

use std::path::{Path, PathBuf};

/// Name of the marker file in a partition directory.
pub const CLEAN_MARKER_NAME: &str = ".clean";

/// What a clean close recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanMarker {
    pub next_offset: i64,
    pub active_base_offset: i64,
    pub active_size_bytes: u64,
}

impl CleanMarker {
    /// The marker's path in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CLEAN_MARKER_NAME)
    }

    /// Text form: one `key=value` per line.
    pub fn encode(&self) -> String {
        format!(
            "strata-clean-v1\nnext_offset={}\nactive_base_offset={}\nactive_size_bytes={}\nend\n",
            self.next_offset, self.active_base_offset, self.active_size_bytes
        )
    }

    /// Parses the text form; `None` if it is not a complete v1 marker.
    pub fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != "strata-clean-v1" {
            return None;
        }
        let mut field = |name: &str| -> Option<i64> {
            let line = lines.next()?;
            line.strip_prefix(name)?.strip_prefix('=')?.parse().ok()
        };
        let next_offset = field("next_offset")?;
        let active_base_offset = field("active_base_offset")?;
        let active_size_bytes = u64::try_from(field("active_size_bytes")?).ok()?;
        if lines.next()? != "end" {
            return None;
        }
        Some(CleanMarker {
            next_offset,
            active_base_offset,
            active_size_bytes,
        })
    }
}

/// Writes `contents` to `path` durably (temp file, fsync, rename, fsync of the
/// directory). Blocking: run it on glommio's blocking pool, never on a shard.
pub fn write_durably(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// How the small files a log writes when it opens or closes (the clean marker, the
/// marker's removal, a new log's first producer snapshot) become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetaSync {
    /// Each one is fsynced (file and directory) before the open or close returns.
    #[default]
    Each,
    /// They are written but not synced; the caller makes those of many logs durable
    /// at once with [`sync_filesystem`] before anything is appended to the logs it
    /// opened (a broker opening or closing thousands of partitions pays one sync
    /// instead of two per partition).
    Deferred,
}

/// Writes `contents` to `path` atomically (temp file, rename) but not durably: a
/// crash of the machine may leave the old file, no file or a damaged one, so only
/// files whose absence or damage is detected and safe may be written this way (the
/// clean marker, whose decoding is strict; a producer snapshot, which open skips when
/// it does not decode). Blocking.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Writes `contents` to `path` as `sync` says: [`write_durably`], or
/// [`write_atomically`] leaving durability to a later [`sync_filesystem`]. Blocking.
pub fn write_with(path: &Path, contents: &[u8], sync: MetaSync) -> std::io::Result<()> {
    match sync {
        MetaSync::Each => write_durably(path, contents),
        MetaSync::Deferred => write_atomically(path, contents),
    }
}

/// Makes everything written on the filesystem holding `dir` durable (`syncfs`):
/// one call instead of a file and a directory fsync per partition. Blocking.
pub fn sync_filesystem(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir)?;
    // SAFETY: syncfs only reads the descriptor, which `d` keeps open for the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// fsyncs a directory so renames and unlinks in it are durable. Blocking.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects_partial() {
        let m = CleanMarker {
            next_offset: 77,
            active_base_offset: 40,
            active_size_bytes: 12345,
        };
        let text = m.encode();
        assert_eq!(CleanMarker::decode(&text), Some(m));
        assert_eq!(CleanMarker::decode(&text[..text.len() - 4]), None);
        assert_eq!(CleanMarker::decode("garbage"), None);
    }
}
