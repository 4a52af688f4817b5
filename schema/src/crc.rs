//! The batch checksum: what it covers, and sealing a freshly built batch with it.
//!
//! CRC32C (Castagnoli, hardware accelerated) over header bytes 28..80, then the
//! payload. For Kafka payloads the bytes the broker stamps inside the Kafka header,
//! baseOffset (payload 0..8) and partitionLeaderEpoch (payload 12..16), are skipped,
//! so stamping never invalidates the CRC.

use crate::error::BatchError;
use crate::header::{layout, BatchHeader, PayloadFormat, BATCH_HEADER_BYTES};

/// Kafka payload bytes covered by our CRC: batchLength, then magic onward.
const KAFKA_COVERED_LEN: core::ops::Range<usize> = 8..12;
const KAFKA_COVERED_FROM: usize = 16;

/// The CRC a batch should carry; `bytes` is the whole batch, header included (extra
/// bytes after the batch are ignored).
pub fn compute_batch_crc(bytes: &[u8]) -> Result<u32, BatchError> {
    let header = BatchHeader::decode(bytes)?;
    let batch = bytes
        .get(..header.batch_len_bytes())
        .ok_or(BatchError::TooShort {
            need_bytes: header.batch_len_bytes(),
            have_bytes: bytes.len(),
        })?;
    Ok(crc_of(header.payload_format, batch))
}

/// CRC of exactly one batch (`batch` = header + payload). Never panics: a batch too
/// short to hold what the format says simply contributes fewer bytes.
pub(crate) fn crc_of(format: PayloadFormat, batch: &[u8]) -> u32 {
    let header = batch.get(layout::CRC_COVERED).unwrap_or(&[]);
    let payload = batch.get(BATCH_HEADER_BYTES..).unwrap_or(&[]);
    let crc = crc32c::crc32c(header);
    match format {
        PayloadFormat::Native => crc32c::crc32c_append(crc, payload),
        PayloadFormat::Kafka => {
            let crc = crc32c::crc32c_append(crc, payload.get(KAFKA_COVERED_LEN).unwrap_or(&[]));
            crc32c::crc32c_append(crc, payload.get(KAFKA_COVERED_FROM..).unwrap_or(&[]))
        }
    }
}

/// Finish a built batch: write `header` (with `payload_len_bytes` taken from the
/// buffer) into `batch[..80]` and set its CRC. `batch` holds 80 placeholder bytes and
/// then the payload.
pub(crate) fn seal_batch(
    mut header: BatchHeader,
    batch: &mut [u8],
) -> Result<BatchHeader, BatchError> {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    let payload_len = batch.len().saturating_sub(BATCH_HEADER_BYTES);
    if batch.len() > crate::BATCH_BYTES_MAX {
        return Err(BatchError::TooLarge {
            len_bytes: batch.len(),
            max_bytes: crate::BATCH_BYTES_MAX,
        });
    }
    header.payload_len_bytes = payload_len as u32;
    header.encode(batch);
    header.crc32c = crc_of(header.payload_format, batch);
    batch[layout::CRC].copy_from_slice(&header.crc32c.to_le_bytes());
    debug_assert_eq!(BatchHeader::decode(batch), Ok(header));
    Ok(header)
}
