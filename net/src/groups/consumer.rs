//! A Kafka KIP-848 consumer group (ConsumerGroupHeartbeat): the broker assigns,
//! and moves each member towards its target one heartbeat at a time.
//!
//! - The group epoch goes up whenever membership or a subscription changes (or a
//!   subscribed topic's partition count); a new target assignment is then computed
//!   with a server-side assignor ("uniform" = sticky and balanced, or "range") and
//!   stamped with that epoch (the assignment epoch).
//! - A member that owns partitions its target no longer has is asked to revoke
//!   them first (state UnrevokedPartitions, epoch unchanged). Once it reports that
//!   it no longer owns them (or its rebalance timeout passes and it is fenced), it
//!   moves to the assignment epoch and gets the target partitions that no other
//!   member still owns; partitions still owned elsewhere come on later heartbeats
//!   (UnreleasedPartitions). So no partition is ever owned by two members.
//! - Member epoch 0 joins, -1 leaves, -2 leaves for now (a static member that will
//!   come back with the same instance id and take its partitions over).
//! - A member that does not heartbeat for the session timeout is removed.

use std::collections::{BTreeMap, BTreeSet};

use strata_schema::ErrorCode;

use super::assignor::{assign, Assignment, Strategy, TopicPartition};
use super::coordinator::{CoordinatorConfig, Effects, MemberIds};
use super::error::{GroupCode, GroupError};
use super::group::GroupState;
use super::records::{
    metadata_record, ConsumerMemberRecord, ConsumerMetadata, GroupMetadata, Record,
};
use super::topic_regex::TopicRegex;

/// Member epoch of a member that leaves the group.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member that leaves and will come back.
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// The server assignors, by the names clients ask for; the first is the default.
pub const SERVER_ASSIGNORS: [(&str, Strategy); 2] =
    [("uniform", Strategy::Sticky), ("range", Strategy::Range)];

/// Where a member is in reaching its target assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Has its target assignment at the assignment epoch.
    Stable,
    /// Must revoke partitions before it moves on.
    UnrevokedPartitions,
    /// Waits for partitions other members still own.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn to_u8(self) -> u8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(MemberState::Stable),
            1 => Some(MemberState::UnrevokedPartitions),
            2 => Some(MemberState::UnreleasedPartitions),
            _ => None,
        }
    }
}

/// A ConsumerGroupHeartbeat request. `None` / -1 fields are unchanged since the
/// member's last heartbeat.
#[derive(Clone, Debug, Default)]
pub struct ConsumerHeartbeat {
    pub group: String,
    /// Empty on a first join of clients that let the broker choose (v0).
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    /// A regular expression (RE2 syntax) matched against whole topic names; "" clears it.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub owned: Option<Vec<TopicPartition>>,
    pub client_id: String,
    pub host: String,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerHeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed or the request was full.
    pub assignment: Option<Vec<TopicPartition>>,
}

/// A member of a consumer group as ConsumerGroupDescribe shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub host: String,
    pub topics: Vec<String>,
    pub regex: Option<String>,
    pub assignment: Vec<TopicPartition>,
    pub target: Vec<TopicPartition>,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group: String,
    pub state: GroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

/// A member of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub rebalance_timeout_ms: u32,
    pub topics: BTreeSet<String>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What the member owns (or is told to own) now.
    pub assigned: BTreeSet<TopicPartition>,
    /// What it was told to give up and has not confirmed yet.
    pub revoking: BTreeSet<TopicPartition>,
    /// Its part of the target assignment.
    pub target: BTreeSet<TopicPartition>,
    pub last_seen_ms: i64,
    /// While revoking: when it is fenced if it has not confirmed.
    pub revoke_deadline_ms: Option<i64>,
}

impl ConsumerMember {
    fn new(id: String, now_ms: i64) -> Self {
        ConsumerMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            host: String::new(),
            rebalance_timeout_ms: 0,
            topics: BTreeSet::new(),
            regex: None,
            server_assignor: None,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: BTreeSet::new(),
            revoking: BTreeSet::new(),
            target: BTreeSet::new(),
            last_seen_ms: now_ms,
            revoke_deadline_ms: None,
        }
    }

    fn record(&self) -> ConsumerMemberRecord {
        ConsumerMemberRecord {
            member_id: self.id.clone(),
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            host: self.host.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            topics: self.topics.iter().cloned().collect(),
            regex: self.regex.clone(),
            server_assignor: self.server_assignor.clone(),
            epoch: self.epoch,
            previous_epoch: self.previous_epoch,
            state: self.state,
            assigned: self.assigned.iter().cloned().collect(),
            revoking: self.revoking.iter().cloned().collect(),
            target: self.target.iter().cloned().collect(),
        }
    }

    /// The topics this member subscribes to, of those that exist.
    fn subscribed(&self, counts: &BTreeMap<String, u32>) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.topics.clone();
        if let Some(re) = self.regex.as_deref().and_then(|r| TopicRegex::new(r).ok()) {
            out.extend(
                counts
                    .keys()
                    // Internal topics are never matched by a pattern (Kafka's rule).
                    .filter(|t| !t.starts_with("__") && re.is_match(t))
                    .cloned(),
            );
        }
        out
    }
}

fn err(code: impl Into<GroupCode>, message: impl Into<String>) -> GroupError {
    GroupError::new(code, message)
}

/// One consumer group's state.
#[derive(Debug)]
pub(super) struct ConsumerGroup {
    pub name: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Group instance id → member id, of static members.
    pub instances: BTreeMap<String, String>,
}

impl ConsumerGroup {
    pub fn new(name: &str) -> Self {
        ConsumerGroup {
            name: name.to_owned(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            instances: BTreeMap::new(),
        }
    }

    /// The group's state, from its members' (Kafka's rules).
    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            GroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    /// The assignor the members ask for most (the default when none asks).
    pub fn assignor(&self) -> (&'static str, Strategy) {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let best = votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(name, _)| name);
        SERVER_ASSIGNORS
            .iter()
            .find(|(n, _)| Some(*n) == best)
            .copied()
            .unwrap_or(SERVER_ASSIGNORS[0])
    }

    fn unknown_member(&self, member_id: &str) -> GroupError {
        err(
            ErrorCode::UnknownMemberId,
            format!(
                "member {member_id:?} is not in group {:?}; join again with member epoch 0",
                self.name
            ),
        )
    }

    fn fenced_epoch(&self, member_id: &str, got: i32, known: i32) -> GroupError {
        err(
            GroupCode::FencedMemberEpoch,
            format!(
                "member {member_id:?} of group {:?} sent epoch {got}, the coordinator knows epoch {known}; \
                 the member must give up its partitions and join again",
                self.name
            ),
        )
    }

    /// Every partition some member other than `except` owns or still revokes.
    fn owned_by_others(&self, except: &str) -> BTreeSet<TopicPartition> {
        self.members
            .values()
            .filter(|m| m.id != except)
            .flat_map(|m| m.assigned.iter().chain(m.revoking.iter()).cloned())
            .collect()
    }

    /// Bumps the group epoch and computes the target assignment of the new epoch.
    fn bump(&mut self, counts: &BTreeMap<String, u32>) {
        self.group_epoch = self.group_epoch.wrapping_add(1).max(1);
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscribed(counts)))
            .collect();
        let previous: Assignment = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.target.iter().cloned().collect()))
            .collect();
        let (_, strategy) = self.assignor();
        let mut target = assign(strategy, &subscriptions, counts, &previous);
        for (id, m) in self.members.iter_mut() {
            m.target = target.remove(id).unwrap_or_default().into_iter().collect();
        }
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves `member_id` towards its target as far as it can go now. `owned` is what
    /// the member reported owning (none: it did not say).
    fn reconcile(
        &mut self,
        now_ms: i64,
        member_id: &str,
        owned: Option<&BTreeSet<TopicPartition>>,
    ) {
        let others = self.owned_by_others(member_id);
        let epoch = self.assignment_epoch;
        let m = self
            .members
            .get_mut(member_id)
            .expect("the caller checked membership");
        let next = match m.state {
            MemberState::Stable => m.epoch != epoch,
            MemberState::UnrevokedPartitions => owned.is_some_and(|o| o.is_disjoint(&m.revoking)),
            MemberState::UnreleasedPartitions => true,
        };
        if !next {
            return;
        }
        m.revoking.clear();
        let revoke: BTreeSet<TopicPartition> = m.assigned.difference(&m.target).cloned().collect();
        let still_owns = owned.is_none_or(|o| !o.is_disjoint(&revoke));
        if !revoke.is_empty() && still_owns {
            m.assigned = m.assigned.intersection(&m.target).cloned().collect();
            m.revoking = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revoke_deadline_ms = Some(now_ms.saturating_add(i64::from(m.rebalance_timeout_ms)));
            return;
        }
        let keep: BTreeSet<TopicPartition> = m.assigned.intersection(&m.target).cloned().collect();
        let wanted: Vec<&TopicPartition> = m.target.difference(&keep).collect();
        let free: Vec<TopicPartition> = wanted
            .iter()
            .filter(|tp| !others.contains(**tp))
            .map(|tp| (*tp).clone())
            .collect();
        m.state = if free.len() < wanted.len() {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        m.assigned = keep;
        m.assigned.extend(free);
        if m.epoch != epoch {
            m.previous_epoch = m.epoch;
            m.epoch = epoch;
        }
        m.revoke_deadline_ms = None;
    }

    /// A heartbeat of a member of this group. Names, sizes and the assignor are
    /// checked by the caller.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        req: ConsumerHeartbeat,
        config: &CoordinatorConfig,
        ids: &mut MemberIds,
        counts: &BTreeMap<String, u32>,
        fx: &mut Effects,
    ) -> Result<ConsumerHeartbeatResponse, GroupError> {
        let before_group = (self.group_epoch, self.assignment_epoch, self.members.len());
        let response = match req.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => self.leave(now_ms, &req, counts, config)?,
            0 => self.join(now_ms, req, config, ids, counts)?,
            e if e > 0 => self.beat(now_ms, req, config, counts)?,
            e => {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!(
                        "member epoch {e} is not valid (0 joins, -1 leaves, -2 leaves for now)"
                    ),
                ))
            }
        };
        let after_group = (self.group_epoch, self.assignment_epoch, self.members.len());
        if before_group != after_group || response.1 {
            fx.records.push(self.metadata_record());
        }
        Ok(response.0)
    }

    /// Epoch -1 or -2. The bool says whether the group changed.
    fn leave(
        &mut self,
        now_ms: i64,
        req: &ConsumerHeartbeat,
        counts: &BTreeMap<String, u32>,
        config: &CoordinatorConfig,
    ) -> Result<(ConsumerHeartbeatResponse, bool), GroupError> {
        let id = match (&req.instance_id, req.member_id.is_empty()) {
            (Some(inst), _) => self
                .instances
                .get(inst)
                .cloned()
                .ok_or_else(|| self.unknown_member(&req.member_id))?,
            (None, false) => req.member_id.clone(),
            (None, true) => {
                return Err(err(ErrorCode::InvalidRequest, "the member id is empty"));
            }
        };
        if !req.member_id.is_empty() && id != req.member_id {
            return Err(err(
                GroupCode::FencedInstanceId,
                format!(
                    "group instance id {:?} belongs to member {id:?}, not {:?}",
                    req.instance_id.as_deref().unwrap_or(""),
                    req.member_id
                ),
            ));
        }
        if !self.members.contains_key(&id) {
            return Err(self.unknown_member(&id));
        }
        let response = ConsumerHeartbeatResponse {
            member_id: id.clone(),
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: config.consumer_heartbeat_interval_ms as i32,
            assignment: None,
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH {
            if req.instance_id.is_none() {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "member epoch -2 (leave for now) is for static members: the group instance id is missing",
                ));
            }
            let m = self.members.get_mut(&id).expect("checked");
            if m.epoch != STATIC_LEAVE_EPOCH {
                m.previous_epoch = m.epoch;
                m.epoch = STATIC_LEAVE_EPOCH;
            }
            m.last_seen_ms = now_ms;
            tracing::debug!(group = %self.name, member = %id, "static member left for now");
            return Ok((response, true));
        }
        tracing::debug!(group = %self.name, member = %id, "left");
        self.remove(&id);
        self.bump(counts);
        Ok((response, true))
    }

    fn remove(&mut self, id: &str) {
        if let Some(m) = self.members.remove(id) {
            if let Some(inst) = &m.instance_id {
                if self.instances.get(inst).map(String::as_str) == Some(id) {
                    self.instances.remove(inst);
                }
            }
        }
    }

    /// Epoch 0: a new member, a static member coming back, or a member joining
    /// again after it was fenced.
    fn join(
        &mut self,
        now_ms: i64,
        req: ConsumerHeartbeat,
        config: &CoordinatorConfig,
        ids: &mut MemberIds,
        counts: &BTreeMap<String, u32>,
    ) -> Result<(ConsumerHeartbeatResponse, bool), GroupError> {
        let member_id = if req.member_id.is_empty() {
            ids.fresh(&req.client_id)
        } else {
            req.member_id.clone()
        };
        let previous_owner = req
            .instance_id
            .as_ref()
            .and_then(|i| self.instances.get(i))
            .filter(|owner| **owner != member_id)
            .cloned();
        let mut member = if let Some(old_id) = previous_owner {
            let old = &self.members[&old_id];
            if old.epoch != STATIC_LEAVE_EPOCH {
                return Err(err(
                    GroupCode::UnreleasedInstanceId,
                    format!(
                        "group instance id {:?} is still used by active member {old_id:?} of group {:?}",
                        req.instance_id.as_deref().unwrap_or(""),
                        self.name
                    ),
                ));
            }
            // The static member is back: it takes its old place (and partitions).
            let mut m = self
                .members
                .remove(&old_id)
                .expect("instances only name members");
            m.id = member_id.clone();
            m.epoch = m.previous_epoch;
            m
        } else if let Some(existing) = self.members.remove(&member_id) {
            // Joining again (after it was fenced, or after it lost its state): it
            // owns nothing now, whatever it owned before.
            let mut m = existing;
            m.assigned.clear();
            m.revoking.clear();
            m.state = MemberState::Stable;
            m.previous_epoch = m.epoch;
            m.epoch = 0;
            m
        } else {
            if self.members.len() >= config.group_members_max {
                return Err(err(
                    GroupCode::GroupMaxSizeReached,
                    format!(
                        "group {:?} already has the most members allowed ({})",
                        self.name, config.group_members_max
                    ),
                ));
            }
            if req.rebalance_timeout_ms < 0 {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "the rebalance timeout must be given when a member joins",
                ));
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "subscribed topic names or a subscribed topic regex must be given when a member joins",
                ));
            }
            ConsumerMember::new(member_id.clone(), now_ms)
        };
        let was_member = member.epoch != 0 || !member.assigned.is_empty();
        let new_subscription = self.update(&mut member, &req, now_ms);
        if let Some(inst) = &member.instance_id {
            self.instances.insert(inst.clone(), member_id.clone());
        }
        let before = member.record();
        self.members.insert(member_id.clone(), member);
        if new_subscription || !was_member || self.group_epoch == 0 {
            self.bump(counts);
        }
        let owned: BTreeSet<TopicPartition> = req.owned.unwrap_or_default().into_iter().collect();
        self.reconcile(now_ms, &member_id, Some(&owned));
        let m = &self.members[&member_id];
        let changed = m.record() != before;
        Ok((
            ConsumerHeartbeatResponse {
                member_id: member_id.clone(),
                member_epoch: m.epoch,
                heartbeat_interval_ms: config.consumer_heartbeat_interval_ms as i32,
                assignment: Some(m.assigned.iter().cloned().collect()),
            },
            changed,
        ))
    }

    /// Epoch > 0: a member of the group says it is alive (and what it owns).
    fn beat(
        &mut self,
        now_ms: i64,
        req: ConsumerHeartbeat,
        config: &CoordinatorConfig,
        counts: &BTreeMap<String, u32>,
    ) -> Result<(ConsumerHeartbeatResponse, bool), GroupError> {
        if req.member_id.is_empty() {
            return Err(err(ErrorCode::InvalidRequest, "the member id is empty"));
        }
        let Some(member) = self.members.get(&req.member_id) else {
            return Err(self.unknown_member(&req.member_id));
        };
        if let Some(inst) = &req.instance_id {
            if self.instances.get(inst) != Some(&req.member_id) {
                return Err(err(
                    GroupCode::FencedInstanceId,
                    format!(
                        "group instance id {inst:?} of group {:?} belongs to another member",
                        self.name
                    ),
                ));
            }
        }
        let owned: Option<BTreeSet<TopicPartition>> =
            req.owned.as_ref().map(|o| o.iter().cloned().collect());
        let epoch = req.member_epoch;
        if epoch > member.epoch {
            return Err(self.fenced_epoch(&req.member_id, epoch, member.epoch));
        }
        if epoch < member.epoch {
            // The answer that moved the member to its epoch may have been lost: the
            // previous epoch is fine if the member owns nothing it should not.
            let lost_answer = epoch == member.previous_epoch
                && owned
                    .as_ref()
                    .is_some_and(|o| o.is_subset(&member.assigned));
            if !lost_answer {
                return Err(self.fenced_epoch(&req.member_id, epoch, member.epoch));
            }
        }
        let mut member = self
            .members
            .remove(&req.member_id)
            .expect("looked up above");
        let before = member.record();
        let new_subscription = self.update(&mut member, &req, now_ms);
        let id = member.id.clone();
        self.members.insert(id.clone(), member);
        if new_subscription {
            self.bump(counts);
        }
        self.reconcile(now_ms, &id, owned.as_ref());
        let m = &self.members[&id];
        let full = req.rebalance_timeout_ms >= 0
            && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
            && req.owned.is_some();
        let assignment_changed = m.assigned.iter().ne(before.assigned.iter());
        Ok((
            ConsumerHeartbeatResponse {
                member_id: id.clone(),
                member_epoch: m.epoch,
                heartbeat_interval_ms: config.consumer_heartbeat_interval_ms as i32,
                assignment: (full || assignment_changed || m.epoch != before.epoch)
                    .then(|| m.assigned.iter().cloned().collect()),
            },
            m.record() != before,
        ))
    }

    /// Applies the request's changes to `m`; true when its subscription (or
    /// assignor) changed, which changes the target assignment.
    fn update(&self, m: &mut ConsumerMember, req: &ConsumerHeartbeat, now_ms: i64) -> bool {
        let mut changed = false;
        if let Some(i) = &req.instance_id {
            m.instance_id = Some(i.clone());
        }
        if let Some(r) = &req.rack_id {
            m.rack_id = Some(r.clone());
        }
        if req.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms as u32;
        }
        if let Some(names) = &req.subscribed_topic_names {
            let topics: BTreeSet<String> = names.iter().cloned().collect();
            changed |= topics != m.topics;
            m.topics = topics;
        }
        if let Some(re) = &req.subscribed_topic_regex {
            let re = (!re.is_empty()).then(|| re.clone());
            changed |= re != m.regex;
            m.regex = re;
        }
        if let Some(a) = &req.server_assignor {
            changed |= m.server_assignor.as_ref() != Some(a);
            m.server_assignor = Some(a.clone());
        }
        m.client_id = req.client_id.clone();
        m.host = req.host.clone();
        m.last_seen_ms = now_ms;
        changed
    }

    /// Checks a commit (Kafka's rules): member epoch -1 while the group is empty,
    /// or a member at its current epoch through OffsetCommit v9+.
    pub fn check_commit(
        &self,
        member_id: &str,
        epoch: i32,
        member_epoch_api: bool,
    ) -> Result<(), GroupError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or_else(|| self.unknown_member(member_id))?;
        if !member_epoch_api {
            return Err(err(
                GroupCode::UnsupportedVersion,
                format!(
                    "group {:?} uses the consumer group protocol (KIP-848): its members commit with OffsetCommit v9 or later",
                    self.name
                ),
            ));
        }
        self.check_epoch(m, epoch)
    }

    /// Checks an offset fetch of a member (OffsetFetch v9+ with a member id).
    pub fn check_fetch(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        let m = self
            .members
            .get(member_id)
            .ok_or_else(|| self.unknown_member(member_id))?;
        if epoch != m.epoch {
            return Err(err(
                GroupCode::StaleMemberEpoch,
                format!(
                    "member {member_id:?} of group {:?} is at epoch {}, not {epoch}",
                    self.name, m.epoch
                ),
            ));
        }
        Ok(())
    }

    fn check_epoch(&self, m: &ConsumerMember, epoch: i32) -> Result<(), GroupError> {
        if epoch > m.epoch {
            return Err(self.fenced_epoch(&m.id, epoch, m.epoch));
        }
        if epoch < m.epoch {
            return Err(err(
                GroupCode::StaleMemberEpoch,
                format!(
                    "member {:?} of group {:?} is at epoch {}, not {epoch}",
                    m.id, self.name, m.epoch
                ),
            ));
        }
        Ok(())
    }

    /// Removes members whose session expired or that did not revoke in time.
    pub fn tick(
        &mut self,
        now_ms: i64,
        config: &CoordinatorConfig,
        counts: &BTreeMap<String, u32>,
        fx: &mut Effects,
    ) {
        let session_ms = i64::from(config.consumer_session_timeout_ms);
        let gone: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if now_ms >= m.last_seen_ms.saturating_add(session_ms) {
                    Some((m.id.clone(), "session timed out"))
                } else if m.revoke_deadline_ms.is_some_and(|d| now_ms >= d) {
                    Some((
                        m.id.clone(),
                        "did not revoke its partitions within its rebalance timeout",
                    ))
                } else {
                    None
                }
            })
            .collect();
        if gone.is_empty() {
            return;
        }
        for (id, why) in &gone {
            tracing::debug!(group = %self.name, member = %id, why, "member removed");
            self.remove(id);
        }
        self.bump(counts);
        fx.records.push(self.metadata_record());
    }

    /// New partition counts: a group subscribed to a changed topic gets a new target.
    pub fn topics_changed(
        &mut self,
        changed: &BTreeSet<String>,
        counts: &BTreeMap<String, u32>,
        fx: &mut Effects,
    ) {
        if self.members.is_empty() {
            return;
        }
        let affected = self
            .members
            .values()
            .any(|m| m.regex.is_some() || changed.iter().any(|t| m.topics.contains(t)));
        if affected {
            self.bump(counts);
            fx.records.push(self.metadata_record());
        }
    }

    pub fn describe(&self) -> ConsumerGroupDescription {
        ConsumerGroupDescription {
            group: self.name.clone(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor().0.to_owned(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    topics: m.topics.iter().cloned().collect(),
                    regex: m.regex.clone(),
                    assignment: m.assigned.iter().cloned().collect(),
                    target: m.target.iter().cloned().collect(),
                })
                .collect(),
        }
    }

    fn metadata_record(&self) -> Record {
        metadata_record(&self.name, &GroupMetadata::Consumer(self.metadata()))
    }

    pub fn metadata(&self) -> ConsumerMetadata {
        ConsumerMetadata {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            members: self.members.values().map(ConsumerMember::record).collect(),
        }
    }

    /// The group a metadata record describes; members count as seen at `now_ms`,
    /// so they have a full session to come back.
    pub fn restore(name: &str, v: ConsumerMetadata, now_ms: i64) -> Self {
        let mut g = ConsumerGroup::new(name);
        g.group_epoch = v.group_epoch;
        g.assignment_epoch = v.assignment_epoch;
        for r in v.members {
            if let Some(inst) = &r.instance_id {
                g.instances.insert(inst.clone(), r.member_id.clone());
            }
            let m = ConsumerMember {
                id: r.member_id.clone(),
                instance_id: r.instance_id,
                rack_id: r.rack_id,
                client_id: r.client_id,
                host: r.host,
                rebalance_timeout_ms: r.rebalance_timeout_ms,
                topics: r.topics.into_iter().collect(),
                regex: r.regex,
                server_assignor: r.server_assignor,
                epoch: r.epoch,
                previous_epoch: r.previous_epoch,
                state: r.state,
                assigned: r.assigned.into_iter().collect(),
                revoking: r.revoking.into_iter().collect(),
                target: r.target.into_iter().collect(),
                last_seen_ms: now_ms,
                revoke_deadline_ms: (r.state == MemberState::UnrevokedPartitions)
                    .then(|| now_ms.saturating_add(i64::from(r.rebalance_timeout_ms))),
            };
            g.members.insert(r.member_id, m);
        }
        g
    }
}
