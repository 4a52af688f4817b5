//! Whole batches: checking, full validation, iterating a buffer, and stamping.

use crate::crc::crc_of;
use crate::error::BatchError;
use crate::header::{layout, BatchHeader, PayloadFormat, BATCH_HEADER_BYTES};
use crate::{kafka, native};

/// One batch inside a buffer: its decoded header and its bytes.
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    pub(crate) header: BatchHeader,
    pub(crate) bytes: &'a [u8],
    /// Set only by [`validate_batch`]: the payload structure has been checked, so
    /// reading records needs no second bytecheck pass.
    pub(crate) payload_validated: bool,
}

impl<'a> BatchView<'a> {
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(BATCH_HEADER_BYTES..).unwrap_or(&[])
    }
}

impl core::fmt::Debug for BatchView<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BatchView")
            .field("header", &self.header)
            .field("len_bytes", &self.bytes.len())
            .finish()
    }
}

/// Cheap check for recovery and reads: header decode, enough bytes for the first
/// batch (later bytes are ignored), and the CRC. The payload structure is not checked.
pub fn check_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::decode(bytes)?;
    let batch = bytes
        .get(..header.batch_len_bytes())
        .ok_or(BatchError::TooShort {
            need_bytes: header.batch_len_bytes(),
            have_bytes: bytes.len(),
        })?;
    check_crc(&header, batch)?;
    Ok(header)
}

fn check_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    let computed = crc_of(header.payload_format, batch);
    if computed != header.crc32c {
        return Err(BatchError::CrcMismatch {
            stored: header.crc32c,
            computed,
        });
    }
    Ok(())
}

/// Full validation of exactly one batch (`bytes.len()` must equal its length): header,
/// CRC, and payload structure. Native: the rkyv archive passes bytecheck, the record
/// count matches, offset deltas strictly increase and stay within `last_offset_delta`.
/// Kafka: the Kafka header and CRC are sound and agree with ours, and uncompressed
/// records parse with the same offset rules. Never panics.
///
/// Gaps in offset deltas are accepted (compaction leaves them); the produce path wants
/// [`validate_produced_batch`].
pub fn validate_batch(bytes: &[u8]) -> Result<BatchView<'_>, BatchError> {
    validate_with(bytes, false)
}

fn validate_with(bytes: &[u8], keys_required: bool) -> Result<BatchView<'_>, BatchError> {
    let header = BatchHeader::decode(bytes)?;
    if bytes.len() != header.batch_len_bytes() {
        return Err(BatchError::LengthMismatch {
            declared_bytes: header.batch_len_bytes(),
            actual_bytes: bytes.len(),
        });
    }
    check_crc(&header, bytes)?;
    let payload = &bytes[BATCH_HEADER_BYTES..];
    // Control records (transaction markers) are the broker's, not the producer's data.
    let keys_required = keys_required && !header.attributes.is_control();
    match header.payload_format {
        PayloadFormat::Native => native::check_payload(&header, payload, keys_required)?,
        PayloadFormat::Kafka => kafka::check_payload(&header, payload, keys_required)?,
    }
    Ok(BatchView {
        header,
        bytes,
        payload_validated: true,
    })
}

/// What a producer's batch must satisfy besides being well formed, set by the topic
/// it goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProduceRules {
    /// Every record carries a key: the topic's `cleanup.policy` compacts, and
    /// compaction keeps records by key (Kafka refuses keyless ones with
    /// INVALID_RECORD). Control batches are exempt.
    pub keys_required: bool,
}

/// [`validate_batch`], plus what a producer's batch must also satisfy: its records
/// occupy every offset it spans (`record_count == last_offset_delta + 1`).
pub fn validate_produced_batch(bytes: &[u8]) -> Result<BatchView<'_>, BatchError> {
    validate_produced_batch_with(bytes, ProduceRules::default())
}

/// [`validate_produced_batch`] with the topic's [`ProduceRules`], checked in the same
/// single pass over the records.
pub fn validate_produced_batch_with(
    bytes: &[u8],
    rules: ProduceRules,
) -> Result<BatchView<'_>, BatchError> {
    let view = validate_with(bytes, rules.keys_required)?;
    if !view.header.is_dense() {
        return Err(BatchError::NotDense {
            record_count: view.header.record_count,
            last_offset_delta: view.header.last_offset_delta,
        });
    }
    Ok(view)
}

/// An owned batch that passed full validation, so that appending it needs no second
/// pass over its records. Only this crate's validating functions make one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedBatch {
    pub(crate) header: BatchHeader,
    pub(crate) bytes: Vec<u8>,
}

impl ValidatedBatch {
    /// `bytes` after [`validate_batch`].
    pub fn new(bytes: Vec<u8>) -> Result<ValidatedBatch, BatchError> {
        let header = *validate_batch(&bytes)?.header();
        Ok(ValidatedBatch { header, bytes })
    }

    /// `bytes` after [`validate_produced_batch_with`].
    pub fn produced(bytes: Vec<u8>, rules: ProduceRules) -> Result<ValidatedBatch, BatchError> {
        let header = *validate_produced_batch_with(&bytes, rules)?.header();
        Ok(ValidatedBatch { header, bytes })
    }

    /// The header as validated (before any stamping).
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The batch bytes, for the broker to stamp and store.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Iterate the consecutive batches in `bytes`, checking each with [`check_batch`].
pub fn batches(bytes: &[u8]) -> BatchIter<'_> {
    BatchIter {
        bytes,
        position_bytes: 0,
        failed: false,
    }
}

/// Yields each batch in turn; ends cleanly at the end of the buffer, or after yielding
/// one [`BatchError::AtPosition`] for a bad or truncated batch.
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position_bytes: usize,
    failed: bool,
}

impl BatchIter<'_> {
    /// Bytes consumed by the batches yielded so far: after an error, the length of the
    /// good prefix (where recovery truncates).
    pub fn position_bytes(&self) -> usize {
        self.position_bytes
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.position_bytes..)?;
        if self.failed || rest.is_empty() {
            return None;
        }
        let batch = check_batch(rest).and_then(|header| {
            let bytes = rest
                .get(..header.batch_len_bytes())
                .ok_or(BatchError::TooShort {
                    need_bytes: header.batch_len_bytes(),
                    have_bytes: rest.len(),
                })?;
            Ok(BatchView {
                header,
                bytes,
                payload_validated: false,
            })
        });
        match batch {
            Ok(view) => {
                self.position_bytes += view.bytes.len();
                Some(Ok(view))
            }
            Err(source) => {
                self.failed = true;
                Some(Err(BatchError::AtPosition {
                    position_bytes: self.position_bytes,
                    source: Box::new(source),
                }))
            }
        }
    }
}

impl core::iter::FusedIterator for BatchIter<'_> {}

/// Checks that offset deltas strictly increase within `0..=last_offset_delta`.
pub(crate) struct OffsetDeltas {
    record_index: usize,
    min: i64,
    max: i64,
}

impl OffsetDeltas {
    pub(crate) fn new(last_offset_delta: u32) -> Self {
        OffsetDeltas {
            record_index: 0,
            min: 0,
            max: i64::from(last_offset_delta),
        }
    }

    pub(crate) fn check(&mut self, offset_delta: i64) -> Result<(), BatchError> {
        if offset_delta < self.min || offset_delta > self.max {
            return Err(BatchError::BadOffsetDelta {
                record_index: self.record_index,
                offset_delta,
                min: self.min,
                max: self.max,
            });
        }
        self.record_index += 1;
        self.min = offset_delta + 1;
        Ok(())
    }
}

/// Kafka header fields the broker stamps, as byte ranges of the whole batch.
const KAFKA_BASE_OFFSET: core::ops::Range<usize> = BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + 8;
const KAFKA_LEADER_EPOCH: core::ops::Range<usize> =
    BATCH_HEADER_BYTES + 12..BATCH_HEADER_BYTES + 16;

fn is_kafka(batch: &[u8]) -> bool {
    batch.get(layout::PAYLOAD_FORMAT) == Some(&(PayloadFormat::Kafka as u8))
}

fn put(batch: &mut [u8], at: core::ops::Range<usize>, value: &[u8]) {
    if let Some(dst) = batch.get_mut(at) {
        dst.copy_from_slice(value);
    }
}

/// Set the base offset: the header field, and for Kafka payloads the Kafka
/// baseOffset too (big endian). Outside both CRCs, so the batch stays valid.
/// Precondition: `batch` holds at least the header (a shorter buffer is left as is).
pub fn stamp_base_offset(batch: &mut [u8], base_offset: i64) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    put(batch, layout::BASE_OFFSET, &base_offset.to_le_bytes());
    if is_kafka(batch) {
        put(batch, KAFKA_BASE_OFFSET, &base_offset.to_be_bytes());
    }
}

/// Set the leader epoch: the header field, and for Kafka payloads the Kafka
/// partitionLeaderEpoch too (big endian). The batch stays valid.
pub fn stamp_leader_epoch(batch: &mut [u8], epoch: i32) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    put(batch, layout::LEADER_EPOCH, &epoch.to_le_bytes());
    if is_kafka(batch) {
        put(batch, KAFKA_LEADER_EPOCH, &epoch.to_be_bytes());
    }
}

/// Set the log-append time in the header. A Kafka payload's maxTimestamp is inside the
/// Kafka CRC and is left alone; the Kafka protocol layer substitutes it when serving a
/// LogAppendTime topic.
pub fn stamp_log_append_time(batch: &mut [u8], ts_ms: i64) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    put(batch, layout::LOG_APPEND_TIME, &ts_ms.to_le_bytes());
}

#[cfg(test)]
mod produce_rules_tests {
    use super::*;
    use crate::{
        wrap_kafka_batch, wrap_kafka_batch_produced, Attributes, KafkaBatchBuilder,
        NativeBatchBuilder,
    };

    const KEYS: ProduceRules = ProduceRules {
        keys_required: true,
    };

    fn kafka(keys: &[Option<&str>], attributes: Attributes) -> Vec<u8> {
        let mut b = KafkaBatchBuilder::new().with_attributes(attributes);
        for k in keys {
            b.push(1, k.map(str::as_bytes), Some(b"v"), &[]);
        }
        b.build()
    }

    #[test]
    fn keyless_records_fail_only_where_keys_are_required() {
        let mut native = NativeBatchBuilder::new();
        native.push(1, Some(b"k"), Some(b"v"), &[]);
        native.push(1, None, Some(b"v"), &[]);
        let native = native.build();
        assert!(ValidatedBatch::produced(native.clone(), ProduceRules::default()).is_ok());
        assert_eq!(
            ValidatedBatch::produced(native, KEYS).map(drop),
            Err(BatchError::KeylessRecord { record_index: 1 })
        );
        for codec in [crate::Compression::None, crate::Compression::Zstd] {
            let attrs = Attributes::default().with_compression(codec);
            let keyless = kafka(&[Some("a"), None], attrs);
            assert!(wrap_kafka_batch_produced(&keyless, ProduceRules::default()).is_ok());
            assert_eq!(
                wrap_kafka_batch_produced(&keyless, KEYS).map(drop),
                Err(BatchError::KeylessRecord { record_index: 1 })
            );
            let keyed = kafka(&[Some("a"), Some("b")], attrs);
            let ok = wrap_kafka_batch_produced(&keyed, KEYS).unwrap();
            assert_eq!(ok.bytes(), wrap_kafka_batch(&keyed).unwrap().as_slice());
            validate_produced_batch_with(ok.bytes(), KEYS).unwrap();
        }
        // Transaction markers are the broker's records, not the producer's data.
        let control = kafka(&[None], Attributes::default().with_control(true));
        assert!(wrap_kafka_batch_produced(&control, KEYS).is_ok());
    }

    #[test]
    fn kafka_produce_validation_refuses_what_validate_batch_refuses() {
        let mut bad = kafka(&[Some("a")], Attributes::default());
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            wrap_kafka_batch_produced(&bad, ProduceRules::default()),
            Err(BatchError::KafkaCrcMismatch { .. })
        ));
    }
}
