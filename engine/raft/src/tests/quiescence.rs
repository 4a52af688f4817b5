//! Quiescence: idle groups stop ticking and sending; messages, proposals and broker
//! lapses wake them; elections after a lapse; check-quorum still deposes a cut-off
//! leader.

use super::harness::Cluster;
use crate::{Config, Message, MessageBody, NodeId, Role};

fn quiescent(c: &mut Config) {
    c.quiesce = true;
}

/// A 3-voter group led by node 1 with a few committed batches, ticked until idle.
fn idle_group() -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3], quiescent);
    c.elect(1);
    for _ in 0..3 {
        c.propose(1, 2);
    }
    c.deliver_all();
    c.tick_all(10);
    c
}

fn all_quiescent(c: &mut Cluster, ids: &[NodeId]) -> bool {
    ids.iter().all(|&id| c.raft(id).is_quiescent())
}

#[test]
fn an_idle_group_goes_quiescent_and_sends_nothing() {
    let mut c = idle_group();
    assert!(
        all_quiescent(&mut c, &[1, 2, 3]),
        "leader and followers are quiescent"
    );
    let end = c.raft(1).log_end_offset();
    for id in [2, 3] {
        assert_eq!(
            c.raft(id).commit_offset(),
            end,
            "node {id} knows the commit"
        );
    }
    // Many election timeouts of ticks: no message, no election, same term.
    let term = c.raft(1).term();
    for _ in 0..200 {
        for id in [1, 2, 3] {
            c.raft(id).tick();
            assert!(
                !c.raft(id).has_ready(),
                "node {id} had work while quiescent"
            );
        }
    }
    assert!(c.queue.is_empty());
    assert_eq!(c.leaders(), vec![(1, term)]);
}

#[test]
fn without_quiescence_configured_a_leader_keeps_heartbeating() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.tick_all(20);
    assert!(!c.raft(1).is_quiescent());
    c.raft(1).tick();
    c.raft(1).tick();
    c.process(1);
    assert!(!c.queue.is_empty(), "heartbeats go out");
}

#[test]
fn a_proposal_wakes_the_group_and_commits() {
    let mut c = idle_group();
    let e = c.propose(1, 3);
    assert!(!c.raft(1).is_quiescent());
    c.deliver_all();
    assert_eq!(c.raft(1).commit_offset(), e.end_offset);
    // The followers learn the commit from the next heartbeats, then all go quiet again.
    c.tick_all(10);
    for id in [2, 3] {
        assert_eq!(c.raft(id).commit_offset(), e.end_offset);
    }
    assert!(all_quiescent(&mut c, &[1, 2, 3]));
}

#[test]
fn followers_of_a_crashed_quiescent_leader_elect_once_its_broker_lapses() {
    let mut c = idle_group();
    let term = c.raft(1).term();
    // Node 1 dies; until the failure detector says so, its lease holds.
    c.isolate(1, &[2, 3]);
    c.tick_all(100);
    assert_eq!(c.raft(2).role(), Role::Follower);
    assert_eq!(c.raft(3).role(), Role::Follower);
    assert_eq!(c.raft(2).term(), term);
    for id in [2, 3] {
        c.raft(id).broker_lapsed(1);
        assert!(!c.raft(id).is_quiescent());
    }
    // The lapse ends the lease: an election within one more election timeout.
    let mut elected_after = None;
    for t in 1..=20 {
        c.tick_all(1);
        if c.leaders().iter().any(|(id, _)| *id != 1) {
            elected_after = Some(t);
            break;
        }
    }
    let ticks = elected_after.expect("a new leader after the lapse");
    assert!(ticks <= 10, "elected {ticks} ticks after the lapse");
    let new: Vec<_> = c.leaders().into_iter().filter(|(id, _)| *id != 1).collect();
    assert!(new[0].1 > term);
}

#[test]
fn a_lapse_of_another_broker_leaves_a_follower_quiescent() {
    let mut c = idle_group();
    c.raft(2).broker_lapsed(3);
    assert!(
        c.raft(2).is_quiescent(),
        "only the leader's broker matters to a follower"
    );
}

#[test]
fn a_cut_off_quiescent_leader_steps_down_after_its_followers_lapse() {
    let mut c = idle_group();
    c.isolate(1, &[2, 3]);
    c.raft(1).broker_lapsed(2);
    c.raft(1).broker_lapsed(3);
    assert!(!c.raft(1).is_quiescent());
    c.tick_node(1, 25);
    assert_ne!(c.raft(1).role(), Role::Leader, "check-quorum deposed it");
}

#[test]
fn a_leader_with_one_lapsed_follower_keeps_leading_with_the_other() {
    let mut c = idle_group();
    c.isolate(3, &[1, 2]);
    c.raft(1).broker_lapsed(3);
    c.tick_all(50);
    assert_eq!(c.raft(1).role(), Role::Leader);
    assert!(
        !c.raft(1).is_quiescent(),
        "a lagging follower keeps the leader awake"
    );
    let e = c.propose(1, 1);
    c.deliver_all();
    assert_eq!(c.raft(1).commit_offset(), e.end_offset);
}

#[test]
fn a_follower_woken_alone_wakes_the_leader_instead_of_deposing_it() {
    let mut c = idle_group();
    let term = c.raft(1).term();
    // A stray message (a late duplicate) wakes node 3 alone: it counts ticks again, and
    // with the leader silent it times out and asks for pre-votes.
    let stray = Message {
        from: 2,
        to: 3,
        term,
        body: MessageBody::PreVoteResponse { granted: false },
    };
    c.raft(3).step(stray).unwrap();
    assert!(!c.raft(3).is_quiescent());
    assert!(all_quiescent(&mut c, &[1, 2]));
    // Its pre-vote wakes the leader, which heartbeats it back: no election.
    c.tick_all(60);
    assert_eq!(c.leaders(), vec![(1, term)], "no election, same term");
    assert!(all_quiescent(&mut c, &[1, 2, 3]));
}

#[test]
fn a_restarted_leader_broker_is_replaced_once_its_restart_is_seen() {
    let mut c = idle_group();
    let term = c.raft(1).term();
    c.restart(1);
    // The restart is a new connection: the failure detector reports a lapse.
    for id in [2, 3] {
        c.raft(id).broker_lapsed(1);
    }
    c.tick_all(40);
    let leaders = c.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert!(leaders[0].1 > term);
}
