//! Carrying out the controller's reassignments and preferred-leader elections on a
//! partition's Raft leader.
//!
//! The controller records intent in the image (a partition's target replicas, an
//! election asked of the leader of some epoch; `crate::controller::reassignment`).
//! Every published image gives each shard a [`PartitionGoals`] snapshot, and every
//! [`DRIVE_TICKS`] the shard's tick loop lets each replica it leads take one step
//! towards its goal, with strata-raft's one-at-a-time membership changes:
//!
//! 1. a target replica that is no member yet joins as a learner (its broker hosts the
//!    partition as soon as the image names it, and catches up from the leader);
//! 2. a caught-up learner of the target is promoted to voter;
//! 3. members not in the target are removed, one at a time — the leader itself last,
//!    by handing leadership to an in-sync voter of the target first;
//! 4. once the voters are exactly the target, the leader reports it to the controller
//!    (`CompleteReassignment`), which makes the target the partition's replicas; a
//!    broker that no longer hosts the partition then closes it and deletes its data.
//!
//! Each step waits until the previous membership change is committed; the partition
//! keeps serving throughout (a learner never counts towards commit, and a promotion
//! happens only once the learner has everything committed). With no reassignment in
//! progress the goal is the image's replicas, so a cancelled reassignment is rolled
//! back the same way.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use strata_engine::shard::Shard;
use strata_raft::{MembershipChange, NodeId, ProposeError};

use crate::broker::Broker;
use crate::cluster::replicas::ShardReplicas;
use crate::cluster::replicated_log::ReplicatedLog;
use crate::controller::{ControllerCommand, MetadataImage};
use crate::replication::GroupId;

/// How often (in ticks) a leader takes a step towards its partition's goal.
pub const DRIVE_TICKS: u64 = 5;
/// Leadership transfers one preferred-leader election may start (each pauses the
/// partition's appends for up to an election timeout if it fails).
const ELECTION_ATTEMPTS_MAX: u32 = 3;
/// A preferred replica is handed leadership only if it answered within this many
/// ticks (two heartbeats and a margin): a transfer to a broker that just died would
/// pause the partition for an election timeout and spend an attempt.
const PREFERRED_CONTACT_TICKS: u32 = 5;

/// What the image wants of one partition this broker hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goal {
    /// The replicas, the first the preferred leader.
    pub replicas: Vec<NodeId>,
    /// The target of a reassignment in progress.
    pub target: Option<Vec<NodeId>>,
    /// A preferred-leader election asked of the leader of this epoch.
    pub preferred_election_epoch: Option<i32>,
}

impl Goal {
    /// The voters the group should end up with, in preference order.
    pub fn voters(&self) -> &[NodeId] {
        self.target.as_deref().unwrap_or(&self.replicas)
    }
}

/// The goals of the partitions this broker hosts or is getting, one image's worth.
pub type Goals = HashMap<GroupId, Goal>;

/// A shard's view of the goals and what its leaders have under way.
#[derive(Default)]
pub struct PartitionGoals {
    goals: RefCell<Arc<Goals>>,
    /// Completion reports sent and not yet answered.
    reporting: RefCell<HashSet<GroupId>>,
    /// Preferred-leader transfers started, per group and epoch.
    elections: RefCell<HashMap<(GroupId, i32), u32>>,
}

impl PartitionGoals {
    /// This shard's goals (empty until the first image).
    pub fn of(shard: &Shard) -> Rc<PartitionGoals> {
        if let Some(g) = shard.local::<PartitionGoals>() {
            return g;
        }
        let g = Rc::new(PartitionGoals::default());
        shard.insert_local(Rc::clone(&g));
        g
    }

    /// The goal of `group`, if this broker hosts it.
    pub fn get(&self, group: &GroupId) -> Option<Goal> {
        self.goals.borrow().get(group).cloned()
    }

    /// Whether broker `me` hosts `group` only as a reassignment's new replica.
    pub fn is_adding(&self, group: &GroupId, me: NodeId) -> bool {
        self.goals.borrow().get(group).is_some_and(|g| {
            !g.replicas.contains(&me) && g.target.as_ref().is_some_and(|t| t.contains(&me))
        })
    }
}

/// The goals of every partition broker `me` hosts or is getting in `image`.
pub fn goals_of(image: &MetadataImage, me: NodeId) -> Goals {
    let mut goals = Goals::new();
    for t in image.topics().values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if !p.is_hosted_by(me) {
                continue;
            }
            let group = GroupId::Partition {
                topic_id: t.id,
                partition: i as u32,
            };
            goals.insert(
                group,
                Goal {
                    replicas: p.replicas.clone(),
                    target: p.target.clone(),
                    preferred_election_epoch: p.preferred_election_epoch,
                },
            );
        }
    }
    goals
}

/// Hands the goals of `image` to every shard (before the topics, so a shard that
/// opens a new replica's partition knows it is one).
pub async fn publish_goals(broker: &Broker, image: &MetadataImage, me: NodeId) {
    let goals = Arc::new(goals_of(image, me));
    for s in 0..broker.shard.shard_count() {
        let g = Arc::clone(&goals);
        if let Err(e) = broker
            .shard
            .invoke_on(s, move |shard| async move {
                let old = std::mem::replace(&mut *PartitionGoals::of(&shard).goals.borrow_mut(), g);
                // A quiescent group is not ticked: wake the ones with something new to do.
                let goals = PartitionGoals::of(&shard).goals.borrow().clone();
                let replicas = ShardReplicas::of(&shard);
                for (group, goal) in goals.iter() {
                    if old.get(group) != Some(goal) {
                        replicas.keep_awake(*group);
                    }
                }
            })
            .await
        {
            tracing::warn!(shard = s, error = %e, "partition goals did not reach a shard");
        }
    }
}

/// Whether the leader `replica` still has a step to take towards its goal: a
/// reassignment in progress, or a preferred-leader election asked of its epoch that it
/// has not tried to the limit. Keeps the group ticking while true.
pub fn has_work(shard: &Shard, replica: &Rc<ReplicatedLog>) -> bool {
    if !replica.is_leader() {
        return false;
    }
    let goals = PartitionGoals::of(shard);
    let group = *replica.group();
    let Some(goal) = goals.get(&group) else {
        return false;
    };
    if goal.target.is_some() {
        return true;
    }
    let (_, term, me) = replica.leadership();
    let asked = goal
        .preferred_election_epoch
        .is_some_and(|e| i64::from(e) == term as i64);
    let attempts = *goals
        .elections
        .borrow()
        .get(&(group, term as i32))
        .unwrap_or(&0);
    asked && goal.replicas.first().copied() != me && attempts < ELECTION_ATTEMPTS_MAX
}

/// One step of what a leader must do for its goal, decided from its membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do (or wait: a change is not committed yet).
    None,
    Change(MembershipChange),
    /// Hand leadership to this voter (the leader must leave, or a preferred election).
    Transfer(NodeId),
    /// The voters are the target: tell the controller.
    Complete(Vec<NodeId>),
}

/// The next step for leader `me` with `voters` and `learners`, towards `goal`;
/// `in_sync` are the voters caught up (for choosing whom to hand over to).
pub fn next_step(
    me: NodeId,
    voters: &[NodeId],
    learners: &[NodeId],
    in_sync: &[NodeId],
    goal: &Goal,
) -> Step {
    let want = goal.voters();
    let member = |id: &NodeId| voters.contains(id) || learners.contains(id);
    if let Some(&new) = want.iter().find(|id| !member(id)) {
        return Step::Change(MembershipChange::AddLearner(new));
    }
    if let Some(&l) = learners.iter().find(|id| want.contains(id)) {
        return Step::Change(MembershipChange::Promote(l));
    }
    if let Some(&l) = learners.first() {
        return Step::Change(MembershipChange::Remove(l));
    }
    if let Some(&v) = voters.iter().find(|id| !want.contains(id) && **id != me) {
        return Step::Change(MembershipChange::Remove(v));
    }
    if !want.contains(&me) {
        // Everyone else is in the target: hand over, the preferred replica first.
        return match want.iter().find(|id| in_sync.contains(id)) {
            Some(&to) => Step::Transfer(to),
            None => Step::None,
        };
    }
    if goal.target.is_some() {
        return Step::Complete(voters.to_vec());
    }
    Step::None
}

/// One step of `replica` (which this shard hosts) towards its goal, if it leads.
pub fn drive(shard: &Shard, replica: &Rc<ReplicatedLog>) {
    if !replica.is_leader() {
        return;
    }
    let goals = PartitionGoals::of(shard);
    let group = *replica.group();
    let Some(goal) = goals.get(&group) else {
        return;
    };
    if !replica.membership_settled() {
        return;
    }
    // A leader knows itself as the leader.
    let (_, term, Some(me)) = replica.leadership() else {
        return;
    };
    let m = replica.membership();
    let in_sync = replica.in_sync_replicas();
    let step = next_step(me, &m.voters, &m.learners, &in_sync, &goal);
    match step {
        Step::None => {}
        Step::Change(change) => match replica.propose_membership(change) {
            Ok(()) => tracing::info!(%group, ?change, "reassignment step"),
            // Not caught up, term not committed yet, a transfer running: next time.
            Err(ProposeError::NotCaughtUp(_))
            | Err(ProposeError::TermNotCommitted(_))
            | Err(ProposeError::MembershipChangePending)
            | Err(ProposeError::TransferInProgress(_)) => {}
            Err(e) => tracing::debug!(%group, ?change, error = %e, "reassignment step refused"),
        },
        Step::Transfer(to) => {
            if replica.transfer_leadership(to).is_ok() {
                tracing::info!(%group, to, "leadership handed over: this replica leaves the group");
            }
        }
        Step::Complete(voters) => report_complete(shard, &goals, group, voters),
    }
    // A preferred-leader election asked of this leader's epoch.
    let preferred = goal.replicas.first().copied();
    let asked = goal
        .preferred_election_epoch
        .is_some_and(|e| i64::from(e) == term as i64);
    if let (true, Some(to)) = (asked, preferred) {
        if to != me
            && goal.target.is_none()
            && in_sync.contains(&to)
            && replica.heard_within(to, PREFERRED_CONTACT_TICKS)
        {
            let key = (group, term as i32);
            let attempts = *goals.elections.borrow().get(&key).unwrap_or(&0);
            if attempts < ELECTION_ATTEMPTS_MAX && replica.transfer_leadership(to).is_ok() {
                tracing::info!(%group, to, "preferred leader election");
                let mut e = goals.elections.borrow_mut();
                e.retain(|(g, _), _| *g != group);
                e.insert(key, attempts + 1);
            }
        }
    }
}

fn report_complete(shard: &Shard, goals: &Rc<PartitionGoals>, group: GroupId, voters: Vec<NodeId>) {
    let GroupId::Partition {
        topic_id,
        partition,
    } = group
    else {
        return;
    };
    if !goals.reporting.borrow_mut().insert(group) {
        return;
    }
    let (shard, goals) = (shard.clone(), Rc::clone(goals));
    glommio::spawn_local(async move {
        let cmd = ControllerCommand::CompleteReassignment {
            topic_id,
            partition,
            voters,
        };
        match crate::cluster::node::submit(&shard, cmd).await {
            Ok(_) => tracing::info!(%group, "reassignment complete"),
            Err(e) => {
                tracing::info!(%group, error = %e.message, "reassignment completion not taken")
            }
        }
        goals.reporting.borrow_mut().remove(&group);
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(replicas: &[NodeId], target: Option<&[NodeId]>) -> Goal {
        Goal {
            replicas: replicas.to_vec(),
            target: target.map(<[NodeId]>::to_vec),
            preferred_election_epoch: None,
        }
    }

    /// Walks a reassignment from `voters` to the goal, one step at a time, as the
    /// leader would (every step committed before the next, everyone in sync).
    fn walk(mut leader: NodeId, mut voters: Vec<NodeId>, g: &Goal) -> (Vec<Step>, NodeId) {
        let mut learners: Vec<NodeId> = Vec::new();
        let mut steps = Vec::new();
        let floor = voters.len().min(g.voters().len());
        for _ in 0..20 {
            let step = next_step(leader, &voters, &learners, &voters, g);
            steps.push(step.clone());
            match step {
                Step::None | Step::Complete(_) => return (steps, leader),
                Step::Transfer(to) => leader = to,
                Step::Change(MembershipChange::AddLearner(id)) => learners.push(id),
                Step::Change(MembershipChange::Promote(id)) => {
                    learners.retain(|l| *l != id);
                    voters.push(id);
                }
                Step::Change(MembershipChange::Remove(id)) => {
                    learners.retain(|l| *l != id);
                    voters.retain(|v| *v != id);
                }
            }
            // No step ever leaves fewer voters than the smaller of old and new sets.
            assert!(voters.len() >= floor, "{voters:?}");
        }
        panic!("no end after 20 steps: {steps:?}");
    }

    #[test]
    fn a_move_adds_promotes_then_removes_and_the_leader_leaves_last() {
        use MembershipChange::*;
        let g = goal(&[1, 2, 3], Some(&[2, 3, 4]));
        let (steps, leader) = walk(1, vec![1, 2, 3], &g);
        assert_eq!(
            steps,
            vec![
                Step::Change(AddLearner(4)),
                Step::Change(Promote(4)),
                Step::Transfer(2),
                Step::Change(Remove(1)),
                Step::Complete(vec![2, 3, 4]),
            ]
        );
        assert_eq!(leader, 2);
        // A follower leaving: removed by the leader.
        let g = goal(&[1, 2, 3], Some(&[1, 2, 4]));
        let (steps, _) = walk(1, vec![1, 2, 3], &g);
        assert_eq!(steps[2], Step::Change(Remove(3)));
        // A replication factor change 2 -> 3.
        let g = goal(&[1, 2], Some(&[1, 2, 3]));
        let (steps, _) = walk(1, vec![1, 2], &g);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[2], Step::Complete(vec![1, 2, 3]));
    }

    #[test]
    fn nothing_to_do_without_a_target_and_a_cancel_rolls_back() {
        let g = goal(&[1, 2, 3], None);
        assert_eq!(next_step(1, &[1, 2, 3], &[], &[1, 2, 3], &g), Step::None);
        // Cancelled after 4 was promoted and 3 removed: back to 1, 2, 3.
        let (steps, _) = walk(1, vec![1, 2, 4], &g);
        assert_eq!(
            steps,
            vec![
                Step::Change(MembershipChange::AddLearner(3)),
                Step::Change(MembershipChange::Promote(3)),
                Step::Change(MembershipChange::Remove(4)),
                Step::None,
            ]
        );
        // A leader that must leave but has no in-sync successor waits.
        let g = goal(&[1, 2], Some(&[2]));
        assert_eq!(next_step(1, &[1, 2], &[], &[1], &g), Step::None);
    }
}
