//! The one error type for everything that reads or builds a batch.

use crate::attributes::Compression;
use crate::header::PayloadFormat;

/// Why a batch (or a buffer of batches) was rejected.
///
/// Every variant names what was expected and what was found, so a log line is enough
/// to tell a corrupt segment from a buggy producer.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch is truncated: need {need_bytes} bytes, have {have_bytes}")]
    TooShort {
        need_bytes: usize,
        have_bytes: usize,
    },

    #[error("bad batch magic {found:#06x} (expected {expected:#06x}); not a strata batch or misaligned read", expected = crate::BATCH_MAGIC)]
    BadMagic { found: u16 },

    #[error("unsupported batch version {found} (this build reads version {supported})", supported = crate::BATCH_VERSION)]
    UnsupportedVersion { found: u8 },

    #[error("unknown payload format {found} (expected 1 = native or 2 = kafka)")]
    UnknownPayloadFormat { found: u8 },

    #[error("reserved header bytes 72..80 are not zero")]
    NonZeroReserved,

    #[error("unknown attribute bits {bits:#06x} set (only bits 0-5 are defined)")]
    UnknownAttributes { bits: u16 },

    #[error("unknown compression code {code} (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)")]
    UnknownCompression { code: u8 },

    #[error(
        "batch is {len_bytes} bytes, over the limit of {max_bytes}; split it into smaller batches"
    )]
    TooLarge { len_bytes: usize, max_bytes: usize },

    #[error(
        "batch length mismatch: header declares {declared_bytes} bytes, buffer has {actual_bytes}"
    )]
    LengthMismatch {
        declared_bytes: usize,
        actual_bytes: usize,
    },

    #[error("batch CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}; the batch is corrupt")]
    CrcMismatch { stored: u32, computed: u32 },

    #[error("batch has no records; producers must send at least one")]
    EmptyBatch,

    #[error("header claims {record_count} records but last_offset_delta {last_offset_delta} leaves room for at most last_offset_delta + 1")]
    RecordCountExceedsOffsets {
        record_count: u32,
        last_offset_delta: u32,
    },

    #[error("record count mismatch: header says {header}, payload holds {payload}")]
    RecordCountMismatch { header: u64, payload: u64 },

    #[error("record {record_index} has offset delta {offset_delta}, expected {min}..={max} (deltas must strictly increase and not pass the header's last_offset_delta)")]
    BadOffsetDelta {
        record_index: usize,
        offset_delta: i64,
        min: i64,
        max: i64,
    },

    #[error("produced batch must have consecutive offsets: {record_count} records but last_offset_delta {last_offset_delta}")]
    NotDense {
        record_count: u32,
        last_offset_delta: u32,
    },

    #[error("record {record_index} has no key; a compacted topic (cleanup.policy=compact) keeps the newest record per key, so every record needs one")]
    KeylessRecord { record_index: usize },

    #[error("malformed payload: {reason}")]
    MalformedPayload { reason: String },

    #[error("operation needs a {expected:?} payload, batch has {found:?}")]
    WrongPayloadFormat {
        expected: PayloadFormat,
        found: PayloadFormat,
    },

    #[error("batch is compressed with {compression:?} where this operation needs it uncompressed (native batches are never compressed; read compressed kafka batches with decode_kafka_records)")]
    UnsupportedCompression { compression: Compression },

    #[error("cannot decompress the {compression:?} records of a kafka batch: {reason}; the producer sent a corrupt batch")]
    Decompress {
        compression: Compression,
        reason: String,
    },

    #[error("the {compression:?} records of a kafka batch decompress to more than {max_bytes} bytes, the most one batch may hold; producers must send smaller batches (or this is a decompression bomb)")]
    DecompressedTooLarge {
        compression: Compression,
        max_bytes: usize,
    },

    #[error("cannot compress kafka records with {compression:?}: {reason}")]
    Compress {
        compression: Compression,
        reason: String,
    },

    #[error("kafka batch magic {found} is not supported (only RecordBatch v2, magic 2)")]
    KafkaBadMagic { found: i8 },

    #[error(
        "kafka batchLength {declared_bytes} does not match the {actual_bytes} bytes that follow it"
    )]
    KafkaLengthMismatch {
        declared_bytes: i64,
        actual_bytes: usize,
    },

    #[error("kafka batch CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}; the client sent a corrupt batch")]
    KafkaCrcMismatch { stored: u32, computed: u32 },

    #[error("batch header field {field} disagrees with the kafka batch it carries")]
    KafkaHeaderMismatch { field: &'static str },

    #[error("batch at byte {position_bytes}: {source}")]
    AtPosition {
        position_bytes: usize,
        source: Box<BatchError>,
    },
}

impl BatchError {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        BatchError::MalformedPayload {
            reason: reason.into(),
        }
    }

    /// The underlying error, looking through `AtPosition`.
    pub fn root(&self) -> &BatchError {
        match self {
            BatchError::AtPosition { source, .. } => source.root(),
            other => other,
        }
    }
}
