//! `strata cluster …`: what the cluster looks like — its brokers, its controller, and
//! each partition's leader, replicas, in-sync replicas and replication lag — from the
//! native Metadata (through the Admin client). A single-node broker shows itself as a
//! cluster of one and says so.

use std::fmt::Write as _;

use clap::Subcommand;
use strata_client::{Admin, AdminConfig, ClusterDescription, PartitionDescription};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers alive/fenced, partitions under-replicated/offline.
    Status,
    /// Every broker: id, native address, rack, shards, alive or fenced.
    Brokers,
    /// Every partition: leader, epoch, replicas, in-sync replicas, replication lag.
    Partitions {
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Move a broker's replicas to the other brokers, then unregister it.
    Decommission(crate::cluster_ops::DecommissionArgs),
}

pub fn run(cmd: ClusterCommand, brokers: Vec<String>) -> anyhow::Result<()> {
    let admin = || {
        Admin::connect(AdminConfig {
            brokers,
            ..AdminConfig::default()
        })
    };
    let out = match cmd {
        // Kafka's UnregisterBroker, over the Kafka listener.
        ClusterCommand::Decommission(args) => return crate::cluster_ops::decommission(&args),
        ClusterCommand::Status => status(&admin()?.describe_cluster(false).wait()?),
        ClusterCommand::Brokers => brokers_table(&admin()?.describe_cluster(false).wait()?),
        ClusterCommand::Partitions { topic } => {
            let topics: Option<Vec<&str>> = topic.as_deref().map(|t| vec![t]);
            let cluster = admin()?.describe_replication(topics.as_deref())?;
            if let Some(t) = &topic {
                if let Some((_, Err(e))) = cluster.topics.iter().find(|(n, _)| n == t) {
                    anyhow::bail!("cannot describe topic {t}: {e}");
                }
            }
            partitions_table(&cluster)
        }
    };
    print!("{out}");
    Ok(())
}

fn ids(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn partitions(cluster: &ClusterDescription) -> impl Iterator<Item = (&str, &PartitionDescription)> {
    cluster
        .topics
        .iter()
        .filter_map(|(_, t)| t.as_ref().ok())
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.as_str(), p)))
}

/// Whether a partition has fewer in-sync replicas than replicas.
fn under_replicated(p: &PartitionDescription) -> bool {
    p.isr.len() < p.replicas.len()
}

/// Whether no replica leads a partition now.
fn offline(p: &PartitionDescription) -> bool {
    p.leader_broker < 0
}

fn status(cluster: &ClusterDescription) -> String {
    let fenced = cluster.brokers.iter().filter(|b| b.fenced).count();
    let all = cluster.brokers.len();
    let total = partitions(cluster).count();
    let under = partitions(cluster)
        .filter(|(_, p)| under_replicated(p))
        .count();
    let down = partitions(cluster).filter(|(_, p)| offline(p)).count();
    let mut out = String::new();
    let mode = if all <= 1 {
        "single node (not a cluster: one broker serves every partition)"
    } else {
        "cluster"
    };
    let _ = writeln!(out, "mode:        {mode}");
    let _ = writeln!(
        out,
        "cluster id:  {}",
        cluster.cluster_id.as_deref().unwrap_or("(not known yet)")
    );
    let controller = if cluster.controller >= 0 {
        format!("broker {}", cluster.controller)
    } else {
        "none (the controller quorum has no leader now)".to_owned()
    };
    let _ = writeln!(out, "controller:  {controller}");
    let _ = writeln!(
        out,
        "brokers:     {all} ({} alive, {fenced} fenced)",
        all - fenced
    );
    let _ = writeln!(
        out,
        "partitions:  {total} ({under} under-replicated, {down} offline)"
    );
    out
}

fn brokers_table(cluster: &ClusterDescription) -> String {
    let mut out = String::from("id\taddress\track\tshards\tstatus\n");
    for b in &cluster.brokers {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}{}",
            b.id,
            b.addr(),
            b.rack.as_deref().unwrap_or("-"),
            b.shards,
            if b.fenced { "fenced" } else { "alive" },
            if b.id == cluster.controller {
                "\tcontroller"
            } else {
                ""
            }
        );
    }
    out
}

/// The slowest replica's lag: `records (broker id)`, `-` when the leader did not say.
fn lag(p: &PartitionDescription) -> String {
    let slowest = p
        .replicas
        .iter()
        .zip(&p.replica_lag)
        .filter(|(_, lag)| **lag >= 0)
        .max_by_key(|(_, lag)| **lag);
    let unknown = p.replica_lag.len() != p.replicas.len() || p.replica_lag.iter().any(|l| *l < 0);
    match slowest {
        None => "-".to_owned(),
        Some((_, 0)) if !unknown => "0".to_owned(),
        Some((id, lag)) => format!("{lag} (broker {id}){}", if unknown { " +?" } else { "" }),
    }
}

fn partitions_table(cluster: &ClusterDescription) -> String {
    let mut out = String::from("topic\tpartition\tleader\tepoch\treplicas\tisr\toffline\tlag\n");
    for (topic, p) in partitions(cluster) {
        let leader = if offline(p) {
            "none".to_owned()
        } else {
            p.leader_broker.to_string()
        };
        let _ = writeln!(
            out,
            "{topic}\t{}\t{leader}\t{}\t{}\t{}\t{}\t{}",
            p.partition,
            p.leader_epoch,
            ids(&p.replicas),
            ids(&p.isr),
            ids(&p.offline),
            lag(p),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_client::{BrokerDescription, TopicDescription};

    fn partition(
        partition: u32,
        leader_broker: i32,
        isr: &[i32],
        lag: &[i64],
    ) -> PartitionDescription {
        PartitionDescription {
            partition,
            leader_broker,
            leader_shard: 0,
            log_start_offset: 0,
            high_watermark: 0,
            size_bytes: 0,
            error: None,
            leader_epoch: 4,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            offline: vec![],
            replica_lag: lag.to_vec(),
        }
    }

    fn cluster() -> ClusterDescription {
        let broker = |id, fenced| BrokerDescription {
            id,
            host: "127.0.0.1".into(),
            port: 9000 + id as u16,
            rack: None,
            shards: 2,
            fenced,
        };
        ClusterDescription {
            cluster_id: Some("abc".into()),
            controller: 2,
            brokers: vec![broker(1, false), broker(2, false), broker(3, true)],
            topics: vec![(
                "t".into(),
                Ok(TopicDescription {
                    name: "t".into(),
                    internal: false,
                    partitions: vec![
                        partition(0, 1, &[1, 2, 3], &[0, 0, 0]),
                        partition(1, 2, &[1, 2], &[0, 0, 17]),
                        partition(2, -1, &[], &[]),
                    ],
                    configs: vec![],
                }),
            )],
        }
    }

    #[test]
    fn status_counts_what_an_operator_looks_for() {
        let out = status(&cluster());
        assert!(out.contains("cluster id:  abc"), "{out}");
        assert!(out.contains("controller:  broker 2"), "{out}");
        assert!(out.contains("brokers:     3 (2 alive, 1 fenced)"), "{out}");
        assert!(
            out.contains("partitions:  3 (2 under-replicated, 1 offline)"),
            "{out}"
        );
    }

    #[test]
    fn partitions_show_leaders_sets_and_the_slowest_replica() {
        let out = partitions_table(&cluster());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "t\t0\t1\t4\t1,2,3\t1,2,3\t-\t0");
        assert_eq!(lines[2], "t\t1\t2\t4\t1,2,3\t1,2\t-\t17 (broker 3)");
        assert_eq!(lines[3], "t\t2\tnone\t4\t1,2,3\t-\t-\t-");
        let out = brokers_table(&cluster());
        assert!(
            out.contains("2\t127.0.0.1:9002\t-\t2\talive\tcontroller"),
            "{out}"
        );
        assert!(out.contains("3\t127.0.0.1:9003\t-\t2\tfenced"), "{out}");
    }
}
