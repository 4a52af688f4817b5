//! A `TestCluster` of real `strata serve` processes started with the cluster flags:
//! every node starts, answers Kafka clients under its own node id and stays up; a
//! node stopped or killed and restarted comes back on the same data dir.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use strata_tests::cluster::TestCluster;
use strata_tests::kafka_wire::KafkaWire;

/// How long every node must stay up after the cluster started.
const STAY_UP: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(100);

/// Asserts node `i` answers Kafka Metadata and lists itself under node id `i + 1`
/// at its Kafka address.
fn assert_answers_as_itself(cluster: &TestCluster, i: usize) {
    let addr = cluster.kafka_addr(i);
    let md: MetadataResponse =
        KafkaWire::connect(&addr).call(ApiKey::Metadata, 12, &MetadataRequest::default());
    let port: i32 = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("a host:port");
    let me = md
        .brokers
        .iter()
        .find(|b| b.port == port)
        .unwrap_or_else(|| panic!("node {} does not list itself: {:?}", i + 1, md.brokers));
    assert_eq!(
        me.node_id.0 as u64,
        cluster.node_ids()[i],
        "node {} answers under another id",
        i + 1
    );
}

#[test]
fn every_node_starts_answers_as_itself_and_stays_up() {
    let mut cluster = TestCluster::start(3, 1);
    assert_eq!(cluster.node_ids(), [1, 2, 3]);
    assert_eq!(cluster.kafka_bootstrap().split(',').count(), 3);
    for i in 0..cluster.len() {
        assert_answers_as_itself(&cluster, i);
    }
    let started = Instant::now();
    while started.elapsed() < STAY_UP {
        for i in 0..cluster.len() {
            assert!(
                cluster.is_running(i),
                "node {} exited\n{}",
                i + 1,
                cluster.stderr_tails()
            );
        }
        std::thread::sleep(POLL);
    }
    for i in 0..cluster.len() {
        cluster.stop(i);
    }
}

#[test]
fn a_restarted_node_keeps_its_data_dir() {
    let mut cluster = TestCluster::start(3, 1);
    let dirs: Vec<_> = (0..cluster.len()).map(|i| cluster.data_dir(i)).collect();
    for d in &dirs {
        std::fs::write(d.join("test-marker"), b"kept").expect("write a marker");
    }
    cluster.stop(1);
    assert!(!cluster.is_running(1));
    cluster.restart(1);
    cluster.kill(2);
    assert!(!cluster.is_running(2));
    cluster.restart(2);
    for (i, d) in dirs.iter().enumerate() {
        assert_eq!(&cluster.data_dir(i), d);
        assert_eq!(
            std::fs::read(d.join("test-marker")).expect("the marker is still there"),
            b"kept"
        );
        assert!(
            cluster.is_running(i),
            "node {} is down\n{}",
            i + 1,
            cluster.stderr_tails()
        );
        assert_answers_as_itself(&cluster, i);
    }
    for i in 0..cluster.len() {
        cluster.stop(i);
    }
}

#[test]
fn the_config_file_cluster_keys_make_a_cluster_member() {
    let (port, _lock) = strata_tests::broker::claim_port();
    let (broker, _dir) = strata_tests::broker::start_with_config(&format!(
        "node.id = 5\ncluster.listen = 127.0.0.1:{port}\n\
         controller.quorum.voters = 5@127.0.0.1:{port}\nbroker.rack = rack-a\n"
    ));
    let md: MetadataResponse = KafkaWire::connect(&broker.kafka_addr()).call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default(),
    );
    let me = md
        .brokers
        .iter()
        .find(|b| b.node_id.0 == 5)
        .unwrap_or_else(|| panic!("node 5 is not listed: {:?}", md.brokers));
    assert_eq!(me.rack.as_ref().map(|r| r.as_str()), Some("rack-a"));
}

#[test]
fn bad_cluster_flags_stop_the_broker_with_the_reason() {
    let data = tempfile::tempdir().expect("temp dir");
    let data = data.path().to_str().expect("a UTF-8 temp path").to_owned();
    let (listen, _l1) = strata_tests::broker::claim_port();
    let (kafka, _l2) = strata_tests::broker::claim_port();
    let (cluster, _l3) = strata_tests::broker::claim_port();
    let (listen, kafka, cluster) = (
        format!("127.0.0.1:{listen}"),
        format!("127.0.0.1:{kafka}"),
        format!("127.0.0.1:{cluster}"),
    );
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec![
                "--node-id",
                "1",
                "--cluster-listen",
                &cluster,
                "--voters",
                "1@127.0.0.1:1,two",
            ],
            "entry 2 `two` is not ID@HOST:PORT",
        ),
        (vec!["--voters", "1@127.0.0.1:1"], "needs --node-id"),
        (vec!["--node-id", "1"], "needs --cluster-listen"),
        (
            vec![
                "--node-id",
                "0",
                "--cluster-listen",
                &cluster,
                "--voters",
                "1@127.0.0.1:1",
            ],
            "is not a number from 1 to 2147483647",
        ),
    ];
    for (flags, reason) in cases {
        let mut args = vec![
            "serve",
            "--data-dir",
            &data,
            "--listen",
            &listen,
            "--kafka-listen",
            &kafka,
            "--metrics-addr",
            "off",
        ];
        args.extend(flags.iter().copied());
        let out = strata_tests::broker::run_cli(&args, None, strata_tests::broker::CLI_TIMEOUT);
        assert_eq!(out.status.code(), Some(1), "{out}");
        assert!(out.stderr.contains(reason), "{reason:?} not in {out}");
    }
}
