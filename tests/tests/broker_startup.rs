//! A second `strata serve` must not start on resources a running broker owns: its
//! listen port (the kernel would split connections between two brokers) or its data
//! dir (two brokers would overwrite each other's topic metadata and logs). It should
//! exit non-zero with an error naming what is taken.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::broker::{strata_bin, TestBroker};

/// How long the second broker gets to give up.
const SECOND_BROKER_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `strata serve` with `data_dir` and `listen`; returns its exit code and stderr,
/// or panics if it is still running after the timeout.
fn second_broker(data_dir: &std::path::Path, listen: &str) -> (Option<i32>, String) {
    let stderr_path = data_dir.with_extension("second.stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(strata_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", listen, "--metrics-addr", "off", "--cores", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn strata serve");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > SECOND_BROKER_EXIT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!(
                "a second broker (data dir {}, listen {listen}) is still running after {} ms; \
                 it should have refused to start\n{text}",
                data_dir.display(),
                SECOND_BROKER_EXIT_TIMEOUT.as_millis()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    (status.code(), text)
}

#[test]
fn a_second_broker_cannot_take_a_listen_port_in_use() {
    let broker = TestBroker::start();
    let other_dir = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = second_broker(&other_dir.path().join("data"), &broker.addr());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&broker.addr()),
        "the error names the address: {stderr}"
    );
}

#[test]
fn a_second_broker_cannot_take_a_data_dir_in_use() {
    let broker = TestBroker::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let (code, stderr) = second_broker(&broker.data_dir(), &format!("127.0.0.1:{port}"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&broker.data_dir().display().to_string()),
        "the error names the data dir: {stderr}"
    );
}
