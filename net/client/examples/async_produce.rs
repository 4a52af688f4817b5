//! Awaits sends from a tokio runtime: the client needs no particular runtime (and no
//! glommio); its futures are woken by the client's own threads.
//!
//! `cargo run -p strata-client --example async_produce -- TOPIC [COUNT]`

use strata_client::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "example".into());
    let count: u32 = args.next().map_or(Ok(10), |n| n.parse())?;

    // Connecting (and the first send to a topic, which looks up its partitions) blocks
    // briefly; everything after is awaited.
    let producer = Producer::connect(ProducerConfig::default())?;
    let pending: Vec<_> = (0..count)
        .map(|i| producer.send(ProducerRecord::new(&topic, format!("async {i}"))))
        .collect();
    for send in pending {
        let meta = send.await?;
        println!("{}/{} @ {}", meta.topic, meta.partition, meta.offset);
    }
    Ok(())
}
