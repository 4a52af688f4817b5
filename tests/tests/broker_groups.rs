//! Consumer groups against a real broker process: `strata consume --group` members
//! split a topic's partitions without overlap; a member killed with SIGKILL (no
//! leave) loses its partitions to the others once its session times out; nothing is
//! skipped (at least once); committed offsets survive a broker crash. And through
//! the client crate: subscribe, commit, leave, and the Admin group calls.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_client::{
    Admin, AdminConfig, AssignmentStrategy, Consumer, ConsumerConfig, GroupDescription,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, ResetTo,
};
use strata_schema::ErrorCode;
use strata_tests::broker::{strata_bin, TestBroker};

const PARTITIONS: u32 = 6;
/// Session timeout of the CLI members: short, so the kill is noticed quickly.
const SESSION_TIMEOUT_MS: u64 = 2_000;
/// Slack on top of the session timeout for the survivors to notice (heartbeat
/// interval), rejoin, and for the coordinator's tick.
const REASSIGN_SLACK_MS: u64 = 2_500;
/// Longest any wait below lasts.
const WAIT_MAX: Duration = Duration::from_secs(60);

fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects")
}

/// Waits until `check` returns `Some`, or panics with `what` after [`WAIT_MAX`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Produces `values` with keys spread over the partitions; waits for every ack.
fn produce(broker: &TestBroker, topic: &str, values: &[String]) {
    let producer = Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let sends: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            producer.send(
                ProducerRecord::new(topic, v.as_bytes().to_vec()).partition(i as u32 % PARTITIONS),
            )
        })
        .collect();
    for s in sends {
        s.wait().expect("record acknowledged");
    }
    producer.close();
}

/// One consumed record, as a `strata consume --format json` line says.
#[derive(Clone, Debug)]
struct Seen {
    partition: u32,
    offset: i64,
    value: String,
}

/// A `strata consume --group` process and the records it printed.
struct Member {
    child: Child,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A broker whose groups accept this file's short session timeouts (Kafka's
/// `group.min.session.timeout.ms` default is 6 s).
fn start_broker() -> (TestBroker, tempfile::TempDir) {
    strata_tests::broker::start_with_config("group.min.session.timeout.ms = 500\n")
}

impl Member {
    fn start(broker: &TestBroker, group: &str, topic: &str, extra: &[&str]) -> Member {
        let mut child = Command::new(strata_bin())
            .args([
                "--brokers",
                &broker.addr(),
                "consume",
                topic,
                "--group",
                group,
            ])
            .args(["--format", "json", "--strategy", "range"])
            .args(["--session-timeout-ms", &SESSION_TIMEOUT_MS.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn strata consume");
        let stdout = child.stdout.take().expect("piped stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                sink.lock().unwrap().push(Seen {
                    partition: v["partition"].as_u64().expect("partition") as u32,
                    offset: v["offset"].as_i64().expect("offset"),
                    value: v["value"].as_str().expect("value").to_owned(),
                });
            }
        });
        Member { child, seen }
    }

    fn values(&self) -> BTreeSet<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.value.clone())
            .collect()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no leave, no last commit
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// (member id → partitions) when the group is Stable with `members` members.
fn stable_split(d: &GroupDescription, members: usize) -> Option<BTreeMap<String, Vec<u32>>> {
    if d.state != "Stable" || d.members.len() != members {
        return None;
    }
    Some(
        d.members
            .iter()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.assignment.iter().map(|(_, p)| *p).collect(),
                )
            })
            .collect(),
    )
}

/// Every partition owned by exactly one member.
fn assert_partitioned(split: &BTreeMap<String, Vec<u32>>) {
    let mut owned: Vec<u32> = split.values().flatten().copied().collect();
    owned.sort_unstable();
    assert_eq!(
        owned,
        (0..PARTITIONS).collect::<Vec<_>>(),
        "every partition owned exactly once: {split:?}"
    );
}

fn describe(admin: &Admin, group: &str) -> GroupDescription {
    admin.describe_group(group).wait().expect("describe group")
}

/// Committed offset per partition, once every partition's lag is 0.
fn fully_committed(d: &GroupDescription) -> Option<BTreeMap<u32, i64>> {
    let rows: BTreeMap<u32, (i64, i64)> = d
        .lag
        .iter()
        .map(|l| (l.partition, (l.committed_offset, l.log_end_offset)))
        .collect();
    let done = rows.len() == PARTITIONS as usize && rows.values().all(|(c, e)| c == e);
    done.then(|| rows.into_iter().map(|(p, (c, _))| (p, c)).collect())
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

#[test]
fn a_group_of_three_splits_partitions_survives_a_killed_member_and_a_broker_crash() {
    let (mut broker, _conf) = start_broker();
    let admin = admin(&broker);
    let (topic, group) = ("orders", "billing");
    admin
        .create_topic(topic, PARTITIONS, &[])
        .wait()
        .expect("create topic");

    // Three members split the six partitions, two each, without overlap.
    let mut members: Vec<Member> = (0..3)
        .map(|_| Member::start(&broker, group, topic, &[]))
        .collect();
    let split = wait_for("three stable members", || {
        stable_split(&describe(&admin, group), 3)
    });
    assert_partitioned(&split);
    assert!(split.values().all(|p| p.len() == 2), "{split:?}");

    // Everything produced is consumed, once per record, and committed.
    let first = values("a", 300);
    produce(&broker, topic, &first);
    wait_for("the first records consumed", || {
        let all: BTreeSet<String> = members.iter().flat_map(Member::values).collect();
        first.iter().all(|v| all.contains(v)).then_some(())
    });
    wait_for("the first records committed", || {
        fully_committed(&describe(&admin, group))
    });
    for (i, m) in members.iter().enumerate() {
        let seen = m.seen.lock().unwrap();
        let parts: BTreeSet<u32> = seen.iter().map(|s| s.partition).collect();
        assert!(parts.len() <= 2, "member {i} read partitions {parts:?}");
    }

    // Kill one member: only its session timeout tells the coordinator.
    let mut victim = members.remove(2);
    let before: BTreeSet<String> = split.keys().cloned().collect();
    victim.kill();
    let killed_at = Instant::now();
    let after = wait_for("the survivors to take over", || {
        stable_split(&describe(&admin, group), 2)
    });
    let took = killed_at.elapsed();
    assert_partitioned(&after);
    assert!(after.keys().all(|id| before.contains(id)), "{after:?}");
    assert!(
        took <= Duration::from_millis(SESSION_TIMEOUT_MS + REASSIGN_SLACK_MS),
        "reassignment took {took:?}, the session timeout is {SESSION_TIMEOUT_MS} ms"
    );
    assert!(
        took >= Duration::from_millis(SESSION_TIMEOUT_MS / 2),
        "a member killed without leaving is noticed by its session timeout, not at once ({took:?})"
    );

    // Records produced after the kill reach the survivors: nothing is skipped.
    let second = values("b", 300);
    produce(&broker, topic, &second);
    wait_for("the second records consumed", || {
        let mut all: BTreeSet<String> = members.iter().flat_map(Member::values).collect();
        all.extend(victim.values());
        first
            .iter()
            .chain(&second)
            .all(|v| all.contains(v))
            .then_some(())
    });
    let committed = wait_for("the second records committed", || {
        fully_committed(&describe(&admin, group))
    });
    assert_eq!(committed.values().sum::<i64>(), 600);
    // Per partition, what the members printed has no gap.
    let mut offsets: BTreeMap<u32, BTreeSet<i64>> = BTreeMap::new();
    for m in members.iter().chain([&victim]) {
        for s in m.seen.lock().unwrap().iter() {
            offsets.entry(s.partition).or_default().insert(s.offset);
        }
    }
    for (p, seen) in &offsets {
        let end = committed[p];
        assert_eq!(
            seen.iter().copied().collect::<Vec<_>>(),
            (0..end).collect::<Vec<_>>(),
            "partition {p} was read without gaps"
        );
    }
    for m in &mut members {
        m.kill();
    }

    // The broker crashes; committed offsets come back with it.
    broker.kill();
    broker.restart();
    let admin = self::admin(&broker);
    let d = describe(&admin, group);
    let back: BTreeMap<u32, i64> = d
        .lag
        .iter()
        .map(|l| (l.partition, l.committed_offset))
        .collect();
    assert_eq!(back, committed, "committed offsets after the restart");

    // A new member resumes from them: it sees exactly the records produced since.
    let third = values("c", 60);
    produce(&broker, topic, &third);
    let mut resumed = Member::start(&broker, group, topic, &["--count", "60"]);
    let status = wait_for("the resumed member to finish", || {
        resumed.child.try_wait().expect("try_wait")
    });
    assert!(status.success(), "strata consume --count exits 0");
    let got = resumed.values();
    assert_eq!(
        got,
        third.iter().cloned().collect::<BTreeSet<_>>(),
        "only records after the committed offsets"
    );
    broker.stop_gracefully();
}

#[test]
fn client_subscribe_commit_leave_and_admin_group_calls() {
    let (mut broker, _conf) = start_broker();
    let admin = admin(&broker);
    let (topic, group) = ("events", "audit");
    admin
        .create_topic(topic, PARTITIONS, &[])
        .wait()
        .expect("create topic");
    let all = values("e", 120);
    produce(&broker, topic, &all);

    let config = || ConsumerConfig {
        brokers: broker.brokers(),
        client_id: "audit-test".into(),
        auto_offset_reset: OffsetReset::Earliest,
        session_timeout: Duration::from_millis(SESSION_TIMEOUT_MS),
        heartbeat_interval: Duration::from_millis(SESSION_TIMEOUT_MS / 4),
        enable_auto_commit: false,
        ..ConsumerConfig::default()
    };
    let mut a = Consumer::connect(config()).expect("consumer connects");
    a.subscribe(group, &[topic], AssignmentStrategy::Sticky)
        .expect("subscribe");
    assert_eq!(a.assignment().len(), PARTITIONS as usize);
    let mut read = 0;
    let deadline = Instant::now() + WAIT_MAX;
    while read < all.len() && Instant::now() < deadline {
        read += a.poll(Duration::from_millis(200)).expect("poll").len();
    }
    assert_eq!(read, all.len());
    a.commit_sync().expect("commit_sync");
    let committed = admin.committed_offsets(group).wait().expect("offsets");
    assert_eq!(committed.iter().map(|c| c.offset).sum::<i64>(), 120);

    // A second member: the sticky assignor moves half the partitions to it.
    let mut b = Consumer::connect(config()).expect("consumer connects");
    let b_thread = std::thread::spawn(move || {
        b.subscribe(group, &[topic], AssignmentStrategy::Sticky)
            .expect("subscribe b");
        b
    });
    // `a` learns of the rebalance from its heartbeat and rejoins inside poll.
    wait_for("a to give up partitions", || {
        a.poll(Duration::from_millis(100)).expect("poll");
        (a.assignment().len() == 3).then_some(())
    });
    let b = b_thread.join().expect("b joined");
    let a_parts: BTreeSet<(String, u32)> = a.assignment().into_iter().collect();
    let b_parts: BTreeSet<(String, u32)> = b.assignment().into_iter().collect();
    assert!(a_parts.is_disjoint(&b_parts));
    assert_eq!(a_parts.len() + b_parts.len(), PARTITIONS as usize);

    // Admin: listed, described, and resetting is refused while members are active.
    let listed = admin.list_groups().wait().expect("list groups");
    assert!(listed
        .iter()
        .any(|g| g.group == group && g.members == 2 && g.state == "Stable"));
    let d = describe(&admin, group);
    assert_eq!(d.strategy, AssignmentStrategy::Sticky);
    assert!(d.members.iter().all(|m| m.client_id == "audit-test"));
    let refused = admin
        .reset_offsets(group, topic, ResetTo::Earliest)
        .expect_err("reset while members are active");
    assert_eq!(refused.code(), Some(ErrorCode::GroupNotEmpty), "{refused}");
    assert_eq!(
        admin.delete_group(group).wait().unwrap_err().code(),
        Some(ErrorCode::GroupNotEmpty)
    );

    // Leaving (close) empties the group at once, without waiting for sessions.
    b.close().expect("close b");
    a.close().expect("close a");
    let d = describe(&admin, group);
    assert_eq!(d.state, "Empty", "{d:?}");

    let moved = admin
        .reset_offsets(group, topic, ResetTo::Offset(5))
        .expect("reset to 5");
    assert!(moved.iter().all(|(_, o)| *o == 5), "{moved:?}");
    let mut c = Consumer::connect(config()).expect("consumer connects");
    c.subscribe(group, &[topic], AssignmentStrategy::Range)
        .expect("subscribe c");
    for p in 0..PARTITIONS {
        assert_eq!(c.position(topic, p).expect("position"), 5);
    }
    c.close().expect("close c");

    admin.delete_group(group).wait().expect("delete group");
    assert_eq!(describe(&admin, group).state, "Dead");
    assert!(admin.committed_offsets(group).wait().unwrap().is_empty());
    broker.stop_gracefully();
}

#[test]
fn a_held_join_does_not_hold_up_a_graceful_shutdown() {
    let (mut broker, _conf) = start_broker();
    let admin = admin(&broker);
    admin
        .create_topic("held", 2, &[])
        .wait()
        .expect("create topic");
    let config = ConsumerConfig {
        brokers: broker.brokers(),
        enable_auto_commit: false,
        rebalance_timeout: Duration::from_secs(60),
        ..ConsumerConfig::default()
    };
    // `a` joins and then never polls, so `b`'s join waits for a rebalance that
    // cannot complete before the rebalance timeout.
    let mut a = Consumer::connect(config.clone()).expect("consumer connects");
    a.subscribe("held-group", &["held"], AssignmentStrategy::Range)
        .expect("subscribe a");
    let b = std::thread::spawn(move || {
        let mut b = Consumer::connect(config).expect("consumer connects");
        b.subscribe("held-group", &["held"], AssignmentStrategy::Range)
    });
    wait_for("b's join to be held", || {
        (describe(&admin, "held-group").state == "PreparingRebalance").then_some(())
    });
    let took = broker.stop_gracefully();
    assert!(
        took < Duration::from_secs(10),
        "shutdown waited {took:?} for a held join"
    );
    assert!(b.join().expect("b's thread").is_err(), "b never joined");
    drop(a);
}
