//! A real `strata serve` process for cross-process tests, and the `strata` CLI.
//!
//! [`TestBroker`] runs the broker binary on a free 127.0.0.1 port in a temp data dir,
//! waits until it accepts, and can stop it gracefully (SIGTERM), kill it (SIGKILL) and
//! restart it on the same dir and port. Its stderr goes to a file that failure
//! messages quote. Dropping it kills the process. [`run_cli`] runs one `strata`
//! command with a deadline.
//!
//! Ports: `bind(127.0.0.1:0)` picks a free port, which is then released for the
//! broker to bind. The broker binds with SO_REUSEPORT, so two brokers on one port
//! would silently share it; each picked port is therefore also claimed by an
//! advisory lock file under the temp dir, held for the `TestBroker`'s life, so that
//! tests running in parallel processes never pick the same port (not even across a
//! restart, when the port is briefly unbound). A restart also waits until the old
//! process's listening socket is gone, which takes a few milliseconds after a SIGKILL.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to accept connections after its start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a broker may take to exit after SIGTERM or SIGKILL.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default deadline of one CLI command.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Shards of a test broker: two, so requests cross shards on this 2-core machine.
pub const CORES_DEFAULT: usize = 2;
/// Bytes of broker stderr quoted in failure messages.
const STDERR_QUOTE_BYTES_MAX: u64 = 16 * 1024;
/// Ports tried before giving up on finding one that no other test holds.
const PORT_ATTEMPTS_MAX: usize = 100;
/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The `strata` binary next to the running test executable (tests live in
/// `target/<profile>/deps/`, binaries in `target/<profile>/`).
pub fn strata_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("strata"))
        .expect("test executable lives in target/<profile>/deps");
    assert!(
        bin.is_file(),
        "the strata binary is missing at {}; build it first with `cargo build -p strata` \
         (tools/test-all.sh and cargo nextest build it for you)",
        bin.display()
    );
    bin
}

/// A free 127.0.0.1 port for a test's own use (a metrics listener, say), and the
/// lock that keeps other test brokers off it while the test holds it.
pub fn claim_port() -> (u16, File) {
    claim_free_port(&std::env::temp_dir().join("strata-test-ports"))
}

/// A free 127.0.0.1 port, and the lock file that claims it for this process.
fn claim_free_port(lock_dir: &Path) -> (u16, File) {
    std::fs::create_dir_all(lock_dir).expect("create port lock dir");
    for _ in 0..PORT_ATTEMPTS_MAX {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let path = lock_dir.join(format!("{port}.lock"));
        let file = File::create(&path).expect("create port lock file");
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if locked {
            return (port, file);
        }
    }
    panic!("no free port after {PORT_ATTEMPTS_MAX} attempts");
}

/// Whether a TCP socket in state LISTEN is bound to `addr` (an IPv4 address), from
/// `/proc/net/tcp`. Connections left on the port (TIME-WAIT, FIN-WAIT) do not count.
fn is_listening(addr: SocketAddr) -> bool {
    const TCP_LISTEN: &str = "0A";
    let SocketAddr::V4(v4) = addr else {
        panic!("test brokers listen on IPv4 addresses, not {addr}");
    };
    // /proc/net/tcp prints the address as the hex of its in-memory u32 (native order).
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let (local_field, state) = (fields.nth(1), fields.nth(1));
        local_field == Some(local.as_str()) && state == Some(TCP_LISTEN)
    })
}

/// One `strata serve` process (or none, between `kill` and `restart`).
pub struct TestBroker {
    child: Option<Child>,
    addr: SocketAddr,
    /// The Kafka protocol listener.
    kafka_addr: SocketAddr,
    cores: usize,
    /// Holds the data dir and the stderr log.
    dir: tempfile::TempDir,
    stderr_path: PathBuf,
    /// Starts of this broker so far (1 after `start`).
    starts: u32,
    /// More `strata serve` arguments, given at every start.
    extra_args: Vec<String>,
    /// RLIMIT_NOFILE (soft and hard) of the broker process, when limited.
    open_files_max: Option<u64>,
    _port_locks: [File; 2],
}

impl TestBroker {
    /// Starts a broker with [`CORES_DEFAULT`] shards and waits until it accepts.
    pub fn start() -> TestBroker {
        TestBroker::start_with_cores(CORES_DEFAULT)
    }

    /// Starts a broker with `cores` shards and waits until it accepts.
    pub fn start_with_cores(cores: usize) -> TestBroker {
        TestBroker::start_with_args(cores, &[])
    }

    /// Starts a broker with `cores` shards and more `strata serve` arguments.
    pub fn start_with_args(cores: usize, extra_args: &[&str]) -> TestBroker {
        TestBroker::start_prepared(cores, extra_args, None, |_| {})
    }

    /// Like `start_with_args`, with the process's descriptor limit (soft and hard,
    /// so the broker cannot raise it) set to `fd_limit` before it runs.
    pub fn start_with_fd_limit(
        cores: usize,
        extra_args: &[&str],
        fd_limit: Option<u64>,
    ) -> TestBroker {
        TestBroker::start_prepared(cores, extra_args, fd_limit, |_| {})
    }

    /// Starts a broker like [`TestBroker::start_with_args`], after `prepare(data_dir)`
    /// made its (empty) data dir ready (a test mounts a small filesystem there, say),
    /// and with its descriptor limit (soft and hard) at `open_files_max` when given.
    pub fn start_prepared(
        cores: usize,
        extra_args: &[&str],
        open_files_max: Option<u64>,
        prepare: impl FnOnce(&Path),
    ) -> TestBroker {
        let mut broker = TestBroker::unstarted(cores, extra_args);
        broker.open_files_max = open_files_max;
        prepare(&broker.data_dir());
        broker.spawn();
        broker
    }

    /// Starts a broker like [`TestBroker::start_with_args`] without waiting for it to
    /// accept (a cluster starts all its nodes first); then call `wait_until_ready`.
    pub fn spawn_with_args(cores: usize, extra_args: &[&str]) -> TestBroker {
        let mut broker = TestBroker::unstarted(cores, extra_args);
        broker.spawn_process();
        broker
    }

    /// Waits until the broker accepts, failing early if the process exits.
    pub fn wait_until_ready(&mut self) {
        self.wait_ready();
    }

    /// A broker with its ports and data dir claimed, not started.
    fn unstarted(cores: usize, extra_args: &[&str]) -> TestBroker {
        let dir = tempfile::Builder::new()
            .prefix("strata-broker-test-")
            .tempdir()
            .expect("create temp dir");
        let lock_dir = std::env::temp_dir().join("strata-test-ports");
        let (port, port_lock) = claim_free_port(&lock_dir);
        let (kafka_port, kafka_port_lock) = claim_free_port(&lock_dir);
        let broker = TestBroker {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            kafka_addr: SocketAddr::from(([127, 0, 0, 1], kafka_port)),
            cores,
            stderr_path: dir.path().join("broker.stderr"),
            dir,
            starts: 0,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            open_files_max: None,
            _port_locks: [port_lock, kafka_port_lock],
        };
        std::fs::create_dir_all(broker.data_dir()).expect("create the data dir");
        broker
    }

    /// `host:port` of the broker.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `host:port` of the broker's Kafka protocol listener.
    pub fn kafka_addr(&self) -> String {
        self.kafka_addr.to_string()
    }

    /// The broker list for client configs.
    pub fn brokers(&self) -> Vec<String> {
        vec![self.addr()]
    }

    /// The broker's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A partition's directory in the data dir.
    pub fn partition_dir(&self, topic: &str, partition: u32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    /// Whether the broker process is running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_ready();
    }

    /// Starts the process without waiting for it to accept.
    fn spawn_process(&mut self) {
        assert!(self.child.is_none(), "broker {} already running", self.addr);
        self.starts += 1;
        let mut stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open broker stderr log");
        writeln!(stderr, "---- test: start {} ----", self.starts).expect("write stderr log");
        let mut command = Command::new(strata_bin());
        if let Some(n) = self.open_files_max {
            use std::os::unix::process::CommandExt;
            // SAFETY: the hook runs in the forked child before exec and only calls
            // setrlimit, which is async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--kafka-listen")
            .arg(self.kafka_addr.to_string())
            .args(
                (!self.extra_args.iter().any(|a| a == "--metrics-addr"))
                    .then_some(["--metrics-addr", "off"])
                    .into_iter()
                    .flatten(),
            )
            .arg("--cores")
            .arg(self.cores.to_string())
            .args(&self.extra_args)
            .env_remove("STRATA_BROKERS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn strata serve");
        self.child = Some(child);
    }

    /// Waits until the port accepts, failing early if the process exits.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "broker at {} exited with {status} before accepting connections\n{}",
                    self.addr,
                    self.stderr_tail()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        panic!(
            "broker at {} did not accept connections within {} ms\n{}",
            self.addr,
            READY_TIMEOUT.as_millis(),
            self.stderr_tail()
        );
    }

    /// The broker's process id (it is running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is running").id()
    }

    /// Sends `signal` to the broker process (it is running).
    pub fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("broker is running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet
        // (we hold its `Child`), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Waits for the process to exit, within [`EXIT_TIMEOUT`] (panics after it,
    /// naming `why`).
    pub fn wait_exit(&mut self, why: &str) -> ExitStatus {
        let started = Instant::now();
        let child = self.child.as_mut().expect("broker is running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait on broker") {
                self.child = None;
                return status;
            }
            if started.elapsed() > EXIT_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "broker at {} did not exit within {} ms after {why}\n{}",
                    self.addr,
                    EXIT_TIMEOUT.as_millis(),
                    self.stderr_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGTERM, then waits for a successful exit that reports a clean stop.
    /// Returns how long the shutdown took.
    pub fn stop_gracefully(&mut self) -> Duration {
        let started = Instant::now();
        self.signal(libc::SIGTERM);
        let status = self.wait_exit("SIGTERM");
        let took = started.elapsed();
        let tail = self.stderr_tail();
        assert!(
            status.success(),
            "broker at {} exited with {status} after SIGTERM\n{tail}",
            self.addr
        );
        let last_start = tail.rsplit("---- test: start").next().unwrap_or_default();
        assert!(
            last_start.contains("strata: stopped cleanly"),
            "broker at {} exited without `strata: stopped cleanly`\n{tail}",
            self.addr
        );
        took
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit("SIGKILL");
    }

    /// Starts the broker again on the same data dir and port; returns how long it took
    /// until it accepted connections.
    pub fn restart(&mut self) -> Duration {
        let started = Instant::now();
        self.wait_port_free();
        self.spawn();
        started.elapsed()
    }

    /// Waits until nothing listens on the port any more. A killed broker's listening
    /// sockets outlive its process by a few milliseconds (the kernel tears its
    /// io_uring down asynchronously); as the broker binds with SO_REUSEPORT, a new one
    /// started in that window would join the dying socket's group, and connections
    /// the kernel hands to the dying socket are reset.
    fn wait_port_free(&self) {
        let started = Instant::now();
        while is_listening(self.addr) || is_listening(self.kafka_addr) {
            assert!(
                started.elapsed() < EXIT_TIMEOUT,
                "something still listens on {} {} ms after the broker exited",
                self.addr,
                started.elapsed().as_millis()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Starts the broker again and SIGKILLs it `delay` later, whatever it is doing by
    /// then (opening and recovering logs, or serving); it is then not running.
    pub fn restart_and_kill_after(&mut self, delay: Duration) {
        self.wait_port_free();
        self.spawn_process();
        std::thread::sleep(delay);
        self.kill();
    }

    /// The end of the broker's stderr (all its starts), for failure messages.
    pub fn stderr_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.stderr_path) {
            let len = f.metadata().map_or(0, |m| m.len());
            let from = len.saturating_sub(STDERR_QUOTE_BYTES_MAX);
            if f.seek(SeekFrom::Start(from)).is_ok() {
                let mut raw = Vec::new();
                let _ = f.read_to_end(&mut raw);
                text = String::from_utf8_lossy(&raw).into_owned();
            }
        }
        format!(
            "--- broker stderr ({}) ---\n{text}--- end ---",
            self.stderr_path.display()
        )
    }

    /// Runs `strata --brokers <this broker> ARGS...` with [`CLI_TIMEOUT`].
    pub fn cli(&self, args: &[&str], stdin: Option<&[u8]>) -> CliOutput {
        let addr = self.addr.to_string();
        let mut full = vec!["--brokers", addr.as_str()];
        full.extend_from_slice(args);
        run_cli(&full, stdin, CLI_TIMEOUT)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one CLI command did.
#[derive(Debug)]
pub struct CliOutput {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Panics with the whole output unless the command exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "command failed: {self}");
        self
    }

    /// Panics with the whole output unless the command failed with exit code 1 and an
    /// `error: ` line, and no panic or backtrace.
    pub fn assert_user_error(&self) -> &Self {
        assert_eq!(self.status.code(), Some(1), "expected exit code 1: {self}");
        assert!(
            self.stderr.starts_with("error: "),
            "expected an `error: ` line: {self}"
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("stack backtrace"),
            "a user error must not panic: {self}"
        );
        self
    }
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`strata {}` exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `strata ARGS...`, feeding `stdin` (or nothing), killing it after `timeout`.
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> CliOutput {
    let mut child = Command::new(strata_bin())
        .args(args)
        .env_remove("STRATA_BROKERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let input = stdin.map(<[u8]>::to_vec).unwrap_or_default();
    let mut child_stdin = child.stdin.take().expect("piped stdin");
    // Writes and closes stdin on its own thread so a full pipe cannot deadlock us.
    let writer = std::thread::spawn(move || {
        let _ = child_stdin.write_all(&input);
    });
    let out = read_on_thread(child.stdout.take().expect("piped stdout"));
    let err = read_on_thread(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait on strata") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`strata {}` did not finish within {} ms",
                args.join(" "),
                timeout.as_millis()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let _ = writer.join();
    CliOutput {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn read_on_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut raw = Vec::new();
        let _ = pipe.read_to_end(&mut raw);
        String::from_utf8_lossy(&raw).into_owned()
    })
}

/// How long [`read_range`] polls before it gives up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// One consumed record, copied out of the fetched batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub partition: u32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Reads `topic`/`partition` through the client from offset `from` up to `end`
/// (exclusive), within [`READ_TIMEOUT`]; records at or past `end` are dropped.
pub fn read_range(
    brokers: &[String],
    topic: &str,
    partition: u32,
    from: i64,
    end: i64,
) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    if end <= from {
        return out;
    }
    let mut consumer = strata_client::Consumer::connect(strata_client::ConsumerConfig {
        brokers: brokers.to_vec(),
        ..strata_client::ConsumerConfig::default()
    })
    .expect("consumer connects");
    consumer.assign(&[(topic, partition)]);
    consumer.seek(topic, partition, from).expect("seek");
    let started = Instant::now();
    while out.last().is_none_or(|r: &ReadRecord| r.offset + 1 < end) {
        assert!(
            started.elapsed() < READ_TIMEOUT,
            "{topic}/{partition}: read {} record(s) of offsets {from}..{end} within {} ms",
            out.len(),
            READ_TIMEOUT.as_millis()
        );
        let records = consumer
            .poll(Duration::from_millis(500))
            .unwrap_or_else(|e| panic!("poll {topic}/{partition}: {e}"));
        for r in records.iter().filter(|r| r.offset() < end) {
            out.push(ReadRecord {
                partition: r.partition(),
                offset: r.offset(),
                timestamp_ms: r.timestamp_ms(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers: r
                    .headers()
                    .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                    .collect(),
            });
        }
    }
    out
}

/// The high watermark (next offset) of `topic`/`partition`.
pub fn high_watermark(admin: &strata_client::Admin, topic: &str, partition: u32) -> i64 {
    admin
        .list_offsets(topic, partition, strata_client::OffsetSpec::Latest)
        .wait()
        .unwrap_or_else(|e| panic!("list offsets of {topic}/{partition}: {e}"))
        .offset
}

/// A broker with [`CORES_DEFAULT`] shards started with a `strata serve --config`
/// file of `lines` (`key = value`), and the temp dir holding that file, which must
/// live as long as the broker (restarts read it again).
pub fn start_with_config(lines: &str) -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("strata.conf");
    std::fs::write(&path, lines).expect("write the config file");
    let path = path.to_str().expect("a UTF-8 temp path").to_owned();
    let broker = TestBroker::start_with_args(CORES_DEFAULT, &["--config", &path]);
    (broker, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_listening_sees_a_listener_and_not_a_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert!(is_listening(addr));
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        drop(listener);
        assert!(
            !is_listening(addr),
            "connections on the port are not listeners"
        );
        drop((client, server));
    }
}
