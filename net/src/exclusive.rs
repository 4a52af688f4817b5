//! Keeps one broker per data directory and per listen port.
//!
//! Every shard binds the listen port with SO_REUSEPORT, which would also let a second
//! strata process of the same user join the port and take a share of the connections
//! (other programs' sockets lack SO_REUSEPORT, so binding next to them fails anyway).
//! So before the shards bind, the broker holds an exclusive `flock` on
//! `<data_dir>/.lock` and on a per-port lock file in the temp dir. The locks live as
//! long as the returned guard; the kernel drops them when the process dies, so a crash
//! never leaves a stale lock.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::config::BrokerError;

/// Held for the broker's lifetime.
pub struct ExclusiveGuard {
    _data_dir_lock: File,
    _port_locks: Vec<File>,
}

fn lock(path: &Path) -> std::io::Result<Option<File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: flock on a valid fd owned by `file`; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(Some(file))
    } else {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(err)
        }
    }
}

/// Takes the data directory and the listen ports for this broker, or says who has
/// them.
pub fn claim(data_dir: &Path, listens: &[SocketAddr]) -> Result<ExclusiveGuard, BrokerError> {
    let dir_lock_path = data_dir.join(".lock");
    let data_dir_lock = lock(&dir_lock_path)
        .map_err(|e| BrokerError::DataDir(format!("cannot lock {}: {e}", dir_lock_path.display())))?
        .ok_or_else(|| {
            BrokerError::DataDir(format!(
                "{} is in use by another strata broker; stop it or choose another --data-dir",
                data_dir.display()
            ))
        })?;
    let mut port_locks = Vec::with_capacity(listens.len());
    for &listen in listens {
        let port_lock_path = std::env::temp_dir().join(format!(
            "strata-listen-{}-{}.lock",
            listen.ip(),
            listen.port()
        ));
        let in_use = |reason: String| BrokerError::Bind {
            addr: listen,
            reason,
        };
        port_locks.push(
            lock(&port_lock_path)
                .map_err(|e| in_use(format!("cannot lock {}: {e}", port_lock_path.display())))?
                .ok_or_else(|| in_use("address in use by another strata broker".into()))?,
        );
    }
    Ok(ExclusiveGuard {
        _data_dir_lock: data_dir_lock,
        _port_locks: port_locks,
    })
}
