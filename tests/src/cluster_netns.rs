//! `NetnsCluster`: a cluster of real `strata serve` processes, each in its own Linux
//! network namespace, so a test can cut one broker off from the others by taking its
//! link down — a network partition, not a dead process.
//!
//! Each broker has two links, both veth pairs ending on bridges inside one more
//! namespace (the "switch", so the host's own bridge firewalling never sees the
//! traffic):
//! - the replication link (10.213.S.N): its cluster listener, which carries Raft
//!   traffic and the controller quorum; [`NetnsCluster::cut`] takes it down;
//! - the client link (10.214.S.N): its Kafka and native listeners, which the test
//!   process reaches through a third veth from its own namespace, and which stays up,
//!   so a test can watch a cut-off leader stop acknowledging.
//!
//! Names carry a per-run id (the test process id), so runs never share a namespace;
//! dropping the cluster kills every broker and deletes every namespace (which takes
//! the veths and bridges with it), also when the test failed. Needs root and
//! `ip` (iproute2): [`unavailable`] says why a machine cannot run it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::{strata_bin, EXIT_TIMEOUT, READY_TIMEOUT};

/// Ports every broker uses inside its own namespace.
const KAFKA_PORT: u16 = 9092;
const NATIVE_PORT: u16 = 9094;
const CLUSTER_PORT: u16 = 9093;
/// Most brokers a namespaced cluster runs (one address byte each).
pub const NODES_MAX: usize = 9;
/// Bytes of broker stderr quoted in failure messages.
const STDERR_QUOTE_BYTES_MAX: u64 = 16 * 1024;
/// How long one `ip` command may take.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why network namespaces cannot be used here, or `None` when they can (probed by
/// making and deleting one).
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root (the test runs unprivileged)".into());
    }
    let probe = format!("strata-probe-{}", std::process::id());
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(format!("`ip netns add` failed: {e}"));
    }
    let veth_ok = ip(&[
        "-n", &probe, "link", "add", "spv", "type", "veth", "peer", "name", "spv-peer",
    ]);
    let _ = ip(&["netns", "del", &probe]);
    veth_ok
        .err()
        .map(|e| format!("veth links cannot be made in a namespace: {e}"))
}

/// Runs `ip ARGS`, bounded by [`IP_TIMEOUT`].
fn ip(args: &[&str]) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            return Err(format!("ip {}: {status}: {}", args.join(" "), err.trim()));
        }
        if started.elapsed() > IP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "ip {} did not finish within {IP_TIMEOUT:?}",
                args.join(" ")
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `ip ARGS` and fails the test if it fails.
fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// Deletes the namespaces (and kills the brokers in them) that an earlier run left
/// behind when it was killed before its drop ran: `strata-<run>-…` where no process
/// `<run>` is alive.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in listed.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(run) = name
            .strip_prefix("strata-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|r| r.parse::<u32>().ok())
        else {
            continue;
        };
        if run == std::process::id() % 100_000 || Path::new(&format!("/proc/{run}")).exists() {
            continue;
        }
        if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<libc::pid_t>() {
                    // SAFETY: kill(2) with a pid read from `ip netns pids`; no memory involved.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = ip(&["netns", "del", name]);
    }
}

/// One broker in its namespace.
struct NetnsBroker {
    ns: String,
    child: Option<Child>,
    data_dir: PathBuf,
    stderr_path: PathBuf,
    args: Vec<String>,
    kafka: SocketAddr,
}

/// A running cluster in network namespaces; node `i` (0-based) has node id `i + 1`.
pub struct NetnsCluster {
    run: u32,
    /// The subnet byte S of 10.213.S.0/24 and 10.214.S.0/24.
    subnet: u8,
    switch_ns: String,
    /// Namespaces made so far, deleted on drop.
    namespaces: Vec<String>,
    nodes: Vec<NetnsBroker>,
    _dir: tempfile::TempDir,
}

impl NetnsCluster {
    /// Makes the namespaces and links and starts `nodes` brokers with one shard each
    /// (every node a voter), waiting until each accepts Kafka connections. Check
    /// [`unavailable`] first.
    pub fn start(nodes: usize) -> NetnsCluster {
        assert!(
            (1..=NODES_MAX).contains(&nodes),
            "a namespaced cluster has 1 to {NODES_MAX} nodes"
        );
        remove_stale_namespaces();
        let run = std::process::id() % 100_000;
        let subnet = 1 + (std::process::id() % 250) as u8;
        let dir = tempfile::Builder::new()
            .prefix("strata-netns-")
            .tempdir()
            .expect("temp dir");
        let mut c = NetnsCluster {
            run,
            subnet,
            switch_ns: format!("strata-{run}-sw"),
            namespaces: Vec::new(),
            nodes: Vec::new(),
            _dir: dir,
        };
        c.make_switch();
        let voters: Vec<String> = (0..nodes)
            .map(|i| format!("{}@{}:{CLUSTER_PORT}", i + 1, c.replication_ip(i)))
            .collect();
        let voters = voters.join(",");
        for i in 0..nodes {
            c.make_node_links(i);
            let data_dir = c._dir.path().join(format!("n{}", i + 1));
            let stderr_path = c._dir.path().join(format!("n{}.stderr", i + 1));
            let client = c.client_ip(i);
            let args = vec![
                "serve".to_owned(),
                "--log-level".to_owned(),
                "info".to_owned(),
                "--metrics-addr".to_owned(),
                "off".to_owned(),
                "--cores".to_owned(),
                "1".to_owned(),
                "--node-id".to_owned(),
                (i + 1).to_string(),
                "--cluster-listen".to_owned(),
                format!("{}:{CLUSTER_PORT}", c.replication_ip(i)),
                "--voters".to_owned(),
                voters.clone(),
                "--listen".to_owned(),
                format!("{client}:{NATIVE_PORT}"),
                "--kafka-listen".to_owned(),
                format!("{client}:{KAFKA_PORT}"),
                "--data-dir".to_owned(),
                data_dir.display().to_string(),
            ];
            c.nodes.push(NetnsBroker {
                ns: c.node_ns(i),
                child: None,
                data_dir,
                stderr_path,
                args,
                kafka: format!("{client}:{KAFKA_PORT}").parse().expect("address"),
            });
        }
        for i in 0..nodes {
            c.spawn(i);
        }
        for i in 0..nodes {
            c.wait_ready(i);
        }
        c
    }

    fn node_ns(&self, i: usize) -> String {
        format!("strata-{}-n{}", self.run, i + 1)
    }

    fn replication_ip(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.subnet, i + 1)
    }

    fn client_ip(&self, i: usize) -> String {
        format!("10.214.{}.{}", self.subnet, i + 1)
    }

    /// The host end (in the switch) of node `i`'s replication link.
    fn replication_port(&self, i: usize) -> String {
        format!("r{}h{}", i + 1, self.run)
    }

    fn add_ns(&mut self, ns: &str) {
        ip_ok(&["netns", "add", ns]);
        self.namespaces.push(ns.to_owned());
        ip_ok(&["-n", ns, "link", "set", "lo", "up"]);
    }

    /// The switch namespace with its two bridges, and the test's own link to the
    /// client bridge (10.214.S.254).
    fn make_switch(&mut self) {
        let sw = self.switch_ns.clone();
        self.add_ns(&sw);
        for br in ["brr", "brc"] {
            ip_ok(&["-n", &sw, "link", "add", br, "type", "bridge"]);
            ip_ok(&["-n", &sw, "link", "set", br, "up"]);
        }
        let host = format!("st{}", self.run);
        let peer = format!("st{}p", self.run);
        ip_ok(&["link", "add", &host, "type", "veth", "peer", "name", &peer]);
        ip_ok(&["link", "set", &peer, "netns", &sw]);
        ip_ok(&["-n", &sw, "link", "set", &peer, "master", "brc", "up"]);
        let addr = format!("10.214.{}.254/24", self.subnet);
        ip_ok(&["addr", "add", &addr, "dev", &host]);
        ip_ok(&["link", "set", &host, "up"]);
    }

    /// Node `i`'s namespace and its two links to the switch.
    fn make_node_links(&mut self, i: usize) {
        let ns = self.node_ns(i);
        self.add_ns(&ns);
        let sw = self.switch_ns.clone();
        for (kind, bridge, ip_addr) in [
            ("r", "brr", self.replication_ip(i)),
            ("c", "brc", self.client_ip(i)),
        ] {
            let host = format!("{kind}{}h{}", i + 1, self.run);
            let inside = format!("{kind}{}p{}", i + 1, self.run);
            ip_ok(&[
                "-n", &sw, "link", "add", &host, "type", "veth", "peer", "name", &inside,
            ]);
            ip_ok(&["-n", &sw, "link", "set", &inside, "netns", &ns]);
            ip_ok(&["-n", &sw, "link", "set", &host, "master", bridge, "up"]);
            let cidr = format!("{ip_addr}/24");
            ip_ok(&["-n", &ns, "addr", "add", &cidr, "dev", &inside]);
            ip_ok(&["-n", &ns, "link", "set", &inside, "up"]);
        }
    }

    fn spawn(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        assert!(n.child.is_none(), "node {} already running", i + 1);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.stderr_path)
            .expect("open broker stderr log");
        let bin = strata_bin();
        let child = Command::new("ip")
            .args(["netns", "exec", &n.ns])
            .arg(bin)
            .args(&n.args)
            .env_remove("STRATA_BROKERS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn strata serve in its namespace");
        n.child = Some(child);
    }

    fn wait_ready(&mut self, i: usize) {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            let n = &mut self.nodes[i];
            if let Some(status) = n.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                n.child = None;
                panic!(
                    "node {} exited with {status} before accepting connections\n{}",
                    i + 1,
                    self.stderr_tails()
                );
            }
            if TcpStream::connect_timeout(&n.kafka, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "node {} did not accept Kafka connections within {READY_TIMEOUT:?}\n{}",
            i + 1,
            self.stderr_tails()
        );
    }

    /// How many nodes the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never: `start` needs one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s Kafka listener (reachable from the test's namespace).
    pub fn kafka_addr(&self, i: usize) -> String {
        self.nodes[i].kafka.to_string()
    }

    /// Every node's Kafka listener, comma separated.
    pub fn kafka_bootstrap(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.kafka_addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].data_dir.clone()
    }

    /// Takes node `i`'s replication link down: it can no longer reach the other
    /// brokers (nor they it); clients still reach it.
    pub fn cut(&self, i: usize) {
        ip_ok(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &self.replication_port(i),
            "down",
        ]);
    }

    /// Brings node `i`'s replication link back up.
    pub fn heal(&self, i: usize) {
        ip_ok(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &self.replication_port(i),
            "up",
        ]);
    }

    /// SIGTERMs node `i` and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        self.signal_and_wait(i, libc::SIGTERM);
    }

    fn signal_and_wait(&mut self, i: usize, signal: libc::c_int) {
        let Some(mut child) = self.nodes[i].child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child, not reaped yet (we hold its `Child`).
            unsafe { libc::kill(pid, signal) };
        }
        let started = Instant::now();
        while started.elapsed() < EXIT_TIMEOUT {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Every node's stderr tail, for failure messages.
    pub fn stderr_tails(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut text = String::new();
                if let Ok(mut f) = File::open(&n.stderr_path) {
                    let len = f.metadata().map_or(0, |m| m.len());
                    if f.seek(SeekFrom::Start(len.saturating_sub(STDERR_QUOTE_BYTES_MAX)))
                        .is_ok()
                    {
                        let mut raw = Vec::new();
                        let _ = f.read_to_end(&mut raw);
                        text = String::from_utf8_lossy(&raw).into_owned();
                    }
                }
                format!("--- node {} stderr ---\n{text}--- end ---", i + 1)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for NetnsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.signal_and_wait(i, libc::SIGKILL);
        }
        // The test's own veth lives in this namespace; its peer goes with the switch.
        let _ = ip(&["link", "del", &format!("st{}", self.run)]);
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
