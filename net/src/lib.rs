//! strata-net: the server side of strata's wire protocols.
//!
//! Owns listeners, connections, request routing between shards, the native and Kafka
//! protocol handlers, and the broker-to-broker replication transport. It reaches
//! storage only through `strata-engine`'s API and never looks at segment files.
