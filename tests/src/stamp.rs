//! Self-describing record values for crash tests.
//!
//! Every record value says who wrote it and where it belongs — writer generation,
//! sequence number of its batch, its index in the batch and the batch's record
//! count — followed by seeded filler and a CRC32C of all of it. A verifier can then
//! tell a record that is intact and in its place from one that is torn, stale or
//! misplaced, without knowing what the writer did.

use strata_schema::NativeBatchBuilder;

use crate::rng::SplitMix64;

/// First bytes of every stamped value ("SCRW").
pub const STAMP_MAGIC: u32 = u32::from_le_bytes(*b"SCRW");
/// Bytes of a stamped value before the filler: magic, generation, seq, index, count.
const STAMP_FIXED_BYTES: usize = 4 + 8 + 8 + 4 + 4;
/// Bytes of the trailing CRC32C.
const STAMP_CRC_BYTES: usize = 4;
/// Records in a batch built by [`build_batch`], at most.
pub const RECORDS_PER_BATCH_MAX: u64 = 20;
/// Filler bytes of a usual record, at most.
pub const FILLER_BYTES_MAX: u64 = 1024;
/// Filler bytes of an occasional large record, at most.
pub const LARGE_FILLER_BYTES_MAX: u64 = 16 * 1024;
/// Name of the record header that repeats the writer generation.
pub const GENERATION_HEADER: &str = "generation";

/// What a record value says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordStamp {
    /// Which writer (process or verifier) appended the batch.
    pub generation: u64,
    /// The batch's sequence number within its generation.
    pub seq: u64,
    /// The record's index in its batch.
    pub record_index: u32,
    /// Records in the batch.
    pub record_count: u32,
}

/// Why a value is not a sound stamp.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum StampError {
    #[error("value of {len_bytes} bytes is too short for a stamp")]
    TooShort { len_bytes: usize },
    #[error("value does not start with the stamp magic (found {found:#010x})")]
    BadMagic { found: u32 },
    #[error("value checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("record has no value")]
    NoValue,
    #[error("key {found:?} does not match the stamp {expected:?}")]
    KeyMismatch {
        expected: Vec<u8>,
        found: Option<Vec<u8>>,
    },
    #[error("generation header is missing or does not match the stamp")]
    HeaderMismatch,
}

impl RecordStamp {
    /// The value: the stamp, then `filler`, then a CRC32C of both.
    pub fn encode(&self, filler: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(STAMP_FIXED_BYTES + filler.len() + STAMP_CRC_BYTES);
        v.extend_from_slice(&STAMP_MAGIC.to_le_bytes());
        v.extend_from_slice(&self.generation.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&self.record_index.to_le_bytes());
        v.extend_from_slice(&self.record_count.to_le_bytes());
        v.extend_from_slice(filler);
        let crc = crc32c::crc32c(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    }

    /// Reads a value written by [`encode`](Self::encode), checking its checksum.
    pub fn decode(value: &[u8]) -> Result<RecordStamp, StampError> {
        let len_bytes = value.len();
        if len_bytes < STAMP_FIXED_BYTES + STAMP_CRC_BYTES {
            return Err(StampError::TooShort { len_bytes });
        }
        let (body, crc) = value.split_at(len_bytes - STAMP_CRC_BYTES);
        let u32_at =
            |at: usize| u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(StampError::ChecksumMismatch { stored, computed });
        }
        let magic = u32_at(0);
        if magic != STAMP_MAGIC {
            return Err(StampError::BadMagic { found: magic });
        }
        Ok(RecordStamp {
            generation: u64_at(4),
            seq: u64_at(12),
            record_index: u32_at(20),
            record_count: u32_at(24),
        })
    }
}

/// The key of every record of batch `seq` of `generation`.
pub fn stamp_key(generation: u64, seq: u64) -> Vec<u8> {
    format!("g{generation}-s{seq}").into_bytes()
}

/// A native batch of 1..=[`RECORDS_PER_BATCH_MAX`] stamped records of random sizes,
/// all drawn from `rng`.
pub fn build_batch(rng: &mut SplitMix64, generation: u64, seq: u64, timestamp_ms: i64) -> Vec<u8> {
    let record_count = rng.range(1, RECORDS_PER_BATCH_MAX + 1) as u32;
    let key = stamp_key(generation, seq);
    let generation_bytes = generation.to_le_bytes();
    let headers = [(GENERATION_HEADER, Some(&generation_bytes[..]))];
    let mut builder = NativeBatchBuilder::new();
    let mut filler = Vec::new();
    for record_index in 0..record_count {
        let filler_max = if rng.one_in(16) {
            LARGE_FILLER_BYTES_MAX
        } else {
            FILLER_BYTES_MAX
        };
        filler.resize(rng.range(0, filler_max + 1) as usize, 0);
        rng.fill(&mut filler);
        let stamp = RecordStamp {
            generation,
            seq,
            record_index,
            record_count,
        };
        builder.push(
            timestamp_ms,
            Some(&key),
            Some(&stamp.encode(&filler)),
            &headers,
        );
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_detect_damage() {
        let stamp = RecordStamp {
            generation: 3,
            seq: 99,
            record_index: 4,
            record_count: 7,
        };
        let mut v = stamp.encode(b"filler bytes");
        assert_eq!(RecordStamp::decode(&v), Ok(stamp));
        v[30] ^= 1;
        assert!(matches!(
            RecordStamp::decode(&v),
            Err(StampError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            RecordStamp::decode(&v[..10]),
            Err(StampError::TooShort { .. })
        ));
    }

    #[test]
    fn built_batches_validate() {
        let mut rng = SplitMix64::new(5);
        for seq in 0..50 {
            let b = build_batch(&mut rng, 1, seq, 1_000);
            let view = strata_schema::validate_produced_batch(&b).unwrap();
            for (i, r) in view.records().unwrap().enumerate() {
                let s = RecordStamp::decode(r.value().unwrap()).unwrap();
                assert_eq!((s.generation, s.seq, s.record_index as usize), (1, seq, i));
            }
        }
    }
}
