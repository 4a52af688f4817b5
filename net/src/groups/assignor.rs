//! Assignors: which member of a group consumes which partition.
//!
//! Every assignor gives each partition of every subscribed topic to exactly one
//! member subscribed to its topic, and every member appears in the result (perhaps
//! with nothing). `Range` splits each topic into contiguous runs, `RoundRobin` deals
//! all partitions out in turn, `Sticky` keeps each partition with its previous owner
//! where that keeps the counts balanced and moves as few as it must.

use std::collections::{BTreeMap, BTreeSet};

/// A partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// Member id → the partitions it consumes, sorted.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// How a group's partitions are spread over its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Range,
    RoundRobin,
    Sticky,
}

impl Strategy {
    /// The wire value (the `AssignmentStrategy` enum of native.fbs).
    pub fn to_i8(self) -> i8 {
        match self {
            Strategy::Range => 0,
            Strategy::RoundRobin => 1,
            Strategy::Sticky => 2,
        }
    }

    /// The strategy of a wire value.
    pub fn from_i8(v: i8) -> Option<Strategy> {
        match v {
            0 => Some(Strategy::Range),
            1 => Some(Strategy::RoundRobin),
            2 => Some(Strategy::Sticky),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::RoundRobin => "roundrobin",
            Strategy::Sticky => "sticky",
        }
    }
}

/// Assigns the partitions of the topics in `subscriptions` (member → topics) to the
/// members. `partition_counts` gives each topic's partitions (topics missing from it
/// are skipped); `previous` is the last assignment (used by `Sticky` only).
pub fn assign(
    strategy: Strategy,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
    previous: &Assignment,
) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let topics: BTreeSet<&String> = subscriptions.values().flatten().collect();
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .filter_map(|t| partition_counts.get(*t).map(|n| (t, *n)))
        .flat_map(|(t, n)| (0..n).map(move |p| TopicPartition::new(t.as_str(), p)))
        .collect();
    match strategy {
        Strategy::Range => range(subscriptions, &partitions, &mut out),
        Strategy::RoundRobin => round_robin(subscriptions, &partitions, &mut out),
        Strategy::Sticky => sticky(subscriptions, &partitions, previous, &mut out),
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn range(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &[TopicPartition],
    out: &mut Assignment,
) {
    let mut by_topic: BTreeMap<&str, Vec<&TopicPartition>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(tp.topic.as_str()).or_default().push(tp);
    }
    for (topic, tps) in by_topic {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, t)| t.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let (n, m) = (tps.len(), members.len());
        if m == 0 {
            continue;
        }
        let (per, extra) = (n / m, n % m);
        for (i, member) in members.into_iter().enumerate() {
            let start = i * per + i.min(extra);
            let len = per + usize::from(i < extra);
            let slot = out.get_mut(member).expect("every member has a slot");
            slot.extend(tps[start..start + len].iter().map(|tp| (*tp).clone()));
        }
    }
}

fn round_robin(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &[TopicPartition],
    out: &mut Assignment,
) {
    let members: Vec<(&String, &BTreeSet<String>)> = subscriptions.iter().collect();
    if members.is_empty() {
        return;
    }
    let mut next = 0usize;
    for tp in partitions {
        // Partitions come from subscribed topics, so some member takes each one.
        for step in 0..members.len() {
            let i = (next + step) % members.len();
            if members[i].1.contains(&tp.topic) {
                out.get_mut(members[i].0)
                    .expect("every member has a slot")
                    .push(tp.clone());
                next = i + 1;
                break;
            }
        }
    }
}

fn sticky(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &[TopicPartition],
    previous: &Assignment,
    out: &mut Assignment,
) {
    let wanted: BTreeSet<&TopicPartition> = partitions.iter().collect();
    let eligible = |m: &str, tp: &TopicPartition| {
        subscriptions
            .get(m)
            .is_some_and(|topics| topics.contains(&tp.topic))
    };
    // 1. Keep what previous owners still can own.
    let mut owned: BTreeSet<&TopicPartition> = BTreeSet::new();
    for (member, tps) in previous {
        if !out.contains_key(member) {
            continue;
        }
        for tp in tps {
            if let Some(tp) = wanted.get(tp) {
                if eligible(member, tp) && owned.insert(tp) {
                    out.get_mut(member)
                        .expect("checked above")
                        .push((*tp).clone());
                }
            }
        }
    }
    // 2. Give each orphan to the least loaded eligible member.
    for tp in partitions {
        if owned.contains(tp) {
            continue;
        }
        let target = out
            .iter()
            .filter(|(m, _)| eligible(m, tp))
            .min_by_key(|(m, v)| (v.len(), (*m).clone()))
            .map(|(m, _)| m.clone());
        if let Some(m) = target {
            out.get_mut(&m).expect("a member of out").push(tp.clone());
        }
    }
    // 3. Move partitions from the most to the least loaded member while that makes
    // the counts closer; each move lowers the sum of squared counts, so this ends.
    let moves_max = partitions.len().saturating_mul(partitions.len()).max(1);
    for _ in 0..moves_max {
        if !move_one(out, &eligible) {
            break;
        }
    }
}

/// Moves one partition from a member to an eligible member with at least two fewer;
/// false when no such move exists.
fn move_one(out: &mut Assignment, eligible: &dyn Fn(&str, &TopicPartition) -> bool) -> bool {
    let mut donors: Vec<(usize, String)> = out.iter().map(|(m, v)| (v.len(), m.clone())).collect();
    donors.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (count, donor) in donors {
        // Newest-kept partitions move first: the end of the donor's list.
        let tps = out[&donor].clone();
        for (i, tp) in tps.iter().enumerate().rev() {
            let target = out
                .iter()
                .filter(|(m, v)| **m != donor && v.len() + 1 < count && eligible(m, tp))
                .min_by_key(|(m, v)| (v.len(), (*m).clone()))
                .map(|(m, _)| m.clone());
            if let Some(target) = target {
                let tp = out.get_mut(&donor).expect("a member").remove(i);
                out.get_mut(&target).expect("a member").push(tp);
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(topics: &[(&str, u32)]) -> BTreeMap<String, u32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// Every partition of every subscribed topic goes to exactly one subscribed member.
    fn check_complete(
        a: &Assignment,
        s: &BTreeMap<String, BTreeSet<String>>,
        c: &BTreeMap<String, u32>,
    ) {
        let mut seen = BTreeSet::new();
        for (m, tps) in a {
            for tp in tps {
                assert!(s[m].contains(&tp.topic), "{m} got {tp:?} it does not want");
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        let topics: BTreeSet<&String> = s.values().flatten().collect();
        let expected: usize = topics
            .iter()
            .map(|t| c.get(*t).copied().unwrap_or(0) as usize)
            .sum();
        assert_eq!(seen.len(), expected, "some partition is unassigned");
        assert_eq!(a.len(), s.len(), "every member has an entry");
    }

    fn sizes(a: &Assignment) -> Vec<usize> {
        a.values().map(Vec::len).collect()
    }

    const ALL: [Strategy; 3] = [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky];

    #[test]
    fn every_strategy_covers_without_overlap() {
        let cases = [
            (
                subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]),
                counts(&[("t", 6)]),
            ),
            (
                subs(&[("a", &["t", "u"]), ("b", &["t"])]),
                counts(&[("t", 5), ("u", 3)]),
            ),
            (
                subs(&[("a", &["t"]), ("b", &["u"]), ("c", &["t", "u"])]),
                counts(&[("t", 7), ("u", 2)]),
            ),
            (
                subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"]), ("d", &["t"])]),
                counts(&[("t", 2)]),
            ),
            (subs(&[("a", &["missing"])]), counts(&[("t", 2)])),
            (subs(&[]), counts(&[("t", 2)])),
        ];
        for strategy in ALL {
            for (s, c) in &cases {
                let a = assign(strategy, s, c, &Assignment::new());
                check_complete(&a, s, c);
            }
        }
    }

    #[test]
    fn range_gives_contiguous_runs_extra_to_the_first() {
        let s = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let a = assign(
            Strategy::Range,
            &s,
            &counts(&[("t", 7)]),
            &Assignment::new(),
        );
        let parts = |m: &str| a[m].iter().map(|tp| tp.partition).collect::<Vec<_>>();
        assert_eq!(parts("a"), vec![0, 1, 2]);
        assert_eq!(parts("b"), vec![3, 4]);
        assert_eq!(parts("c"), vec![5, 6]);
    }

    #[test]
    fn round_robin_deals_in_turn() {
        let s = subs(&[("a", &["t", "u"]), ("b", &["t", "u"])]);
        let a = assign(
            Strategy::RoundRobin,
            &s,
            &counts(&[("t", 2), ("u", 2)]),
            &Assignment::new(),
        );
        assert_eq!(
            a["a"],
            vec![TopicPartition::new("t", 0), TopicPartition::new("u", 0)]
        );
        assert_eq!(
            a["b"],
            vec![TopicPartition::new("t", 1), TopicPartition::new("u", 1)]
        );
    }

    #[test]
    fn homogeneous_groups_are_balanced() {
        for strategy in [Strategy::RoundRobin, Strategy::Sticky] {
            for members in 1..6 {
                for n in 0..13 {
                    let names: Vec<String> = (0..members).map(|i| format!("m{i}")).collect();
                    let s: BTreeMap<String, BTreeSet<String>> = names
                        .iter()
                        .map(|m| (m.clone(), ["t".to_owned(), "u".to_owned()].into()))
                        .collect();
                    let c = counts(&[("t", n), ("u", n / 2)]);
                    let a = assign(strategy, &s, &c, &Assignment::new());
                    check_complete(&a, &s, &c);
                    let sz = sizes(&a);
                    let (lo, hi) = (sz.iter().min().unwrap(), sz.iter().max().unwrap());
                    assert!(hi - lo <= 1, "{strategy:?} {members} members {n}: {sz:?}");
                }
            }
        }
    }

    #[test]
    fn sticky_keeps_owners_when_a_member_joins() {
        let c = counts(&[("t", 6)]);
        let two = subs(&[("a", &["t"]), ("b", &["t"])]);
        let before = assign(Strategy::Sticky, &two, &c, &Assignment::new());
        let three = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let after = assign(Strategy::Sticky, &three, &c, &before);
        check_complete(&after, &three, &c);
        assert_eq!(sizes(&after), vec![2, 2, 2]);
        // Only the two partitions the new member needs moved.
        for m in ["a", "b"] {
            for tp in &after[m] {
                assert!(before[m].contains(tp), "{tp:?} moved to {m} needlessly");
            }
        }
    }

    #[test]
    fn sticky_keeps_owners_when_a_member_leaves() {
        let c = counts(&[("t", 6)]);
        let three = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let before = assign(Strategy::Sticky, &three, &c, &Assignment::new());
        let two = subs(&[("a", &["t"]), ("c", &["t"])]);
        let after = assign(Strategy::Sticky, &two, &c, &before);
        check_complete(&after, &two, &c);
        assert_eq!(sizes(&after), vec![3, 3]);
        for m in ["a", "c"] {
            for tp in &before[m] {
                assert!(after[m].contains(tp), "{m} lost {tp:?}");
            }
        }
    }

    #[test]
    fn sticky_ignores_stale_previous_ownership() {
        let c = counts(&[("t", 4)]);
        let s = subs(&[("a", &["t"]), ("b", &["t"])]);
        let mut previous = Assignment::new();
        // a claimed everything (and a partition that no longer exists), b claims a dup.
        previous.insert(
            "a".into(),
            (0..6).map(|p| TopicPartition::new("t", p)).collect(),
        );
        previous.insert("b".into(), vec![TopicPartition::new("t", 0)]);
        previous.insert("gone".into(), vec![TopicPartition::new("t", 1)]);
        let a = assign(Strategy::Sticky, &s, &c, &previous);
        check_complete(&a, &s, &c);
        assert_eq!(sizes(&a), vec![2, 2]);
    }

    #[test]
    fn wire_values_round_trip() {
        for s in ALL {
            assert_eq!(Strategy::from_i8(s.to_i8()), Some(s));
        }
        assert_eq!(Strategy::from_i8(9), None);
    }
}
