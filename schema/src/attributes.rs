//! Batch attribute bits, laid out as Kafka's so a Kafka batch's low bits copy across.

use crate::error::BatchError;

/// Batch attribute bits (same meaning and positions as Kafka RecordBatch v2 bits 0-5).
///
/// | bits | meaning |
/// | ---- | ------- |
/// | 0-2  | compression: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd |
/// | 3    | timestamp type: 0 CreateTime, 1 LogAppendTime |
/// | 4    | transactional |
/// | 5    | control batch |
///
/// Bits 6-15 are undefined and rejected by [`BatchHeader::decode`](crate::BatchHeader::decode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Attributes(pub u16);

/// Per-batch compression codec, numbered as Kafka numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    /// Codes 5-7: not a codec. Decoded headers never carry these.
    Unknown(u8),
}

/// Which clock a batch's timestamps come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the batch.
    LogAppendTime,
}

impl Compression {
    /// The 3-bit code stored in the attributes.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
            Compression::Unknown(code) => code & 0b111,
        }
    }

    fn from_code(code: u8) -> Compression {
        match code {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => Compression::Unknown(other),
        }
    }
}

impl Attributes {
    pub const COMPRESSION_MASK: u16 = 0b111;
    pub const LOG_APPEND_TIME: u16 = 1 << 3;
    pub const TRANSACTIONAL: u16 = 1 << 4;
    pub const CONTROL: u16 = 1 << 5;
    /// Every defined bit; the rest must be zero.
    pub const KNOWN_BITS: u16 = 0b11_1111;

    pub fn compression(self) -> Compression {
        Compression::from_code((self.0 & Self::COMPRESSION_MASK) as u8)
    }

    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    pub fn with_compression(self, compression: Compression) -> Self {
        Attributes((self.0 & !Self::COMPRESSION_MASK) | u16::from(compression.code()))
    }

    pub fn with_timestamp_type(self, timestamp_type: TimestampType) -> Self {
        self.with_bit(
            Self::LOG_APPEND_TIME,
            timestamp_type == TimestampType::LogAppendTime,
        )
    }

    pub fn with_transactional(self, transactional: bool) -> Self {
        self.with_bit(Self::TRANSACTIONAL, transactional)
    }

    pub fn with_control(self, control: bool) -> Self {
        self.with_bit(Self::CONTROL, control)
    }

    /// Builders write uncompressed batches with defined bits only.
    pub(crate) fn check_buildable(self) -> Result<(), BatchError> {
        if self.0 & !Self::KNOWN_BITS != 0 {
            return Err(BatchError::UnknownAttributes {
                bits: self.0 & !Self::KNOWN_BITS,
            });
        }
        match self.compression() {
            Compression::None => Ok(()),
            compression => Err(BatchError::UnsupportedCompression { compression }),
        }
    }

    fn with_bit(self, bit: u16, on: bool) -> Self {
        if on {
            Attributes(self.0 | bit)
        } else {
            Attributes(self.0 & !bit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_and_clear_each_bit_independently() {
        let a = Attributes::default()
            .with_compression(Compression::Zstd)
            .with_timestamp_type(TimestampType::LogAppendTime)
            .with_transactional(true)
            .with_control(true);
        assert_eq!(a.0, 4 | 8 | 16 | 32);
        assert_eq!(a.compression(), Compression::Zstd);
        assert_eq!(a.timestamp_type(), TimestampType::LogAppendTime);
        assert!(a.is_transactional() && a.is_control());

        let b = a
            .with_compression(Compression::Gzip)
            .with_timestamp_type(TimestampType::CreateTime)
            .with_transactional(false);
        assert_eq!(b.compression(), Compression::Gzip);
        assert_eq!(b.timestamp_type(), TimestampType::CreateTime);
        assert!(!b.is_transactional() && b.is_control());
    }

    #[test]
    fn undefined_codes_read_as_unknown() {
        assert_eq!(Attributes(7).compression(), Compression::Unknown(7));
        assert_eq!(Compression::Unknown(5).code(), 5);
    }
}
