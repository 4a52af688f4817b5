//! `StorageFile`: a segment or index file opened with O_DIRECT through glommio's DMA
//! files (io_uring). Every write and sync passes the fault seam first.

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};

use crate::error::{EngineError, Result};
use crate::faults::{Fault, FaultInjector};

/// Alignment of O_DIRECT offsets, lengths and buffers on the filesystems we run on.
pub const DMA_ALIGN_BYTES: u64 = 4096;

/// Rounds `v` down to the DMA alignment.
pub fn align_down(v: u64) -> u64 {
    v & !(DMA_ALIGN_BYTES - 1)
}

/// Rounds `v` up to the DMA alignment.
pub fn align_up(v: u64) -> u64 {
    align_down(v + DMA_ALIGN_BYTES - 1)
}

/// One DMA file and where it lives.
#[derive(Debug)]
pub struct StorageFile {
    file: DmaFile,
    path: PathBuf,
    faults: FaultInjector,
}

impl StorageFile {
    /// Opens `path` for reading and writing, creating it if missing.
    pub async fn open_rw(path: &Path, faults: &FaultInjector) -> Result<Self> {
        check_open(path, faults)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(path)
            .await
            .map_err(|e| EngineError::io("open", path, e.into()))?;
        Ok(StorageFile {
            file,
            path: path.to_path_buf(),
            faults: faults.clone(),
        })
    }

    /// Opens an existing `path` for reading.
    pub async fn open_read(path: &Path, faults: &FaultInjector) -> Result<Self> {
        check_open(path, faults)?;
        let file = DmaFile::open(path)
            .await
            .map_err(|e| EngineError::io("open", path, e.into()))?;
        Ok(StorageFile {
            file,
            path: path.to_path_buf(),
            faults: faults.clone(),
        })
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A DMA-aligned buffer of `size` bytes.
    pub fn alloc(&self, size: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(size)
    }

    /// Writes the whole aligned `buf` at aligned `pos`; a short write is an error.
    pub async fn write_all_at(&self, mut buf: DmaBuffer, pos: u64) -> Result<()> {
        debug_assert_eq!(pos % DMA_ALIGN_BYTES, 0);
        debug_assert_eq!(buf.len() as u64 % DMA_ALIGN_BYTES, 0);
        let len = buf.len();
        match self.faults.on_write() {
            Some(Fault::WriteError) => return Err(self.err("write", libc::EIO)),
            Some(Fault::NoSpace) => return Err(self.err("write", libc::ENOSPC)),
            Some(Fault::ShortWrite) => {
                // Store the first aligned half for real, then report it short.
                let half = (align_down(len as u64 / 2) as usize).max(DMA_ALIGN_BYTES as usize);
                buf.trim_to_size(half.min(len));
                let written = self.write_raw(buf, pos).await?;
                return Err(self.short(written, len));
            }
            Some(Fault::SyncError | Fault::TooManyOpenFiles) | None => {}
        }
        let written = self.write_raw(buf, pos).await?;
        if written != len {
            return Err(self.short(written, len));
        }
        Ok(())
    }

    async fn write_raw(&self, buf: DmaBuffer, pos: u64) -> Result<usize> {
        self.file
            .write_at(buf, pos)
            .await
            .map_err(|e| EngineError::io("write", &self.path, e.into()))
    }

    /// Reads `len` bytes at `pos` (any alignment); fewer at the end of the file.
    pub async fn read_at(&self, pos: u64, len: usize) -> Result<ReadResult> {
        self.file
            .read_at(pos, len)
            .await
            .map_err(|e| EngineError::io("read", &self.path, e.into()))
    }

    /// Makes written data durable.
    pub async fn fdatasync(&self) -> Result<()> {
        if let Some(Fault::SyncError) = self.faults.on_sync() {
            return Err(self.err("fdatasync", libc::EIO));
        }
        self.file
            .fdatasync()
            .await
            .map_err(|e| EngineError::io("fdatasync", &self.path, e.into()))
    }

    /// Sets the file's size (data past it is gone).
    pub async fn truncate(&self, size_bytes: u64) -> Result<()> {
        self.file
            .truncate(size_bytes)
            .await
            .map_err(|e| EngineError::io("truncate", &self.path, e.into()))
    }

    /// Reserves disk space up to `size_bytes` without changing the file size.
    pub async fn preallocate(&self, size_bytes: u64) -> Result<()> {
        self.file
            .pre_allocate(size_bytes, true)
            .await
            .map_err(|e| EngineError::io("fallocate", &self.path, e.into()))
    }

    /// The file's size in bytes.
    pub async fn size(&self) -> Result<u64> {
        self.file
            .file_size()
            .await
            .map_err(|e| EngineError::io("stat", &self.path, e.into()))
    }

    /// Closes the file.
    pub async fn close(self) -> Result<()> {
        self.file
            .close()
            .await
            .map_err(|e| EngineError::io("close", &self.path, e.into()))
    }

    fn err(&self, op: &'static str, errno: i32) -> EngineError {
        EngineError::io(op, &self.path, io::Error::from_raw_os_error(errno))
    }

    fn short(&self, written: usize, len: usize) -> EngineError {
        EngineError::Io {
            op: "write",
            path: self.path.clone(),
            kind: io::ErrorKind::WriteZero,
            message: format!("short write: {written} of {len} bytes"),
        }
    }
}

/// The fault seam's say on opening `path`.
fn check_open(path: &Path, faults: &FaultInjector) -> Result<()> {
    match faults.on_open() {
        Some(Fault::TooManyOpenFiles) => Err(EngineError::io(
            "open",
            path,
            io::Error::from_raw_os_error(libc::EMFILE),
        )),
        _ => Ok(()),
    }
}

thread_local! {
    static DMA_READS_PROBED: Cell<bool> = const { Cell::new(false) };
}

/// Makes DMA reads work on this thread. glommio probes its poll ring with the first
/// DMA read a thread issues and caches the answer; an empty file answers that probe
/// "successfully" and later reads then fail with EOPNOTSUPP (glommio #605, #670). So
/// each shard first opens and reads a non-empty probe file in `dir`.
pub async fn ensure_dma_reads(dir: &Path) -> Result<()> {
    if DMA_READS_PROBED.with(Cell::get) {
        return Ok(());
    }
    let path = dir.join(".dma-probe");
    let probe_len = DMA_ALIGN_BYTES as usize;
    let needs_write = glommio::executor()
        .spawn_blocking({
            let path = path.clone();
            move || {
                std::fs::metadata(&path)
                    .map(|m| m.len() < probe_len as u64)
                    .unwrap_or(true)
            }
        })
        .await;
    if needs_write {
        let file = DmaFile::create(&path)
            .await
            .map_err(|e| EngineError::io("create", &path, e.into()))?;
        let mut buf = file.alloc_dma_buffer(probe_len);
        buf.as_bytes_mut().fill(0x5a);
        file.write_at(buf, 0)
            .await
            .map_err(|e| EngineError::io("write", &path, e.into()))?;
        file.close()
            .await
            .map_err(|e| EngineError::io("close", &path, e.into()))?;
    }
    let file = DmaFile::open(&path)
        .await
        .map_err(|e| EngineError::io("open", &path, e.into()))?;
    file.read_at_aligned(0, probe_len)
        .await
        .map_err(|e| EngineError::io("read", &path, e.into()))?;
    file.close()
        .await
        .map_err(|e| EngineError::io("close", &path, e.into()))?;
    DMA_READS_PROBED.with(|p| p.set(true));
    Ok(())
}
