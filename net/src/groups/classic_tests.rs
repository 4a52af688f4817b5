//! Kafka classic groups, driven by explicit inputs and a fake clock.

use std::collections::BTreeMap;

use bytes::Bytes;
use strata_schema::ErrorCode;

use super::*;

const SESSION_MS: u32 = 1_000;
const REBALANCE_MS: u32 = 5_000;

struct Harness {
    c: Coordinator,
    now_ms: i64,
    next_token: Token,
    joins: BTreeMap<Token, Result<ClassicJoinResponse, GroupError>>,
    syncs: BTreeMap<Token, Result<SyncResponse, GroupError>>,
    log: Vec<Record>,
}

fn protocols(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("meta-{n}"))))
        .collect()
}

impl Harness {
    fn with_delay(initial_rebalance_delay_ms: u32) -> Self {
        let mut c = Coordinator::new(CoordinatorConfig {
            instance: 7,
            initial_rebalance_delay_ms,
            ..Default::default()
        });
        let _ = c.set_partition_counts(0, [("t".to_owned(), 6)].into());
        Harness {
            c,
            now_ms: 1_000_000,
            next_token: 1,
            joins: BTreeMap::new(),
            syncs: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn new() -> Self {
        Self::with_delay(0)
    }

    fn take(&mut self, fx: Effects) {
        for (t, a) in fx.answers {
            let fresh = match a {
                Answer::ClassicJoin(r) => self.joins.insert(t, r).is_none(),
                Answer::Sync(r) => self.syncs.insert(t, r).is_none(),
                Answer::Join(_) => panic!("a native answer in a classic group"),
            };
            assert!(fresh, "token {t} answered twice");
        }
        self.log.extend(fx.records);
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    fn join_full(&mut self, req: ClassicJoinRequest) -> Token {
        let t = self.token();
        let fx = self.c.classic_join(self.now_ms, t, req);
        self.take(fx);
        t
    }

    fn join_with(&mut self, member: &str, names: &[&str], instance: Option<&str>) -> Token {
        self.join_full(ClassicJoinRequest {
            group: "g".into(),
            member_id: member.into(),
            instance_id: instance.map(str::to_owned),
            client_id: "c".into(),
            host: "h".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: protocols(names),
            require_known_member_id: true,
        })
    }

    fn join(&mut self, member: &str) -> Token {
        self.join_with(member, &["range"], None)
    }

    /// A new member: asks for an id, then joins with it; returns the held join.
    fn new_member(&mut self) -> (String, Token) {
        let t = self.join("");
        let id = match self.joins.remove(&t) {
            Some(Err(GroupError {
                code: GroupCode::MemberIdRequired(id),
                ..
            })) => id,
            other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
        };
        let t = self.join(&id);
        (id, t)
    }

    fn joined(&mut self, t: Token) -> ClassicJoinResponse {
        match self.joins.remove(&t) {
            Some(Ok(r)) => r,
            other => panic!("join {t} not answered well: {other:?}"),
        }
    }

    fn join_error(&mut self, t: Token) -> GroupCode {
        match self.joins.remove(&t) {
            Some(Err(e)) => e.code,
            other => panic!("join {t} should have failed: {other:?}"),
        }
    }

    fn sync(&mut self, member: &str, generation: i32, assignments: &[(&str, &str)]) -> Token {
        let t = self.token();
        let fx = self.c.classic_sync(
            self.now_ms,
            t,
            SyncRequest {
                group: "g".into(),
                member_id: member.into(),
                generation,
                assignments: assignments
                    .iter()
                    .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                    .collect(),
                ..Default::default()
            },
        );
        self.take(fx);
        t
    }

    fn synced(&mut self, t: Token) -> Option<Result<Bytes, GroupCode>> {
        self.syncs
            .remove(&t)
            .map(|r| r.map(|s| s.assignment).map_err(|e| e.code))
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> Result<(), GroupCode> {
        self.c
            .classic_heartbeat(self.now_ms, "g", member, None, generation)
            .map_err(|e| e.code)
    }

    fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        let fx = self.c.tick(self.now_ms);
        self.take(fx);
    }

    fn state(&self) -> GroupState {
        self.c.describe("g").state
    }

    /// A stable group of the given members (first is the leader), generation returned.
    fn stable(&mut self, n: usize) -> (Vec<String>, i32) {
        let (first, t) = self.new_member();
        let mut generation = self.joined(t).generation;
        let mut ids = vec![first];
        for _ in 1..n {
            let (id, t) = self.new_member();
            // Everyone else rejoins.
            let rejoins: Vec<Token> = ids.iter().map(|m| self.join(m)).collect();
            let r = self.joined(t);
            for rt in rejoins {
                self.joined(rt);
            }
            generation = r.generation;
            ids.push(id);
        }
        let assignments: Vec<(String, String)> = ids
            .iter()
            .map(|m| (m.clone(), format!("assign-{m}")))
            .collect();
        let a: Vec<(&str, &str)> = assignments
            .iter()
            .map(|(m, a)| (m.as_str(), a.as_str()))
            .collect();
        let leader = self.c.describe("g").leader;
        let t = self.sync(&leader, generation, &a);
        assert!(self.synced(t).unwrap().is_ok());
        for m in &ids {
            if *m != leader {
                let t = self.sync(m, generation, &[]);
                assert!(self.synced(t).unwrap().is_ok());
            }
        }
        assert_eq!(self.state(), GroupState::Stable);
        (ids, generation)
    }
}

#[test]
fn first_join_gets_a_member_id_then_leads_a_group_of_one() {
    let mut h = Harness::new();
    let (id, t) = h.new_member();
    assert!(id.starts_with("c-7-"), "{id}");
    let r = h.joined(t);
    assert_eq!(r.generation, 1);
    assert_eq!(r.leader, id);
    assert_eq!(r.protocol, "range");
    assert_eq!(r.protocol_type, "consumer");
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let t = h.sync(&id, 1, &[(&id, "mine")]);
    assert_eq!(h.synced(t), Some(Ok(Bytes::from("mine"))));
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.heartbeat(&id, 1), Ok(()));
    // The synced group is persisted as a classic group.
    let last = h.log.last().unwrap();
    match decode_record(&last.key, last.value.as_deref()).unwrap() {
        GroupRecord::Metadata {
            value: Some(GroupMetadata::Classic(m)),
            ..
        } => {
            assert_eq!(m.generation, 1);
            assert_eq!(m.members[0].assignment, b"mine".to_vec());
        }
        other => panic!("unexpected record {other:?}"),
    }
}

#[test]
fn old_clients_join_without_a_member_id_round_trip() {
    let mut h = Harness::new();
    let t = h.join_full(ClassicJoinRequest {
        group: "g".into(),
        client_id: "old".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: SESSION_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        require_known_member_id: false,
        ..Default::default()
    });
    let r = h.joined(t);
    assert!(r.member_id.starts_with("old-"));
    assert_eq!(r.generation, 1);
}

#[test]
fn followers_wait_for_the_leaders_assignment() {
    let mut h = Harness::new();
    let (a, t) = h.new_member();
    let ga = h.joined(t).generation;
    let t = h.sync(&a, ga, &[(&a, "all")]);
    h.synced(t).unwrap().unwrap();
    // b arrives: a learns of the rebalance from its heartbeat and rejoins.
    let (b, tb) = h.new_member();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&a, ga),
        Err(GroupCode::Wire(ErrorCode::RebalanceInProgress))
    );
    assert!(h.joins.is_empty(), "b waits for a");
    let ta = h.join(&a);
    let ra = h.joined(ta);
    let rb = h.joined(tb);
    assert_eq!(ra.generation, ga + 1);
    assert_eq!(rb.generation, ga + 1);
    assert_eq!(ra.leader, a);
    assert_eq!(rb.leader, a);
    assert_eq!(ra.members.len(), 2, "the leader sees everyone");
    assert!(rb.members.is_empty(), "followers see nobody");
    // Heartbeats while the leader assigns are fine.
    assert_eq!(h.heartbeat(&b, rb.generation), Ok(()));
    let sb = h.sync(&b, rb.generation, &[]);
    assert_eq!(h.synced(sb), None, "held until the leader syncs");
    let sa = h.sync(
        &a,
        ra.generation,
        &[(&a, "first-half"), (&b, "second-half")],
    );
    assert_eq!(h.synced(sa), Some(Ok(Bytes::from("first-half"))));
    assert_eq!(h.synced(sb), Some(Ok(Bytes::from("second-half"))));
    // A late sync in Stable gets the same answer at once.
    let again = h.sync(&b, rb.generation, &[]);
    assert_eq!(h.synced(again), Some(Ok(Bytes::from("second-half"))));
    let d = h.c.describe("g");
    assert_eq!(d.kind, GroupKind::Classic);
    assert_eq!(d.protocol, "range");
    assert_eq!(d.members.len(), 2);
}

#[test]
fn the_protocol_all_members_support_is_chosen() {
    let mut h = Harness::new();
    let ta = h.join_with("", &["cooperative-sticky", "range"], None);
    let a = match h.join_error(ta) {
        GroupCode::MemberIdRequired(id) => id,
        other => panic!("{other:?}"),
    };
    let ta = h.join_with(&a, &["cooperative-sticky", "range"], None);
    let ga = h.joined(ta);
    assert_eq!(ga.protocol, "cooperative-sticky");
    let t = h.sync(&a, ga.generation, &[]);
    h.synced(t).unwrap().unwrap();
    let tb = h.join_with("", &["range"], None);
    let b = match h.join_error(tb) {
        GroupCode::MemberIdRequired(id) => id,
        other => panic!("{other:?}"),
    };
    let tb = h.join_with(&b, &["range"], None);
    let ta = h.join_with(&a, &["cooperative-sticky", "range"], None);
    assert_eq!(h.joined(ta).protocol, "range");
    assert_eq!(h.joined(tb).protocol, "range");
    // Nothing in common, or another protocol type: refused.
    let t = h.join_with("", &["roundrobin"], None);
    assert_eq!(h.join_error(t), GroupCode::InconsistentGroupProtocol);
    let t = h.join_full(ClassicJoinRequest {
        group: "g".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "connect".into(),
        protocols: protocols(&["range"]),
        ..Default::default()
    });
    assert_eq!(h.join_error(t), GroupCode::InconsistentGroupProtocol);
    // No protocols at all: refused too.
    let t = h.join_full(ClassicJoinRequest {
        group: "other".into(),
        session_timeout_ms: SESSION_MS,
        protocol_type: "consumer".into(),
        ..Default::default()
    });
    assert_eq!(h.join_error(t), GroupCode::InconsistentGroupProtocol);
}

#[test]
fn join_validation() {
    let mut h = Harness::new();
    let t = h.join_full(ClassicJoinRequest {
        group: String::new(),
        session_timeout_ms: SESSION_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        ..Default::default()
    });
    assert_eq!(h.join_error(t), GroupCode::InvalidGroupId);
    let t = h.join_full(ClassicJoinRequest {
        group: "g".into(),
        session_timeout_ms: 1,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        ..Default::default()
    });
    assert_eq!(
        h.join_error(t),
        GroupCode::Wire(ErrorCode::InvalidSessionTimeout)
    );
    let t = h.join("nobody");
    assert_eq!(h.join_error(t), GroupCode::Wire(ErrorCode::UnknownMemberId));
}

#[test]
fn heartbeat_errors() {
    let mut h = Harness::new();
    assert_eq!(
        h.c.classic_heartbeat(h.now_ms, "nope", "m", None, 1)
            .map_err(|e| e.code),
        Err(GroupCode::Wire(ErrorCode::UnknownMemberId))
    );
    let (ids, generation) = h.stable(1);
    assert_eq!(
        h.heartbeat("stranger", generation),
        Err(GroupCode::Wire(ErrorCode::UnknownMemberId))
    );
    assert_eq!(
        h.heartbeat(&ids[0], generation + 1),
        Err(GroupCode::Wire(ErrorCode::IllegalGeneration))
    );
    assert_eq!(h.heartbeat(&ids[0], generation), Ok(()));
}

#[test]
fn leaving_members_rebalance_the_rest_and_batches_answer_per_member() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable(3);
    let (fx_results, fx) =
        h.c.classic_leave(
            h.now_ms,
            "g",
            &[
                LeaveMember {
                    member_id: ids[1].clone(),
                    instance_id: None,
                },
                LeaveMember {
                    member_id: "stranger".into(),
                    instance_id: None,
                },
            ],
        )
        .unwrap();
    h.take(fx);
    assert!(fx_results[0].is_ok());
    assert_eq!(
        fx_results[1].as_ref().unwrap_err().code,
        GroupCode::Wire(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        h.heartbeat(&ids[0], generation),
        Err(GroupCode::Wire(ErrorCode::RebalanceInProgress))
    );
    let t0 = h.join(&ids[0]);
    let t2 = h.join(&ids[2]);
    let r = h.joined(t0);
    h.joined(t2);
    assert_eq!(r.generation, generation + 1);
    assert_eq!(r.members.len(), 2);
    // The last members leaving empty the group; its offsets stay.
    let (_, fx) =
        h.c.classic_leave(
            h.now_ms,
            "g",
            &[
                LeaveMember {
                    member_id: ids[0].clone(),
                    instance_id: None,
                },
                LeaveMember {
                    member_id: ids[2].clone(),
                    instance_id: None,
                },
            ],
        )
        .unwrap();
    h.take(fx);
    assert_eq!(h.state(), GroupState::Empty);
}

#[test]
fn a_missed_session_timeout_removes_the_member() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable(2);
    for _ in 0..3 {
        h.advance(i64::from(SESSION_MS) / 2);
        // Only the second member heartbeats.
        let _ = h.heartbeat(&ids[1], generation);
    }
    assert_eq!(h.c.describe("g").members.len(), 1);
    assert_eq!(
        h.heartbeat(&ids[1], generation),
        Err(GroupCode::Wire(ErrorCode::RebalanceInProgress))
    );
    let t = h.join(&ids[1]);
    let r = h.joined(t);
    assert_eq!(r.leader, ids[1], "a new leader when the old one is gone");
}

#[test]
fn a_stable_follower_rejoining_unchanged_is_answered_at_once() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable(2);
    let t = h.join(&ids[1]);
    let r = h.joined(t);
    assert_eq!(r.generation, generation);
    assert!(r.members.is_empty());
    assert_eq!(h.state(), GroupState::Stable);
    // The leader rejoining always rebalances (it may assign anew).
    let t = h.join(&ids[0]);
    assert!(h.joins.is_empty(), "held: {t}");
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_deadline() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable(2);
    // A third member starts a rebalance; ids[1] rejoins, ids[0] keeps heartbeating
    // (its session lives) but never rejoins.
    let (c, tc) = h.new_member();
    let t1 = h.join(&ids[1]);
    let mut waited = 0;
    while waited < i64::from(REBALANCE_MS) {
        h.advance(200);
        waited += 200;
        if h.joins.contains_key(&t1) {
            break;
        }
        let _ = h.heartbeat(&ids[0], generation);
    }
    let r1 = h.joined(t1);
    let rc = h.joined(tc);
    assert_eq!(r1.generation, generation + 1);
    assert_eq!(
        r1.members.len() + rc.members.len(),
        2,
        "the new leader sees both"
    );
    assert!([ids[1].clone(), c].contains(&r1.leader));
    assert_eq!(
        h.heartbeat(&ids[0], generation),
        Err(GroupCode::Wire(ErrorCode::UnknownMemberId))
    );
}

#[test]
fn a_leader_that_never_syncs_is_dropped_and_followers_rejoin() {
    let mut h = Harness::new();
    let (a, t) = h.new_member();
    let g1 = h.joined(t).generation;
    let t = h.sync(&a, g1, &[]);
    h.synced(t).unwrap().unwrap();
    let (b, tb) = h.new_member();
    let ta = h.join(&a);
    let ra = h.joined(ta);
    let rb = h.joined(tb);
    assert_eq!(ra.leader, a);
    let sb = h.sync(&b, rb.generation, &[]);
    h.advance(i64::from(REBALANCE_MS));
    assert_eq!(
        h.synced(sb),
        Some(Err(GroupCode::Wire(ErrorCode::RebalanceInProgress)))
    );
    assert_eq!(h.c.describe("g").members.len(), 1);
    let tb = h.join(&b);
    let rb = h.joined(tb);
    assert_eq!(rb.leader, b);
}

#[test]
fn a_static_member_comes_back_without_a_rebalance() {
    let mut h = Harness::new();
    let ta = h.join_with("", &["range"], Some("i-a"));
    let a = h.joined(ta);
    let t = h.sync(&a.member_id, a.generation, &[(&a.member_id, "a-part")]);
    h.synced(t).unwrap().unwrap();
    let tb = h.join_with("", &["range"], Some("i-b"));
    let ta = h.join_with(&a.member_id, &["range"], Some("i-a"));
    let ra = h.joined(ta);
    let rb = h.joined(tb);
    let t = h.sync(
        &ra.member_id,
        ra.generation,
        &[(&ra.member_id, "a-part"), (&rb.member_id, "b-part")],
    );
    h.synced(t).unwrap().unwrap();
    // b restarts: same instance id, no member id.
    let t = h.join_with("", &["range"], Some("i-b"));
    let back = h.joined(t);
    assert_ne!(back.member_id, rb.member_id);
    assert_eq!(back.generation, rb.generation, "no rebalance");
    assert_eq!(h.state(), GroupState::Stable);
    let s = h.sync(&back.member_id, back.generation, &[]);
    assert_eq!(h.synced(s), Some(Ok(Bytes::from("b-part"))));
    // The old incarnation is fenced.
    assert_eq!(
        h.c.classic_heartbeat(h.now_ms, "g", &rb.member_id, Some("i-b"), rb.generation)
            .map_err(|e| e.code),
        Err(GroupCode::FencedInstanceId)
    );
    // Leaving by instance id.
    let (results, fx) =
        h.c.classic_leave(
            h.now_ms,
            "g",
            &[LeaveMember {
                member_id: String::new(),
                instance_id: Some("i-b".into()),
            }],
        )
        .unwrap();
    h.take(fx);
    assert!(results[0].is_ok());
    assert_eq!(h.c.describe("g").members.len(), 1);
}

/// A stable group of two static members `i-a` (the leader) and `i-b`, with
/// assignments "a-part" and "b-part": (a's join answer, b's join answer).
fn static_pair(
    h: &mut Harness,
    protocols_b: &[&str],
) -> (ClassicJoinResponse, ClassicJoinResponse) {
    let ta = h.join_with("", &["range", "roundrobin"], Some("i-a"));
    let a = h.joined(ta);
    let t = h.sync(&a.member_id, a.generation, &[(&a.member_id, "a-part")]);
    h.synced(t).unwrap().unwrap();
    let tb = h.join_with("", protocols_b, Some("i-b"));
    let ta = h.join_with(&a.member_id, &["range", "roundrobin"], Some("i-a"));
    let ra = h.joined(ta);
    let rb = h.joined(tb);
    assert_eq!(ra.leader, ra.member_id);
    let t = h.sync(
        &ra.member_id,
        ra.generation,
        &[(&ra.member_id, "a-part"), (&rb.member_id, "b-part")],
    );
    h.synced(t).unwrap().unwrap();
    let t = h.sync(&rb.member_id, rb.generation, &[]);
    assert_eq!(h.synced(t), Some(Ok(Bytes::from("b-part"))));
    (ra, rb)
}

#[test]
fn a_static_leader_comes_back_without_a_rebalance() {
    let mut h = Harness::new();
    let (ra, rb) = static_pair(&mut h, &["range", "roundrobin"]);
    let log_before = h.log.len();
    // a (the leader) restarts: it must not be asked to assign again (KIP-814).
    let t = h.join_with("", &["range", "roundrobin"], Some("i-a"));
    let back = h.joined(t);
    assert_ne!(back.member_id, ra.member_id);
    assert_eq!(back.generation, ra.generation, "no new generation");
    assert_eq!(back.leader, back.member_id, "it is still the leader");
    assert_eq!(back.skip_assignment.as_deref(), Some(ra.member_id.as_str()));
    assert_eq!(h.state(), GroupState::Stable);
    // The other member is not told to rejoin, and keeps its assignment.
    assert_eq!(h.heartbeat(&rb.member_id, rb.generation), Ok(()));
    let s = h.sync(&back.member_id, back.generation, &[]);
    assert_eq!(h.synced(s), Some(Ok(Bytes::from("a-part"))));
    assert_eq!(h.heartbeat(&rb.member_id, rb.generation), Ok(()));
    assert_eq!(h.state(), GroupState::Stable);
    // The new member id is persisted.
    assert!(h.log.len() > log_before);
}

#[test]
fn a_static_member_with_new_metadata_bytes_keeps_its_assignment() {
    let mut h = Harness::new();
    let (_, rb) = static_pair(&mut h, &["range", "roundrobin"]);
    // Same protocol names, other metadata (a restarted consumer owns nothing).
    let t = h.join_full(ClassicJoinRequest {
        group: "g".into(),
        instance_id: Some("i-b".into()),
        client_id: "c".into(),
        host: "h".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"other")),
            ("roundrobin".into(), Bytes::from_static(b"other")),
        ],
        require_known_member_id: true,
        ..Default::default()
    });
    let back = h.joined(t);
    assert_eq!(back.generation, rb.generation);
    assert_eq!(back.skip_assignment, None);
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn a_static_member_that_changes_the_protocol_choice_rebalances() {
    let mut h = Harness::new();
    let (ra, rb) = static_pair(&mut h, &["range", "roundrobin"]);
    // b now supports roundrobin only: the group's choice (range) must change.
    let t = h.join_with("", &["roundrobin"], Some("i-b"));
    assert!(!h.joins.contains_key(&t), "held for a rebalance");
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&ra.member_id, ra.generation),
        Err(GroupCode::Wire(ErrorCode::RebalanceInProgress))
    );
    let _ = rb;
}

#[test]
fn a_static_member_rejoins_a_restored_group_without_a_rebalance() {
    let mut h = Harness::new();
    let (ra, rb) = static_pair(&mut h, &["range", "roundrobin"]);
    // The broker restarts: the group comes back from its metadata record, which
    // keeps only the chosen protocol of each member.
    let records = std::mem::take(&mut h.log);
    let mut c = Coordinator::new(CoordinatorConfig::default());
    let _ = c.set_partition_counts(h.now_ms, [("t".to_owned(), 6)].into());
    for r in records {
        c.apply(h.now_ms, &r.key, r.value.as_deref()).unwrap();
    }
    h.c = c;
    assert_eq!(h.state(), GroupState::Stable);
    let t = h.join_with("", &["range", "roundrobin"], Some("i-b"));
    let back = h.joined(t);
    assert_eq!(back.generation, rb.generation);
    assert_eq!(h.heartbeat(&ra.member_id, ra.generation), Ok(()));
    let s = h.sync(&back.member_id, back.generation, &[]);
    assert_eq!(h.synced(s), Some(Ok(Bytes::from("b-part"))));
}

#[test]
fn the_first_rebalance_waits_for_more_members() {
    let mut h = Harness::with_delay(3_000);
    let (a, ta) = h.new_member();
    h.advance(1_000);
    assert!(h.joins.is_empty());
    let (b, tb) = h.new_member();
    h.advance(2_500);
    assert!(h.joins.is_empty(), "b's arrival extended the delay");
    h.advance(600);
    let ra = h.joined(ta);
    let rb = h.joined(tb);
    assert_eq!(ra.generation, 1);
    assert_eq!(rb.generation, 1);
    assert_eq!(ra.members.len() + rb.members.len(), 2);
    assert!([a, b].contains(&ra.leader));
}

#[test]
fn commits_follow_kafkas_rules() {
    let mut h = Harness::new();
    let commit = |c: &mut Coordinator, now, member: &str, generation, v9| {
        c.kafka_commit(
            now,
            &KafkaCommit {
                group: "g".into(),
                member_id: member.into(),
                instance_id: None,
                generation_or_epoch: generation,
                member_epoch_api: v9,
            },
            &[Commit {
                tp: TopicPartition::new("t", 0),
                offset: 5,
                metadata: String::new(),
                leader_epoch: 3,
            }],
        )
        .map_err(|e| e.code)
    };
    // No group yet: a consumer that assigns itself commits with -1.
    let records = commit(&mut h.c, h.now_ms, "", -1, false).unwrap();
    for r in &records {
        h.c.apply(h.now_ms, &r.key, r.value.as_deref()).unwrap();
    }
    let got = h.c.fetch_offsets("g", None);
    assert_eq!(got[0].1.as_ref().unwrap().leader_epoch, 3);
    assert_eq!(
        commit(&mut h.c, h.now_ms, "m", 3, false),
        Err(GroupCode::Wire(ErrorCode::UnknownMemberId)),
        "the offsets-only group has no members"
    );
    let mut fresh = Harness::new();
    assert_eq!(
        commit(&mut fresh.c, fresh.now_ms, "m", 3, false),
        Err(GroupCode::Wire(ErrorCode::IllegalGeneration))
    );
    assert_eq!(
        commit(&mut fresh.c, fresh.now_ms, "m", 3, true),
        Err(GroupCode::Wire(ErrorCode::GroupNotFound))
    );
    // The offsets-only group becomes a classic group when a member joins.
    let (ids, generation) = h.stable(1);
    assert!(commit(&mut h.c, h.now_ms, &ids[0], generation, false).is_ok());
    assert_eq!(
        commit(&mut h.c, h.now_ms, &ids[0], generation + 1, false),
        Err(GroupCode::Wire(ErrorCode::IllegalGeneration))
    );
    assert_eq!(
        commit(&mut h.c, h.now_ms, "", -1, false),
        Err(GroupCode::Wire(ErrorCode::UnknownMemberId)),
        "not while the group has members"
    );
    assert_eq!(
        h.c.fetch_offsets("g", None).len(),
        1,
        "offsets survived the take-over"
    );
    // While the leader assigns, commits wait.
    let (_, t) = h.new_member();
    let t0 = h.join(&ids[0]);
    let r = h.joined(t0);
    h.joined(t);
    assert_eq!(
        commit(&mut h.c, h.now_ms, &ids[0], r.generation, false),
        Err(GroupCode::Wire(ErrorCode::RebalanceInProgress))
    );
}

#[test]
fn native_and_kafka_groups_of_one_name_do_not_mix() {
    let mut h = Harness::new();
    let fx = h.c.join(
        h.now_ms,
        1,
        JoinRequest {
            group: "g".into(),
            client_id: "native".into(),
            topics: vec!["t".into()],
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            ..Default::default()
        },
    );
    let native = match &fx.answers[0].1 {
        Answer::Join(Ok(r)) => r.clone(),
        other => panic!("{other:?}"),
    };
    let t = h.join("");
    assert_eq!(h.join_error(t), GroupCode::InconsistentGroupProtocol);
    // A Kafka member's heartbeat, sync and commit are refused clearly too.
    assert_eq!(
        h.heartbeat("x", 1),
        Err(GroupCode::InconsistentGroupProtocol)
    );
    let (r, _) = h.c.consumer_heartbeat(
        h.now_ms,
        ConsumerHeartbeat {
            group: "g".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 1_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Vec::new()),
            ..Default::default()
        },
    );
    assert_eq!(r.unwrap_err().code, GroupCode::InconsistentGroupProtocol);
    // Once the native member leaves, a Kafka member may take the group over ...
    let fx = h.c.leave(h.now_ms, "g", &native.member_id).unwrap();
    h.log.extend(fx.records);
    let (id, t) = h.new_member();
    let r = h.joined(t);
    assert_eq!(r.member_id, id);
    assert_eq!(h.c.describe("g").kind, GroupKind::Classic);
    // ... and then the native protocol is the one refused.
    let fx = h.c.join(
        h.now_ms,
        2,
        JoinRequest {
            group: "g".into(),
            topics: vec!["t".into()],
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            ..Default::default()
        },
    );
    match &fx.answers[0].1 {
        Answer::Join(Err(e)) => {
            assert_eq!(e.code, GroupCode::InconsistentGroupProtocol);
            assert_eq!(e.wire_code(), ErrorCode::InvalidRequest);
            assert!(e.message.contains("Kafka classic"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.c.commit(h.now_ms, "g", "", -1, &[])
            .unwrap_err()
            .wire_code(),
        ErrorCode::GroupNotEmpty
    );
}

#[test]
fn replay_restores_a_classic_group() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable(2);
    let mut c = Coordinator::new(CoordinatorConfig::default());
    for r in &h.log {
        c.apply(h.now_ms + 10, &r.key, r.value.as_deref()).unwrap();
    }
    let d = c.describe("g");
    assert_eq!(d.kind, GroupKind::Classic);
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.generation, generation);
    assert_eq!(d.members.len(), 2);
    assert_eq!(
        c.classic_heartbeat(h.now_ms + 20, "g", &ids[1], None, generation),
        Ok(())
    );
    let fx = c.classic_sync(
        h.now_ms + 20,
        1,
        SyncRequest {
            group: "g".into(),
            member_id: ids[1].clone(),
            generation,
            ..Default::default()
        },
    );
    match &fx.answers[0].1 {
        Answer::Sync(Ok(s)) => assert_eq!(s.assignment, Bytes::from(format!("assign-{}", ids[1]))),
        other => panic!("{other:?}"),
    }
    // A restored follower rejoining with the same metadata is answered at once.
    let fx = c.classic_join(
        h.now_ms + 30,
        2,
        ClassicJoinRequest {
            group: "g".into(),
            member_id: ids[1].clone(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: protocols(&["range"]),
            ..Default::default()
        },
    );
    match &fx.answers[0].1 {
        Answer::ClassicJoin(Ok(r)) => assert_eq!(r.generation, generation, "no rebalance"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn list_describe_and_delete_every_kind() {
    let mut h = Harness::new();
    let (ids, _) = h.stable(1);
    let l = h.c.list();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].kind, GroupKind::Classic);
    assert_eq!(l[0].protocol_type, "consumer");
    assert_eq!(l[0].members, 1);
    assert_eq!(
        h.c.delete("g").unwrap_err().wire_code(),
        ErrorCode::GroupNotEmpty
    );
    let (_, fx) =
        h.c.classic_leave(
            h.now_ms,
            "g",
            &[LeaveMember {
                member_id: ids[0].clone(),
                instance_id: None,
            }],
        )
        .unwrap();
    h.take(fx);
    let tombstones = h.c.delete("g").unwrap();
    assert!(tombstones.iter().all(|r| r.value.is_none()));
    assert_eq!(h.c.describe("g").state, GroupState::Dead);
}
