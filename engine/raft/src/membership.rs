//! Group membership: voters (count for elections and commit) and learners (replicate
//! only), and the one-at-a-time changes that move between them.
//!
//! Why one at a time: two memberships that differ by one voter have overlapping
//! majorities, so no two leaders can be elected and no committed entry can be lost
//! across the change, provided (a) a membership takes effect when appended, (b) a
//! leader proposes a change only once the previous one is committed, and (c) a leader
//! proposes a change only after committing an entry of its own term (the fix from
//! Ongaro's thesis errata). [`crate::Raft::propose_membership`] enforces all three.
//! Reassignment is then: add a learner, let it catch up, promote it, remove the old
//! voter.

use crate::error::MembershipError;
use crate::types::NodeId;

/// Most members (voters + learners) a group may have; bounds every per-peer table.
pub const MEMBERS_MAX: usize = 16;

/// The members of a group. Both lists are sorted and disjoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    /// Replicas that vote and count towards commit.
    pub voters: Vec<NodeId>,
    /// Replicas that receive the log but neither vote nor count.
    pub learners: Vec<NodeId>,
}

/// One step of a reassignment. One voter at a time keeps every old and new majority
/// overlapping; the leader proposes a step only once the previous one is committed and
/// it has committed an entry of its own term (Ongaro's errata), and each replica uses a
/// membership as soon as it is appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Start replicating to a new replica that does not vote yet.
    AddLearner(NodeId),
    /// Make a caught-up learner a voter.
    Promote(NodeId),
    /// Drop a voter or learner.
    Remove(NodeId),
}

impl Membership {
    /// A membership of `voters` only; rejects duplicates, an empty set and more than
    /// [`MEMBERS_MAX`].
    pub fn new(voters: &[NodeId]) -> Result<Self, MembershipError> {
        let mut v = voters.to_vec();
        v.sort_unstable();
        v.dedup();
        if v.len() != voters.len() {
            return Err(MembershipError::Duplicate);
        }
        if v.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        if v.len() > MEMBERS_MAX {
            return Err(MembershipError::TooMany {
                members_max: MEMBERS_MAX,
            });
        }
        Ok(Membership {
            voters: v,
            learners: Vec::new(),
        })
    }

    /// Whether `id` votes.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// Whether `id` is a learner.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.binary_search(&id).is_ok()
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Votes needed for a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Every member, voters first.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// Whether the lists are sorted, disjoint, non-empty in voters and within bounds —
    /// what a membership decoded from a peer's message must satisfy.
    pub fn is_well_formed(&self) -> bool {
        let sorted = |v: &[NodeId]| v.windows(2).all(|w| w[0] < w[1]);
        !self.voters.is_empty()
            && self.voters.len() + self.learners.len() <= MEMBERS_MAX
            && sorted(&self.voters)
            && sorted(&self.learners)
            && self.learners.iter().all(|l| !self.is_voter(*l))
    }

    /// The membership after `change`, or why the change makes no sense here.
    pub fn apply(&self, change: MembershipChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner(id) => {
                if self.contains(id) {
                    return Err(MembershipError::AlreadyMember(id));
                }
                if self.voters.len() + self.learners.len() >= MEMBERS_MAX {
                    return Err(MembershipError::TooMany {
                        members_max: MEMBERS_MAX,
                    });
                }
                let at = next.learners.partition_point(|&l| l < id);
                next.learners.insert(at, id);
            }
            MembershipChange::Promote(id) => {
                let Ok(i) = next.learners.binary_search(&id) else {
                    return Err(MembershipError::NotLearner(id));
                };
                next.learners.remove(i);
                let at = next.voters.partition_point(|&v| v < id);
                next.voters.insert(at, id);
            }
            MembershipChange::Remove(id) => {
                if let Ok(i) = next.voters.binary_search(&id) {
                    if next.voters.len() == 1 {
                        return Err(MembershipError::NoVoters);
                    }
                    next.voters.remove(i);
                } else if let Ok(i) = next.learners.binary_search(&id) {
                    next.learners.remove(i);
                } else {
                    return Err(MembershipError::NotMember(id));
                }
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_move_one_replica_at_a_time() {
        let m = Membership::new(&[3, 1, 2]).unwrap();
        assert_eq!(m.voters, vec![1, 2, 3]);
        assert_eq!(m.quorum(), 2);
        let m = m.apply(MembershipChange::AddLearner(4)).unwrap();
        assert!(m.is_learner(4) && !m.is_voter(4));
        assert_eq!(m.quorum(), 2);
        let m = m.apply(MembershipChange::Promote(4)).unwrap();
        assert!(m.is_voter(4));
        assert_eq!(m.quorum(), 3);
        let m = m.apply(MembershipChange::Remove(1)).unwrap();
        assert_eq!(m.voters, vec![2, 3, 4]);
        assert!(m.is_well_formed());
        assert_eq!(
            m.apply(MembershipChange::Promote(9)),
            Err(MembershipError::NotLearner(9))
        );
        assert_eq!(
            m.apply(MembershipChange::AddLearner(2)),
            Err(MembershipError::AlreadyMember(2))
        );
        let one = Membership::new(&[1]).unwrap();
        assert_eq!(
            one.apply(MembershipChange::Remove(1)),
            Err(MembershipError::NoVoters)
        );
        assert_eq!(Membership::new(&[1, 1]), Err(MembershipError::Duplicate));
    }
}
