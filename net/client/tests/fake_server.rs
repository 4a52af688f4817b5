//! The client against a fake in-process broker: pipelining, ordering, retries, error
//! mapping and zero-copy consumption, with no real server.

mod fake_broker;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fake_broker::FakeBroker;
use strata_client::{
    partition_for_key, Acks, Admin, AdminConfig, ClientError, Consumer, ConsumerConfig, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
use strata_schema::ErrorCode;

fn producer_config(broker: &FakeBroker) -> ProducerConfig {
    ProducerConfig {
        brokers: broker.brokers(),
        linger: Duration::from_millis(2),
        retry_backoff: Duration::from_millis(5),
        retry_backoff_max: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
        ..ProducerConfig::default()
    }
}

fn consumer_config(broker: &FakeBroker) -> ConsumerConfig {
    ConsumerConfig {
        brokers: broker.brokers(),
        fetch_max_wait: Duration::from_millis(50),
        ..ConsumerConfig::default()
    }
}

#[test]
fn produce_then_consume_keeps_keys_headers_and_partition_order() {
    let broker = FakeBroker::start(&[("orders", 3)]);
    let producer = Producer::connect(producer_config(&broker)).unwrap();
    let mut futures = Vec::new();
    for i in 0..300u32 {
        let key = format!("user-{}", i % 17);
        let record = ProducerRecord::new("orders", format!("v{i}"))
            .key(key.clone())
            .header("seq", i.to_le_bytes().to_vec());
        futures.push((key, i, producer.send(record)));
    }
    producer.flush();
    let mut acked: Vec<(String, u32, RecordMetadata)> = Vec::new();
    for (key, i, f) in futures {
        let meta = f.wait().unwrap();
        assert_eq!(
            meta.partition,
            partition_for_key(key.as_bytes(), 3),
            "murmur2"
        );
        acked.push((key, i, meta));
    }
    // Offsets are dense per partition and follow send order.
    let mut next: HashMap<u32, i64> = HashMap::new();
    for (_, _, meta) in &acked {
        let n = next.entry(meta.partition).or_insert(0);
        assert_eq!(meta.offset, *n);
        *n += 1;
    }

    let mut consumer = Consumer::connect(consumer_config(&broker)).unwrap();
    consumer.assign(&[("orders", 0), ("orders", 1), ("orders", 2)]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 300 && Instant::now() < deadline {
        let records = consumer.poll(Duration::from_millis(200)).unwrap();
        for r in &records {
            let seq = r.headers().find(|(k, _)| *k == "seq").unwrap().1.unwrap();
            let seq = u32::from_le_bytes(seq.try_into().unwrap());
            assert_eq!(r.value().unwrap(), format!("v{seq}").as_bytes());
            assert_eq!(r.key().unwrap(), format!("user-{}", seq % 17).as_bytes());
            seen.push((r.partition(), r.offset(), seq));
        }
    }
    assert_eq!(seen.len(), 300);
    for p in 0..3 {
        let offsets: Vec<i64> = seen.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
        let seqs: Vec<u32> = seen.iter().filter(|s| s.0 == p).map(|s| s.2).collect();
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "dense offsets on {p}"
        );
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "send order on {p}");
        assert_eq!(
            consumer.position("orders", p).unwrap(),
            offsets.len() as i64
        );
    }
    assert!(consumer.poll(Duration::from_millis(30)).unwrap().is_empty());
}

#[test]
fn retriable_errors_are_retried_in_order() {
    let broker = FakeBroker::start(&[("t", 1)]);
    broker.with(|s| {
        s.fail_produces = 3;
        s.fail_code = Some(ErrorCode::RequestTimedOut);
    });
    let config = ProducerConfig {
        batch_bytes: 200, // a few records per batch: several batches queue up
        ..producer_config(&broker)
    };
    let producer = Producer::connect(config).unwrap();
    let futures: Vec<_> = (0..50)
        .map(|i| producer.send(ProducerRecord::new("t", format!("{i:03}")).partition(0)))
        .collect();
    let offsets: Vec<i64> = futures
        .into_iter()
        .map(|f| f.wait().unwrap().offset)
        .collect();
    assert_eq!(
        offsets,
        (0..50).collect::<Vec<i64>>(),
        "order kept across retries"
    );
    assert!(broker.with(|s| s.produce_requests) > 3);

    let mut consumer = Consumer::connect(consumer_config(&broker)).unwrap();
    consumer.assign(&[("t", 0)]);
    let mut values = Vec::new();
    while values.len() < 50 {
        let records = consumer.poll(Duration::from_secs(2)).unwrap();
        assert!(!records.is_empty());
        values.extend(
            records
                .iter()
                .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap()),
        );
    }
    let expected: Vec<String> = (0..50).map(|i| format!("{i:03}")).collect();
    assert_eq!(values, expected);
}

#[test]
fn retries_run_out_and_fatal_errors_are_not_retried() {
    let broker = FakeBroker::start(&[("t", 1)]);
    broker.with(|s| {
        s.fail_produces = 100;
        s.fail_code = Some(ErrorCode::RequestTimedOut);
    });
    let config = ProducerConfig {
        retries: 2,
        ..producer_config(&broker)
    };
    let producer = Producer::connect(config).unwrap();
    let e = producer
        .send_blocking(ProducerRecord::new("t", "x").partition(0))
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RequestTimedOut));
    assert_eq!(
        broker.with(|s| s.produce_requests),
        3,
        "one send and two retries"
    );

    broker.with(|s| {
        s.fail_produces = 1;
        s.fail_code = Some(ErrorCode::MessageTooLarge);
    });
    let e = producer
        .send_blocking(ProducerRecord::new("t", "x").partition(0))
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::MessageTooLarge));
    assert_eq!(broker.with(|s| s.produce_requests), 4, "not retried");
}

#[test]
fn unknown_topic_is_a_typed_error_with_the_brokers_message() {
    let broker = FakeBroker::start(&[("t", 1)]);
    let producer = Producer::connect(producer_config(&broker)).unwrap();
    let e = producer
        .send_blocking(ProducerRecord::new("nope", "x"))
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
    assert!(e.to_string().contains("topic `nope` does not exist"), "{e}");
    let admin = Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .unwrap();
    let e = admin.describe_topic("nope").wait().unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
    let t = admin.describe_topic("t").wait().unwrap();
    assert_eq!(t.partitions.len(), 1);
}

#[test]
fn pipelined_requests_complete_by_correlation_id_out_of_order() {
    let broker = FakeBroker::start(&[("t", 1)]);
    let producer = Producer::connect(producer_config(&broker)).unwrap();
    for i in 0..20 {
        producer.send(
            ProducerRecord::new("t", "v")
                .partition(0)
                .timestamp_ms(1000 + i),
        );
    }
    producer.flush();
    let admin = Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .unwrap();
    // Answers come back only once 16 requests are pending, and in reverse order.
    broker.with(|s| s.hold_responses = 16);
    let calls: Vec<_> = (0..16)
        .map(|i| admin.list_offsets("t", 0, OffsetSpec::Timestamp(1000 + i)))
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.wait().unwrap().offset, i as i64);
    }
}

#[test]
fn requests_time_out_without_a_response() {
    let broker = FakeBroker::start(&[("t", 1)]);
    let admin = Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        request_timeout: Duration::from_millis(100),
    })
    .unwrap();
    broker.with(|s| s.mute = true);
    let started = Instant::now();
    let e = admin.list_topics(false).wait().unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
    assert!(e.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn connect_error_names_the_address() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let e = Producer::connect(ProducerConfig {
        brokers: vec![addr.clone()],
        ..ProducerConfig::default()
    })
    .err()
    .unwrap();
    assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&addr) && e.to_string().contains("strata serve"),
        "{e}"
    );
}

#[test]
fn seek_skips_records_below_the_offset_in_the_first_batch() {
    let broker = FakeBroker::start(&[("t", 1)]);
    let producer = Producer::connect(ProducerConfig {
        linger: Duration::from_secs(60), // one batch, sent by flush
        ..producer_config(&broker)
    })
    .unwrap();
    for i in 0..10i64 {
        producer.send(
            ProducerRecord::new("t", format!("{i}"))
                .partition(0)
                .timestamp_ms(5000 + i),
        );
    }
    producer.flush();
    assert_eq!(broker.with(|s| s.topics["t"][0].len()), 1, "a single batch");

    let mut consumer = Consumer::connect(consumer_config(&broker)).unwrap();
    consumer.assign(&[("t", 0)]);
    consumer.seek("t", 0, 6).unwrap();
    let records = consumer.poll(Duration::from_secs(1)).unwrap();
    let offsets: Vec<i64> = records.iter().map(|r| r.offset()).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9]);
    assert_eq!(records.len(), 4);
    assert_eq!(consumer.position("t", 0).unwrap(), 10);
    assert_eq!(consumer.high_watermark("t", 0), Some(10));

    consumer.seek_to_beginning("t", 0).unwrap();
    assert_eq!(consumer.position("t", 0).unwrap(), 0);
    consumer.seek_to_timestamp("t", 0, 5003).unwrap();
    assert_eq!(consumer.position("t", 0).unwrap(), 3);
    consumer.seek_to_end("t", 0).unwrap();
    assert_eq!(consumer.position("t", 0).unwrap(), 10);
    assert!(consumer.poll(Duration::from_millis(30)).unwrap().is_empty());
    // Out of range resets by policy (earliest).
    consumer.seek("t", 0, 99).unwrap();
    let records = consumer.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(records.iter().next().unwrap().offset(), 0);
    assert!(consumer.seek("other", 0, 0).is_err(), "not assigned");
}

#[test]
fn acks_zero_does_not_wait_for_the_broker() {
    let broker = FakeBroker::start(&[("t", 1)]);
    let producer = Producer::connect(ProducerConfig {
        acks: Acks::None,
        ..producer_config(&broker)
    })
    .unwrap();
    let meta = producer
        .send_blocking(ProducerRecord::new("t", "x").partition(0))
        .unwrap();
    assert_eq!(meta.offset, -1);
    producer.close();
    let deadline = Instant::now() + Duration::from_secs(2);
    while broker.with(|s| s.topics["t"][0].len()) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(broker.with(|s| s.topics["t"][0].len()), 1);
}

#[test]
fn sends_are_awaitable_from_tokio() {
    let broker = FakeBroker::start(&[("t", 2)]);
    let producer = Producer::connect(producer_config(&broker)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let offsets = rt.block_on(async {
        let mut offsets = Vec::new();
        for i in 0..5 {
            let meta = producer
                .send(ProducerRecord::new("t", "v").partition(1).timestamp_ms(i))
                .await
                .unwrap();
            offsets.push(meta.offset);
        }
        offsets
    });
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
}

#[test]
fn lost_connection_is_retried_on_a_new_one() {
    let broker = FakeBroker::start(&[("t", 1)]);
    broker.with(|s| s.close_on_produce = 2);
    let producer = Producer::connect(producer_config(&broker)).unwrap();
    let futures: Vec<_> = (0..10)
        .map(|i| producer.send(ProducerRecord::new("t", format!("{i}")).partition(0)))
        .collect();
    let offsets: Vec<i64> = futures
        .into_iter()
        .map(|f| f.wait().unwrap().offset)
        .collect();
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    assert_eq!(broker.with(|s| s.close_on_produce), 0);
}

#[test]
fn full_buffer_blocks_send_then_fails_after_max_block() {
    let broker = FakeBroker::start(&[("t", 1)]);
    broker.with(|s| s.mute = true);
    let producer = Producer::connect(ProducerConfig {
        batch_bytes: 1024,
        buffer_bytes: 4096,
        max_block: Duration::from_millis(100),
        request_timeout: Duration::from_secs(60),
        ..producer_config(&broker)
    })
    .unwrap();
    let value = vec![7u8; 900];
    let mut accepted = Vec::new();
    let started = Instant::now();
    let error = loop {
        let f = producer.send(ProducerRecord::new("t", value.clone()).partition(0));
        match f.wait_timeout(Duration::from_millis(1)) {
            Ok(Err(e)) => break e,
            Ok(Ok(meta)) => panic!("a muted broker acknowledged {meta:?}"),
            Err(pending) => accepted.push(pending),
        }
        assert!(accepted.len() < 100, "buffer_bytes is not enforced");
    };
    assert!(matches!(error, ClientError::BufferFull { .. }), "{error:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "send blocked first"
    );
    assert!(
        (3..=5).contains(&accepted.len()),
        "{} accepted",
        accepted.len()
    );
    // Dropping the producer would wait for the muted broker; leak it instead.
    std::mem::forget(producer);
}

#[test]
fn consumer_polls_from_tokio() {
    let broker = FakeBroker::start(&[("t", 1)]);
    let producer = Producer::connect(producer_config(&broker)).unwrap();
    for i in 0..3 {
        producer.send(ProducerRecord::new("t", format!("{i}")).partition(0));
    }
    producer.flush();
    let mut consumer = Consumer::connect(consumer_config(&broker)).unwrap();
    consumer.assign(&[("t", 0)]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let values = rt.block_on(async {
        let records = consumer.poll_async(Duration::from_secs(1)).await.unwrap();
        records
            .iter()
            .map(|r| r.value().unwrap().to_vec())
            .collect::<Vec<_>>()
    });
    assert_eq!(values, vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec()]);
}

#[test]
fn a_failing_partition_does_not_advance_the_others() {
    let broker = FakeBroker::start(&[("t", 1)]);
    let producer = Producer::connect(producer_config(&broker)).unwrap();
    producer
        .send_blocking(ProducerRecord::new("t", "x").partition(0))
        .unwrap();
    let mut consumer = Consumer::connect(consumer_config(&broker)).unwrap();
    consumer.assign(&[("t", 0)]);
    consumer.seek("t", 0, 0).unwrap();
    consumer.assign(&[("t", 0), ("gone", 0)]);
    consumer.seek("gone", 0, 0).unwrap();
    let e = consumer.poll(Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
    assert_eq!(consumer.position("t", 0).unwrap(), 0, "kept its position");
    consumer.assign(&[("t", 0)]);
    let records = consumer.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(
        records.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        vec![0]
    );
}

#[test]
fn clients_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Producer>();
    send_sync::<Admin>();
    send::<Consumer>();
    send::<strata_client::SendFuture>();
    send::<strata_client::Call<strata_client::TopicDescription>>();
    send::<strata_client::Records>();
}

#[test]
fn large_batches_and_fetches_cross_many_socket_reads() {
    let broker = FakeBroker::start(&[("t", 1)]);
    let producer = Producer::connect(ProducerConfig {
        batch_bytes: 1 << 20,
        ..producer_config(&broker)
    })
    .unwrap();
    let value: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let futures: Vec<_> = (0..2000)
        .map(|_| producer.send(ProducerRecord::new("t", value.clone()).partition(0)))
        .collect();
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(f.wait().unwrap().offset, i as i64);
    }
    let mut consumer = Consumer::connect(ConsumerConfig {
        fetch_partition_max_bytes: 16 << 20,
        ..consumer_config(&broker)
    })
    .unwrap();
    consumer.assign(&[("t", 0)]);
    let mut next = 0i64;
    while next < 2000 {
        let records = consumer.poll(Duration::from_secs(2)).unwrap();
        assert!(!records.is_empty());
        for r in &records {
            assert_eq!(r.offset(), next);
            assert_eq!(r.value().unwrap(), &value[..]);
            next += 1;
        }
    }
}
