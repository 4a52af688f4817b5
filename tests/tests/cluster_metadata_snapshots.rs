//! The controller's metadata log is snapshotted and compacted: 3 brokers that write
//! a snapshot of the metadata image every KiB of applied log. While broker 3 is
//! stopped, topics are created and one it holds a replica of is deleted, so the two
//! that stay write snapshots and move their log start past everything broker 3 has.
//! Restarted, broker 3 cannot be sent those entries: the leader sends its snapshot,
//! broker 3 installs it, and then sees exactly the topics that exist (the deleted one
//! gone), serves their leaders to clients, and takes new topics it leads. Last, a
//! voter SIGKILLed and restarted rebuilds its image from its own snapshot and the log
//! above it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::Consumer;
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{
    check_log, create_assigned, create_replicated, read_all, send_acked,
};
use strata_tests::kafka::{admin, consumer, producer, KAFKA_TIMEOUT};

/// Topics created while broker 3 is down (each one metadata entry, and a leader
/// report or two: several KiB of log, so several snapshots).
const TOPICS: usize = 30;
const SNAPSHOT_INTERVAL_BYTES: u64 = 1024;
const RECORDS: usize = 200;

fn metadata_log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("__meta").join("cluster-metadata")
}

/// The metadata log's start offset on a broker (0 before anything moved it).
fn metadata_log_start(data_dir: &Path) -> i64 {
    match std::fs::read_to_string(metadata_log_dir(data_dir).join("log-start-offset")) {
        Ok(text) => text.trim().parse().expect("a log start offset"),
        Err(_) => 0,
    }
}

/// The snapshot files of a broker's metadata log.
fn snapshots(data_dir: &Path) -> Vec<String> {
    let dir = metadata_log_dir(data_dir).join("snapshots");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".snapshot"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn delete_topic(bootstrap: &str, name: &str) {
    let admin = admin(bootstrap);
    let results = futures_lite::future::block_on(admin.delete_topics(
        &[name],
        &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
    ))
    .expect("delete_topics request");
    assert!(results[0].is_ok(), "delete {name}: {:?}", results[0]);
}

/// The topics (internal ones left out) and whether every partition has a leader,
/// as the broker at `bootstrap` alone tells a client.
fn topics_seen(bootstrap: &str) -> Option<(BTreeSet<String>, bool)> {
    let c = consumer(bootstrap, None, &[]);
    let md = c.fetch_metadata(None, Duration::from_secs(5)).ok()?;
    let mut names = BTreeSet::new();
    let mut led = true;
    for t in md.topics().iter().filter(|t| !t.name().starts_with("__")) {
        names.insert(t.name().to_owned());
        led &= t.partitions().iter().all(|p| p.leader() > 0);
    }
    Some((names, led))
}

/// Waits until the broker at `bootstrap` lists exactly `want`, every partition led.
fn wait_for_topics(cluster: &TestCluster, bootstrap: &str, want: &BTreeSet<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        match topics_seen(bootstrap) {
            Some((names, true)) if &names == want => return,
            seen => last = seen,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "{what}: the broker at {bootstrap} never listed exactly {want:?} all led; last {last:?}\n{}",
        cluster.stderr_tails()
    );
}

#[test]
fn a_broker_behind_the_metadata_log_start_installs_the_leaders_snapshot() {
    let dir = tempfile::tempdir().expect("a config dir");
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        format!("metadata.log.max.record.bytes.between.snapshots = {SNAPSHOT_INTERVAL_BYTES}\n"),
    )
    .expect("write the config");
    let config = config.to_str().expect("a UTF-8 path").to_owned();
    // Each broker says when it installs a leader's snapshot or restores its own.
    let mut cluster = TestCluster::start_with(3, 1, |_| {
        vec![
            "--config".to_owned(),
            config.clone(),
            "--log-level".to_owned(),
            "warn,strata_net::cluster::controller_host=info".to_owned(),
        ]
    });
    let all = cluster.kafka_bootstrap();
    let staying = format!("{},{}", cluster.kafka_addr(0), cluster.kafka_addr(1));
    create_replicated(&all, "doomed", 1, 3);
    let mut want: BTreeSet<String> = BTreeSet::from(["doomed".to_owned()]);
    wait_for_topics(&cluster, &cluster.kafka_addr(2), &want, "before the stop");

    cluster.stop(2);
    let starts_before: Vec<i64> = (0..2)
        .map(|i| metadata_log_start(&cluster.data_dir(i)))
        .collect();
    for t in 0..TOPICS {
        let name = format!("made-while-down-{t:02}");
        let replicas: &[i32] = if t % 2 == 0 { &[1, 2] } else { &[2, 1] };
        create_assigned(&staying, &name, &[replicas]);
        want.insert(name);
    }
    delete_topic(&staying, "doomed");
    want.remove("doomed");
    let p = producer(&staying, &[]);
    let acked = send_acked(&p, "made-while-down-00", 0, RECORDS);
    assert_eq!(
        acked.len(),
        RECORDS,
        "records acknowledged with broker 3 down"
    );
    drop(p);

    // Both brokers that stayed snapshotted their image and moved their log start.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let moved = (0..2).all(|i| {
            let d = cluster.data_dir(i);
            metadata_log_start(&d) > starts_before[i] && !snapshots(&d).is_empty()
        });
        if moved {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the metadata log start never moved on brokers 1 and 2 (was {starts_before:?}, now {:?}; snapshots {:?} {:?})",
            (0..2).map(|i| metadata_log_start(&cluster.data_dir(i))).collect::<Vec<_>>(),
            snapshots(&cluster.data_dir(0)),
            snapshots(&cluster.data_dir(1)),
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Broker 3 comes back behind both logs' starts: it installs the leader's snapshot.
    cluster.restart(2);
    let node3 = cluster.kafka_addr(2);
    wait_for_topics(&cluster, &node3, &want, "broker 3 after its restart");
    let stderr = std::fs::read_to_string(cluster.data_dir(2).with_file_name("broker.stderr"))
        .expect("broker 3's stderr");
    assert!(
        stderr.contains("metadata image installed from the leader's snapshot"),
        "broker 3 caught up without a snapshot\n{}",
        cluster.stderr_tails()
    );
    assert!(
        metadata_log_start(&cluster.data_dir(2)) > 0,
        "broker 3's metadata log still starts at 0"
    );
    assert!(
        !snapshots(&cluster.data_dir(2)).is_empty(),
        "broker 3 kept no snapshot"
    );

    // Clients bootstrapped from broker 3 alone find the leaders it learned of.
    let seen = read_all(&node3, "made-while-down-00", &acked);
    check_log(&seen, &acked);
    // It takes new metadata and leads a topic created after the install.
    create_assigned(&node3, "after-install", &[&[3, 1, 2]]);
    want.insert("after-install".to_owned());
    wait_for_topics(&cluster, &all, &want, "after the install");
    let p = producer(&node3, &[]);
    let acked = send_acked(&p, "after-install", 0, RECORDS);
    assert_eq!(
        acked.len(),
        RECORDS,
        "records acknowledged on broker 3's topic"
    );
    drop(p);
    check_log(&read_all(&all, "after-install", &acked), &acked);

    // A voter SIGKILLed and restarted rebuilds its image from its own snapshot.
    cluster.kill(0);
    cluster.restart(0);
    wait_for_topics(
        &cluster,
        &cluster.kafka_addr(0),
        &want,
        "broker 1 after SIGKILL",
    );
    let stderr = std::fs::read_to_string(cluster.data_dir(0).with_file_name("broker.stderr"))
        .expect("broker 1's stderr");
    let last_start = stderr.rsplit("---- test: start").next().unwrap_or_default();
    assert!(
        last_start.contains("metadata image restored from its snapshot"),
        "broker 1 did not restore its image from its snapshot\n{}",
        cluster.stderr_tails()
    );
}
