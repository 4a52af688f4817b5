//! One shard's live connections: the byte budget they share for queued requests
//! and responses, and the sweep that closes a connection when its client went away,
//! stayed idle, or the broker stops.
//!
//! A connection's reader notices a closed peer only when it reads, and it does not
//! read while its client is not reading its responses (back-pressure) or while a
//! reply is still being prepared; its writer notices only when it writes. So every
//! `SWEEP_INTERVAL_MS` the sweep asks the kernel, with one non-blocking `poll(2)`
//! over the sockets of the connections that are not parked in a read, whether their
//! peer is gone (an RST or a full close: POLLERR/POLLHUP) or has stopped sending
//! (a FIN: POLLRDHUP), and closes them (the latter after a short grace to finish
//! the replies already on their way). Closing a connection drops everything it
//! holds: its socket, its queued responses, and its requests in flight (a long-poll
//! fetch stops waiting; an append already handed to a log completes there).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;

use crate::config::ConnectionConfig;

/// Bytes of requests and responses that one shard's connections may hold queued
/// at once (read but not yet answered, answered but not yet written), all
/// connections of the shard together. A connection over its share stops reading.
pub const SHARD_QUEUED_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// How often the sweep looks at the shard's connections.
pub const SWEEP_INTERVAL_MS: u64 = 250;
/// How long a connection whose client stopped sending (FIN) may still finish and
/// write the replies in flight before it is closed.
pub const PEER_CLOSED_GRACE_MS: u64 = 500;

/// Why a connection was closed from outside its own loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client reset or fully closed the connection.
    PeerGone,
    /// The client stopped sending and its grace to collect replies ran out.
    PeerClosed,
    /// No bytes moved for `connections.max.idle.ms`.
    Idle,
    /// The broker is stopping and the drain deadline passed.
    Shutdown,
}

/// What the connection loop and the sweep share about one connection.
pub struct ConnState {
    fd: RawFd,
    last_active: Cell<Instant>,
    /// Requests read and not yet written back.
    in_flight: Cell<usize>,
    /// The reader waits for bytes of a new request (it notices a close itself).
    parked_in_read: Cell<bool>,
    /// Closed at this instant, whatever the connection is doing.
    close_at: Cell<Option<(Instant, CloseReason)>>,
    closed: Cell<Option<CloseReason>>,
    waker: RefCell<Option<Waker>>,
}

impl ConnState {
    fn new(fd: RawFd) -> Self {
        ConnState {
            fd,
            last_active: Cell::new(Instant::now()),
            in_flight: Cell::new(0),
            parked_in_read: Cell::new(false),
            close_at: Cell::new(None),
            closed: Cell::new(None),
            waker: RefCell::new(None),
        }
    }

    /// Bytes moved on the socket: the connection is not idle.
    pub fn touch(&self) {
        self.last_active.set(Instant::now());
    }

    pub fn request_queued(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
    }

    pub fn request_done(&self) {
        debug_assert!(self.in_flight.get() > 0);
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
    }

    pub fn set_parked_in_read(&self, parked: bool) {
        self.parked_in_read.set(parked);
    }

    /// Closes the connection at `at` unless it is closed earlier.
    pub fn close_by(&self, at: Instant, why: CloseReason) {
        match self.close_at.get() {
            Some((earlier, _)) if earlier <= at => {}
            _ => self.close_at.set(Some((at, why))),
        }
    }

    /// Closes the connection now: its loop's `closed()` resolves.
    pub fn close_now(&self, why: CloseReason) {
        if self.closed.get().is_none() {
            self.closed.set(Some(why));
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Resolves once the connection is to be closed, with why.
    pub async fn closed(&self) -> CloseReason {
        futures_lite::future::poll_fn(|cx| match self.closed.get() {
            Some(why) => Poll::Ready(why),
            None => {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Whether the sweep should ask the kernel about this socket.
    fn worth_polling(&self) -> bool {
        self.in_flight.get() > 0 || !self.parked_in_read.get()
    }
}

/// The shard's connections and their shared byte budget.
pub struct ConnectionTable {
    /// `None` = connections are never closed for being idle.
    idle: Option<Duration>,
    conns: RefCell<HashMap<u64, Rc<ConnState>>>,
    next_id: Cell<u64>,
    /// `SHARD_QUEUED_BYTES_MAX` permits, held by queued requests and responses.
    pub budget: Rc<Semaphore>,
}

/// A connection's entry in the table, removed on drop.
pub struct Registered {
    table: Rc<ConnectionTable>,
    id: u64,
    pub state: Rc<ConnState>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.table.conns.borrow_mut().remove(&self.id);
    }
}

impl ConnectionTable {
    pub fn new(config: &ConnectionConfig) -> Rc<Self> {
        Rc::new(ConnectionTable {
            idle: u64::try_from(config.max_idle_ms)
                .ok()
                .map(Duration::from_millis),
            conns: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            budget: Rc::new(Semaphore::new(SHARD_QUEUED_BYTES_MAX)),
        })
    }

    /// Adds the connection on socket `fd`.
    pub fn register(self: &Rc<Self>, fd: RawFd) -> Registered {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let state = Rc::new(ConnState::new(fd));
        self.conns.borrow_mut().insert(id, Rc::clone(&state));
        Registered {
            table: Rc::clone(self),
            id,
            state,
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Closes every connection at `at` at the latest (the shutdown's deadline).
    pub fn close_all_by(&self, at: Instant) {
        for c in self.conns.borrow().values() {
            c.close_by(at, CloseReason::Shutdown);
        }
    }

    /// Sweeps every `SWEEP_INTERVAL_MS`, until dropped.
    pub async fn sweep_forever(self: Rc<Self>) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut polled: Vec<Rc<ConnState>> = Vec::new();
        loop {
            glommio::timer::sleep(Duration::from_millis(SWEEP_INTERVAL_MS)).await;
            self.sweep_once(Instant::now(), &mut fds, &mut polled);
        }
    }

    /// One sweep at `now`; `fds` and `polled` are reused buffers (at most one entry
    /// per connection of the shard).
    fn sweep_once(
        &self,
        now: Instant,
        fds: &mut Vec<libc::pollfd>,
        polled: &mut Vec<Rc<ConnState>>,
    ) {
        fds.clear();
        polled.clear();
        for c in self.conns.borrow().values() {
            if c.closed.get().is_some() {
                continue;
            }
            if let Some((at, why)) = c.close_at.get() {
                if now >= at {
                    c.close_now(why);
                    continue;
                }
            }
            if let Some(idle) = self.idle {
                if now.saturating_duration_since(c.last_active.get()) >= idle {
                    c.close_now(CloseReason::Idle);
                    continue;
                }
            }
            if c.worth_polling() {
                fds.push(libc::pollfd {
                    fd: c.fd,
                    events: libc::POLLRDHUP,
                    revents: 0,
                });
                polled.push(Rc::clone(c));
            }
        }
        if fds.is_empty() {
            return;
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd entries; a timeout of
        // 0 makes poll(2) return at once, so the shard never blocks here. Every fd is
        // a socket its connection still owns (it unregisters before closing it).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if ready <= 0 {
            return;
        }
        for (p, c) in fds.iter().zip(polled.iter()) {
            if p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                c.close_now(CloseReason::PeerGone);
            } else if p.revents & libc::POLLRDHUP != 0 {
                c.close_by(
                    now + Duration::from_millis(PEER_CLOSED_GRACE_MS),
                    CloseReason::PeerClosed,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(idle_ms: i64) -> Rc<ConnectionTable> {
        ConnectionTable::new(&ConnectionConfig {
            max_idle_ms: idle_ms,
            ..ConnectionConfig::default()
        })
    }

    fn sweep(t: &ConnectionTable, now: Instant) {
        t.sweep_once(now, &mut Vec::new(), &mut Vec::new());
    }

    #[test]
    fn idle_connections_close_after_the_idle_time_and_activity_resets_it() {
        let t = table(1_000);
        let a = t.register(-1);
        let b = t.register(-1);
        a.state.set_parked_in_read(true);
        b.state.set_parked_in_read(true);
        let start = Instant::now();
        sweep(&t, start + Duration::from_millis(500));
        assert_eq!(a.state.closed.get(), None);
        // b moves bytes 600 ms in.
        b.state.last_active.set(start + Duration::from_millis(600));
        sweep(&t, start + Duration::from_millis(1_001));
        assert_eq!(a.state.closed.get(), Some(CloseReason::Idle));
        assert_eq!(b.state.closed.get(), None, "b moved bytes since");
        drop(a);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn minus_one_never_closes_idle_connections_but_deadlines_still_apply() {
        let t = table(-1);
        let a = t.register(-1);
        a.state.set_parked_in_read(true);
        let start = Instant::now();
        sweep(&t, start + Duration::from_secs(100_000));
        assert_eq!(a.state.closed.get(), None);
        t.close_all_by(start + Duration::from_secs(1));
        a.state
            .close_by(start + Duration::from_secs(5), CloseReason::PeerClosed);
        sweep(&t, start + Duration::from_millis(999));
        assert_eq!(a.state.closed.get(), None);
        sweep(&t, start + Duration::from_secs(2));
        assert_eq!(
            a.state.closed.get(),
            Some(CloseReason::Shutdown),
            "the earlier deadline wins"
        );
    }

    #[test]
    fn a_reset_peer_is_noticed_while_the_connection_is_busy() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let t = table(-1);
        let c = t.register(server.as_raw_fd());
        c.state.request_queued();
        sweep(&t, Instant::now());
        assert_eq!(c.state.closed.get(), None, "a live peer");
        // Unread data on close makes the client's kernel send an RST.
        server_write(&server);
        std::thread::sleep(Duration::from_millis(50));
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.state.closed.get().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            sweep(&t, Instant::now());
        }
        assert_eq!(c.state.closed.get(), Some(CloseReason::PeerGone));
    }

    #[test]
    fn a_peer_that_stops_sending_gets_a_grace_then_is_closed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let t = table(-1);
        let c = {
            use std::os::fd::AsRawFd;
            t.register(server.as_raw_fd())
        };
        c.state.request_queued();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(5);
        while c.state.close_at.get().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            sweep(&t, Instant::now());
        }
        assert_eq!(c.state.closed.get(), None, "not at once");
        let (at, why) = c.state.close_at.get().expect("a FIN sets a deadline");
        assert_eq!(why, CloseReason::PeerClosed);
        sweep(&t, at);
        assert_eq!(c.state.closed.get(), Some(CloseReason::PeerClosed));
    }

    fn server_write(server: &std::net::TcpStream) {
        use std::io::Write;
        let mut s = server;
        s.write_all(b"reply").unwrap();
    }
}
