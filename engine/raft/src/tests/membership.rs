//! Membership change as a reassignment does it: add a learner, let it catch up,
//! promote it, hand leadership away from the replica to remove, remove it.

use super::harness::Cluster;
use crate::{Membership, MembershipChange, ProposeError, Role};

#[test]
fn reassignment_adds_a_learner_promotes_it_and_removes_the_old_replica() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.add_node(4, Membership::default(), |_| {});
    c.elect(1);
    for _ in 0..5 {
        c.propose(1, 2);
    }
    c.deliver_all();
    c.tick_all(2);

    // A learner receives the log but never votes or campaigns.
    c.isolate(4, &[1, 2, 3]);
    c.raft(1)
        .propose_membership(MembershipChange::AddLearner(4))
        .unwrap();
    assert_eq!(
        c.raft(1)
            .propose_membership(MembershipChange::AddLearner(5)),
        Err(ProposeError::MembershipChangePending)
    );
    c.process(1);
    c.deliver_all();
    c.tick_all(2);
    assert_eq!(
        c.raft(1).propose_membership(MembershipChange::Promote(4)),
        Err(ProposeError::NotCaughtUp(4))
    );
    c.heal();
    c.tick_all(3);
    assert!(c.raft(4).membership().is_learner(4));
    c.tick_node(4, 40);
    assert_eq!(
        c.raft(4).role(),
        Role::Follower,
        "a learner never campaigns"
    );
    assert_eq!(c.raft(4).log_end_offset(), c.raft(1).log_end_offset());

    c.raft(1)
        .propose_membership(MembershipChange::Promote(4))
        .unwrap();
    c.process(1);
    c.tick_all(3);
    assert_eq!(c.raft(1).membership().voters, vec![1, 2, 3, 4]);
    assert_eq!(c.raft(1).membership().quorum(), 3);

    // The leader cannot remove itself: it hands over first.
    assert_eq!(
        c.raft(1).propose_membership(MembershipChange::Remove(1)),
        Err(ProposeError::RemoveLeader)
    );
    c.raft(1).transfer_leadership(4).unwrap();
    c.process(1);
    c.deliver_all();
    assert_eq!(c.raft(4).role(), Role::Leader);
    // A new leader changes membership only after committing an entry of its term.
    c.tick_all(2);
    c.raft(4)
        .propose_membership(MembershipChange::Remove(1))
        .unwrap();
    c.process(4);
    c.tick_all(3);
    for id in [2, 3, 4] {
        assert_eq!(c.raft(id).membership().voters, vec![2, 3, 4], "node {id}");
    }
    // The group commits without the removed replica.
    c.isolate(1, &[2, 3, 4]);
    let e = c.propose(4, 1);
    c.deliver_all();
    assert!(c.raft(4).commit_offset() >= e.end_offset);
    assert!(
        c.raft(4).progress(1).is_none(),
        "no replication to a removed replica"
    );
}

#[test]
fn a_membership_entry_takes_effect_on_append_and_reverts_on_truncation() {
    let mut c = Cluster::new(&[1, 2, 3], |cfg| {
        cfg.pre_vote = false;
        cfg.check_quorum = false;
    });
    c.elect(1);
    c.tick_all(2);
    // The change is appended on the cut-off leader only, so it never commits.
    c.isolate(1, &[2, 3]);
    c.raft(1)
        .propose_membership(MembershipChange::Remove(3))
        .unwrap();
    c.process(1);
    assert_eq!(
        c.raft(1).membership().voters,
        vec![1, 2],
        "in force once appended"
    );
    assert!(c.raft(1).commit_offset() < c.raft(1).log_end_offset());
    // The others elect node 2 under the old membership; node 1 returns and is truncated.
    c.elect(2);
    c.heal();
    c.tick_all(8);
    assert_eq!(
        c.raft(1).membership().voters,
        vec![1, 2, 3],
        "reverted with the truncated entry"
    );
    assert_eq!(c.raft(1).membership_offset(), None);
    c.assert_logs_equal(&[1, 2, 3]);
}

#[test]
fn memberships_beyond_the_bound_are_refused() {
    let ids: Vec<u64> = (1..=crate::MEMBERS_MAX as u64 + 1).collect();
    assert!(Membership::new(&ids).is_err());
    assert!(Membership::new(&ids[..crate::MEMBERS_MAX]).is_ok());
}

/// A replica restarted in the middle of a move restores the membership its log holds
/// (the newest membership entry), not the one it started with: a promoted learner
/// comes back a voter, can campaign and win, and the others count it.
#[test]
fn a_replica_restarted_mid_move_uses_the_newest_membership_in_its_log() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.add_node(4, Membership::default(), |_| {});
    c.elect(1);
    c.propose(1, 2);
    c.deliver_all();
    for change in [
        MembershipChange::AddLearner(4),
        MembershipChange::Promote(4),
    ] {
        c.raft(1).propose_membership(change).unwrap();
        c.process(1);
        c.deliver_all();
        c.tick_all(2);
    }
    let moved = c.raft(1).membership().clone();
    assert!(moved.is_voter(4));
    for id in [2, 3, 4] {
        c.restart(id);
        assert_eq!(c.raft(id).membership(), &moved, "node {id} after restart");
    }
    // The leader goes; the promoted replica can lead the new membership.
    c.isolate(1, &[2, 3, 4]);
    c.tick_all(30);
    c.raft(4).campaign_now();
    c.process(4);
    c.deliver_all();
    let leaders: Vec<_> = c.leaders().into_iter().filter(|(id, _)| *id != 1).collect();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    let new_leader = leaders[0].0;
    c.propose(new_leader, 1);
    c.deliver_all();
    c.tick_all(2);
    let end = c.raft(new_leader).log_end_offset();
    assert_eq!(c.raft(new_leader).commit_offset(), end);
    assert_eq!(c.raft(4).commit_offset(), end);
}
