//! TCP options that make a silently dead broker-to-broker connection fail in seconds
//! rather than after minutes of retransmission (a peer whose link is cut sends no
//! reset): writes give up after [`TCP_USER_TIMEOUT_MS`] unacknowledged, and idle
//! connections are probed by keepalive.

use std::io;
use std::os::fd::RawFd;

/// How long written bytes may stay unacknowledged before the connection fails.
pub const TCP_USER_TIMEOUT_MS: u32 = 10_000;
/// Idle seconds before the first keepalive probe.
pub const KEEPALIVE_IDLE_SECS: i32 = 5;
/// Seconds between probes.
pub const KEEPALIVE_INTERVAL_SECS: i32 = 1;
/// Unanswered probes before the connection fails.
pub const KEEPALIVE_PROBES: i32 = 5;

fn set(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` outlives the call and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Applies the timeouts above to a connected socket.
pub fn set_dead_peer_timeouts(fd: RawFd) -> io::Result<()> {
    set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        TCP_USER_TIMEOUT_MS as i32,
    )?;
    set(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPIDLE,
        KEEPALIVE_IDLE_SECS,
    )?;
    set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPINTVL,
        KEEPALIVE_INTERVAL_SECS,
    )?;
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_PROBES)
}
