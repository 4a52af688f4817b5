//! `strata group …`: consumer group administration through the native Admin client.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::Subcommand;
use strata_client::{Admin, AdminConfig, ResetTo};

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List consumer groups.
    List,
    /// Show a group's members, assignments, committed offsets and lag.
    Describe { group: String },
    /// Move a group's committed offsets of a topic (the group must have no members).
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or @UNIX_MS.
        #[arg(long, value_parser = parse_reset)]
        to: ResetTo,
    },
    /// Delete a group without members, with its committed offsets.
    Delete { group: String },
}

fn parse_reset(s: &str) -> Result<ResetTo, String> {
    s.parse()
}

pub fn run(cmd: GroupCommand, brokers: Vec<String>) -> anyhow::Result<()> {
    let admin = Admin::connect(AdminConfig {
        brokers,
        ..AdminConfig::default()
    })?;
    match cmd {
        GroupCommand::List => {
            let groups = admin.list_groups().wait()?;
            if groups.is_empty() {
                println!("no consumer groups");
                return Ok(());
            }
            println!("{:<32} {:<20} MEMBERS", "GROUP", "STATE");
            for g in groups {
                println!("{:<32} {:<20} {}", g.group, g.state, g.members);
            }
        }
        GroupCommand::Describe { group } => {
            let d = admin
                .describe_group(&group)
                .wait()
                .with_context(|| format!("cannot describe group {group}"))?;
            if d.state == "Dead" {
                bail!("group {group} does not exist (see `strata group list`)");
            }
            println!(
                "group {}  state {}  strategy {}  generation {}  members {}",
                d.group,
                d.state,
                d.strategy.name(),
                d.generation,
                d.members.len()
            );
            let mut owner: BTreeMap<(String, u32), String> = BTreeMap::new();
            if !d.members.is_empty() {
                println!();
                println!("{:<40} {:<20} PARTITIONS", "MEMBER", "CLIENT");
                for m in &d.members {
                    let parts: Vec<String> = m
                        .assignment
                        .iter()
                        .map(|(t, p)| format!("{t}/{p}"))
                        .collect();
                    println!(
                        "{:<40} {:<20} {}",
                        m.member_id,
                        m.client_id,
                        parts.join(",")
                    );
                    for tp in &m.assignment {
                        owner.insert(tp.clone(), m.member_id.clone());
                    }
                }
            }
            if !d.lag.is_empty() {
                println!();
                println!(
                    "{:<24} {:>9} {:>12} {:>12} {:>8}  MEMBER",
                    "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
                );
                let dash = |v: i64| if v < 0 { "-".to_owned() } else { v.to_string() };
                for l in &d.lag {
                    let member = owner
                        .get(&(l.topic.clone(), l.partition))
                        .map_or("-", String::as_str);
                    println!(
                        "{:<24} {:>9} {:>12} {:>12} {:>8}  {}",
                        l.topic,
                        l.partition,
                        dash(l.committed_offset),
                        dash(l.log_end_offset),
                        dash(l.lag),
                        member
                    );
                }
            }
        }
        GroupCommand::ResetOffsets { group, topic, to } => {
            let moved = admin
                .reset_offsets(&group, &topic, to)
                .with_context(|| format!("cannot reset the offsets of group {group} on {topic}"))?;
            for (p, o) in moved {
                println!("{topic}/{p} -> {o}");
            }
        }
        GroupCommand::Delete { group } => {
            admin
                .delete_group(&group)
                .wait()
                .with_context(|| format!("cannot delete group {group}"))?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}
