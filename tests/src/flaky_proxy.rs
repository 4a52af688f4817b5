//! A TCP proxy that cuts connections: it forwards a client's bytes to the broker and
//! the broker's back, and every `cut_every`-th chunk coming back from the broker is
//! dropped with both sockets closed — the client sent a request, the broker handled
//! it, and the answer never arrives. That is a timeout as a client sees it, and it
//! retries. Bounded: at most `CONNECTIONS_MAX` connections are served.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Connections one proxy serves at most.
const CONNECTIONS_MAX: usize = 1_000;
const CHUNK_BYTES: usize = 64 * 1024;

pub struct FlakyProxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    cuts: Arc<AtomicU64>,
    /// 0 = forward everything from now on.
    cut_every: Arc<AtomicU64>,
}

impl FlakyProxy {
    /// Listens on a free 127.0.0.1 port; connections wait for `set_upstream`.
    pub fn start(cut_every: u64) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let upstream: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let cuts = Arc::new(AtomicU64::new(0));
        let chunks = Arc::new(AtomicU64::new(0));
        let cut_every = Arc::new(AtomicU64::new(cut_every));
        let (up, c, every) = (
            Arc::clone(&upstream),
            Arc::clone(&cuts),
            Arc::clone(&cut_every),
        );
        thread::spawn(move || {
            for client in listener.incoming().take(CONNECTIONS_MAX).flatten() {
                let Some(to) = *up.lock().expect("upstream lock") else {
                    continue;
                };
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                let (c2, chunks2, every2) =
                    (Arc::clone(&c), Arc::clone(&chunks), Arc::clone(&every));
                let (client2, server2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                thread::spawn(move || pump(client2, server2, None));
                thread::spawn(move || pump(server, client, Some((every2, chunks2, c2))));
            }
        });
        FlakyProxy {
            addr,
            upstream,
            cuts,
            cut_every,
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_upstream(&self, to: &str) {
        *self.upstream.lock().expect("upstream lock") = Some(to.parse().expect("upstream address"));
    }

    /// Stops dropping: everything is forwarded from now on.
    pub fn stop_cutting(&self) {
        self.cut_every.store(0, Ordering::Relaxed);
    }

    /// Responses dropped so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

/// Copies `from` to `to` until either closes; with `cut`, every n-th chunk is
/// dropped and both sockets are closed instead.
/// Drop every n-th chunk (n = 0: none), the chunk counter, the cut counter.
type Cut = (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>);

fn pump(mut from: TcpStream, mut to: TcpStream, cut: Option<Cut>) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((every, chunks, cuts)) = &cut {
            let every = every.load(Ordering::Relaxed);
            if every > 0 && (chunks.fetch_add(1, Ordering::Relaxed) + 1) % every == 0 {
                cuts.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
