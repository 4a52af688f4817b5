//! Opening a log: find its segments, trust a clean-shutdown marker when it matches
//! the files, otherwise validate the active segment's tail batch by batch from its
//! last good index entry, cut a torn tail, and rebuild missing or stale indexes.
//! Damage anywhere but a torn tail fences the partition (read-only, with the reason)
//! instead of being skipped.
//!
//! Opening also restores the idempotent producers' state: the newest valid
//! `<offset>.producers` snapshot at or below the recovered end, plus the headers of the
//! batches after it. After an unclean stop the recovery scan of the active segment
//! starts early enough to serve as that replay too. The snapshot files are written and
//! pruned here as well (at roll, periodically, at clean close, after truncation).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::sync::Semaphore;
use strata_schema::{
    check_batch, peek_batch_len, BatchError, BatchHeader, BATCH_BYTES_MAX, BATCH_HEADER_BYTES,
};

use crate::appender::AlignedAppender;
use crate::clean_marker::{sync_dir, write_with, CleanMarker, MetaSync};
use crate::config::LogConfig;
use crate::error::{EngineError, Result};
use crate::file::{ensure_dma_reads, StorageFile};
use crate::index::{OffsetIndex, INDEX_ENTRY_BYTES};
use crate::leader_epochs::{LeaderEpochs, LEADER_EPOCHS_NAME};
use crate::log::{next_log_id, now_ms, Fence, Log, LogEnv, LogInner, LogState, OpenKind};
use crate::producer_state::{
    ProducerBatch, ProducerLimits, ProducerStates, PRODUCER_SNAPSHOTS_KEPT,
    PRODUCER_SNAPSHOT_SUFFIX,
};
use crate::segment::{
    parse_offset_name, parse_segment_name, segment_path, Segment, CLEANED_SUFFIX, INDEX_SUFFIX,
    LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::time_index::{TimeIndex, TIME_ENTRY_BYTES};

/// Bytes per read while scanning a segment.
const SCAN_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Scan reads in flight ahead of the one being parsed.
const SCAN_READ_AHEAD: usize = 3;

/// Where a scan stopped.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// Position after the last batch visited.
    pub end_pos: u64,
    /// The bad batch that stopped it, if any: its position, the error, and its header
    /// when the header itself was readable.
    pub invalid: Option<(u64, BatchError, Option<BatchHeader>)>,
}

/// Visits every valid batch header (length and CRC checked) in `[from, to)` of
/// `file`, in order, until the visitor returns false or a batch is bad or cut off.
/// Reads run ahead of parsing so the disk stays busy.
pub(crate) async fn scan_batches(
    file: &Rc<StorageFile>,
    from: u64,
    to: u64,
    mut visit: impl FnMut(u64, &BatchHeader) -> bool,
) -> Result<ScanEnd> {
    let mut next_read = from;
    let mut inflight = VecDeque::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut pos = from;
    loop {
        while inflight.len() < SCAN_READ_AHEAD && next_read < to {
            let len = SCAN_CHUNK_BYTES.min((to - next_read) as usize);
            let f = Rc::clone(file);
            let at = next_read;
            inflight.push_back(glommio::spawn_local(
                async move { f.read_at(at, len).await },
            ));
            next_read += len as u64;
        }
        let Some(task) = inflight.pop_front() else {
            break;
        };
        let chunk = task.await?;
        if chunk.is_empty() {
            break;
        }
        let mut owned;
        let data: &[u8] = if carry.is_empty() {
            &chunk
        } else {
            owned = std::mem::take(&mut carry);
            owned.extend_from_slice(&chunk);
            &owned
        };
        let mut at = 0usize;
        while at < data.len() {
            let rest = &data[at..];
            if rest.len() >= BATCH_HEADER_BYTES {
                if let Err(e) = BatchHeader::decode(rest) {
                    return Ok(ScanEnd {
                        end_pos: pos,
                        invalid: Some((pos, e, None)),
                    });
                }
            }
            let Some(n) = peek_batch_len(rest) else {
                break;
            };
            if !(BATCH_HEADER_BYTES..=BATCH_BYTES_MAX).contains(&n) {
                let e = BatchError::TooLarge {
                    len_bytes: n,
                    max_bytes: BATCH_BYTES_MAX,
                };
                return Ok(ScanEnd {
                    end_pos: pos,
                    invalid: Some((pos, e, None)),
                });
            }
            if rest.len() < n {
                break;
            }
            match check_batch(&rest[..n]) {
                Ok(h) => {
                    if !visit(pos, &h) {
                        return Ok(ScanEnd {
                            end_pos: pos,
                            invalid: None,
                        });
                    }
                    pos += n as u64;
                    at += n;
                }
                Err(e) => {
                    let h = BatchHeader::decode(rest).ok();
                    return Ok(ScanEnd {
                        end_pos: pos,
                        invalid: Some((pos, e, h)),
                    });
                }
            }
        }
        carry = data[at..].to_vec();
    }
    let invalid = (!carry.is_empty()).then(|| {
        let h = BatchHeader::decode(&carry).ok();
        let need = peek_batch_len(&carry).unwrap_or(BATCH_HEADER_BYTES);
        (
            pos,
            BatchError::TooShort {
                need_bytes: need,
                have_bytes: carry.len(),
            },
            h,
        )
    });
    Ok(ScanEnd {
        end_pos: pos,
        invalid,
    })
}

/// What the directory listing found.
#[derive(Default)]
struct Listing {
    bases: Vec<i64>,
    log_sizes: Vec<u64>,
    index_sizes: Vec<Option<u64>>,
    time_sizes: Vec<Option<u64>>,
    marker: Option<String>,
    epochs: Option<String>,
    /// Producer snapshot files (offset, contents), oldest first.
    producer_snapshots: Vec<(i64, Vec<u8>)>,
}

/// Lists the directory (creating it), removing leftovers of interrupted compaction.
/// Blocking: runs on glommio's blocking pool.
fn list_dir(dir: &Path, sync: MetaSync) -> std::io::Result<Listing> {
    std::fs::create_dir_all(dir)?;
    let mut listing = Listing::default();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(CLEANED_SUFFIX) || name.ends_with(".tmp") {
            std::fs::remove_file(entry.path())?;
        } else if let Some(base) = parse_segment_name(&name) {
            listing.bases.push(base);
        } else if let Some(offset) = parse_offset_name(&name, PRODUCER_SNAPSHOT_SUFFIX) {
            match std::fs::read(entry.path()) {
                Ok(bytes) => listing.producer_snapshots.push((offset, bytes)),
                // Pruned since the listing: a newer one exists.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    listing.bases.sort_unstable();
    listing.producer_snapshots.sort_unstable_by_key(|(o, _)| *o);
    let size = |p: PathBuf| std::fs::metadata(p).ok().map(|m| m.len());
    for &b in &listing.bases {
        listing
            .log_sizes
            .push(size(segment_path(dir, b, LOG_SUFFIX)).unwrap_or(0));
        listing
            .index_sizes
            .push(size(segment_path(dir, b, INDEX_SUFFIX)));
        listing
            .time_sizes
            .push(size(segment_path(dir, b, TIME_INDEX_SUFFIX)));
    }
    let marker_path = CleanMarker::path(dir);
    listing.marker = std::fs::read_to_string(&marker_path).ok();
    if listing.marker.is_some() {
        // Gone before anything is appended, or a crash after new appends would trust it
        // (durably now, or by the caller's `sync_filesystem` before it appends).
        std::fs::remove_file(&marker_path)?;
        if sync == MetaSync::Each {
            sync_dir(dir)?;
        }
    }
    listing.epochs = std::fs::read_to_string(dir.join(LEADER_EPOCHS_NAME)).ok();
    Ok(listing)
}

fn index_sizes_ok(index: Option<u64>, time: Option<u64>) -> bool {
    matches!((index, time), (Some(i), Some(t))
        if i % INDEX_ENTRY_BYTES as u64 == 0 && t % TIME_ENTRY_BYTES as u64 == 0)
}

pub(crate) async fn open_log(
    dir: &Path,
    config: LogConfig,
    env: LogEnv,
    sync: MetaSync,
) -> Result<Log> {
    let dir = dir.to_path_buf();
    let (listing, start_checkpoint) = glommio::executor()
        .spawn_blocking({
            let dir = dir.clone();
            move || {
                crate::log_restart::finish_interrupted_restart(&dir)?;
                list_dir(&dir, sync)
                    .map(|l| (l, crate::delete_records::read_log_start_checkpoint(&dir)))
            }
        })
        .await
        .map_err(|e| EngineError::io("list", &dir, e))?;
    ensure_dma_reads(dir.parent().unwrap_or(&dir)).await?;
    let marker = listing.marker.as_deref().and_then(CleanMarker::decode);
    let epochs = listing
        .epochs
        .as_deref()
        .map(LeaderEpochs::decode)
        .unwrap_or_default();
    let inner = Rc::new(LogInner {
        id: next_log_id(),
        dir: dir.clone(),
        env,
        io_lock: Semaphore::new(1),
        compact_from_offset: Cell::new(0),
        state: RefCell::new(LogState {
            config,
            segments: Vec::new(),
            log_start_offset: 0,
            high_watermark: 0,
            pending: VecDeque::new(),
            pending_bytes: 0,
            writer: None,
            flusher_running: false,
            sync_timer_armed: false,
            written_end_offset: 0,
            durable_end_offset: 0,
            durable_wanted_offset: 0,
            fence: None,
            stall: None,
            stall_retry_ms: 0,
            appends_paused: false,
            closed: false,
            waiters: Vec::new(),
            epochs,
            epochs_dirty: false,
            producers: ProducerStates::default(),
            producer_snapshot_bytes: 0,
            opened: OpenKind::Created,
            opened_shape: None,
            open_files: VecDeque::new(),
        }),
    });
    // No snapshot file at all: the log predates producer state (every open since
    // leaves one), so it holds no idempotent batches and there is nothing to replay.
    let snapshot_offsets: Vec<i64> = listing.producer_snapshots.iter().map(|s| s.0).collect();
    let snapshots = decode_producer_snapshots(&dir, listing.producer_snapshots);
    let mut replayed = None;
    let n = listing.bases.len();
    if n == 0 {
        let start = marker.map_or(0, |m| m.next_offset);
        inner
            .state
            .borrow_mut()
            .segments
            .push(Segment::empty(start));
    }
    for k in 0..n {
        let base = listing.bases[k];
        let size = listing.log_sizes[k];
        let (index_size, time_size) = (listing.index_sizes[k], listing.time_sizes[k]);
        if k + 1 < n {
            let mut seg = Segment::empty(base);
            seg.next_offset = listing.bases[k + 1];
            seg.size_bytes = size;
            seg.written_bytes = size;
            seg.closed = true;
            seg.indexes_loaded = false;
            inner.state.borrow_mut().segments.push(seg);
            match time_size {
                Some(t)
                    if index_sizes_ok(index_size, time_size) && t >= TIME_ENTRY_BYTES as u64 =>
                {
                    let ts = read_last_timestamp(&inner, base, t).await?;
                    inner.state.borrow_mut().segments[k].max_timestamp_ms = ts;
                }
                _ => rebuild_indexes(&inner, base).await?,
            }
            continue;
        }
        let trusted = marker.filter(|m| {
            m.active_base_offset == base
                && m.active_size_bytes == size
                && index_sizes_ok(index_size, time_size)
        });
        inner.state.borrow_mut().segments.push(Segment::empty(base));
        let clean = match trusted {
            Some(m) => open_clean_active(&inner, base, size, m.next_offset).await?,
            None => false,
        };
        if clean {
            inner.state.borrow_mut().opened = OpenKind::Clean;
        } else {
            let mut replay = if snapshot_offsets.is_empty() {
                ProducerReplay {
                    from: i64::MAX,
                    state: ProducerStates::default(),
                }
            } else {
                start_replay(&inner, &snapshots, listing.bases[0], base).await?
            };
            recover_active(&inner, base, size, &mut replay).await?;
            replayed = Some(replay);
            inner.state.borrow_mut().opened = OpenKind::Recovered;
        }
    }
    {
        let mut st = inner.state.borrow_mut();
        let end = st.log_end_offset();
        // DeleteRecords may have moved the start into the first segment.
        st.log_start_offset = st.segments[0]
            .base_offset
            .max(start_checkpoint.unwrap_or(0).min(end));
        st.written_end_offset = end;
        st.durable_end_offset = end;
        st.durable_wanted_offset = end;
        st.high_watermark = end;
        st.epochs.truncate_from(end);
    }
    restore_producers(&inner, &snapshot_offsets, snapshots, replayed, sync).await?;
    {
        let mut st = inner.state.borrow_mut();
        st.opened_shape = Some(st.shape());
    }
    Ok(Log { inner })
}

/// Producer state being rebuilt at open: a snapshot's state, into which the headers
/// of batches at or after `from` are replayed.
struct ProducerReplay {
    from: i64,
    state: ProducerStates,
}

/// Decodes snapshot files, skipping damaged ones with a warning; keeps the order.
fn decode_producer_snapshots(dir: &Path, raw: Vec<(i64, Vec<u8>)>) -> Vec<(i64, ProducerStates)> {
    raw.into_iter()
        .filter_map(
            |(offset, bytes)| match ProducerStates::decode(&bytes, ProducerLimits::default()) {
                Ok((o, state)) if o == offset => Some((o, state)),
                Ok((o, _)) => {
                    tracing::warn!(dir = %dir.display(), offset, found = o, "ignoring producer snapshot: offset does not match its name");
                    None
                }
                Err(detail) => {
                    tracing::warn!(dir = %dir.display(), offset, %detail, "ignoring damaged producer snapshot");
                    None
                }
            },
        )
        .collect()
}

/// Where the active segment's recovery scan picks up the producer state: the newest
/// snapshot (which may turn out to be past the recovered end; see `restore_producers`),
/// with the closed segments between it and the active one replayed.
async fn start_replay(
    inner: &LogInner,
    snapshots: &[(i64, ProducerStates)],
    log_start: i64,
    active_base: i64,
) -> Result<ProducerReplay> {
    let (from, mut state) = snapshots
        .last()
        .cloned()
        .unwrap_or((log_start, ProducerStates::default()));
    if from < active_base {
        replay_producers(inner, &mut state, from.max(log_start), active_base).await?;
    }
    Ok(ProducerReplay { from, state })
}

/// Installs the producer state at the end of an open: the one the recovery scan built,
/// or else the newest snapshot at or below the end plus a replay of the batches after
/// it. Removes snapshots past the end (they describe batches a crash lost) and leaves
/// a snapshot at the end when no usable one was found, so the next open need not replay.
async fn restore_producers(
    inner: &LogInner,
    snapshot_offsets: &[i64],
    snapshots: Vec<(i64, ProducerStates)>,
    replayed: Option<ProducerReplay>,
    sync: MetaSync,
) -> Result<()> {
    let (start, end) = {
        let st = inner.state.borrow();
        (st.log_start_offset, st.log_end_offset())
    };
    let usable = snapshots.iter().any(|(o, _)| *o <= end);
    let mut state = match replayed {
        _ if snapshot_offsets.is_empty() => ProducerStates::default(),
        Some(r) if r.from <= end => r.state,
        _ => {
            let (from, mut state) = snapshots
                .into_iter()
                .rev()
                .find(|(o, _)| *o <= end)
                .unwrap_or((start, ProducerStates::default()));
            let from = from.max(start);
            if from < end {
                replay_producers(inner, &mut state, from, end).await?;
            }
            state
        }
    };
    if snapshot_offsets.iter().any(|&o| o > end) {
        remove_producer_snapshots_above(inner, end).await?;
    }
    state.remove_expired(now_ms());
    let bytes = (!usable).then(|| state.encode(end));
    inner.state.borrow_mut().producers = state;
    if let Some(bytes) = bytes {
        write_producer_snapshot_with(inner, end, bytes.into(), sync).await?;
    }
    Ok(())
}

/// Replays the headers of the batches in `[from, to)` into `state`. A damaged batch
/// fences the log (as a read of it would) and ends the replay there.
pub(crate) async fn replay_producers(
    inner: &LogInner,
    state: &mut ProducerStates,
    from: i64,
    to: i64,
) -> Result<()> {
    let bases: Vec<i64> = inner
        .state
        .borrow()
        .segments
        .iter()
        .filter(|s| s.next_offset > from && s.base_offset < to)
        .map(|s| s.base_offset)
        .collect();
    for base in bases {
        inner.ensure_indexes(base).await?;
        let (pos, limit) = {
            let st = inner.state.borrow();
            let Some(i) = st.segment_index(base) else {
                continue;
            };
            let seg = &st.segments[i];
            let pos = if from > seg.base_offset {
                seg.index.lookup(seg.rel(from)).1
            } else {
                0
            };
            (u64::from(pos), seg.written_bytes)
        };
        let file = inner.segment_file(base, false).await?;
        let mut past_end = false;
        let mut replayed_end = from;
        let scan = scan_batches(&file, pos, limit, |_, h| {
            if h.base_offset >= to {
                past_end = true;
                return false;
            }
            if h.base_offset >= from {
                if let Some(b) = ProducerBatch::from_header(h) {
                    state.record(&b, h.base_offset, h.last_offset(), h.log_append_time_ms);
                }
                replayed_end = h.last_offset() + 1;
            }
            true
        })
        .await?;
        if let Some((at, err, _)) = scan.invalid {
            let _fenced = inner.corrupt(
                file.path(),
                at,
                format!("while rebuilding producer state: {err}"),
                replayed_end,
            );
            return Ok(());
        }
        if past_end {
            break;
        }
    }
    Ok(())
}

/// The producer state as of `end` (after a truncation to it): the newest valid
/// snapshot at or below it, plus the batches after that.
pub(crate) async fn rebuild_producers(inner: &LogInner, end: i64) -> Result<ProducerStates> {
    let raw = glommio::executor()
        .spawn_blocking({
            let dir = inner.dir.clone();
            move || read_producer_snapshots(&dir, end)
        })
        .await
        .map_err(|e| EngineError::io("read producer snapshots", &inner.dir, e))?;
    let start = inner.state.borrow().log_start_offset;
    let (from, mut state) = decode_producer_snapshots(&inner.dir, raw)
        .pop()
        .unwrap_or((start, ProducerStates::default()));
    let from = from.max(start);
    if from < end {
        replay_producers(inner, &mut state, from, end).await?;
    }
    Ok(state)
}

/// Offsets of the producer snapshot files in `dir`, oldest first. Blocking.
fn producer_snapshot_offsets(dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(o) = parse_offset_name(&name.to_string_lossy(), PRODUCER_SNAPSHOT_SUFFIX) {
            out.push(o);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The snapshot files at or below `at_most`, oldest first. Blocking.
fn read_producer_snapshots(dir: &Path, at_most: i64) -> std::io::Result<Vec<(i64, Vec<u8>)>> {
    let mut out = Vec::new();
    for o in producer_snapshot_offsets(dir)? {
        if o > at_most {
            break;
        }
        match std::fs::read(segment_path(dir, o, PRODUCER_SNAPSHOT_SUFFIX)) {
            Ok(bytes) => out.push((o, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Deletes the snapshot files `keep` says no to, durably. Blocking.
fn remove_producer_snapshots(dir: &Path, keep: impl Fn(usize, i64) -> bool) -> std::io::Result<()> {
    let mut removed = false;
    for (i, o) in producer_snapshot_offsets(dir)?.into_iter().enumerate() {
        if keep(i, o) {
            continue;
        }
        match std::fs::remove_file(segment_path(dir, o, PRODUCER_SNAPSHOT_SUFFIX)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes the producer snapshot covering the batches below `offset` (atomically and
/// durably) and deletes all but the newest `PRODUCER_SNAPSHOTS_KEPT`.
pub(crate) async fn write_producer_snapshot(
    inner: &LogInner,
    offset: i64,
    bytes: Bytes,
) -> Result<()> {
    write_producer_snapshot_with(inner, offset, bytes, MetaSync::Each).await
}

/// [`write_producer_snapshot`], durably now or (`MetaSync::Deferred`, the first
/// snapshot of a log being opened) by the caller's later filesystem sync.
async fn write_producer_snapshot_with(
    inner: &LogInner,
    offset: i64,
    bytes: Bytes,
    sync: MetaSync,
) -> Result<()> {
    let dir = inner.dir.clone();
    glommio::executor()
        .spawn_blocking(move || {
            write_with(
                &segment_path(&dir, offset, PRODUCER_SNAPSHOT_SUFFIX),
                &bytes,
                sync,
            )?;
            let count = producer_snapshot_offsets(&dir)?.len();
            let old = count.saturating_sub(PRODUCER_SNAPSHOTS_KEPT);
            remove_producer_snapshots(&dir, |i, _| i >= old)
        })
        .await
        .map_err(|e| EngineError::io("write producer snapshot", &inner.dir, e))
}

/// Deletes the producer snapshots past `offset`, durably.
pub(crate) async fn remove_producer_snapshots_above(inner: &LogInner, offset: i64) -> Result<()> {
    let dir = inner.dir.clone();
    glommio::executor()
        .spawn_blocking(move || remove_producer_snapshots(&dir, |_, o| o <= offset))
        .await
        .map_err(|e| EngineError::io("delete producer snapshots", &inner.dir, e))
}

async fn read_last_timestamp(inner: &LogInner, base: i64, time_size: u64) -> Result<i64> {
    let path = segment_path(&inner.dir, base, TIME_INDEX_SUFFIX);
    let f = StorageFile::open_read(&path, &inner.env.faults).await?;
    let at = time_size - TIME_ENTRY_BYTES as u64;
    let raw = f.read_at(at, TIME_ENTRY_BYTES).await?;
    f.close().await?;
    let mut ts = [0u8; 8];
    ts.copy_from_slice(raw.get(..8).unwrap_or(&[0; 8]));
    Ok(i64::from_le_bytes(ts))
}

async fn read_whole(inner: &LogInner, path: &Path) -> Result<Vec<u8>> {
    let f = StorageFile::open_read(path, &inner.env.faults).await?;
    let size = f.size().await?;
    let data = if size == 0 {
        Vec::new()
    } else {
        f.read_at(0, size as usize).await?.to_vec()
    };
    f.close().await?;
    Ok(data)
}

/// Reads the header of the batch at `pos`, if one is there.
async fn header_at(file: &StorageFile, pos: u64) -> Result<Option<BatchHeader>> {
    let raw = file.read_at(pos, BATCH_HEADER_BYTES).await?;
    Ok(BatchHeader::decode(&raw).ok())
}

/// Takes the active segment as the clean marker describes it; false (nothing taken)
/// when its index points past the segment's end, so the marker cannot be trusted and
/// the segment is recovered instead.
async fn open_clean_active(
    inner: &Rc<LogInner>,
    base: i64,
    size: u64,
    next_offset: i64,
) -> Result<bool> {
    let index = OffsetIndex::decode(
        &read_whole(inner, &segment_path(&inner.dir, base, INDEX_SUFFIX)).await?,
    );
    let indexed_bytes = index.last().map_or(0, |(_, p)| u64::from(p));
    if indexed_bytes > size {
        return Ok(false);
    }
    let time_index = TimeIndex::decode(
        &read_whole(inner, &segment_path(&inner.dir, base, TIME_INDEX_SUFFIX)).await?,
    );
    let first_append_ms = if size > 0 {
        // A handle of its own, closed again: idle partitions hold no open files.
        let f = StorageFile::open_read(
            &segment_path(&inner.dir, base, LOG_SUFFIX),
            &inner.env.faults,
        )
        .await?;
        let ts = header_at(&f, 0).await?.map_or(-1, |h| h.log_append_time_ms);
        f.close().await?;
        ts
    } else {
        -1
    };
    let mut st = inner.state.borrow_mut();
    let seg = st.active_mut();
    seg.next_offset = next_offset;
    seg.size_bytes = size;
    seg.written_bytes = size;
    seg.max_timestamp_ms = time_index.max_timestamp_ms().unwrap_or(-1);
    seg.bytes_since_index = size - indexed_bytes;
    seg.first_append_ms = first_append_ms;
    seg.index = index;
    seg.time_index = time_index;
    Ok(true)
}

/// Validates the active segment after an unclean stop: keeps the index entries that
/// point at the batches they claim, scans from the last one, and cuts a torn tail.
///
/// The scan also replays batch headers into `replay`: it starts at the index entry at
/// or below `replay.from` when that is before the last good entry, so one pass serves
/// both.
async fn recover_active(
    inner: &Rc<LogInner>,
    base: i64,
    file_size: u64,
    replay: &mut ProducerReplay,
) -> Result<()> {
    let index_path = segment_path(&inner.dir, base, INDEX_SUFFIX);
    let time_path = segment_path(&inner.dir, base, TIME_INDEX_SUFFIX);
    let mut index = OffsetIndex::decode(&read_whole(inner, &index_path).await.unwrap_or_default());
    let mut time_index =
        TimeIndex::decode(&read_whole(inner, &time_path).await.unwrap_or_default());
    let file = inner.segment_file(base, true).await?;
    index.truncate_to_position(file_size);
    while let Some((rel, pos)) = index.last() {
        match header_at(&file, u64::from(pos)).await? {
            Some(h) if h.base_offset == base + i64::from(rel) => break,
            _ => index.pop(),
        }
    }
    let (good_rel, _) = index.last().unwrap_or((0, 0));
    let from_rel = u32::try_from((replay.from - base).max(0)).unwrap_or(u32::MAX);
    let (start_rel, start_pos) = index.lookup(good_rel.min(from_rel));
    // The scan re-adds the entries from its start on.
    index.truncate_to_position(u64::from(start_pos));
    time_index.truncate_to_offset(start_rel);
    let config = inner.state.borrow().config.clone();
    let interval = u64::from(config.index_interval_bytes);
    let mut seg = Segment::empty(base);
    seg.next_offset = base + i64::from(start_rel);
    seg.size_bytes = u64::from(start_pos);
    seg.max_timestamp_ms = time_index.max_timestamp_ms().unwrap_or(-1);
    seg.index = index;
    seg.time_index = time_index;
    seg.bytes_since_index = interval;
    let mut epochs = std::mem::take(&mut inner.state.borrow_mut().epochs);
    epochs.truncate_from(seg.next_offset);
    let scan = scan_batches(&file, u64::from(start_pos), file_size, |pos, h| {
        if h.base_offset != seg.next_offset {
            return false;
        }
        seg.note_batch(
            pos,
            h.base_offset,
            h.last_offset(),
            h.batch_len_bytes() as u64,
            config.batch_time_ms(h),
            interval,
        );
        epochs.observe(h.leader_epoch, h.base_offset);
        if h.base_offset >= replay.from {
            if let Some(b) = ProducerBatch::from_header(h) {
                replay
                    .state
                    .record(&b, h.base_offset, h.last_offset(), h.log_append_time_ms);
            }
        }
        true
    })
    .await?;
    let end = seg.size_bytes;
    debug_assert_eq!(end, scan.end_pos);
    let mut fence = None;
    if end < file_size {
        let corrupt = match &scan.invalid {
            Some((pos, err, Some(h))) => {
                let after = pos + h.batch_len_bytes() as u64;
                let next_ok = if after + BATCH_HEADER_BYTES as u64 <= file_size {
                    valid_batch_at(&file, after, h.last_offset() + 1).await?
                } else {
                    false
                };
                next_ok.then(|| format!("{err}"))
            }
            _ => None,
        };
        match corrupt {
            Some(detail) => {
                let err = EngineError::Corrupt {
                    path: file.path().to_path_buf(),
                    position_bytes: end,
                    detail: format!(
                        "{detail}; valid batches follow it, so this is not a torn tail"
                    ),
                };
                tracing::error!(error = %err, "partition fenced at open");
                fence = Some(Fence {
                    reason: err.to_string(),
                    readable_end_offset: seg.next_offset,
                    cause: None,
                });
            }
            None => {
                tracing::warn!(
                    path = %file.path().display(),
                    valid_bytes = end,
                    file_bytes = file_size,
                    "cutting torn tail"
                );
                file.truncate(end).await?;
                file.fdatasync().await?;
            }
        }
    } else if file_size > 0 {
        // What survived the crash is on the device; make sure it is not only in its cache.
        file.fdatasync().await?;
    }
    seg.written_bytes = end;
    if end > 0 {
        seg.first_append_ms = header_at(&file, 0)
            .await?
            .map_or(-1, |h| h.log_append_time_ms);
    }
    // Index files that match the recovered segment, so the next open needs no scan.
    if fence.is_none() {
        write_index_file(inner, &index_path, &seg.index.encode_from(0)).await?;
        write_index_file(inner, &time_path, &seg.time_index.encode_from(0)).await?;
    }
    seg.file = Some(file);
    seg.file_writable = true;
    let mut st = inner.state.borrow_mut();
    st.epochs = epochs;
    st.epochs_dirty = true;
    if fence.is_some() {
        st.fence = fence;
    }
    *st.active_mut() = seg;
    Ok(())
}

/// Whether a whole valid batch with `base_offset` starts at `pos`.
async fn valid_batch_at(file: &StorageFile, pos: u64, base_offset: i64) -> Result<bool> {
    let Some(h) = header_at(file, pos).await? else {
        return Ok(false);
    };
    if h.base_offset != base_offset {
        return Ok(false);
    }
    let raw = file.read_at(pos, h.batch_len_bytes()).await?;
    Ok(check_batch(&raw).is_ok())
}

/// Loads a closed segment's indexes, rebuilding them when they do not match the log.
pub(crate) async fn load_segment_indexes(inner: &LogInner, base: i64) -> Result<()> {
    let index_raw = read_whole(inner, &segment_path(&inner.dir, base, INDEX_SUFFIX)).await;
    let time_raw = read_whole(inner, &segment_path(&inner.dir, base, TIME_INDEX_SUFFIX)).await;
    let (Ok(index_raw), Ok(time_raw)) = (index_raw, time_raw) else {
        return rebuild_indexes(inner, base).await;
    };
    let index = OffsetIndex::decode(&index_raw);
    let time_index = TimeIndex::decode(&time_raw);
    let size = {
        let st = inner.state.borrow();
        let Some(i) = st.segment_index(base) else {
            return Ok(());
        };
        st.segments[i].size_bytes
    };
    let mut fresh = index.len() * INDEX_ENTRY_BYTES == index_raw.len()
        && time_index.len() * TIME_ENTRY_BYTES == time_raw.len()
        && (size == 0 || !index.is_empty());
    if let (true, Some((rel, pos))) = (fresh, index.last()) {
        let file = inner.segment_file(base, false).await?;
        fresh = u64::from(pos) < size
            && header_at(&file, u64::from(pos))
                .await?
                .is_some_and(|h| h.base_offset == base + i64::from(rel));
    }
    if !fresh {
        tracing::warn!(dir = %inner.dir.display(), base, "stale index; rebuilding");
        return rebuild_indexes(inner, base).await;
    }
    let mut st = inner.state.borrow_mut();
    if let Some(i) = st.segment_index(base) {
        let seg = &mut st.segments[i];
        seg.index = index;
        seg.time_index = time_index;
        seg.indexes_loaded = true;
    }
    Ok(())
}

/// Rebuilds a closed segment's indexes by scanning it; damage inside fences the log.
pub(crate) async fn rebuild_indexes(inner: &LogInner, base: i64) -> Result<()> {
    let (size, next_offset) = {
        let st = inner.state.borrow();
        let Some(i) = st.segment_index(base) else {
            return Ok(());
        };
        (st.segments[i].size_bytes, st.segments[i].next_offset)
    };
    let file = inner.segment_file(base, false).await?;
    let config = inner.state.borrow().config.clone();
    let interval = u64::from(config.index_interval_bytes);
    let mut seg = Segment::empty(base);
    let scan = scan_batches(&file, 0, size, |pos, h| {
        seg.note_batch(
            pos,
            h.base_offset,
            h.last_offset(),
            h.batch_len_bytes() as u64,
            config.batch_time_ms(h),
            interval,
        );
        true
    })
    .await?;
    if let Some((pos, err, _)) = scan.invalid {
        let readable = seg.next_offset;
        return Err(inner.corrupt(
            file.path(),
            pos,
            format!("in a closed segment: {err}"),
            readable,
        ));
    }
    if seg.next_offset > next_offset {
        let readable = next_offset;
        return Err(inner.corrupt(
            file.path(),
            0,
            format!(
                "segment holds offsets up to {} but the next segment starts at {next_offset}",
                seg.next_offset
            ),
            readable,
        ));
    }
    if seg.max_timestamp_ms >= 0 && seg.next_offset > base {
        let last_rel = seg.rel(seg.next_offset - 1);
        let max = seg.max_timestamp_ms;
        seg.time_index.maybe_push(max, last_rel);
    }
    write_index_file(
        inner,
        &segment_path(&inner.dir, base, INDEX_SUFFIX),
        &seg.index.encode_from(0),
    )
    .await?;
    write_index_file(
        inner,
        &segment_path(&inner.dir, base, TIME_INDEX_SUFFIX),
        &seg.time_index.encode_from(0),
    )
    .await?;
    let mut st = inner.state.borrow_mut();
    if let Some(i) = st.segment_index(base) {
        let s = &mut st.segments[i];
        s.index = seg.index;
        s.time_index = seg.time_index;
        s.max_timestamp_ms = seg.max_timestamp_ms;
        s.indexes_loaded = true;
    }
    Ok(())
}

/// Writes an index file with exactly `bytes`, durably.
pub(crate) async fn write_index_file(inner: &LogInner, path: &Path, bytes: &[u8]) -> Result<()> {
    let f = Rc::new(StorageFile::open_rw(path, &inner.env.faults).await?);
    f.truncate(0).await?;
    let mut app = AlignedAppender::resume(Rc::clone(&f), 0).await?;
    app.append(&[bytes]).await?;
    f.truncate(bytes.len() as u64).await?;
    f.fdatasync().await?;
    drop(app);
    if let Ok(f) = Rc::try_unwrap(f) {
        f.close().await?;
    }
    Ok(())
}
