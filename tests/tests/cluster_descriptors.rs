//! A cluster broker that runs out of file descriptors recovers without a restart: 3
//! brokers; broker 3's soft descriptor limit is lowered to what it uses, a topic of
//! 40 partitions with 3 replicas is created, and the controller quorum's leader (or
//! broker 1 if broker 3 leads it) is SIGKILLed, so broker 3 can neither open most
//! partitions, nor start their replicas, nor persist its votes in the elections that
//! follow. Once its limit is raised again, the shard's healer opens the partitions
//! and starts their replicas, and its controller replica is rebuilt: with one broker
//! gone, every partition still takes an `acks=all` record and a topic can still be
//! created, both of which need broker 3 in the majority.

use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use strata_tests::broker::run_cli;
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::create_replicated;
use strata_tests::kafka::producer;

const TOPIC: &str = "short-of-descriptors";
const PARTITIONS: i32 = 40;

/// The process's soft and hard RLIMIT_NOFILE.
fn fd_limits(pid: u32) -> (u64, u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with a null new limit only reads the process's limit into `old`.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    (old.rlim_cur, old.rlim_max)
}

/// Sets the process's soft RLIMIT_NOFILE (the hard one stays).
fn set_soft_fd_limit(pid: u32, soft: u64) {
    let (_, hard) = fd_limits(pid);
    let new = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: prlimit reads `new` and writes no old limit (null).
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the broker's fd directory")
        .count() as u64
}

/// The broker leading the controller quorum, as `strata cluster status` says.
fn controller(cluster: &TestCluster) -> Option<usize> {
    let out = run_cli(
        &["--brokers", &cluster.native_addr(0), "cluster", "status"],
        None,
        Duration::from_secs(30),
    );
    let line = out.stdout.lines().find(|l| l.starts_with("controller:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[test]
fn a_broker_out_of_descriptors_opens_its_replicas_once_it_has_them_again() {
    let mut cluster = TestCluster::start(3, 1);
    create_replicated(&cluster.kafka_bootstrap(), "warm-up", 1, 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(id) = controller(&cluster) {
            break id;
        }
        assert!(Instant::now() < deadline, "no controller leader");
        std::thread::sleep(Duration::from_millis(250));
    };
    // Broker 1 unless it is broker 3 that must stay.
    let victim = if leader == 3 { 0 } else { leader - 1 };
    let staying = (0..3)
        .filter(|i| *i != victim)
        .map(|i| cluster.kafka_addr(i))
        .collect::<Vec<_>>()
        .join(",");
    let pid = cluster.node(2).pid();
    let (soft_before, _) = fd_limits(pid);
    set_soft_fd_limit(pid, open_fds(pid) + 4);
    create_replicated(&staying, TOPIC, PARTITIONS, 3);

    // Broker 3 tells of partitions it could not open or replicas it could not start.
    let stderr_path = cluster.data_dir(2).with_file_name("broker.stderr");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if text.contains("partition offline") || text.contains("replica not started") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker 3 never ran short of descriptors\n{}",
            cluster.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Elections of the partitions and (if it led) of the controller, while broker 3
    // cannot write its votes down.
    cluster.kill(victim);
    std::thread::sleep(Duration::from_secs(3));
    set_soft_fd_limit(pid, soft_before);

    // With one broker gone, a majority of every group includes broker 3.
    let p = producer(&staying, &[("message.timeout.ms", "60000")]);
    let deliveries: Vec<_> = (0..PARTITIONS)
        .map(|partition| {
            let v = format!("to-{partition}");
            p.send_result(
                FutureRecord::<(), _>::to(TOPIC)
                    .partition(partition)
                    .payload(&v),
            )
            .map_err(|(e, _)| e)
            .expect("queue a record")
        })
        .collect();
    let mut failed = Vec::new();
    for (partition, d) in deliveries.into_iter().enumerate() {
        match futures_lite::future::block_on(d) {
            Ok(Ok(_)) => {}
            other => failed.push((partition, format!("{other:?}"))),
        }
    }
    assert!(
        failed.is_empty(),
        "partitions that took no acks=all record without broker {}: {failed:?}\n{}",
        victim + 1,
        cluster.stderr_tails()
    );
    // The controller quorum commits with broker 3's replica.
    create_replicated(&staying, "after-the-shortage", 1, 2);
}
