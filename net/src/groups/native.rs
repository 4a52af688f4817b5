//! A native group (joined over the native protocol): its members, generation,
//! assignment, and the rebalance state machine.
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──every member rejoined, or deadline──▶ Stable
//!   ▲                   ▲    │                                                │
//!   │                   │    └──no member left──▶ Empty                       │
//!   │                   └───── join / leave / session timeout / new partitions┘
//! Dead: what a group that does not exist (or was deleted) reports.
//! ```
//!
//! Assignment is computed here (server side), so a rebalance completes the moment
//! every member has rejoined: there is no separate sync step, and held joins are
//! answered with their member's partitions. Members that do not rejoin by the
//! rebalance deadline (the largest rebalance timeout) are dropped.

use std::collections::{BTreeMap, BTreeSet};

use strata_schema::ErrorCode;

use super::assignor::{assign, Assignment, Strategy, TopicPartition};
use super::coordinator::{Answer, Effects, JoinResponse, Token};
use super::error::GroupError;
use super::group::GroupState;
use super::records::{metadata_record, GroupMetadata, MemberRecord, MetadataValue};

/// A member of a group.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub id: String,
    pub client_id: String,
    pub host: String,
    pub topics: BTreeSet<String>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// Last heartbeat, join or commit.
    pub last_seen_ms: i64,
    /// The held join request, while a rebalance waits for this member.
    pub pending_join: Option<Token>,
    pub assignment: Vec<TopicPartition>,
}

/// One native group's state.
#[derive(Debug)]
pub(super) struct NativeGroup {
    pub name: String,
    pub state: GroupState,
    pub generation: i32,
    pub strategy: Strategy,
    pub leader: String,
    pub members: BTreeMap<String, Member>,
    /// When the current rebalance gives up on members that have not rejoined.
    pub rebalance_deadline_ms: i64,
}

impl NativeGroup {
    pub fn new(name: &str, strategy: Strategy) -> Self {
        NativeGroup {
            name: name.to_owned(),
            state: GroupState::Empty,
            generation: 0,
            strategy,
            leader: String::new(),
            members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
        }
    }

    /// Starts a rebalance (no-op when one is under way). Members learn of it from
    /// their next heartbeat and rejoin.
    pub fn prepare_rebalance(&mut self, now_ms: i64) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let timeout_ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline_ms = now_ms.saturating_add(i64::from(timeout_ms));
    }

    /// Completes the rebalance if every member rejoined or the deadline passed.
    pub fn maybe_complete(
        &mut self,
        now_ms: i64,
        partition_counts: &BTreeMap<String, u32>,
        fx: &mut Effects,
    ) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.pending_join.is_some());
        if all_joined || now_ms >= self.rebalance_deadline_ms {
            self.complete(now_ms, partition_counts, fx);
        }
    }

    /// Ends a rebalance: drops members that did not rejoin, starts a new generation,
    /// assigns partitions, answers the held joins and persists the group metadata.
    fn complete(
        &mut self,
        now_ms: i64,
        partition_counts: &BTreeMap<String, u32>,
        fx: &mut Effects,
    ) {
        self.members.retain(|_, m| m.pending_join.is_some());
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader.clear();
        } else {
            let subscriptions: BTreeMap<String, BTreeSet<String>> = self
                .members
                .iter()
                .map(|(id, m)| (id.clone(), m.topics.clone()))
                .collect();
            let previous: Assignment = self
                .members
                .iter()
                .map(|(id, m)| (id.clone(), m.assignment.clone()))
                .collect();
            let mut assignment = assign(self.strategy, &subscriptions, partition_counts, &previous);
            if !self.members.contains_key(&self.leader) {
                self.leader = self.members.keys().next().cloned().unwrap_or_default();
            }
            self.state = GroupState::Stable;
            for (id, m) in self.members.iter_mut() {
                m.assignment = assignment.remove(id).unwrap_or_default();
                m.last_seen_ms = now_ms;
                let token = m.pending_join.take().expect("only rejoined members remain");
                fx.answer(
                    token,
                    Answer::Join(Ok(JoinResponse {
                        member_id: id.clone(),
                        generation: self.generation,
                        leader_member_id: self.leader.clone(),
                        assignment: m.assignment.clone(),
                    })),
                );
            }
        }
        fx.records.push(metadata_record(
            &self.name,
            &GroupMetadata::Native(self.metadata()),
        ));
    }

    /// Removes a member; a join it has held is answered with UnknownMemberId.
    pub fn remove_member(&mut self, id: &str, why: &str, fx: &mut Effects) {
        if let Some(m) = self.members.remove(id) {
            if let Some(token) = m.pending_join {
                fx.answer(
                    token,
                    Answer::Join(Err(GroupError::new(
                        ErrorCode::UnknownMemberId,
                        format!("member {id} of group {} {why}", self.name),
                    ))),
                );
            }
        }
    }

    /// Drops members whose session timed out (rebalancing the group), and completes
    /// a rebalance whose deadline passed.
    pub fn tick(
        &mut self,
        now_ms: i64,
        partition_counts: &BTreeMap<String, u32>,
        fx: &mut Effects,
    ) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.pending_join.is_none()
                    && now_ms
                        >= m.last_seen_ms
                            .saturating_add(i64::from(m.session_timeout_ms))
            })
            .map(|m| m.id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                tracing::debug!(group = %self.name, member = %id, "session timed out");
                self.remove_member(id, "missed its session timeout", fx);
            }
            self.prepare_rebalance(now_ms);
        }
        self.maybe_complete(now_ms, partition_counts, fx);
    }

    /// The metadata record value of this group.
    pub fn metadata(&self) -> MetadataValue {
        MetadataValue {
            strategy: self.strategy,
            generation: self.generation,
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    topics: m.topics.iter().cloned().collect(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores the state a metadata record describes; restored members count as
    /// seen at `now_ms`, so they have a full session to come back.
    pub fn restore(&mut self, v: MetadataValue, now_ms: i64) {
        self.strategy = v.strategy;
        self.generation = v.generation;
        self.leader = v.leader;
        self.members = v
            .members
            .into_iter()
            .map(|m| {
                (
                    m.member_id.clone(),
                    Member {
                        id: m.member_id,
                        client_id: m.client_id,
                        host: m.host,
                        topics: m.topics.into_iter().collect(),
                        session_timeout_ms: m.session_timeout_ms,
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        last_seen_ms: now_ms,
                        pending_join: None,
                        assignment: m.assignment,
                    },
                )
            })
            .collect();
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// Whether any member subscribes to `topic`.
    pub fn subscribes(&self, topic: &str) -> bool {
        self.members.values().any(|m| m.topics.contains(topic))
    }
}
