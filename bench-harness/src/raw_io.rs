//! The raw disk patterns strata is compared with, on plain O_DIRECT files through
//! glommio's DMA files (the same io_uring path the engine uses): sequential appends of
//! a fixed write size, optionally each followed by fdatasync, into files that are
//! preallocated with `fallocate(KEEP_SIZE)` and grow as they are written — the way the
//! engine writes a segment — and sequential reads of whole files. Like the engine, a
//! run first reads a non-empty file with DMA (`ensure_dma_reads`), so that glommio
//! picks the same io_uring ring for this device as it does for the engine.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use glommio::io::{DmaFile, OpenOptions};
use hdrhistogram::Histogram;

use crate::proc_stats::Usage;
use crate::report::{latency_histogram, mb_per_s, record_us};
use crate::window::{Budget, Window};

/// O_DIRECT alignment of offsets, lengths and buffers (the engine's).
pub const DMA_ALIGN_BYTES: usize = strata_engine::file::DMA_ALIGN_BYTES as usize;

/// Which raw write pattern to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawPattern {
    /// Sequential writes with up to `depth` in flight, never synced.
    Sequential { depth: usize },
    /// One write, then fdatasync, then the next write.
    WriteSync,
    /// WriteSync over a ring of already-written blocks (`OVERWRITE_RING_BYTES`): no
    /// block allocation, extent conversion or size change for fdatasync to persist.
    OverwriteSync,
}

/// Bytes of the region `OverwriteSync` writes first and then cycles over.
pub const OVERWRITE_RING_BYTES: u64 = 64 << 20;

impl RawPattern {
    /// Short name for tables.
    pub fn name(&self) -> String {
        match self {
            RawPattern::Sequential { depth } => format!("seq write qd{depth}"),
            RawPattern::WriteSync => "write+fdatasync".into(),
            RawPattern::OverwriteSync => "overwrite+fdatasync".into(),
        }
    }
}

/// A raw write run.
#[derive(Clone, Debug)]
pub struct RawSpec {
    /// Directory for the files (created; files are left for the caller to delete).
    pub dir: PathBuf,
    /// Bytes per write; a multiple of `DMA_ALIGN_BYTES`.
    pub write_bytes: usize,
    /// Bytes preallocated per file; a new file starts when one is full.
    pub file_bytes: u64,
    pub pattern: RawPattern,
    pub budget: Budget,
    /// Bytes copied into every write buffer (repeated to fill it).
    pub fill: Arc<[u8]>,
    /// Run the engine's DMA read probe first, as `Log::open` does. Without it the
    /// thread's first DMA open is an empty file, glommio concludes the device supports
    /// I/O polling, and every DMA write of the thread goes to its poll ring.
    pub probe_dma_reads: bool,
}

/// What a raw run measured over its counted window.
#[derive(Clone, Debug)]
pub struct RawResult {
    pub bytes: u64,
    pub seconds: f64,
    /// fdatasync latency (WriteSync and OverwriteSync only).
    pub sync_latency: Histogram<u64>,
    /// Latency of a write, including its fdatasync for WriteSync.
    pub cycle_latency: Histogram<u64>,
    pub usage: Usage,
}

impl RawResult {
    /// Throughput in MB/s.
    pub fn mb_per_s(&self) -> f64 {
        mb_per_s(self.bytes, self.seconds)
    }
}

/// Files of `file_bytes` each, preallocated and appended to in order.
struct RawFiles {
    dir: PathBuf,
    file_bytes: u64,
    next_index: u32,
    file: Option<Rc<DmaFile>>,
    pos: u64,
}

impl RawFiles {
    fn new(dir: &Path, file_bytes: u64) -> Self {
        RawFiles {
            dir: dir.to_path_buf(),
            file_bytes,
            next_index: 0,
            file: None,
            pos: 0,
        }
    }

    fn needs_new_file(&self, len: usize) -> bool {
        self.file.is_none() || self.pos + len as u64 > self.file_bytes
    }

    /// Closes the current file (its writes must have completed) and starts the next.
    async fn start_next(&mut self) -> anyhow::Result<()> {
        self.close().await?;
        let path = self.dir.join(format!("raw-{:05}.data", self.next_index));
        self.next_index += 1;
        let file = io(OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&path)
            .await)
        .with_context(|| format!("create {}", path.display()))?;
        io(file.pre_allocate(self.file_bytes, true).await)
            .with_context(|| format!("fallocate {}", path.display()))?;
        self.file = Some(Rc::new(file));
        self.pos = 0;
        Ok(())
    }

    /// The file and position for the next `len` bytes.
    fn advance(&mut self, len: usize) -> (Rc<DmaFile>, u64) {
        let file = Rc::clone(self.file.as_ref().expect("start_next before advance"));
        let pos = self.pos;
        self.pos += len as u64;
        (file, pos)
    }

    async fn close(&mut self) -> anyhow::Result<()> {
        if let Some(f) = self.file.take() {
            if let Ok(f) = Rc::try_unwrap(f) {
                io(f.close().await)?;
            }
        }
        Ok(())
    }
}

/// glommio's errors are not `Sync`; its I/O errors convert to `std::io::Error`.
fn io<T>(r: glommio::Result<T, ()>) -> std::io::Result<T> {
    r.map_err(Into::into)
}

fn fill_buffer(buf: &mut [u8], fill: &[u8]) {
    if fill.is_empty() {
        buf.fill(0x5a);
        return;
    }
    for chunk in buf.chunks_mut(fill.len()) {
        chunk.copy_from_slice(&fill[..chunk.len()]);
    }
}

/// Runs a raw write pattern on the current glommio executor.
pub async fn run_raw(spec: &RawSpec) -> anyhow::Result<RawResult> {
    ensure!(
        spec.write_bytes > 0 && spec.write_bytes.is_multiple_of(DMA_ALIGN_BYTES),
        "write size {} is not a positive multiple of {DMA_ALIGN_BYTES}",
        spec.write_bytes
    );
    ensure!(
        spec.file_bytes >= spec.write_bytes as u64,
        "file size {} is below the write size {}",
        spec.file_bytes,
        spec.write_bytes
    );
    std::fs::create_dir_all(&spec.dir).with_context(|| format!("create {}", spec.dir.display()))?;
    if spec.probe_dma_reads {
        strata_engine::file::ensure_dma_reads(&spec.dir).await?;
    }
    let len = spec.write_bytes;
    let overwrite = spec.pattern == RawPattern::OverwriteSync;
    let file_bytes = if overwrite {
        OVERWRITE_RING_BYTES.max(len as u64)
    } else {
        spec.file_bytes
    };
    let mut files = RawFiles::new(&spec.dir, file_bytes);
    files.start_next().await?;
    if overwrite {
        fill_region(&mut files, len, &spec.fill).await?;
    }
    let mut sync_latency = latency_histogram();
    let mut cycle_latency = latency_histogram();
    let mut window = Window::new(&spec.dir, &spec.budget);
    match spec.pattern {
        RawPattern::WriteSync | RawPattern::OverwriteSync => loop {
            if window.done(Instant::now()) {
                break;
            }
            if overwrite && files.needs_new_file(len) {
                files.pos = 0;
            } else if files.needs_new_file(len) {
                files.start_next().await?;
            }
            let (file, pos) = files.advance(len);
            let mut buf = file.alloc_dma_buffer(len);
            fill_buffer(buf.as_bytes_mut(), &spec.fill);
            let issued = Instant::now();
            let written = io(file.write_at(buf, pos).await)?;
            ensure!(written == len, "short write: {written} of {len} bytes");
            let sync_start = Instant::now();
            io(file.fdatasync().await)?;
            let done = Instant::now();
            if window.counts(issued) {
                record_us(&mut sync_latency, (done - sync_start).as_micros() as u64);
                record_us(&mut cycle_latency, (done - issued).as_micros() as u64);
            }
            window.complete(len, done);
        },
        RawPattern::Sequential { depth } => {
            let depth = depth.max(1);
            let mut inflight = VecDeque::with_capacity(depth);
            loop {
                if window.done(Instant::now()) {
                    break;
                }
                if inflight.len() >= depth || (files.needs_new_file(len) && !inflight.is_empty()) {
                    let (task, issued): (glommio::Task<glommio::Result<usize, ()>>, Instant) =
                        inflight.pop_front().expect("inflight is not empty");
                    let written = io(task.await)?;
                    ensure!(written == len, "short write: {written} of {len} bytes");
                    let done = Instant::now();
                    if window.counts(issued) {
                        record_us(&mut cycle_latency, (done - issued).as_micros() as u64);
                    }
                    window.complete(len, done);
                    continue;
                }
                if files.needs_new_file(len) {
                    files.start_next().await?;
                }
                let (file, pos) = files.advance(len);
                let mut buf = file.alloc_dma_buffer(len);
                fill_buffer(buf.as_bytes_mut(), &spec.fill);
                let issued = Instant::now();
                let task = glommio::spawn_local(async move { file.write_at(buf, pos).await });
                inflight.push_back((task, issued));
            }
            while let Some((task, _)) = inflight.pop_front() {
                io(task.await)?;
            }
        }
    }
    let (bytes, _ops, seconds, usage) = window.finish();
    files.close().await?;
    Ok(RawResult {
        bytes,
        seconds,
        sync_latency,
        cycle_latency,
        usage,
    })
}

/// Writes the whole current file once (then syncs it) and rewinds to its start.
async fn fill_region(files: &mut RawFiles, len: usize, fill: &[u8]) -> anyhow::Result<()> {
    while !files.needs_new_file(len) {
        let (file, pos) = files.advance(len);
        let mut buf = file.alloc_dma_buffer(len);
        fill_buffer(buf.as_bytes_mut(), fill);
        let written = io(file.write_at(buf, pos).await)?;
        ensure!(written == len, "short write: {written} of {len} bytes");
    }
    let file = Rc::clone(files.file.as_ref().expect("a file is open"));
    io(file.fdatasync().await)?;
    files.pos = 0;
    Ok(())
}

/// Reads `files` whole and in order with O_DIRECT, `chunk_bytes` per read and up to
/// `depth` reads in flight; returns (bytes read, seconds). The first file must not be
/// empty: glommio decides from a thread's first DMA read whether DMA reads work, and
/// an empty file gives the wrong answer (reads then fail with EOPNOTSUPP).
pub async fn read_files(
    files: &[PathBuf],
    chunk_bytes: usize,
    depth: usize,
) -> anyhow::Result<(u64, f64)> {
    ensure!(
        chunk_bytes.is_multiple_of(DMA_ALIGN_BYTES),
        "read size must be a multiple of {DMA_ALIGN_BYTES}"
    );
    let start = Instant::now();
    let mut total = 0u64;
    for path in files {
        let file = Rc::new(
            io(DmaFile::open(path).await).with_context(|| format!("open {}", path.display()))?,
        );
        let size = io(file.file_size().await)?;
        if size == 0 {
            ensure!(
                total > 0,
                "{}: the first file read must not be empty",
                path.display()
            );
            io(file.close_rc().await)?;
            continue;
        }
        let mut next = 0u64;
        let mut inflight = VecDeque::with_capacity(depth.max(1));
        loop {
            while inflight.len() < depth.max(1) && next < size {
                let f = Rc::clone(&file);
                let at = next;
                let len = chunk_bytes.min((size - at) as usize);
                let aligned = len.div_ceil(DMA_ALIGN_BYTES) * DMA_ALIGN_BYTES;
                inflight.push_back(glommio::spawn_local(async move {
                    f.read_at_aligned(at, aligned).await
                }));
                next += len as u64;
            }
            let Some(task) = inflight.pop_front() else {
                break;
            };
            let got = io(task.await)?;
            total += got.len() as u64;
        }
        io(file.close_rc().await)?;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}
