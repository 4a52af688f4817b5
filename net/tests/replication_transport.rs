//! The replication transport over loopback: two (or three) transports on 127.0.0.1 in
//! one glommio executor exchange messages with their batches, make calls, survive a
//! peer restart, and bound their queues. Every wait polls with a deadline.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_net::replication::{
    encode_hello, encode_messages, encode_reply, CallError, GroupId, GroupMessage, Inbound,
    LocalBoxFuture, SendError, Transport, TransportConfig, MESSAGES_PER_FRAME_MAX,
    PEER_HEARTBEAT_MS,
};
use strata_raft::{Append, AppendResult, Entry, EntryKind, Message, MessageBody, NodeId};
use strata_schema::{frame_header, ReplicationApi};

const DEADLINE: Duration = Duration::from_secs(60);

fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(f)
        .expect("start a glommio executor")
        .join()
        .expect("the test's executor");
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Records what arrives; answers calls by echoing, failing on "fail", never on "slow".
#[derive(Default)]
struct Collector {
    received: RefCell<Vec<(NodeId, GroupMessage)>>,
    frames: Cell<usize>,
    frame_messages_max: Cell<usize>,
    calls: Cell<usize>,
}

impl Inbound for Collector {
    fn messages(&self, from: NodeId, messages: Vec<GroupMessage>) {
        self.frames.set(self.frames.get() + 1);
        self.frame_messages_max
            .set(self.frame_messages_max.get().max(messages.len()));
        self.received
            .borrow_mut()
            .extend(messages.into_iter().map(|m| (from, m)));
    }

    fn call(&self, from: NodeId, payload: Vec<u8>) -> LocalBoxFuture<Result<Vec<u8>, String>> {
        self.calls.set(self.calls.get() + 1);
        Box::pin(async move {
            match payload.as_slice() {
                b"fail" => Err(format!("refused by a call from {from}")),
                b"slow" => {
                    glommio::timer::sleep(Duration::from_secs(30)).await;
                    Ok(Vec::new())
                }
                p => Ok([b"echo:".as_slice(), p].concat()),
            }
        })
    }
}

fn start(node_id: NodeId, addr: SocketAddr) -> (Transport, Rc<Collector>) {
    start_with(TransportConfig::new(node_id, addr))
}

fn start_with(config: TransportConfig) -> (Transport, Rc<Collector>) {
    let c = Rc::new(Collector::default());
    let t = Transport::start(config, Rc::clone(&c) as Rc<dyn Inbound>).expect("transport starts");
    (t, c)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

fn group(p: u32) -> GroupId {
    GroupId::Partition {
        topic_id: [7; 16],
        partition: p,
    }
}

/// A heartbeat, or an append with `batches` batches whose bytes name `i`.
fn numbered(i: u64, from: NodeId, to: NodeId, batches: usize) -> GroupMessage {
    if batches == 0 {
        return GroupMessage::new(
            group(i as u32 % 50),
            Message {
                from,
                to,
                term: i,
                body: MessageBody::AppendResponse(AppendResult::Accepted {
                    match_end_offset: i,
                }),
            },
        );
    }
    let mut entries = Vec::new();
    let mut bytes = Vec::new();
    for b in 0..batches as u64 {
        entries.push(Entry {
            start_offset: i * 100 + b,
            end_offset: i * 100 + b + 1,
            term: 3,
            kind: EntryKind::Data,
        });
        let len = 80 + (i as usize * 37 + b as usize * 11) % 2000;
        bytes.push(Bytes::from(
            (0..len)
                .map(|k| (k as u64 ^ i ^ (b << 5)) as u8)
                .collect::<Vec<u8>>(),
        ));
    }
    GroupMessage {
        group: group(i as u32 % 50),
        message: Message {
            from,
            to,
            term: i,
            body: MessageBody::Append(Append {
                prev_end_offset: i * 100,
                prev_term: 3,
                commit_offset: i,
                send_end_offset: i * 100 + batches as u64,
                entries,
                log_start_offset: i,
            }),
        },
        batches: bytes,
    }
}

#[test]
fn messages_arrive_intact_and_coalesced() {
    run(|| async {
        let (a, _ca) = start(1, any_port());
        let (b, cb) = start(2, any_port());
        a.set_peer(2, b.local_addr());
        b.set_peer(1, a.local_addr());
        wait_for("a connected to b", || a.is_connected(2)).await;
        const N: u64 = 3000;
        let mut sent = Vec::new();
        for i in 0..N {
            let m = numbered(i, 1, 2, (i % 4) as usize);
            sent.push(m.clone());
            a.send(2, m).expect("queued");
            // Bursts of 100 between yields, as a shard's Ready loop would produce.
            if i % 100 == 99 {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        }
        wait_for("3000 messages at b", || {
            cb.received.borrow().len() >= N as usize
        })
        .await;
        let got: Vec<GroupMessage> = cb
            .received
            .borrow()
            .iter()
            .map(|(_, m)| m.clone())
            .collect();
        assert!(cb.received.borrow().iter().all(|(from, _)| *from == 1));
        assert_eq!(got.len(), sent.len());
        for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
            assert_eq!(g, s, "message {i} differs");
        }
        let frames = cb.frames.get();
        let ac = a.counters();
        let bc = b.counters();
        eprintln!(
            "{N} messages in {frames} frames; a sent {} frames / {} bytes; b received {} frames / {} bytes",
            ac.frames_sent, ac.bytes_sent, bc.frames_received, bc.bytes_received
        );
        assert!(
            frames < N as usize,
            "messages were not coalesced: {frames} frames"
        );
        assert_eq!(ac.messages_sent, N);
        assert_eq!(bc.messages_received, N);
        assert_eq!(ac.messages_dropped, 0);
        // The other direction works on b's own connection.
        b.send(1, numbered(1, 2, 1, 2)).unwrap();
        wait_for("b's message at a", || _ca.received.borrow().len() == 1).await;
        a.stop().await;
        b.stop().await;
        assert_eq!(a.send(2, numbered(0, 1, 2, 0)), Err(SendError::Stopped));
    });
}

#[test]
fn calls_are_answered_and_time_out() {
    run(|| async {
        let (a, _ca) = start(1, any_port());
        let (b, cb) = start(2, any_port());
        a.set_peer(2, b.local_addr());
        b.set_peer(1, a.local_addr());
        let r = a.call(2, b"ping".to_vec(), 30_000).await;
        assert_eq!(r, Ok(b"echo:ping".to_vec()));
        let r = a.call(2, b"fail".to_vec(), 30_000).await;
        assert_eq!(
            r,
            Err(CallError::Remote {
                peer: 2,
                message: "refused by a call from 1".into()
            })
        );
        let r = a.call(2, b"slow".to_vec(), 300).await;
        assert_eq!(
            r,
            Err(CallError::Timeout {
                peer: 2,
                timeout_ms: 300
            })
        );
        assert_eq!(a.counters().calls_timed_out, 1);
        // Many calls at once, all answered, each with its own reply.
        let calls: Vec<_> = (0..200u32)
            .map(|i| {
                let a = a.clone();
                glommio::spawn_local(async move {
                    (i, a.call(2, i.to_le_bytes().to_vec(), 30_000).await)
                })
            })
            .collect();
        for c in calls {
            let (i, r) = c.await;
            assert_eq!(r, Ok([b"echo:".as_slice(), &i.to_le_bytes()].concat()));
        }
        assert_eq!(cb.calls.get(), 203);
        assert_eq!(
            a.call(9, b"x".to_vec(), 1000).await,
            Err(CallError::UnknownPeer { peer: 9 })
        );
        // Nothing listens at broker 3's address: unreachable, not a 60 s timeout.
        a.set_peer(3, free_addr());
        let r = a.call(3, b"ping".to_vec(), 60_000).await;
        assert_eq!(r, Err(CallError::Unreachable { peer: 3 }));
        let r = a.call(3, b"ping".to_vec(), 60_000).await;
        assert_eq!(r, Err(CallError::Unreachable { peer: 3 }));
        // The late answer to the timed-out call is dropped without harm.
        a.stop().await;
        b.stop().await;
    });
}

#[test]
fn a_restarted_peer_is_reconnected_and_delivery_resumes() {
    run(|| async {
        let (a, _ca) = start(1, any_port());
        let b_addr = free_addr();
        let (b, cb) = start(2, b_addr);
        a.set_peer(2, b_addr);
        for i in 0..10 {
            a.send(2, numbered(i, 1, 2, 1)).unwrap();
        }
        wait_for("first messages", || cb.received.borrow().len() == 10).await;
        b.stop().await;
        drop(b);
        // a notices when its next write fails or its dial is refused; keep sending.
        let mut i = 10;
        wait_for("a to see b down", || {
            let _ = a.send(2, numbered(i, 1, 2, 0));
            i += 1;
            !a.is_connected(2)
        })
        .await;
        let (b2, cb2) = start(2, b_addr);
        wait_for("a reconnected", || a.is_connected(2)).await;
        a.send(2, numbered(999_999, 1, 2, 3)).unwrap();
        wait_for("delivery after restart", || {
            cb2.received
                .borrow()
                .iter()
                .any(|(_, m)| m.message.term == 999_999)
        })
        .await;
        let last = cb2.received.borrow().last().cloned().map(|(_, m)| m);
        assert_eq!(last, Some(numbered(999_999, 1, 2, 3)));
        let c = a.counters();
        eprintln!("after restart: {c:?}");
        assert!(c.reconnects >= 1, "{c:?}");
        a.stop().await;
        b2.stop().await;
    });
}

#[test]
fn a_full_queue_drops_the_oldest() {
    run(|| async {
        let b_addr = free_addr();
        let mut config = TransportConfig::new(1, any_port());
        config.peer_queue_messages_max = 100;
        let (a, _ca) = start_with(config);
        // b is not up yet: everything queues.
        a.set_peer(2, b_addr);
        for i in 0..1000 {
            a.send(2, numbered(i, 1, 2, (i % 2) as usize)).unwrap();
        }
        assert_eq!(a.counters().messages_dropped, 900);
        let (b, cb) = start(2, b_addr);
        wait_for("the newest 100", || cb.received.borrow().len() >= 100).await;
        // Give any stragglers a moment to show up, then check exactly the newest came.
        glommio::timer::sleep(Duration::from_millis(100)).await;
        let terms: Vec<u64> = cb
            .received
            .borrow()
            .iter()
            .map(|(_, m)| m.message.term)
            .collect();
        assert_eq!(terms, (900..1000).collect::<Vec<u64>>());
        a.stop().await;
        b.stop().await;
    });
}

#[test]
fn a_hostile_peer_cannot_break_the_listener() {
    run(|| async {
        let (a, ca) = start(1, any_port());
        let addr = a.local_addr();
        // A raw peer on its own thread: hello, a reply nobody asked for, garbage
        // bodies, a messages frame, then a frame claiming 4 GiB.
        let peer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(&encode_hello(5, "127.0.0.1:1".parse().unwrap()))
                .unwrap();
            s.write_all(&encode_reply(12345, &Ok(b"unasked".to_vec())))
                .unwrap();
            let mut garbage = Vec::new();
            frame_header(ReplicationApi::Messages as u16, 0, 0, 12, 0).encode(&mut garbage);
            garbage.extend_from_slice(&[0xff; 12]);
            s.write_all(&garbage).unwrap();
            let (head, tail) = encode_messages(5, &[numbered(7, 5, 1, 2)]);
            s.write_all(&head).unwrap();
            for t in &tail {
                s.write_all(t).unwrap();
            }
            let mut huge = encode_hello(5, "127.0.0.1:1".parse().unwrap());
            huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
            s.write_all(&huge).unwrap();
            s
        });
        wait_for("the good frame", || ca.received.borrow().len() == 1).await;
        assert_eq!(ca.received.borrow()[0], (5, numbered(7, 5, 1, 2)));
        wait_for("both bad frames counted", || {
            a.counters().frames_rejected >= 2
        })
        .await;
        let _socket = peer.join().unwrap();
        // The listener still serves a well-behaved broker.
        let (b, _cb) = start(2, any_port());
        b.set_peer(1, addr);
        b.send(1, numbered(8, 2, 1, 0)).unwrap();
        wait_for("b's message", || ca.received.borrow().len() == 2).await;
        a.stop().await;
        b.stop().await;
    });
}

#[test]
fn a_broker_that_dials_first_gets_its_replies() {
    run(|| async {
        let (a, _ca) = start(1, any_port());
        // c joins: it knows a, a does not know c. a answers on a connection it dials
        // back to the address c's hello names.
        let (c, _cc) = start(3, "0.0.0.0:0".parse().unwrap());
        c.set_peer(1, a.local_addr());
        let r = c.call(1, b"register".to_vec(), 30_000).await;
        assert_eq!(r, Ok(b"echo:register".to_vec()));
        assert!(a.is_connected(3), "a dialled c back");
        a.stop().await;
        c.stop().await;
    });
}

#[test]
fn a_new_connection_from_a_peer_closes_its_older_one() {
    run(|| async {
        let (a, _ca) = start(1, any_port());
        let addr = a.local_addr();
        // Broker 5 dials twice, as after its link was cut and restored: the older
        // connection is closed by a, not kept open forever.
        let peer = std::thread::spawn(move || {
            use std::io::Read;
            let hello = encode_hello(5, "127.0.0.1:1".parse().unwrap());
            let mut first = std::net::TcpStream::connect(addr).unwrap();
            first.write_all(&hello).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            let mut second = std::net::TcpStream::connect(addr).unwrap();
            second.write_all(&hello).unwrap();
            first
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut buf = [0u8; 16];
            let n = first.read(&mut buf);
            (n.map_err(|e| e.kind()), second)
        });
        wait_for("the raw peer", || peer.is_finished()).await;
        let (n, _second) = peer.join().unwrap();
        assert!(
            matches!(n, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
            "{n:?}"
        );
        a.stop().await;
    });
}

/// Loopback speed, one executor for both ends (so one core does both): run with
/// `cargo test -p strata-net --test replication_transport -- --ignored --nocapture`.
/// Reports figures; asserts only that everything arrived.
#[test]
#[ignore]
fn loopback_throughput() {
    run(|| async {
        let (a, _ca) = start(1, any_port());
        let (b, cb) = start(2, any_port());
        a.set_peer(2, b.local_addr());
        wait_for("connected", || a.is_connected(2)).await;
        // Heartbeat-sized messages.
        const HEARTBEATS: usize = 1_000_000;
        let t = Instant::now();
        let mut sent = 0;
        while sent < HEARTBEATS {
            if a.queued_messages(2) < 20_000 {
                for i in 0..1000 {
                    a.send(2, numbered((sent + i) as u64, 1, 2, 0)).unwrap();
                }
                sent += 1000;
            }
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
        wait_for("heartbeats", || cb.received.borrow().len() == HEARTBEATS).await;
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "heartbeats: {HEARTBEATS} in {secs:.2} s = {:.0} messages/s, {} frames",
            HEARTBEATS as f64 / secs,
            cb.frames.get()
        );
        cb.received.borrow_mut().clear();
        // Appends of 16 batches of 64 KiB each (1 MiB per message), 1 GiB in all.
        let batch = Bytes::from(vec![0x5a; 64 * 1024]);
        let append = |i: u64| {
            let mut m = numbered(i, 1, 2, 16);
            m.batches = vec![batch.clone(); 16];
            m
        };
        const APPENDS: usize = 1024;
        let before = b.counters().bytes_received;
        let t = Instant::now();
        let mut sent = 0;
        while sent < APPENDS {
            if a.queued_messages(2) < 32 {
                a.send(2, append(sent as u64)).unwrap();
                sent += 1;
            } else {
                glommio::timer::sleep(Duration::from_micros(50)).await;
            }
            // Received batches are dropped as they arrive (a follower writes them).
            cb.received.borrow_mut().clear();
        }
        wait_for("appends", || {
            b.counters().messages_received as usize == HEARTBEATS + APPENDS
        })
        .await;
        let secs = t.elapsed().as_secs_f64();
        let bytes = b.counters().bytes_received - before;
        eprintln!(
            "appends: {APPENDS} x 1 MiB in {secs:.2} s = {:.0} MiB/s",
            bytes as f64 / secs / (1024.0 * 1024.0)
        );
        assert_eq!(a.counters().messages_dropped, 0);
        a.stop().await;
        b.stop().await;
    });
}

#[test]
fn a_backlog_is_cut_into_frames_within_the_bounds() {
    run(|| async {
        let b_addr = free_addr();
        let mut config = TransportConfig::new(1, any_port());
        // No byte target to speak of: the message count alone must cut the frames.
        config.frame_bytes_target = strata_schema::FRAME_BYTES_MAX;
        let (a, _ca) = start_with(config);
        a.set_peer(2, b_addr);
        // Queued while b is down: more messages than one frame may carry.
        let n = MESSAGES_PER_FRAME_MAX as u64 + 4000;
        for i in 0..n {
            let batches = if i % 1000 == 0 { 4 } else { 0 };
            a.send(2, numbered(i, 1, 2, batches)).unwrap();
        }
        let (b, cb) = start(2, b_addr);
        wait_for("the backlog", || cb.received.borrow().len() == n as usize).await;
        let terms: Vec<u64> = cb
            .received
            .borrow()
            .iter()
            .map(|(_, m)| m.message.term)
            .collect();
        assert_eq!(terms, (0..n).collect::<Vec<u64>>());
        assert!(cb.frames.get() >= 2);
        assert!(cb.frame_messages_max.get() <= MESSAGES_PER_FRAME_MAX);
        assert_eq!(b.counters().frames_rejected, 0);
        a.stop().await;
        b.stop().await;
    });
}

#[test]
fn idle_peers_heartbeat_and_a_closed_connection_is_counted() {
    run(|| async {
        let (a, _ca) = start(1, any_port());
        let b_addr = free_addr();
        let (b, cb) = start(2, b_addr);
        a.set_peer(2, b_addr);
        wait_for("a connected", || a.is_connected(2)).await;
        // Nothing is sent, yet b keeps hearing from a: the writer's idle heartbeats.
        glommio::timer::sleep(Duration::from_millis(5 * PEER_HEARTBEAT_MS)).await;
        let heard = b.peer_liveness();
        let l = heard.iter().find(|(id, _)| *id == 1).map(|(_, l)| *l);
        let l = l.expect("b has heard from a");
        assert!(
            l.silent_ms < 3 * PEER_HEARTBEAT_MS,
            "a heartbeats while idle: {l:?}"
        );
        assert_eq!(l.connections_lost, 0);
        assert!(
            cb.received.borrow().is_empty(),
            "heartbeats carry no message"
        );
        // a goes away: b counts the lost connection at once and a falls silent.
        a.stop().await;
        drop(a);
        wait_for("b to count the lost connection", || {
            b.peer_liveness()
                .iter()
                .any(|(id, l)| *id == 1 && l.connections_lost == 1)
        })
        .await;
        b.stop().await;
    });
}
