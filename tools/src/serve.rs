//! `strata serve`: runs a broker until SIGINT/SIGTERM, then shuts down gracefully
//! (stop accepting, finish in-flight work, flush, write clean markers).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use strata_net::cluster_config::{self, ClusterSettings};
use strata_net::{run_broker, BrokerConfig};

#[derive(Args)]
pub struct ServeArgs {
    /// A config file of `key = value` lines: data-dir, listen, kafka-listen,
    /// kafka-advertised, metrics-addr, cores, pin-to-cores, storage.min.free.bytes,
    /// connections.max.idle.ms, max.connections, max.connections.per.ip,
    /// `topic.<config> = <value>` for topic defaults, and Kafka's broker settings by
    /// their Kafka names (listeners, advertised.listeners, node.id, num.partitions,
    /// log.retention.ms, group.min.session.timeout.ms, …; see the README). Flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where topic metadata and partition logs live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shards (one per core); 0 = all cores.
    #[arg(long)]
    cores: Option<usize>,
    /// Native protocol listener.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Kafka protocol listener (default 127.0.0.1:9092); `off` disables it.
    #[arg(long)]
    kafka_listen: Option<String>,
    /// The host:port Kafka clients are told to connect to (default: the Kafka
    /// listen address).
    #[arg(long)]
    kafka_advertised: Option<String>,
    /// Prometheus metrics listener; `off` disables it.
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Free-space floor of the data directory's disk in bytes: produces are refused
    /// below it (default 64 MiB, or 5% of a smaller disk; 0 = none).
    #[arg(long)]
    storage_min_free_bytes: Option<u64>,
    /// Close a connection that moves no bytes for this long (Kafka's
    /// `connections.max.idle.ms`, default 600000); -1 = never.
    #[arg(long)]
    connections_max_idle_ms: Option<i64>,
    /// Connections served at once, both listeners together (`max.connections`);
    /// a new one beyond it is closed at once.
    #[arg(long)]
    max_connections: Option<u32>,
    /// Connections one client IP may have open (`max.connections.per.ip`).
    #[arg(long)]
    max_connections_per_ip: Option<u32>,
    /// Log filter for stderr: error, warn, info, debug, trace, or per-module
    /// directives such as `strata_engine=info` (env STRATA_LOG).
    #[arg(long, env = "STRATA_LOG", default_value = "warn")]
    log_level: String,
    /// How often each shard's cleaner runs retention and compaction, in ms (default
    /// 30000).
    #[arg(long)]
    cleaner_interval_ms: Option<u64>,
    /// This broker's node id in a cluster (1..2147483647; config key `node.id`);
    /// needs --cluster-listen. Without it the broker is a single node.
    #[arg(long)]
    node_id: Option<String>,
    /// The broker-to-broker HOST:PORT (config key `cluster.listen`).
    #[arg(long)]
    cluster_listen: Option<String>,
    /// The controller quorum, `ID@HOST:PORT,...` by their cluster-listen addresses
    /// (config key `controller.quorum.voters`).
    #[arg(long)]
    voters: Option<String>,
    /// This broker's rack (config key `broker.rack`), for rack-aware placement.
    #[arg(long)]
    rack: Option<String>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level `{}` is not a log filter", args.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mut config = BrokerConfig {
        kafka_listen: Some(
            strata_net::KAFKA_LISTEN_ADDR_DEFAULT
                .parse()
                .expect("a valid literal address"),
        ),
        ..BrokerConfig::default()
    };
    let mut cluster = ClusterSettings::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        apply_file(&mut config, &mut cluster, &text)
            .with_context(|| format!("in config file {}", path.display()))?;
    }
    apply_cluster_flags(&mut config, cluster, &args)?;
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(c) = args.cores {
        config.cores = c;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(k) = args.kafka_listen {
        config.kafka_listen = parse_optional_addr("kafka-listen", &k)?;
    }
    if let Some(a) = args.kafka_advertised {
        config.kafka_advertised = Some(parse_advertised(&a)?);
    }
    if let Some(b) = args.storage_min_free_bytes {
        config.storage_min_free_bytes = Some(b);
    }
    if let Some(m) = args.metrics_addr {
        config.metrics_addr = parse_metrics(&m)?;
    }
    if let Some(ms) = args.cleaner_interval_ms {
        config.cleaner_interval_ms = ms.max(1);
    }
    if let Some(v) = args.connections_max_idle_ms {
        config.connections.max_idle_ms = parse_idle_ms(&v.to_string())?;
    }
    if let Some(v) = args.max_connections {
        config.connections.max_connections = parse_connections("max-connections", &v.to_string())?;
    }
    if let Some(v) = args.max_connections_per_ip {
        config.connections.max_connections_per_ip =
            parse_connections("max-connections-per-ip", &v.to_string())?;
    }
    raise_open_files_limit();
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal exits at once (registered first, so it sees the flag the
        // first signal set). That loses nothing acknowledged: a reply goes out only
        // once its data is as durable as the topic's flush policy asks (fdatasync'ed,
        // or written to the kernel for `flush.ms` -1 or N, which an exiting process
        // does not take back); it skips only the clean markers, so the next start
        // scans the logs' tails.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            SECOND_SIGNAL_EXIT_CODE,
            Arc::clone(&shutdown),
        )
        .context("cannot install signal handlers")?;
        signal_hook::flag::register(signal, Arc::clone(&shutdown))
            .context("cannot install signal handlers")?;
    }
    eprintln!(
        "strata: serving native {}, kafka {} (data in {}, metrics {})",
        config.listen,
        config
            .kafka_listen
            .map_or("off".to_string(), |a| a.to_string()),
        config.data_dir.display(),
        config
            .metrics_addr
            .map_or("off".to_string(), |a| a.to_string())
    );
    run_broker(config, shutdown).context("broker stopped with an error")?;
    eprintln!("strata: stopped cleanly");
    Ok(())
}

/// Exit status when a second SIGINT/SIGTERM cuts a graceful shutdown short.
const SECOND_SIGNAL_EXIT_CODE: i32 = 2;

/// `connections.max.idle.ms`: a positive number of milliseconds, or -1 for never.
fn parse_idle_ms(v: &str) -> anyhow::Result<i64> {
    match v.parse::<i64>() {
        Ok(ms) if ms > 0 || ms == -1 => Ok(ms),
        _ => {
            bail!("connections.max.idle.ms `{v}` is not a positive number of milliseconds, nor -1")
        }
    }
}

/// A connection count limit: a positive number.
fn parse_connections(what: &str, v: &str) -> anyhow::Result<u32> {
    match v.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{what} `{v}` is not a positive number of connections"),
    }
}

fn parse_metrics(v: &str) -> anyhow::Result<Option<SocketAddr>> {
    parse_optional_addr("metrics-addr", v)
}

/// An address, or `off` for none.
fn parse_optional_addr(what: &str, v: &str) -> anyhow::Result<Option<SocketAddr>> {
    if v == "off" {
        return Ok(None);
    }
    Ok(Some(v.parse().with_context(|| {
        format!("{what} `{v}` is not an address like 127.0.0.1:9092, nor `off`")
    })?))
}

/// A `host:port` to advertise to Kafka clients.
fn parse_advertised(v: &str) -> anyhow::Result<String> {
    let ok = v
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        bail!("kafka-advertised `{v}` is not a host:port like broker1.example.com:9092");
    }
    Ok(v.to_string())
}

/// The cluster flags over the config file's cluster keys, checked together; a
/// cluster member's Kafka broker id is its node id.
fn apply_cluster_flags(
    config: &mut BrokerConfig,
    mut cluster: ClusterSettings,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    if let Some(v) = &args.node_id {
        cluster.node_id_flag = Some(cluster_config::parse_node_id(v)?);
    }
    if let Some(v) = &args.cluster_listen {
        cluster.cluster_listen = Some(cluster_config::parse_cluster_listen(v)?);
    }
    if let Some(v) = &args.voters {
        cluster.voters = Some(cluster_config::parse_voters(v)?);
    }
    if let Some(v) = &args.rack {
        cluster.rack = Some(cluster_config::parse_rack(v)?);
    }
    config.cluster = cluster.resolve()?;
    if let Some(c) = &config.cluster {
        config.broker_id = c.kafka_broker_id();
    }
    strata_net::broker_settings::check_replication(config)?;
    Ok(())
}

fn apply_file(
    config: &mut BrokerConfig,
    cluster: &mut ClusterSettings,
    text: &str,
) -> anyhow::Result<()> {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("line {}: expected `key = value`", n + 1);
        };
        let (k, v) = (k.trim(), v.trim().trim_matches('"'));
        let bad = |what: &str| anyhow::anyhow!("line {}: {k} = {v}: {what}", n + 1);
        if cluster
            .apply_file_key(k, v)
            .map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?
        {
            continue;
        }
        match k {
            "data-dir" => config.data_dir = v.into(),
            "listen" => config.listen = v.parse().map_err(|_| bad("not an address"))?,
            "metrics-addr" => config.metrics_addr = parse_metrics(v)?,
            "kafka-listen" => config.kafka_listen = parse_optional_addr(k, v)?,
            "kafka-advertised" => config.kafka_advertised = Some(parse_advertised(v)?),
            "cores" => config.cores = v.parse().map_err(|_| bad("not a number"))?,
            "pin-to-cores" => config.pin_to_cores = v.parse().map_err(|_| bad("not true/false"))?,
            "storage.min.free.bytes" => {
                config.storage_min_free_bytes =
                    Some(v.parse().map_err(|_| bad("not a byte count"))?)
            }
            "max.connections" => config.connections.max_connections = parse_connections(k, v)?,
            "max.connections.per.ip" => {
                config.connections.max_connections_per_ip = parse_connections(k, v)?
            }
            _ => match k.strip_prefix("topic.") {
                Some(key) => {
                    config.topic_defaults.insert(key.to_string(), v.to_string());
                }
                None => {
                    let known = strata_net::broker_settings::apply_static(config, k, v)
                        .map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
                    if !known {
                        return Err(bad("unknown key"));
                    }
                }
            },
        }
    }
    strata_net::broker_settings::check_static(config)?;
    Ok(())
}

/// A broker holds a file per active segment and per open read handle, and a socket
/// per connection: lift the soft descriptor limit to the hard one, as brokers need.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
