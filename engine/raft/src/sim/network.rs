//! A simulated network between brokers: every frame may be dropped, delayed (so
//! reordered) or duplicated, and the brokers may be split into sides that cannot talk.
//! As the real transport does, all groups' messages from one broker to another made in
//! the same step travel in one frame and share its fate.

use crate::prng::SplitMix64;
use crate::{Message, NodeId};

/// Most messages in flight; beyond it new ones are dropped (a full socket buffer).
pub const NETWORK_MESSAGES_MAX: usize = 100_000;

/// A message of group `group` with the payload ids of the batches it carries.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Which Raft group.
    pub group: usize,
    /// The message.
    pub msg: Message,
    /// Payload id per entry of an append (the batches' bytes, by reference).
    pub payloads: Vec<u64>,
}

/// A broker-pair heartbeat: the failure detector's frame, one per broker pair whatever
/// the groups they share. The incarnation lets the receiver see a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Beat {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The sender's incarnation (bumped by every restart).
    pub incarnation: u64,
}

/// Fault rates and delays, per mille and in simulation steps.
#[derive(Clone, Debug)]
pub struct NetworkFaults {
    /// Chance a message is lost.
    pub drop_per_mille: u64,
    /// Chance a message is delivered twice.
    pub duplicate_per_mille: u64,
    /// Delivery delay range in steps, `[min, max]`.
    pub delay_steps_min: u64,
    /// Upper end of the delay range.
    pub delay_steps_max: u64,
}

/// Messages in flight and the current partition.
#[derive(Debug)]
pub struct Network {
    in_flight: Vec<(u64, u64, Vec<Envelope>)>,
    /// Broker-pair heartbeats in flight: (due, seq, beat).
    beats: Vec<(u64, u64, Beat)>,
    seq: u64,
    /// Side of each node (index = node id); nodes on different sides cannot talk.
    sides: Vec<u8>,
    /// A link that is down in one direction only (from, to).
    one_way: Option<(NodeId, NodeId)>,
    /// Faults in force.
    pub faults: NetworkFaults,
}

impl Network {
    /// A healed network of `nodes` brokers.
    pub fn new(nodes: usize, faults: NetworkFaults) -> Self {
        Network {
            in_flight: Vec::new(),
            beats: Vec::new(),
            seq: 0,
            sides: vec![0; nodes + 1],
            one_way: None,
            faults,
        }
    }

    /// Whether `a` can reach `b`.
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        self.sides.get(a as usize) == self.sides.get(b as usize) && self.one_way != Some((a, b))
    }

    /// Cuts the link from `from` to `to` only (a half-broken connection).
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.one_way = Some((from, to));
    }

    /// Splits the brokers: `side[i]` is node i's side.
    pub fn partition(&mut self, sides: Vec<u8>) {
        self.sides = sides;
    }

    /// Everyone can talk again.
    pub fn heal(&mut self) {
        for s in self.sides.iter_mut() {
            *s = 0;
        }
        self.one_way = None;
    }

    /// Messages in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Sends one frame of messages from `from` to `to` at step `now`.
    pub fn send_frame(
        &mut self,
        now: u64,
        from: NodeId,
        to: NodeId,
        frame: Vec<Envelope>,
        rng: &mut SplitMix64,
    ) {
        if frame.is_empty() || !self.connected(from, to) || rng.chance(self.faults.drop_per_mille) {
            return;
        }
        let copies = if rng.chance(self.faults.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.in_flight.len() >= NETWORK_MESSAGES_MAX {
                return;
            }
            let due = now + rng.range(self.faults.delay_steps_min, self.faults.delay_steps_max + 1);
            self.seq += 1;
            self.in_flight.push((due, self.seq, frame.clone()));
        }
    }

    /// Sends a broker-pair heartbeat at step `now`, with the same faults as frames.
    pub fn send_beat(&mut self, now: u64, beat: Beat, rng: &mut SplitMix64) {
        if !self.connected(beat.from, beat.to) || rng.chance(self.faults.drop_per_mille) {
            return;
        }
        if self.beats.len() >= NETWORK_MESSAGES_MAX {
            return;
        }
        let due = now + rng.range(self.faults.delay_steps_min, self.faults.delay_steps_max + 1);
        self.seq += 1;
        self.beats.push((due, self.seq, beat));
    }

    /// Takes the heartbeats due at `now` whose link is up, in sending order.
    pub fn due_beats(&mut self, now: u64) -> Vec<Beat> {
        let mut due: Vec<(u64, Beat)> = Vec::new();
        self.beats.retain(|(at, seq, b)| {
            if *at <= now {
                due.push((*seq, *b));
                false
            } else {
                true
            }
        });
        due.sort_by_key(|(seq, _)| *seq);
        due.into_iter()
            .map(|(_, b)| b)
            .filter(|b| self.connected(b.from, b.to))
            .collect()
    }

    /// Sends `envelopes` at step `now`, one frame per (sender, receiver) pair.
    pub fn send_all(&mut self, now: u64, mut envelopes: Vec<Envelope>, rng: &mut SplitMix64) {
        // Stable: each pair's messages keep the order they were made in.
        envelopes.sort_by_key(|e| (e.msg.from, e.msg.to));
        let mut frame: Vec<Envelope> = Vec::new();
        for env in envelopes {
            if frame
                .last()
                .is_some_and(|f| (f.msg.from, f.msg.to) != (env.msg.from, env.msg.to))
            {
                let (from, to) = (frame[0].msg.from, frame[0].msg.to);
                self.send_frame(now, from, to, std::mem::take(&mut frame), rng);
            }
            frame.push(env);
        }
        if let Some(first) = frame.first() {
            let (from, to) = (first.msg.from, first.msg.to);
            self.send_frame(now, from, to, frame, rng);
        }
    }

    /// Takes the messages due at `now` whose link is up: frames in a random order, each
    /// frame's messages in order.
    pub fn due(&mut self, now: u64, rng: &mut SplitMix64) -> Vec<Envelope> {
        let mut frames = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].0 <= now {
                let (_, seq, frame) = self.in_flight.swap_remove(i);
                frames.push((seq, frame));
            } else {
                i += 1;
            }
        }
        // Shuffle from an order that depends on the seed only.
        frames.sort_by_key(|(seq, _)| *seq);
        for i in (1..frames.len()).rev() {
            let j = rng.range(0, i as u64 + 1) as usize;
            frames.swap(i, j);
        }
        frames
            .into_iter()
            .flat_map(|(_, f)| f)
            .filter(|env| self.connected(env.msg.from, env.msg.to))
            .collect()
    }
}
