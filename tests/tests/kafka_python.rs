//! kafka-python (pure Python, installed from PyPI by tools/test-all.sh) against the
//! broker's Kafka listener: the checks live in tests/python/kafka_python_check.py.

use std::process::Command;

use strata_tests::broker::TestBroker;

#[test]
fn kafka_python_admin_produce_consume_and_groups() {
    let broker = TestBroker::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/kafka_python_check.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(broker.kafka_addr())
        .output()
        .expect("run python3 (tools/test-all.sh installs kafka-python)");
    assert!(
        out.status.success(),
        "kafka-python checks failed ({}):\nstdout:\n{}\nstderr:\n{}\nbroker:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        broker.stderr_tail()
    );
}
