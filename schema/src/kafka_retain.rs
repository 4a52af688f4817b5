//! Log compaction of a Kafka-format batch: rebuild it keeping only some records.
//!
//! What the rebuilt batch keeps follows Kafka's `LogCleaner` (`MemoryRecords.filterTo`
//! for magic 2): the base offset and `lastOffsetDelta` (so the batch still spans the
//! offsets it did, and an idempotent producer's sequence range stays readable from
//! it), the producer id, epoch and base sequence, the attributes (codec, timestamp
//! type, transactional bit), the partition leader epoch, and every kept record's
//! offset delta, timestamp delta, key, value and headers. The records are compressed
//! again with the batch's own codec and the Kafka CRC is recomputed.
//!
//! Two choices differ from Kafka and keep the batch and our header telling the same
//! story as before compaction: the base timestamp and `maxTimestamp` stay as they
//! were (Kafka recomputes `maxTimestamp` from the kept records; keeping it leaves the
//! time index and `delete.retention.ms` decisions of the segment unchanged), and the
//! broker-stamped fields of our header (leader epoch, log-append time) are carried
//! over untouched.

use crate::attributes::Compression;
use crate::batch::BatchView;
use crate::crc::seal_batch;
use crate::error::BatchError;
use crate::header::{PayloadFormat, BATCH_HEADER_BYTES};
use crate::kafka::KAFKA_HEADER_BYTES;
use crate::kafka::{decode_kafka_records, put_record, seal_kafka_batch, KafkaRecordView};
use crate::kafka_compression;

/// Rebuild a Kafka-format batch keeping only the records `keep` accepts; `keep` gets
/// each record and its absolute offset. The batch comes back byte for byte when every
/// record is kept, and `None` when none is. Kept records keep their offsets, so the
/// result may have offset gaps (as Kafka's compacted batches do).
pub fn retain_kafka_records(
    batch: &BatchView<'_>,
    mut keep: impl FnMut(&KafkaRecordView<'_>, i64) -> bool,
) -> Result<Option<Vec<u8>>, BatchError> {
    let header = *batch.header();
    if header.payload_format != PayloadFormat::Kafka {
        return Err(BatchError::WrongPayloadFormat {
            expected: PayloadFormat::Kafka,
            found: header.payload_format,
        });
    }
    if header.attributes.is_control() {
        // Control records (a leader change, a transaction marker) are the broker's:
        // their keys are control keys, not the topic's key space, and they all stay.
        return Ok(Some(batch.bytes().to_vec()));
    }
    let decoded = decode_kafka_records(batch.payload())?;
    let mut kafka_header = *decoded.header();
    let mut records = Vec::with_capacity(decoded.records_bytes().len());
    let (mut seen, mut kept) = (0u32, 0u32);
    let mut iter = decoded.iter();
    while let Some(record) = iter.next_view() {
        let record = record?;
        seen += 1;
        if !keep(&record, header.base_offset + i64::from(record.offset_delta)) {
            continue;
        }
        kept += 1;
        put_record(
            &mut records,
            record.timestamp_delta_ms,
            i64::from(record.offset_delta),
            record.key,
            record.value,
            || record.headers().map(|h| (h.key, h.value)),
        );
    }
    if kept == 0 {
        return Ok(None);
    }
    if kept == seen {
        return Ok(Some(batch.bytes().to_vec()));
    }
    let records = match header.attributes.compression() {
        Compression::None => records,
        codec => kafka_compression::compress(codec, &records)?,
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + KAFKA_HEADER_BYTES + records.len());
    out.resize(BATCH_HEADER_BYTES + KAFKA_HEADER_BYTES, 0);
    out.extend_from_slice(&records);
    kafka_header.record_count = kept as i32;
    seal_kafka_batch(kafka_header, &mut out, BATCH_HEADER_BYTES)?;
    let mut header = header;
    header.record_count = kept;
    seal_batch(header, &mut out)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate_batch, wrap_kafka_batch, KafkaBatchBuilder};

    #[test]
    fn control_batches_are_kept_whole() {
        let stored = crate::leader_change_batch(4, 2, 77).into_bytes();
        let view = validate_batch(&stored).unwrap();
        let kept = retain_kafka_records(&view, |_, _| false).unwrap();
        assert_eq!(kept.as_deref(), Some(&stored[..]));
    }

    #[test]
    fn leader_change_passes_the_compacted_topic_key_rule() {
        let stored = crate::leader_change_batch(4, 2, 77);
        let keys = crate::ProduceRules {
            keys_required: true,
        };
        let kafka = crate::kafka_payload(stored.bytes()).unwrap();
        assert!(crate::wrap_kafka_batch_produced(kafka, keys).is_ok());
        assert!(crate::validate_produced_batch_with(stored.bytes(), keys).is_ok());
    }

    fn batch(codec: Compression) -> Vec<u8> {
        let mut b = KafkaBatchBuilder::new()
            .with_producer(7, 2, 40)
            .with_compression(codec);
        for i in 0..10i64 {
            let key = format!("k{}", i % 3);
            let value = (i % 4 != 3).then(|| format!("v{i}"));
            b.push(
                1_000 + i,
                Some(key.as_bytes()),
                value.as_deref().map(str::as_bytes),
                &[("h", Some(b"x"))],
            );
        }
        let mut out = wrap_kafka_batch(&b.build()).unwrap();
        crate::stamp_base_offset(&mut out, 100);
        crate::stamp_leader_epoch(&mut out, 4);
        crate::stamp_log_append_time(&mut out, 5_000);
        out
    }

    #[test]
    fn kept_records_keep_offsets_metadata_and_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let original = batch(codec);
            let view = validate_batch(&original).unwrap();
            let kept = retain_kafka_records(&view, |_, offset| offset % 2 == 1)
                .unwrap()
                .unwrap();
            let out = validate_batch(&kept).expect("rebuilt batch validates (both CRCs)");
            let (h, oh) = (out.header(), view.header());
            assert_eq!(h.record_count, 5);
            assert_eq!(h.base_offset, 100);
            assert_eq!(h.last_offset_delta, oh.last_offset_delta);
            assert_eq!(h.leader_epoch, 4);
            assert_eq!(h.log_append_time_ms, 5_000);
            assert_eq!(h.attributes, oh.attributes, "{codec:?}");
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (7, 2, 40)
            );
            assert_eq!(h.first_timestamp_ms, oh.first_timestamp_ms);
            assert_eq!(h.max_timestamp_ms, oh.max_timestamp_ms);
            let decoded = decode_kafka_records(out.payload()).unwrap();
            assert_eq!(decoded.header().base_offset, 100);
            assert_eq!(decoded.header().record_count, 5);
            let records: Vec<_> = decoded.iter().map(Result::unwrap).collect();
            let deltas: Vec<i32> = records.iter().map(|r| r.offset_delta).collect();
            assert_eq!(deltas, [1, 3, 5, 7, 9]);
            assert_eq!(records[1].value, None, "a tombstone stays a tombstone");
            assert_eq!(records[0].value, Some(&b"v1"[..]));
            assert_eq!(records[0].timestamp_delta_ms, 1);
            assert_eq!(records[0].headers[0].key, "h");
        }
    }

    #[test]
    fn all_kept_is_verbatim_and_none_kept_is_none() {
        let original = batch(Compression::Lz4);
        let view = validate_batch(&original).unwrap();
        assert_eq!(
            retain_kafka_records(&view, |_, _| true).unwrap(),
            Some(original.clone())
        );
        assert_eq!(retain_kafka_records(&view, |_, _| false).unwrap(), None);
    }
}
