//! `strata cluster status|brokers|partitions` against a 3-broker cluster of real
//! processes (and a single node): what an operator reads — the controller, brokers
//! alive and fenced, each partition's leader, replicas, in-sync replicas and lag — and
//! that it changes when a broker dies. Also `strata topic describe` with replicas.

use std::time::{Duration, Instant};

use strata_tests::broker::{CliOutput, TestBroker};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_native::{create_replicated_native, native_admin};

/// Runs `args` on node `i` until `ok` holds for its output (bounded), and returns it.
fn cli_until(
    cluster: &mut TestCluster,
    i: usize,
    args: &[&str],
    ok: impl Fn(&CliOutput) -> bool,
) -> CliOutput {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cluster.node(i).cli(args, None);
        if out.status.success() && ok(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} never showed what was expected: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The `partitions` table's rows: columns split on tabs, header dropped.
fn rows(out: &CliOutput) -> Vec<Vec<String>> {
    out.stdout
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

#[test]
fn cluster_commands_show_brokers_leaders_replicas_and_lag() {
    let mut cluster = TestCluster::start(3, 1);
    let admin = native_admin(&cluster.native_brokers());
    create_replicated_native(&admin, "shown", 4, 3);

    let status = cli_until(&mut cluster, 0, &["cluster", "status"], |o| {
        o.stdout.contains("brokers:     3 (3 alive, 0 fenced)")
            && o.stdout
                .contains("partitions:  4 (0 under-replicated, 0 offline)")
    });
    assert!(status.stdout.contains("mode:        cluster"), "{status}");
    assert!(status.stdout.contains("controller:  broker "), "{status}");
    assert!(
        !status.stdout.contains("cluster id:  (not known yet)"),
        "{status}"
    );

    let brokers = cluster.node(1).cli(&["cluster", "brokers"], None);
    brokers.assert_success();
    for i in 0..3 {
        let line = format!("{}\t{}\t", i + 1, cluster.native_addr(i));
        assert!(brokers.stdout.contains(&line), "no row {line:?}: {brokers}");
    }
    assert_eq!(brokers.stdout.matches("\talive").count(), 3, "{brokers}");
    assert_eq!(
        brokers.stdout.matches("\tcontroller").count(),
        1,
        "{brokers}"
    );

    // Every partition on all three brokers, all in sync, lag known and small.
    let parts = cli_until(
        &mut cluster,
        2,
        &["cluster", "partitions", "--topic", "shown"],
        |o| {
            let r = rows(o);
            r.len() == 4
                && r.iter()
                    .all(|c| c.len() == 8 && c[5].split(',').count() == 3 && c[7] != "-")
        },
    );
    for (p, row) in rows(&parts).iter().enumerate() {
        assert_eq!(row[0], "shown", "{parts}");
        assert_eq!(row[1], p.to_string(), "{parts}");
        let mut replicas: Vec<&str> = row[4].split(',').collect();
        replicas.sort_unstable();
        assert_eq!(replicas, ["1", "2", "3"], "{parts}");
        assert!(
            row[4].split(',').any(|r| r == row[2]),
            "leader among replicas: {parts}"
        );
        assert!(
            row[3].parse::<i32>().is_ok_and(|e| e >= 0),
            "epoch: {parts}"
        );
    }
    let describe = cluster.node(0).cli(&["topic", "describe", "shown"], None);
    describe.assert_success();
    assert!(describe.stdout.contains("replicas\tisr"), "{describe}");

    // A broker dies: the cluster says so, and its partitions get new leaders.
    let led_by_3 = rows(&parts).iter().filter(|r| r[2] == "3").count();
    cluster.kill(2);
    let status = cli_until(&mut cluster, 0, &["cluster", "status"], |o| {
        o.stdout.contains("3 (2 alive, 1 fenced)")
            && o.stdout
                .contains("partitions:  4 (4 under-replicated, 0 offline)")
    });
    eprintln!("{led_by_3} partitions were led by broker 3; after its death:\n{status}");
    let parts = cli_until(&mut cluster, 1, &["cluster", "partitions"], |o| {
        rows(o)
            .iter()
            .filter(|r| r[0] == "shown")
            .all(|r| r[2] != "3" && r[2] != "none" && !r[5].split(',').any(|i| i == "3"))
    });
    let brokers = cluster.node(0).cli(&["cluster", "brokers"], None);
    brokers.assert_success();
    assert!(
        brokers.stdout.contains("3\t") && brokers.stdout.contains("\tfenced"),
        "{brokers}"
    );
    eprintln!("{parts}");
}

#[test]
fn cluster_commands_on_a_single_node_show_a_cluster_of_one() {
    let broker = TestBroker::start();
    broker
        .cli(&["topic", "create", "solo", "-p", "2"], None)
        .assert_success();
    let status = broker.cli(&["cluster", "status"], None);
    status.assert_success();
    assert!(
        status.stdout.contains("mode:        single node"),
        "{status}"
    );
    assert!(
        status.stdout.contains("brokers:     1 (1 alive, 0 fenced)"),
        "{status}"
    );
    assert!(
        status
            .stdout
            .contains("partitions:  2 (0 under-replicated, 0 offline)"),
        "{status}"
    );
    let brokers = broker.cli(&["cluster", "brokers"], None);
    brokers.assert_success();
    assert_eq!(brokers.stdout.lines().count(), 2, "{brokers}");
    let parts = broker.cli(&["cluster", "partitions", "--topic", "solo"], None);
    parts.assert_success();
    let r: Vec<Vec<&str>> = parts
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(r.len(), 2, "{parts}");
    assert!(
        r.iter().all(|c| c[4] == c[2] && c[5] == c[2]),
        "one replica, the leader: {parts}"
    );
    let missing = broker.cli(&["cluster", "partitions", "--topic", "nope"], None);
    missing.assert_user_error();
    assert!(missing.stderr.contains("UNKNOWN_TOPIC"), "{missing}");
}
