"""kafka-python (a Kafka client written in Python, independent of librdkafka)
against strata's Kafka listener: admin, produce with compression, a consumer group
with commits, and offsets by timestamp. Run by tests/tests/kafka_python.rs with the
listener address; exits non-zero with a message on the first failure."""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

BOOTSTRAP = sys.argv[1]
TIMEOUT_S = 30


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def admin_round_trip():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="kp-admin")
    admin.create_topics([NewTopic("py-admin", num_partitions=2, replication_factor=1)])
    check("py-admin" in admin.list_topics(), "created topic is listed")
    admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, "py-admin", configs={"retention.ms": "7200000"})]
    )
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "py-admin")])
    text = repr(described)
    check("7200000" in text, f"altered retention.ms is described: {text[:400]}")
    refused = admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, "py-admin", configs={"retention.ms": "soon"})]
    )
    check("InvalidConfiguration" in repr(refused), f"an invalid value is refused: {refused!r}")
    admin.create_partitions({"py-admin": NewPartitions(total_count=3)})
    parts = admin.describe_topics(["py-admin"])[0]["partitions"]
    check(len(parts) == 3, f"3 partitions after create_partitions, got {len(parts)}")
    admin.delete_topics(["py-admin"])
    deadline = time.time() + TIMEOUT_S
    while "py-admin" in admin.list_topics():
        check(time.time() < deadline, "deleted topic disappears")
        time.sleep(0.1)
    admin.close()


def produce_consume(codec):
    topic = f"py-{codec or 'none'}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(
        bootstrap_servers=BOOTSTRAP, acks="all", compression_type=codec, linger_ms=5
    )
    sent = {}
    for i in range(200):
        key = f"k{i % 11}".encode()
        value = f"v{i}".encode() * (1 + i % 5)
        md = producer.send(
            topic, key=key, value=value, headers=[("h", f"{i}".encode())], timestamp_ms=1_600_000_000_000 + i
        ).get(timeout=TIMEOUT_S)
        sent[(md.partition, md.offset)] = (key, value, i)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"py-group-{codec or 'none'}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=TIMEOUT_S * 1000,
    )
    got = {}
    for msg in consumer:
        got[(msg.partition, msg.offset)] = (msg.key, msg.value, msg)
        if len(got) == len(sent):
            break
    check(len(got) == len(sent), f"{codec}: read {len(got)} of {len(sent)}")
    for where, (key, value, i) in sent.items():
        k, v, msg = got[where]
        check((k, v) == (key, value), f"{codec}: record at {where}")
        check(msg.timestamp == 1_600_000_000_000 + i, f"{codec}: timestamp at {where}")
        check(list(msg.headers) == [("h", f"{i}".encode())], f"{codec}: headers at {where}")
    consumer.commit()
    committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3))
    check(committed == len(sent), f"{codec}: committed {committed} of {len(sent)}")
    # offsets_for_times: the first record at or after a timestamp.
    tps = [TopicPartition(topic, p) for p in range(3)]
    found = consumer.offsets_for_times({tp: 1_600_000_000_000 for tp in tps})
    for tp, ot in found.items():
        check(ot is None or ot.offset == 0, f"{codec}: offsets_for_times {tp} -> {ot}")
    consumer.close()


def main():
    admin_round_trip()
    for codec in [None, "gzip", "lz4", "zstd", "snappy"]:
        produce_consume(codec)
    print("kafka-python: all checks passed")


main()
