//! `strata dev-cluster`: starts N brokers, prints their addresses once they accept,
//! and on SIGTERM stops every one of them and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use strata_tests::broker::strata_bin;
use strata_tests::kafka_wire::KafkaWire;

/// How long the cluster has to print its bootstrap line (three brokers starting on a
/// loaded machine).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the cluster has to stop after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// Most stdout lines read before the bootstrap line must have come.
const LINES_MAX: usize = 1_000;

/// `node N: pid P, native A, kafka K, …` → (P, A, K).
fn node_line(line: &str) -> Option<(u32, String, String)> {
    let mut fields = line.strip_prefix("node ")?.split(", ");
    let pid = fields.next()?.split_once(": pid ")?.1.parse().ok()?;
    let (mut native, mut kafka) = (None, None);
    for f in fields {
        if let Some(a) = f.strip_prefix("native ") {
            native = Some(a.to_owned());
        } else if let Some(a) = f.strip_prefix("kafka ") {
            kafka = Some(a.to_owned());
        }
    }
    Some((pid, native?, kafka?))
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn dev_cluster_starts_three_brokers_and_stops_them_on_sigterm() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(strata_bin())
        .args(["dev-cluster", "--nodes", "3", "--cores", "1", "--data-dir"])
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strata dev-cluster");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(LINES_MAX) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut nodes = Vec::new();
    let bootstrap = loop {
        let left = READY_TIMEOUT.saturating_sub(started.elapsed());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no bootstrap line within {READY_TIMEOUT:?} ({e}); nodes so far {nodes:?}");
            }
        };
        if let Some(node) = node_line(&line) {
            nodes.push(node);
        }
        if let Some(list) = line.strip_prefix("kafka bootstrap: ") {
            break list.to_owned();
        }
    };
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let kafka: Vec<String> = bootstrap.split(',').map(str::to_owned).collect();
    assert_eq!(
        kafka,
        nodes.iter().map(|(_, _, k)| k.clone()).collect::<Vec<_>>()
    );
    for (pid, native, kafka) in &nodes {
        assert!(process_exists(*pid), "broker {pid} is not running");
        std::net::TcpStream::connect(native).expect("the native port accepts");
        let versions: ApiVersionsResponse =
            KafkaWire::connect(kafka).call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert_eq!(versions.error_code, 0);
        assert!(versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Metadata as i16));
    }
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if stopping.elapsed() > EXIT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dev-cluster did not exit within {EXIT_TIMEOUT:?} of SIGTERM");
        }
        std::thread::sleep(POLL);
    };
    assert!(status.success(), "dev-cluster exited with {status}");
    for (pid, _, _) in &nodes {
        assert!(!process_exists(*pid), "broker {pid} outlived dev-cluster");
    }
}
