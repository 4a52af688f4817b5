//! Consumes a topic as a member of a consumer group: the broker assigns the
//! partitions, each starts at the group's committed offset, and positions are
//! committed after every poll (at least once). Run it twice to watch the group
//! split the partitions.
//!
//! `cargo run -p strata-client --example group_consume -- GROUP TOPIC [COUNT]`
//! (brokers from `STRATA_BROKERS`, default 127.0.0.1:9250).

use std::time::Duration;

use strata_client::{AssignmentStrategy, Consumer, ConsumerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let group = args.next().unwrap_or_else(|| "example-group".into());
    let topic = args.next().unwrap_or_else(|| "example".into());
    let count: usize = args.next().map_or(Ok(10), |n| n.parse())?;

    let mut consumer = Consumer::connect(ConsumerConfig {
        enable_auto_commit: false,
        ..ConsumerConfig::default()
    })?;
    consumer.subscribe(&group, &[topic.as_str()], AssignmentStrategy::Sticky)?;
    println!("assigned {:?}", consumer.assignment());

    let mut seen = 0;
    while seen < count {
        let records = consumer.poll(Duration::from_secs(1))?;
        for r in &records {
            println!(
                "{}/{}@{}: {:?}",
                r.topic(),
                r.partition(),
                r.offset(),
                r.value()
            );
        }
        seen += records.len();
        consumer.commit_sync()?;
    }
    // Leaving hands the partitions to the other members at once.
    consumer.close()?;
    Ok(())
}
