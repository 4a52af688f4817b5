//! `strata`: the one binary — `strata serve` runs a broker, `dev-cluster` a local
//! cluster of them; `topic`, `produce`, `consume`, `group` and `cluster` talk to one. It parses arguments and calls the libraries (`strata-net`,
//! `strata-client`); business logic lives there. Errors print one line a person can
//! act on and exit non-zero.

mod cluster;
mod cluster_ops;
mod consume;
mod dev_cluster;
mod group;
mod produce;
mod serve;
mod topic;

use clap::{Parser, Subcommand};

/// strata: an event streaming platform.
#[derive(Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    /// Broker address(es), comma separated.
    #[arg(long, global = true, env = "STRATA_BROKERS", default_value = strata_client::DEFAULT_BROKERS)]
    brokers: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (embedded defaults work out of the box on localhost).
    // Boxed: its many flags make it much larger than the other commands.
    Serve(Box<serve::ServeArgs>),
    /// Run a local cluster of N brokers on free 127.0.0.1 ports until Ctrl-C.
    DevCluster(dev_cluster::DevClusterArgs),
    /// Create, list, describe, delete and configure topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce one record per input line (stdin by default).
    Produce(produce::ProduceArgs),
    /// Consume records and print them (alone, or in a consumer group with --group).
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Show the cluster: status, brokers, partitions with replicas, ISR and lag.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

fn main() {
    let cli = Cli::parse();
    let brokers = strata_client::parse_brokers(&cli.brokers);
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::DevCluster(args) => dev_cluster::run(args),
        Command::Topic(cmd) => topic::run(cmd, brokers),
        Command::Produce(args) => produce::run(args, brokers),
        Command::Consume(args) => consume::run(args, brokers),
        Command::Group(cmd) => group::run(cmd, brokers),
        Command::Cluster(cmd) => cluster::run(cmd, brokers),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Parses `KEY=VALUE`.
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}
