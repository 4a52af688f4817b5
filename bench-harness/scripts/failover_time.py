#!/usr/bin/env python3
"""Failover time of a local 3-broker strata cluster: leader SIGKILL -> first
acknowledged acks=all produce on the new leader, over N kills (kafka-python client).

    python3 bench-harness/scripts/failover_time.py --strata target/release/strata --kills 20

Starts three `strata serve` processes on 127.0.0.1 (data under a temp dir), creates
a topic with replication factor 3, and for each round: produces until acknowledged,
SIGKILLs the partition's leader, measures until a produce is acknowledged again,
restarts the killed broker and waits for it to rejoin. Prints every figure and
p50/p99/max. Bounded: each round gives up after 60 s.
"""
import argparse, os, shutil, signal, subprocess, sys, tempfile, time

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from local_cluster import start


def leader(admin, topic):
    for t in admin.describe_topics([topic]):
        for p in t["partitions"]:
            if p["leader_id"] >= 0:
                return p["leader_id"]
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", default="target/release/strata")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--base-port", type=int, default=39100)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="strata-failover-")
    ports = {i: (a.base_port + i, a.base_port + 10 + i, a.base_port + 20 + i) for i in (1, 2, 3)}
    voters = ",".join(f"{i}@127.0.0.1:{ports[i][0]}" for i in (1, 2, 3))
    procs = {i: start(a.strata, d, i, voters, ports) for i in (1, 2, 3)}
    boot = ",".join(f"127.0.0.1:{ports[i][2]}" for i in (1, 2, 3))
    times = []
    try:
        time.sleep(3)
        admin = KafkaAdminClient(bootstrap_servers=boot, request_timeout_ms=20000)
        admin.create_topics([NewTopic("failover", 1, 3)])
        p = KafkaProducer(bootstrap_servers=boot, acks="all", retries=1000, retry_backoff_ms=20,
                          request_timeout_ms=5000, metadata_max_age_ms=500, reconnect_backoff_ms=20,
                          reconnect_backoff_max_ms=200)
        for r in range(a.kills):
            p.send("failover", b"warm", partition=0).get(timeout=60)
            lead = leader(admin, "failover")
            procs[lead].send_signal(signal.SIGKILL)
            procs[lead].wait()
            killed = time.monotonic()
            p.send("failover", b"after", partition=0).get(timeout=60)
            took = time.monotonic() - killed
            times.append(took)
            print(f"round {r + 1}: leader {lead} killed, first ack after {took * 1000:.0f} ms", flush=True)
            procs[lead] = start(a.strata, d, lead, voters, ports)
            time.sleep(4)  # rejoin and catch up before the next kill
    finally:
        for pr in procs.values():
            pr.kill()
        shutil.rmtree(d, ignore_errors=True)
    s = sorted(times)
    pct = lambda q: s[min(len(s) - 1, int(q * len(s)))]
    print(f"kills {len(s)}: p50 {pct(0.5) * 1000:.0f} ms, p99 {pct(0.99) * 1000:.0f} ms, max {s[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
