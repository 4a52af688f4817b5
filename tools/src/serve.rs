//! `strata serve`: runs a broker until SIGINT/SIGTERM, then shuts down gracefully
//! (stop accepting, finish in-flight work, flush, write clean markers).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use strata_net::{run_broker, BrokerConfig};

#[derive(Args)]
pub struct ServeArgs {
    /// A config file of `key = value` lines: data-dir, listen, kafka-listen,
    /// kafka-advertised, metrics-addr, cores, pin-to-cores, storage.min.free.bytes, and `topic.<config> = <value>` for topic defaults. Flags win.
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
    /// Log filter for stderr: error, warn, info, debug, trace, or per-module
    /// directives such as `strata_engine=info` (env STRATA_LOG).
    #[arg(long, env = "STRATA_LOG", default_value = "warn")]
    log_level: String,
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
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        apply_file(&mut config, &text)
            .with_context(|| format!("in config file {}", path.display()))?;
    }
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
    raise_open_files_limit();
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
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

fn apply_file(config: &mut BrokerConfig, text: &str) -> anyhow::Result<()> {
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
            _ => match k.strip_prefix("topic.") {
                Some(key) => {
                    config.topic_defaults.insert(key.to_string(), v.to_string());
                }
                None => return Err(bad("unknown key")),
            },
        }
    }
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
