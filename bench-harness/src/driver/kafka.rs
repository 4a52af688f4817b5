//! The kafka driver: the Kafka protocol through librdkafka (the `rdkafka` crate, built
//! from its vendored source), so a workload runs unchanged against strata's Kafka
//! listener or any Kafka-compatible broker. Producers are `ThreadedProducer`s whose
//! delivery callbacks record acknowledgements in the publish meter (the intended send
//! time is read back from the delivered value's stamp); consumers are `BaseConsumer`s
//! polled from the runner's own threads. No tokio: plain threads throughout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::driver::{
    Driver, KafkaProperty, LoadConsumer, LoadProducer, ProducerSettings, Subscription,
};
use crate::load::meter::Meter;
use crate::load::payload::{read_stamp, unix_us};

/// Bytes librdkafka buffers per producer before `send` waits (as the native client).
const PRODUCER_BUFFER_KIB: u64 = 32 * 1024;
/// Records librdkafka buffers per producer; high, so the byte bound binds first.
const PRODUCER_BUFFER_MESSAGES: u64 = 2_000_000;
/// Pause before retrying a send that found the producer's buffer full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);
/// Longest `close` waits for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a fetch waits for data at the broker (as the native driver).
const FETCH_WAIT_MAX_MS: u64 = 100;
/// librdkafka polls per `poll` at most (each returns one record or event).
const POLL_RECORDS_MAX: usize = 10_000;
/// Longest topic creation (and its appearance in metadata) may take.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one admin or metadata request.
const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Names the benchmark's clients in broker logs.
const CLIENT_ID: &str = "strata-bench";

/// Distinguishes the private group ids of assigned (group-less) consumers.
static ASSIGN_GROUP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A Kafka-protocol connection for one run.
pub struct KafkaDriver {
    brokers: String,
    extra: Vec<KafkaProperty>,
    admin: AdminClient<DefaultClientContext>,
}

impl KafkaDriver {
    /// An admin client for `brokers`; `extra` properties apply to every client.
    pub fn connect(brokers: &str, extra: &[KafkaProperty]) -> anyhow::Result<Self> {
        let driver = KafkaDriver {
            brokers: brokers.to_string(),
            extra: extra.to_vec(),
            admin: base_config(brokers, &[], extra)
                .create()
                .context("create a librdkafka admin client")?,
        };
        // Fail early, with the address, when nothing answers there.
        driver
            .admin
            .inner()
            .fetch_metadata(None, ADMIN_REQUEST_TIMEOUT)
            .with_context(|| format!("no Kafka-protocol broker answered at {brokers}"))?;
        Ok(driver)
    }

    fn config(&self, settings: &[(&str, String)]) -> ClientConfig {
        base_config(&self.brokers, settings, &self.extra)
    }

    /// Waits until metadata shows `topic` with `partitions` partitions, each led.
    fn wait_for_topic(&self, topic: &str, partitions: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
        loop {
            let ready = self
                .admin
                .inner()
                .fetch_metadata(Some(topic), ADMIN_REQUEST_TIMEOUT)
                .map(|m| {
                    m.topics().iter().any(|t| {
                        t.name() == topic
                            && t.error().is_none()
                            && t.partitions().len() == partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "topic {topic} did not show {partitions} led partitions in metadata within {} s",
                    TOPIC_READY_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `bootstrap.servers`, the client id, `settings`, then the user's `extra` (last, so
/// they override).
fn base_config(
    brokers: &str,
    settings: &[(&str, String)],
    extra: &[KafkaProperty],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", CLIENT_ID);
    for (k, v) in settings {
        c.set(*k, v.as_str());
    }
    for p in extra {
        c.set(p.key.as_str(), p.value.as_str());
    }
    c
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(ADMIN_REQUEST_TIMEOUT))
        .operation_timeout(Some(ADMIN_REQUEST_TIMEOUT))
}

impl Driver for KafkaDriver {
    fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
        replication_factor: u16,
    ) -> anyhow::Result<()> {
        let partitions_i32 = i32::try_from(partitions).context("partition count")?;
        let new = NewTopic::new(
            topic,
            partitions_i32,
            TopicReplication::Fixed(i32::from(replication_factor)),
        );
        let results =
            futures_lite::future::block_on(self.admin.create_topics(&[new], &admin_options()))
                .with_context(|| format!("create topic {topic}"))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("create topic {name}: {code}"),
            }
        }
        self.wait_for_topic(topic, partitions)
    }

    fn delete_topic(&self, topic: &str) -> anyhow::Result<()> {
        let results =
            futures_lite::future::block_on(self.admin.delete_topics(&[topic], &admin_options()))
                .with_context(|| format!("delete topic {topic}"))?;
        for r in results {
            if let Err((name, code)) = r {
                bail!("delete topic {name}: {code}");
            }
        }
        Ok(())
    }

    fn producer(
        &self,
        settings: &ProducerSettings,
        publish: Arc<Meter>,
    ) -> anyhow::Result<Box<dyn LoadProducer>> {
        let acks = match settings.acks.as_str() {
            "-1" => "all".to_string(),
            other => other.to_string(),
        };
        let config = self.config(&[
            ("acks", acks),
            ("linger.ms", settings.linger.as_millis().to_string()),
            ("batch.size", settings.batch_bytes.to_string()),
            (
                "queue.buffering.max.kbytes",
                PRODUCER_BUFFER_KIB.to_string(),
            ),
            (
                "queue.buffering.max.messages",
                PRODUCER_BUFFER_MESSAGES.to_string(),
            ),
            ("enable.idempotence", "false".into()),
            ("compression.type", "none".into()),
        ]);
        let producer =
            ThreadedProducer::from_config_and_context(&config, DeliveryMeter { publish })
                .context("create a librdkafka producer")?;
        Ok(Box::new(KafkaProducer { producer }))
    }

    fn consumer(&self, subscription: &Subscription) -> anyhow::Result<Box<dyn LoadConsumer>> {
        let (group, auto_commit) = match subscription {
            Subscription::Group { group, .. } => (group.clone(), "true"),
            // librdkafka polls its consumer queue only with a group id; a private one
            // that never commits keeps assigned consumers independent.
            Subscription::Assign(_) => (
                format!(
                    "strata-bench-assign-{}-{}",
                    std::process::id(),
                    ASSIGN_GROUP_SEQ.fetch_add(1, Ordering::Relaxed)
                ),
                "false",
            ),
        };
        let config = self.config(&[
            ("group.id", group.clone()),
            ("enable.auto.commit", auto_commit.into()),
            ("auto.offset.reset", "earliest".into()),
            ("fetch.wait.max.ms", FETCH_WAIT_MAX_MS.to_string()),
            ("enable.partition.eof", "false".into()),
        ]);
        let consumer: BaseConsumer = config.create().context("create a librdkafka consumer")?;
        match subscription {
            Subscription::Assign(partitions) => {
                let mut tpl = TopicPartitionList::new();
                for (topic, p) in partitions {
                    let p = i32::try_from(*p).context("partition number")?;
                    tpl.add_partition_offset(topic, p, Offset::Beginning)
                        .context("assignment list")?;
                }
                consumer.assign(&tpl).context("assign partitions")?;
            }
            Subscription::Group { topics, .. } => {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&topics)
                    .with_context(|| format!("subscribe group {group}"))?;
            }
        }
        Ok(Box::new(KafkaConsumer {
            consumer,
            warned: false,
        }))
    }
}

/// Records each delivery in the publish meter, from librdkafka's polling thread.
struct DeliveryMeter {
    publish: Arc<Meter>,
}

impl ClientContext for DeliveryMeter {}

impl ProducerContext for DeliveryMeter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let done_us = unix_us();
        match result {
            Ok(m) => {
                let value = m.payload().unwrap_or_default();
                match read_stamp(value) {
                    Some(intended_us) => self.publish.record(intended_us, done_us, value.len()),
                    None => self
                        .publish
                        .error(|| "a delivered record lost its stamp".into()),
                }
            }
            Err((e, _)) => self.publish.error(|| e.to_string()),
        }
    }
}

struct KafkaProducer {
    producer: ThreadedProducer<DeliveryMeter>,
}

impl LoadProducer for KafkaProducer {
    fn send(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> anyhow::Result<()> {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((e, _)) => return Err(e).context("librdkafka refused a record"),
            }
        }
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .context("wait for outstanding deliveries")
    }
}

struct KafkaConsumer {
    consumer: BaseConsumer,
    /// Whether a consumer error was already reported (once per consumer).
    warned: bool,
}

impl LoadConsumer for KafkaConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_value: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<usize> {
        let mut n = 0;
        let mut wait = timeout;
        for _ in 0..POLL_RECORDS_MAX {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    on_value(m.payload().unwrap_or_default());
                    n += 1;
                }
                // Consumer errors are mostly transient (a broker connection dropped);
                // librdkafka recovers by itself. Counts tell if records went missing.
                Some(Err(e)) => {
                    if !self.warned {
                        eprintln!("warning: kafka consumer: {e}");
                        self.warned = true;
                    }
                }
            }
            wait = Duration::ZERO;
        }
        Ok(n)
    }

    fn assigned(&self) -> usize {
        self.consumer.assignment().map_or(0, |a| a.count())
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        // Dropping a librdkafka consumer commits (with auto-commit) and leaves the group.
        drop(self);
        Ok(())
    }
}
