//! Produce → consume round trips through a real broker process, via the client crate
//! and via the `strata` CLI: keyed records land on their murmur2 partition (the
//! partition a Kafka client would choose), keys, values, headers and timestamps come
//! back byte for byte, and each partition keeps the order records were sent in.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_client::{
    partition_for_key, Admin, AdminConfig, Producer, ProducerConfig, ProducerRecord,
};
use strata_tests::broker::{high_watermark, read_range, ReadRecord, TestBroker};

const PARTITIONS: u32 = 4;
/// Records produced through the client.
const CLIENT_RECORDS: u32 = 600;
/// Distinct keys of the client records (plus Kafka's murmur2 test keys).
const CLIENT_KEYS: u32 = 25;
/// Lines piped into `strata produce`.
const CLI_LINES: u32 = 120;
/// Every record's timestamp is this plus its sequence number.
const TIMESTAMP_BASE_MS: i64 = 1_700_000_000_000;

/// Keys with their murmur2 hash from Kafka's own test of `Utils.murmur2`, so the
/// partition check does not rely on the client's hash alone.
const KAFKA_MURMUR2: [(&str, i32); 4] = [
    ("21", -973_932_308),
    ("foobar", -790_332_482),
    ("a-little-bit-long-string", -985_981_536),
    ("a-little-bit-longer-string", -1_486_304_829),
];

fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects")
}

/// The key of client record `seq`: `None` for every 10th (sticky partitioning).
fn client_key(seq: u32) -> Option<String> {
    match seq % 10 {
        0 => None,
        1 => Some(
            KAFKA_MURMUR2[(seq as usize / 10) % KAFKA_MURMUR2.len()]
                .0
                .to_owned(),
        ),
        _ => Some(format!("user-{}", seq % CLIENT_KEYS)),
    }
}

/// What record `seq` was sent with.
fn client_record(topic: &str, seq: u32) -> ProducerRecord {
    // A value with bytes that are not UTF-8, to see bytes come back unchanged.
    let mut value = format!("seq={seq};").into_bytes();
    value.extend_from_slice(&[0xff, 0x00, 0xfe, (seq % 251) as u8]);
    let mut record = ProducerRecord::new(topic, value)
        .header("seq", seq.to_string())
        .header("binary", vec![0u8, 1, 2, 0xff])
        .timestamp_ms(TIMESTAMP_BASE_MS + i64::from(seq));
    record.headers.push(("null-valued".to_owned(), None));
    if seq.is_multiple_of(7) {
        record.headers.push((String::new(), Some(Vec::new()))); // empty key and value
    }
    if let Some(k) = client_key(seq) {
        record = record.key(k);
    }
    record
}

fn seq_of(value: &[u8]) -> u32 {
    let text = value.strip_prefix(b"seq=").expect("value starts with seq=");
    let end = text
        .iter()
        .position(|&b| b == b';')
        .expect("seq ends with ;");
    std::str::from_utf8(&text[..end])
        .expect("ascii seq")
        .parse()
        .expect("numeric seq")
}

#[test]
fn client_round_trip_keeps_keys_headers_and_partition_order() {
    let broker = TestBroker::start();
    let admin = admin(&broker);
    let topic = "orders";
    admin
        .create_topic(topic, PARTITIONS, &[])
        .wait()
        .expect("create topic");

    for (key, hash) in KAFKA_MURMUR2 {
        assert_eq!(
            strata_client::murmur2(key.as_bytes()),
            hash,
            "murmur2({key})"
        );
    }

    let producer = Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        linger: Duration::from_millis(2),
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let pending: Vec<_> = (0..CLIENT_RECORDS)
        .map(|seq| producer.send(client_record(topic, seq)))
        .collect();
    // (partition, offset) -> seq, from the acknowledgements.
    let mut acked = BTreeMap::new();
    for (seq, send) in pending.into_iter().enumerate() {
        let seq = seq as u32;
        let meta = send
            .wait()
            .unwrap_or_else(|e| panic!("send {seq}: {e}\n{}", broker.stderr_tail()));
        assert_eq!(&*meta.topic, topic);
        if let Some(key) = client_key(seq) {
            assert_eq!(
                meta.partition,
                partition_for_key(key.as_bytes(), PARTITIONS),
                "record {seq} with key {key} landed on the wrong partition"
            );
        }
        if let Some(&(key, hash)) = KAFKA_MURMUR2
            .iter()
            .find(|(k, _)| Some(*k) == client_key(seq).as_deref())
        {
            let kafka_partition = (hash & 0x7fff_ffff) as u32 % PARTITIONS;
            assert_eq!(
                meta.partition, kafka_partition,
                "key {key}: not Kafka's partition"
            );
        }
        assert!(
            acked.insert((meta.partition, meta.offset), seq).is_none(),
            "two records acknowledged at {}/{}",
            meta.partition,
            meta.offset
        );
    }
    producer.close();

    let mut seen = 0;
    for partition in 0..PARTITIONS {
        let hw = high_watermark(&admin, topic, partition);
        let sent_here = acked.keys().filter(|(p, _)| *p == partition).count();
        assert_eq!(
            hw, sent_here as i64,
            "high watermark of partition {partition}"
        );
        let records = read_range(&broker.brokers(), topic, partition, 0, hw);
        assert_eq!(
            records.len(),
            sent_here,
            "records read from partition {partition}"
        );
        let mut last_seq_by_key: BTreeMap<Option<Vec<u8>>, u32> = BTreeMap::new();
        let mut last_seq = None;
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.partition, partition);
            assert_eq!(
                r.offset, i as i64,
                "offsets of partition {partition} are dense"
            );
            let seq = acked[&(partition, r.offset)];
            let sent = client_record(topic, seq);
            let value = r.value.as_deref().expect("a value");
            assert_eq!(
                seq_of(value),
                seq,
                "{partition}/{}: value of another record",
                r.offset
            );
            assert_eq!(Some(value), sent.value.as_deref(), "value of record {seq}");
            assert_eq!(r.key, sent.key, "key of record {seq}");
            assert_eq!(r.headers, sent.headers, "headers of record {seq}");
            assert_eq!(
                r.timestamp_ms,
                TIMESTAMP_BASE_MS + i64::from(seq),
                "timestamp of {seq}"
            );
            // Per-partition order: offsets follow the order of send().
            assert!(
                last_seq < Some(seq),
                "partition {partition}: {seq} after {last_seq:?}"
            );
            last_seq = Some(seq);
            if let Some(prev) = last_seq_by_key.insert(r.key.clone(), seq) {
                assert!(prev < seq, "key {:?}: {seq} after {prev}", r.key);
            }
        }
        seen += records.len();
    }
    assert_eq!(seen, CLIENT_RECORDS as usize);

    // The CLI reads what the client wrote, headers included.
    let partition = 1;
    let hw = high_watermark(&admin, topic, partition);
    assert!(hw >= 3, "partition {partition} holds only {hw} records");
    let out = broker.cli(
        &[
            "consume",
            topic,
            "--partition",
            "1",
            "--from",
            "1",
            "--count",
            "2",
            "--format",
            "json",
        ],
        None,
    );
    out.assert_success();
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2, "{out}");
    for (i, line) in lines.iter().enumerate() {
        let offset = i as i64 + 1;
        assert_eq!(line["partition"], partition, "{line}");
        assert_eq!(line["offset"], offset, "{line}");
        let seq = acked[&(partition, offset)];
        assert_eq!(line["headers"]["seq"], seq.to_string(), "{line}");
        assert_eq!(
            line["headers"]["null-valued"],
            serde_json::Value::Null,
            "{line}"
        );
        assert_eq!(
            line["timestamp"],
            TIMESTAMP_BASE_MS + i64::from(seq),
            "{line}"
        );
    }
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn cli_round_trip_keeps_keys_and_partition_order() {
    let broker = TestBroker::start();
    let topic = "lines";
    let out = broker.cli(
        &["topic", "create", topic, "-p", &PARTITIONS.to_string()],
        None,
    );
    out.assert_success();
    assert!(
        out.stdout.contains(&format!("created topic {topic}")),
        "{out}"
    );

    // `key<TAB>value` lines; every 15th has no separator (no key), every 11th has the
    // separator twice (split at the first).
    let mut input = String::new();
    let mut sent = Vec::new(); // (key, value) per line
    for i in 0..CLI_LINES {
        let (key, value) = if i % 15 == 0 {
            (None, format!("unkeyed line {i}"))
        } else if i % 11 == 0 {
            (Some(format!("k{}", i % 9)), format!("line {i}\twith a tab"))
        } else {
            (Some(format!("k{}", i % 9)), format!("line {i}"))
        };
        match &key {
            Some(k) => input.push_str(&format!("{k}\t{value}\n")),
            None => input.push_str(&format!("{value}\n")),
        }
        sent.push((key, value));
    }
    let out = broker.cli(
        &["produce", topic, "--acks", "all", "--key-separator", "\t"],
        Some(input.as_bytes()),
    );
    out.assert_success();
    assert!(
        out.stderr
            .contains(&format!("produced {CLI_LINES} record(s)")),
        "{out}"
    );

    let out = broker.cli(
        &[
            "consume",
            topic,
            "--format",
            "json",
            "--count",
            &CLI_LINES.to_string(),
        ],
        None,
    );
    out.assert_success();
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), CLI_LINES as usize, "{out}");

    let line_index = |value: &str| -> usize {
        let n = value
            .trim_start_matches("unkeyed ")
            .trim_start_matches("line ")
            .split('\t')
            .next()
            .expect("line number");
        n.parse().unwrap_or_else(|_| panic!("bad value {value}"))
    };
    let mut next_offset: BTreeMap<u64, i64> = BTreeMap::new();
    let mut last_line: BTreeMap<u64, usize> = BTreeMap::new();
    let mut seen = vec![false; CLI_LINES as usize];
    for line in &lines {
        assert_eq!(line["topic"], topic, "{line}");
        let partition = line["partition"].as_u64().expect("partition");
        let offset = line["offset"].as_i64().expect("offset");
        let value = line["value"].as_str().expect("value");
        let i = line_index(value);
        assert!(!std::mem::replace(&mut seen[i], true), "line {i} twice");
        let (key, sent_value) = &sent[i];
        assert_eq!(value, sent_value, "{line}");
        assert_eq!(line["key"].as_str(), key.as_deref(), "{line}");
        assert_eq!(line["headers"], serde_json::json!({}), "{line}");
        if let Some(k) = key {
            let want = partition_for_key(k.as_bytes(), PARTITIONS);
            assert_eq!(partition, u64::from(want), "key {k}: {line}");
        }
        // Each partition is printed in offset order, from 0, in the order of the input.
        let expected = next_offset.entry(partition).or_insert(0);
        assert_eq!(offset, *expected, "partition {partition}: {line}");
        *expected += 1;
        if let Some(prev) = last_line.insert(partition, i) {
            assert!(
                prev < i,
                "partition {partition}: line {i} after line {prev}"
            );
        }
    }
    assert!(seen.iter().all(|&s| s), "every line came back");

    // The client reads the CLI's records the same way.
    let first = lines[0]["partition"].as_u64().expect("partition") as u32;
    let count = next_offset[&u64::from(first)];
    let records: Vec<ReadRecord> = read_range(&broker.brokers(), topic, first, 0, count);
    let cli_view: Vec<_> = lines
        .iter()
        .filter(|l| l["partition"] == first)
        .map(|l| {
            (
                l["key"].as_str().map(|k| k.as_bytes().to_vec()),
                l["value"].as_str().map(|v| v.as_bytes().to_vec()),
            )
        })
        .collect();
    let client_view: Vec<_> = records.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(client_view, cli_view);
}

/// A value just under the default `max.message.bytes` (1 MiB + 4 KiB) with its batch.
const LARGE_VALUE_BYTES: usize = 1_000_000;

#[test]
fn large_empty_and_null_values_round_trip() {
    let broker = TestBroker::start();
    let admin = admin(&broker);
    admin
        .create_topic("sizes", 1, &[])
        .wait()
        .expect("create topic");
    let producer = Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let large: Vec<u8> = (0..LARGE_VALUE_BYTES)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let records = vec![
        ProducerRecord::new("sizes", large.clone()).key("large"),
        ProducerRecord::new("sizes", Vec::new()).key("empty"),
        ProducerRecord {
            topic: "sizes".into(),
            key: Some(b"null".to_vec()),
            ..ProducerRecord::default()
        },
        ProducerRecord::new("sizes", large.clone()),
        ProducerRecord::new("sizes", "after"),
    ];
    let sends: Vec<_> = records.iter().map(|r| producer.send(r.clone())).collect();
    for (i, send) in sends.into_iter().enumerate() {
        let meta = send.wait().unwrap_or_else(|e| panic!("send {i}: {e}"));
        assert_eq!((meta.partition, meta.offset), (0, i as i64));
    }
    producer.close();
    let read = read_range(&broker.brokers(), "sizes", 0, 0, records.len() as i64);
    assert_eq!(read.len(), records.len());
    for (r, sent) in read.iter().zip(&records) {
        assert_eq!(r.key, sent.key, "key at {}", r.offset);
        assert_eq!(
            r.value.as_ref().map(Vec::len),
            sent.value.as_ref().map(Vec::len),
            "value length at {}",
            r.offset
        );
        assert!(r.value == sent.value, "value at {} differs", r.offset);
    }
}
