//! kafkajs (JavaScript, installed from the npm registry by tools/test-all.sh) against
//! the broker's Kafka listener: the checks live in tests/js/kafkajs_check.js.

use std::process::Command;

use strata_tests::broker::TestBroker;

#[test]
fn kafkajs_admin_idempotent_produce_and_group_commits() {
    let broker = TestBroker::start();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/js");
    let out = Command::new("node")
        .arg("kafkajs_check.js")
        .arg(broker.kafka_addr())
        .current_dir(dir)
        .output()
        .expect("run node (tools/test-all.sh installs kafkajs in tests/js)");
    assert!(
        out.status.success(),
        "kafkajs checks failed ({}):\nstdout:\n{}\nstderr:\n{}\nbroker:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        broker.stderr_tail()
    );
}
