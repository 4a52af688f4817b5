//! `strata-bench partitions-scale`: how long a broker takes to create, stop and
//! start with many partitions. Runs a real `strata serve` (the binary given, or the
//! `strata` next to this one) on a fresh data dir and times, in order: creating one
//! topic of `--count` partitions (the admin call), stopping the broker with SIGTERM
//! (until the process exits), starting it again on the same dir (until its native
//! port accepts, which it does only after every partition is open), and stopping it
//! again. Targets (issue 9): create, start and stop each at most 5 s.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use strata_client::{Admin, AdminConfig};

use crate::report::{verdict, Table};

/// The target for each of create, start and stop.
pub const SECONDS_TARGET: f64 = 5.0;
/// Longest wait for any one step (the broker before the fixes needed about a minute
/// per 5,000 partitions).
const STEP_TIMEOUT: Duration = Duration::from_secs(600);
/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Name of the topic created.
const TOPIC: &str = "partitions-scale";

/// Arguments of `strata-bench partitions-scale`.
#[derive(Args, Debug, Clone)]
pub struct PartitionsScaleArgs {
    /// Partitions of the topic created.
    #[arg(long, default_value_t = 10_000)]
    pub count: u32,
    /// Directory for the broker's data (a fresh subdirectory is used and removed).
    #[arg(long)]
    pub dir: PathBuf,
    /// The `strata` binary (default: the one next to this executable).
    #[arg(long)]
    pub strata_bin: Option<PathBuf>,
    /// Shards of the broker.
    #[arg(long, default_value_t = 2)]
    pub cores: usize,
    /// Native listener of the broker.
    #[arg(long, default_value = "127.0.0.1:19350")]
    pub listen: SocketAddr,
    /// Kafka listener of the broker.
    #[arg(long, default_value = "127.0.0.1:19351")]
    pub kafka_listen: SocketAddr,
}

/// A broker process, killed if still running when dropped (a failed step).
struct Broker {
    child: Option<Child>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Broker {
    /// Starts the broker and returns it once its native port accepts, with the time
    /// that took.
    fn start(args: &PartitionsScaleArgs, bin: &Path, data: &Path) -> anyhow::Result<(Self, f64)> {
        let started = Instant::now();
        let child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &args.listen.to_string()])
            .args(["--kafka-listen", &args.kafka_listen.to_string()])
            .args(["--metrics-addr", "off"])
            .args(["--cores", &args.cores.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut broker = Broker { child: Some(child) };
        while TcpStream::connect_timeout(&args.listen, Duration::from_millis(100)).is_err() {
            if let Some(status) = broker
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                broker.child = None;
                bail!("the broker exited with {status} before accepting");
            }
            if started.elapsed() > STEP_TIMEOUT {
                bail!(
                    "the broker did not accept within {} s",
                    STEP_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        Ok((broker, started.elapsed().as_secs_f64()))
    }

    /// SIGTERM, and the time until the process exited (successfully).
    fn stop(mut self) -> anyhow::Result<f64> {
        let mut child = self.child.take().context("the broker is not running")?;
        let pid = libc::pid_t::try_from(child.id()).context("pid")?;
        let started = Instant::now();
        // SAFETY: kill(2) on our own child, not yet reaped, so the pid is still its.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("SIGTERM: {}", std::io::Error::last_os_error());
        }
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("the broker exited with {status} after SIGTERM");
                }
                return Ok(started.elapsed().as_secs_f64());
            }
            if started.elapsed() > STEP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the broker did not stop within {} s",
                    STEP_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

fn default_strata_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("find the strata-bench executable")?;
    let bin = exe
        .parent()
        .map(|d| d.join("strata"))
        .context("strata-bench has no parent directory")?;
    if !bin.is_file() {
        bail!(
            "no strata binary at {}; build it (cargo build -p strata) or pass --strata-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs the partitions-scale subcommand.
pub fn run(args: PartitionsScaleArgs) -> anyhow::Result<()> {
    let bin = match &args.strata_bin {
        Some(b) => b.clone(),
        None => default_strata_bin()?,
    };
    let root = args.dir.join("strata-bench-partitions-scale");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
    let data = root.join("data");
    println!(
        "partitions-scale: {} partitions, {} shards, broker {}",
        args.count,
        args.cores,
        bin.display()
    );
    let (broker, empty_start_s) = Broker::start(&args, &bin, &data)?;
    let admin = Admin::connect(AdminConfig {
        brokers: vec![args.listen.to_string()],
        request_timeout: STEP_TIMEOUT,
    })
    .context("admin connects")?;
    let started = Instant::now();
    admin
        .create_topic(TOPIC, args.count, &[])
        .wait()
        .context("create the topic")?;
    let create_s = started.elapsed().as_secs_f64();
    drop(admin);
    let stop_created_s = broker.stop()?;
    let (broker, start_s) = Broker::start(&args, &bin, &data)?;
    let stop_s = broker.stop()?;
    let _ = std::fs::remove_dir_all(&root);

    let mut table = Table::new(&["step", "seconds", "target", "verdict"]);
    let target = format!("<= {SECONDS_TARGET:.0} s");
    let mut row = |step: String, s: f64, targeted: bool| {
        table.row(vec![
            step,
            format!("{s:.2}"),
            if targeted { target.clone() } else { "-".into() },
            if targeted {
                verdict(s <= SECONDS_TARGET).into()
            } else {
                "-".into()
            },
        ]);
    };
    row("start (no topics)".into(), empty_start_s, false);
    row(
        format!("create topic, {} partitions", args.count),
        create_s,
        true,
    );
    row(
        "stop (SIGTERM) after the create".into(),
        stop_created_s,
        true,
    );
    row(
        format!("start with {} partitions", args.count),
        start_s,
        true,
    );
    row(
        format!("stop (SIGTERM) with {} partitions", args.count),
        stop_s,
        true,
    );
    print!("{}", table.render());
    Ok(())
}
