//! The coordinator of the groups of one `__consumer_offsets` partition: validates
//! requests, drives each group's state machine, and says what to persist.
//!
//! Inputs: [`join`](Coordinator::join), [`heartbeat`](Coordinator::heartbeat),
//! [`leave`](Coordinator::leave), [`commit`](Coordinator::commit),
//! [`delete`](Coordinator::delete), [`tick`](Coordinator::tick) and
//! [`apply`](Coordinator::apply) (a record read back from, or just appended to,
//! `__consumer_offsets`). Time is always an argument (`now_ms`, Unix milliseconds).
//!
//! Offsets take effect when their records are durable: `commit` validates and
//! returns the records; the caller appends them and then `apply`s them — the same
//! path a replay at startup takes. Group metadata changes take effect at once and
//! come back in [`Effects::records`] to be appended.

use std::collections::{BTreeMap, BTreeSet};

use strata_schema::ErrorCode;

use super::assignor::{Strategy, TopicPartition};
use super::group::{Group, GroupState, Member};
use super::records::{
    check_str, decode_record, metadata_key, offset_key, offset_record, GroupRecord, OffsetValue,
    Record, RecordError,
};
use crate::errors::WireError;

/// Identifies a held join request; chosen by the caller.
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

/// Limits and identity of a coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Goes into new member ids, so ids stay unique across restarts (the caller
    /// picks something that differs per start, e.g. the start time).
    pub instance: u64,
    pub session_timeout_ms_min: u32,
    pub session_timeout_ms_max: u32,
    pub group_members_max: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            instance: 0,
            session_timeout_ms_min: SESSION_TIMEOUT_MS_MIN,
            session_timeout_ms_max: SESSION_TIMEOUT_MS_MAX,
            group_members_max: GROUP_MEMBERS_MAX,
        }
    }
}

/// A JoinGroup request.
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

/// What a member learns when its join completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    pub member_id: String,
    pub generation: i32,
    pub leader_member_id: String,
    pub assignment: Vec<TopicPartition>,
}

/// What an input asks the caller to do.
#[derive(Debug, Default)]
pub struct Effects {
    /// Held joins to answer now.
    pub joins: Vec<(Token, Result<JoinResponse, WireError>)>,
    /// Records to append to this coordinator's `__consumer_offsets` partition.
    pub records: Vec<Record>,
}

/// One offset to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub tp: TopicPartition,
    pub offset: i64,
    pub metadata: String,
}

/// A member as DescribeGroup shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<TopicPartition>,
}

/// A group as DescribeGroup shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub state: GroupState,
    pub strategy: Strategy,
    pub generation: i32,
    pub leader: String,
    pub members: Vec<MemberDescription>,
    pub offsets: BTreeMap<TopicPartition, OffsetValue>,
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    pub state: GroupState,
    pub members: u32,
}

/// The groups of one `__consumer_offsets` partition.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    next_member: u64,
    groups: BTreeMap<String, Group>,
    partition_counts: BTreeMap<String, u32>,
    /// Whether `set_partition_counts` was called yet: the first call only informs.
    counts_known: bool,
}

fn err(code: ErrorCode, message: impl Into<String>) -> WireError {
    WireError::new(code, message)
}

fn unknown_member(group: &str, member: &str) -> WireError {
    err(
        ErrorCode::UnknownMemberId,
        format!("member {member:?} is not in group {group:?}; join again without a member id"),
    )
}

fn check_name(what: &str, s: &str) -> Result<(), WireError> {
    check_str(s).map_err(|e| err(ErrorCode::InvalidRequest, format!("{what}: {e}")))
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        Coordinator {
            config,
            next_member: 0,
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
            if g.state == GroupState::Stable && changed.iter().any(|t| g.subscribes(t)) {
                g.prepare_rebalance(now_ms);
                g.maybe_complete(now_ms, &self.partition_counts, &mut fx);
            }
        }
        fx
    }

    /// Joins (or rejoins) a group. The answer to `token` comes in the returned
    /// effects or in those of a later input, once the rebalance completes.
    pub fn join(&mut self, now_ms: i64, token: Token, req: JoinRequest) -> Effects {
        let mut fx = Effects::default();
        if let Err(e) = self.join_inner(now_ms, token, req, &mut fx) {
            fx.joins.push((token, Err(e)));
        }
        fx
    }

    fn join_inner(
        &mut self,
        now_ms: i64,
        token: Token,
        req: JoinRequest,
        fx: &mut Effects,
    ) -> Result<(), WireError> {
        if req.group.is_empty() {
            return Err(err(ErrorCode::InvalidRequest, "the group id is empty"));
        }
        check_name("group id", &req.group)?;
        check_name("client id", &req.client_id)?;
        check_name("host", &req.host)?;
        if req.topics.len() > MEMBER_TOPICS_MAX {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "a member may subscribe to at most {MEMBER_TOPICS_MAX} topics, not {}",
                    req.topics.len()
                ),
            ));
        }
        for t in &req.topics {
            check_name("topic", t)?;
        }
        let (lo, hi) = (
            self.config.session_timeout_ms_min,
            self.config.session_timeout_ms_max,
        );
        if !(lo..=hi).contains(&req.session_timeout_ms) {
            return Err(err(
                ErrorCode::InvalidSessionTimeout,
                format!(
                    "session timeout {} ms is outside {lo}..={hi} ms",
                    req.session_timeout_ms
                ),
            ));
        }
        let rebalance_timeout_ms = req
            .rebalance_timeout_ms
            .clamp(req.session_timeout_ms, REBALANCE_TIMEOUT_MS_MAX);
        let topics: BTreeSet<String> = req.topics.into_iter().collect();
        let group = self
            .groups
            .entry(req.group.clone())
            .or_insert_with(|| Group::new(&req.group, req.strategy));
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
            if group.members.len() >= self.config.group_members_max {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!(
                        "group {:?} already has the most members allowed ({})",
                        req.group, self.config.group_members_max
                    ),
                ));
            }
            self.next_member += 1;
            let prefix = if req.client_id.is_empty() {
                "member"
            } else {
                &req.client_id
            };
            let id = format!("{prefix}-{:x}-{}", self.config.instance, self.next_member);
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
            fx.joins.push((
                token,
                Ok(JoinResponse {
                    member_id: member.id.clone(),
                    generation: group.generation,
                    leader_member_id: group.leader.clone(),
                    assignment: member.assignment.clone(),
                }),
            ));
            return Ok(());
        }
        if let Some(old) = member.pending_join.replace(token) {
            fx.joins.push((
                old,
                Err(err(
                    ErrorCode::RebalanceInProgress,
                    "a newer join of this member replaced this one",
                )),
            ));
        }
        group.strategy = req.strategy;
        group.prepare_rebalance(now_ms);
        group.maybe_complete(now_ms, &self.partition_counts, fx);
        Ok(())
    }

    /// A member says it is alive. RebalanceInProgress tells it to rejoin.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), WireError> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| unknown_member(group, member_id))?;
        let m = g
            .members
            .get_mut(member_id)
            .ok_or_else(|| unknown_member(group, member_id))?;
        m.last_seen_ms = now_ms;
        check_generation(g, generation)
    }

    /// A member leaves; the others rebalance.
    pub fn leave(
        &mut self,
        now_ms: i64,
        group: &str,
        member_id: &str,
    ) -> Result<Effects, WireError> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| unknown_member(group, member_id))?;
        if !g.members.contains_key(member_id) {
            return Err(unknown_member(group, member_id));
        }
        let mut fx = Effects::default();
        g.remove_member(member_id, "left the group", &mut fx);
        g.prepare_rebalance(now_ms);
        g.maybe_complete(now_ms, &self.partition_counts, &mut fx);
        Ok(fx)
    }

    /// Validates an offset commit and returns the records that make it durable; the
    /// caller appends them, then [`apply`](Self::apply)s them. A member's commit
    /// must carry the current generation (also during a rebalance). A commit with an
    /// empty member id and generation -1 is an admin commit (a reset), allowed only
    /// while the group has no members.
    pub fn commit(
        &mut self,
        now_ms: i64,
        group: &str,
        member_id: &str,
        generation: i32,
        commits: &[Commit],
    ) -> Result<Vec<Record>, WireError> {
        if group.is_empty() {
            return Err(err(ErrorCode::InvalidRequest, "the group id is empty"));
        }
        check_name("group id", group)?;
        for c in commits {
            check_name("topic", &c.tp.topic)?;
            check_name("offset metadata", &c.metadata)?;
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
        if member_id.is_empty() && generation < 0 {
            if let Some(g) = self.groups.get(group) {
                if !g.members.is_empty() {
                    return Err(err(
                        ErrorCode::GroupNotEmpty,
                        format!(
                            "group {group:?} has {} active members; stop them before resetting its offsets",
                            g.members.len()
                        ),
                    ));
                }
            }
        } else {
            let g = self
                .groups
                .get_mut(group)
                .ok_or_else(|| unknown_member(group, member_id))?;
            let m = g
                .members
                .get_mut(member_id)
                .ok_or_else(|| unknown_member(group, member_id))?;
            m.last_seen_ms = now_ms;
            // Unlike a heartbeat, a commit of the current generation is accepted during
            // a rebalance: members commit what they consumed before giving it up.
            if generation != g.generation {
                return Err(illegal_generation(g, generation));
            }
        }
        Ok(commits
            .iter()
            .map(|c| {
                offset_record(
                    group,
                    &c.tp,
                    &OffsetValue {
                        offset: c.offset,
                        metadata: c.metadata.clone(),
                        commit_time_ms: now_ms,
                    },
                )
            })
            .collect())
    }

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
                        .or_insert_with(|| Group::new(&group, Strategy::default()))
                        .offsets
                        .insert(tp, v);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&tp);
                        if g.offsets.is_empty() && g.members.is_empty() && g.generation == 0 {
                            self.groups.remove(&group);
                        }
                    }
                }
            },
            GroupRecord::Metadata { group, value } => match value {
                Some(v) => self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, v.strategy))
                    .restore(v, now_ms),
                None => {
                    self.groups.remove(&group);
                }
            },
        }
        Ok(())
    }

    /// Deletes a group without members and its offsets; returns the tombstones to
    /// append.
    pub fn delete(&mut self, group: &str) -> Result<Vec<Record>, WireError> {
        let g = self.groups.get(group).ok_or_else(|| {
            err(
                ErrorCode::GroupNotFound,
                format!("group {group:?} does not exist"),
            )
        })?;
        if !g.members.is_empty() {
            return Err(err(
                ErrorCode::GroupNotEmpty,
                format!(
                    "group {group:?} has {} active members; stop them before deleting it",
                    g.members.len()
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

    /// Expires sessions and ends rebalances whose deadline passed.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        for g in self.groups.values_mut() {
            g.tick(now_ms, &self.partition_counts, &mut fx);
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
                state: GroupState::Dead,
                strategy: Strategy::default(),
                generation: -1,
                leader: String::new(),
                members: Vec::new(),
                offsets: BTreeMap::new(),
            };
        };
        GroupDescription {
            group: group.to_owned(),
            state: g.state,
            strategy: g.strategy,
            generation: g.generation,
            leader: g.leader.clone(),
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
            offsets: g.offsets.clone(),
        }
    }

    /// Every group of this coordinator.
    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .map(|g| GroupListing {
                group: g.name.clone(),
                state: g.state,
                members: g.members.len() as u32,
            })
            .collect()
    }
}

fn check_generation(g: &Group, generation: i32) -> Result<(), WireError> {
    if g.state == GroupState::PreparingRebalance {
        return Err(err(
            ErrorCode::RebalanceInProgress,
            format!("group {:?} is rebalancing; join again", g.name),
        ));
    }
    if generation != g.generation {
        return Err(illegal_generation(g, generation));
    }
    Ok(())
}

fn illegal_generation(g: &Group, generation: i32) -> WireError {
    err(
        ErrorCode::IllegalGeneration,
        format!(
            "generation {generation} is not the current generation {} of group {:?}; join again",
            g.generation, g.name
        ),
    )
}
