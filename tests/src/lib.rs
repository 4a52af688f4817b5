//! strata-tests: end-to-end tests across processes — real binaries, real clients,
//! crashes and faults. Shared helpers live here; the tests live in `tests/tests/`.
//!
//! - [`broker`]: a real `strata serve` process on a free port (start, SIGTERM, SIGKILL,
//!   restart) and the `strata` CLI, for the broker tests.
//! - [`cluster`]: several `strata serve` processes forming one cluster, each a
//!   [`broker::TestBroker`] that can be killed, stopped and restarted alone.
//! - [`cluster_kafka`] and [`cluster_native`]: create replicated topics, find leaders
//!   and read partitions back in cluster tests, with librdkafka or strata-client.
//! - [`cluster_netns`]: a cluster whose brokers each run in their own network
//!   namespace, so a test can cut one off by taking its link down.
//! - [`flaky_proxy`]: a TCP proxy that drops responses, so clients retry.
//! - [`kafka`]: librdkafka (the `rdkafka` crate) against the broker's Kafka listener.
//! - [`kafka_wire`]: hand-made Kafka requests over a plain socket.
//! - [`rng`]: a seeded SplitMix64, so every crash and fault schedule replays from a
//!   printed seed without pulling in `rand`.
//! - [`stamp`]: self-describing record values (writer generation, sequence number,
//!   record index, checksum) and the batches built from them.
//! - [`log_check`]: reads a whole log back and checks every batch it holds.
//!
//! The `strata-crash-writer` binary (`src/bin/crash_writer.rs`) is the process that
//! crash tests kill.

pub mod broker;
pub mod cluster;
pub mod cluster_kafka;
pub mod cluster_native;
pub mod cluster_netns;
pub mod flaky_proxy;
pub mod kafka;
pub mod kafka_wire;
pub mod log_check;
pub mod rng;
pub mod stamp;
