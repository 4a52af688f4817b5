//! The coordinator of the groups of one `__consumer_offsets` partition: validates
//! requests, drives each group's state machine, and says what to persist.
//!
//! Inputs, by protocol:
//! - native: [`join`](Coordinator::join), [`heartbeat`](Coordinator::heartbeat),
//!   [`leave`](Coordinator::leave), [`commit`](Coordinator::commit);
//! - Kafka classic: [`classic_join`](Coordinator::classic_join),
//!   [`classic_sync`](Coordinator::classic_sync),
//!   [`classic_heartbeat`](Coordinator::classic_heartbeat),
//!   [`classic_leave`](Coordinator::classic_leave);
//! - Kafka KIP-848: [`consumer_heartbeat`](Coordinator::consumer_heartbeat);
//! - Kafka offsets: [`kafka_commit`](Coordinator::kafka_commit),
//!   [`check_fetch`](Coordinator::check_fetch);
//! - all: [`delete`](Coordinator::delete), [`tick`](Coordinator::tick),
//!   [`set_partition_counts`](Coordinator::set_partition_counts) and
//!   [`apply`](Coordinator::apply) (a record read back from, or just appended to,
//!   `__consumer_offsets`).
//!
//! Time is always an argument (`now_ms`, Unix milliseconds).
//!
//! Offsets take effect when their records are durable: a commit validates and
//! returns the records; the caller appends them and then `apply`s them — the same
//! path a replay at startup takes. Group metadata changes take effect at once and
//! come back in [`Effects::records`] to be appended. Held requests (joins, syncs)
//! are answered through [`Effects::answers`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use strata_schema::ErrorCode;

use super::assignor::{Strategy, TopicPartition};
use super::classic::{
    ClassicGroup, ClassicJoinRequest, ClassicJoinResponse, LeaveMember, SyncRequest, SyncResponse,
};
use super::consumer::{
    ConsumerGroup, ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse,
    SERVER_ASSIGNORS,
};
use super::error::{GroupCode, GroupError};
use super::group::{Body, Group, GroupKind, GroupState};
use super::native::{Member, NativeGroup};
use super::records::{
    check_bytes, check_str, decode_record, metadata_key, offset_key, offset_record, GroupMetadata,
    GroupRecord, OffsetValue, Record, RecordError,
};
use super::topic_regex::TopicRegex;

/// Identifies a held request (a join or a sync); chosen by the caller.
pub type Token = u64;

/// Shortest session timeout a member may ask for.
pub const SESSION_TIMEOUT_MS_MIN: u32 = 100;
/// Longest session timeout a member may ask for.
pub const SESSION_TIMEOUT_MS_MAX: u32 = 300_000;
/// Longest rebalance timeout; longer requests are clamped.
pub const REBALANCE_TIMEOUT_MS_MAX: u32 = 300_000;
/// Most members one group may have.
pub const GROUP_MEMBERS_MAX: usize = 1_000;
/// Most topics one member may subscribe to.
pub const MEMBER_TOPICS_MAX: usize = 10_000;
/// Most protocols one classic member may offer.
pub const MEMBER_PROTOCOLS_MAX: usize = 64;
/// Longest metadata string of a committed offset (Kafka's
/// `offset.metadata.max.bytes` default).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4_096;
/// How long an empty classic group's first rebalance waits for more members
/// (Kafka's `group.initial.rebalance.delay.ms` default).
pub const INITIAL_REBALANCE_DELAY_MS: u32 = 3_000;
/// Session timeout of KIP-848 members (Kafka's `group.consumer.session.timeout.ms`).
pub const CONSUMER_SESSION_TIMEOUT_MS: u32 = 45_000;
/// Heartbeat interval told to KIP-848 members (Kafka's
/// `group.consumer.heartbeat.interval.ms`).
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: u32 = 5_000;

/// Limits and identity of a coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Goes into new member ids, so ids stay unique across restarts (the caller
    /// picks something that differs per start, e.g. the start time).
    pub instance: u64,
    pub session_timeout_ms_min: u32,
    pub session_timeout_ms_max: u32,
    pub group_members_max: usize,
    pub initial_rebalance_delay_ms: u32,
    pub consumer_session_timeout_ms: u32,
    pub consumer_heartbeat_interval_ms: u32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            instance: 0,
            session_timeout_ms_min: SESSION_TIMEOUT_MS_MIN,
            session_timeout_ms_max: SESSION_TIMEOUT_MS_MAX,
            group_members_max: GROUP_MEMBERS_MAX,
            initial_rebalance_delay_ms: INITIAL_REBALANCE_DELAY_MS,
            consumer_session_timeout_ms: CONSUMER_SESSION_TIMEOUT_MS,
            consumer_heartbeat_interval_ms: CONSUMER_HEARTBEAT_INTERVAL_MS,
        }
    }
}

/// Hands out member ids, unique across restarts.
#[derive(Debug)]
pub(super) struct MemberIds {
    instance: u64,
    next: u64,
}

impl MemberIds {
    /// A new member id, starting with the client id (as Kafka's do).
    pub fn fresh(&mut self, client_id: &str) -> String {
        self.next += 1;
        let prefix = if client_id.is_empty() {
            "member"
        } else {
            client_id
        };
        format!("{prefix}-{:x}-{}", self.instance, self.next)
    }
}

/// A JoinGroup request of the native protocol.
#[derive(Clone, Debug, Default)]
pub struct JoinRequest {
    pub group: String,
    /// Empty on a first join.
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub topics: Vec<String>,
    pub strategy: Strategy,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
}

/// What a native member learns when its join completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    pub member_id: String,
    pub generation: i32,
    pub leader_member_id: String,
    pub assignment: Vec<TopicPartition>,
}

/// The answer to a held request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A native JoinGroup.
    Join(Result<JoinResponse, GroupError>),
    /// A Kafka classic JoinGroup.
    ClassicJoin(Result<ClassicJoinResponse, GroupError>),
    /// A Kafka SyncGroup.
    Sync(Result<SyncResponse, GroupError>),
}

/// What an input asks the caller to do.
#[derive(Debug, Default)]
pub struct Effects {
    /// Held requests to answer now.
    pub answers: Vec<(Token, Answer)>,
    /// Records to append to this coordinator's `__consumer_offsets` partition.
    pub records: Vec<Record>,
}

impl Effects {
    pub(super) fn answer(&mut self, token: Token, answer: Answer) {
        self.answers.push((token, answer));
    }
}

/// One offset to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub tp: TopicPartition,
    pub offset: i64,
    pub metadata: String,
    /// -1 when unknown.
    pub leader_epoch: i32,
}

/// Who commits through Kafka's OffsetCommit.
#[derive(Clone, Debug, Default)]
pub struct KafkaCommit {
    pub group: String,
    /// Empty, with generation -1, for consumers that assign partitions themselves.
    pub member_id: String,
    pub instance_id: Option<String>,
    /// The classic generation, or the KIP-848 member epoch.
    pub generation_or_epoch: i32,
    /// OffsetCommit v9+: the version KIP-848 members must use; with it a commit to
    /// a group that does not exist is GROUP_ID_NOT_FOUND, not ILLEGAL_GENERATION.
    pub member_epoch_api: bool,
}

/// A member as DescribeGroup shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Subscribed topics (classic groups: decoded from consumer-protocol metadata).
    pub topics: Vec<String>,
    /// Assigned partitions (classic groups: decoded from consumer-protocol
    /// assignments; empty when the protocol is not Kafka's consumer protocol).
    pub assignment: Vec<TopicPartition>,
    /// Classic groups: the member's metadata for the group's protocol, as sent.
    pub metadata: Bytes,
    /// Classic groups: the assignment the leader gave, as sent.
    pub assignment_bytes: Bytes,
}

/// A group as DescribeGroup shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub kind: GroupKind,
    pub state: GroupState,
    /// Native groups' strategy; for Kafka groups the nearest one.
    pub strategy: Strategy,
    /// Classic: as the members gave it ("consumer", …); KIP-848: "consumer";
    /// native: "consumer" (they are consumer groups); offsets only: "".
    pub protocol_type: String,
    /// Classic: the chosen protocol; native: the strategy; KIP-848: the assignor.
    pub protocol: String,
    /// The generation (KIP-848: the group epoch); -1 when the group does not exist.
    pub generation: i32,
    pub leader: String,
    pub members: Vec<MemberDescription>,
    pub offsets: BTreeMap<TopicPartition, OffsetValue>,
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    pub kind: GroupKind,
    pub state: GroupState,
    pub protocol_type: String,
    pub members: u32,
}

/// The groups of one `__consumer_offsets` partition.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    ids: MemberIds,
    groups: BTreeMap<String, Group>,
    partition_counts: BTreeMap<String, u32>,
    /// Whether `set_partition_counts` was called yet: the first call only informs.
    counts_known: bool,
}

fn err(code: impl Into<GroupCode>, message: impl Into<String>) -> GroupError {
    GroupError::new(code, message)
}

fn unknown_member(group: &str, member: &str) -> GroupError {
    err(
        ErrorCode::UnknownMemberId,
        format!("member {member:?} is not in group {group:?}; join again without a member id"),
    )
}

fn check_name(what: &str, s: &str) -> Result<(), GroupError> {
    check_str(s).map_err(|e| err(ErrorCode::InvalidRequest, format!("{what}: {e}")))
}

fn check_group_id(group: &str) -> Result<(), GroupError> {
    if group.is_empty() {
        return Err(err(GroupCode::InvalidGroupId, "the group id is empty"));
    }
    check_name("group id", group)
}

fn check_topics(topics: &[String]) -> Result<(), GroupError> {
    if topics.len() > MEMBER_TOPICS_MAX {
        return Err(err(
            ErrorCode::InvalidRequest,
            format!(
                "a member may subscribe to at most {MEMBER_TOPICS_MAX} topics, not {}",
                topics.len()
            ),
        ));
    }
    topics.iter().try_for_each(|t| check_name("topic", t))
}

/// The error for a request of one protocol to a group another protocol runs.
fn inconsistent(g: &Group, wanted: GroupKind) -> GroupError {
    err(
        GroupCode::InconsistentGroupProtocol,
        format!(
            "group {:?} is a {} group with {} members; a {} member cannot join it \
             (use another group id, or stop its members first)",
            g.name,
            g.kind().name(),
            g.member_count(),
            wanted.name()
        ),
    )
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        let ids = MemberIds {
            instance: config.instance,
            next: 0,
        };
        Coordinator {
            config,
            ids,
            groups: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            counts_known: false,
        }
    }

    /// Tells the coordinator every topic's partition count. Groups subscribed to a
    /// topic whose count changed rebalance (not on the first call, which tells the
    /// counts the replayed assignments were made with).
    pub fn set_partition_counts(&mut self, now_ms: i64, counts: BTreeMap<String, u32>) -> Effects {
        let changed: BTreeSet<String> = counts
            .iter()
            .filter(|(t, n)| self.partition_counts.get(*t) != Some(n))
            .map(|(t, _)| t.clone())
            .chain(
                self.partition_counts
                    .keys()
                    .filter(|t| !counts.contains_key(*t))
                    .cloned(),
            )
            .collect();
        self.partition_counts = counts;
        let mut fx = Effects::default();
        if !std::mem::replace(&mut self.counts_known, true) || changed.is_empty() {
            return fx;
        }
        for g in self.groups.values_mut() {
            match &mut g.body {
                Body::Native(n) => {
                    if n.state == GroupState::Stable && changed.iter().any(|t| n.subscribes(t)) {
                        n.prepare_rebalance(now_ms);
                        n.maybe_complete(now_ms, &self.partition_counts, &mut fx);
                    }
                }
                Body::Consumer(c) => c.topics_changed(&changed, &self.partition_counts, &mut fx),
                // Classic groups' leaders watch topic metadata themselves.
                Body::Simple | Body::Classic(_) => {}
            }
        }
        fx
    }

    /// The group `name`, run by `kind`: created if missing, taken over if it has
    /// no members; an error if another protocol's members are in it.
    fn claim<'a>(
        groups: &'a mut BTreeMap<String, Group>,
        name: &str,
        kind: GroupKind,
    ) -> Result<&'a mut Group, GroupError> {
        let g = groups
            .entry(name.to_owned())
            .or_insert_with(|| Group::new(name));
        if g.kind() != kind {
            if g.member_count() > 0 {
                return Err(inconsistent(g, kind));
            }
            g.body = match kind {
                GroupKind::Simple => Body::Simple,
                GroupKind::Native => Body::Native(NativeGroup::new(name, Strategy::default())),
                GroupKind::Classic => Body::Classic(ClassicGroup::new(name)),
                GroupKind::Consumer => Body::Consumer(ConsumerGroup::new(name)),
            };
        }
        Ok(g)
    }

    // ---- native protocol ---------------------------------------------------------

    /// Joins (or rejoins) a native group. The answer to `token` comes in the
    /// returned effects or in those of a later input, once the rebalance completes.
    pub fn join(&mut self, now_ms: i64, token: Token, req: JoinRequest) -> Effects {
        let mut fx = Effects::default();
        if let Err(e) = self.join_inner(now_ms, token, req, &mut fx) {
            fx.answer(token, Answer::Join(Err(e)));
        }
        fx
    }

    fn join_inner(
        &mut self,
        now_ms: i64,
        token: Token,
        req: JoinRequest,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        if req.group.is_empty() {
            return Err(err(ErrorCode::InvalidRequest, "the group id is empty"));
        }
        check_name("group id", &req.group)?;
        check_name("client id", &req.client_id)?;
        check_name("host", &req.host)?;
        check_topics(&req.topics)?;
        self.check_session_timeout(req.session_timeout_ms)?;
        let rebalance_timeout_ms = req
            .rebalance_timeout_ms
            .clamp(req.session_timeout_ms, REBALANCE_TIMEOUT_MS_MAX);
        let topics: BTreeSet<String> = req.topics.into_iter().collect();
        let members_max = self.config.group_members_max;
        let g = Self::claim(&mut self.groups, &req.group, GroupKind::Native)?;
        let Body::Native(group) = &mut g.body else {
            unreachable!("claimed as native");
        };
        let others = group
            .members
            .keys()
            .filter(|id| **id != req.member_id)
            .count();
        if others > 0 && group.strategy != req.strategy {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "group {:?} assigns with {}; this member asked for {}",
                    req.group,
                    group.strategy.name(),
                    req.strategy.name()
                ),
            ));
        }
        if req.member_id.is_empty() {
            if group.members.len() >= members_max {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!(
                        "group {:?} already has the most members allowed ({members_max})",
                        req.group
                    ),
                ));
            }
            let id = self.ids.fresh(&req.client_id);
            group.members.insert(
                id.clone(),
                Member {
                    id,
                    client_id: req.client_id,
                    host: req.host,
                    topics,
                    session_timeout_ms: req.session_timeout_ms,
                    rebalance_timeout_ms,
                    last_seen_ms: now_ms,
                    pending_join: Some(token),
                    assignment: Vec::new(),
                },
            );
            if others == 0 {
                group.strategy = req.strategy;
            }
            group.prepare_rebalance(now_ms);
            group.maybe_complete(now_ms, &self.partition_counts, fx);
            return Ok(());
        }
        let Some(member) = group.members.get_mut(&req.member_id) else {
            return Err(unknown_member(&req.group, &req.member_id));
        };
        member.last_seen_ms = now_ms;
        member.client_id = req.client_id;
        member.host = req.host;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        let unchanged = member.topics == topics && group.strategy == req.strategy;
        member.topics = topics;
        if group.state == GroupState::Stable && unchanged {
            fx.answer(
                token,
                Answer::Join(Ok(JoinResponse {
                    member_id: member.id.clone(),
                    generation: group.generation,
                    leader_member_id: group.leader.clone(),
                    assignment: member.assignment.clone(),
                })),
            );
            return Ok(());
        }
        if let Some(old) = member.pending_join.replace(token) {
            fx.answer(
                old,
                Answer::Join(Err(err(
                    ErrorCode::RebalanceInProgress,
                    "a newer join of this member replaced this one",
                ))),
            );
        }
        group.strategy = req.strategy;
        group.prepare_rebalance(now_ms);
        group.maybe_complete(now_ms, &self.partition_counts, fx);
        Ok(())
    }

    fn check_session_timeout(&self, session_timeout_ms: u32) -> Result<(), GroupError> {
        let (lo, hi) = (
            self.config.session_timeout_ms_min,
            self.config.session_timeout_ms_max,
        );
        if !(lo..=hi).contains(&session_timeout_ms) {
            return Err(err(
                ErrorCode::InvalidSessionTimeout,
                format!("session timeout {session_timeout_ms} ms is outside {lo}..={hi} ms"),
            ));
        }
        Ok(())
    }

    /// The native group `group` with member `member_id`.
    fn native_member(
        &mut self,
        group: &str,
        member_id: &str,
    ) -> Result<&mut NativeGroup, GroupError> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| unknown_member(group, member_id))?;
        if g.kind() != GroupKind::Native && g.member_count() > 0 {
            return Err(inconsistent(g, GroupKind::Native));
        }
        match &mut g.body {
            Body::Native(n) if n.members.contains_key(member_id) => Ok(n),
            _ => Err(unknown_member(group, member_id)),
        }
    }

    /// A native member says it is alive. RebalanceInProgress tells it to rejoin.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        let g = self.native_member(group, member_id)?;
        g.members
            .get_mut(member_id)
            .expect("native_member checked")
            .last_seen_ms = now_ms;
        check_generation(g, generation)
    }

    /// A native member leaves; the others rebalance.
    pub fn leave(
        &mut self,
        now_ms: i64,
        group: &str,
        member_id: &str,
    ) -> Result<Effects, GroupError> {
        let counts = &self.partition_counts;
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| unknown_member(group, member_id))?;
        if g.kind() != GroupKind::Native && g.member_count() > 0 {
            return Err(inconsistent(g, GroupKind::Native));
        }
        let Body::Native(n) = &mut g.body else {
            return Err(unknown_member(group, member_id));
        };
        if !n.members.contains_key(member_id) {
            return Err(unknown_member(group, member_id));
        }
        let mut fx = Effects::default();
        n.remove_member(member_id, "left the group", &mut fx);
        n.prepare_rebalance(now_ms);
        n.maybe_complete(now_ms, counts, &mut fx);
        Ok(fx)
    }

    /// Validates a native offset commit and returns the records that make it
    /// durable; the caller appends them, then [`apply`](Self::apply)s them. A
    /// member's commit must carry the current generation (also during a
    /// rebalance). A commit with an empty member id and generation -1 is an admin
    /// commit (a reset), allowed only while the group has no members.
    pub fn commit(
        &mut self,
        now_ms: i64,
        group: &str,
        member_id: &str,
        generation: i32,
        commits: &[Commit],
    ) -> Result<Vec<Record>, GroupError> {
        if group.is_empty() {
            return Err(err(ErrorCode::InvalidRequest, "the group id is empty"));
        }
        check_name("group id", group)?;
        check_commits(commits)?;
        if member_id.is_empty() && generation < 0 {
            if let Some(g) = self.groups.get(group) {
                if g.member_count() > 0 {
                    return Err(err(
                        ErrorCode::GroupNotEmpty,
                        format!(
                            "group {group:?} has {} active members; stop them before resetting its offsets",
                            g.member_count()
                        ),
                    ));
                }
            }
        } else {
            let g = self.native_member(group, member_id)?;
            g.members
                .get_mut(member_id)
                .expect("native_member checked")
                .last_seen_ms = now_ms;
            // Unlike a heartbeat, a commit of the current generation is accepted during
            // a rebalance: members commit what they consumed before giving it up.
            if generation != g.generation {
                return Err(illegal_generation(&g.name, g.generation, generation));
            }
        }
        Ok(offset_records(now_ms, group, commits))
    }

    // ---- Kafka classic protocol --------------------------------------------------

    /// JoinGroup of the classic protocol. The answer to `token` comes in the
    /// returned effects or in those of a later input, once the rebalance completes.
    pub fn classic_join(&mut self, now_ms: i64, token: Token, req: ClassicJoinRequest) -> Effects {
        let mut fx = Effects::default();
        if let Err(e) = self.classic_join_inner(now_ms, token, req, &mut fx) {
            fx.answer(token, Answer::ClassicJoin(Err(e)));
        }
        fx
    }

    fn classic_join_inner(
        &mut self,
        now_ms: i64,
        token: Token,
        mut req: ClassicJoinRequest,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        check_group_id(&req.group)?;
        check_name("member id", &req.member_id)?;
        check_name("client id", &req.client_id)?;
        check_name("host", &req.host)?;
        check_name("protocol type", &req.protocol_type)?;
        if let Some(i) = &req.instance_id {
            check_name("group instance id", i)?;
        }
        self.check_session_timeout(req.session_timeout_ms)?;
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(err(
                GroupCode::InconsistentGroupProtocol,
                "a member must give a protocol type and at least one protocol",
            ));
        }
        if req.protocols.len() > MEMBER_PROTOCOLS_MAX {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "a member may offer at most {MEMBER_PROTOCOLS_MAX} protocols, not {}",
                    req.protocols.len()
                ),
            ));
        }
        for (name, metadata) in &req.protocols {
            check_name("protocol name", name)?;
            check_bytes("protocol metadata", metadata)
                .map_err(|e| err(ErrorCode::InvalidRequest, e.to_string()))?;
        }
        req.rebalance_timeout_ms = req.rebalance_timeout_ms.clamp(1, REBALANCE_TIMEOUT_MS_MAX);
        let config = self.config.clone();
        let g = Self::claim(&mut self.groups, &req.group, GroupKind::Classic)?;
        let Body::Classic(c) = &mut g.body else {
            unreachable!("claimed as classic");
        };
        c.join(now_ms, token, req, &config, &mut self.ids, fx)
    }

    /// The classic group `group` (for requests of its members).
    fn classic_group(
        &mut self,
        group: &str,
        member_id: &str,
    ) -> Result<&mut ClassicGroup, GroupError> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| unknown_member(group, member_id))?;
        if g.kind() != GroupKind::Classic && g.member_count() > 0 {
            return Err(inconsistent(g, GroupKind::Classic));
        }
        match &mut g.body {
            Body::Classic(c) => Ok(c),
            _ => Err(unknown_member(group, member_id)),
        }
    }

    /// SyncGroup. The answer to `token` comes in the returned effects or in those
    /// of a later input, once the leader's assignment arrives.
    pub fn classic_sync(&mut self, now_ms: i64, token: Token, req: SyncRequest) -> Effects {
        let mut fx = Effects::default();
        let result = (|| {
            for (member, assignment) in &req.assignments {
                check_name("member id", member)?;
                check_bytes("assignment", assignment)
                    .map_err(|e| err(ErrorCode::InvalidRequest, e.to_string()))?;
            }
            let g = self.classic_group(&req.group, &req.member_id)?;
            g.sync(now_ms, token, req, &mut fx)
        })();
        if let Err(e) = result {
            fx.answer(token, Answer::Sync(Err(e)));
        }
        fx
    }

    /// Heartbeat of a classic member. REBALANCE_IN_PROGRESS tells it to rejoin.
    pub fn classic_heartbeat(
        &mut self,
        now_ms: i64,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.classic_group(group, member_id)?
            .heartbeat(now_ms, member_id, instance_id, generation)
    }

    /// LeaveGroup: one result per member, in order.
    pub fn classic_leave(
        &mut self,
        now_ms: i64,
        group: &str,
        leaving: &[LeaveMember],
    ) -> Result<(Vec<Result<(), GroupError>>, Effects), GroupError> {
        let config = self.config.clone();
        let first = leaving.first().map(|l| l.member_id.as_str()).unwrap_or("");
        let g = self.classic_group(group, first)?;
        let mut fx = Effects::default();
        let results = g.leave(now_ms, leaving, &config, &mut fx);
        Ok((results, fx))
    }

    // ---- Kafka KIP-848 protocol --------------------------------------------------

    /// ConsumerGroupHeartbeat: joins, heartbeats, reconciles, leaves.
    pub fn consumer_heartbeat(
        &mut self,
        now_ms: i64,
        req: ConsumerHeartbeat,
    ) -> (Result<ConsumerHeartbeatResponse, GroupError>, Effects) {
        let mut fx = Effects::default();
        let result = self.consumer_heartbeat_inner(now_ms, req, &mut fx);
        (result, fx)
    }

    fn consumer_heartbeat_inner(
        &mut self,
        now_ms: i64,
        req: ConsumerHeartbeat,
        fx: &mut Effects,
    ) -> Result<ConsumerHeartbeatResponse, GroupError> {
        check_group_id(&req.group)?;
        check_name("member id", &req.member_id)?;
        check_name("client id", &req.client_id)?;
        check_name("host", &req.host)?;
        for (what, v) in [
            ("group instance id", &req.instance_id),
            ("rack id", &req.rack_id),
            ("server assignor", &req.server_assignor),
        ] {
            if let Some(v) = v {
                check_name(what, v)?;
            }
        }
        if let Some(names) = &req.subscribed_topic_names {
            check_topics(names)?;
        }
        if let Some(owned) = &req.owned {
            if owned.len() > MEMBER_TOPICS_MAX.saturating_mul(16) {
                return Err(err(ErrorCode::InvalidRequest, "too many owned partitions"));
            }
        }
        if let Some(re) = req
            .subscribed_topic_regex
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            TopicRegex::new(re).map_err(|e| {
                err(
                    GroupCode::InvalidRegularExpression,
                    format!("subscribed topic regex {re:?} is not supported: {e}"),
                )
            })?;
        }
        if let Some(a) = &req.server_assignor {
            if !SERVER_ASSIGNORS.iter().any(|(n, _)| n == a) {
                return Err(err(
                    GroupCode::UnsupportedAssignor,
                    format!(
                        "server assignor {a:?} is not supported; use one of {:?}",
                        SERVER_ASSIGNORS.map(|(n, _)| n)
                    ),
                ));
            }
        }
        let config = self.config.clone();
        let g = if req.member_epoch == 0 {
            Self::claim(&mut self.groups, &req.group, GroupKind::Consumer)?
        } else {
            let g = self
                .groups
                .get_mut(&req.group)
                .ok_or_else(|| unknown_member(&req.group, &req.member_id))?;
            if g.kind() != GroupKind::Consumer {
                return Err(if g.member_count() > 0 {
                    inconsistent(g, GroupKind::Consumer)
                } else {
                    unknown_member(&req.group, &req.member_id)
                });
            }
            g
        };
        let Body::Consumer(c) = &mut g.body else {
            unreachable!("checked to be a consumer group");
        };
        c.heartbeat(
            now_ms,
            req,
            &config,
            &mut self.ids,
            &self.partition_counts,
            fx,
        )
    }

    /// A KIP-848 group as ConsumerGroupDescribe shows it; GROUP_ID_NOT_FOUND when
    /// there is no such group (or it is not a KIP-848 group).
    pub fn consumer_describe(&self, group: &str) -> Result<ConsumerGroupDescription, GroupError> {
        match self.groups.get(group).map(|g| &g.body) {
            Some(Body::Consumer(c)) => Ok(c.describe()),
            Some(_) => Err(err(
                ErrorCode::GroupNotFound,
                format!("group {group:?} is not a consumer group (KIP-848)"),
            )),
            None => Err(err(
                ErrorCode::GroupNotFound,
                format!("group {group:?} does not exist"),
            )),
        }
    }

    // ---- Kafka offsets -----------------------------------------------------------

    /// Validates a Kafka OffsetCommit (Kafka's rules for the group's protocol) and
    /// returns the records that make it durable; see [`commit`](Self::commit).
    pub fn kafka_commit(
        &mut self,
        now_ms: i64,
        req: &KafkaCommit,
        commits: &[Commit],
    ) -> Result<Vec<Record>, GroupError> {
        check_group_id(&req.group)?;
        check_name("member id", &req.member_id)?;
        check_commits(commits)?;
        let generation = req.generation_or_epoch;
        let simple = generation < 0 && req.member_id.is_empty() && req.instance_id.is_none();
        match self.groups.get_mut(&req.group) {
            None if generation < 0 => {}
            None if req.member_epoch_api => {
                return Err(err(
                    ErrorCode::GroupNotFound,
                    format!("group {:?} does not exist", req.group),
                ))
            }
            None => return Err(illegal_generation(&req.group, -1, generation)),
            Some(g) => match &mut g.body {
                Body::Simple => {
                    if !simple {
                        return Err(unknown_member(&req.group, &req.member_id));
                    }
                }
                Body::Native(n) => {
                    if !n.members.is_empty() {
                        return Err(inconsistent(g, GroupKind::Classic));
                    }
                    if !simple {
                        return Err(unknown_member(&req.group, &req.member_id));
                    }
                }
                Body::Classic(c) => c.check_commit(
                    now_ms,
                    &req.member_id,
                    req.instance_id.as_deref(),
                    generation,
                )?,
                Body::Consumer(c) => {
                    c.check_commit(&req.member_id, generation, req.member_epoch_api)?
                }
            },
        }
        Ok(offset_records(now_ms, &req.group, commits))
    }

    /// Checks an OffsetFetch v9+ that names a member (KIP-848 members fetch with
    /// their id and epoch); fetches without a member are always allowed.
    pub fn check_fetch(&self, group: &str, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        if member_id.is_empty() && epoch < 0 {
            return Ok(());
        }
        match self.groups.get(group).map(|g| &g.body) {
            Some(Body::Consumer(c)) => c.check_fetch(member_id, epoch),
            // A group that does not exist has no offsets (Kafka answers -1s too).
            _ => Ok(()),
        }
    }

    // ---- all protocols -----------------------------------------------------------

    /// Applies a record of `__consumer_offsets`: at startup for every record of the
    /// partition in order, and after each durable offset commit.
    pub fn apply(
        &mut self,
        now_ms: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), RecordError> {
        match decode_record(key, value)? {
            GroupRecord::Offset { group, tp, value } => match value {
                Some(v) => {
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group))
                        .offsets
                        .insert(tp, v);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&tp);
                        if g.offsets.is_empty() && g.kind() == GroupKind::Simple {
                            self.groups.remove(&group);
                        }
                    }
                }
            },
            GroupRecord::Metadata { group, value } => match value {
                Some(v) => {
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group));
                    g.body = match v {
                        GroupMetadata::Native(v) => {
                            let mut n = NativeGroup::new(&group, v.strategy);
                            n.restore(v, now_ms);
                            Body::Native(n)
                        }
                        GroupMetadata::Classic(v) => {
                            Body::Classic(ClassicGroup::restore(&group, v, now_ms))
                        }
                        GroupMetadata::Consumer(v) => {
                            Body::Consumer(ConsumerGroup::restore(&group, v, now_ms))
                        }
                    };
                }
                None => {
                    self.groups.remove(&group);
                }
            },
        }
        Ok(())
    }

    /// Deletes a group without members and its offsets; returns the tombstones to
    /// append.
    pub fn delete(&mut self, group: &str) -> Result<Vec<Record>, GroupError> {
        let g = self.groups.get(group).ok_or_else(|| {
            err(
                ErrorCode::GroupNotFound,
                format!("group {group:?} does not exist"),
            )
        })?;
        if g.member_count() > 0 {
            return Err(err(
                ErrorCode::GroupNotEmpty,
                format!(
                    "group {group:?} has {} active members; stop them before deleting it",
                    g.member_count()
                ),
            ));
        }
        let g = self.groups.remove(group).expect("looked up above");
        let mut records: Vec<Record> = g
            .offsets
            .keys()
            .map(|tp| Record {
                key: offset_key(group, tp),
                value: None,
            })
            .collect();
        records.push(Record {
            key: metadata_key(group),
            value: None,
        });
        Ok(records)
    }

    /// Forgets the committed offsets of every topic for which `deleted` is true, and
    /// deletes the groups this leaves with neither members nor offsets, as Kafka does
    /// when a topic is deleted (a topic created again under the name starts with no
    /// offsets). Returns the tombstones that make the removal durable; groups with
    /// members keep running (their subscriptions see the topic gone).
    pub fn remove_topic_offsets(&mut self, deleted: impl Fn(&str) -> bool) -> Vec<Record> {
        let mut records = Vec::new();
        let mut emptied = Vec::new();
        for g in self.groups.values_mut() {
            let before = g.offsets.len();
            g.offsets.retain(|tp, _| {
                let gone = deleted(&tp.topic);
                if gone {
                    records.push(Record {
                        key: offset_key(&g.name, tp),
                        value: None,
                    });
                }
                !gone
            });
            if g.offsets.len() < before && g.offsets.is_empty() && g.member_count() == 0 {
                emptied.push(g.name.clone());
            }
        }
        for name in emptied {
            self.groups.remove(&name);
            records.push(Record {
                key: metadata_key(&name),
                value: None,
            });
        }
        records
    }

    /// Expires sessions and ends rebalances whose deadline passed.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        for g in self.groups.values_mut() {
            match &mut g.body {
                Body::Simple => {}
                Body::Native(n) => n.tick(now_ms, &self.partition_counts, &mut fx),
                Body::Classic(c) => c.tick(now_ms, &self.config, &mut fx),
                Body::Consumer(c) => c.tick(now_ms, &self.config, &self.partition_counts, &mut fx),
            }
        }
        fx
    }

    /// Committed offsets of `group`: of `wanted`, or all when `wanted` is none.
    pub fn fetch_offsets(
        &self,
        group: &str,
        wanted: Option<&[TopicPartition]>,
    ) -> Vec<(TopicPartition, Option<OffsetValue>)> {
        let offsets = self.groups.get(group).map(|g| &g.offsets);
        match wanted {
            Some(w) => w
                .iter()
                .map(|tp| (tp.clone(), offsets.and_then(|o| o.get(tp)).cloned()))
                .collect(),
            None => offsets
                .into_iter()
                .flatten()
                .map(|(tp, v)| (tp.clone(), Some(v.clone())))
                .collect(),
        }
    }

    /// A group's state, members and offsets; state Dead when it does not exist.
    pub fn describe(&self, group: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group) else {
            return GroupDescription {
                group: group.to_owned(),
                kind: GroupKind::Simple,
                state: GroupState::Dead,
                strategy: Strategy::default(),
                protocol_type: String::new(),
                protocol: String::new(),
                generation: -1,
                leader: String::new(),
                members: Vec::new(),
                offsets: BTreeMap::new(),
            };
        };
        let mut d = GroupDescription {
            group: group.to_owned(),
            kind: g.kind(),
            state: g.state(),
            strategy: Strategy::default(),
            protocol_type: String::new(),
            protocol: String::new(),
            generation: 0,
            leader: String::new(),
            members: Vec::new(),
            offsets: g.offsets.clone(),
        };
        match &g.body {
            Body::Simple => {}
            Body::Native(n) => {
                d.strategy = n.strategy;
                d.protocol_type = "consumer".to_owned();
                d.protocol = n.strategy.name().to_owned();
                d.generation = n.generation;
                d.leader = n.leader.clone();
                d.members = n
                    .members
                    .values()
                    .map(|m| MemberDescription {
                        member_id: m.id.clone(),
                        instance_id: None,
                        client_id: m.client_id.clone(),
                        host: m.host.clone(),
                        topics: m.topics.iter().cloned().collect(),
                        assignment: m.assignment.clone(),
                        metadata: Bytes::new(),
                        assignment_bytes: Bytes::new(),
                    })
                    .collect();
            }
            Body::Classic(c) => {
                let protocol = c.protocol.clone().unwrap_or_default();
                d.strategy = strategy_of(&protocol);
                d.protocol_type = c.protocol_type.clone();
                d.protocol = protocol.clone();
                d.generation = c.generation;
                d.leader = c.leader.clone().unwrap_or_default();
                let consumer = c.protocol_type == "consumer";
                d.members = c
                    .members
                    .values()
                    .map(|m| {
                        let metadata = m
                            .protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        MemberDescription {
                            member_id: m.id.clone(),
                            instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            host: m.host.clone(),
                            topics: consumer
                                .then(|| super::classic::subscribed_topics(&metadata))
                                .flatten()
                                .unwrap_or_default(),
                            assignment: consumer
                                .then(|| super::classic::assigned_partitions(&m.assignment))
                                .flatten()
                                .unwrap_or_default(),
                            metadata,
                            assignment_bytes: m.assignment.clone(),
                        }
                    })
                    .collect();
            }
            Body::Consumer(c) => {
                let (assignor, strategy) = c.assignor();
                d.strategy = strategy;
                d.protocol_type = "consumer".to_owned();
                d.protocol = assignor.to_owned();
                d.generation = c.group_epoch;
                d.members = c
                    .members
                    .values()
                    .map(|m| MemberDescription {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        host: m.host.clone(),
                        topics: m.topics.iter().cloned().collect(),
                        assignment: m.assigned.iter().cloned().collect(),
                        metadata: Bytes::new(),
                        assignment_bytes: Bytes::new(),
                    })
                    .collect();
            }
        }
        d
    }

    /// Every group of this coordinator.
    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .map(|g| GroupListing {
                group: g.name.clone(),
                kind: g.kind(),
                state: g.state(),
                protocol_type: match &g.body {
                    Body::Simple => String::new(),
                    Body::Classic(c) => c.protocol_type.clone(),
                    Body::Native(_) | Body::Consumer(_) => "consumer".to_owned(),
                },
                members: g.member_count() as u32,
            })
            .collect()
    }
}

/// The native strategy nearest a Kafka assignor's name.
fn strategy_of(protocol: &str) -> Strategy {
    match protocol {
        "roundrobin" => Strategy::RoundRobin,
        "sticky" | "cooperative-sticky" | "uniform" => Strategy::Sticky,
        _ => Strategy::Range,
    }
}

fn check_commits(commits: &[Commit]) -> Result<(), GroupError> {
    for c in commits {
        check_name("topic", &c.tp.topic)?;
        if c.metadata.len() > OFFSET_METADATA_BYTES_MAX {
            return Err(err(
                GroupCode::OffsetMetadataTooLarge,
                format!(
                    "offset metadata of {} bytes for {}/{} is longer than {OFFSET_METADATA_BYTES_MAX} bytes",
                    c.metadata.len(),
                    c.tp.topic,
                    c.tp.partition
                ),
            ));
        }
        if c.offset < 0 {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "offset {} for {}/{} is negative",
                    c.offset, c.tp.topic, c.tp.partition
                ),
            ));
        }
    }
    Ok(())
}

fn offset_records(now_ms: i64, group: &str, commits: &[Commit]) -> Vec<Record> {
    commits
        .iter()
        .map(|c| {
            offset_record(
                group,
                &c.tp,
                &OffsetValue {
                    offset: c.offset,
                    metadata: c.metadata.clone(),
                    commit_time_ms: now_ms,
                    leader_epoch: c.leader_epoch,
                },
            )
        })
        .collect()
}

fn check_generation(g: &NativeGroup, generation: i32) -> Result<(), GroupError> {
    if g.state == GroupState::PreparingRebalance {
        return Err(err(
            ErrorCode::RebalanceInProgress,
            format!("group {:?} is rebalancing; join again", g.name),
        ));
    }
    if generation != g.generation {
        return Err(illegal_generation(&g.name, g.generation, generation));
    }
    Ok(())
}

fn illegal_generation(group: &str, current: i32, generation: i32) -> GroupError {
    err(
        ErrorCode::IllegalGeneration,
        format!(
            "generation {generation} is not the current generation {current} of group {group:?}; join again"
        ),
    )
}
