//! Drivers: how a workload reaches a broker. One workload definition runs through
//! either [`native`] (strata's own protocol, through `strata-client`) or [`kafka`]
//! (the Kafka protocol through librdkafka, so the same workload runs against strata's
//! Kafka listener or any Kafka-compatible broker). The runner only sees the traits
//! here; nothing in a driver assumes the broker is strata.
//!
//! A producer records each acknowledgement in the run's publish [`Meter`] itself (from
//! its acknowledgement thread or delivery callback), with the latency measured from the
//! intended send time stamped into the record's value.

pub mod kafka;
pub mod native;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::load::meter::Meter;

/// Which client library speaks to the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DriverKind {
    /// strata's native protocol through `strata-client`.
    Native,
    /// The Kafka protocol through librdkafka (`rdkafka`).
    Kafka,
}

impl DriverKind {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Native => "native",
            DriverKind::Kafka => "kafka",
        }
    }

    /// Where a local strata listens for this driver by default.
    pub fn default_brokers(self) -> &'static str {
        match self {
            DriverKind::Native => "127.0.0.1:9250",
            DriverKind::Kafka => "127.0.0.1:9092",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One librdkafka property, `key=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaProperty {
    pub key: String,
    pub value: String,
}

impl FromStr for KafkaProperty {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(KafkaProperty {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            }),
            _ => bail!("--kafka-config {s}: expected key=value"),
        }
    }
}

/// A broker and the driver to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub driver: DriverKind,
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Extra librdkafka properties for the kafka driver (applied last).
    pub kafka_config: Vec<KafkaProperty>,
}

impl Target {
    /// `driver@brokers`, for reports.
    pub fn label(&self) -> String {
        format!("{}@{}", self.driver, self.brokers)
    }

    /// The flags that select this target in `strata-bench run`.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--driver".to_string(),
            self.driver.name().to_string(),
            "--brokers".to_string(),
            self.brokers.clone(),
        ];
        if self.driver == DriverKind::Kafka {
            for p in &self.kafka_config {
                a.push("--kafka-config".into());
                a.push(format!("{}={}", p.key, p.value));
            }
        }
        a
    }

    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "driver": self.driver.name(),
            "brokers": self.brokers,
            "kafka_config": self.kafka_config.iter()
                .map(|p| format!("{}={}", p.key, p.value)).collect::<Vec<_>>(),
        })
    }
}

/// `--driver`, `--brokers` and `--kafka-config`: the target of `strata-bench run`.
#[derive(Args, Clone, Debug)]
pub struct TargetArgs {
    /// native (strata's protocol) or kafka (librdkafka, any Kafka-protocol broker).
    #[arg(long, value_enum, default_value = "native")]
    pub driver: DriverKind,
    /// Broker address(es). Default: 127.0.0.1:9250 (native), 127.0.0.1:9092 (kafka).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Extra librdkafka property for the kafka driver, `key=value` (repeatable).
    #[arg(long)]
    pub kafka_config: Vec<KafkaProperty>,
}

impl TargetArgs {
    /// The target these flags name.
    pub fn target(&self) -> Target {
        Target {
            driver: self.driver,
            brokers: self
                .brokers
                .clone()
                .unwrap_or_else(|| self.driver.default_brokers().to_string()),
            kafka_config: self.kafka_config.clone(),
        }
    }
}

/// Producer settings common to both drivers.
#[derive(Clone, Debug)]
pub struct ProducerSettings {
    /// `0`, `1` or `all`.
    pub acks: String,
    pub batch_bytes: usize,
    pub linger: Duration,
}

/// Which partitions a consumer reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Exactly these partitions from their beginning, no group.
    Assign(Vec<(String, u32)>),
    /// Members of `group`: the broker assigns the partitions of `topics`; a new
    /// group starts at the earliest offset.
    Group { group: String, topics: Vec<String> },
}

/// A connection to a broker for one run: topic admin and client factories.
pub trait Driver: Send + Sync {
    /// Creates `topic` with `partitions` and returns once producers can use it.
    fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
        replication_factor: u16,
    ) -> anyhow::Result<()>;
    /// Deletes `topic`.
    fn delete_topic(&self, topic: &str) -> anyhow::Result<()>;
    /// A producer whose acknowledgements are recorded in `publish`.
    fn producer(
        &self,
        settings: &ProducerSettings,
        publish: Arc<Meter>,
    ) -> anyhow::Result<Box<dyn LoadProducer>>;
    /// A consumer of `subscription`; for a group, joining may finish in `poll`.
    fn consumer(&self, subscription: &Subscription) -> anyhow::Result<Box<dyn LoadConsumer>>;
}

/// One producer client.
pub trait LoadProducer: Send {
    /// Queues one record (its value starts with the intended send time); blocks
    /// while the client's buffer is full. The acknowledgement is recorded later.
    fn send(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> anyhow::Result<()>;
    /// Waits until every queued record is acknowledged or failed, then closes.
    fn close(self: Box<Self>) -> anyhow::Result<()>;
}

/// One consumer client.
pub trait LoadConsumer: Send {
    /// Waits up to `timeout` for records, hands each value to `on_value`, and
    /// returns how many there were.
    fn poll(&mut self, timeout: Duration, on_value: &mut dyn FnMut(&[u8]))
        -> anyhow::Result<usize>;
    /// Partitions assigned to this consumer now.
    fn assigned(&self) -> usize;
    /// Leaves the group (if any) and closes.
    fn close(self: Box<Self>) -> anyhow::Result<()>;
}

/// Connects to `target` with its driver.
pub fn connect(target: &Target) -> anyhow::Result<Box<dyn Driver>> {
    Ok(match target.driver {
        DriverKind::Native => Box::new(native::NativeDriver::connect(&target.brokers)?),
        DriverKind::Kafka => Box::new(kafka::KafkaDriver::connect(
            &target.brokers,
            &target.kafka_config,
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_properties_parse() {
        let p: KafkaProperty = "socket.nagle.disable = true".parse().unwrap();
        assert_eq!(
            (p.key.as_str(), p.value.as_str()),
            ("socket.nagle.disable", "true")
        );
        assert!("novalue".parse::<KafkaProperty>().is_err());
        assert!("=x".parse::<KafkaProperty>().is_err());
    }

    #[test]
    fn target_defaults_by_driver() {
        let args = TargetArgs {
            driver: DriverKind::Kafka,
            brokers: None,
            kafka_config: vec![],
        };
        assert_eq!(args.target().brokers, "127.0.0.1:9092");
        assert_eq!(args.target().label(), "kafka@127.0.0.1:9092");
    }
}
