//! The native driver: strata's own protocol through `strata-client`. Every send future
//! gets a waker, registered at once, that notes the moment it completes; a thread per
//! producer then records the acknowledgement with that time. So each is timed when it
//! arrives — not when an earlier, slower one (another partition's) is done.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use strata_client::{
    Acks, Admin, AdminConfig, AssignmentStrategy, Consumer, ConsumerConfig, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, SendFuture,
};

use crate::driver::{Driver, LoadConsumer, LoadProducer, ProducerSettings, Subscription};
use crate::load::meter::Meter;
use crate::load::payload::{read_stamp, unix_us};

/// Longest a fetch waits for data at the broker.
const FETCH_MAX_WAIT: Duration = Duration::from_millis(100);
/// Names the benchmark's consumers in broker logs.
const CLIENT_ID: &str = "strata-bench";

/// A native-protocol connection for one run.
pub struct NativeDriver {
    brokers: Vec<String>,
    admin: Admin,
}

impl NativeDriver {
    /// Connects the admin client to `brokers` (`host:port[,...]`).
    pub fn connect(brokers: &str) -> anyhow::Result<Self> {
        let brokers = strata_client::parse_brokers(brokers);
        let admin = Admin::connect(AdminConfig {
            brokers: brokers.clone(),
            ..AdminConfig::default()
        })
        .with_context(|| format!("connect to the native listener at {}", brokers.join(",")))?;
        Ok(NativeDriver { brokers, admin })
    }
}

impl Driver for NativeDriver {
    fn create_topic(&self, topic: &str, partitions: u32, _replication: u16) -> anyhow::Result<()> {
        self.admin
            .create_topic(topic, partitions, &[])
            .wait()
            .with_context(|| format!("create topic {topic} ({partitions} partitions)"))
    }

    fn delete_topic(&self, topic: &str) -> anyhow::Result<()> {
        self.admin
            .delete_topic(topic)
            .wait()
            .with_context(|| format!("delete topic {topic}"))
    }

    fn producer(
        &self,
        settings: &ProducerSettings,
        publish: Arc<Meter>,
    ) -> anyhow::Result<Box<dyn LoadProducer>> {
        let producer = Producer::connect(ProducerConfig {
            brokers: self.brokers.clone(),
            acks: settings.acks.parse::<Acks>()?,
            batch_bytes: settings.batch_bytes,
            linger: settings.linger,
            ..ProducerConfig::default()
        })
        .context("connect a native producer")?;
        let (tx, rx) = mpsc::channel::<AckMsg>();
        let meter = publish.clone();
        let acker = std::thread::Builder::new()
            .name("bench-acks".into())
            .spawn(move || collect_acks(&rx, &meter))
            .context("start the acknowledgement thread")?;
        Ok(Box::new(NativeProducer {
            producer,
            publish,
            next_id: 0,
            acks: Some(tx),
            acker: Some(acker),
        }))
    }

    fn consumer(&self, subscription: &Subscription) -> anyhow::Result<Box<dyn LoadConsumer>> {
        let grouped = matches!(subscription, Subscription::Group { .. });
        let mut consumer = Consumer::connect(ConsumerConfig {
            brokers: self.brokers.clone(),
            client_id: CLIENT_ID.into(),
            fetch_max_wait: FETCH_MAX_WAIT,
            auto_offset_reset: OffsetReset::Earliest,
            enable_auto_commit: grouped,
            ..ConsumerConfig::default()
        })
        .context("connect a native consumer")?;
        match subscription {
            Subscription::Assign(partitions) => {
                let pairs: Vec<(&str, u32)> =
                    partitions.iter().map(|(t, p)| (t.as_str(), *p)).collect();
                consumer.assign(&pairs);
            }
            Subscription::Group { group, topics } => {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(group, &topics, AssignmentStrategy::Range)
                    .with_context(|| format!("join consumer group {group}"))?;
            }
        }
        Ok(Box::new(NativeConsumer { consumer }))
    }
}

/// What the acknowledgement thread hears: pending sends, completions, the end.
enum AckMsg {
    /// Send `id`, not complete when it was first polled (its waker is registered).
    Sent {
        id: u64,
        intended_us: u64,
        bytes: usize,
        fut: SendFuture,
        waker: Waker,
    },
    /// Send `id` completed at `done_us` (its waker fired; may overtake its `Sent`).
    Woken { id: u64, done_us: u64 },
    /// No more sends; stop once every pending one completed.
    Close,
}

/// Tells the acknowledgement thread when send `id` completed.
struct AckWaker {
    id: u64,
    tx: mpsc::Sender<AckMsg>,
}

impl Wake for AckWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.tx.send(AckMsg::Woken {
            id: self.id,
            done_us: unix_us(),
        });
    }
}

/// Records a settled send in `publish`.
fn settle<T>(
    publish: &Meter,
    intended_us: u64,
    bytes: usize,
    done_us: u64,
    r: strata_client::Result<T>,
) {
    match r {
        Ok(_) => publish.record(intended_us, done_us, bytes),
        Err(e) => publish.error(|| e.to_string()),
    }
}

/// Polls each pending send when its waker fires and records the acknowledgement in
/// `publish`, timed when the waker fired. Returns after `Close` once none is pending.
fn collect_acks(rx: &mpsc::Receiver<AckMsg>, publish: &Meter) {
    let mut pending: HashMap<u64, (u64, usize, SendFuture, Waker)> = HashMap::new();
    // Completions whose `Sent` has not arrived yet.
    let mut early: HashMap<u64, u64> = HashMap::new();
    let mut closing = false;
    while !(closing && pending.is_empty()) {
        let Ok(msg) = rx.recv() else { return };
        let (id, done_us) = match msg {
            AckMsg::Close => {
                closing = true;
                continue;
            }
            AckMsg::Sent {
                id,
                intended_us,
                bytes,
                fut,
                waker,
            } => {
                pending.insert(id, (intended_us, bytes, fut, waker));
                match early.remove(&id) {
                    Some(done_us) => (id, done_us),
                    None => continue,
                }
            }
            AckMsg::Woken { id, done_us } => {
                if !pending.contains_key(&id) {
                    early.insert(id, done_us);
                    continue;
                }
                (id, done_us)
            }
        };
        let Some((intended_us, bytes, fut, waker)) = pending.get_mut(&id) else {
            continue;
        };
        if let Poll::Ready(r) = Pin::new(fut).poll(&mut TaskContext::from_waker(waker)) {
            let (intended_us, bytes) = (*intended_us, *bytes);
            pending.remove(&id);
            settle(publish, intended_us, bytes, done_us, r);
        }
    }
}

struct NativeProducer {
    producer: Producer,
    publish: Arc<Meter>,
    next_id: u64,
    acks: Option<mpsc::Sender<AckMsg>>,
    acker: Option<JoinHandle<()>>,
}

impl LoadProducer for NativeProducer {
    fn send(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> anyhow::Result<()> {
        let intended_us = read_stamp(value).context("record values start with a stamp")?;
        let mut record = ProducerRecord::new(topic, value.to_vec());
        if let Some(k) = key {
            record = record.key(k.to_vec());
        }
        let mut fut = self.producer.send(record);
        let acks = self.acks.as_ref().context("producer already closed")?;
        let id = self.next_id;
        self.next_id += 1;
        let waker = Waker::from(Arc::new(AckWaker {
            id,
            tx: acks.clone(),
        }));
        // Registers the waker; a send that is already settled is recorded now.
        if let Poll::Ready(r) = Pin::new(&mut fut).poll(&mut TaskContext::from_waker(&waker)) {
            settle(&self.publish, intended_us, value.len(), unix_us(), r);
            return Ok(());
        }
        acks.send(AckMsg::Sent {
            id,
            intended_us,
            bytes: value.len(),
            fut,
            waker,
        })
        .context("the acknowledgement thread stopped")
    }

    fn close(mut self: Box<Self>) -> anyhow::Result<()> {
        self.producer.flush();
        if let Some(acks) = self.acks.take() {
            let _ = acks.send(AckMsg::Close);
        }
        if let Some(acker) = self.acker.take() {
            acker
                .join()
                .map_err(|_| anyhow::anyhow!("acknowledgement thread panicked"))?;
        }
        self.producer.close();
        Ok(())
    }
}

struct NativeConsumer {
    consumer: Consumer,
}

impl LoadConsumer for NativeConsumer {
    fn poll(
        &mut self,
        timeout: Duration,
        on_value: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<usize> {
        let records = self.consumer.poll(timeout)?;
        for r in records.iter() {
            on_value(r.value().unwrap_or_default());
        }
        Ok(records.len())
    }

    fn assigned(&self) -> usize {
        self.consumer.assignment().len()
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.consumer.close().context("close the consumer")
    }
}
