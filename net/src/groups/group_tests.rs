//! State machine tests: the coordinator driven by explicit inputs and a fake clock.

use std::collections::{BTreeMap, BTreeSet};

use strata_schema::ErrorCode;

use super::*;

const SESSION_MS: u32 = 1_000;
const REBALANCE_MS: u32 = 5_000;

struct Harness {
    c: Coordinator,
    now_ms: i64,
    next_token: Token,
    /// Answers received, by token.
    answers: BTreeMap<Token, Result<JoinResponse, crate::errors::WireError>>,
    /// Everything persisted, in order.
    log: Vec<Record>,
}

impl Harness {
    fn new() -> Self {
        let mut c = Coordinator::new(CoordinatorConfig {
            instance: 7,
            ..Default::default()
        });
        let fx = c.set_partition_counts(0, [("t".to_owned(), 6), ("u".to_owned(), 2)].into());
        assert!(fx.answers.is_empty() && fx.records.is_empty());
        Harness {
            c,
            now_ms: 1_000_000,
            next_token: 1,
            answers: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn take(&mut self, fx: Effects) {
        for (t, a) in fx.answers {
            let Answer::Join(r) = a else {
                panic!("a native join got {a:?}");
            };
            let r = r.map_err(crate::errors::WireError::from);
            assert!(
                self.answers.insert(t, r).is_none(),
                "token {t} answered twice"
            );
        }
        self.log.extend(fx.records);
    }

    fn join_req(&mut self, member: &str, topics: &[&str], strategy: Strategy) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        let fx = self.c.join(
            self.now_ms,
            token,
            JoinRequest {
                group: "g".into(),
                member_id: member.into(),
                client_id: "c".into(),
                host: "h".into(),
                topics: topics.iter().map(|t| t.to_string()).collect(),
                strategy,
                session_timeout_ms: SESSION_MS,
                rebalance_timeout_ms: REBALANCE_MS,
            },
        );
        self.take(fx);
        token
    }

    fn join(&mut self, member: &str) -> Token {
        self.join_req(member, &["t"], Strategy::Range)
    }

    fn answer(&mut self, token: Token) -> Option<Result<JoinResponse, crate::errors::WireError>> {
        self.answers.remove(&token)
    }

    fn joined(&mut self, token: Token) -> JoinResponse {
        match self.answer(token) {
            Some(Ok(r)) => r,
            other => panic!("join {token} not completed: {other:?}"),
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        let fx = self.c.tick(self.now_ms);
        self.take(fx);
    }

    fn heartbeat(&mut self, m: &JoinResponse) -> Result<(), ErrorCode> {
        self.c
            .heartbeat(self.now_ms, "g", &m.member_id, m.generation)
            .map_err(|e| e.wire_code())
    }

    fn state(&self) -> GroupState {
        self.c.describe("g").state
    }

    /// Commits through the coordinator and applies the records, as the server does.
    fn commit(
        &mut self,
        member: &str,
        generation: i32,
        tp: (&str, u32),
        offset: i64,
    ) -> Result<(), ErrorCode> {
        let records = self
            .c
            .commit(
                self.now_ms,
                "g",
                member,
                generation,
                &[Commit {
                    tp: TopicPartition::new(tp.0, tp.1),
                    offset,
                    metadata: "m".into(),
                    leader_epoch: -1,
                }],
            )
            .map_err(|e| e.wire_code())?;
        for r in &records {
            self.c
                .apply(self.now_ms, &r.key, r.value.as_deref())
                .unwrap();
        }
        self.log.extend(records);
        Ok(())
    }

    fn committed(&self, tp: (&str, u32)) -> Option<i64> {
        self.c
            .fetch_offsets("g", Some(&[TopicPartition::new(tp.0, tp.1)]))
            .remove(0)
            .1
            .map(|v| v.offset)
    }
}

/// The error code of the first answer, a failed native join.
fn join_error(fx: &Effects) -> ErrorCode {
    match &fx.answers[0].1 {
        Answer::Join(Err(e)) => e.wire_code(),
        other => panic!("expected a failed join, got {other:?}"),
    }
}

fn check_partitioned(members: &[&JoinResponse], topic_partitions: u32) {
    let mut seen = BTreeSet::new();
    for m in members {
        for tp in &m.assignment {
            assert!(seen.insert(tp.clone()), "{tp:?} owned twice");
        }
    }
    assert_eq!(
        seen.len() as u32,
        topic_partitions,
        "not every partition owned"
    );
}

#[test]
fn first_member_gets_everything_at_once() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    assert_eq!(a.generation, 1);
    assert_eq!(a.leader_member_id, a.member_id);
    assert_eq!(a.assignment.len(), 6);
    assert_eq!(h.state(), GroupState::Stable);
    assert!(a.member_id.starts_with("c-7-"), "{}", a.member_id);
    assert_eq!(h.heartbeat(&a), Ok(()));
    // The new generation is persisted as group metadata.
    assert!(matches!(
        decode_record(&h.log[0].key, h.log[0].value.as_deref()).unwrap(),
        GroupRecord::Metadata {
            value: Some(GroupMetadata::Native(MetadataValue { generation: 1, .. })),
            ..
        }
    ));
}

#[test]
fn a_join_rebalances_and_the_join_is_held_until_everyone_rejoins() {
    let mut h = Harness::new();
    let t1 = h.join("");
    let a = h.joined(t1);
    let t2 = h.join("");
    assert!(
        h.answer(t2).is_none(),
        "the new member waits for the others"
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&a), Err(ErrorCode::RebalanceInProgress));
    // Commits of the current generation still go through, so a member can commit
    // what it consumed before its partitions move.
    assert_eq!(h.commit(&a.member_id, a.generation, ("t", 0), 5), Ok(()));
    let t1b = h.join(&a.member_id);
    let (a2, b) = (h.joined(t1b), h.joined(t2));
    assert_eq!(a2.generation, 2);
    assert_eq!(b.generation, 2);
    assert_eq!(a2.leader_member_id, a.member_id, "the leader stays");
    check_partitioned(&[&a2, &b], 6);
    assert_eq!(a2.assignment.len(), 3);
    assert_eq!(h.state(), GroupState::Stable);
    // The old generation is now illegal.
    assert_eq!(h.heartbeat(&a), Err(ErrorCode::IllegalGeneration));
    assert_eq!(
        h.commit(&a.member_id, a.generation, ("t", 0), 5),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(h.heartbeat(&a2), Ok(()));
}

#[test]
fn three_members_split_six_partitions_with_every_strategy() {
    for strategy in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
        let mut h = Harness::new();
        let t = h.join_req("", &["t"], strategy);
        let a = h.joined(t);
        let tb = h.join_req("", &["t"], strategy);
        let ta = h.join_req(&a.member_id, &["t"], strategy);
        let (a, b) = (h.joined(ta), h.joined(tb));
        let tc = h.join_req("", &["t"], strategy);
        let ta = h.join_req(&a.member_id, &["t"], strategy);
        let tb = h.join_req(&b.member_id, &["t"], strategy);
        let (a, b, c) = (h.joined(ta), h.joined(tb), h.joined(tc));
        check_partitioned(&[&a, &b, &c], 6);
        for m in [&a, &b, &c] {
            assert_eq!(m.assignment.len(), 2, "{strategy:?}");
            assert_eq!(m.generation, 3);
        }
    }
}

#[test]
fn sticky_rebalance_keeps_partitions_with_their_owners() {
    let mut h = Harness::new();
    let t = h.join_req("", &["t"], Strategy::Sticky);
    let a = h.joined(t);
    let tb = h.join_req("", &["t"], Strategy::Sticky);
    let ta = h.join_req(&a.member_id, &["t"], Strategy::Sticky);
    let (a, b) = (h.joined(ta), h.joined(tb));
    let tc = h.join_req("", &["t"], Strategy::Sticky);
    let ta = h.join_req(&a.member_id, &["t"], Strategy::Sticky);
    let tb = h.join_req(&b.member_id, &["t"], Strategy::Sticky);
    let (a2, b2, _c) = (h.joined(ta), h.joined(tb), h.joined(tc));
    assert!(a2.assignment.iter().all(|tp| a.assignment.contains(tp)));
    assert!(b2.assignment.iter().all(|tp| b.assignment.contains(tp)));
}

#[test]
fn a_leave_rebalances_the_rest() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    let tb = h.join("");
    let ta = h.join(&a.member_id);
    let (a, b) = (h.joined(ta), h.joined(tb));
    let fx = h.c.leave(h.now_ms, "g", &b.member_id).unwrap();
    h.take(fx);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&a), Err(ErrorCode::RebalanceInProgress));
    let ta = h.join(&a.member_id);
    let a = h.joined(ta);
    assert_eq!(a.assignment.len(), 6);
    assert_eq!(a.generation, 3);
    assert_eq!(
        h.c.leave(h.now_ms, "g", &b.member_id)
            .unwrap_err()
            .wire_code(),
        ErrorCode::UnknownMemberId
    );
    // The last member leaving empties the group.
    let fx = h.c.leave(h.now_ms, "g", &a.member_id).unwrap();
    h.take(fx);
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.c.describe("g").generation, 4);
}

#[test]
fn a_missed_session_timeout_removes_the_member_and_rebalances() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    let tb = h.join("");
    let ta = h.join(&a.member_id);
    let (a, b) = (h.joined(ta), h.joined(tb));
    // a keeps heartbeating, b goes silent.
    for _ in 0..3 {
        h.advance(SESSION_MS as i64 / 4);
        assert_eq!(h.heartbeat(&a), Ok(()));
    }
    assert_eq!(h.state(), GroupState::Stable, "b still has time");
    h.advance(SESSION_MS as i64 / 4);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&b), Err(ErrorCode::UnknownMemberId));
    assert_eq!(h.heartbeat(&a), Err(ErrorCode::RebalanceInProgress));
    let ta = h.join(&a.member_id);
    let a = h.joined(ta);
    assert_eq!(a.assignment.len(), 6, "a took over b's partitions");
    // b's late join is refused; it must join afresh.
    let tb = h.join(&b.member_id);
    assert_eq!(
        h.answer(tb).unwrap().unwrap_err().code,
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_deadline() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    let tb = h.join("");
    assert!(h.answer(tb).is_none());
    // a keeps heartbeating (so its session lives) but never rejoins.
    let mut waited = 0;
    while waited < REBALANCE_MS as i64 - 200 {
        h.advance(200);
        waited += 200;
        assert_eq!(h.heartbeat(&a), Err(ErrorCode::RebalanceInProgress));
        assert!(h.answer(tb).is_none(), "held until the deadline");
    }
    h.advance(400);
    let b = h.joined(tb);
    assert_eq!(b.assignment.len(), 6);
    assert_eq!(h.heartbeat(&a), Err(ErrorCode::UnknownMemberId));
}

#[test]
fn a_stable_member_rejoining_unchanged_gets_its_assignment_back() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    let t = h.join(&a.member_id);
    assert_eq!(h.joined(t), a);
    // A changed subscription rebalances.
    let t = h.join_req(&a.member_id, &["t", "u"], Strategy::Range);
    let a2 = h.joined(t);
    assert_eq!(a2.generation, 2);
    assert_eq!(a2.assignment.len(), 8);
}

#[test]
fn heartbeat_errors() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    assert_eq!(
        h.c.heartbeat(h.now_ms, "nope", &a.member_id, 1)
            .unwrap_err()
            .wire_code(),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        h.c.heartbeat(h.now_ms, "g", "stranger", 1)
            .unwrap_err()
            .wire_code(),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        h.c.heartbeat(h.now_ms, "g", &a.member_id, 9)
            .unwrap_err()
            .wire_code(),
        ErrorCode::IllegalGeneration
    );
}

#[test]
fn join_validation() {
    let mut h = Harness::new();
    let fx = h.c.join(
        h.now_ms,
        99,
        JoinRequest {
            group: "g".into(),
            topics: vec!["t".into()],
            session_timeout_ms: 5,
            rebalance_timeout_ms: 5,
            ..Default::default()
        },
    );
    assert_eq!(join_error(&fx), ErrorCode::InvalidSessionTimeout);
    let fx = h.c.join(
        h.now_ms,
        100,
        JoinRequest {
            session_timeout_ms: SESSION_MS,
            ..Default::default()
        },
    );
    assert_eq!(join_error(&fx), ErrorCode::InvalidRequest);
    // A second member must use the group's strategy.
    let t = h.join("");
    h.joined(t);
    let t = h.join_req("", &["t"], Strategy::Sticky);
    assert_eq!(
        h.answer(t).unwrap().unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(h.c.describe("g").members.len(), 1);
}

#[test]
fn a_duplicate_join_replaces_the_held_one() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    let tb = h.join("");
    let first = h.join(&a.member_id);
    assert!(h.answer(first).is_some(), "all joined: completes");
    let _ = h.answer(tb);
    let tc = h.join("");
    let a1 = h.join(&a.member_id);
    let a2 = h.join(&a.member_id);
    assert_eq!(
        h.answer(a1).unwrap().unwrap_err().code,
        ErrorCode::RebalanceInProgress
    );
    assert!(h.answer(a2).is_none() && h.answer(tc).is_none());
}

#[test]
fn member_commits_check_generation_and_membership() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    assert_eq!(h.commit(&a.member_id, a.generation, ("t", 0), 10), Ok(()));
    assert_eq!(h.committed(("t", 0)), Some(10));
    assert_eq!(
        h.commit("stranger", a.generation, ("t", 0), 11),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        h.commit(&a.member_id, 7, ("t", 0), 11),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        h.commit(&a.member_id, a.generation, ("t", 0), -3),
        Err(ErrorCode::InvalidRequest)
    );
    assert_eq!(h.committed(("t", 0)), Some(10));
    assert_eq!(h.committed(("t", 1)), None);
}

#[test]
fn admin_commits_only_while_the_group_is_empty() {
    let mut h = Harness::new();
    // A group that does not exist yet can be given offsets.
    assert_eq!(h.commit("", -1, ("t", 0), 3), Ok(()));
    assert_eq!(h.state(), GroupState::Empty);
    let t = h.join("");
    let a = h.joined(t);
    assert_eq!(h.commit("", -1, ("t", 0), 4), Err(ErrorCode::GroupNotEmpty));
    let fx = h.c.leave(h.now_ms, "g", &a.member_id).unwrap();
    h.take(fx);
    assert_eq!(h.commit("", -1, ("t", 0), 4), Ok(()));
    assert_eq!(h.committed(("t", 0)), Some(4));
}

#[test]
fn delete_only_empty_groups_and_write_tombstones() {
    let mut h = Harness::new();
    assert_eq!(
        h.c.delete("g").unwrap_err().wire_code(),
        ErrorCode::GroupNotFound
    );
    let t = h.join("");
    let a = h.joined(t);
    h.commit(&a.member_id, a.generation, ("t", 0), 1).unwrap();
    h.commit(&a.member_id, a.generation, ("t", 1), 2).unwrap();
    assert_eq!(
        h.c.delete("g").unwrap_err().wire_code(),
        ErrorCode::GroupNotEmpty
    );
    let fx = h.c.leave(h.now_ms, "g", &a.member_id).unwrap();
    h.take(fx);
    let tombstones = h.c.delete("g").unwrap();
    assert_eq!(tombstones.len(), 3);
    assert!(tombstones.iter().all(|r| r.value.is_none()));
    assert_eq!(h.state(), GroupState::Dead);
    assert!(h.c.list().is_empty());
    // Replaying everything, tombstones included, leaves nothing.
    h.log.extend(tombstones);
    let mut fresh = Coordinator::new(CoordinatorConfig::default());
    for r in &h.log {
        fresh.apply(0, &r.key, r.value.as_deref()).unwrap();
    }
    assert!(fresh.list().is_empty());
}

#[test]
fn replay_restores_offsets_and_members() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    let tb = h.join("");
    let ta = h.join(&a.member_id);
    let (a, b) = (h.joined(ta), h.joined(tb));
    h.commit(&a.member_id, a.generation, ("t", 0), 40).unwrap();
    h.commit(&b.member_id, b.generation, ("t", 3), 7).unwrap();
    h.commit(&a.member_id, a.generation, ("t", 0), 41).unwrap();

    let restart_ms = h.now_ms + 60_000;
    let mut c = Coordinator::new(CoordinatorConfig {
        instance: 8,
        ..Default::default()
    });
    for r in &h.log {
        c.apply(restart_ms, &r.key, r.value.as_deref()).unwrap();
    }
    let _ = c.set_partition_counts(restart_ms, [("t".to_owned(), 6)].into());
    let d = c.describe("g");
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.generation, 2);
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.offsets[&TopicPartition::new("t", 0)].offset, 41);
    assert_eq!(d.offsets[&TopicPartition::new("t", 3)].offset, 7);
    // Restored members carry on with their generation ...
    assert_eq!(c.heartbeat(restart_ms + 10, "g", &a.member_id, 2), Ok(()));
    // ... and those that never come back time out.
    let fx = c.tick(restart_ms + SESSION_MS as i64);
    assert!(fx.answers.is_empty());
    assert_eq!(c.describe("g").state, GroupState::PreparingRebalance);
    assert_eq!(c.describe("g").members.len(), 1);
}

#[test]
fn more_partitions_rebalance_subscribed_groups() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    let fx =
        h.c.set_partition_counts(h.now_ms, [("t".to_owned(), 6), ("u".to_owned(), 9)].into());
    h.take(fx);
    assert_eq!(h.state(), GroupState::Stable, "u is not subscribed");
    let fx =
        h.c.set_partition_counts(h.now_ms, [("t".to_owned(), 8), ("u".to_owned(), 9)].into());
    h.take(fx);
    assert_eq!(h.heartbeat(&a), Err(ErrorCode::RebalanceInProgress));
    let t = h.join(&a.member_id);
    assert_eq!(h.joined(t).assignment.len(), 8);
}

#[test]
fn list_and_describe() {
    let mut h = Harness::new();
    assert_eq!(h.c.describe("g").state, GroupState::Dead);
    let t = h.join("");
    let a = h.joined(t);
    h.commit(&a.member_id, a.generation, ("t", 2), 5).unwrap();
    let l = h.c.list();
    assert_eq!(
        l,
        vec![GroupListing {
            group: "g".into(),
            kind: GroupKind::Native,
            state: GroupState::Stable,
            protocol_type: "consumer".into(),
            members: 1
        }]
    );
    let d = h.c.describe("g");
    assert_eq!(d.members[0].member_id, a.member_id);
    assert_eq!(d.members[0].assignment, a.assignment);
    let assigned: BTreeSet<TopicPartition> = d.members[0].assignment.iter().cloned().collect();
    let committed = d
        .offsets
        .iter()
        .map(|(tp, v)| (tp.clone(), v.offset))
        .collect();
    let ends = (0..6).map(|p| (TopicPartition::new("t", p), 10)).collect();
    let rows = lag_rows(&assigned, &committed, &ends);
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[2].lag, 5);
    assert_eq!(rows[0].lag, -1);
}

/// Replays `log` into a fresh coordinator, as a restart does.
fn replayed(log: &[Record]) -> Coordinator {
    let mut c = Coordinator::new(CoordinatorConfig::default());
    for r in log {
        c.apply(0, &r.key, r.value.as_deref()).unwrap();
    }
    c
}

#[test]
fn a_deleted_topic_loses_its_offsets_durably() {
    let mut h = Harness::new();
    let t = h.join_req("", &["t", "u"], Strategy::Range);
    let a = h.joined(t);
    h.commit(&a.member_id, a.generation, ("t", 0), 10).unwrap();
    h.commit(&a.member_id, a.generation, ("t", 5), 11).unwrap();
    h.commit(&a.member_id, a.generation, ("u", 1), 12).unwrap();
    let tombstones = h.c.remove_topic_offsets(|topic| topic == "t");
    assert_eq!(tombstones.len(), 2, "one per offset of t: {tombstones:?}");
    assert!(tombstones.iter().all(|r| r.value.is_none()));
    assert_eq!(h.committed(("t", 0)), None);
    assert_eq!(h.committed(("t", 5)), None);
    assert_eq!(h.committed(("u", 1)), Some(12));
    // A member is still in it: the group stays.
    assert_eq!(h.state(), GroupState::Stable);
    h.log.extend(tombstones);
    let c = replayed(&h.log);
    let offsets: Vec<_> = c
        .fetch_offsets("g", None)
        .into_iter()
        .map(|(tp, v)| (tp, v.map(|v| v.offset)))
        .collect();
    assert_eq!(offsets, vec![(TopicPartition::new("u", 1), Some(12))]);
    // Nothing else to remove the second time.
    assert!(h.c.remove_topic_offsets(|topic| topic == "t").is_empty());
}

#[test]
fn a_group_left_without_members_and_offsets_by_a_topic_deletion_is_gone() {
    let mut h = Harness::new();
    let t = h.join("");
    let a = h.joined(t);
    h.commit(&a.member_id, a.generation, ("t", 0), 3).unwrap();
    let fx = h.c.leave(h.now_ms, "g", &a.member_id).unwrap();
    h.take(fx);
    // An offsets-only group (a Kafka consumer that assigns itself) of the same topic.
    let records =
        h.c.kafka_commit(
            h.now_ms,
            &KafkaCommit {
                group: "simple".into(),
                generation_or_epoch: -1,
                ..Default::default()
            },
            &[Commit {
                tp: TopicPartition::new("t", 2),
                offset: 9,
                metadata: String::new(),
                leader_epoch: -1,
            }],
        )
        .unwrap();
    for r in &records {
        h.c.apply(h.now_ms, &r.key, r.value.as_deref()).unwrap();
    }
    h.log.extend(records);
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.c.list().len(), 2);
    let tombstones = h.c.remove_topic_offsets(|topic| topic == "t");
    assert_eq!(h.state(), GroupState::Dead, "g had only offsets of t");
    assert!(h.c.list().is_empty(), "{:?}", h.c.list());
    // An offset tombstone and a group tombstone per group.
    assert_eq!(tombstones.len(), 4, "{tombstones:?}");
    h.log.extend(tombstones);
    let c = replayed(&h.log);
    assert!(c.list().is_empty(), "a restart brings nothing back");
    assert!(c.fetch_offsets("g", None).is_empty());
    assert!(c.fetch_offsets("simple", None).is_empty());
}

#[test]
fn offsets_of_other_topics_keep_an_empty_group() {
    let mut h = Harness::new();
    let t = h.join_req("", &["t", "u"], Strategy::Range);
    let a = h.joined(t);
    h.commit(&a.member_id, a.generation, ("t", 0), 1).unwrap();
    h.commit(&a.member_id, a.generation, ("u", 0), 2).unwrap();
    let fx = h.c.leave(h.now_ms, "g", &a.member_id).unwrap();
    h.take(fx);
    let tombstones = h.c.remove_topic_offsets(|topic| topic == "t");
    assert_eq!(tombstones.len(), 1);
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.committed(("u", 0)), Some(2));
}
