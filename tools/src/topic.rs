//! `strata topic …`: topic administration through the native Admin client.

use anyhow::Context;
use clap::Subcommand;
use strata_client::{Admin, AdminConfig};

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions.
        #[arg(short, long, default_value_t = 1)]
        partitions: u32,
        /// Replicas per partition (a cluster; default: its default.replication.factor).
        #[arg(short, long)]
        replication_factor: Option<u16>,
        /// Topic config, e.g. -c retention.ms=86400000 (repeatable).
        #[arg(short, long = "config", value_parser = crate::key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics.
    List,
    /// Show a topic's partitions and configs.
    Describe { name: String },
    /// Delete a topic and its data.
    Delete { name: String },
    /// Grow a topic to N partitions in total.
    AddPartitions {
        name: String,
        #[arg(short, long)]
        partitions: u32,
    },
    /// Reopen a topic's fenced or offline partitions (after a disk fault, or once
    /// corrupt data was dealt with), running recovery on each; healthy ones are left alone.
    Repair {
        name: String,
        /// Only this partition (default: every partition of the topic).
        #[arg(short, long)]
        partition: Option<u32>,
    },
    /// Change topic configs, e.g. -c retention.ms=3600000 (repeatable).
    AlterConfig {
        name: String,
        #[arg(short, long = "config", value_parser = crate::key_value, required = true)]
        configs: Vec<(String, String)>,
    },
}

pub fn run(cmd: TopicCommand, brokers: Vec<String>) -> anyhow::Result<()> {
    let admin = Admin::connect(AdminConfig {
        brokers,
        ..AdminConfig::default()
    })?;
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let cfg: Vec<(&str, &str)> = configs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            admin
                .create_replicated_topic(&name, partitions, replication_factor, &cfg)
                .wait()
                .with_context(|| format!("cannot create topic {name}"))?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicCommand::List => {
            for t in admin.list_topics(false).wait()? {
                println!("{}\t{} partition(s)", t.name, t.partitions.len());
            }
        }
        TopicCommand::Describe { name } => {
            let t = admin
                .describe_topic(&name)
                .wait()
                .with_context(|| format!("cannot describe topic {name}"))?;
            println!("topic {} ({} partitions)", t.name, t.partitions.len());
            println!(
                "partition\tleader\tshard\tlog-start\thigh-watermark\tsize-bytes\treplicas\tisr"
            );
            let ids = |ids: &[i32]| {
                let list: Vec<String> = ids.iter().map(i32::to_string).collect();
                if list.is_empty() {
                    "-".to_owned()
                } else {
                    list.join(",")
                }
            };
            for p in &t.partitions {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}{}",
                    p.partition,
                    p.leader_broker,
                    p.leader_shard,
                    p.log_start_offset,
                    p.high_watermark,
                    p.size_bytes,
                    ids(&p.replicas),
                    ids(&p.isr),
                    p.error
                        .as_deref()
                        .map(|e| format!("\terror: {e}"))
                        .unwrap_or_default()
                );
            }
            println!("configs:");
            for (k, v) in &t.configs {
                println!("  {k} = {}", v.as_deref().unwrap_or("(unset)"));
            }
        }
        TopicCommand::Delete { name } => {
            admin
                .delete_topic(&name)
                .wait()
                .with_context(|| format!("cannot delete topic {name}"))?;
            println!("deleted topic {name}");
        }
        TopicCommand::AddPartitions { name, partitions } => {
            admin
                .add_partitions(&name, partitions)
                .wait()
                .with_context(|| format!("cannot add partitions to {name}"))?;
            println!("topic {name} now has {partitions} partition(s)");
        }
        TopicCommand::Repair { name, partition } => {
            admin
                .repair_partitions(&name, partition)
                .wait()
                .with_context(|| format!("cannot repair topic {name}"))?;
            match partition {
                Some(p) => println!("partition {p} of {name} is open"),
                None => println!("every partition of {name} is open"),
            }
        }
        TopicCommand::AlterConfig { name, configs } => {
            let cfg: Vec<(&str, Option<&str>)> = configs
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_str())))
                .collect();
            admin
                .alter_config(&name, &cfg)
                .wait()
                .with_context(|| format!("cannot alter configs of {name}"))?;
            println!("updated {} config(s) of {name}", configs.len());
        }
    }
    Ok(())
}
