//! The fixed 80-byte header every stored batch starts with.
//!
//! The header is a hand-encoded fixed layout rather than an rkyv archive because the
//! broker stamps base offset, leader epoch and log-append time in place, at known byte
//! positions, without parsing or re-serialising anything; those stamped fields come
//! first so that stamping never touches a CRC-covered byte.

use crate::attributes::{Attributes, Compression};
use crate::error::BatchError;

/// Size of [`BatchHeader`] on disk and on the wire.
pub const BATCH_HEADER_BYTES: usize = 80;
/// Hard upper bound on one batch, header included.
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// `"TS"` read as a little-endian u16: on disk the bytes are `0x54 0x53`.
pub const BATCH_MAGIC: u16 = 0x5354;
/// The only header version this build reads and writes.
pub const BATCH_VERSION: u8 = 1;
/// Smallest Kafka payload: the Kafka RecordBatch v2 header.
pub(crate) const KAFKA_PAYLOAD_BYTES_MIN: usize = 61;

/// Byte ranges of the header fields; all integers little endian.
///
/// | bytes  | field              | covered by CRC |
/// | ------ | ------------------ | -------------- |
/// | 0..8   | base_offset i64    | no (stamped)   |
/// | 8..12  | payload_len u32    | no (framing)   |
/// | 12..16 | leader_epoch i32   | no (stamped)   |
/// | 16..24 | log_append_time i64| no (stamped)   |
/// | 24..28 | crc32c u32         | no (is the CRC)|
/// | 28..30 | magic u16          | yes            |
/// | 30     | version u8         | yes            |
/// | 31     | payload_format u8  | yes            |
/// | 32..34 | attributes u16     | yes            |
/// | 34..36 | producer_epoch i16 | yes            |
/// | 36..40 | last_offset_delta u32 | yes         |
/// | 40..44 | record_count u32   | yes            |
/// | 44..48 | base_sequence i32  | yes            |
/// | 48..56 | first_timestamp_ms i64 | yes        |
/// | 56..64 | max_timestamp_ms i64 | yes          |
/// | 64..72 | producer_id i64    | yes            |
/// | 72..80 | reserved, zero     | yes            |
///
/// The CRC32C covers bytes `CRC_COVERED` followed by the payload (see
/// [`compute_batch_crc`](crate::compute_batch_crc)).
pub mod layout {
    use core::ops::Range;

    pub const BASE_OFFSET: Range<usize> = 0..8;
    pub const PAYLOAD_LEN: Range<usize> = 8..12;
    pub const LEADER_EPOCH: Range<usize> = 12..16;
    pub const LOG_APPEND_TIME: Range<usize> = 16..24;
    pub const CRC: Range<usize> = 24..28;
    pub const MAGIC: Range<usize> = 28..30;
    pub const VERSION: usize = 30;
    pub const PAYLOAD_FORMAT: usize = 31;
    pub const ATTRIBUTES: Range<usize> = 32..34;
    pub const PRODUCER_EPOCH: Range<usize> = 34..36;
    pub const LAST_OFFSET_DELTA: Range<usize> = 36..40;
    pub const RECORD_COUNT: Range<usize> = 40..44;
    pub const BASE_SEQUENCE: Range<usize> = 44..48;
    pub const FIRST_TIMESTAMP: Range<usize> = 48..56;
    pub const MAX_TIMESTAMP: Range<usize> = 56..64;
    pub const PRODUCER_ID: Range<usize> = 64..72;
    pub const RESERVED: Range<usize> = 72..80;
    /// Header bytes the CRC covers.
    pub const CRC_COVERED: Range<usize> = 28..80;
}

/// What the bytes after the header are.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// An rkyv archive of `Vec<NativeRecord>`, read in place.
    Native = 1,
    /// A Kafka RecordBatch v2, verbatim as the client sent it.
    Kafka = 2,
}

impl PayloadFormat {
    pub fn from_u8(code: u8) -> Option<PayloadFormat> {
        match code {
            1 => Some(PayloadFormat::Native),
            2 => Some(PayloadFormat::Kafka),
            _ => None,
        }
    }
}

/// The decoded batch header; see [`layout`] for the byte layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record; stamped by the broker, outside the CRC.
    pub base_offset: i64,
    /// Bytes after the header; framing, outside the CRC.
    pub payload_len_bytes: u32,
    /// Stamped by the broker, outside the CRC; -1 = none.
    pub leader_epoch: i32,
    /// Stamped by the broker, outside the CRC; -1 = none.
    pub log_append_time_ms: i64,
    pub crc32c: u32,
    pub version: u8,
    pub payload_format: PayloadFormat,
    pub attributes: Attributes,
    /// -1 = none.
    pub producer_epoch: i16,
    pub last_offset_delta: u32,
    pub record_count: u32,
    /// -1 = none.
    pub base_sequence: i32,
    pub first_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    /// -1 = none.
    pub producer_id: i64,
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

impl BatchHeader {
    /// Decode and sanity-check the header at the start of `bytes` (at least 80 bytes).
    ///
    /// Checks magic, version, payload format, attribute bits, reserved bytes, the size
    /// bound and the record count against `last_offset_delta`. Does NOT check the CRC
    /// or that the payload is present; see [`check_batch`](crate::check_batch).
    pub fn decode(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        use layout::*;
        let h = bytes
            .get(..BATCH_HEADER_BYTES)
            .ok_or(BatchError::TooShort {
                need_bytes: BATCH_HEADER_BYTES,
                have_bytes: bytes.len(),
            })?;
        let magic = u16::from_le_bytes(array(&h[MAGIC]));
        if magic != BATCH_MAGIC {
            return Err(BatchError::BadMagic { found: magic });
        }
        if h[VERSION] != BATCH_VERSION {
            return Err(BatchError::UnsupportedVersion { found: h[VERSION] });
        }
        let payload_format =
            PayloadFormat::from_u8(h[PAYLOAD_FORMAT]).ok_or(BatchError::UnknownPayloadFormat {
                found: h[PAYLOAD_FORMAT],
            })?;
        if h[RESERVED].iter().any(|&b| b != 0) {
            return Err(BatchError::NonZeroReserved);
        }
        let attributes = Attributes(u16::from_le_bytes(array(&h[ATTRIBUTES])));
        if attributes.0 & !Attributes::KNOWN_BITS != 0 {
            return Err(BatchError::UnknownAttributes {
                bits: attributes.0 & !Attributes::KNOWN_BITS,
            });
        }
        if let Compression::Unknown(code) = attributes.compression() {
            return Err(BatchError::UnknownCompression { code });
        }
        let header = BatchHeader {
            base_offset: i64::from_le_bytes(array(&h[BASE_OFFSET])),
            payload_len_bytes: u32::from_le_bytes(array(&h[PAYLOAD_LEN])),
            leader_epoch: i32::from_le_bytes(array(&h[LEADER_EPOCH])),
            log_append_time_ms: i64::from_le_bytes(array(&h[LOG_APPEND_TIME])),
            crc32c: u32::from_le_bytes(array(&h[CRC])),
            version: h[VERSION],
            payload_format,
            attributes,
            producer_epoch: i16::from_le_bytes(array(&h[PRODUCER_EPOCH])),
            last_offset_delta: u32::from_le_bytes(array(&h[LAST_OFFSET_DELTA])),
            record_count: u32::from_le_bytes(array(&h[RECORD_COUNT])),
            base_sequence: i32::from_le_bytes(array(&h[BASE_SEQUENCE])),
            first_timestamp_ms: i64::from_le_bytes(array(&h[FIRST_TIMESTAMP])),
            max_timestamp_ms: i64::from_le_bytes(array(&h[MAX_TIMESTAMP])),
            producer_id: i64::from_le_bytes(array(&h[PRODUCER_ID])),
        };
        if header.batch_len_bytes() > BATCH_BYTES_MAX {
            return Err(BatchError::TooLarge {
                len_bytes: header.batch_len_bytes(),
                max_bytes: BATCH_BYTES_MAX,
            });
        }
        if header.record_count == 0 {
            return Err(BatchError::EmptyBatch);
        }
        if u64::from(header.record_count) > u64::from(header.last_offset_delta) + 1 {
            return Err(BatchError::RecordCountExceedsOffsets {
                record_count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        if payload_format == PayloadFormat::Kafka
            && (header.payload_len_bytes as usize) < KAFKA_PAYLOAD_BYTES_MIN
        {
            return Err(BatchError::malformed(format!(
                "kafka payload is {} bytes, shorter than the {KAFKA_PAYLOAD_BYTES_MIN}-byte RecordBatch v2 header",
                header.payload_len_bytes
            )));
        }
        Ok(header)
    }

    /// Write exactly 80 bytes at `out[..80]`, magic and zeroed reserved bytes included.
    ///
    /// # Panics
    /// If `out.len() < BATCH_HEADER_BYTES`.
    pub fn encode(&self, out: &mut [u8]) {
        use layout::*;
        let h = &mut out[..BATCH_HEADER_BYTES];
        h[BASE_OFFSET].copy_from_slice(&self.base_offset.to_le_bytes());
        h[PAYLOAD_LEN].copy_from_slice(&self.payload_len_bytes.to_le_bytes());
        h[LEADER_EPOCH].copy_from_slice(&self.leader_epoch.to_le_bytes());
        h[LOG_APPEND_TIME].copy_from_slice(&self.log_append_time_ms.to_le_bytes());
        h[CRC].copy_from_slice(&self.crc32c.to_le_bytes());
        h[MAGIC].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
        h[VERSION] = self.version;
        h[PAYLOAD_FORMAT] = self.payload_format as u8;
        h[ATTRIBUTES].copy_from_slice(&self.attributes.0.to_le_bytes());
        h[PRODUCER_EPOCH].copy_from_slice(&self.producer_epoch.to_le_bytes());
        h[LAST_OFFSET_DELTA].copy_from_slice(&self.last_offset_delta.to_le_bytes());
        h[RECORD_COUNT].copy_from_slice(&self.record_count.to_le_bytes());
        h[BASE_SEQUENCE].copy_from_slice(&self.base_sequence.to_le_bytes());
        h[FIRST_TIMESTAMP].copy_from_slice(&self.first_timestamp_ms.to_le_bytes());
        h[MAX_TIMESTAMP].copy_from_slice(&self.max_timestamp_ms.to_le_bytes());
        h[PRODUCER_ID].copy_from_slice(&self.producer_id.to_le_bytes());
        h[RESERVED].fill(0);
    }

    /// Whole batch length: header plus payload.
    pub fn batch_len_bytes(&self) -> usize {
        BATCH_HEADER_BYTES.saturating_add(self.payload_len_bytes as usize)
    }

    /// Offset of the last offset the batch spans (`base_offset + last_offset_delta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// True when the records occupy every offset the batch spans, as in every batch a
    /// producer sends; only compaction leaves gaps.
    pub fn is_dense(&self) -> bool {
        u64::from(self.record_count) == u64::from(self.last_offset_delta) + 1
    }
}

/// For framing: the whole batch length from the first 12 bytes of a batch, or `None`
/// if `prefix` is shorter than that. Does not validate anything: bound the result by
/// [`BATCH_BYTES_MAX`] before allocating for it.
pub fn peek_batch_len(prefix: &[u8]) -> Option<usize> {
    let len = prefix.get(layout::PAYLOAD_LEN)?;
    Some(BATCH_HEADER_BYTES + u32::from_le_bytes(array(len)) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> BatchHeader {
        BatchHeader {
            base_offset: 0x0102_0304_0506_0708,
            payload_len_bytes: 100,
            leader_epoch: 7,
            log_append_time_ms: -1,
            crc32c: 0xdead_beef,
            version: BATCH_VERSION,
            payload_format: PayloadFormat::Native,
            attributes: Attributes(0b10_0011),
            producer_epoch: -1,
            last_offset_delta: 9,
            record_count: 10,
            base_sequence: 42,
            first_timestamp_ms: 1_700_000_000_000,
            max_timestamp_ms: 1_700_000_000_500,
            producer_id: 99,
        }
    }

    #[test]
    fn encode_decode_round_trip_and_layout() {
        let h = sample();
        let mut buf = [0xffu8; 90];
        h.encode(&mut buf);
        assert_eq!(buf[80..], [0xff; 10], "encode writes exactly 80 bytes");
        assert_eq!(BatchHeader::decode(&buf), Ok(h));
        assert_eq!(&buf[28..30], &[0x54, 0x53]);
        assert_eq!(&buf[0..8], &h.base_offset.to_le_bytes());
        assert_eq!(buf[31], 1);
        assert_eq!(&buf[72..80], &[0; 8]);
        assert_eq!(peek_batch_len(&buf[..12]), Some(180));
        assert_eq!(peek_batch_len(&buf[..11]), None);
        assert_eq!(h.batch_len_bytes(), 180);
        assert_eq!(h.last_offset(), h.base_offset + 9);
    }

    #[test]
    fn decode_rejects_each_bad_field() {
        let mut buf = [0u8; 80];
        sample().encode(&mut buf);
        let with = |at: usize, byte: u8| {
            let mut b = buf;
            b[at] = byte;
            BatchHeader::decode(&b)
        };
        assert_eq!(
            BatchHeader::decode(&buf[..79]),
            Err(BatchError::TooShort {
                need_bytes: 80,
                have_bytes: 79
            })
        );
        assert!(matches!(with(28, 0), Err(BatchError::BadMagic { .. })));
        assert_eq!(
            with(30, 2),
            Err(BatchError::UnsupportedVersion { found: 2 })
        );
        assert_eq!(
            with(31, 3),
            Err(BatchError::UnknownPayloadFormat { found: 3 })
        );
        assert_eq!(with(79, 1), Err(BatchError::NonZeroReserved));
        assert_eq!(
            with(33, 1),
            Err(BatchError::UnknownAttributes { bits: 0x100 })
        );
        assert_eq!(with(32, 5), Err(BatchError::UnknownCompression { code: 5 }));
        assert!(matches!(with(11, 4), Err(BatchError::TooLarge { .. })));
        assert_eq!(with(40, 0), Err(BatchError::EmptyBatch));
        assert!(matches!(
            with(40, 11),
            Err(BatchError::RecordCountExceedsOffsets { .. })
        ));
        // A Kafka payload needs at least the 61-byte Kafka header.
        let mut b = buf;
        b[31] = 2;
        b[8..12].copy_from_slice(&60u32.to_le_bytes());
        assert!(matches!(
            BatchHeader::decode(&b),
            Err(BatchError::MalformedPayload { .. })
        ));
    }

    #[test]
    fn last_offset_never_overflows() {
        let mut h = sample();
        h.base_offset = i64::MAX;
        let _ = h.last_offset();
        h.payload_len_bytes = u32::MAX;
        assert!(h.batch_len_bytes() > BATCH_BYTES_MAX);
    }
}
