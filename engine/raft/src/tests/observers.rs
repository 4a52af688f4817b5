//! Observers: replicas outside the membership (the controller group's non-voter
//! brokers) that the leader keeps up to date but never counts.

use super::harness::Cluster;
use crate::{Membership, ProposeError, Role};

/// Three voters and an observer 4 that knows the voters as its membership.
fn cluster_with_observer() -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.add_node(4, Membership::new(&[1, 2, 3]).unwrap(), |_| {});
    for id in [1, 2, 3] {
        c.raft(id).set_observers(&[4, id]);
    }
    c
}

#[test]
fn an_observer_receives_the_log_the_leader_commits() {
    let mut c = cluster_with_observer();
    c.elect(1);
    assert_eq!(c.raft(1).observers(), &[4]);
    for _ in 0..4 {
        c.propose(1, 3);
    }
    c.deliver_all();
    c.tick_all(3);
    let commit = c.raft(1).commit_offset();
    assert_eq!(commit, c.raft(1).log_end_offset());
    assert_eq!(c.raft(4).log_end_offset(), c.raft(1).log_end_offset());
    assert_eq!(
        c.raft(4).commit_offset(),
        commit,
        "the observer learns the commit"
    );
    assert_eq!(c.raft(4).leader(), Some(1));
    c.assert_logs_equal(&[1, 2, 3, 4]);
}

#[test]
fn an_observer_never_counts_towards_commit() {
    let mut c = cluster_with_observer();
    c.elect(1);
    c.tick_all(2);
    let before = c.raft(1).commit_offset();
    // Only the observer hears the leader: nothing new may commit.
    c.isolate(1, &[2, 3]);
    c.propose(1, 5);
    c.tick_all(4);
    assert_eq!(c.raft(4).log_end_offset(), c.raft(1).log_end_offset());
    assert_eq!(c.raft(1).commit_offset(), before);
    c.heal();
    c.tick_all(4);
    assert_eq!(c.raft(1).commit_offset(), c.raft(1).log_end_offset());
}

#[test]
fn an_observer_never_campaigns_and_cannot_be_a_transfer_target() {
    let mut c = cluster_with_observer();
    c.elect(1);
    c.tick_all(2);
    c.isolate(4, &[1, 2, 3]);
    c.tick_node(4, 60);
    assert_eq!(c.raft(4).role(), Role::Follower);
    assert_eq!(
        c.raft(1).transfer_leadership(4),
        Err(ProposeError::NotVoter(4))
    );
}

#[test]
fn a_new_leader_replicates_to_the_observers_it_was_told_of() {
    let mut c = cluster_with_observer();
    c.elect(1);
    c.propose(1, 2);
    c.tick_all(3);
    c.isolate(1, &[2, 3, 4]);
    c.tick_all(40);
    let leaders: Vec<u64> = c
        .leaders()
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| *id != 1)
        .collect();
    let [new] = leaders[..] else {
        panic!("one new leader expected, got {leaders:?}");
    };
    c.propose(new, 7);
    c.tick_all(3);
    assert_eq!(c.raft(4).leader(), Some(new));
    assert_eq!(c.raft(4).log_end_offset(), c.raft(new).log_end_offset());
    c.assert_logs_equal(&[2, 3, 4]);
}

#[test]
fn dropped_observers_are_no_longer_sent_to() {
    let mut c = cluster_with_observer();
    c.elect(1);
    c.tick_all(2);
    c.raft(1).set_observers(&[]);
    assert!(c.raft(1).progress(4).is_none());
    c.propose(1, 4);
    c.tick_all(3);
    assert!(c.raft(4).log_end_offset() < c.raft(1).log_end_offset());
}
