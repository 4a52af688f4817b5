//! Kafka's batch compression codecs, applied to the records section of a RecordBatch
//! v2 (the bytes after its 61-byte header), as Kafka clients apply them.
//!
//! | code | codec  | format on the wire |
//! | ---- | ------ | ------------------ |
//! | 1    | gzip   | gzip members (RFC 1952) |
//! | 2    | snappy | xerial snappy-java framing (Java client), or one raw snappy block (librdkafka may send these); we write xerial, which both read |
//! | 3    | lz4    | LZ4 *frame* format; we write independent 64 KiB blocks, no checksums, as the Java client does |
//! | 4    | zstd   | zstd frames |
//!
//! Decompression is bounded: output beyond the caller's limit (normally
//! [`KAFKA_RECORDS_BYTES_MAX`]) is [`BatchError::DecompressedTooLarge`], never an
//! allocation of whatever size a hostile batch claims. No input makes these panic.

use std::io::{Read, Write};

use crate::attributes::Compression;
use crate::error::BatchError;
use crate::header::BATCH_BYTES_MAX;

/// Most bytes a compressed Kafka batch's records may decompress to: what one
/// uncompressed batch may hold, so a decompression bomb is an error, not an OOM.
pub const KAFKA_RECORDS_BYTES_MAX: usize = BATCH_BYTES_MAX;

/// snappy-java's stream header: magic, then version and compatible version (i32 BE).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
const XERIAL_VERSION: i32 = 1;
const XERIAL_COMPATIBLE_VERSION: i32 = 1;
/// Uncompressed bytes per xerial block: snappy-java's default block size.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// Kafka's default gzip level (java.util.zip's default).
const GZIP_LEVEL: u32 = 6;
/// Kafka's default zstd level.
const ZSTD_LEVEL: i32 = 3;
/// The largest zstd window a frame may ask for: 2^26 = 64 MiB, no larger than the
/// output may be anyway, so a frame cannot make the decoder reserve more.
const ZSTD_WINDOW_LOG_MAX: u32 = 26;
const _: () = assert!(1 << ZSTD_WINDOW_LOG_MAX >= KAFKA_RECORDS_BYTES_MAX);
/// Bytes read from a streaming decoder at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

fn decompress_error(compression: Compression, reason: impl ToString) -> BatchError {
    BatchError::Decompress {
        compression,
        reason: reason.to_string(),
    }
}

fn compress_error(compression: Compression, reason: impl ToString) -> BatchError {
    BatchError::Compress {
        compression,
        reason: reason.to_string(),
    }
}

/// Decompress a Kafka batch's records section compressed with `compression`, into at
/// most `len_bytes_max` bytes (pass [`KAFKA_RECORDS_BYTES_MAX`] unless you have a
/// tighter bound). `Compression::None` returns a copy.
pub fn decompress(
    compression: Compression,
    compressed: &[u8],
    len_bytes_max: usize,
) -> Result<Vec<u8>, BatchError> {
    // Compressed records usually shrink 2-10x; start there and grow as needed.
    let capacity_hint_bytes = compressed.len().saturating_mul(4);
    match compression {
        Compression::None => {
            let mut out = Vec::new();
            grow(&mut out, compressed.len(), len_bytes_max, compression)?;
            out.extend_from_slice(compressed);
            Ok(out)
        }
        Compression::Gzip => read_bounded(
            compression,
            flate2::read::MultiGzDecoder::new(compressed),
            len_bytes_max,
            capacity_hint_bytes,
        ),
        Compression::Snappy => snappy_decompress(compressed, len_bytes_max),
        Compression::Lz4 => read_bounded(
            compression,
            lz4_flex::frame::FrameDecoder::new(compressed),
            len_bytes_max,
            capacity_hint_bytes,
        ),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(compressed)
                .map_err(|e| decompress_error(compression, e))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| decompress_error(compression, e))?;
            read_bounded(compression, decoder, len_bytes_max, capacity_hint_bytes)
        }
        Compression::Unknown(code) => Err(BatchError::UnknownCompression { code }),
    }
}

/// Compress a Kafka batch's records section as a Kafka client would (see the module
/// table for each format). `Compression::None` returns a copy.
pub fn compress(compression: Compression, records: &[u8]) -> Result<Vec<u8>, BatchError> {
    match compression {
        Compression::None => Ok(records.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(records.len() / 2),
                flate2::Compression::new(GZIP_LEVEL),
            );
            encoder
                .write_all(records)
                .map_err(|e| compress_error(compression, e))?;
            encoder.finish().map_err(|e| compress_error(compression, e))
        }
        Compression::Snappy => snappy_compress_xerial(records),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(records.len() / 2),
            );
            encoder
                .write_all(records)
                .map_err(|e| compress_error(compression, e))?;
            encoder.finish().map_err(|e| compress_error(compression, e))
        }
        Compression::Zstd => {
            zstd::bulk::compress(records, ZSTD_LEVEL).map_err(|e| compress_error(compression, e))
        }
        Compression::Unknown(code) => Err(BatchError::UnknownCompression { code }),
    }
}

/// Make room for `additional_bytes` more in `out` without letting it pass
/// `len_bytes_max`: capacity doubles, but never beyond the bound.
fn grow(
    out: &mut Vec<u8>,
    additional_bytes: usize,
    len_bytes_max: usize,
    compression: Compression,
) -> Result<(), BatchError> {
    let len_bytes = out
        .len()
        .checked_add(additional_bytes)
        .filter(|&len| len <= len_bytes_max)
        .ok_or(BatchError::DecompressedTooLarge {
            compression,
            max_bytes: len_bytes_max,
        })?;
    if len_bytes > out.capacity() {
        let capacity_bytes = out
            .capacity()
            .saturating_mul(2)
            .max(len_bytes)
            .min(len_bytes_max);
        out.reserve_exact(capacity_bytes - out.len());
    }
    Ok(())
}

/// Drain a streaming decoder into a buffer of at most `len_bytes_max` bytes.
fn read_bounded(
    compression: Compression,
    mut reader: impl Read,
    len_bytes_max: usize,
    capacity_hint_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(capacity_hint_bytes.min(len_bytes_max));
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let read_bytes = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(decompress_error(compression, e)),
        };
        grow(&mut out, read_bytes, len_bytes_max, compression)?;
        out.extend_from_slice(&chunk[..read_bytes]);
    }
}

fn snappy_decompress(compressed: &[u8], len_bytes_max: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    let Some(mut blocks) = compressed.strip_prefix(&XERIAL_MAGIC) else {
        // Not xerial-framed: one raw snappy block (librdkafka's own framing-free form).
        append_snappy_block(compressed, &mut out, len_bytes_max)?;
        return Ok(out);
    };
    // Versions: snappy-java ignores them on read, and so do we.
    let header_rest_bytes = XERIAL_HEADER_BYTES - XERIAL_MAGIC.len();
    blocks = blocks.get(header_rest_bytes..).ok_or_else(|| {
        decompress_error(
            Compression::Snappy,
            format!(
                "xerial header is {} bytes, expected {XERIAL_HEADER_BYTES}",
                compressed.len()
            ),
        )
    })?;
    while !blocks.is_empty() {
        let (len, rest) = blocks.split_first_chunk::<4>().ok_or_else(|| {
            decompress_error(
                Compression::Snappy,
                format!(
                    "xerial block length cut short ({} bytes left)",
                    blocks.len()
                ),
            )
        })?;
        let len_bytes = u32::from_be_bytes(*len) as usize;
        let block = rest.get(..len_bytes).ok_or_else(|| {
            decompress_error(
                Compression::Snappy,
                format!(
                    "xerial block of {len_bytes} bytes runs past the end ({} bytes left)",
                    rest.len()
                ),
            )
        })?;
        append_snappy_block(block, &mut out, len_bytes_max)?;
        blocks = &rest[len_bytes..];
    }
    Ok(out)
}

/// Decompress one raw snappy block onto the end of `out`.
fn append_snappy_block(
    block: &[u8],
    out: &mut Vec<u8>,
    len_bytes_max: usize,
) -> Result<(), BatchError> {
    let decoded_bytes =
        snap::raw::decompress_len(block).map_err(|e| decompress_error(Compression::Snappy, e))?;
    grow(out, decoded_bytes, len_bytes_max, Compression::Snappy)?;
    let at = out.len();
    out.resize(at + decoded_bytes, 0);
    let written_bytes = snap::raw::Decoder::new()
        .decompress(block, &mut out[at..])
        .map_err(|e| decompress_error(Compression::Snappy, e))?;
    out.truncate(at + written_bytes);
    Ok(())
}

fn snappy_compress_xerial(records: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + records.len() / 2);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_COMPATIBLE_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for block in records.chunks(XERIAL_BLOCK_BYTES) {
        let at = out.len();
        out.resize(at + 4 + snap::raw::max_compress_len(block.len()), 0);
        let written_bytes = encoder
            .compress(block, &mut out[at + 4..])
            .map_err(|e| compress_error(Compression::Snappy, e))?;
        out[at..at + 4].copy_from_slice(&(written_bytes as u32).to_be_bytes());
        out.truncate(at + 4 + written_bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Compressible but not trivially so, and longer than one snappy/lz4 block.
    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for compression in CODECS {
            for len in [0, 1, 100, 200_000] {
                let records = sample(len);
                let compressed = compress(compression, &records).expect("compresses");
                let back = decompress(compression, &compressed, KAFKA_RECORDS_BYTES_MAX)
                    .expect("decompresses");
                assert_eq!(back, records, "{compression:?} at {len} bytes");
            }
        }
        assert_eq!(
            decompress(Compression::None, b"abc", 3),
            Ok(b"abc".to_vec())
        );
        assert_eq!(
            compress(Compression::Unknown(6), b"x"),
            Err(BatchError::UnknownCompression { code: 6 })
        );
    }

    #[test]
    fn output_over_the_bound_is_an_error_not_an_allocation() {
        let zeros = vec![0u8; 1 << 20];
        for compression in CODECS {
            let compressed = compress(compression, &zeros).expect("compresses");
            assert_eq!(
                decompress(compression, &compressed, zeros.len() - 1),
                Err(BatchError::DecompressedTooLarge {
                    compression,
                    max_bytes: zeros.len() - 1
                }),
                "{compression:?}"
            );
            // Exactly at the bound is fine.
            assert_eq!(
                decompress(compression, &compressed, zeros.len()).map(|v| v.len()),
                Ok(zeros.len())
            );
        }
        assert!(matches!(
            decompress(Compression::None, b"abc", 2),
            Err(BatchError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn snappy_writes_xerial_and_reads_raw_blocks_too() {
        let records = sample(100_000);
        let framed = compress(Compression::Snappy, &records).expect("compresses");
        assert_eq!(&framed[..8], &XERIAL_MAGIC);
        assert_eq!(&framed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // 100 000 bytes in 32 KiB blocks: four length-prefixed blocks.
        let mut blocks = 0;
        let mut at = XERIAL_HEADER_BYTES;
        while at < framed.len() {
            let len = u32::from_be_bytes(framed[at..at + 4].try_into().expect("4 bytes"));
            at += 4 + len as usize;
            blocks += 1;
        }
        assert_eq!((blocks, at), (4, framed.len()));

        let raw = snap::raw::Encoder::new()
            .compress_vec(&records)
            .expect("raw snappy");
        assert_eq!(
            decompress(Compression::Snappy, &raw, KAFKA_RECORDS_BYTES_MAX),
            Ok(records)
        );
    }

    #[test]
    fn lz4_writes_the_frame_format_kafka_reads() {
        let framed = compress(Compression::Lz4, &sample(1000)).expect("compresses");
        // Frame magic, then FLG = version 01 + block independence, BD = 64 KiB blocks.
        assert_eq!(&framed[..4], &[0x04, 0x22, 0x4d, 0x18]);
        assert_eq!(framed[4], 0b0110_0000);
        assert_eq!(framed[5], 0b0100_0000);
    }

    #[test]
    fn garbage_and_truncation_are_typed_errors() {
        let records = sample(70_000);
        for compression in CODECS {
            let compressed = compress(compression, &records).expect("compresses");
            for cut in [1, compressed.len() / 2, compressed.len() - 1] {
                let result = decompress(compression, &compressed[..cut], KAFKA_RECORDS_BYTES_MAX);
                match result {
                    Err(BatchError::Decompress { .. }) => {}
                    // lz4_flex ends a frame cut at a block boundary (or in its end
                    // mark) without an error, with the blocks it had: a prefix. Short
                    // records are then reported by the record decoder.
                    Ok(prefix) if compression == Compression::Lz4 => {
                        assert!(records.starts_with(&prefix), "lz4 cut at {cut}");
                    }
                    other => panic!("{compression:?} cut at {cut}: {:?}", other.map(|v| v.len())),
                }
            }
            let garbage = vec![0xa5u8; 64];
            assert!(
                matches!(
                    decompress(compression, &garbage, KAFKA_RECORDS_BYTES_MAX),
                    Err(BatchError::Decompress { .. })
                ),
                "{compression:?}"
            );
        }
        // A xerial block whose length runs past the end.
        let mut framed = compress(Compression::Snappy, b"hello").expect("compresses");
        framed[XERIAL_HEADER_BYTES..XERIAL_HEADER_BYTES + 4]
            .copy_from_slice(&u32::MAX.to_be_bytes());
        let e = decompress(Compression::Snappy, &framed, KAFKA_RECORDS_BYTES_MAX).unwrap_err();
        assert!(e.to_string().contains("runs past the end"), "{e}");
    }
}
