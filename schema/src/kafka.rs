//! Kafka RecordBatch v2 (magic 2), carried verbatim as a batch payload.
//!
//! A Kafka client's batch is stored byte for byte, compressed or not; our header is
//! derived from the Kafka header. The Kafka CRC-32C covers attributes onward, so the
//! broker may stamp the Kafka baseOffset and partitionLeaderEpoch.
//!
//! Also here: the one decoder of Kafka's record format ([`KafkaRecords`]), which reads
//! an uncompressed batch in place ([`kafka_records`]) or a compressed one after
//! decompressing its records section ([`decode_kafka_records`]), and an encoder
//! ([`KafkaBatchBuilder`]) that writes either.

use std::borrow::Cow;

use crate::attributes::{Attributes, Compression};
use crate::batch::{check_batch, BatchView, OffsetDeltas, ProduceRules, ValidatedBatch};
use crate::crc::seal_batch;
use crate::error::BatchError;
use crate::header::{
    BatchHeader, PayloadFormat, BATCH_BYTES_MAX, BATCH_HEADER_BYTES, BATCH_VERSION,
};
use crate::kafka_compression::{self, KAFKA_RECORDS_BYTES_MAX};

/// Size of the Kafka RecordBatch v2 header.
pub const KAFKA_HEADER_BYTES: usize = 61;
/// The only Kafka batch magic carried.
pub const KAFKA_MAGIC: i8 = 2;

/// Byte ranges of the Kafka v2 header; all integers big endian.
pub(crate) mod at {
    use core::ops::Range;
    pub const BASE_OFFSET: Range<usize> = 0..8;
    pub const BATCH_LENGTH: Range<usize> = 8..12;
    pub const LEADER_EPOCH: Range<usize> = 12..16;
    pub const MAGIC: usize = 16;
    pub const CRC: Range<usize> = 17..21;
    pub const ATTRIBUTES: Range<usize> = 21..23;
    pub const LAST_OFFSET_DELTA: Range<usize> = 23..27;
    pub const BASE_TIMESTAMP: Range<usize> = 27..35;
    pub const MAX_TIMESTAMP: Range<usize> = 35..43;
    pub const PRODUCER_ID: Range<usize> = 43..51;
    pub const PRODUCER_EPOCH: Range<usize> = 51..53;
    pub const BASE_SEQUENCE: Range<usize> = 53..57;
    pub const RECORD_COUNT: Range<usize> = 57..61;
    /// The Kafka CRC covers the batch from here to its end.
    pub const CRC_FROM: usize = 21;
    /// batchLength counts the bytes from here to the end.
    pub const LENGTH_FROM: usize = 12;
}

/// The 61-byte Kafka RecordBatch v2 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KafkaBatchHeader {
    pub base_offset: i64,
    /// Bytes after this field (whole batch minus 12).
    pub batch_length_bytes: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    /// CRC-32C over attributes to the end of the batch.
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

impl KafkaBatchHeader {
    /// Parse the header at the start of `bytes`; checks only its length and magic.
    pub fn parse(bytes: &[u8]) -> Result<KafkaBatchHeader, BatchError> {
        let h = bytes
            .get(..KAFKA_HEADER_BYTES)
            .ok_or(BatchError::TooShort {
                need_bytes: KAFKA_HEADER_BYTES,
                have_bytes: bytes.len(),
            })?;
        let magic = h[at::MAGIC] as i8;
        if magic != KAFKA_MAGIC {
            return Err(BatchError::KafkaBadMagic { found: magic });
        }
        Ok(KafkaBatchHeader {
            base_offset: i64::from_be_bytes(array(&h[at::BASE_OFFSET])),
            batch_length_bytes: i32::from_be_bytes(array(&h[at::BATCH_LENGTH])),
            partition_leader_epoch: i32::from_be_bytes(array(&h[at::LEADER_EPOCH])),
            magic,
            crc: u32::from_be_bytes(array(&h[at::CRC])),
            attributes: i16::from_be_bytes(array(&h[at::ATTRIBUTES])),
            last_offset_delta: i32::from_be_bytes(array(&h[at::LAST_OFFSET_DELTA])),
            base_timestamp_ms: i64::from_be_bytes(array(&h[at::BASE_TIMESTAMP])),
            max_timestamp_ms: i64::from_be_bytes(array(&h[at::MAX_TIMESTAMP])),
            producer_id: i64::from_be_bytes(array(&h[at::PRODUCER_ID])),
            producer_epoch: i16::from_be_bytes(array(&h[at::PRODUCER_EPOCH])),
            base_sequence: i32::from_be_bytes(array(&h[at::BASE_SEQUENCE])),
            record_count: i32::from_be_bytes(array(&h[at::RECORD_COUNT])),
        })
    }

    /// Write the 61 header bytes at `out[..61]`.
    ///
    /// # Panics
    /// If `out.len() < KAFKA_HEADER_BYTES`.
    pub fn encode(&self, out: &mut [u8]) {
        let h = &mut out[..KAFKA_HEADER_BYTES];
        h[at::BASE_OFFSET].copy_from_slice(&self.base_offset.to_be_bytes());
        h[at::BATCH_LENGTH].copy_from_slice(&self.batch_length_bytes.to_be_bytes());
        h[at::LEADER_EPOCH].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[at::MAGIC] = self.magic as u8;
        h[at::CRC].copy_from_slice(&self.crc.to_be_bytes());
        h[at::ATTRIBUTES].copy_from_slice(&self.attributes.to_be_bytes());
        h[at::LAST_OFFSET_DELTA].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        h[at::BASE_TIMESTAMP].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        h[at::MAX_TIMESTAMP].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        h[at::PRODUCER_ID].copy_from_slice(&self.producer_id.to_be_bytes());
        h[at::PRODUCER_EPOCH].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[at::BASE_SEQUENCE].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[at::RECORD_COUNT].copy_from_slice(&self.record_count.to_be_bytes());
    }

    /// The attribute bits strata keeps (bits 0-5, same meaning as ours).
    pub fn strata_attributes(&self) -> Attributes {
        Attributes(self.attributes as u16 & Attributes::KNOWN_BITS)
    }

    /// Whole batch length as declared by batchLength.
    pub fn declared_len_bytes(&self) -> i64 {
        i64::from(self.batch_length_bytes) + at::LENGTH_FROM as i64
    }
}

/// Check a whole Kafka batch: magic, batchLength == length - 12, Kafka CRC, record
/// count against lastOffsetDelta, and a known compression code.
pub fn check_kafka_batch(kafka_batch: &[u8]) -> Result<KafkaBatchHeader, BatchError> {
    let kh = KafkaBatchHeader::parse(kafka_batch)?;
    if kh.declared_len_bytes() != kafka_batch.len() as i64 {
        return Err(BatchError::KafkaLengthMismatch {
            declared_bytes: i64::from(kh.batch_length_bytes),
            actual_bytes: kafka_batch.len() - at::LENGTH_FROM,
        });
    }
    let computed = crc32c::crc32c(&kafka_batch[at::CRC_FROM..]);
    if computed != kh.crc {
        return Err(BatchError::KafkaCrcMismatch {
            stored: kh.crc,
            computed,
        });
    }
    if kh.record_count == 0 {
        return Err(BatchError::EmptyBatch);
    }
    if kh.record_count < 0 || kh.last_offset_delta < 0 {
        return Err(BatchError::malformed(format!(
            "kafka recordCount {} and lastOffsetDelta {} must not be negative",
            kh.record_count, kh.last_offset_delta
        )));
    }
    if i64::from(kh.record_count) > i64::from(kh.last_offset_delta) + 1 {
        return Err(BatchError::RecordCountExceedsOffsets {
            record_count: kh.record_count as u32,
            last_offset_delta: kh.last_offset_delta as u32,
        });
    }
    if let Compression::Unknown(code) = kh.strata_attributes().compression() {
        return Err(BatchError::UnknownCompression { code });
    }
    Ok(kh)
}

/// Our header for a checked Kafka batch (payload length and CRC left to sealing).
pub(crate) fn header_for(kh: &KafkaBatchHeader) -> BatchHeader {
    BatchHeader {
        base_offset: kh.base_offset,
        payload_len_bytes: 0,
        leader_epoch: kh.partition_leader_epoch,
        log_append_time_ms: -1,
        crc32c: 0,
        version: BATCH_VERSION,
        payload_format: PayloadFormat::Kafka,
        attributes: kh.strata_attributes(),
        producer_epoch: kh.producer_epoch,
        last_offset_delta: kh.last_offset_delta as u32,
        record_count: kh.record_count as u32,
        base_sequence: kh.base_sequence,
        first_timestamp_ms: kh.base_timestamp_ms,
        max_timestamp_ms: kh.max_timestamp_ms,
        producer_id: kh.producer_id,
    }
}

/// Wrap a Kafka client's RecordBatch v2 as a strata batch, the Kafka bytes verbatim as
/// payload, after [`check_kafka_batch`].
pub fn wrap_kafka_batch(kafka_batch: &[u8]) -> Result<Vec<u8>, BatchError> {
    let kh = check_kafka_batch(kafka_batch)?;
    let len_bytes = BATCH_HEADER_BYTES + kafka_batch.len();
    if len_bytes > BATCH_BYTES_MAX {
        return Err(BatchError::TooLarge {
            len_bytes,
            max_bytes: BATCH_BYTES_MAX,
        });
    }
    let mut out = Vec::with_capacity(len_bytes);
    out.resize(BATCH_HEADER_BYTES, 0);
    out.extend_from_slice(kafka_batch);
    seal_batch(header_for(&kh), &mut out)?;
    Ok(out)
}

/// Structure check for [`validate_batch`](crate::validate_batch).
pub(crate) fn check_payload(
    header: &BatchHeader,
    payload: &[u8],
    keys_required: bool,
) -> Result<(), BatchError> {
    check_payload_records(header, payload, keys_required).map(drop)
}

/// [`check_payload`], handing back the records it decoded (decompressed if need be).
fn check_payload_records<'a>(
    header: &BatchHeader,
    payload: &'a [u8],
    keys_required: bool,
) -> Result<KafkaBatchRecords<'a>, BatchError> {
    let kh = check_kafka_batch(payload)?;
    let expected = header_for(&kh);
    let agree = [
        ("attributes", header.attributes == expected.attributes),
        (
            "last_offset_delta",
            header.last_offset_delta == expected.last_offset_delta,
        ),
        ("record_count", header.record_count == expected.record_count),
        (
            "first_timestamp_ms",
            header.first_timestamp_ms == expected.first_timestamp_ms,
        ),
        (
            "max_timestamp_ms",
            header.max_timestamp_ms == expected.max_timestamp_ms,
        ),
        ("producer_id", header.producer_id == expected.producer_id),
        (
            "producer_epoch",
            header.producer_epoch == expected.producer_epoch,
        ),
        (
            "base_sequence",
            header.base_sequence == expected.base_sequence,
        ),
    ];
    if let Some((field, _)) = agree.iter().find(|(_, same)| !same) {
        return Err(BatchError::KafkaHeaderMismatch { field });
    }
    check_records(payload, header.last_offset_delta, keys_required)
}

/// Decodes (decompressing if need be) the records of a Kafka batch whose header is
/// checked, checking their offset deltas and, when `keys_required`, their keys.
fn check_records(
    payload: &[u8],
    last_offset_delta: u32,
    keys_required: bool,
) -> Result<KafkaBatchRecords<'_>, BatchError> {
    let decoded = decode_kafka_records(payload)?;
    let mut deltas = OffsetDeltas::new(last_offset_delta);
    let mut records = decoded.iter();
    let mut record_index = 0usize;
    while let Some(record) = records.next_view() {
        let record = record?;
        deltas.check(i64::from(record.offset_delta))?;
        if keys_required && record.key.is_none() {
            return Err(BatchError::KeylessRecord { record_index });
        }
        record_index += 1;
    }
    Ok(decoded)
}

/// A Kafka client's batch wrapped as a strata batch and fully validated in one pass:
/// the Kafka CRC is computed once, the records decoded once (keys checked as `rules`
/// say, offsets dense), and our header is derived from the Kafka one, so it agrees
/// by construction. The produce path's only validation.
pub fn wrap_kafka_batch_produced(
    kafka_batch: &[u8],
    rules: ProduceRules,
) -> Result<ValidatedBatch, BatchError> {
    let kh = check_kafka_batch(kafka_batch)?;
    let header = header_for(&kh);
    if !header.is_dense() {
        return Err(BatchError::NotDense {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let keys_required = rules.keys_required && !header.attributes.is_control();
    check_records(kafka_batch, header.last_offset_delta, keys_required)?;
    let len_bytes = BATCH_HEADER_BYTES + kafka_batch.len();
    if len_bytes > BATCH_BYTES_MAX {
        return Err(BatchError::TooLarge {
            len_bytes,
            max_bytes: BATCH_BYTES_MAX,
        });
    }
    let mut bytes = Vec::with_capacity(len_bytes);
    bytes.resize(BATCH_HEADER_BYTES, 0);
    bytes.extend_from_slice(kafka_batch);
    let header = seal_batch(header, &mut bytes)?;
    debug_assert!(check_batch(&bytes).is_ok());
    Ok(ValidatedBatch { header, bytes })
}

/// Full validation of exactly one Kafka-format batch, as
/// [`validate_batch`](crate::validate_batch) does it, also handing back its records
/// (decompressed if compressed), so a reader decompresses a batch once, not twice.
pub fn validate_kafka_batch(
    bytes: &[u8],
) -> Result<(BatchView<'_>, KafkaBatchRecords<'_>), BatchError> {
    let header = check_batch(bytes)?;
    if bytes.len() != header.batch_len_bytes() {
        return Err(BatchError::LengthMismatch {
            declared_bytes: header.batch_len_bytes(),
            actual_bytes: bytes.len(),
        });
    }
    if header.payload_format != PayloadFormat::Kafka {
        return Err(BatchError::WrongPayloadFormat {
            expected: PayloadFormat::Kafka,
            found: header.payload_format,
        });
    }
    let records = check_payload_records(&header, &bytes[BATCH_HEADER_BYTES..], false)?;
    let view = BatchView {
        header,
        bytes,
        payload_validated: true,
    };
    Ok((view, records))
}

/// One record of a Kafka batch, borrowed from the (decompressed) records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaRecord<'a> {
    pub attributes: i8,
    /// Relative to the batch's baseTimestamp.
    pub timestamp_delta_ms: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<KafkaHeader<'a>>,
}

/// One Kafka record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KafkaHeader<'a> {
    pub key: &'a str,
    pub value: Option<&'a [u8]>,
}

/// One record of a Kafka batch, borrowed and `Copy`: no allocation per record. Its
/// headers were checked when it was read and decode lazily from [`headers`](Self::headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KafkaRecordView<'a> {
    pub attributes: i8,
    /// Relative to the batch's baseTimestamp.
    pub timestamp_delta_ms: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The encoded headers, already checked.
    headers: &'a [u8],
    header_count: u32,
}

impl<'a> KafkaRecordView<'a> {
    /// The record's headers, in order.
    pub fn headers(&self) -> KafkaHeaders<'a> {
        KafkaHeaders {
            cursor: Cursor {
                bytes: self.headers,
            },
            remaining: self.header_count,
        }
    }

    /// The same record with its headers collected.
    pub fn to_record(&self) -> KafkaRecord<'a> {
        KafkaRecord {
            attributes: self.attributes,
            timestamp_delta_ms: self.timestamp_delta_ms,
            offset_delta: self.offset_delta,
            key: self.key,
            value: self.value,
            headers: self.headers().collect(),
        }
    }
}

/// The headers of a [`KafkaRecordView`].
#[derive(Clone, Debug)]
pub struct KafkaHeaders<'a> {
    cursor: Cursor<'a>,
    remaining: u32,
}

impl<'a> Iterator for KafkaHeaders<'a> {
    type Item = KafkaHeader<'a>;

    fn next(&mut self) -> Option<KafkaHeader<'a>> {
        if self.remaining == 0 {
            return None;
        }
        match self.cursor.header() {
            Ok(header) => {
                self.remaining -= 1;
                Some(header)
            }
            Err(e) => {
                debug_assert!(false, "headers checked when the record was read: {e}");
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for KafkaHeaders<'_> {}
impl core::iter::FusedIterator for KafkaHeaders<'_> {}

/// The parsed header and the records section of a Kafka batch, before decompression.
fn records_section(payload: &[u8]) -> Result<(KafkaBatchHeader, &[u8]), BatchError> {
    let kh = KafkaBatchHeader::parse(payload)?;
    let records = usize::try_from(kh.declared_len_bytes())
        .ok()
        .and_then(|end| payload.get(KAFKA_HEADER_BYTES..end))
        .ok_or(BatchError::KafkaLengthMismatch {
            declared_bytes: i64::from(kh.batch_length_bytes),
            actual_bytes: payload.len() - at::LENGTH_FROM,
        })?;
    if kh.record_count < 0 {
        return Err(BatchError::malformed(format!(
            "kafka recordCount {} is negative",
            kh.record_count
        )));
    }
    if let Compression::Unknown(code) = kh.strata_attributes().compression() {
        return Err(BatchError::UnknownCompression { code });
    }
    Ok((kh, records))
}

/// Decode the records of an uncompressed Kafka batch in place (`payload` = the Kafka
/// batch). Checks the header's magic and length, not its CRC; compressed batches give
/// [`BatchError::UnsupportedCompression`]: read those with [`decode_kafka_records`].
pub fn kafka_records(payload: &[u8]) -> Result<KafkaRecords<'_>, BatchError> {
    let (kh, records) = records_section(payload)?;
    match kh.strata_attributes().compression() {
        Compression::None => Ok(KafkaRecords::new(records, kh.record_count as u32)),
        compression => Err(BatchError::UnsupportedCompression { compression }),
    }
}

/// Decode the records of any Kafka batch (`payload` = the Kafka batch): borrowed in
/// place when uncompressed, decompressed into an owned buffer (at most
/// [`KAFKA_RECORDS_BYTES_MAX`] bytes) when compressed. Checks the header's magic and
/// length, not its CRC.
pub fn decode_kafka_records(payload: &[u8]) -> Result<KafkaBatchRecords<'_>, BatchError> {
    let (header, records) = records_section(payload)?;
    let records = match header.strata_attributes().compression() {
        Compression::None => Cow::Borrowed(records),
        compression => Cow::Owned(kafka_compression::decompress(
            compression,
            records,
            KAFKA_RECORDS_BYTES_MAX,
        )?),
    };
    Ok(KafkaBatchRecords { header, records })
}

/// A Kafka batch's header and its records section, decompressed if it was compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaBatchRecords<'a> {
    header: KafkaBatchHeader,
    records: Cow<'a, [u8]>,
}

impl<'a> KafkaBatchRecords<'a> {
    pub fn header(&self) -> &KafkaBatchHeader {
        &self.header
    }

    /// The uncompressed records section.
    pub fn records_bytes(&self) -> &[u8] {
        &self.records
    }

    /// True when the records were decompressed into an owned buffer; false when they
    /// borrow the batch bytes.
    pub fn is_decompressed(&self) -> bool {
        matches!(self.records, Cow::Owned(_))
    }

    /// The records, read in place from [`records_bytes`](Self::records_bytes).
    pub fn iter(&self) -> KafkaRecords<'_> {
        KafkaRecords::new(&self.records, self.header.record_count as u32)
    }

    /// Detach from the batch bytes (copies them only if they were borrowed).
    pub fn into_owned(self) -> KafkaBatchRecords<'static> {
        KafkaBatchRecords {
            header: self.header,
            records: Cow::Owned(self.records.into_owned()),
        }
    }
}

/// Iterator over a Kafka batch's records; after the first error it ends.
///
/// As an [`Iterator`] it yields [`KafkaRecord`]s (headers collected into a `Vec`);
/// [`next_view`](Self::next_view) yields allocation-free [`KafkaRecordView`]s instead.
#[derive(Clone, Debug)]
pub struct KafkaRecords<'a> {
    cursor: Cursor<'a>,
    record_count: u32,
    parsed: u32,
    failed: bool,
}

impl<'a> KafkaRecords<'a> {
    fn new(records: &'a [u8], record_count: u32) -> Self {
        KafkaRecords {
            cursor: Cursor { bytes: records },
            record_count,
            parsed: 0,
            failed: false,
        }
    }

    /// The next record as a borrowed view; `None` after the last record or an error.
    pub fn next_view(&mut self) -> Option<Result<KafkaRecordView<'a>, BatchError>> {
        if self.failed {
            return None;
        }
        let result = if self.parsed == self.record_count {
            if self.cursor.bytes.is_empty() {
                return None;
            }
            Err(BatchError::malformed(format!(
                "{} bytes after the last of {} kafka records",
                self.cursor.bytes.len(),
                self.record_count
            )))
        } else if self.cursor.bytes.is_empty() {
            Err(BatchError::RecordCountMismatch {
                header: u64::from(self.record_count),
                payload: u64::from(self.parsed),
            })
        } else {
            self.cursor.record()
        };
        match &result {
            Ok(_) => self.parsed += 1,
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

impl<'a> Iterator for KafkaRecords<'a> {
    type Item = Result<KafkaRecord<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_view()
            .map(|view| view.map(|view| view.to_record()))
    }
}

impl core::iter::FusedIterator for KafkaRecords<'_> {}

/// Reads Kafka's zigzag varints and length-prefixed fields.
#[derive(Clone, Debug)]
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], BatchError> {
        if len > self.bytes.len() {
            return Err(BatchError::malformed(format!(
                "kafka record field of {len} bytes runs past the record ({} left)",
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, BatchError> {
        Ok(self.take(1)?[0])
    }

    fn varlong(&mut self, len_bytes_max: u32) -> Result<i64, BatchError> {
        let mut raw: u64 = 0;
        for i in 0..len_bytes_max {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(BatchError::malformed(format!(
            "kafka varint longer than {len_bytes_max} bytes"
        )))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        let v = self.varlong(5)?;
        i32::try_from(v)
            .map_err(|_| BatchError::malformed(format!("kafka varint {v} overflows i32")))
    }

    /// A varint length (-1 = null) and that many bytes.
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            len if len < -1 => Err(BatchError::malformed(format!(
                "kafka field length {len} is negative"
            ))),
            len => self.take(len as usize).map(Some),
        }
    }

    fn header(&mut self) -> Result<KafkaHeader<'a>, BatchError> {
        let key = self
            .nullable_bytes()?
            .ok_or_else(|| BatchError::malformed("kafka header key is null"))?;
        let key = core::str::from_utf8(key)
            .map_err(|_| BatchError::malformed("kafka header key is not UTF-8"))?;
        let value = self.nullable_bytes()?;
        Ok(KafkaHeader { key, value })
    }

    fn record(&mut self) -> Result<KafkaRecordView<'a>, BatchError> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .map_err(|_| BatchError::malformed(format!("kafka record length {len} is negative")))?;
        let mut body = Cursor {
            bytes: self.take(len)?,
        };
        let attributes = body.byte()? as i8;
        let timestamp_delta_ms = body.varlong(10)?;
        let offset_delta = body.varint()?;
        let key = body.nullable_bytes()?;
        let value = body.nullable_bytes()?;
        let header_count = body.varint()?;
        let header_count = u32::try_from(header_count).map_err(|_| {
            BatchError::malformed(format!("kafka header count {header_count} is negative"))
        })?;
        let headers_from = body.bytes;
        for _ in 0..header_count {
            body.header()?;
        }
        let headers = &headers_from[..headers_from.len() - body.bytes.len()];
        if !body.bytes.is_empty() {
            return Err(BatchError::malformed(format!(
                "kafka record has {} bytes past its fields",
                body.bytes.len()
            )));
        }
        Ok(KafkaRecordView {
            attributes,
            timestamp_delta_ms,
            offset_delta,
            key,
            value,
            headers,
            header_count,
        })
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut zigzag = zigzag(v);
    while zigzag >= 0x80 {
        out.push(zigzag as u8 | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// Encoded length of [`put_varlong`]'s output.
fn varlong_len(v: i64) -> usize {
    let significant_bits = 64 - zigzag(v).leading_zeros() as usize;
    significant_bits.div_ceil(7).max(1)
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(bytes) => {
            put_varlong(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
    }
}

fn nullable_bytes_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varlong_len(-1),
        Some(bytes) => varlong_len(bytes.len() as i64) + bytes.len(),
    }
}

/// Append one record, length prefix included, in Kafka's record format. `headers` is
/// called twice: once to size the record, once to write it.
pub(crate) fn put_record<'h, I>(
    out: &mut Vec<u8>,
    timestamp_delta_ms: i64,
    offset_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl Fn() -> I,
) where
    I: ExactSizeIterator<Item = (&'h str, Option<&'h [u8]>)>,
{
    let body_len_bytes = 1 // record attributes: unused by Kafka
        + varlong_len(timestamp_delta_ms)
        + varlong_len(offset_delta)
        + nullable_bytes_len(key)
        + nullable_bytes_len(value)
        + varlong_len(headers().len() as i64)
        + headers()
            .map(|(key, value)| nullable_bytes_len(Some(key.as_bytes())) + nullable_bytes_len(value))
            .sum::<usize>();
    put_varlong(out, body_len_bytes as i64);
    let body_from = out.len();
    out.push(0);
    put_varlong(out, timestamp_delta_ms);
    put_varlong(out, offset_delta);
    put_nullable_bytes(out, key);
    put_nullable_bytes(out, value);
    put_varlong(out, headers().len() as i64);
    for (key, value) in headers() {
        put_nullable_bytes(out, Some(key.as_bytes()));
        put_nullable_bytes(out, value);
    }
    debug_assert_eq!(out.len() - body_from, body_len_bytes);
}

/// Write a Kafka header (CRC 0) at `out[from..]`, whose records already follow it, then
/// set batchLength and the CRC. Errs if the batch is too large to wrap.
pub(crate) fn seal_kafka_batch(
    mut header: KafkaBatchHeader,
    out: &mut [u8],
    from: usize,
) -> Result<(), BatchError> {
    let batch = &mut out[from..];
    debug_assert!(batch.len() >= KAFKA_HEADER_BYTES);
    if BATCH_HEADER_BYTES + batch.len() > BATCH_BYTES_MAX {
        return Err(BatchError::TooLarge {
            len_bytes: BATCH_HEADER_BYTES + batch.len(),
            max_bytes: BATCH_BYTES_MAX,
        });
    }
    header.batch_length_bytes = (batch.len() - at::LENGTH_FROM) as i32;
    header.crc = 0;
    header.encode(batch);
    let crc = crc32c::crc32c(&batch[at::CRC_FROM..]);
    batch[at::CRC].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Builds a Kafka RecordBatch v2, compressed or not, as a Kafka client would.
#[derive(Clone, Debug)]
pub struct KafkaBatchBuilder {
    records: Vec<u8>,
    record_count: u32,
    first_timestamp_ms: i64,
    max_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: Attributes,
}

impl Default for KafkaBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl KafkaBatchBuilder {
    pub fn new() -> Self {
        KafkaBatchBuilder {
            records: Vec::new(),
            record_count: 0,
            first_timestamp_ms: -1,
            max_timestamp_ms: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: Attributes::default(),
        }
    }

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

    /// Attribute bits, compression included (this replaces an earlier
    /// [`with_compression`](Self::with_compression)).
    pub fn with_attributes(mut self, attributes: Attributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// Compress the records with `compression` (gzip, snappy, lz4 or zstd).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.attributes = self.attributes.with_compression(compression);
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
        if self.record_count == 0 {
            self.first_timestamp_ms = timestamp_ms;
            self.max_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        put_record(
            &mut self.records,
            timestamp_ms.wrapping_sub(self.first_timestamp_ms),
            i64::from(self.record_count),
            key,
            value,
            || headers.iter().copied(),
        );
        self.record_count += 1;
    }

    pub fn len(&self) -> usize {
        self.record_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// The Kafka batch bytes: baseOffset 0, partitionLeaderEpoch -1, records
    /// compressed as the attributes say, CRC set.
    ///
    /// # Panics
    /// Where [`try_build`](Self::try_build) errs: no records, too large to wrap,
    /// undefined attribute bits, or a failed compression.
    pub fn build(self) -> Vec<u8> {
        match self.try_build() {
            Ok(batch) => batch,
            Err(e) => panic!("KafkaBatchBuilder::build: {e}"),
        }
    }

    /// [`build`](Self::build) without the panic. Errs if the batch would not fit in a
    /// strata batch once wrapped, or its records would decompress to more than
    /// [`KAFKA_RECORDS_BYTES_MAX`].
    pub fn try_build(self) -> Result<Vec<u8>, BatchError> {
        if self.record_count == 0 {
            return Err(BatchError::EmptyBatch);
        }
        if self.attributes.0 & !Attributes::KNOWN_BITS != 0 {
            return Err(BatchError::UnknownAttributes {
                bits: self.attributes.0 & !Attributes::KNOWN_BITS,
            });
        }
        let compression = self.attributes.compression();
        if compression != Compression::None && self.records.len() > KAFKA_RECORDS_BYTES_MAX {
            return Err(BatchError::TooLarge {
                len_bytes: self.records.len(),
                max_bytes: KAFKA_RECORDS_BYTES_MAX,
            });
        }
        let records = match compression {
            Compression::None => Cow::Borrowed(self.records.as_slice()),
            compression => Cow::Owned(kafka_compression::compress(compression, &self.records)?),
        };
        let header = KafkaBatchHeader {
            base_offset: 0,
            batch_length_bytes: 0,
            partition_leader_epoch: -1,
            magic: KAFKA_MAGIC,
            crc: 0,
            attributes: self.attributes.0 as i16,
            last_offset_delta: (self.record_count - 1) as i32,
            base_timestamp_ms: self.first_timestamp_ms,
            max_timestamp_ms: self.max_timestamp_ms,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.record_count as i32,
        };
        let mut out = Vec::with_capacity(KAFKA_HEADER_BYTES + records.len());
        out.resize(KAFKA_HEADER_BYTES, 0);
        out.extend_from_slice(&records);
        seal_kafka_batch(header, &mut out, 0)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            let mut cursor = Cursor { bytes: &out };
            assert_eq!(cursor.varlong(10), Ok(v));
            assert!(cursor.bytes.is_empty());
        }
        // Kafka's reference encodings: zigzag(-1) = 1, zigzag(150) = 300 = 0xac 0x02.
        let mut out = Vec::new();
        put_varlong(&mut out, 150);
        assert_eq!(out, [0xac, 0x02]);
        let mut cursor = Cursor { bytes: &[0xff; 6] };
        assert!(cursor.varint().is_err());
    }

    #[test]
    fn header_round_trips_big_endian() {
        let kh = KafkaBatchHeader {
            base_offset: 5,
            batch_length_bytes: 49,
            partition_leader_epoch: 3,
            magic: 2,
            crc: 0x0102_0304,
            attributes: 0x10,
            last_offset_delta: 0,
            base_timestamp_ms: 10,
            max_timestamp_ms: 11,
            producer_id: 12,
            producer_epoch: 13,
            base_sequence: 14,
            record_count: 1,
        };
        let mut out = [0u8; KAFKA_HEADER_BYTES];
        kh.encode(&mut out);
        assert_eq!(&out[17..21], &[1, 2, 3, 4]);
        assert_eq!(out[16], 2);
        assert_eq!(KafkaBatchHeader::parse(&out), Ok(kh));
    }
}
