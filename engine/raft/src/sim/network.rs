//! A simulated network between brokers: every message may be dropped, delayed (so
//! reordered) or duplicated, and the brokers may be split into sides that cannot talk.

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
    in_flight: Vec<(u64, u64, NodeId, Envelope)>,
    seq: u64,
    /// Side of each node (index = node id); nodes on different sides cannot talk.
    sides: Vec<u8>,
    /// Faults in force.
    pub faults: NetworkFaults,
}

impl Network {
    /// A healed network of `nodes` brokers.
    pub fn new(nodes: usize, faults: NetworkFaults) -> Self {
        Network {
            in_flight: Vec::new(),
            seq: 0,
            sides: vec![0; nodes + 1],
            faults,
        }
    }

    /// Whether `a` and `b` can talk.
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        self.sides.get(a as usize) == self.sides.get(b as usize)
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
    }

    /// Messages in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Sends `env` at step `now`.
    pub fn send(&mut self, now: u64, env: Envelope, rng: &mut SplitMix64) {
        if !self.connected(env.msg.from, env.msg.to) || rng.chance(self.faults.drop_per_mille) {
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
            let to = env.msg.to;
            self.in_flight.push((due, self.seq, to, env.clone()));
        }
    }

    /// Takes the messages due at `now` whose link is up, in a random order.
    pub fn due(&mut self, now: u64, rng: &mut SplitMix64) -> Vec<Envelope> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].0 <= now {
                let (_, _, _, env) = self.in_flight.swap_remove(i);
                if self.connected(env.msg.from, env.msg.to) {
                    out.push(env);
                }
            } else {
                i += 1;
            }
        }
        // swap_remove already scrambles; shuffle so the order depends on the seed only.
        for i in (1..out.len()).rev() {
            let j = rng.range(0, i as u64 + 1) as usize;
            out.swap(i, j);
        }
        out
    }
}
