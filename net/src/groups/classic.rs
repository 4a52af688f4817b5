//! A Kafka classic group (JoinGroup / SyncGroup / Heartbeat / LeaveGroup): the
//! members choose a protocol, the group's leader assigns, the broker only relays.
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined, or deadline──▶ CompletingRebalance
//!   ▲                 ▲   ▲                                          │ leader syncs
//!   │                 │   └──── join / leave / session timeout ──────┤
//!   │                 │                                              ▼
//!   └─ last member ───┴──── join (new or changed member, leader) ── Stable
//! ```
//!
//! A rebalance completes when every member has rejoined (or at the largest
//! rebalance timeout, dropping those that did not). Each held join is then answered
//! with the new generation and the chosen protocol; the leader's answer also lists
//! every member's metadata. The leader's SyncGroup carries every member's
//! assignment; held syncs are answered with them and the group is persisted. An
//! empty group's first rebalance waits `initial_rebalance_delay_ms` for more members
//! (Kafka's `group.initial.rebalance.delay.ms`), so a starting fleet does not
//! rebalance once per member.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use strata_schema::ErrorCode;

use super::assignor::TopicPartition;
use super::coordinator::{Answer, CoordinatorConfig, Effects, MemberIds, Token};
use super::error::{GroupCode, GroupError};
use super::group::GroupState;
use super::records::{
    metadata_record, ClassicMemberRecord, ClassicMetadata, GroupMetadata, Record,
};

/// A JoinGroup request of the classic protocol.
#[derive(Clone, Debug, Default)]
pub struct ClassicJoinRequest {
    pub group: String,
    /// Empty on a first join.
    pub member_id: String,
    /// Set for static members (KIP-345).
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// "consumer" for consumers; Kafka Connect and others use their own.
    pub protocol_type: String,
    /// (name, metadata), most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id is given one and must join again with
    /// it (MEMBER_ID_REQUIRED) before it counts as a member.
    pub require_known_member_id: bool,
}

/// A member's metadata, as the leader's JoinGroup answer lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicJoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a member learns when its join completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicJoinResponse {
    pub member_id: String,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    /// Every member and its metadata for the chosen protocol; for the leader only.
    pub members: Vec<ClassicJoinedMember>,
    /// Set when a static leader came back and keeps the group's assignment (KIP-814):
    /// the member id it replaced. JoinGroup v9+ tells the leader to skip assigning;
    /// older versions name this previous id as the leader instead, so the member
    /// takes itself for a follower and does not reassign.
    pub skip_assignment: Option<String>,
}

/// A SyncGroup request.
#[derive(Clone, Debug, Default)]
pub struct SyncRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// SyncGroup v5+: must match the group's.
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    /// (member id, assignment): sent by the leader only.
    pub assignments: Vec<(String, Bytes)>,
}

/// What a member learns when the leader's assignment arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: String,
    pub protocol: String,
    pub assignment: Bytes,
}

/// One member leaving (LeaveGroup v3+ names several, by id or instance id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaveMember {
    pub member_id: String,
    pub instance_id: Option<String>,
}

/// A member of a classic group.
#[derive(Clone, Debug)]
pub(super) struct ClassicMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// Last join, sync, heartbeat or commit.
    pub last_seen_ms: i64,
    /// The held JoinGroup, while a rebalance waits.
    pub awaiting_join: Option<Token>,
    /// The held SyncGroup, while the leader's assignment is awaited.
    pub awaiting_sync: Option<Token>,
    /// Whether it sent SyncGroup for the current generation.
    pub synced: bool,
}

impl ClassicMember {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }
}

/// One classic group's state.
#[derive(Debug)]
pub(super) struct ClassicGroup {
    pub name: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: String,
    /// The protocol chosen at the last completed join.
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, ClassicMember>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not joined yet, and when
    /// they lapse.
    pub pending: BTreeMap<String, i64>,
    /// Group instance id → member id, of static members.
    pub instances: BTreeMap<String, String>,
    /// When the current rebalance gives up on members that have not rejoined.
    pub rebalance_deadline_ms: i64,
    /// While an empty group's first rebalance waits for more members: until when.
    pub initial_deadline_ms: Option<i64>,
    /// When members that have not sent SyncGroup for this generation are dropped.
    pub sync_deadline_ms: Option<i64>,
}

fn err(code: impl Into<GroupCode>, message: impl Into<String>) -> GroupError {
    GroupError::new(code, message)
}

impl ClassicGroup {
    pub fn new(name: &str) -> Self {
        ClassicGroup {
            name: name.to_owned(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            instances: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_deadline_ms: None,
            sync_deadline_ms: None,
        }
    }

    fn unknown_member(&self, member_id: &str) -> GroupError {
        err(
            ErrorCode::UnknownMemberId,
            format!(
                "member {member_id:?} is not in group {:?}; join again without a member id",
                self.name
            ),
        )
    }

    fn fenced(&self, instance_id: &str) -> GroupError {
        err(
            GroupCode::FencedInstanceId,
            format!(
                "another member with group instance id {instance_id:?} joined group {:?}; \
                 this one is fenced (two consumers must not share a group.instance.id)",
                self.name
            ),
        )
    }

    /// The member `member_id` (checking its static identity, if it gives one).
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        if let Some(inst) = instance_id {
            if let Some(owner) = self.instances.get(inst) {
                if owner != member_id {
                    return Err(self.fenced(inst));
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(self.unknown_member(member_id));
        }
        Ok(())
    }

    fn rebalance_timeout_max_ms(&self) -> u32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Whether a member with these protocols may be in the group with the other
    /// members (all but `except`).
    fn supports(&self, except: &str, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        let mut others = self.members.values().filter(|m| m.id != except).peekable();
        if others.peek().is_none() {
            return true;
        }
        protocol_type == self.protocol_type
            && protocols.iter().any(|(n, _)| {
                self.members
                    .values()
                    .filter(|m| m.id != except)
                    .all(|m| m.supports(n))
            })
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        // Most votes; ties go to the first member's preference.
        candidates
            .iter()
            .max_by_key(|n| {
                let rank = candidates.len() - candidates.iter().position(|c| c == *n).unwrap_or(0);
                (votes.get(**n).copied().unwrap_or(0), rank)
            })
            .map(|n| (*n).clone())
    }

    /// The answer to a join of `member_id` at the current generation.
    fn join_response(&self, member_id: &str) -> ClassicJoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| ClassicJoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        ClassicJoinResponse {
            member_id: member_id.to_owned(),
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol,
            leader,
            members,
            skip_assignment: None,
        }
    }

    fn sync_response(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone().unwrap_or_default(),
            assignment,
        }
    }

    /// JoinGroup. Validation common to every group (names, timeouts) is done.
    pub fn join(
        &mut self,
        now_ms: i64,
        token: Token,
        req: ClassicJoinRequest,
        config: &CoordinatorConfig,
        ids: &mut MemberIds,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        if !self.supports(&req.member_id, &req.protocol_type, &req.protocols) {
            let ours: Vec<&str> = self
                .protocol
                .as_deref()
                .into_iter()
                .chain(
                    self.members
                        .values()
                        .next()
                        .into_iter()
                        .flat_map(|m| m.protocols.iter().map(|(n, _)| n.as_str())),
                )
                .collect();
            return Err(err(
                GroupCode::InconsistentGroupProtocol,
                format!(
                    "group {:?} runs protocol type {:?} with protocols {ours:?}; this member asked for type {:?} with {:?}",
                    self.name,
                    self.protocol_type,
                    req.protocol_type,
                    req.protocols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
                ),
            ));
        }
        if req.member_id.is_empty() {
            return self.join_new(now_ms, token, req, config, ids, fx);
        }
        if let Some(inst) = &req.instance_id {
            if let Some(owner) = self.instances.get(inst) {
                if *owner != req.member_id {
                    return Err(self.fenced(inst));
                }
            }
        }
        if !self.members.contains_key(&req.member_id) {
            if self.pending.remove(&req.member_id).is_none() {
                return Err(self.unknown_member(&req.member_id));
            }
            let id = req.member_id.clone();
            self.add_member(now_ms, id, token, req, config, fx);
            return Ok(());
        }
        self.join_known(now_ms, token, req, config, fx);
        Ok(())
    }

    fn join_new(
        &mut self,
        now_ms: i64,
        token: Token,
        req: ClassicJoinRequest,
        config: &CoordinatorConfig,
        ids: &mut MemberIds,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        let known_instance = req
            .instance_id
            .as_ref()
            .and_then(|i| self.instances.get(i))
            .cloned();
        if let Some(old_id) = known_instance {
            let new_id = ids.fresh(&req.client_id);
            self.replace_static(now_ms, token, &old_id, new_id, req, config, fx);
            return Ok(());
        }
        if self.members.len() + self.pending.len() >= config.group_members_max {
            return Err(err(
                GroupCode::GroupMaxSizeReached,
                format!(
                    "group {:?} already has the most members allowed ({})",
                    self.name, config.group_members_max
                ),
            ));
        }
        let id = ids.fresh(&req.client_id);
        if req.require_known_member_id && req.instance_id.is_none() {
            self.pending.insert(
                id.clone(),
                now_ms.saturating_add(i64::from(req.session_timeout_ms)),
            );
            return Err(err(
                GroupCode::MemberIdRequired(id),
                "join again with the member id given",
            ));
        }
        self.add_member(now_ms, id, token, req, config, fx);
        Ok(())
    }

    /// Adds a member whose join is held until the rebalance it starts completes.
    fn add_member(
        &mut self,
        now_ms: i64,
        id: String,
        token: Token,
        req: ClassicJoinRequest,
        config: &CoordinatorConfig,
        fx: &mut Effects,
    ) {
        if self.members.is_empty() {
            self.protocol_type = req.protocol_type.clone();
        }
        if let Some(inst) = &req.instance_id {
            self.instances.insert(inst.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            ClassicMember {
                id,
                instance_id: req.instance_id,
                client_id: req.client_id,
                host: req.host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_seen_ms: now_ms,
                awaiting_join: Some(token),
                awaiting_sync: None,
                synced: false,
            },
        );
        if let Some(d) = self.initial_deadline_ms.as_mut() {
            // A new member during the initial delay restarts it (within the
            // rebalance timeout).
            let delay = i64::from(config.initial_rebalance_delay_ms);
            *d = now_ms.saturating_add(delay).min(self.rebalance_deadline_ms);
        }
        self.prepare_rebalance(now_ms, config, fx);
        self.maybe_complete_join(now_ms, fx);
    }

    /// A static member (known instance id) came back without its member id: it
    /// gets a new id and takes over the old member's place.
    #[allow(clippy::too_many_arguments)]
    fn replace_static(
        &mut self,
        now_ms: i64,
        token: Token,
        old_id: &str,
        new_id: String,
        req: ClassicJoinRequest,
        config: &CoordinatorConfig,
        fx: &mut Effects,
    ) {
        let mut m = self
            .members
            .remove(old_id)
            .expect("instances only name members");
        let fenced = || {
            err(
                GroupCode::FencedInstanceId,
                "a new member with the same group instance id replaced this one",
            )
        };
        if let Some(t) = m.awaiting_join.take() {
            fx.answer(t, Answer::ClassicJoin(Err(fenced())));
        }
        if let Some(t) = m.awaiting_sync.take() {
            fx.answer(t, Answer::Sync(Err(fenced())));
        }
        m.id = new_id.clone();
        m.client_id = req.client_id;
        m.host = req.host;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.protocols = req.protocols;
        m.last_seen_ms = now_ms;
        self.members.insert(new_id.clone(), m);
        if let Some(inst) = req.instance_id {
            self.instances.insert(inst, new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        // KIP-345: a static member that comes back while the group is stable, and
        // whose protocols leave the group's choice unchanged, takes its old place
        // and assignment without a rebalance: the other members' generation and
        // assignments stay as they are. Only the protocol names matter, not the
        // metadata bytes (a restarted consumer no longer lists owned partitions).
        let keeps_protocol = self.protocol.is_some() && self.select_protocol() == self.protocol;
        if self.state == GroupState::Stable && keeps_protocol {
            let member = self.members.get_mut(&new_id).expect("inserted above");
            member.synced = true;
            let mut response = self.join_response(&new_id);
            if was_leader {
                response.skip_assignment = Some(old_id.to_owned());
            }
            fx.answer(token, Answer::ClassicJoin(Ok(response)));
            fx.records.push(self.metadata_record());
            return;
        }
        let member = self.members.get_mut(&new_id).expect("inserted above");
        member.awaiting_join = Some(token);
        self.prepare_rebalance(now_ms, config, fx);
        self.maybe_complete_join(now_ms, fx);
    }

    fn join_known(
        &mut self,
        now_ms: i64,
        token: Token,
        req: ClassicJoinRequest,
        config: &CoordinatorConfig,
        fx: &mut Effects,
    ) {
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let m = self
            .members
            .get_mut(&req.member_id)
            .expect("the caller checked membership");
        let unchanged = m.protocols == req.protocols;
        m.last_seen_ms = now_ms;
        m.client_id = req.client_id;
        m.host = req.host;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.protocols = req.protocols;
        let answer_now = match self.state {
            GroupState::CompletingRebalance => unchanged,
            GroupState::Stable => unchanged && !is_leader,
            _ => false,
        };
        if answer_now {
            fx.answer(
                token,
                Answer::ClassicJoin(Ok(self.join_response(&req.member_id))),
            );
            return;
        }
        if let Some(old) = m.awaiting_join.replace(token) {
            fx.answer(
                old,
                Answer::ClassicJoin(Err(err(
                    ErrorCode::RebalanceInProgress,
                    "a newer join of this member replaced this one",
                ))),
            );
        }
        self.prepare_rebalance(now_ms, config, fx);
        self.maybe_complete_join(now_ms, fx);
    }

    /// Starts a rebalance (no-op while one is under way): held syncs learn of it,
    /// members learn of it from their next heartbeat and rejoin.
    fn prepare_rebalance(&mut self, now_ms: i64, config: &CoordinatorConfig, fx: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.awaiting_sync.take() {
                    fx.answer(
                        t,
                        Answer::Sync(Err(err(
                            ErrorCode::RebalanceInProgress,
                            "the group started another rebalance; join again",
                        ))),
                    );
                }
            }
        }
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.sync_deadline_ms = None;
        self.rebalance_deadline_ms =
            now_ms.saturating_add(i64::from(self.rebalance_timeout_max_ms()));
        self.initial_deadline_ms =
            (was_empty && config.initial_rebalance_delay_ms > 0).then(|| {
                now_ms
                    .saturating_add(i64::from(config.initial_rebalance_delay_ms))
                    .min(self.rebalance_deadline_ms)
            });
    }

    /// Completes the join phase when everyone has joined or time is up.
    fn maybe_complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let done = if self.members.is_empty() {
            true
        } else if let Some(d) = self.initial_deadline_ms {
            now_ms >= d
        } else {
            let all_joined =
                self.members.values().all(|m| m.awaiting_join.is_some()) && self.pending.is_empty();
            all_joined || now_ms >= self.rebalance_deadline_ms
        };
        if done {
            self.complete_join(now_ms, fx);
        }
    }

    /// Ends the join phase: drops members that did not rejoin, starts the next
    /// generation, answers the held joins.
    fn complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::debug!(group = %self.name, member = %id, "did not rejoin in time");
            self.remove_member(&id, fx);
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        self.initial_deadline_ms = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.sync_deadline_ms = None;
            fx.records.push(self.metadata_record());
            return;
        }
        self.protocol = self.select_protocol();
        debug_assert!(self.protocol.is_some(), "joins check a common protocol");
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        self.sync_deadline_ms =
            Some(now_ms.saturating_add(i64::from(self.rebalance_timeout_max_ms())));
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.join_response(&id);
            let m = self.members.get_mut(&id).expect("listed above");
            m.assignment = Bytes::new();
            m.synced = false;
            m.last_seen_ms = now_ms;
            let token = m
                .awaiting_join
                .take()
                .expect("only rejoined members remain");
            fx.answer(token, Answer::ClassicJoin(Ok(response)));
        }
    }

    /// Removes a member; requests it has held are answered with UNKNOWN_MEMBER_ID.
    /// The caller decides whether the group rebalances.
    fn remove_member(&mut self, id: &str, fx: &mut Effects) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        let gone = || {
            err(
                ErrorCode::UnknownMemberId,
                format!("member {id:?} was removed from group {:?}", self.name),
            )
        };
        if let Some(t) = m.awaiting_join {
            fx.answer(t, Answer::ClassicJoin(Err(gone())));
        }
        if let Some(t) = m.awaiting_sync {
            fx.answer(t, Answer::Sync(Err(gone())));
        }
        if let Some(inst) = &m.instance_id {
            if self.instances.get(inst).map(String::as_str) == Some(id) {
                self.instances.remove(inst);
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// After members left: the rest rebalance.
    fn rebalance_without(&mut self, now_ms: i64, config: &CoordinatorConfig, fx: &mut Effects) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now_ms, config, fx);
        }
        self.maybe_complete_join(now_ms, fx);
    }

    /// SyncGroup. `Ok` means the request is held or answered through `fx`.
    pub fn sync(
        &mut self,
        now_ms: i64,
        token: Token,
        req: SyncRequest,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        self.check_member(&req.member_id, req.instance_id.as_deref())?;
        if req.generation != self.generation {
            return Err(self.illegal_generation(req.generation));
        }
        if let Some(t) = &req.protocol_type {
            if *t != self.protocol_type {
                return Err(err(
                    GroupCode::InconsistentGroupProtocol,
                    format!(
                        "group {:?} runs protocol type {:?}, not {t:?}",
                        self.name, self.protocol_type
                    ),
                ));
            }
        }
        if let Some(p) = &req.protocol {
            if Some(p) != self.protocol.as_ref() {
                return Err(err(
                    GroupCode::InconsistentGroupProtocol,
                    format!(
                        "group {:?} chose protocol {:?}, not {p:?}",
                        self.name,
                        self.protocol.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        match self.state {
            GroupState::PreparingRebalance => Err(err(
                ErrorCode::RebalanceInProgress,
                format!("group {:?} is rebalancing; join again", self.name),
            )),
            GroupState::CompletingRebalance => {
                let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
                let m = self.members.get_mut(&req.member_id).expect("checked");
                m.last_seen_ms = now_ms;
                m.synced = true;
                if let Some(old) = m.awaiting_sync.replace(token) {
                    fx.answer(
                        old,
                        Answer::Sync(Err(err(
                            ErrorCode::RebalanceInProgress,
                            "a newer SyncGroup of this member replaced this one",
                        ))),
                    );
                }
                if is_leader {
                    let mut given: BTreeMap<String, Bytes> = req.assignments.into_iter().collect();
                    self.state = GroupState::Stable;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let assignment = given.remove(&id).unwrap_or_default();
                        let response = self.sync_response(assignment.clone());
                        let m = self.members.get_mut(&id).expect("listed above");
                        m.assignment = assignment;
                        if let Some(t) = m.awaiting_sync.take() {
                            fx.answer(t, Answer::Sync(Ok(response)));
                        }
                    }
                    self.clear_sync_deadline_if_all_synced();
                    fx.records.push(self.metadata_record());
                }
                Ok(())
            }
            GroupState::Stable => {
                let m = self.members.get_mut(&req.member_id).expect("checked");
                m.last_seen_ms = now_ms;
                m.synced = true;
                let assignment = m.assignment.clone();
                let response = self.sync_response(assignment);
                self.clear_sync_deadline_if_all_synced();
                fx.answer(token, Answer::Sync(Ok(response)));
                Ok(())
            }
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => Err(self.unknown_member(&req.member_id)),
        }
    }

    fn clear_sync_deadline_if_all_synced(&mut self) {
        if self.members.values().all(|m| m.synced) {
            self.sync_deadline_ms = None;
        }
    }

    fn illegal_generation(&self, generation: i32) -> GroupError {
        err(
            ErrorCode::IllegalGeneration,
            format!(
                "generation {generation} is not the current generation {} of group {:?}; join again",
                self.generation, self.name
            ),
        )
    }

    /// Heartbeat: REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(self.illegal_generation(generation));
        }
        self.members
            .get_mut(member_id)
            .expect("checked")
            .last_seen_ms = now_ms;
        match self.state {
            GroupState::PreparingRebalance => Err(err(
                ErrorCode::RebalanceInProgress,
                format!("group {:?} is rebalancing; join again", self.name),
            )),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            _ => Err(self.unknown_member(member_id)),
        }
    }

    /// LeaveGroup of several members: one result per member, in order.
    pub fn leave(
        &mut self,
        now_ms: i64,
        leaving: &[LeaveMember],
        config: &CoordinatorConfig,
        fx: &mut Effects,
    ) -> Vec<Result<(), GroupError>> {
        let mut results = Vec::with_capacity(leaving.len());
        let mut removed = false;
        for l in leaving {
            let id = match &l.instance_id {
                Some(inst) => match self.instances.get(inst) {
                    None => {
                        results.push(Err(err(
                            ErrorCode::UnknownMemberId,
                            format!(
                                "no member of group {:?} has group instance id {inst:?}",
                                self.name
                            ),
                        )));
                        continue;
                    }
                    Some(owner) if !l.member_id.is_empty() && *owner != l.member_id => {
                        results.push(Err(self.fenced(inst)));
                        continue;
                    }
                    Some(owner) => owner.clone(),
                },
                None => l.member_id.clone(),
            };
            if self.pending.remove(&id).is_some() {
                results.push(Ok(()));
                continue;
            }
            if !self.members.contains_key(&id) {
                results.push(Err(self.unknown_member(&id)));
                continue;
            }
            tracing::debug!(group = %self.name, member = %id, "left");
            self.remove_member(&id, fx);
            removed = true;
            results.push(Ok(()));
        }
        if removed {
            self.rebalance_without(now_ms, config, fx);
        }
        results
    }

    /// Checks that a commit may go to this group (Kafka's rules): generation -1
    /// without a member id while the group is empty (consumers that assign
    /// themselves, admin tools), or a member of the current generation.
    pub fn check_commit(
        &mut self,
        now_ms: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.check_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(self.illegal_generation(generation));
            }
        } else {
            return Err(err(
                ErrorCode::UnknownMemberId,
                format!(
                    "group {:?} has {} active members; a commit without a member id and generation is only accepted while the group is empty",
                    self.name,
                    self.members.len()
                ),
            ));
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(err(
                ErrorCode::RebalanceInProgress,
                format!(
                    "group {:?} is completing a rebalance; commit after SyncGroup",
                    self.name
                ),
            ));
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen_ms = now_ms;
        }
        Ok(())
    }

    /// Expires pending member ids and sessions, drops members that never synced,
    /// and ends a join phase whose time is up.
    pub fn tick(&mut self, now_ms: i64, config: &CoordinatorConfig, fx: &mut Effects) {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now_ms);
        let mut removed = self.pending.len() != before;
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.awaiting_join.is_none()
                    && m.awaiting_sync.is_none()
                    && now_ms
                        >= m.last_seen_ms
                            .saturating_add(i64::from(m.session_timeout_ms))
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::debug!(group = %self.name, member = %id, "session timed out");
            self.remove_member(id, fx);
            removed = true;
        }
        if self.sync_deadline_ms.is_some_and(|d| now_ms >= d) {
            self.sync_deadline_ms = None;
            let unsynced: Vec<String> = self
                .members
                .values()
                .filter(|m| !m.synced)
                .map(|m| m.id.clone())
                .collect();
            for id in &unsynced {
                tracing::debug!(group = %self.name, member = %id, "did not sync in time");
                self.remove_member(id, fx);
                removed = true;
            }
        }
        if removed {
            self.rebalance_without(now_ms, config, fx);
        } else {
            self.maybe_complete_join(now_ms, fx);
        }
    }

    /// The metadata record of this group (written after a completed sync, and
    /// when the group becomes empty).
    fn metadata_record(&self) -> Record {
        metadata_record(&self.name, &GroupMetadata::Classic(self.metadata()))
    }

    /// The metadata record value of this group.
    pub fn metadata(&self) -> ClassicMetadata {
        let protocol = self.protocol.clone().unwrap_or_default();
        ClassicMetadata {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| ClassicMemberRecord {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscription: m.metadata(&protocol).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// The group a metadata record describes; members count as seen at `now_ms`,
    /// so they have a full session to come back.
    pub fn restore(name: &str, v: ClassicMetadata, now_ms: i64) -> Self {
        let mut g = ClassicGroup::new(name);
        g.generation = v.generation;
        g.protocol_type = v.protocol_type;
        g.protocol = v.protocol;
        g.leader = v.leader;
        let protocol = g.protocol.clone().unwrap_or_default();
        for m in v.members {
            if let Some(inst) = &m.instance_id {
                g.instances.insert(inst.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id.clone(),
                ClassicMember {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    host: m.host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: vec![(protocol.clone(), Bytes::from(m.subscription))],
                    assignment: Bytes::from(m.assignment),
                    last_seen_ms: now_ms,
                    awaiting_join: None,
                    awaiting_sync: None,
                    synced: true,
                },
            );
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g
    }
}

/// Highest consumer-protocol version the codec knows. Newer versions only add
/// fields at the end, so their bytes are read as this version (as Kafka's clients
/// read them).
const CONSUMER_PROTOCOL_VERSION_MAX: i16 = 3;

/// A consumer-protocol message (`i16` version, then the body) decoded with the
/// kafka-protocol crate's types, the same ones `kafka::groups` encodes with. The
/// bytes are client input: the crate refuses lengths the bytes cannot hold.
fn decode_versioned<T: Decodable>(bytes: &[u8]) -> Option<T> {
    let mut buf = bytes;
    if buf.len() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    T::decode(&mut buf, version.min(CONSUMER_PROTOCOL_VERSION_MAX)).ok()
}

/// The topics of a member's Kafka consumer-protocol metadata (protocol type
/// "consumer"); none when the bytes are not that.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let s: ConsumerProtocolSubscription = decode_versioned(metadata)?;
    Some(s.topics.iter().map(|t| t.as_str().to_owned()).collect())
}

/// The partitions of a Kafka consumer-protocol assignment, sorted; none when the
/// bytes are not that. An empty assignment (no bytes) assigns nothing.
pub fn assigned_partitions(assignment: &[u8]) -> Option<Vec<TopicPartition>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let a: ConsumerProtocolAssignment = decode_versioned(assignment)?;
    let mut out = Vec::new();
    for tp in a.assigned_partitions {
        for p in tp.partitions {
            out.push(TopicPartition::new(
                tp.topic.0.as_str(),
                u32::try_from(p).ok()?,
            ));
        }
    }
    out.sort();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_protocol_garbage_is_none_not_a_huge_allocation() {
        assert_eq!(subscribed_topics(b"meta-range"), None);
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(assigned_partitions(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[]), None);
        // v0: one topic "t" (then user data, ignored).
        assert_eq!(
            subscribed_topics(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff]),
            Some(vec!["t".to_owned()])
        );
        // v1: topic "t" partitions [2, 0], no user data.
        assert_eq!(
            assigned_partitions(&[
                0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff,
                0xff
            ]),
            Some(vec![
                TopicPartition::new("t", 0),
                TopicPartition::new("t", 2)
            ])
        );
    }
}
