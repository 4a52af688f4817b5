//! Automatic leader balancing: 3 brokers checking the leader imbalance every second.
//! A topic of 6 partitions with 3 replicas settles with each partition led by its
//! preferred (first) replica. Broker 1 is SIGKILLed: its partitions fail over to
//! brokers 2 and 3. Once it is back and in sync, the controller moves those
//! leaderships back to it without anyone asking, and records produced meanwhile are
//! all there, once, in order. With balancing turned off the leaders stay where the
//! failover put them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{check_log, create_replicated, read_all};
use strata_tests::kafka::{consumer, producer};

const TOPIC: &str = "balanced";
const PARTITIONS: i32 = 6;
const RECORDS: usize = 100;

/// Partition → (replicas, leader) as the metadata shows it.
fn placement(c: &BaseConsumer) -> BTreeMap<i32, (Vec<i32>, i32)> {
    let Ok(md) = c.fetch_metadata(Some(TOPIC), Duration::from_secs(5)) else {
        return BTreeMap::new();
    };
    md.topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| (p.id(), (p.replicas().to_vec(), p.leader())))
        .collect()
}

/// Waits until `want` holds of the placement of every partition; returns it.
fn wait_for(
    cluster: &TestCluster,
    c: &BaseConsumer,
    what: &str,
    within: Duration,
    want: impl Fn(&[i32], i32) -> bool,
) -> BTreeMap<i32, (Vec<i32>, i32)> {
    let deadline = Instant::now() + within;
    loop {
        let now = placement(c);
        if now.len() == PARTITIONS as usize && now.values().all(|(r, l)| want(r, *l)) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never; last placement {now:?}\n{}",
            cluster.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn led_by_preferred(replicas: &[i32], leader: i32) -> bool {
    replicas.first() == Some(&leader)
}

/// Sends one record to each partition in turn; returns the acknowledged ones of
/// partition 0 (what `read_all` checks).
fn send(p: &FutureProducer, from: usize) -> Vec<(usize, i64)> {
    let mut acked = Vec::new();
    for i in from..from + RECORDS {
        let v = format!("record-{i:06}");
        let partition = (i % PARTITIONS as usize) as i32;
        let Ok(d) = p.send_result(
            FutureRecord::<(), _>::to(TOPIC)
                .partition(partition)
                .payload(&v),
        ) else {
            continue;
        };
        if let Ok(Ok(d)) = futures_lite::future::block_on(d) {
            if partition == 0 {
                acked.push((i, d.offset));
            }
        }
    }
    acked
}

fn cluster_with(balancing: bool) -> (TestCluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a config dir");
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        format!(
            "auto.leader.rebalance.enable = {balancing}\nleader.imbalance.check.interval.seconds = 1\n"
        ),
    )
    .expect("write the config");
    let config = config.to_str().expect("a UTF-8 path").to_owned();
    let cluster = TestCluster::start_with(3, 1, |_| {
        vec![
            "--config".into(),
            config.clone(),
            "--log-level".into(),
            "warn,strata_net::cluster=info".into(),
        ]
    });
    (cluster, dir)
}

/// Kills broker 1 once the partitions are balanced, waits for the failover, restarts
/// it; returns the cluster and what was acknowledged on partition 0.
fn fail_over_broker_1(balancing: bool) -> (TestCluster, tempfile::TempDir, Vec<(usize, i64)>) {
    let (mut cluster, dir) = cluster_with(balancing);
    let bootstrap = cluster.kafka_bootstrap();
    create_replicated(&bootstrap, TOPIC, PARTITIONS, 3);
    let probe = consumer(&bootstrap, None, &[]);
    let what = if balancing {
        "every partition led by its preferred replica"
    } else {
        "every partition led"
    };
    wait_for(&cluster, &probe, what, Duration::from_secs(60), |r, l| {
        l > 0 && (!balancing || led_by_preferred(r, l))
    });
    let p = producer(&bootstrap, &[("message.timeout.ms", "30000")]);
    let mut acked = send(&p, 0);
    cluster.kill(0);
    wait_for(
        &cluster,
        &probe,
        "leaders off broker 1",
        Duration::from_secs(60),
        |_, l| l > 1,
    );
    acked.extend(send(&p, RECORDS));
    cluster.restart(0);
    acked.extend(send(&p, 2 * RECORDS));
    (cluster, dir, acked)
}

#[test]
fn leaders_return_to_their_preferred_replicas_after_a_failover() {
    let (cluster, _dir, acked) = fail_over_broker_1(true);
    let probe = consumer(&cluster.kafka_bootstrap(), None, &[]);
    let after = wait_for(
        &cluster,
        &probe,
        "leaders back on their preferred replicas",
        Duration::from_secs(90),
        led_by_preferred,
    );
    assert!(
        after.values().any(|(_, l)| *l == 1),
        "broker 1 leads nothing: {after:?}"
    );
    let seen = read_all(&cluster.kafka_bootstrap(), TOPIC, &acked);
    check_log(&seen, &acked);
}

#[test]
fn with_balancing_off_leaders_stay_where_the_failover_put_them() {
    let (cluster, _dir, _) = fail_over_broker_1(false);
    let probe = consumer(&cluster.kafka_bootstrap(), None, &[]);
    // Several checks' worth of time with broker 1 back: nothing moves to it.
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let now = placement(&probe);
        assert!(
            now.values().all(|(_, l)| *l != 1),
            "a leader moved to broker 1 with balancing off: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
