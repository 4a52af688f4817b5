//! `TestCluster`: several real `strata serve` processes on 127.0.0.1 ports forming one
//! cluster (`--node-id`, `--cluster-listen`, `--voters`), each a [`TestBroker`] with
//! its own data dir, so every node can be killed, stopped and restarted alone.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use crate::broker::{claim_port, TestBroker};

/// Controller voters a cluster names: all its nodes up to this many, else the first
/// this many (as `strata dev-cluster` does).
pub const VOTERS_MAX: usize = 3;
/// Most nodes a test cluster runs (each is a process with its own ports).
pub const NODES_MAX: usize = 9;

/// A running cluster of `strata serve` processes; node `i` (0-based) has node id
/// `i + 1`. Dropping it SIGKILLs every node.
pub struct TestCluster {
    nodes: Vec<TestBroker>,
    /// Each node's cluster-listen port, claimed for the cluster's lifetime.
    cluster_ports: Vec<u16>,
    _cluster_port_locks: Vec<File>,
}

impl TestCluster {
    /// Starts `nodes` brokers with `cores` shards each and waits until every one
    /// accepts connections. All start before any is waited for: a cluster member may
    /// wait for its peers.
    pub fn start(nodes: usize, cores: usize) -> TestCluster {
        TestCluster::start_with(nodes, cores, |_| Vec::new())
    }

    /// As [`start`](Self::start), node `i` also given the flags `node_args(i)` (a
    /// `--rack`, say).
    pub fn start_with(
        nodes: usize,
        cores: usize,
        node_args: impl Fn(usize) -> Vec<String>,
    ) -> TestCluster {
        assert!(
            (1..=NODES_MAX).contains(&nodes),
            "a test cluster has 1 to {NODES_MAX} nodes, not {nodes}"
        );
        let (cluster_ports, locks): (Vec<u16>, Vec<File>) =
            (0..nodes).map(|_| claim_port()).unzip();
        let voters = voters_arg(&cluster_ports);
        let mut brokers: Vec<TestBroker> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let node_id = (i + 1).to_string();
                let listen = format!("127.0.0.1:{port}");
                let extra = node_args(i);
                let mut args = vec![
                    "--node-id",
                    &node_id,
                    "--cluster-listen",
                    &listen,
                    "--voters",
                    &voters,
                ];
                args.extend(extra.iter().map(String::as_str));
                TestBroker::spawn_with_args(cores, &args)
            })
            .collect();
        for b in &mut brokers {
            b.wait_until_ready();
        }
        TestCluster {
            nodes: brokers,
            cluster_ports,
            _cluster_port_locks: locks,
        }
    }

    /// How many nodes the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never: `start` needs at least one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node ids, by node index.
    pub fn node_ids(&self) -> Vec<u64> {
        (1..=self.nodes.len() as u64).collect()
    }

    /// Node `i`'s broker process.
    pub fn node(&mut self, i: usize) -> &mut TestBroker {
        &mut self.nodes[i]
    }

    /// SIGKILLs node `i` and waits until it is gone.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// SIGTERMs node `i` and waits for its clean exit; returns how long it took.
    pub fn stop(&mut self, i: usize) -> Duration {
        self.nodes[i].stop_gracefully()
    }

    /// Starts node `i` again on its data dir and ports; returns how long until it
    /// accepted connections.
    pub fn restart(&mut self, i: usize) -> Duration {
        self.nodes[i].restart()
    }

    /// Whether node `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// Every node's Kafka listener, comma separated (a `bootstrap.servers` value).
    pub fn kafka_bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(TestBroker::kafka_addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s Kafka listener.
    pub fn kafka_addr(&self, i: usize) -> String {
        self.nodes[i].kafka_addr()
    }

    /// Node `i`'s native listener.
    pub fn native_addr(&self, i: usize) -> String {
        self.nodes[i].addr()
    }

    /// Every node's native listener, for client configs.
    pub fn native_brokers(&self) -> Vec<String> {
        self.nodes.iter().map(TestBroker::addr).collect()
    }

    /// Node `i`'s cluster (broker-to-broker) listener.
    pub fn cluster_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.cluster_ports[i])
    }

    /// Node `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].data_dir()
    }

    /// Every node's stderr tail, for failure messages.
    pub fn stderr_tails(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, b)| format!("node {} {}", i + 1, b.stderr_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `--voters` for nodes with these cluster ports: node ids from 1, the first
/// `VOTERS_MAX`.
pub fn voters_arg(cluster_ports: &[u16]) -> String {
    cluster_ports
        .iter()
        .take(VOTERS_MAX)
        .enumerate()
        .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
        .collect::<Vec<_>>()
        .join(",")
}
