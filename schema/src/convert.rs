//! Stored batches as Kafka consumers must see them: Kafka RecordBatch v2.
//!
//! - **Kafka-format batches** are served verbatim: [`kafka_payload`], the bytes after
//!   our 80-byte header. The broker's stamping keeps them valid Kafka batches:
//!   [`stamp_base_offset`](crate::stamp_base_offset) and
//!   [`stamp_leader_epoch`](crate::stamp_leader_epoch) write the Kafka baseOffset and
//!   partitionLeaderEpoch as well as ours, and the Kafka CRC does not cover either.
//! - **LogAppendTime topics** are the one exception. A Kafka consumer there expects
//!   attributes bit 3 set and maxTimestamp = the append time, and the Kafka CRC covers
//!   both; [`stamp_log_append_time`](crate::stamp_log_append_time) writes only our
//!   header's field. We keep the stored bytes as the producer sent them (stamping
//!   stays a write at fixed positions outside every CRC, and our header keeps the
//!   create times the engine indexes) and patch at serve time instead:
//!   [`log_append_time_kafka_header`] gives the 61 bytes to send in place of the Kafka
//!   header, its CRC updated arithmetically (`crc32c_combine`), so the records are
//!   neither read nor copied.
//! - **Native batches** are re-encoded: [`native_to_kafka`] /
//!   [`native_to_kafka_into`] write an uncompressed Kafka batch.

use core::ops::Range;

use crate::attributes::{Attributes, TimestampType};
use crate::batch::validate_batch;
use crate::error::BatchError;
use crate::header::{BatchHeader, PayloadFormat, BATCH_HEADER_BYTES};
use crate::kafka::{at, put_record, seal_kafka_batch, KafkaBatchHeader, KAFKA_HEADER_BYTES};

/// The Kafka batch inside a stored Kafka-format batch: the bytes after our header,
/// verbatim. After the broker's stamping its baseOffset and partitionLeaderEpoch are
/// the stamped ones and its CRC still holds; for a LogAppendTime topic send
/// [`log_append_time_kafka_header`] in place of its first 61 bytes. Checks our header
/// and the length, not the CRCs.
pub fn kafka_payload(batch: &[u8]) -> Result<&[u8], BatchError> {
    let header = BatchHeader::decode(batch)?;
    if header.payload_format != PayloadFormat::Kafka {
        return Err(BatchError::WrongPayloadFormat {
            expected: PayloadFormat::Kafka,
            found: header.payload_format,
        });
    }
    batch
        .get(BATCH_HEADER_BYTES..header.batch_len_bytes())
        .ok_or(BatchError::TooShort {
            need_bytes: header.batch_len_bytes(),
            have_bytes: batch.len(),
        })
}

/// The Kafka header to serve, for a LogAppendTime topic, in place of the first 61 bytes
/// of `kafka_batch`: attributes bit 3 (LogAppendTime) set, maxTimestamp =
/// `log_append_time_ms` (the stamped `BatchHeader::log_append_time_ms`), and the Kafka
/// CRC updated to match. Reads only the first 61 bytes (the records' length comes from
/// batchLength), so the CRC is right exactly when the one it replaces was.
pub fn log_append_time_kafka_header(
    kafka_batch: &[u8],
    log_append_time_ms: i64,
) -> Result<[u8; KAFKA_HEADER_BYTES], BatchError> {
    let kh = KafkaBatchHeader::parse(kafka_batch)?;
    let records_len_bytes = usize::try_from(kh.declared_len_bytes() - KAFKA_HEADER_BYTES as i64)
        .map_err(|_| BatchError::KafkaLengthMismatch {
            declared_bytes: i64::from(kh.batch_length_bytes),
            actual_bytes: kafka_batch.len() - at::LENGTH_FROM,
        })?;
    let mut old = [0u8; KAFKA_HEADER_BYTES];
    old.copy_from_slice(&kafka_batch[..KAFKA_HEADER_BYTES]);
    let mut new = old;
    let attributes = kh.attributes | Attributes::LOG_APPEND_TIME as i16;
    new[at::ATTRIBUTES].copy_from_slice(&attributes.to_be_bytes());
    new[at::MAX_TIMESTAMP].copy_from_slice(&log_append_time_ms.to_be_bytes());
    // CRC(a ‖ r) = shift_|r|(CRC(a)) ^ CRC(r), and the shift is linear: replacing a by
    // b changes the CRC by shift_|r|(CRC(a) ^ CRC(b)), which crc32c_combine computes
    // (with a zero second CRC) in O(log |r|).
    let header_delta = crc32c::crc32c(&old[at::CRC_FROM..]) ^ crc32c::crc32c(&new[at::CRC_FROM..]);
    let crc = kh.crc ^ crc32c::crc32c_combine(header_delta, 0, records_len_bytes);
    new[at::CRC].copy_from_slice(&crc.to_be_bytes());
    Ok(new)
}

/// [`log_append_time_kafka_header`], written over the first 61 bytes of `kafka_batch`.
/// For a copy being served: inside a stored batch it would break our CRC.
pub fn stamp_kafka_log_append_time(
    kafka_batch: &mut [u8],
    log_append_time_ms: i64,
) -> Result<(), BatchError> {
    let header = log_append_time_kafka_header(kafka_batch, log_append_time_ms)?;
    kafka_batch[..KAFKA_HEADER_BYTES].copy_from_slice(&header);
    Ok(())
}

/// A whole stored native batch (stamped, exactly one batch) as an uncompressed Kafka
/// batch. See [`native_to_kafka_into`].
pub fn native_to_kafka(batch: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    native_to_kafka_into(batch, TimestampType::CreateTime, &mut out)?;
    Ok(out)
}

/// Append to `out` the uncompressed Kafka batch for a whole stored native batch,
/// returning where it sits in `out` (reuse one `out` across batches to save an
/// allocation per batch; on error `out` is left as it was).
///
/// The batch is validated first (CRC and records). Kafka fields come from ours:
/// baseOffset = `base_offset`, partitionLeaderEpoch = `leader_epoch`,
/// lastOffsetDelta = `last_offset_delta` (records keep their offset deltas, so the
/// gaps compaction leaves stay gaps), producer id/epoch and base sequence, and
/// attributes (transactional, control). Timestamps: CreateTime keeps each record's and
/// maxTimestamp = `max_timestamp_ms`; if `topic_timestamp_type` or the batch's own
/// attributes say LogAppendTime, attributes bit 3 is set and maxTimestamp =
/// the stamped `log_append_time_ms` (-1, Kafka's "no timestamp", if never stamped).
pub fn native_to_kafka_into(
    batch: &[u8],
    topic_timestamp_type: TimestampType,
    out: &mut Vec<u8>,
) -> Result<Range<usize>, BatchError> {
    let view = validate_batch(batch)?;
    let header = *view.header();
    let records = view.records()?;
    let last_offset_delta = i32::try_from(header.last_offset_delta).map_err(|_| {
        BatchError::malformed(format!(
            "last_offset_delta {} does not fit a kafka batch (at most {})",
            header.last_offset_delta,
            i32::MAX
        ))
    })?;
    let record_count = i32::try_from(header.record_count).map_err(|_| {
        BatchError::malformed(format!(
            "record_count {} does not fit a kafka batch (at most {})",
            header.record_count,
            i32::MAX
        ))
    })?;
    let log_append_time = topic_timestamp_type == TimestampType::LogAppendTime
        || header.attributes.timestamp_type() == TimestampType::LogAppendTime;
    let (timestamp_type, max_timestamp_ms) = if log_append_time {
        (TimestampType::LogAppendTime, header.log_append_time_ms)
    } else {
        (TimestampType::CreateTime, header.max_timestamp_ms)
    };
    let kh = KafkaBatchHeader {
        base_offset: header.base_offset,
        batch_length_bytes: 0,
        partition_leader_epoch: header.leader_epoch,
        magic: crate::kafka::KAFKA_MAGIC,
        crc: 0,
        attributes: header.attributes.with_timestamp_type(timestamp_type).0 as i16,
        last_offset_delta,
        base_timestamp_ms: header.first_timestamp_ms,
        max_timestamp_ms,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        record_count,
    };

    let from = out.len();
    // Kafka's varint records are about as long as the rkyv archive.
    out.reserve(batch.len());
    out.resize(from + KAFKA_HEADER_BYTES, 0);
    for record in records {
        put_record(
            out,
            // Exact inverse of timestamp_ms(): first + delta, wrapping.
            record
                .timestamp_ms()
                .wrapping_sub(header.first_timestamp_ms),
            i64::from(record.offset_delta()),
            record.key(),
            record.value(),
            || record.headers(),
        );
    }
    if let Err(e) = seal_kafka_batch(kh, out, from) {
        out.truncate(from);
        return Err(e);
    }
    Ok(from..out.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::check_kafka_batch;
    use crate::KafkaBatchBuilder;

    #[test]
    fn log_append_time_header_crc_matches_a_full_recompute() {
        for count in [1usize, 3, 200] {
            let mut b = KafkaBatchBuilder::new();
            for i in 0..count {
                b.push(10 + i as i64, None, Some(&[i as u8; 40]), &[]);
            }
            let mut kafka = b.build();
            let patched = log_append_time_kafka_header(&kafka, 1_700_000_000_000).expect("patch");
            kafka[..KAFKA_HEADER_BYTES].copy_from_slice(&patched);
            let full = crc32c::crc32c(&kafka[at::CRC_FROM..]);
            let kh = check_kafka_batch(&kafka).expect("CRC holds after the patch");
            assert_eq!(kh.crc, full);
            assert_eq!(kh.max_timestamp_ms, 1_700_000_000_000);
            assert_ne!(kh.attributes & Attributes::LOG_APPEND_TIME as i16, 0);
            assert_eq!(kh.base_timestamp_ms, 10, "create times stay");
        }
    }

    #[test]
    fn kafka_payload_refuses_native_and_short_batches() {
        let mut b = crate::NativeBatchBuilder::new();
        b.push(1, None, Some(b"v"), &[]);
        let native = b.build();
        assert_eq!(
            kafka_payload(&native),
            Err(BatchError::WrongPayloadFormat {
                expected: PayloadFormat::Kafka,
                found: PayloadFormat::Native
            })
        );
        let mut k = KafkaBatchBuilder::new();
        k.push(1, None, Some(b"v"), &[]);
        let wrapped = crate::wrap_kafka_batch(&k.build()).expect("wraps");
        assert!(matches!(
            kafka_payload(&wrapped[..wrapped.len() - 1]),
            Err(BatchError::TooShort { .. })
        ));
        assert!(matches!(
            log_append_time_kafka_header(&wrapped[BATCH_HEADER_BYTES..][..60], 0),
            Err(BatchError::TooShort { .. })
        ));
    }
}
