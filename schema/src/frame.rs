//! Native protocol framing. Every request and response is one frame:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | `length`: bytes after this field |
//! | 4..6 | `api` (see `ApiKey`) |
//! | 6..8 | `version` |
//! | 8..12 | `correlation_id`, echoed by the response |
//! | 12..16 | `body_len`: bytes of the flatbuffer body |
//! | 16.. | body, then the tail (record batch bytes for Produce and Fetch) |
//!
//! All little endian. A frame longer than the limit loses the connection's framing;
//! everything else is answered with an error code.

/// Bytes before the body.
pub const FRAME_HEADER_BYTES: usize = 16;
/// Largest frame accepted by default (a 64 MiB batch plus room for its request).
pub const FRAME_BYTES_MAX: usize = 65 * 1024 * 1024;

/// Why bytes are not a frame.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len_bytes} bytes exceeds the maximum of {max_bytes}")]
    TooLarge { len_bytes: usize, max_bytes: usize },
    #[error("frame length {length} is shorter than its {FRAME_HEADER_BYTES}-byte header")]
    TooShort { length: usize },
    #[error("body of {body_bytes} bytes does not fit in a frame of {frame_bytes} bytes")]
    BodyTooLong {
        body_bytes: usize,
        frame_bytes: usize,
    },
}

/// The fixed part of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes after the length field.
    pub length: u32,
    pub api: u16,
    pub version: u16,
    pub correlation_id: u32,
    pub body_len: u32,
}

impl FrameHeader {
    /// Total frame bytes, the length field included.
    pub fn frame_bytes(&self) -> usize {
        4 + self.length as usize
    }

    /// Bytes of the tail.
    pub fn tail_bytes(&self) -> usize {
        self.frame_bytes() - FRAME_HEADER_BYTES - self.body_len as usize
    }

    /// Parses the header at the start of `buf`: `Ok(None)` until 16 bytes are there.
    /// Checks the length against `max_bytes` and the body against the length.
    pub fn decode(buf: &[u8], max_bytes: usize) -> Result<Option<FrameHeader>, FrameError> {
        let Some(raw) = buf.get(..FRAME_HEADER_BYTES) else {
            return Ok(None);
        };
        let u32_at = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([raw[i], raw[i + 1]]);
        let h = FrameHeader {
            length: u32_at(0),
            api: u16_at(4),
            version: u16_at(6),
            correlation_id: u32_at(8),
            body_len: u32_at(12),
        };
        let frame = h.length as usize + 4;
        if frame > max_bytes {
            return Err(FrameError::TooLarge {
                len_bytes: frame,
                max_bytes,
            });
        }
        if frame < FRAME_HEADER_BYTES {
            return Err(FrameError::TooShort {
                length: h.length as usize,
            });
        }
        if h.body_len as usize > frame - FRAME_HEADER_BYTES {
            return Err(FrameError::BodyTooLong {
                body_bytes: h.body_len as usize,
                frame_bytes: frame,
            });
        }
        Ok(Some(h))
    }

    /// Writes the 16 header bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.api.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.correlation_id.to_le_bytes());
        out.extend_from_slice(&self.body_len.to_le_bytes());
    }
}

/// A whole frame borrowed from a buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    pub body: &'a [u8],
    pub tail: &'a [u8],
}

/// The first whole frame in `buf` and the bytes it spans, or `Ok(None)` if more bytes
/// are needed.
pub fn split_frame(buf: &[u8], max_bytes: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(header) = FrameHeader::decode(buf, max_bytes)? else {
        return Ok(None);
    };
    let n = header.frame_bytes();
    let Some(frame) = buf.get(..n) else {
        return Ok(None);
    };
    let body_end = FRAME_HEADER_BYTES + header.body_len as usize;
    Ok(Some((
        Frame {
            header,
            body: &frame[FRAME_HEADER_BYTES..body_end],
            tail: &frame[body_end..],
        },
        n,
    )))
}

/// Header bytes of a frame carrying `body` and `tail_bytes` of tail; write the body
/// and the tail after them.
pub fn frame_header(
    api: u16,
    version: u16,
    correlation_id: u32,
    body_bytes: usize,
    tail_bytes: usize,
) -> FrameHeader {
    let length = FRAME_HEADER_BYTES - 4 + body_bytes + tail_bytes;
    FrameHeader {
        length: length as u32,
        api,
        version,
        correlation_id,
        body_len: body_bytes as u32,
    }
}

/// One contiguous frame: header, body, then each tail part.
pub fn encode_frame(
    api: u16,
    version: u16,
    correlation_id: u32,
    body: &[u8],
    tail: &[&[u8]],
) -> Vec<u8> {
    let tail_bytes: usize = tail.iter().map(|t| t.len()).sum();
    let h = frame_header(api, version, correlation_id, body.len(), tail_bytes);
    let mut out = Vec::with_capacity(h.frame_bytes());
    h.encode(&mut out);
    out.extend_from_slice(body);
    for t in tail {
        out.extend_from_slice(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_partial() {
        let f = encode_frame(10, 0, 77, b"body", &[b"ta", b"il"]);
        assert_eq!(
            split_frame(&f[..10], FRAME_BYTES_MAX).unwrap().map(|x| x.1),
            None
        );
        assert!(split_frame(&f[..f.len() - 1], FRAME_BYTES_MAX)
            .unwrap()
            .is_none());
        let (frame, n) = split_frame(&f, FRAME_BYTES_MAX).unwrap().unwrap();
        assert_eq!(n, f.len());
        assert_eq!(frame.header.api, 10);
        assert_eq!(frame.header.correlation_id, 77);
        assert_eq!(frame.body, b"body");
        assert_eq!(frame.tail, b"tail");
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut f = encode_frame(1, 0, 1, b"x", &[]);
        assert!(matches!(
            split_frame(&f, 8),
            Err(FrameError::TooLarge { .. })
        ));
        f[12] = 200; // body_len beyond the frame
        assert!(matches!(
            split_frame(&f, FRAME_BYTES_MAX),
            Err(FrameError::BodyTooLong { .. })
        ));
        let tiny = [2u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            split_frame(&tiny, FRAME_BYTES_MAX),
            Err(FrameError::TooShort { .. })
        ));
    }
}
