//! The simulated cluster: brokers hosting replicas of several groups, a faulty network,
//! disks that lose unsynced writes, crashes and restarts, clients proposing batches and
//! operators changing membership, all driven by one seed.

use std::collections::HashMap;

use super::checker::{Ack, Applied, Checker};
use super::disk::{DiskOp, SimDisk};
use super::network::{Beat, Envelope, Network, NetworkFaults};
use crate::prng::SplitMix64;
use crate::{
    Config, EntryKind, Membership, MembershipChange, MessageBody, NodeId, Raft, Role, Term,
};

/// Simulation steps per Raft tick (network delays and fsyncs are in steps).
pub const STEPS_PER_TICK: u64 = 10;

/// Most entries the simulated transport attaches to one append (its frame budget).
pub const SIM_APPEND_ENTRIES_MAX: u64 = 8;

/// Ticks between two broker-pair heartbeats (the real broker: 200 ms).
pub const BEAT_TICKS: u64 = 2;

/// Length of a busy or idle phase of the clients, for seeds that have them.
pub const IDLE_PHASE_STEPS: u64 = 600;

/// A broker not heard from for this many steps has lapsed (an election timeout).
pub const LAPSE_STEPS: u64 = 10 * STEPS_PER_TICK;

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct SimParams {
    /// Brokers (ids 1..=nodes).
    pub nodes: usize,
    /// Raft groups, each with 3 voters to start.
    pub groups: usize,
    /// Steps with faults.
    pub fault_steps: u64,
    /// Steps without faults at the end, for everything to converge.
    pub quiet_steps: u64,
}

impl SimParams {
    /// The default shape for `nodes` brokers.
    pub fn new(nodes: usize) -> Self {
        SimParams {
            nodes,
            groups: 3,
            fault_steps: 4000,
            quiet_steps: 2500,
        }
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Entries acknowledged to clients.
    pub acks: usize,
    /// Leaders elected.
    pub elections: u64,
    /// Batches applied over all replicas.
    pub applies: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Membership changes proposed successfully.
    pub membership_changes: u64,
    /// Snapshots installed.
    pub snapshots: u64,
    /// Broker lapses the failure detector reported to the replicas.
    pub lapses: u64,
    /// Replicas quiescent at the end of the run.
    pub quiescent_at_end: u64,
    /// Crashes of a broker while it led a quiescent group (its followers must elect
    /// once the failure detector reports the lapse).
    pub quiescent_leader_crashes: u64,
}

struct Replica {
    raft: Option<Raft>,
    disk: SimDisk,
    /// Payloads of batches received (or proposed) and not yet written, by (start, term).
    staged: HashMap<(u64, Term), u64>,
    last_sync_due: u64,
}

struct Node {
    up: bool,
    incarnation: u64,
    replicas: Vec<Replica>,
    /// The broker-pair failure detector, per peer (index = node id).
    peers: Vec<PeerLiveness>,
}

/// What one broker's failure detector knows of one peer.
#[derive(Clone, Copy, Default)]
struct PeerLiveness {
    /// Step anything (a heartbeat or a frame) was last heard from it.
    heard_step: u64,
    /// Its incarnation in the last heartbeat (0: none yet).
    incarnation: u64,
    /// Reported lapsed and not heard from since.
    lapsed: bool,
}

struct Pending {
    group: usize,
    node: NodeId,
    incarnation: u64,
    start_offset: u64,
    end_offset: u64,
    term: Term,
    payload: u64,
}

/// Knobs drawn from the seed so different seeds explore different regimes.
struct Regime {
    crash_per_mille: u64,
    restart_per_mille: u64,
    partition_per_mille: u64,
    heal_per_mille: u64,
    propose_per_mille: u64,
    membership_per_mille: u64,
    transfer_per_mille: u64,
    compact_per_mille: u64,
    sync_steps_max: u64,
    /// Chance of crashing right after writing a vote or a batch, before its fsync: the
    /// windows where persisting late or acknowledging early would lose data.
    crash_unsynced_per_mille: u64,
    pre_vote: bool,
    check_quorum: bool,
    quiesce: bool,
    /// Clients pause every other [`IDLE_PHASE_STEPS`], so groups go idle (and
    /// quiescent) while faults go on.
    idle_phases: bool,
    /// Chance that a crash is seen at once by connected peers (a connection reset)
    /// rather than only by the heartbeat timeout.
    reset_seen_per_mille: u64,
}

/// One simulated cluster.
pub struct World {
    seed: u64,
    rng: SplitMix64,
    now: u64,
    params: SimParams,
    regime: Regime,
    nodes: Vec<Node>,
    net: Network,
    syncs: Vec<(u64, u64, NodeId, usize, u64, u64)>,
    sync_seq: u64,
    pending: Vec<Pending>,
    next_payload: u64,
    checker: Checker,
    report: SimReport,
    faults_on: bool,
    /// Brokers to crash at the start of the next step.
    crash_soon: Vec<NodeId>,
    /// Messages made during this step; sent as one frame per broker pair at its end.
    outgoing: Vec<Envelope>,
    /// `STRATA_SIM_TRACE=group:node` prints every message that replica receives.
    trace: Option<(usize, NodeId)>,
}

impl World {
    /// A cluster for `seed`.
    pub fn new(seed: u64, params: SimParams) -> World {
        let mut rng = SplitMix64::new(seed);
        let regime = Regime {
            crash_per_mille: rng.range(0, 4),
            restart_per_mille: rng.range(5, 30),
            partition_per_mille: rng.range(0, 4),
            heal_per_mille: rng.range(5, 30),
            propose_per_mille: rng.range(100, 500),
            membership_per_mille: rng.range(0, 6),
            transfer_per_mille: rng.range(0, 4),
            compact_per_mille: rng.range(0, 30),
            sync_steps_max: rng.range(1, 20),
            crash_unsynced_per_mille: rng.range(0, 40),
            pre_vote: rng.range(0, 4) != 0,
            check_quorum: rng.range(0, 4) != 0,
            // From their own stream, so the draws above stay what they were per seed.
            quiesce: SplitMix64::new(seed).fork(0x51E5CE).range(0, 4) != 0,
            reset_seen_per_mille: SplitMix64::new(seed).fork(0x0E5E7).range(0, 1001),
            idle_phases: SplitMix64::new(seed).fork(0x1D1E).range(0, 2) != 0,
        };
        let faults = NetworkFaults {
            drop_per_mille: rng.range(0, 150),
            duplicate_per_mille: rng.range(0, 80),
            delay_steps_min: 1,
            delay_steps_max: rng.range(2, 40),
        };
        let mut w = World {
            seed,
            now: 0,
            net: Network::new(params.nodes, faults),
            nodes: Vec::new(),
            syncs: Vec::new(),
            sync_seq: 0,
            pending: Vec::new(),
            next_payload: 1,
            checker: Checker::default(),
            report: SimReport::default(),
            faults_on: true,
            crash_soon: Vec::new(),
            outgoing: Vec::new(),
            trace: std::env::var("STRATA_SIM_TRACE").ok().and_then(|v| {
                let (g, n) = v.split_once(':')?;
                Some((g.parse().ok()?, n.parse().ok()?))
            }),
            regime,
            params,
            rng,
        };
        for id in 1..=w.params.nodes as NodeId {
            let mut replicas = Vec::new();
            for g in 0..w.params.groups {
                let membership = w.initial_membership(g);
                replicas.push(Replica {
                    raft: None,
                    disk: SimDisk::new(membership),
                    staged: HashMap::new(),
                    last_sync_due: 0,
                });
            }
            w.nodes.push(Node {
                up: false,
                incarnation: 0,
                replicas,
                peers: vec![PeerLiveness::default(); w.params.nodes + 1],
            });
            w.start_node(id);
        }
        w
    }

    fn initial_membership(&self, group: usize) -> Membership {
        let n = self.params.nodes;
        let voters: Vec<NodeId> = (0..3.min(n))
            .map(|i| ((group + i) % n) as NodeId + 1)
            .collect();
        Membership::new(&voters).unwrap_or_default()
    }

    fn config(&self, id: NodeId, incarnation: u64) -> Config {
        let mut cfg = Config::new(id, self.seed ^ incarnation.wrapping_mul(0x9E37_79B9));
        cfg.pre_vote = self.regime.pre_vote;
        cfg.check_quorum = self.regime.check_quorum;
        cfg.quiesce = self.regime.quiesce;
        cfg.entry_offsets_max = 8;
        cfg.uncommitted_offsets_max = 256;
        cfg
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    fn fail(&mut self, why: String) {
        if self.checker.violation.is_none() {
            self.checker.violation = Some(format!("step {}: {why}", self.now));
        }
    }

    fn start_node(&mut self, id: NodeId) {
        let incarnation = self.node(id).incarnation + 1;
        let cfg = self.config(id, incarnation);
        let groups = self.params.groups;
        let now = self.now;
        let node = self.node(id);
        node.up = true;
        node.incarnation = incarnation;
        // A new process knows nothing of its peers; it gives each a fresh timeout.
        for p in node.peers.iter_mut() {
            *p = PeerLiveness {
                heard_step: now,
                ..PeerLiveness::default()
            };
        }
        let mut errors = Vec::new();
        let mut starts = Vec::new();
        for (g, r) in node.replicas.iter_mut().enumerate() {
            let state = r.disk.current().restored_state();
            starts.push(state.log_start_offset);
            match Raft::new(cfg.clone(), state) {
                Ok(raft) => r.raft = Some(raft),
                Err(e) => errors.push(format!("node {id} group {g}: restore failed: {e}")),
            }
        }
        for e in errors {
            self.fail(e);
        }
        for (g, start) in starts.into_iter().enumerate().take(groups) {
            self.checker.restarted(id, g, start);
        }
    }

    fn crash_node(&mut self, id: NodeId) {
        self.report.crashes += 1;
        let mut rng = self.rng.fork(self.now ^ id);
        let quiet_leaders = self
            .node(id)
            .replicas
            .iter()
            .filter(|r| {
                r.raft
                    .as_ref()
                    .is_some_and(|r| r.is_quiescent() && r.role() == Role::Leader)
            })
            .count() as u64;
        self.report.quiescent_leader_crashes += quiet_leaders;
        let node = self.node(id);
        node.up = false;
        for r in node.replicas.iter_mut() {
            r.disk.crash(&mut rng);
            r.raft = None;
            r.staged.clear();
            r.last_sync_due = 0;
        }
        self.pending.retain(|p| p.node != id);
        // Its connections reset: peers that can still reach it may notice at once.
        for peer in 1..=self.params.nodes as NodeId {
            if peer != id
                && self.node(peer).up
                && self.net.connected(id, peer)
                && self.rng.chance(self.regime.reset_seen_per_mille)
            {
                self.lapse(peer, id);
            }
        }
    }

    /// Broker `at`'s failure detector reports `peer` lapsed to every replica there.
    fn lapse(&mut self, at: NodeId, peer: NodeId) {
        self.report.lapses += 1;
        self.node(at).peers[peer as usize].lapsed = true;
        for g in 0..self.params.groups {
            if let Some(raft) = self.raft(at, g) {
                raft.broker_lapsed(peer);
            }
            self.drive(at, g);
        }
    }

    /// A heartbeat (or frame) from `from` reached `to`.
    fn heard(&mut self, to: NodeId, from: NodeId, incarnation: Option<u64>) {
        let now = self.now;
        let p = &mut self.node(to).peers[from as usize];
        p.heard_step = now;
        p.lapsed = false;
        let restarted = match incarnation {
            Some(inc) => {
                let known = p.incarnation;
                p.incarnation = inc;
                known != 0 && known != inc
            }
            None => false,
        };
        if restarted {
            // A new incarnation is a new connection: the old one is gone.
            self.lapse(to, from);
        }
    }

    /// Every up broker sends its heartbeat to every other one, and reports peers it
    /// has not heard from for [`LAPSE_STEPS`].
    fn failure_detector(&mut self, rng: &mut SplitMix64) {
        let now = self.now;
        let n = self.params.nodes as NodeId;
        for id in 1..=n {
            if !self.node(id).up {
                continue;
            }
            if (now / STEPS_PER_TICK).is_multiple_of(BEAT_TICKS) {
                let incarnation = self.node(id).incarnation;
                for to in (1..=n).filter(|&to| to != id) {
                    let beat = Beat {
                        from: id,
                        to,
                        incarnation,
                    };
                    self.net.send_beat(now, beat, rng);
                }
            }
            for peer in (1..=n).filter(|&p| p != id) {
                let p = self.node(id).peers[peer as usize];
                if !p.lapsed && now.saturating_sub(p.heard_step) > LAPSE_STEPS {
                    self.lapse(id, peer);
                }
            }
        }
    }

    /// Hands `env` to its replica.
    fn deliver(&mut self, env: Envelope) {
        let to = env.msg.to;
        if !self.node(to).up {
            return;
        }
        self.heard(to, env.msg.from, None);
        let g = env.group;
        let now = self.now;
        let traced = self.trace == Some((g, to));
        let r = &mut self.node(to).replicas[g];
        if let MessageBody::Append(a) = &env.msg.body {
            for (e, p) in a.entries.iter().zip(env.payloads.iter()) {
                r.staged.insert((e.start_offset, e.term), *p);
            }
        }
        let Some(raft) = r.raft.as_mut() else { return };
        if traced {
            eprintln!(
                "t={} deliver {:?} (log end {} term {})",
                now,
                env.msg,
                raft.log_end_offset(),
                raft.term()
            );
        }
        if let Err(e) = raft.step(env.msg.clone()) {
            let why = format!("node {to} group {g}: step refused {:?}: {e}", env.msg);
            self.fail(why);
        }
        self.drive(to, g);
    }

    /// Carries out every Ready of replica (`id`, `g`).
    fn drive(&mut self, id: NodeId, g: usize) {
        for _ in 0..64 {
            if !self.drive_once(id, g) {
                return;
            }
        }
    }

    fn drive_once(&mut self, id: NodeId, g: usize) -> bool {
        let now = self.now;
        let sync_delay = self.rng.range(1, self.regime.sync_steps_max + 1);
        let frame_entries = self.rng.range(1, SIM_APPEND_ENTRIES_MAX + 1);
        let incarnation = self.node(id).incarnation;
        let r = &mut self.nodes[id as usize - 1].replicas[g];
        let Some(raft) = r.raft.as_mut() else {
            return false;
        };
        if !raft.has_ready() {
            return false;
        }
        let rd = raft.ready();
        let mut errors = Vec::new();
        let mut installed = None;
        for op in &rd.log_ops {
            if let crate::LogOp::InstallSnapshot(meta) = op {
                installed = Some((meta.end_offset, meta.term));
            }
        }
        let staged = &mut r.staged;
        let mut ops = SimDisk::ops_of(rd.log_ops.clone(), |e| match e.kind {
            EntryKind::Data => staged.remove(&(e.start_offset, e.term)).unwrap_or_else(|| {
                errors.push(format!("node {id} group {g}: no payload for {e:?}"));
                0
            }),
            _ => 0,
        });
        let unsynced_write = rd.hard_state.is_some_and(|h| h.vote.is_some()) || !ops.is_empty();
        if let Some(h) = rd.hard_state {
            ops.push(DiskOp::Hard(h));
        }
        let mut sync = None;
        if let Some(token) = rd.persist {
            r.disk.write(token.0, ops);
            let due = r.last_sync_due.max(now + sync_delay);
            r.last_sync_due = due;
            sync = Some((due, token.0));
        } else if !ops.is_empty() {
            errors.push(format!(
                "node {id} group {g}: log ops without a persist token"
            ));
        }
        let disk_end = r.disk.current().log_end_offset();
        if disk_end != raft.log_end_offset() {
            errors.push(format!(
                "node {id} group {g}: disk log ends at {disk_end}, the state machine's at {} (ops {:?})",
                raft.log_end_offset(),
                rd.log_ops
            ));
        }
        // Fill appends from the log, as the transport would.
        let mut envelopes = Vec::new();
        for mut m in rd.messages.clone() {
            let mut payloads = Vec::new();
            if let MessageBody::Append(a) = &mut m.body {
                let batches = r.disk.current().range(a.prev_end_offset, a.send_end_offset);
                let mut end = a.prev_end_offset;
                for b in batches.iter().take(frame_entries as usize) {
                    if b.entry.start_offset != end {
                        break;
                    }
                    end = b.entry.end_offset;
                    a.entries.push(b.entry.clone());
                    payloads.push(b.payload);
                }
            }
            envelopes.push(Envelope {
                group: g,
                msg: m,
                payloads,
            });
        }
        // Apply what is committed and durable.
        let mut applied = Vec::new();
        if rd.apply_end_offset > rd.apply_from_offset {
            let batches = r
                .disk
                .current()
                .range(rd.apply_from_offset, rd.apply_end_offset);
            let covered_from = batches.first().map(|b| b.entry.start_offset);
            let covered_end = batches.last().map(|b| b.entry.end_offset);
            if covered_from != Some(rd.apply_from_offset)
                || covered_end != Some(rd.apply_end_offset)
            {
                errors.push(format!(
                    "node {id} group {g}: apply [{}, {}) not covered by the log (log {:?}..{:?})",
                    rd.apply_from_offset, rd.apply_end_offset, covered_from, covered_end
                ));
            }
            for b in batches {
                applied.push((
                    b.entry.start_offset,
                    Applied {
                        end_offset: b.entry.end_offset,
                        term: b.entry.term,
                        payload: b.payload,
                    },
                ));
            }
        }
        let role = raft.role();
        let term = raft.term();
        let epochs = (role == Role::Leader).then(|| raft.epochs().clone());
        let commit = rd.commit_offset;
        let empty = rd.is_empty() && rd.persist.is_none();
        // Done with the replica borrow.
        if unsynced_write && self.faults_on && self.rng.chance(self.regime.crash_unsynced_per_mille)
        {
            self.crash_soon.push(id);
        }
        if let Some((due, token)) = sync {
            self.sync_seq += 1;
            self.syncs
                .push((due, self.sync_seq, id, g, incarnation, token));
        }
        self.outgoing.extend(envelopes);
        if let Some((end, term)) = installed {
            self.report.snapshots += 1;
            self.checker.snapshot_installed(id, g, end, term);
        }
        for (start, a) in applied {
            self.checker.applied(id, g, start, a);
        }
        if let Some(log) = epochs {
            self.checker.leader_elected(g, term, id, &log);
            let mut i = 0;
            while i < self.pending.len() {
                let p = &self.pending[i];
                if p.group == g
                    && p.node == id
                    && p.incarnation == incarnation
                    && p.term == term
                    && p.end_offset <= commit
                {
                    let p = self.pending.swap_remove(i);
                    if log.term_at(p.start_offset) != Some(p.term) {
                        errors.push(format!(
                            "node {id} group {g}: leader lost its own entry at {}",
                            p.start_offset
                        ));
                    }
                    self.checker.acknowledged(Ack {
                        group: g,
                        start_offset: p.start_offset,
                        term: p.term,
                        payload: p.payload,
                    });
                } else {
                    i += 1;
                }
            }
        }
        // Proposals of a replica that is no longer leader of their term time out.
        self.pending.retain(|p| {
            !(p.group == g && p.node == id && (p.term != term || role != Role::Leader))
        });
        for e in errors {
            self.fail(e);
        }
        !empty
    }

    fn up_leader(&mut self, g: usize) -> Option<NodeId> {
        let leaders: Vec<NodeId> = (1..=self.params.nodes as NodeId)
            .filter(|&id| {
                let n = &self.nodes[id as usize - 1];
                n.up && n.replicas[g]
                    .raft
                    .as_ref()
                    .is_some_and(|r| r.role() == Role::Leader)
            })
            .collect();
        if leaders.is_empty() {
            return None;
        }
        let i = self.rng.range(0, leaders.len() as u64) as usize;
        Some(leaders[i])
    }

    fn raft(&mut self, id: NodeId, g: usize) -> Option<&mut Raft> {
        self.nodes[id as usize - 1].replicas[g].raft.as_mut()
    }

    fn client_propose(&mut self) {
        let g = self.rng.range(0, self.params.groups as u64) as usize;
        let Some(id) = self.up_leader(g) else { return };
        let offsets = self.rng.range(1, 4);
        let incarnation = self.node(id).incarnation;
        let payload = self.next_payload;
        let Some(raft) = self.raft(id, g) else { return };
        if let Ok(e) = raft.propose(offsets) {
            self.next_payload += 1;
            let term = e.term;
            self.nodes[id as usize - 1].replicas[g]
                .staged
                .insert((e.start_offset, term), payload);
            self.pending.push(Pending {
                group: g,
                node: id,
                incarnation,
                start_offset: e.start_offset,
                end_offset: e.end_offset,
                term,
                payload,
            });
            self.drive(id, g);
        }
    }

    fn change_membership(&mut self) {
        let g = self.rng.range(0, self.params.groups as u64) as usize;
        let Some(id) = self.up_leader(g) else { return };
        let nodes = self.params.nodes as NodeId;
        let pick = self.rng.next_u64();
        let coin = self.rng.range(0, 2) == 0;
        let Some(raft) = self.raft(id, g) else { return };
        let m = raft.membership().clone();
        let others: Vec<NodeId> = m.voters.iter().copied().filter(|&v| v != id).collect();
        let outsiders: Vec<NodeId> = (1..=nodes).filter(|&n| !m.contains(n)).collect();
        let change = if let Some(&l) = m.learners.first() {
            MembershipChange::Promote(l)
        } else if m.voters.len() > 3 && !others.is_empty() {
            MembershipChange::Remove(others[(pick % others.len() as u64) as usize])
        } else if !outsiders.is_empty() && (m.voters.len() < 3 || coin) {
            MembershipChange::AddLearner(outsiders[(pick % outsiders.len() as u64) as usize])
        } else if m.voters.len() == 3 && outsiders.is_empty() && !others.is_empty() {
            MembershipChange::Remove(others[(pick % others.len() as u64) as usize])
        } else {
            return;
        };
        if raft.propose_membership(change).is_ok() {
            self.report.membership_changes += 1;
            self.drive(id, g);
        }
    }

    fn transfer(&mut self) {
        let g = self.rng.range(0, self.params.groups as u64) as usize;
        let Some(id) = self.up_leader(g) else { return };
        let pick = self.rng.next_u64();
        let Some(raft) = self.raft(id, g) else { return };
        let others: Vec<NodeId> = raft
            .membership()
            .voters
            .iter()
            .copied()
            .filter(|&v| v != id)
            .collect();
        if others.is_empty() {
            return;
        }
        let to = others[(pick % others.len() as u64) as usize];
        if raft.transfer_leadership(to).is_ok() {
            self.drive(id, g);
        }
    }

    fn compact(&mut self) {
        let id = self.rng.range(1, self.params.nodes as u64 + 1);
        let g = self.rng.range(0, self.params.groups as u64) as usize;
        let pick = self.rng.next_u64();
        if !self.node(id).up {
            return;
        }
        let r = &mut self.nodes[id as usize - 1].replicas[g];
        let Some(raft) = r.raft.as_mut() else { return };
        let applied = raft.applied_offset();
        let starts: Vec<u64> = r
            .disk
            .current()
            .range(raft.log_start_offset() + 1, applied + 1)
            .iter()
            .map(|b| b.entry.start_offset)
            .collect();
        if starts.is_empty() {
            return;
        }
        let x = starts[(pick % starts.len() as u64) as usize];
        if raft.compact(x).is_ok() {
            let term = raft.epochs().log_start_term();
            let m = raft.log_start_membership().clone();
            r.disk.compact(x, term, &m);
        }
    }

    fn faults(&mut self) {
        let n = self.params.nodes as u64;
        if self.rng.chance(self.regime.crash_per_mille) {
            let id = self.rng.range(1, n + 1);
            if self.node(id).up {
                self.crash_node(id);
            }
        }
        if self.rng.chance(self.regime.restart_per_mille) {
            let id = self.rng.range(1, n + 1);
            if !self.node(id).up {
                self.start_node(id);
            }
        }
        if self.rng.chance(self.regime.partition_per_mille) {
            let sides: Vec<u8> = (0..=n).map(|_| self.rng.range(0, 2) as u8).collect();
            self.net.partition(sides);
        }
        if self.rng.chance(self.regime.partition_per_mille) {
            let from = self.rng.range(1, n + 1);
            let to = self.rng.range(1, n + 1);
            self.net.cut_one_way(from, to);
        }
        if self.rng.chance(self.regime.heal_per_mille) {
            self.net.heal();
        }
        if self.rng.chance(self.regime.membership_per_mille) {
            self.change_membership();
        }
        if self.rng.chance(self.regime.transfer_per_mille) {
            self.transfer();
        }
        if self.rng.chance(self.regime.compact_per_mille) {
            self.compact();
        }
    }

    fn step(&mut self) {
        self.now += 1;
        let now = self.now;
        let mut rng = self.rng.fork(now);
        for id in std::mem::take(&mut self.crash_soon) {
            if self.node(id).up {
                self.crash_node(id);
            }
        }
        for env in self.net.due(now, &mut rng) {
            self.deliver(env);
        }
        for beat in self.net.due_beats(now) {
            if self.node(beat.to).up {
                self.heard(beat.to, beat.from, Some(beat.incarnation));
            }
        }
        let mut due: Vec<_> = self.syncs.iter().filter(|s| s.0 <= now).copied().collect();
        self.syncs.retain(|s| s.0 > now);
        due.sort_by_key(|s| (s.0, s.1));
        for (_, _, id, g, incarnation, token) in due {
            let node = self.node(id);
            if !node.up || node.incarnation != incarnation {
                continue;
            }
            let r = &mut node.replicas[g];
            r.disk.sync(token);
            if let Some(raft) = r.raft.as_mut() {
                raft.persisted(crate::PersistToken(token));
            }
            self.drive(id, g);
        }
        if now.is_multiple_of(STEPS_PER_TICK) {
            for id in 1..=self.params.nodes as NodeId {
                if !self.node(id).up {
                    continue;
                }
                for g in 0..self.params.groups {
                    // A little clock drift: a node sometimes misses a tick.
                    if self.faults_on && self.rng.chance(20) {
                        continue;
                    }
                    // The broker skips quiescent groups (their tick is a no-op anyway).
                    if let Some(raft) = self.raft(id, g).filter(|r| !r.is_quiescent()) {
                        raft.tick();
                    }
                    self.drive(id, g);
                }
            }
            let mut beat_rng = self.rng.fork(now.wrapping_mul(17));
            self.failure_detector(&mut beat_rng);
        }
        if self.faults_on {
            self.faults();
        }
        let clients_idle = self.regime.idle_phases
            && (now / IDLE_PHASE_STEPS).is_multiple_of(2)
            && now > IDLE_PHASE_STEPS;
        if self.faults_on && !clients_idle && self.rng.chance(self.regime.propose_per_mille) {
            self.client_propose();
        }
        let mut rng = self.rng.fork(now.wrapping_mul(31));
        let out = std::mem::take(&mut self.outgoing);
        self.net.send_all(now, out, &mut rng);
    }

    /// The operator's clean-up: a replica whose broker is not in its group's membership
    /// (as the newest leader has it) is deleted, as the controller would after a
    /// reassignment. Only in the quiet phase: before that, stale replicas are a fault.
    fn reap_removed(&mut self) {
        for g in 0..self.params.groups {
            let mut best: Option<(Term, Membership)> = None;
            for n in &self.nodes {
                if let Some(r) = n.replicas[g].raft.as_ref() {
                    if n.up
                        && r.role() == Role::Leader
                        && best.as_ref().is_none_or(|(t, _)| r.term() > *t)
                    {
                        best = Some((r.term(), r.membership().clone()));
                    }
                }
            }
            let Some((_, m)) = best else { continue };
            for (i, n) in self.nodes.iter_mut().enumerate() {
                if !m.contains(i as NodeId + 1) {
                    n.replicas[g].raft = None;
                }
            }
        }
    }

    /// Every replica of group `g`, one line each, for failure reports.
    pub fn describe(&self, g: usize) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let line = match n.replicas[g].raft.as_ref() {
                Some(r) => format!(
                    "  node {} up={} {:?} term={} vote={:?} leader={:?} log=[{}, {}) last_term={} commit={} durable={} membership={:?}\n",
                    i + 1,
                    n.up,
                    r.role(),
                    r.term(),
                    r.hard_state().vote,
                    r.leader(),
                    r.log_start_offset(),
                    r.log_end_offset(),
                    r.epochs().last_term(),
                    r.commit_offset(),
                    r.durable_end_offset(),
                    r.membership()
                ),
                None => format!("  node {} down\n", i + 1),
            };
            out.push_str(&line);
            let d = n.replicas[g].disk.current();
            let last: Vec<_> = d
                .entries
                .iter()
                .rev()
                .take(3)
                .map(|e| (e.entry.start_offset, e.entry.end_offset, e.entry.term))
                .collect();
            out.push_str(&format!(
                "    disk [{}, {}), last batches {last:?}\n",
                d.log_start_offset,
                d.log_end_offset()
            ));
            if let Some(r) = n.replicas[g].raft.as_ref() {
                for p in r.membership().members() {
                    if let Some(pr) = r.progress(p) {
                        out.push_str(&format!("    progress {p}: {pr:?}\n"));
                    }
                }
            }
        }
        out
    }

    /// Runs the whole schedule and checks the history; `Err` names the first violation.
    pub fn run(mut self) -> Result<SimReport, String> {
        for _ in 0..self.params.fault_steps {
            self.step();
            if let Some(v) = self.checker.violation.take() {
                return Err(v);
            }
        }
        // Faults stop: heal, restart everyone, deliver reliably, let the groups converge.
        self.faults_on = false;
        self.crash_soon.clear();
        self.net.heal();
        self.net.faults.drop_per_mille = 0;
        self.net.faults.duplicate_per_mille = 0;
        self.net.faults.delay_steps_max = self.net.faults.delay_steps_max.min(10);
        for id in 1..=self.params.nodes as NodeId {
            if !self.node(id).up {
                self.start_node(id);
            }
        }
        for _ in 0..self.params.quiet_steps {
            self.reap_removed();
            self.step();
            if let Some(v) = self.checker.violation.take() {
                return Err(v);
            }
        }
        let mut voters = Vec::new();
        for g in 0..self.params.groups {
            let mut best: Option<(Term, Membership)> = None;
            for id in 1..=self.params.nodes as NodeId {
                if let Some(r) = self.raft(id, g) {
                    if r.role() == Role::Leader && best.as_ref().is_none_or(|(t, _)| r.term() > *t)
                    {
                        best = Some((r.term(), r.membership().clone()));
                    }
                }
            }
            match best {
                Some((_, m)) => voters.push(m.voters),
                None => {
                    return Err(format!(
                        "group {g} has no leader after {} quiet steps\n{}",
                        self.params.quiet_steps,
                        self.describe(g)
                    ))
                }
            }
        }
        self.checker.check_final(&voters);
        if let Some(v) = self.checker.violation.take() {
            let states: String = (0..self.params.groups)
                .map(|g| format!("group {g}:\n{}", self.describe(g)))
                .collect();
            return Err(format!("{v}\n{states}"));
        }
        self.report.quiescent_at_end = self
            .nodes
            .iter()
            .flat_map(|n| n.replicas.iter())
            .filter(|r| r.raft.as_ref().is_some_and(|r| r.is_quiescent()))
            .count() as u64;
        self.report.acks = self.checker.acks().len();
        self.report.elections = self.checker.elections;
        self.report.applies = self.checker.applies;
        Ok(self.report)
    }
}
