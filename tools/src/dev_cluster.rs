//! `strata dev-cluster`: a local cluster of N brokers on free 127.0.0.1 ports in one
//! command, for trying strata (like `rpk container start`). Each broker is a child
//! `strata serve` process with its own data dir; their log lines are printed with
//! the node id in front. Ctrl-C (or SIGTERM) stops every broker cleanly.
//!
//! The addresses go to stdout, one `key: value` line each, once every broker accepts
//! connections; children's logs and our own progress go to stderr.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

/// Most brokers one dev cluster runs.
pub const NODES_MAX: usize = 16;
/// Controller voters: the first this many brokers (a quorum of 3 survives one loss).
pub const VOTERS_MAX: usize = 3;
/// How long every broker has to accept connections after it was started.
const READY_TIMEOUT_MS: u64 = 60_000;
/// How long the brokers have to stop after SIGTERM before they are SIGKILLed.
const STOP_TIMEOUT_MS: u64 = 30_000;
/// How often the children and the signal flag are looked at.
const POLL_MS: u64 = 50;
/// How long one readiness probe waits for a connection.
const CONNECT_TIMEOUT_MS: u64 = 200;
/// Longest child log line printed whole; longer lines are cut (they are logs, not data).
const LOG_LINE_BYTES_MAX: usize = 64 * 1024;

#[derive(Args)]
pub struct DevClusterArgs {
    /// Brokers to run (node ids 1..=N; the first 3 are the controller voters).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Parent of the brokers' data dirs (node-1, node-2, …); default: a fresh
    /// directory under the system temp dir, printed at start.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shards (cores) per broker.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Log filter passed to every broker (`strata serve --log-level`).
    #[arg(long, default_value = "warn")]
    log_level: String,
}

/// One broker of the cluster: its addresses and, while it runs, its process.
struct Node {
    id: usize,
    native: SocketAddr,
    kafka: SocketAddr,
    cluster: SocketAddr,
    data_dir: PathBuf,
    child: Option<Child>,
}

pub fn run(args: DevClusterArgs) -> anyhow::Result<()> {
    if !(1..=NODES_MAX).contains(&args.nodes) {
        bail!("--nodes {} is not from 1 to {NODES_MAX}", args.nodes);
    }
    let data_root = match args.data_dir.clone() {
        Some(d) => d,
        None => fresh_temp_dir()?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
    }
    let ports = free_ports(args.nodes * 3)?;
    let mut nodes: Vec<Node> = (0..args.nodes)
        .map(|i| {
            let at = |k: usize| SocketAddr::from(([127, 0, 0, 1], ports[i * 3 + k]));
            Node {
                id: i + 1,
                native: at(0),
                kafka: at(1),
                cluster: at(2),
                data_dir: data_root.join(format!("node-{}", i + 1)),
                child: None,
            }
        })
        .collect();
    let voters = nodes
        .iter()
        .take(VOTERS_MAX)
        .map(|n| format!("{}@{}", n.id, n.cluster))
        .collect::<Vec<_>>()
        .join(",");
    eprintln!(
        "strata dev-cluster: {} brokers, data in {}",
        nodes.len(),
        data_root.display()
    );
    let exe = std::env::current_exe().context("cannot find the strata binary")?;
    for i in 0..nodes.len() {
        if let Err(e) = spawn(&exe, &mut nodes[i], &voters, &args) {
            stop_all(&mut nodes);
            return Err(e);
        }
    }
    if let Err(e) = wait_ready(&mut nodes, &stop) {
        stop_all(&mut nodes);
        return Err(e);
    }
    if !stop.load(Ordering::Acquire) {
        print_addresses(&nodes);
    }
    while !stop.load(Ordering::Acquire) {
        report_exits(&mut nodes);
        if nodes.iter().all(|n| n.child.is_none()) {
            bail!("every broker exited; see their logs above");
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
    eprintln!("strata dev-cluster: stopping");
    stop_all(&mut nodes);
    eprintln!("strata dev-cluster: stopped");
    Ok(())
}

/// A new directory under the system temp dir.
fn fresh_temp_dir() -> anyhow::Result<PathBuf> {
    let since_epoch_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let dir = std::env::temp_dir().join(format!(
        "strata-dev-cluster-{}-{since_epoch_ms}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// `count` distinct free 127.0.0.1 ports: all bound at once so none repeats, then
/// released for the brokers. (Another process could take one in between; the
/// broker then fails to bind and says so.)
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free ports on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<std::io::Result<Vec<u16>>>()
        .context("cannot read a bound port")
}

fn spawn(
    exe: &PathBuf,
    node: &mut Node,
    voters: &str,
    args: &DevClusterArgs,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&node.data_dir)
        .with_context(|| format!("cannot create {}", node.data_dir.display()))?;
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .arg("--node-id")
        .arg(node.id.to_string())
        .arg("--cluster-listen")
        .arg(node.cluster.to_string())
        .arg("--voters")
        .arg(voters)
        .arg("--listen")
        .arg(node.native.to_string())
        .arg("--kafka-listen")
        .arg(node.kafka.to_string())
        .arg("--metrics-addr")
        .arg("off")
        .arg("--data-dir")
        .arg(&node.data_dir)
        .arg("--cores")
        .arg(args.cores.to_string())
        .arg("--log-level")
        .arg(&args.log_level)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the terminal reaches only this process,
        // which then stops each broker once (a broker takes a second signal as "exit
        // now" and skips its clean shutdown).
        .process_group(0);
    // SAFETY: runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe. If this process dies without stopping its brokers (SIGKILL),
    // the kernel sends them SIGTERM, so no broker outlives the cluster.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start broker {}", node.id))?;
    if let Some(out) = child.stdout.take() {
        prefix_lines(node.id, out);
    }
    if let Some(err) = child.stderr.take() {
        prefix_lines(node.id, err);
    }
    node.child = Some(child);
    Ok(())
}

/// Prints `pipe`'s lines to stderr as `[node N] line`, on a thread of its own (it
/// ends when the child closes the pipe).
fn prefix_lines(id: usize, pipe: impl Read + Send + 'static) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader
                .by_ref()
                .take(LOG_LINE_BYTES_MAX as u64)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    eprintln!("[node {id}] {}", text.trim_end_matches(['\n', '\r']));
                }
            }
        }
    });
}

/// Waits until every broker's native and Kafka listeners accept connections; fails
/// if one exits first or the time runs out. Returns early on a stop signal.
fn wait_ready(nodes: &mut [Node], stop: &AtomicBool) -> anyhow::Result<()> {
    let started = Instant::now();
    let probe = |addr: &SocketAddr| {
        TcpStream::connect_timeout(addr, Duration::from_millis(CONNECT_TIMEOUT_MS)).is_ok()
    };
    let mut ready = vec![false; nodes.len()];
    while !ready.iter().all(|r| *r) {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        for (node, ready) in nodes.iter_mut().zip(ready.iter_mut()) {
            if let Some(status) = exited(node) {
                bail!("broker {} exited with {status} before it accepted connections; see its log above", node.id);
            }
            if !*ready && probe(&node.native) && probe(&node.kafka) {
                *ready = true;
            }
        }
        if started.elapsed() > Duration::from_millis(READY_TIMEOUT_MS) {
            bail!("the brokers did not all accept connections within {READY_TIMEOUT_MS} ms");
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
    Ok(())
}

/// The cluster's addresses, on stdout.
fn print_addresses(nodes: &[Node]) {
    for n in nodes {
        let pid = n.child.as_ref().map_or(0, Child::id);
        println!(
            "node {}: pid {pid}, native {}, kafka {}, cluster {}, data {}",
            n.id,
            n.native,
            n.kafka,
            n.cluster,
            n.data_dir.display()
        );
    }
    let join = |f: fn(&Node) -> SocketAddr| {
        nodes
            .iter()
            .map(|n| f(n).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    println!("native brokers: {}", join(|n| n.native));
    println!("kafka bootstrap: {}", join(|n| n.kafka));
    println!("cluster ready; Ctrl-C stops it");
}

/// The exit status of a broker that is no longer running (and forgets its process).
fn exited(node: &mut Node) -> Option<ExitStatus> {
    let status = node.child.as_mut()?.try_wait().ok().flatten()?;
    node.child = None;
    Some(status)
}

/// Reports brokers that exited while the cluster runs.
fn report_exits(nodes: &mut [Node]) {
    for node in nodes {
        if let Some(status) = exited(node) {
            eprintln!(
                "strata dev-cluster: broker {} exited with {status}; the others keep running",
                node.id
            );
        }
    }
}

/// SIGTERM to every running broker, a bounded wait for them to stop, then SIGKILL to
/// any still running.
fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter() {
        if let Some(child) = &node.child {
            signal(child, libc::SIGTERM);
        }
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(STOP_TIMEOUT_MS) {
        for node in nodes.iter_mut() {
            if let Some(status) = exited(node) {
                if !status.success() {
                    eprintln!(
                        "strata dev-cluster: broker {} stopped with {status}",
                        node.id
                    );
                }
            }
        }
        if nodes.iter().all(|n| n.child.is_none()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
    for node in nodes.iter_mut() {
        if let Some(mut child) = node.child.take() {
            eprintln!(
                "strata dev-cluster: broker {} did not stop within {STOP_TIMEOUT_MS} ms; killing it",
                node.id
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) on our own child's pid; it is not reaped yet (we hold its
    // `Child` and have not waited it), so the pid cannot name another process.
    unsafe {
        libc::kill(pid, signal);
    }
}
