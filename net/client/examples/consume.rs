//! Consumes every partition of a topic from the beginning, from synchronous code.
//!
//! `cargo run -p strata-client --example consume -- TOPIC [COUNT]`
//! (brokers from `STRATA_BROKERS`, default 127.0.0.1:9250).

use std::time::Duration;

use strata_client::{Admin, AdminConfig, Consumer, ConsumerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "example".into());
    let count: usize = args.next().map_or(Ok(10), |n| n.parse())?;

    let partitions = Admin::connect(AdminConfig::default())?
        .describe_topic(&topic)
        .wait()?
        .partitions;
    let mut consumer = Consumer::connect(ConsumerConfig::default())?;
    let assignment: Vec<(&str, u32)> = partitions
        .iter()
        .map(|p| (topic.as_str(), p.partition))
        .collect();
    consumer.assign(&assignment);
    for &(t, p) in &assignment {
        consumer.seek_to_beginning(t, p)?;
    }

    let mut seen = 0;
    while seen < count {
        let records = consumer.poll(Duration::from_secs(1))?;
        // Keys and values borrow from the fetched bytes: nothing is copied.
        for r in &records {
            println!(
                "{}/{} @ {} key={:?} value={:?} headers={}",
                r.topic(),
                r.partition(),
                r.offset(),
                r.key().map(String::from_utf8_lossy),
                r.value().map(String::from_utf8_lossy),
                r.headers().len(),
            );
            seen += 1;
        }
    }
    Ok(())
}
