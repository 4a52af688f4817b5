//! Loopback TCP throughput: one client thread streams fixed-size writes to a listener
//! on 127.0.0.1 for a bounded time. The ceiling any broker on this machine can reach
//! over loopback, so reports can say "x % of the loopback limit".

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Bytes per client write.
pub const LOOPBACK_WRITE_BYTES: usize = 64 * 1024;

/// One loopback measurement.
#[derive(Clone, Copy, Debug)]
pub struct LoopbackResult {
    /// Bytes the receiver read.
    pub bytes: u64,
    /// From the first byte read to end of stream.
    pub elapsed: Duration,
}

impl LoopbackResult {
    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        crate::report::mb_per_s(self.bytes, self.elapsed.as_secs_f64())
    }
}

/// Streams `LOOPBACK_WRITE_BYTES` writes over loopback TCP for `duration`.
pub fn measure(duration: Duration) -> anyhow::Result<LoopbackResult> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a loopback listener")?;
    let addr = listener.local_addr()?;
    let client = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut s = TcpStream::connect(addr).context("connect over loopback")?;
        s.set_nodelay(true)?;
        let buf = vec![0x5au8; LOOPBACK_WRITE_BYTES];
        let started = Instant::now();
        while started.elapsed() < duration {
            s.write_all(&buf).context("loopback write")?;
        }
        s.shutdown(Shutdown::Write)?;
        Ok(())
    });
    let (mut conn, _) = listener.accept().context("accept over loopback")?;
    let mut buf = vec![0u8; LOOPBACK_WRITE_BYTES];
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    loop {
        let n = conn.read(&mut buf).context("loopback read")?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        bytes += n as u64;
    }
    let elapsed = first.map_or(Duration::ZERO, |t| t.elapsed());
    client
        .join()
        .map_err(|_| anyhow::anyhow!("loopback client thread panicked"))??;
    Ok(LoopbackResult { bytes, elapsed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_moves_bytes() {
        let r = measure(Duration::from_millis(50)).expect("loopback");
        assert!(r.bytes >= LOOPBACK_WRITE_BYTES as u64);
        assert_eq!(r.bytes % LOOPBACK_WRITE_BYTES as u64, 0);
    }
}
