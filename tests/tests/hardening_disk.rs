//! Storage hardening across processes: disk reserved in proportion to use, a full
//! disk (a small loop-mounted filesystem) refusing produces with a clear error while
//! reads, metadata and topic deletion keep working and writes resume by themselves,
//! a descriptor limit that delays produces with errors (never silence) and heals,
//! and `strata topic repair` reopening a partition fenced by corrupt data.
//!
//! The loop-mount tests need root (mount); they skip with a message otherwise.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use strata_client::{Admin, AdminConfig, Producer, ProducerConfig, ProducerRecord};
use strata_schema::{ErrorCode, KafkaBatchBuilder};
use strata_tests::broker::{high_watermark, read_range, TestBroker};
use strata_tests::kafka_wire::KafkaWire;

/// Kafka error codes the tests expect.
const REQUEST_TIMED_OUT: i16 = 7;
const KAFKA_STORAGE_ERROR: i16 = 56;
/// Size of the loop-mounted filesystem.
const FS_BYTES: u64 = 64 << 20;
/// The free-space floor of the full-disk test.
const FLOOR_BYTES: u64 = 8 << 20;
/// How long a condition that heals by itself may take to heal (polled).
const HEAL_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(100);

/// A small ext4 filesystem in a file, loop-mounted at a directory until dropped.
struct LoopMount {
    at: PathBuf,
    _image_dir: tempfile::TempDir,
}

impl LoopMount {
    /// Mounts a fresh `FS_BYTES` ext4 (no blocks reserved for root) at `at`.
    fn new(at: &Path) -> Result<LoopMount, String> {
        let image_dir = tempfile::Builder::new()
            .prefix("strata-loop-image-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let image = image_dir.path().join("fs.img");
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        run(Command::new("truncate")
            .arg("-s")
            .arg(FS_BYTES.to_string())
            .arg(&image))?;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-m", "0"])
            .arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(at))?;
        Ok(LoopMount {
            at: at.to_path_buf(),
            _image_dir: image_dir,
        })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// A broker whose data dir is a small loop-mounted filesystem. Drops the broker
/// (SIGKILL) before unmounting.
struct DiskBroker {
    broker: Option<TestBroker>,
    mount: Option<LoopMount>,
}

impl DiskBroker {
    /// `None` (with a message) when this machine cannot loop-mount.
    fn start(extra_args: &[&str]) -> Option<DiskBroker> {
        let mut mount = Err(String::new());
        let broker = TestBroker::start_prepared(2, extra_args, None, |dir| {
            mount = LoopMount::new(dir);
        });
        match mount {
            Ok(m) => Some(DiskBroker {
                broker: Some(broker),
                mount: Some(m),
            }),
            Err(e) => {
                eprintln!("SKIPPED: cannot loop-mount a small filesystem here: {e}");
                None
            }
        }
    }

    fn broker(&self) -> &TestBroker {
        self.broker.as_ref().expect("broker running")
    }
}

impl Drop for DiskBroker {
    fn drop(&mut self) {
        if let Some(mut b) = self.broker.take() {
            if b.is_running() {
                b.kill();
            }
            // Removes the files on the mount; the mount point itself is busy.
            let root = b.data_dir().parent().map(Path::to_path_buf);
            drop(b);
            drop(self.mount.take());
            if let Some(root) = root {
                let _ = std::fs::remove_dir_all(root);
            }
        }
    }
}

/// (bytes free for unprivileged writers, filesystem size) of `dir`'s filesystem.
fn statvfs(dir: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: statvfs writes only the struct passed; `path` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}", dir.display());
    (
        st.f_bavail as u64 * st.f_frsize as u64,
        st.f_blocks as u64 * st.f_frsize as u64,
    )
}

/// Writes `path` (appending) until the filesystem has at most `free_max` bytes free,
/// or until a write fails (ENOSPC). Returns the free bytes left.
fn fill(path: &Path, free_max: u64) -> u64 {
    let dir = path.parent().expect("file in a dir");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open filler");
    let mb = vec![0x66u8; 1 << 20];
    for _ in 0..(FS_BYTES >> 12) {
        let (free, _) = statvfs(dir);
        if free <= free_max {
            return free;
        }
        let chunk = if free - free_max >= mb.len() as u64 {
            mb.len()
        } else {
            4096
        };
        if f.write_all(&mb[..chunk])
            .and_then(|()| f.sync_all())
            .is_err()
        {
            return statvfs(dir).0;
        }
    }
    statvfs(dir).0
}

fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects")
}

fn native_producer(broker: &TestBroker, request_timeout: Duration) -> Producer {
    Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        linger: Duration::from_millis(1),
        retries: 0,
        request_timeout,
        ..ProducerConfig::default()
    })
    .expect("producer connects")
}

/// Values acknowledged per (topic, partition) and offset.
type Acked = BTreeMap<(String, u32), BTreeMap<i64, Vec<u8>>>;

/// Sends one record and records it if acknowledged.
fn send(
    producer: &Producer,
    acked: &mut Acked,
    topic: &str,
    partition: u32,
    value: Vec<u8>,
) -> Result<(), strata_client::ClientError> {
    let meta = producer
        .send(ProducerRecord::new(topic, value.clone()).partition(partition))
        .wait()?;
    acked
        .entry((topic.to_owned(), partition))
        .or_default()
        .insert(meta.offset, value);
    Ok(())
}

/// Every acknowledged record is there, with its value.
fn assert_all_acked_readable(broker: &TestBroker, acked: &Acked) {
    let admin = admin(broker);
    for ((topic, p), records) in acked {
        let hw = high_watermark(&admin, topic, *p);
        let read: BTreeMap<i64, Vec<u8>> = read_range(&broker.brokers(), topic, *p, 0, hw)
            .into_iter()
            .map(|r| (r.offset, r.value.unwrap_or_default()))
            .collect();
        for (offset, value) in records {
            assert_eq!(
                read.get(offset),
                Some(value),
                "{topic}-{p}: acknowledged offset {offset} lost or changed\n{}",
                broker.stderr_tail()
            );
        }
    }
}

/// Bytes on disk (allocated blocks) under `dir`.
fn disk_usage_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in walk(dir) {
        if let Ok(m) = std::fs::symlink_metadata(&entry) {
            total += m.blocks() * 512;
        }
    }
    total
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn light_partitions_cost_their_data_plus_a_few_kib() {
    const PARTITIONS: u32 = 1000;
    let broker = TestBroker::start();
    let admin = admin(&broker);
    admin
        .create_topic("light", PARTITIONS, &[])
        .wait()
        .expect("create 1000 partitions");
    let before = disk_usage_bytes(&broker.data_dir());
    let producer = native_producer(&broker, Duration::from_secs(60));
    let pending: Vec<_> = (0..PARTITIONS)
        .map(|p| producer.send(ProducerRecord::new("light", vec![b'x'; 100]).partition(p)))
        .collect();
    for (p, s) in pending.into_iter().enumerate() {
        s.wait()
            .unwrap_or_else(|e| panic!("partition {p}: {e}\n{}", broker.stderr_tail()));
    }
    let after = disk_usage_bytes(&broker.data_dir());
    let per_partition = after.saturating_sub(before) / u64::from(PARTITIONS);
    eprintln!(
        "disk: {} partitions before any record {} KiB, after one 100-byte record each {} KiB: \
         {} bytes more per partition",
        PARTITIONS,
        before >> 10,
        after >> 10,
        per_partition
    );
    // One data block and its reservation step, and index blocks: a few KiB, where
    // each written partition used to reserve 32 MiB.
    assert!(
        per_partition <= 48 << 10,
        "a partition with one 100-byte record takes {per_partition} bytes of disk"
    );
}

#[test]
fn a_full_disk_refuses_produces_keeps_reads_and_deletes_working_and_heals() {
    let floor = FLOOR_BYTES.to_string();
    let Some(disk) = DiskBroker::start(&["--storage-min-free-bytes", &floor]) else {
        return;
    };
    let broker = disk.broker();
    let data = broker.data_dir();
    let admin = admin(broker);
    admin
        .create_topic("keep", 2, &[])
        .wait()
        .expect("create keep");
    admin
        .create_topic("hog", 1, &[])
        .wait()
        .expect("create hog");
    let producer = native_producer(broker, Duration::from_secs(10));
    let mut acked = Acked::new();
    for i in 0..100u32 {
        send(
            &producer,
            &mut acked,
            "keep",
            i % 2,
            format!("before-{i}").into_bytes(),
        )
        .expect("produce before the disk fills");
    }
    // About 6 MiB in `hog`: what deleting it frees.
    let mut hog = Acked::new();
    for i in 0..96u32 {
        let mut v = vec![b'h'; 64 << 10];
        v[..4].copy_from_slice(&i.to_be_bytes());
        send(&producer, &mut hog, "hog", 0, v).expect("produce to hog");
    }

    // Below the floor, not yet full: produces are refused with a storage error.
    let free = fill(&data.join("filler-1"), FLOOR_BYTES - (2 << 20));
    assert!(free < FLOOR_BYTES, "filled to {free} bytes free");
    let started = Instant::now();
    let refusal = loop {
        assert!(
            started.elapsed() < HEAL_DEADLINE,
            "produces still accepted {} ms after the disk went below the floor\n{}",
            started.elapsed().as_millis(),
            broker.stderr_tail()
        );
        match send(&producer, &mut acked, "keep", 0, b"while-filling".to_vec()) {
            Ok(()) => std::thread::sleep(POLL),
            Err(e) => break e,
        }
    };
    assert_eq!(refusal.code(), Some(ErrorCode::StorageError), "{refusal}");
    assert!(
        refusal.to_string().contains("storage.min.free.bytes"),
        "the error says why: {refusal}"
    );
    // The native CLI says so too.
    let cli = broker.cli(&["produce", "keep"], Some(b"from-the-cli\n"));
    assert!(!cli.status.success(), "CLI produce below the floor: {cli}");
    assert!(cli.stderr.contains("STORAGE_ERROR"), "{cli}");
    // A Kafka client gets KAFKA_STORAGE_ERROR (retriable; with retries off it
    // reports it).
    let kafka = strata_tests::kafka::producer(
        &broker.kafka_addr(),
        &[("retries", "0"), ("message.timeout.ms", "20000")],
    );
    let delivery = futures_lite::future::block_on(
        kafka
            .send_result(
                FutureRecord::<[u8], [u8]>::to("keep")
                    .partition(1)
                    .payload(b"from-kafka".as_slice()),
            )
            .unwrap_or_else(|(e, _)| panic!("enqueue: {e}")),
    )
    .expect("delivery report");
    match delivery {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError), _)) => {}
        other => panic!(
            "a Kafka produce below the floor: {:?}\n{}",
            other.map(|d| (d.partition, d.offset)).map_err(|(e, _)| e),
            broker.stderr_tail()
        ),
    }

    // Reads and metadata keep working.
    assert_all_acked_readable(broker, &acked);
    assert_all_acked_readable(broker, &hog);

    // Now really full: deleting a topic still works, and frees its space.
    let free = fill(&data.join("filler-2"), 0);
    eprintln!("disk full: {free} bytes free");
    admin.delete_topic("hog").wait().unwrap_or_else(|e| {
        panic!(
            "delete a topic on a full disk: {e}\n{}",
            broker.stderr_tail()
        )
    });
    assert!(
        !broker.partition_dir("hog", 0).exists(),
        "hog's data is gone"
    );
    let names: Vec<String> = admin
        .list_topics(false)
        .wait()
        .expect("list topics on a full disk")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"keep".to_owned()) && !names.contains(&"hog".to_owned()));

    // Space comes back: writes resume by themselves, without a restart.
    std::fs::remove_file(data.join("filler-1")).expect("remove filler");
    std::fs::remove_file(data.join("filler-2")).expect("remove filler");
    let started = Instant::now();
    let mut resumed = 0;
    while resumed < 20 {
        assert!(
            started.elapsed() < HEAL_DEADLINE,
            "produces still refused {} ms after space was freed\n{}",
            started.elapsed().as_millis(),
            broker.stderr_tail()
        );
        match send(
            &producer,
            &mut acked,
            "keep",
            resumed % 2,
            format!("after-{resumed}").into_bytes(),
        ) {
            Ok(()) => resumed += 1,
            Err(_) => std::thread::sleep(POLL),
        }
    }
    let ok = strata_tests::kafka::produce(
        &kafka,
        "keep",
        Some(1),
        &[strata_tests::kafka::TestRecord {
            key: None,
            value: Some(b"kafka-after".to_vec()),
            headers: Vec::new(),
            timestamp_ms: None,
        }],
    );
    assert_eq!(ok.len(), 1);
    assert_all_acked_readable(broker, &acked);
}

/// Sends one acks=all Kafka batch of one record with `timeout_ms`; returns its error
/// code and base offset. The call fails the test if no response arrives (30 s).
fn kafka_produce(wire: &mut KafkaWire, topic: &str, value: &[u8], timeout_ms: i32) -> (i16, i64) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut b = KafkaBatchBuilder::new();
    b.push(now_ms, None, Some(value), &[]);
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = timeout_ms;
    let mut t = TopicProduceData::default();
    t.name = kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(
        topic.to_owned(),
    ));
    let mut part = PartitionProduceData::default();
    part.index = 0;
    part.records = Some(Bytes::from(b.build()));
    t.partition_data.push(part);
    req.topic_data.push(t);
    let resp: ProduceResponse = wire.call(ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn enospc_under_no_floor_answers_every_produce_and_writes_resume() {
    let Some(disk) = DiskBroker::start(&["--storage-min-free-bytes", "0"]) else {
        return;
    };
    let broker = disk.broker();
    let data = broker.data_dir();
    admin(broker)
        .create_topic("t", 1, &[])
        .wait()
        .expect("create t");
    let mut wire = KafkaWire::connect(&broker.kafka_addr());
    let mut acked: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for i in 0..20 {
        let v = format!("before-{i}").into_bytes();
        let (code, offset) = kafka_produce(&mut wire, "t", &v, 5_000);
        assert_eq!(code, 0, "produce {i}\n{}", broker.stderr_tail());
        acked.insert(offset, v);
    }
    fill(&data.join("filler"), 0);
    // Every produce is answered. The first whose write hits ENOSPC waits for its
    // durability and gets REQUEST_TIMED_OUT at its timeout_ms; the partition's writes
    // are then stalled (retried, not fenced) and later produces are refused at once.
    let mut codes = Vec::new();
    for i in 0..2_000 {
        let v = vec![b'f'; 4096];
        let (code, offset) = kafka_produce(&mut wire, "t", &v, 2_000);
        if code == 0 {
            acked.insert(offset, v);
        } else {
            codes.push(code);
            if codes.len() >= 5 {
                break;
            }
        }
        assert!(i < 1_999, "a full disk never refused a produce");
    }
    assert_eq!(
        codes[0], REQUEST_TIMED_OUT,
        "the produce stuck on the full disk answers REQUEST_TIMED_OUT: {codes:?}"
    );
    assert!(
        codes[1..]
            .iter()
            .all(|&c| c == KAFKA_STORAGE_ERROR || c == REQUEST_TIMED_OUT),
        "{codes:?}"
    );
    std::fs::remove_file(data.join("filler")).expect("remove filler");
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < HEAL_DEADLINE,
            "writes did not resume within {} ms of space coming back\n{}",
            HEAL_DEADLINE.as_millis(),
            broker.stderr_tail()
        );
        let v = b"after".to_vec();
        let (code, offset) = kafka_produce(&mut wire, "t", &v, 5_000);
        if code == 0 {
            acked.insert(offset, v);
            break;
        }
        std::thread::sleep(POLL);
    }
    let mut all = Acked::new();
    all.insert(("t".to_owned(), 0), acked);
    assert_all_acked_readable(broker, &all);
}

/// Open descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_low_descriptor_limit_answers_errors_and_heals_when_descriptors_free_up() {
    // Each written partition holds 3 descriptors (log, index, time index); the
    // broker itself needs some 40.
    const OPEN_FILES_MAX: u64 = 160;
    const HOG_PARTITIONS: u32 = 60;
    let broker = TestBroker::start_prepared(2, &[], Some(OPEN_FILES_MAX), |_| {});
    let admin = admin(&broker);
    admin
        .create_topic("victim", 4, &[])
        .wait()
        .expect("create victim");
    admin
        .create_topic("hog", HOG_PARTITIONS, &[])
        .wait()
        .expect("create hog");
    let producer = native_producer(&broker, Duration::from_secs(3));
    let mut acked = Acked::new();
    // Write every hog partition: descriptors run out part way.
    let started = Instant::now();
    let pending: Vec<_> = (0..HOG_PARTITIONS)
        .map(|p| {
            (
                p,
                producer.send(ProducerRecord::new("hog", b"h".to_vec()).partition(p)),
            )
        })
        .collect();
    let mut refused = Vec::new();
    for (p, s) in pending {
        match s.wait() {
            Ok(_) => {}
            Err(e) => refused.push((p, e)),
        }
    }
    eprintln!(
        "hog: {} of {HOG_PARTITIONS} produces refused in {} ms (first: {:?})",
        refused.len(),
        started.elapsed().as_millis(),
        refused.first().map(|(_, e)| e.to_string())
    );
    assert!(
        !refused.is_empty(),
        "the descriptor limit was never reached"
    );
    // Errors, not silence: each refusal is a broker error code, retriable.
    for (p, e) in &refused {
        assert!(
            matches!(
                e.code(),
                Some(ErrorCode::ResourceExhausted | ErrorCode::RequestTimedOut)
            ),
            "hog-{p}: {e}\n{}",
            broker.stderr_tail()
        );
    }
    // Descriptors free up (the hog goes away): every partition of the other topic
    // takes writes again, by itself.
    admin.delete_topic("hog").wait().expect("delete hog");
    let started = Instant::now();
    for p in 0..4 {
        loop {
            assert!(
                started.elapsed() < HEAL_DEADLINE,
                "victim-{p} still refuses writes after descriptors freed up\n{}",
                broker.stderr_tail()
            );
            match send(
                &producer,
                &mut acked,
                "victim",
                p,
                format!("v{p}").into_bytes(),
            ) {
                Ok(()) => break,
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }
    eprintln!("broker holds {} descriptors", broker_pid_fds(&broker));
    assert_all_acked_readable(&broker, &acked);
}

fn broker_pid_fds(broker: &TestBroker) -> usize {
    open_fds(broker.pid())
}

#[test]
fn repair_reopens_a_partition_fenced_by_corrupt_data() {
    let mut broker = TestBroker::start();
    let admin = admin(&broker);
    admin
        .create_topic("bad", 1, &[("segment.bytes", "65536")])
        .wait()
        .expect("create");
    let producer = native_producer(&broker, Duration::from_secs(10));
    let mut acked = Acked::new();
    for i in 0..64u32 {
        send(
            &producer,
            &mut acked,
            "bad",
            0,
            vec![b'a' + (i % 26) as u8; 4000],
        )
        .expect("produce");
    }
    drop(producer);
    broker.stop_gracefully();
    // Damage a batch in the middle of the first (closed) segment.
    let first = broker
        .partition_dir("bad", 0)
        .join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&first).expect("read segment");
    assert!(bytes.len() > 20_000, "the first segment is closed and full");
    bytes[10_000] ^= 0xff;
    std::fs::write(&first, &bytes).expect("corrupt segment");
    broker.restart();
    // Reading the damage fences the partition; writes are refused.
    let mut consumer = strata_client::Consumer::connect(strata_client::ConsumerConfig {
        brokers: broker.brokers(),
        ..strata_client::ConsumerConfig::default()
    })
    .expect("consumer connects");
    consumer.assign(&[("bad", 0)]);
    consumer.seek("bad", 0, 0).expect("seek");
    let read_error = (0..20)
        .find_map(|_| consumer.poll(Duration::from_secs(1)).err())
        .expect("reading the corrupt batch fails");
    assert_eq!(
        read_error.code(),
        Some(ErrorCode::StorageError),
        "{read_error}"
    );
    let producer = native_producer(&broker, Duration::from_secs(10));
    let mut scratch = Acked::new();
    let fenced = send(&producer, &mut scratch, "bad", 0, b"x".to_vec())
        .expect_err("a fenced partition refuses writes");
    assert_eq!(fenced.code(), Some(ErrorCode::PartitionFenced), "{fenced}");
    // Corrupt data is not reopened by itself (it would fence again): still fenced
    // after the healer's minimum back-off.
    std::thread::sleep(Duration::from_secs(2));
    assert!(send(&producer, &mut scratch, "bad", 0, b"x".to_vec()).is_err());
    // The operator reopens it.
    broker
        .cli(&["topic", "repair", "bad", "--partition", "0"], None)
        .assert_success();
    send(&producer, &mut acked, "bad", 0, b"after-repair".to_vec())
        .unwrap_or_else(|e| panic!("produce after repair: {e}\n{}", broker.stderr_tail()));
    // An unknown partition is a clear error.
    broker
        .cli(&["topic", "repair", "bad", "--partition", "7"], None)
        .assert_user_error();
}
