//! A hand-driven cluster for unit tests: instant or manual persistence, a FIFO network
//! whose links a test can cut, and an application log per node that appends carry.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::{
    AppendResult, Config, Entry, LogOp, Membership, Message, MessageBody, NodeId, PersistToken,
    Raft, RestoredState, Role,
};

pub struct TestNode {
    pub raft: Raft,
    /// The application's log: batches from the log start.
    pub log: Vec<Entry>,
    /// Batches applied, in order.
    pub applied: Vec<Entry>,
    /// When set, persists wait for `persist_all`.
    pub manual_persist: bool,
    pub unpersisted: Vec<PersistToken>,
    /// Log operations seen, for assertions.
    pub truncations: Vec<u64>,
    pub snapshots_installed: u64,
    pub rejections_sent: u64,
    pub last_ready_durable_end: u64,
    /// Last hard state written, and the bootstrap membership, for `restart`.
    pub hard: crate::HardState,
    pub bootstrap: Membership,
}

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, TestNode>,
    pub queue: VecDeque<Message>,
    pub blocked: HashSet<(NodeId, NodeId)>,
    /// The transport attaches at most this many batches to one append.
    pub frame_entries_max: usize,
    pub configs: BTreeMap<NodeId, Config>,
}

pub fn config(id: NodeId) -> Config {
    Config::new(id, 7)
}

impl Cluster {
    /// Voters `ids`, each configured by `tweak`.
    pub fn new(ids: &[NodeId], tweak: impl Fn(&mut Config)) -> Cluster {
        let membership = Membership::new(ids).unwrap();
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            blocked: HashSet::new(),
            frame_entries_max: usize::MAX,
            configs: BTreeMap::new(),
        };
        for &id in ids {
            c.add_node(id, membership.clone(), &tweak);
        }
        c
    }

    pub fn add_node(&mut self, id: NodeId, membership: Membership, tweak: impl Fn(&mut Config)) {
        let mut cfg = config(id);
        tweak(&mut cfg);
        self.configs.insert(id, cfg.clone());
        let raft = Raft::new(cfg, RestoredState::bootstrap(membership.clone())).unwrap();
        self.nodes.insert(
            id,
            TestNode {
                raft,
                log: Vec::new(),
                applied: Vec::new(),
                manual_persist: false,
                unpersisted: Vec::new(),
                truncations: Vec::new(),
                snapshots_installed: 0,
                rejections_sent: 0,
                last_ready_durable_end: 0,
                hard: crate::HardState::default(),
                bootstrap: membership,
            },
        );
    }

    pub fn raft(&mut self, id: NodeId) -> &mut Raft {
        &mut self.nodes.get_mut(&id).unwrap().raft
    }

    pub fn node(&self, id: NodeId) -> &TestNode {
        &self.nodes[&id]
    }

    /// Cuts both directions between `a` and each of `others`.
    pub fn isolate(&mut self, a: NodeId, others: &[NodeId]) {
        for &b in others {
            self.blocked.insert((a, b));
            self.blocked.insert((b, a));
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Carries out every Ready of `id`.
    pub fn process(&mut self, id: NodeId) {
        for _ in 0..100 {
            let frame_max = self.frame_entries_max;
            let n = self.nodes.get_mut(&id).unwrap();
            if !n.raft.has_ready() {
                return;
            }
            let rd = n.raft.ready();
            for op in rd.log_ops {
                match op {
                    LogOp::Truncate { end_offset } => {
                        n.truncations.push(end_offset);
                        n.log.retain(|e| e.end_offset <= end_offset);
                    }
                    LogOp::Append(es) => n.log.extend(es),
                    LogOp::InstallSnapshot(_) => {
                        n.snapshots_installed += 1;
                        n.log.clear();
                    }
                }
            }
            n.last_ready_durable_end = rd.durable_end_offset;
            if let Some(h) = rd.hard_state {
                n.hard = h;
            }
            let from = rd.apply_from_offset;
            let to = rd.apply_end_offset;
            let batch: Vec<Entry> = n
                .log
                .iter()
                .filter(|e| e.start_offset >= from && e.start_offset < to)
                .cloned()
                .collect();
            n.applied.extend(batch);
            for mut m in rd.messages {
                if let MessageBody::Append(a) = &mut m.body {
                    let mut end = a.prev_end_offset;
                    for e in n
                        .log
                        .iter()
                        .filter(|e| {
                            e.start_offset >= a.prev_end_offset
                                && e.start_offset < a.send_end_offset
                        })
                        .take(frame_max)
                    {
                        if e.start_offset != end {
                            break;
                        }
                        end = e.end_offset;
                        a.entries.push(e.clone());
                    }
                }
                if matches!(
                    m.body,
                    MessageBody::AppendResponse(AppendResult::Rejected { .. })
                ) {
                    n.rejections_sent += 1;
                }
                self.queue.push_back(m);
            }
            if let Some(t) = rd.persist {
                if n.manual_persist {
                    n.unpersisted.push(t);
                } else {
                    n.raft.persisted(t);
                }
            }
        }
        panic!("node {id} never ran out of work");
    }

    /// A crash and restart of `id` with everything it wrote (the harness loses nothing):
    /// the state machine is rebuilt from the log and hard state, as a follower.
    pub fn restart(&mut self, id: NodeId) {
        self.process(id);
        let cfg = self.configs[&id].clone();
        let n = self.nodes.get_mut(&id).unwrap();
        let mut state = RestoredState::bootstrap(n.bootstrap.clone());
        state.hard_state = n.hard;
        state.log_start_offset = n.raft.log_start_offset();
        state.log_start_term = n.raft.epochs().log_start_term();
        state.log_start_membership = n.raft.log_start_membership().clone();
        state.commit_offset = state.log_start_offset;
        for e in &n.log {
            if state.epochs.last().is_none_or(|r| r.term != e.term) {
                state.epochs.push(crate::EpochRun {
                    term: e.term,
                    start_offset: e.start_offset,
                });
            }
            if let crate::EntryKind::Membership(m) = &e.kind {
                state.memberships.push((e.start_offset, m.clone()));
            }
        }
        state.log_end_offset = n
            .log
            .last()
            .map_or(state.log_start_offset, |e| e.end_offset);
        n.raft = Raft::new(cfg, state).unwrap();
        n.applied.clear();
    }

    /// Acknowledges every pending persist of `id`.
    pub fn persist_all(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        for t in std::mem::take(&mut n.unpersisted) {
            n.raft.persisted(t);
        }
        self.process(id);
    }

    /// Delivers until nothing is in flight (cut links drop their messages).
    pub fn deliver_all(&mut self) {
        for _ in 0..100_000 {
            let Some(m) = self.queue.pop_front() else {
                return;
            };
            if self.blocked.contains(&(m.from, m.to)) || !self.nodes.contains_key(&m.to) {
                continue;
            }
            let to = m.to;
            self.raft(to).step(m).unwrap();
            self.process(to);
        }
        panic!("the network never went quiet");
    }

    /// Delivers one message at a time until `done` holds (or nothing is in flight).
    pub fn deliver_until(&mut self, done: impl Fn(&Cluster) -> bool) {
        while !done(self) {
            let Some(m) = self.queue.pop_front() else {
                return;
            };
            if self.blocked.contains(&(m.from, m.to)) || !self.nodes.contains_key(&m.to) {
                continue;
            }
            let to = m.to;
            self.raft(to).step(m).unwrap();
            self.process(to);
        }
    }

    /// Ticks every node `n` times, delivering in between.
    pub fn tick_all(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.raft(id).tick();
                self.process(id);
            }
            self.deliver_all();
        }
    }

    /// Ticks only `id`, `n` times.
    pub fn tick_node(&mut self, id: NodeId, n: usize) {
        for _ in 0..n {
            self.raft(id).tick();
            self.process(id);
            self.deliver_all();
        }
    }

    /// Makes `id` campaign and delivers the election.
    pub fn elect(&mut self, id: NodeId) {
        self.raft(id).campaign_now();
        self.process(id);
        self.deliver_all();
        assert_eq!(self.raft(id).role(), Role::Leader, "node {id} did not win");
    }

    /// Proposes a batch of `offsets` on `id` and processes it (not delivered).
    pub fn propose(&mut self, id: NodeId, offsets: u64) -> Entry {
        let e = self.raft(id).propose(offsets).unwrap();
        self.process(id);
        e
    }

    pub fn leaders(&self) -> Vec<(NodeId, u64)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raft.role() == Role::Leader)
            .map(|(id, n)| (*id, n.raft.term()))
            .collect()
    }

    /// Every node's log is `log` of the given node.
    pub fn assert_logs_equal(&self, ids: &[NodeId]) {
        let first = &self.nodes[&ids[0]].log;
        for id in &ids[1..] {
            assert_eq!(
                &self.nodes[id].log, first,
                "logs of {} and {id} differ",
                ids[0]
            );
        }
    }
}
