//! Reading a whole log back and checking every batch in it: each one validates, sits
//! exactly where the previous one ended, and holds intact stamped records
//! ([`crate::stamp`]) that agree with each other.

use strata_engine::Log;
use strata_schema::{validate_batch, BatchError};

use crate::stamp::{stamp_key, RecordStamp, StampError, GENERATION_HEADER};

/// Bytes asked for per read while walking a log.
pub const READ_BYTES_MAX: usize = 1024 * 1024;

/// One stored batch, as the walk found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub generation: u64,
    pub seq: u64,
    pub len_bytes: usize,
}

/// What is wrong with a log's contents.
#[derive(thiserror::Error, Debug)]
pub enum CheckError {
    #[error("reading at offset {offset} failed: {error}")]
    Read {
        offset: i64,
        error: strata_engine::EngineError,
    },
    #[error("read at offset {offset} returned no batch, but the log ends at {end}")]
    Missing { offset: i64, end: i64 },
    #[error("expected a batch starting at offset {expected}, found one starting at {found} (gap or overlap)")]
    Misplaced { expected: i64, found: i64 },
    #[error("batch at offset {offset} ends at {last_offset}, past the log end {end}")]
    PastEnd {
        offset: i64,
        last_offset: i64,
        end: i64,
    },
    #[error("batch at offset {offset} does not validate: {error}")]
    Invalid { offset: i64, error: BatchError },
    #[error("batch at offset {offset}: {record_count} records for {span} offsets (writers send dense batches)")]
    NotDense {
        offset: i64,
        record_count: u32,
        span: i64,
    },
    #[error("batch at offset {offset}, record {index}: {error}")]
    Stamp {
        offset: i64,
        index: usize,
        error: StampError,
    },
    #[error("batch at offset {offset}, record {index}: {detail}")]
    Inconsistent {
        offset: i64,
        index: usize,
        detail: String,
    },
}

/// Checks one stored batch that should start at `expected_base`.
pub fn check_stored_batch(bytes: &[u8], expected_base: i64) -> Result<StoredBatch, CheckError> {
    let view = validate_batch(bytes).map_err(|error| CheckError::Invalid {
        offset: expected_base,
        error,
    })?;
    let h = *view.header();
    let offset = h.base_offset;
    if offset != expected_base {
        return Err(CheckError::Misplaced {
            expected: expected_base,
            found: offset,
        });
    }
    let span = h.last_offset() - offset + 1;
    if i64::from(h.record_count) != span {
        return Err(CheckError::NotDense {
            offset,
            record_count: h.record_count,
            span,
        });
    }
    let records = view
        .records()
        .map_err(|error| CheckError::Invalid { offset, error })?;
    let mut first: Option<RecordStamp> = None;
    for (index, r) in records.enumerate() {
        let inconsistent = |detail: String| CheckError::Inconsistent {
            offset,
            index,
            detail,
        };
        let stamp_err = |error| CheckError::Stamp {
            offset,
            index,
            error,
        };
        if r.offset() != offset + index as i64 {
            return Err(inconsistent(format!("record offset {}", r.offset())));
        }
        let stamp = RecordStamp::decode(r.value().ok_or_else(|| stamp_err(StampError::NoValue))?)
            .map_err(stamp_err)?;
        let expected_key = stamp_key(stamp.generation, stamp.seq);
        if r.key() != Some(&expected_key[..]) {
            return Err(stamp_err(StampError::KeyMismatch {
                expected: expected_key,
                found: r.key().map(<[u8]>::to_vec),
            }));
        }
        let generation_bytes = stamp.generation.to_le_bytes();
        if !r
            .headers()
            .any(|(k, v)| k == GENERATION_HEADER && v == Some(&generation_bytes[..]))
        {
            return Err(stamp_err(StampError::HeaderMismatch));
        }
        if stamp.record_index as usize != index || stamp.record_count != h.record_count {
            return Err(inconsistent(format!(
                "stamp says record {} of {}, batch holds {} records",
                stamp.record_index, stamp.record_count, h.record_count
            )));
        }
        match first {
            None => first = Some(stamp),
            Some(f) if (f.generation, f.seq) != (stamp.generation, stamp.seq) => {
                return Err(inconsistent(format!(
                    "stamp of generation {} seq {} in a batch of generation {} seq {}",
                    stamp.generation, stamp.seq, f.generation, f.seq
                )));
            }
            Some(_) => {}
        }
    }
    let first = first.ok_or(CheckError::NotDense {
        offset,
        record_count: 0,
        span,
    })?;
    Ok(StoredBatch {
        base_offset: offset,
        last_offset: h.last_offset(),
        generation: first.generation,
        seq: first.seq,
        len_bytes: bytes.len(),
    })
}

/// Reads the log from its start to its end and checks every batch; offsets must be
/// contiguous, with no gap, overlap or partial batch.
pub async fn read_whole_log(log: &Log) -> Result<Vec<StoredBatch>, CheckError> {
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    let mut out = Vec::new();
    while next < end {
        let r = log
            .read(next, READ_BYTES_MAX, Some(end))
            .await
            .map_err(|error| CheckError::Read {
                offset: next,
                error,
            })?;
        if r.batches.is_empty() {
            return Err(CheckError::Missing { offset: next, end });
        }
        for bytes in &r.batches {
            let b = check_stored_batch(bytes, next)?;
            if b.last_offset >= end {
                return Err(CheckError::PastEnd {
                    offset: b.base_offset,
                    last_offset: b.last_offset,
                    end,
                });
            }
            next = b.last_offset + 1;
            out.push(b);
        }
    }
    Ok(out)
}
