//! The native payload: an rkyv archive of records that consumers read in place.
//!
//! The archive root is `Vec<NativeRecord>`. With rkyv's `unaligned` and
//! `pointer_width_32` features every archived type has alignment 1, so a payload can be
//! read at any byte position of a segment or socket buffer without copying.

use rkyv::rancor;

use crate::attributes::{Attributes, Compression};
use crate::batch::{BatchView, OffsetDeltas};
use crate::crc::seal_batch;
use crate::error::BatchError;
use crate::header::{BatchHeader, PayloadFormat, BATCH_HEADER_BYTES, BATCH_VERSION};

/// One record as producers build it; archived, it is read through [`RecordView`].
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct NativeRecord {
    /// Offset relative to the batch's base offset.
    pub offset_delta: u32,
    /// Timestamp relative to the batch's `first_timestamp_ms`.
    pub timestamp_delta_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<NativeHeader>,
}

/// One record header: a UTF-8 key and an optional value.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct NativeHeader {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

type ArchivedRecords = rkyv::vec::ArchivedVec<ArchivedNativeRecord>;

/// Bytecheck the payload and return its root. Linear in the payload size.
fn access(payload: &[u8]) -> Result<&ArchivedRecords, BatchError> {
    rkyv::access::<ArchivedRecords, rancor::Error>(payload).map_err(|e| {
        BatchError::malformed(format!("native payload is not a valid record archive: {e}"))
    })
}

fn require_native(header: &BatchHeader) -> Result<(), BatchError> {
    if header.payload_format != PayloadFormat::Native {
        return Err(BatchError::WrongPayloadFormat {
            expected: PayloadFormat::Native,
            found: header.payload_format,
        });
    }
    match header.attributes.compression() {
        Compression::None => Ok(()),
        compression => Err(BatchError::UnsupportedCompression { compression }),
    }
}

/// Structure check for [`validate_batch`](crate::validate_batch).
pub(crate) fn check_payload(
    header: &BatchHeader,
    payload: &[u8],
    keys_required: bool,
) -> Result<(), BatchError> {
    require_native(header)?;
    let records = access(payload)?;
    if records.len() as u64 != u64::from(header.record_count) {
        return Err(BatchError::RecordCountMismatch {
            header: u64::from(header.record_count),
            payload: records.len() as u64,
        });
    }
    let mut deltas = OffsetDeltas::new(header.last_offset_delta);
    for (record_index, record) in records.iter().enumerate() {
        deltas.check(i64::from(record.offset_delta.to_native()))?;
        if keys_required && record.key.is_none() {
            return Err(BatchError::KeylessRecord { record_index });
        }
    }
    Ok(())
}

impl<'a> BatchView<'a> {
    /// The records of a native batch, read in place. Errors for Kafka payloads
    /// ([`BatchError::WrongPayloadFormat`]) and compressed batches. Free for a view
    /// from [`validate_batch`](crate::validate_batch); otherwise one bytecheck pass
    /// over the payload.
    pub fn records(&self) -> Result<NativeRecords<'a>, BatchError> {
        require_native(&self.header)?;
        let payload = self.payload();
        let records = if self.payload_validated {
            // SAFETY: `validate_batch` bytechecked this very payload as `ArchivedRecords`,
            // and the shared borrow keeps the bytes unchanged since.
            unsafe { rkyv::access_unchecked::<ArchivedRecords>(payload) }
        } else {
            access(payload)?
        };
        Ok(NativeRecords {
            records: records.as_slice().iter(),
            base_offset: self.header.base_offset,
            first_timestamp_ms: self.header.first_timestamp_ms,
        })
    }
}

/// Zero-copy iterator over a native batch's records.
#[derive(Clone, Debug)]
pub struct NativeRecords<'a> {
    records: core::slice::Iter<'a, ArchivedNativeRecord>,
    base_offset: i64,
    first_timestamp_ms: i64,
}

impl<'a> Iterator for NativeRecords<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        let record = self.records.next()?;
        Some(RecordView {
            record,
            base_offset: self.base_offset,
            first_timestamp_ms: self.first_timestamp_ms,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.records.size_hint()
    }
}

impl ExactSizeIterator for NativeRecords<'_> {}

/// One archived record, borrowed from the batch bytes.
#[derive(Clone, Copy)]
pub struct RecordView<'a> {
    record: &'a ArchivedNativeRecord,
    base_offset: i64,
    first_timestamp_ms: i64,
}

impl<'a> RecordView<'a> {
    pub fn offset_delta(&self) -> u32 {
        self.record.offset_delta.to_native()
    }

    /// Absolute offset: the batch's base offset plus this record's delta.
    pub fn offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.offset_delta()))
    }

    /// The record's create time: the batch's first timestamp plus this record's delta.
    pub fn timestamp_ms(&self) -> i64 {
        self.first_timestamp_ms
            .wrapping_add(self.record.timestamp_delta_ms.to_native())
    }

    pub fn key(&self) -> Option<&'a [u8]> {
        self.record.key.as_ref().map(|key| key.as_slice())
    }

    pub fn value(&self) -> Option<&'a [u8]> {
        self.record.value.as_ref().map(|value| value.as_slice())
    }

    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        self.record.headers.as_slice().iter().map(|header| {
            (
                header.key.as_str(),
                header.value.as_ref().map(|value| value.as_slice()),
            )
        })
    }

    /// An owned copy, with the same deltas.
    pub fn to_record(&self) -> NativeRecord {
        NativeRecord {
            offset_delta: self.offset_delta(),
            timestamp_delta_ms: self.record.timestamp_delta_ms.to_native(),
            key: self.key().map(<[u8]>::to_vec),
            value: self.value().map(<[u8]>::to_vec),
            headers: self
                .headers()
                .map(|(key, value)| NativeHeader {
                    key: key.to_owned(),
                    value: value.map(<[u8]>::to_vec),
                })
                .collect(),
        }
    }
}

impl core::fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecordView")
            .field("offset", &self.offset())
            .field("timestamp_ms", &self.timestamp_ms())
            .field("key", &self.key())
            .field("value", &self.value())
            .field("headers", &self.headers().collect::<Vec<_>>())
            .finish()
    }
}

/// Builds one native batch from records pushed in offset order.
#[derive(Clone, Debug)]
pub struct NativeBatchBuilder {
    records: Vec<NativeRecord>,
    first_timestamp_ms: i64,
    max_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: Attributes,
    estimated_bytes: usize,
}

impl Default for NativeBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeBatchBuilder {
    /// An empty builder: no producer (ids -1), default attributes.
    pub fn new() -> Self {
        NativeBatchBuilder {
            records: Vec::new(),
            first_timestamp_ms: -1,
            max_timestamp_ms: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: Attributes::default(),
            estimated_bytes: BATCH_HEADER_BYTES + size_of::<ArchivedRecords>(),
        }
    }

    /// Idempotent/transactional producer identity for the batch.
    pub fn with_producer(
        mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Attribute bits (transactional, control, timestamp type). Compression must stay
    /// `None`: native batches are built uncompressed.
    pub fn with_attributes(mut self, attributes: Attributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// Append a record at the next offset.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        if self.records.is_empty() {
            self.first_timestamp_ms = timestamp_ms;
            self.max_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let bytes_len = |bytes: Option<&[u8]>| bytes.map_or(0, <[u8]>::len);
        self.estimated_bytes += size_of::<ArchivedNativeRecord>()
            + bytes_len(key)
            + bytes_len(value)
            + headers
                .iter()
                .map(|(k, v)| size_of::<ArchivedNativeHeader>() + k.len() + bytes_len(*v))
                .sum::<usize>();
        self.records.push(NativeRecord {
            offset_delta: self.records.len() as u32,
            timestamp_delta_ms: timestamp_ms.wrapping_sub(self.first_timestamp_ms),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(key, value)| NativeHeader {
                    key: (*key).to_owned(),
                    value: value.map(<[u8]>::to_vec),
                })
                .collect(),
        });
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Upper bound on the built batch size, exact up to short-string inlining; for
    /// size-based batching against [`BATCH_BYTES_MAX`](crate::BATCH_BYTES_MAX).
    pub fn estimated_bytes(&self) -> usize {
        self.estimated_bytes
    }

    /// The finished batch: base offset 0, leader epoch and log-append time -1,
    /// CRC set.
    ///
    /// # Panics
    /// Where [`try_build`](Self::try_build) errs: no records, over
    /// `BATCH_BYTES_MAX`, or compressed/undefined attributes.
    pub fn build(self) -> Vec<u8> {
        match self.try_build() {
            Ok(batch) => batch,
            Err(e) => panic!("NativeBatchBuilder::build: {e}"),
        }
    }

    /// [`build`](Self::build) without the panic.
    pub fn try_build(self) -> Result<Vec<u8>, BatchError> {
        let record_count = u32::try_from(self.records.len()).map_err(|_| BatchError::TooLarge {
            len_bytes: self.estimated_bytes,
            max_bytes: crate::BATCH_BYTES_MAX,
        })?;
        if record_count == 0 {
            return Err(BatchError::EmptyBatch);
        }
        self.attributes.check_buildable()?;
        let header = BatchHeader {
            base_offset: 0,
            payload_len_bytes: 0,
            leader_epoch: -1,
            log_append_time_ms: -1,
            crc32c: 0,
            version: BATCH_VERSION,
            payload_format: PayloadFormat::Native,
            attributes: self.attributes,
            producer_epoch: self.producer_epoch,
            last_offset_delta: record_count - 1,
            record_count,
            base_sequence: self.base_sequence,
            first_timestamp_ms: self.first_timestamp_ms,
            max_timestamp_ms: self.max_timestamp_ms,
            producer_id: self.producer_id,
        };
        encode(header, &self.records, self.estimated_bytes)
    }
}

/// Archive `records` after an 80-byte header slot, then seal with `header`.
fn encode(
    header: BatchHeader,
    records: &Vec<NativeRecord>,
    capacity_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(capacity_bytes.min(crate::BATCH_BYTES_MAX));
    out.resize(BATCH_HEADER_BYTES, 0);
    let mut out = rkyv::api::high::to_bytes_in::<_, rancor::Error>(records, out)
        .map_err(|e| BatchError::malformed(format!("cannot archive records: {e}")))?;
    seal_batch(header, &mut out)?;
    Ok(out)
}

/// Rebuild a native batch keeping only the records `keep` accepts (log compaction).
///
/// Preserves every header field but the record count, payload length and CRC: base
/// offset, `last_offset_delta`, timestamps (including `max_timestamp_ms`), producer
/// fields, attributes and the stamped fields. Kept records keep their offset and
/// timestamp deltas, so the result may have offset gaps. `None` if nothing is kept.
pub fn retain_native_records(
    batch: &BatchView<'_>,
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
) -> Result<Option<Vec<u8>>, BatchError> {
    let kept: Vec<NativeRecord> = batch
        .records()?
        .filter(|record| keep(record))
        .map(|record| record.to_record())
        .collect();
    if kept.is_empty() {
        return Ok(None);
    }
    let mut header = *batch.header();
    header.record_count = kept.len() as u32;
    encode(header, &kept, batch.bytes().len()).map(Some)
}
