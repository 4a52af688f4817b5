//! Produces records from synchronous code.
//!
//! `cargo run -p strata-client --example produce -- TOPIC [COUNT]`
//! (brokers from `STRATA_BROKERS`, default 127.0.0.1:9250; the topic must exist:
//! `strata topic create TOPIC -p 3`).

use strata_client::{Producer, ProducerConfig, ProducerRecord};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "example".into());
    let count: u32 = args.next().map_or(Ok(10), |n| n.parse())?;

    let producer = Producer::connect(ProducerConfig::default())?;
    // Queue everything first: records are batched per partition while they wait.
    let pending: Vec<_> = (0..count)
        .map(|i| {
            let record = ProducerRecord::new(&topic, format!("hello {i}"))
                .key(format!("key-{}", i % 4))
                .header("source", "examples/produce.rs");
            producer.send(record)
        })
        .collect();
    for result in pending {
        let meta = result.wait()?;
        println!("{}/{} @ {}", meta.topic, meta.partition, meta.offset);
    }
    producer.close();
    Ok(())
}
