//! Helpers for tests that drive the broker's Kafka listener with librdkafka (the
//! `rdkafka` crate): client configs, topic creation, producing and draining.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Longest a test waits for a client operation.
pub const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// A client config for the broker at `bootstrap`.
pub fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("broker.address.family", "v4");
    c
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    config(bootstrap).create().expect("create admin client")
}

/// Creates `topic` with `partitions` partitions and waits for the result.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = admin(bootstrap);
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures_lite::future::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
    ))
    .expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// One record as a test sends and expects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_ms: Option<i64>,
}

/// A record read back, with where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub record: TestRecord,
}

/// A producer with `extra` settings on top of acks=all.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = config(bootstrap);
    c.set("acks", "all").set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("create producer")
}

/// Sends every record to `topic` (partition by key, or `partition` when given),
/// waits for every delivery and returns (partition, offset) per record.
pub fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    records: &[TestRecord],
) -> Vec<(i32, i64)> {
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        let mut headers = rdkafka::message::OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(rdkafka::message::Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        if let Some(ts) = r.timestamp_ms {
            rec = rec.timestamp(ts);
        }
        let delivery = producer
            .send_result(rec)
            .unwrap_or_else(|(e, _)| panic!("enqueue a record: {e}"));
        pending.push(delivery);
    }
    pending
        .into_iter()
        .map(|d| {
            let d = futures_lite::future::block_on(d)
                .expect("delivery future completes")
                .unwrap_or_else(|(e, _)| panic!("record not delivered: {e}"));
            (d.partition, d.offset)
        })
        .collect()
}

/// The record a consumer returned.
pub fn read_record<M: Message>(m: &M) -> ReadRecord {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    ReadRecord {
        partition: m.partition(),
        offset: m.offset(),
        record: TestRecord {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        },
    }
}

/// Polls `consumer` until `count` records arrived (panics after `KAFKA_TIMEOUT`).
pub fn poll_records(consumer: &BaseConsumer, count: usize) -> Vec<ReadRecord> {
    let deadline = Instant::now() + KAFKA_TIMEOUT;
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} records arrived within {KAFKA_TIMEOUT:?}: {:?}",
            out.len(),
            out.iter()
                .map(|r: &ReadRecord| (r.partition, r.offset))
                .collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(read_record(&m)),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

/// Records per partition, in offset order.
pub fn by_partition(records: &[ReadRecord]) -> BTreeMap<i32, Vec<ReadRecord>> {
    let mut out: BTreeMap<i32, Vec<ReadRecord>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition).or_default().push(r.clone());
    }
    for v in out.values_mut() {
        v.sort_by_key(|r| r.offset);
    }
    out
}

/// A consumer in `group` (None: no group, for assign()) reading from the earliest
/// offset, with `extra` settings.
pub fn consumer(bootstrap: &str, group: Option<&str>, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = config(bootstrap);
    c.set("group.id", group.unwrap_or("strata-tests-unused"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("create consumer")
}
