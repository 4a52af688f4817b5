//! strata-client: the native client for strata — [`Producer`], [`Consumer`] (alone
//! with `assign`, or in a consumer group with `subscribe`) and [`Admin`].
//!
//! It owns the client side of strata's native protocol: connections with pipelined
//! requests, request encoding and response decoding (via `strata-schema`, which owns
//! the formats), batching, partitioning, retries and consumer positions. It depends on
//! neither the server crates nor glommio: plain `std` threads and sockets do the I/O,
//! so it works from synchronous code and from any async runtime (tokio included).
//!
//! - Every request returns a runtime-agnostic future ([`Call`], [`SendFuture`]) that
//!   the client's own threads complete: `.await` it anywhere, or `.wait()` for it.
//! - Threads: one reader per [`Connection`] (completes responses, enforces timeouts),
//!   for a [`Producer`] one sender (batches, sends, retries), and for a subscribed
//!   [`Consumer`] one heartbeat thread.
//! - In a cluster, each partition's produce, fetch and offset requests go to its
//!   leader (a connection per leader, from Metadata); a leader that moved or died is
//!   looked up again and the request resent there within its timeout. Admin and group
//!   calls go to any live broker of the list.
//! - Every queue is bounded: [`IN_FLIGHT_MAX`] requests per connection, the producer's
//!   `buffer_bytes`, the consumer's fetch sizes.
//!
//! ```no_run
//! use std::time::Duration;
//! use strata_client::*;
//!
//! # fn main() -> Result<()> {
//! let admin = Admin::connect(AdminConfig::default())?;
//! admin.create_topic("events", 3, &[("retention.ms", "86400000")]).wait()?;
//!
//! let producer = Producer::connect(ProducerConfig::default())?;
//! let meta = producer.send_blocking(ProducerRecord::new("events", "hello").key("k"))?;
//! println!("written at {}/{}", meta.partition, meta.offset);
//!
//! let mut consumer = Consumer::connect(ConsumerConfig::default())?;
//! consumer.assign(&[("events", meta.partition)]);
//! consumer.seek("events", meta.partition, meta.offset)?;
//! for record in &consumer.poll(Duration::from_secs(1))? {
//!     println!("{:?} = {:?}", record.key(), record.value()); // borrowed, not copied
//! }
//! # Ok(())
//! # }
//! ```

mod accumulator;
mod admin;
mod brokers;
mod call;
mod completion;
mod connection;
mod consumer;
mod error;
mod group;
mod group_protocol;
mod partitioner;
mod producer;
mod protocol;
mod records;
mod router;
mod routing;

pub use admin::{Admin, AdminConfig, ListedOffset, OffsetSpec, ResetTo};
pub use brokers::{brokers_from_env, parse_brokers, BROKERS_ENV, DEFAULT_BROKERS};
pub use call::Call;
pub use completion::Pending;
pub use connection::{Connection, Response, CONNECT_TIMEOUT, IN_FLIGHT_MAX};
pub use consumer::{Consumer, ConsumerConfig, OffsetReset};
pub use error::{ClientError, Result};
pub use group_protocol::{
    AssignmentStrategy, CommittedOffset, GroupDescription, GroupListing, GroupMember, PartitionLag,
};
pub use partitioner::{murmur2, partition_for_key, to_positive, Partitioner};
pub use producer::{Acks, Producer, ProducerConfig, ProducerRecord, RecordMetadata, SendFuture};
pub use protocol::{BrokerDescription, ClusterDescription, PartitionDescription, TopicDescription};
pub use records::{ConsumerRecord, Records, RecordsIter};
