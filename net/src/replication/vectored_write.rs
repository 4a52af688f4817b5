//! Writing a frame's head and its batches in as few syscalls as the socket allows,
//! straight from the batches' own buffers.
//!
//! glommio's `TcpStream` has no vectored write, so the fast path is `sendmsg` with
//! `MSG_DONTWAIT` on its descriptor (what glommio's own `poll_write` does for one
//! buffer). When the socket buffer is full, one plain `write` through glommio waits for
//! the socket to drain and sends some bytes; then the fast path resumes.

use std::io;
use std::os::fd::AsRawFd;

use bytes::Bytes;
use futures_lite::io::AsyncWriteExt;
use glommio::net::TcpStream;

/// Buffers handed to one `sendmsg` at most (Linux's `UIO_MAXIOV` is 1024).
pub const IOVECS_PER_WRITE_MAX: usize = 512;

/// Writes `head` and then every part of `tail`, without copying them.
pub async fn write_all_vectored(
    stream: &mut TcpStream,
    head: &[u8],
    tail: &[Bytes],
) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + tail.len());
    parts.extend(
        std::iter::once(head)
            .chain(tail.iter().map(|b| &b[..]))
            .filter(|p| !p.is_empty()),
    );
    let mut index = 0;
    let mut offset = 0;
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(IOVECS_PER_WRITE_MAX.min(parts.len()));
    while index < parts.len() {
        iovecs.clear();
        for (i, p) in parts[index..].iter().take(IOVECS_PER_WRITE_MAX).enumerate() {
            let p = if i == 0 { &p[offset..] } else { p };
            iovecs.push(libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            });
        }
        let written = match send_iovecs(stream.as_raw_fd(), &iovecs) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Let glommio wait for the socket to drain; it writes what fits.
                stream.write(&parts[index][offset..]).await?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the peer stopped accepting bytes",
            ));
        }
        let mut left = written;
        while left > 0 && index < parts.len() {
            let rest = parts[index].len() - offset;
            if left >= rest {
                left -= rest;
                index += 1;
                offset = 0;
            } else {
                offset += left;
                left = 0;
            }
        }
    }
    Ok(())
}

/// One non-blocking `sendmsg` of `iovecs`.
fn send_iovecs(fd: i32, iovecs: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iovecs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iovecs.len() as _;
    // SAFETY: every iovec points into a slice borrowed for the duration of the call;
    // MSG_DONTWAIT keeps the shard thread from blocking; MSG_NOSIGNAL turns a closed
    // peer into EPIPE instead of SIGPIPE.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
