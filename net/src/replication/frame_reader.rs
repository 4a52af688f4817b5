//! Reading whole replication frames off a socket into `Bytes`, so the batches of a
//! frame can be handed on as slices of the buffer they arrived in.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncReadExt};
use strata_schema::{FrameError, FrameHeader, FRAME_BYTES_MAX, FRAME_HEADER_BYTES};

/// Bytes asked of the socket at once when no longer frame is pending (small frames
/// arrive many per read).
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes asked of the socket at once at most (bounds the zero-fill per read).
pub const READ_BYTES_MAX: usize = 1024 * 1024;

/// Why no frame came.
#[derive(thiserror::Error, Debug)]
pub enum ReadFrameError {
    /// The peer closed the connection between frames.
    #[error("the peer closed the connection")]
    Closed,
    #[error("read: {0}")]
    Io(#[from] io::Error),
    /// The framing is lost: nothing more can be read from this connection.
    #[error("{0}")]
    Framing(#[from] FrameError),
}

/// Reads frames from one connection. The buffer holds at most one frame
/// ([`FRAME_BYTES_MAX`]) plus one read ([`READ_BYTES_MAX`]).
pub struct FrameReader {
    buf: BytesMut,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        }
    }
}

impl FrameReader {
    /// The next whole frame, header included.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Bytes, ReadFrameError> {
        loop {
            let want = match FrameHeader::decode(&self.buf, FRAME_BYTES_MAX)? {
                Some(h) if self.buf.len() >= h.frame_bytes() => {
                    return Ok(self.buf.split_to(h.frame_bytes()).freeze());
                }
                // The length is checked against FRAME_BYTES_MAX above.
                Some(h) => h.frame_bytes() - self.buf.len(),
                None => FRAME_HEADER_BYTES - self.buf.len(),
            };
            let start = self.buf.len();
            // One allocation for the whole frame; zero-fill only what one read may fill.
            self.buf.reserve(want);
            self.buf
                .resize(start + want.clamp(READ_CHUNK_BYTES, READ_BYTES_MAX), 0);
            let n = match reader.read(&mut self.buf[start..]).await {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(e.into());
                }
            };
            self.buf.truncate(start + n);
            if n == 0 {
                return Err(if start == 0 {
                    ReadFrameError::Closed
                } else {
                    ReadFrameError::Io(io::ErrorKind::UnexpectedEof.into())
                });
            }
        }
    }
}
