//! KIP-848 consumer groups, driven by explicit inputs and a fake clock.

use std::collections::BTreeSet;

use strata_schema::ErrorCode;

use super::*;

const REBALANCE_MS: i32 = 10_000;

struct Harness {
    c: Coordinator,
    now_ms: i64,
    log: Vec<Record>,
}

/// What a member knows: its id, epoch, and the partitions it owns.
#[derive(Clone, Debug)]
struct Client {
    id: String,
    epoch: i32,
    owned: BTreeSet<TopicPartition>,
}

fn tps(topic: &str, ps: &[u32]) -> BTreeSet<TopicPartition> {
    ps.iter().map(|p| TopicPartition::new(topic, *p)).collect()
}

impl Harness {
    fn new() -> Self {
        let mut c = Coordinator::new(CoordinatorConfig {
            instance: 9,
            ..Default::default()
        });
        let _ = c.set_partition_counts(
            0,
            [
                ("t".to_owned(), 6),
                ("tt".to_owned(), 2),
                ("u".to_owned(), 2),
            ]
            .into(),
        );
        Harness {
            c,
            now_ms: 1_000_000,
            log: Vec::new(),
        }
    }

    fn send(&mut self, req: ConsumerHeartbeat) -> Result<ConsumerHeartbeatResponse, GroupCode> {
        let (r, fx) = self.c.consumer_heartbeat(self.now_ms, req);
        assert!(fx.answers.is_empty());
        self.log.extend(fx.records);
        r.map_err(|e| e.code)
    }

    fn join_with(
        &mut self,
        topics: &[&str],
        assignor: Option<&str>,
        instance: Option<&str>,
    ) -> Client {
        let r = self
            .send(ConsumerHeartbeat {
                group: "g".into(),
                member_epoch: 0,
                instance_id: instance.map(str::to_owned),
                rebalance_timeout_ms: REBALANCE_MS,
                subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
                server_assignor: assignor.map(str::to_owned),
                owned: Some(Vec::new()),
                client_id: "c".into(),
                ..Default::default()
            })
            .unwrap();
        let mut client = Client {
            id: r.member_id.clone(),
            epoch: 0,
            owned: BTreeSet::new(),
        };
        client.apply(&r);
        client
    }

    fn join(&mut self) -> Client {
        self.join_with(&["t"], None, None)
    }

    /// A heartbeat reporting what the client owns; the client then takes the answer.
    fn beat(&mut self, client: &mut Client) -> Result<ConsumerHeartbeatResponse, GroupCode> {
        let r = self.send(ConsumerHeartbeat {
            group: "g".into(),
            member_id: client.id.clone(),
            member_epoch: client.epoch,
            rebalance_timeout_ms: -1,
            owned: Some(client.owned.iter().cloned().collect()),
            ..Default::default()
        })?;
        client.apply(&r);
        Ok(r)
    }

    fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        let fx = self.c.tick(self.now_ms);
        self.log.extend(fx.records);
    }

    fn describe(&self) -> ConsumerGroupDescription {
        self.c.consumer_describe("g").unwrap()
    }
}

impl Client {
    /// Like a real client: owns exactly the assignment it was last given.
    fn apply(&mut self, r: &ConsumerHeartbeatResponse) {
        self.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            self.owned = a.iter().cloned().collect();
        }
    }
}

/// No partition is owned by two clients.
fn exclusive(clients: &[&Client]) {
    let mut seen = BTreeSet::new();
    for c in clients {
        for tp in &c.owned {
            assert!(seen.insert(tp.clone()), "{tp:?} owned twice: {clients:?}");
        }
    }
}

#[test]
fn the_first_member_gets_everything_at_epoch_one() {
    let mut h = Harness::new();
    let a = h.join();
    assert!(a.id.starts_with("c-9-"), "{}", a.id);
    assert_eq!(a.epoch, 1);
    assert_eq!(a.owned, tps("t", &[0, 1, 2, 3, 4, 5]));
    let d = h.describe();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.group_epoch, 1);
    assert_eq!(d.assignor, "uniform");
    assert!(!h.log.is_empty(), "the group is persisted");
    // A client-chosen member id (v1 clients) is kept.
    let r = h
        .send(ConsumerHeartbeat {
            group: "g".into(),
            member_id: "my-uuid".into(),
            member_epoch: 0,
            rebalance_timeout_ms: REBALANCE_MS,
            subscribed_topic_names: Some(vec!["u".into()]),
            owned: Some(Vec::new()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.member_id, "my-uuid");
}

#[test]
fn partitions_are_revoked_before_another_member_gets_them() {
    let mut h = Harness::new();
    let mut a = h.join();
    let mut b = h.join();
    // b's target is half of t, but a still owns all of it: b waits, at the new epoch.
    assert_eq!(b.epoch, 2);
    assert!(b.owned.is_empty());
    exclusive(&[&a, &b]);
    // a is told to give up its extra partitions (epoch unchanged until it has).
    let r = h.beat(&mut a).unwrap();
    assert_eq!(r.member_epoch, 1);
    assert_eq!(a.owned.len(), 3);
    assert_eq!(h.describe().state, GroupState::Reconciling);
    // b still gets nothing: a has not confirmed.
    let mut a_stale = a.clone();
    a_stale.owned = tps("t", &[0, 1, 2, 3, 4, 5]);
    h.beat(&mut a_stale).unwrap();
    h.beat(&mut b).unwrap();
    assert!(b.owned.is_empty());
    // a confirms (reports only what it kept): it moves to epoch 2 ...
    h.beat(&mut a).unwrap();
    assert_eq!(a.epoch, 2);
    // ... and b gets the released partitions.
    let r = h.beat(&mut b).unwrap();
    assert!(r.assignment.is_some());
    assert_eq!(b.owned.len(), 3);
    exclusive(&[&a, &b]);
    assert_eq!(h.describe().state, GroupState::Stable);
    // A plain heartbeat with nothing new carries no assignment.
    let r = h.beat(&mut b).unwrap();
    assert_eq!(r.assignment, None);
}

#[test]
fn epochs_are_checked() {
    let mut h = Harness::new();
    let mut a = h.join();
    let mut b = h.join();
    h.beat(&mut a).unwrap();
    h.beat(&mut a).unwrap();
    h.beat(&mut b).unwrap();
    assert_eq!((a.epoch, b.epoch), (2, 2));
    // The answer that moved a to epoch 2 was lost: epoch 1 with a subset is fine.
    let mut lost = a.clone();
    lost.epoch = 1;
    assert!(h.beat(&mut lost).is_ok());
    // An epoch from the future, or an old epoch owning too much, is fenced.
    let mut ahead = a.clone();
    ahead.epoch = 7;
    assert_eq!(h.beat(&mut ahead), Err(GroupCode::FencedMemberEpoch));
    let mut greedy = a.clone();
    greedy.epoch = 1;
    greedy.owned = tps("t", &[0, 1, 2, 3, 4, 5]);
    assert_eq!(h.beat(&mut greedy), Err(GroupCode::FencedMemberEpoch));
    // A fenced member joins again with epoch 0 and its id; it owns nothing now.
    let r = h
        .send(ConsumerHeartbeat {
            group: "g".into(),
            member_id: a.id.clone(),
            member_epoch: 0,
            rebalance_timeout_ms: REBALANCE_MS,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Vec::new()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.member_id, a.id);
    assert!(r.member_epoch > 0);
    // Unknown members are told so.
    let mut stranger = Client {
        id: "stranger".into(),
        epoch: 1,
        owned: BTreeSet::new(),
    };
    assert_eq!(
        h.beat(&mut stranger),
        Err(GroupCode::Wire(ErrorCode::UnknownMemberId))
    );
}

#[test]
fn a_member_leaving_gives_its_partitions_to_the_rest() {
    let mut h = Harness::new();
    let mut a = h.join();
    let mut b = h.join();
    h.beat(&mut a).unwrap();
    h.beat(&mut a).unwrap();
    h.beat(&mut b).unwrap();
    let epoch = h.describe().group_epoch;
    let r = h
        .send(ConsumerHeartbeat {
            group: "g".into(),
            member_id: b.id.clone(),
            member_epoch: LEAVE_EPOCH,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.member_epoch, LEAVE_EPOCH);
    assert_eq!(h.describe().group_epoch, epoch + 1);
    h.beat(&mut a).unwrap();
    assert_eq!(a.owned.len(), 6);
    assert_eq!(a.epoch, epoch + 1);
}

#[test]
fn silent_members_time_out_and_slow_revokers_are_fenced() {
    let mut h = Harness::new();
    let mut a = h.join();
    let mut b = h.join();
    // a never revokes (keeps reporting everything) until its rebalance timeout.
    let mut greedy = a.clone();
    h.beat(&mut a).unwrap();
    greedy.owned = tps("t", &[0, 1, 2, 3, 4, 5]);
    h.advance(i64::from(REBALANCE_MS) / 2);
    h.beat(&mut greedy).unwrap();
    h.beat(&mut b).unwrap();
    h.advance(i64::from(REBALANCE_MS) / 2 + 1);
    assert_eq!(h.describe().members.len(), 1, "a was fenced");
    h.beat(&mut b).unwrap();
    assert_eq!(b.owned.len(), 6);
    // b goes silent for the session timeout.
    h.advance(i64::from(CONSUMER_SESSION_TIMEOUT_MS));
    assert_eq!(h.describe().state, GroupState::Empty);
    assert_eq!(
        h.beat(&mut b),
        Err(GroupCode::Wire(ErrorCode::UnknownMemberId))
    );
}

#[test]
fn a_static_member_leaves_for_now_and_takes_its_partitions_back() {
    let mut h = Harness::new();
    let mut a = h.join_with(&["t"], None, Some("i-a"));
    let mut b = h.join();
    h.beat(&mut a).unwrap();
    h.beat(&mut a).unwrap();
    h.beat(&mut b).unwrap();
    let a_owned = a.owned.clone();
    let epoch = h.describe().group_epoch;
    let r = h
        .send(ConsumerHeartbeat {
            group: "g".into(),
            member_id: a.id.clone(),
            member_epoch: STATIC_LEAVE_EPOCH,
            instance_id: Some("i-a".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.member_epoch, STATIC_LEAVE_EPOCH);
    assert_eq!(h.describe().group_epoch, epoch, "no rebalance");
    // Its partitions stay reserved for it.
    h.beat(&mut b).unwrap();
    assert_eq!(b.owned.len(), 3);
    // Another process with the same instance id while a is active: refused.
    // (a is away now, so the restart takes over.)
    let back = h.join_with(&["t"], None, Some("i-a"));
    assert_ne!(back.id, a.id);
    assert_eq!(back.owned, a_owned);
    assert_eq!(back.epoch, epoch);
    let r = h.send(ConsumerHeartbeat {
        group: "g".into(),
        member_epoch: 0,
        instance_id: Some("i-a".into()),
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Vec::new()),
        ..Default::default()
    });
    assert_eq!(r.unwrap_err(), GroupCode::UnreleasedInstanceId);
}

#[test]
fn assignors_and_regular_expressions() {
    let mut h = Harness::new();
    let r = h.send(ConsumerHeartbeat {
        group: "g".into(),
        member_epoch: 0,
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topic_names: Some(vec!["t".into()]),
        server_assignor: Some("fancy".into()),
        owned: Some(Vec::new()),
        ..Default::default()
    });
    assert_eq!(r.unwrap_err(), GroupCode::UnsupportedAssignor);
    let r = h.send(ConsumerHeartbeat {
        group: "g".into(),
        member_epoch: 0,
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topic_regex: Some("t(".into()),
        owned: Some(Vec::new()),
        ..Default::default()
    });
    assert_eq!(r.unwrap_err(), GroupCode::InvalidRegularExpression);
    // A regex subscription matches whole names and never internal topics.
    let r = h
        .send(ConsumerHeartbeat {
            group: "g".into(),
            member_epoch: 0,
            rebalance_timeout_ms: REBALANCE_MS,
            subscribed_topic_regex: Some("t.*".into()),
            owned: Some(Vec::new()),
            ..Default::default()
        })
        .unwrap();
    let topics: BTreeSet<String> = r
        .assignment
        .unwrap()
        .into_iter()
        .map(|tp| tp.topic)
        .collect();
    assert_eq!(topics, ["t".to_owned(), "tt".to_owned()].into());
    // Range: contiguous runs per topic.
    let mut h = Harness::new();
    let mut a = h.join_with(&["t"], Some("range"), None);
    let mut b = h.join_with(&["t"], Some("range"), None);
    h.beat(&mut a).unwrap();
    h.beat(&mut a).unwrap();
    h.beat(&mut b).unwrap();
    assert_eq!(h.describe().assignor, "range");
    let mut all = [a.owned.clone(), b.owned.clone()];
    all.sort();
    assert_eq!(all, [tps("t", &[0, 1, 2]), tps("t", &[3, 4, 5])]);
}

#[test]
fn new_partitions_reach_the_members() {
    let mut h = Harness::new();
    let mut a = h.join();
    let epoch = h.describe().group_epoch;
    let fx = h.c.set_partition_counts(
        h.now_ms,
        [
            ("t".to_owned(), 8),
            ("tt".to_owned(), 2),
            ("u".to_owned(), 2),
        ]
        .into(),
    );
    assert!(!fx.records.is_empty());
    assert_eq!(h.describe().group_epoch, epoch + 1);
    h.beat(&mut a).unwrap();
    assert_eq!(a.owned.len(), 8);
    // Topics of no interest change nothing.
    let _ = h.c.set_partition_counts(
        h.now_ms,
        [
            ("t".to_owned(), 8),
            ("tt".to_owned(), 2),
            ("u".to_owned(), 4),
        ]
        .into(),
    );
    assert_eq!(h.describe().group_epoch, epoch + 1);
}

#[test]
fn commits_and_fetches_check_the_member_epoch() {
    let mut h = Harness::new();
    let a = h.join();
    let commit = |c: &mut Coordinator, member: &str, epoch: i32, v9: bool| {
        c.kafka_commit(
            0,
            &KafkaCommit {
                group: "g".into(),
                member_id: member.into(),
                instance_id: None,
                generation_or_epoch: epoch,
                member_epoch_api: v9,
            },
            &[Commit {
                tp: TopicPartition::new("t", 0),
                offset: 1,
                metadata: String::new(),
                leader_epoch: -1,
            }],
        )
        .map(|_| ())
        .map_err(|e| e.code)
    };
    assert_eq!(commit(&mut h.c, &a.id, a.epoch, true), Ok(()));
    assert_eq!(
        commit(&mut h.c, &a.id, a.epoch, false),
        Err(GroupCode::UnsupportedVersion)
    );
    assert_eq!(
        commit(&mut h.c, &a.id, a.epoch + 1, true),
        Err(GroupCode::FencedMemberEpoch)
    );
    let _b = h.join();
    // a is still at epoch 1 until it heartbeats; an older epoch is stale.
    assert_eq!(
        commit(&mut h.c, &a.id, 0, true),
        Err(GroupCode::StaleMemberEpoch)
    );
    assert_eq!(
        commit(&mut h.c, "", -1, true),
        Err(GroupCode::Wire(ErrorCode::UnknownMemberId)),
        "not while the group has members"
    );
    assert_eq!(h.c.check_fetch("g", &a.id, a.epoch), Ok(()));
    assert_eq!(
        h.c.check_fetch("g", &a.id, a.epoch + 1).unwrap_err().code,
        GroupCode::StaleMemberEpoch
    );
    assert_eq!(h.c.check_fetch("g", "", -1), Ok(()));
}

#[test]
fn replay_restores_a_consumer_group() {
    let mut h = Harness::new();
    let mut a = h.join();
    let mut b = h.join();
    h.beat(&mut a).unwrap();
    h.beat(&mut a).unwrap();
    h.beat(&mut b).unwrap();
    let mut c = Coordinator::new(CoordinatorConfig::default());
    let _ = c.set_partition_counts(0, [("t".to_owned(), 6)].into());
    for r in &h.log {
        c.apply(h.now_ms, &r.key, r.value.as_deref()).unwrap();
    }
    let before = h.describe();
    let after = c.consumer_describe("g").unwrap();
    assert_eq!(before, after);
    // Members carry on where they were.
    let (r, _) = c.consumer_heartbeat(
        h.now_ms + 10,
        ConsumerHeartbeat {
            group: "g".into(),
            member_id: b.id.clone(),
            member_epoch: b.epoch,
            rebalance_timeout_ms: -1,
            owned: Some(b.owned.iter().cloned().collect()),
            ..Default::default()
        },
    );
    assert_eq!(r.unwrap().member_epoch, b.epoch);
    // Listed as a consumer group.
    let l = c.list();
    assert_eq!(l[0].kind, GroupKind::Consumer);
    assert_eq!(l[0].kind.kafka_type(), "consumer");
}

#[test]
fn a_classic_member_cannot_join_a_consumer_group() {
    let mut h = Harness::new();
    let _a = h.join();
    let fx = h.c.classic_join(
        h.now_ms,
        1,
        ClassicJoinRequest {
            group: "g".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::new())],
            ..Default::default()
        },
    );
    match &fx.answers[0].1 {
        Answer::ClassicJoin(Err(e)) => {
            assert_eq!(e.code, GroupCode::InconsistentGroupProtocol);
            assert!(e.message.contains("KIP-848"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
}
