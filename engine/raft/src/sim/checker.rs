//! The checker over a simulation's recorded history. It proves, as the run goes and at
//! its end: no term of a group has two leaders; every acknowledged entry is in the log
//! of every leader of a later term; every replica applies the same batches in the same
//! order (so committed prefixes are identical everywhere); and, once the faults stop,
//! every acknowledged entry is applied by every voter.

use std::collections::{BTreeMap, HashMap};

use crate::{EpochCache, NodeId, Term};

/// A batch applied by some replica: where, in which term, with which payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// One past its last offset.
    pub end_offset: u64,
    /// Its term.
    pub term: Term,
    /// Its payload id.
    pub payload: u64,
}

/// An entry a client was told is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Group.
    pub group: usize,
    /// First offset.
    pub start_offset: u64,
    /// Term it was written in.
    pub term: Term,
    /// Payload id.
    pub payload: u64,
}

/// Everything recorded so far, and the violations found.
#[derive(Debug, Default)]
pub struct Checker {
    leaders: HashMap<(usize, Term), NodeId>,
    /// Each leader's log (term runs) when it was elected, per group.
    leader_logs: HashMap<usize, Vec<(Term, NodeId, EpochCache)>>,
    acks: Vec<Ack>,
    /// Per group: the batches applied anywhere, by start offset (the one true order).
    committed: HashMap<usize, BTreeMap<u64, Applied>>,
    /// Per (node, group): next offset it must apply.
    next_apply: HashMap<(NodeId, usize), u64>,
    /// The first violation, with enough context to debug it.
    pub violation: Option<String>,
    /// Counters for the run summary.
    pub elections: u64,
    /// Applied batches, over all replicas.
    pub applies: u64,
}

impl Checker {
    fn fail(&mut self, why: String) {
        if self.violation.is_none() {
            self.violation = Some(why);
        }
    }

    /// `node` became leader of `group` in `term` with log `log`.
    pub fn leader_elected(&mut self, group: usize, term: Term, node: NodeId, log: &EpochCache) {
        self.elections += 1;
        if let Some(&other) = self.leaders.get(&(group, term)) {
            if other != node {
                self.fail(format!(
                    "group {group}: term {term} has two leaders, {other} and {node}"
                ));
            }
            return;
        }
        self.leaders.insert((group, term), node);
        let missing = self
            .acks
            .iter()
            .find(|a| a.group == group && a.term < term && !holds(log, a))
            .copied();
        if let Some(a) = missing {
            self.fail(format!(
                "group {group}: leader {node} of term {term} lacks acknowledged entry {a:?}"
            ));
        }
        self.leader_logs
            .entry(group)
            .or_default()
            .push((term, node, log.clone()));
    }

    /// A client was told entry `a` is committed.
    pub fn acknowledged(&mut self, a: Ack) {
        let missing = self.leader_logs.get(&a.group).and_then(|logs| {
            logs.iter()
                .find(|(t, _, log)| *t > a.term && !holds(log, &a))
                .map(|(t, n, _)| (*t, *n))
        });
        if let Some((t, n)) = missing {
            self.fail(format!(
                "group {}: leader {n} of later term {t} lacks acknowledged entry {a:?}",
                a.group
            ));
        }
        self.acks.push(a);
    }

    /// `node` (re)started for `group` and will apply from `from_offset`.
    pub fn restarted(&mut self, node: NodeId, group: usize, from_offset: u64) {
        self.next_apply.insert((node, group), from_offset);
    }

    /// `node` applied the batch at `start_offset` of `group`.
    pub fn applied(&mut self, node: NodeId, group: usize, start_offset: u64, a: Applied) {
        self.applies += 1;
        let expected = *self.next_apply.get(&(node, group)).unwrap_or(&start_offset);
        self.next_apply.insert((node, group), a.end_offset);
        if expected != start_offset {
            self.fail(format!(
                "group {group}: node {node} applied offset {start_offset}, expected {expected}"
            ));
        }
        let log = self.committed.entry(group).or_default();
        let problem = match log.get(&start_offset) {
            Some(seen) if *seen != a => Some(format!(
                "group {group}: offset {start_offset} applied as {a:?} on node {node}, as {seen:?} elsewhere"
            )),
            Some(_) => None,
            None => {
                // A batch overlapping another's offsets would be a different history.
                let overlap = log
                    .range(..start_offset)
                    .next_back()
                    .is_some_and(|(_, prev)| prev.end_offset > start_offset)
                    || log.range(start_offset + 1..a.end_offset).next().is_some();
                log.insert(start_offset, a);
                overlap.then(|| {
                    format!(
                        "group {group}: node {node} applied [{start_offset}, {}) across other batches",
                        a.end_offset
                    )
                })
            }
        };
        if let Some(p) = problem {
            self.fail(p);
        }
    }

    /// `node` installed a snapshot of `group` ending at `end_offset` in `term`: it must
    /// stand for the committed history, whose batch ending there has that term.
    pub fn snapshot_installed(&mut self, node: NodeId, group: usize, end_offset: u64, term: Term) {
        self.next_apply.insert((node, group), end_offset);
        let last = self
            .committed
            .get(&group)
            .and_then(|l| l.range(..end_offset).next_back().map(|(s, a)| (*s, *a)));
        if let Some((start, a)) = last {
            if a.end_offset == end_offset && a.term != term {
                self.fail(format!(
                    "group {group}: node {node} installed a snapshot ending at {end_offset} in term {term}, \
                     but the committed batch at {start} has term {}",
                    a.term
                ));
            }
        }
    }

    /// Acknowledged entries so far.
    pub fn acks(&self) -> &[Ack] {
        &self.acks
    }

    /// The end check: every acknowledged entry was applied (somewhere, identically) and
    /// every node in `voters_by_group` applied past it.
    pub fn check_final(&mut self, voters_by_group: &[Vec<NodeId>]) {
        let acks = self.acks.clone();
        for a in acks {
            match self
                .committed
                .get(&a.group)
                .and_then(|l| l.get(&a.start_offset))
            {
                Some(x) if x.term == a.term && x.payload == a.payload => {}
                other => {
                    let other = other.copied();
                    self.fail(format!(
                        "acknowledged entry {a:?} is not applied (found {other:?})"
                    ));
                    return;
                }
            }
            for &v in &voters_by_group[a.group] {
                let end = self.next_apply.get(&(v, a.group)).copied().unwrap_or(0);
                if end <= a.start_offset {
                    self.fail(format!(
                        "voter {v} of group {} did not apply acknowledged {a:?} (applied to {end})",
                        a.group
                    ));
                    return;
                }
            }
        }
    }
}

/// Whether `log` (a leader's term runs) holds entry `a`, or compacted it away (only
/// committed offsets are ever compacted).
fn holds(log: &EpochCache, a: &Ack) -> bool {
    a.start_offset < log.log_start_offset() || log.term_at(a.start_offset) == Some(a.term)
}
