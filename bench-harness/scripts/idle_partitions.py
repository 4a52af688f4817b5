#!/usr/bin/env python3
"""RSS, idle CPU and inter-broker traffic of a local 3-broker strata cluster holding
many idle replicated partitions (kafka-python admin client, Linux /proc and `ss`).

    python3 bench-harness/scripts/idle_partitions.py --strata target/release/strata \\
        --topics 100 --partitions 100 --rf 3 --data-dir /tmp/strata-bench-idle

Starts three `strata serve` processes on 127.0.0.1 (one core each by default; data
under --data-dir, wiped first), measures each broker with no partition (RSS; CPU and
the traffic between brokers over --idle-seconds), creates the topics, waits until
every partition has a leader, lets the cluster settle, and measures again. Prints, per
broker: RSS before and after and the difference per partition replica it hosts, CPU
as a percentage of one core, and for the cluster the packets and bytes per second on
the broker-to-broker connections (every TCP segment either way on the cluster
listeners' connections, from `ss -ti`). Bounded: every wait gives up (and the script
fails) after its timeout; the brokers are killed at the end whatever happens.
"""
import argparse, json, os, re, shutil, signal, subprocess, sys, time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from local_cluster import start, wait_brokers

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields count from after its ')'.
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK  # utime + stime


ADDR = re.compile(r"(\S+):(\d+)\s+(\S+):(\d+)")
FIELD = re.compile(r"\b(bytes_acked|bytes_received|segs_out|segs_in):(\d+)")


def cluster_sockets(cluster_ports):
    """Every TCP socket of a connection to a cluster listener: {4-tuple: counters}."""
    out = subprocess.run(["ss", "-tinH"], capture_output=True, text=True, timeout=30).stdout
    lines = out.splitlines()
    socks, key = {}, None
    for line in lines:
        m = ADDR.search(line)
        if m and not line.startswith(("\t", " ")):
            lport, rport = int(m.group(2)), int(m.group(4))
            key = (m.group(1), lport, m.group(3), rport)
            if lport not in cluster_ports and rport not in cluster_ports:
                key = None
            continue
        if key is not None:
            socks[key] = {k: int(v) for k, v in FIELD.findall(line)}
            key = None
    return socks


def traffic_rate(before, after, seconds):
    """Packets/s (segments out of every socket, both ends) and bytes/s (acked data)."""
    segs = sum(a.get("segs_out", 0) - before.get(k, {}).get("segs_out", 0) for k, a in after.items())
    data = sum(a.get("bytes_acked", 0) - before.get(k, {}).get("bytes_acked", 0) for k, a in after.items())
    return segs / seconds, data / seconds


def measure(procs, cluster_ports, seconds):
    cpu0 = {i: cpu_seconds(p.pid) for i, p in procs.items()}
    net0 = cluster_sockets(cluster_ports)
    t0 = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - t0
    cpu1 = {i: cpu_seconds(p.pid) for i, p in procs.items()}
    net1 = cluster_sockets(cluster_ports)
    pps, bps = traffic_rate(net0, net1, took)
    return {
        "rss_kib": {i: rss_kib(p.pid) for i, p in procs.items()},
        "cpu_pct": {i: 100.0 * (cpu1[i] - cpu0[i]) / took for i in procs},
        "packets_per_s": pps,
        "bytes_per_s": bps,
        "load_avg": os.getloadavg(),
    }


def create(admin, name, partitions, rf, attempts=5):
    """Creates one topic; a timed-out attempt may still have created it."""
    for attempt in range(attempts):
        try:
            admin.create_topics([NewTopic(name, partitions, rf)], timeout_ms=170000)
            return
        except TopicAlreadyExistsError:
            return
        except KafkaError as e:
            if attempt + 1 == attempts:
                raise
            print(f"create {name}: {e!r}; retrying", flush=True)
            time.sleep(2)


def leaders(admin, topics):
    """Partitions with a leader, partitions in all, and leaders per broker."""
    led, total, per_broker = 0, 0, {}
    for i in range(0, len(topics), 20):
        for t in admin.describe_topics(topics[i:i + 20]):
            for p in t["partitions"]:
                total += 1
                if p["leader_id"] >= 0:
                    led += 1
                    per_broker[p["leader_id"]] = per_broker.get(p["leader_id"], 0) + 1
    return led, total, per_broker


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", default="target/release/strata")
    ap.add_argument("--topics", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=100, help="per topic")
    ap.add_argument("--rf", type=int, default=3)
    ap.add_argument("--cores", type=int, default=1, help="shards per broker")
    ap.add_argument("--base-port", type=int, default=31400)
    ap.add_argument("--data-dir", default="/tmp/strata-bench-idle")
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--settle-seconds", type=float, default=20)
    ap.add_argument("--leader-timeout-seconds", type=float, default=900)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    d = a.data_dir
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ports = {i: (a.base_port + i, a.base_port + 10 + i, a.base_port + 20 + i) for i in (1, 2, 3)}
    cluster_ports = {ports[i][0] for i in ports}
    voters = ",".join(f"{i}@127.0.0.1:{ports[i][0]}" for i in (1, 2, 3))
    boot = ",".join(f"127.0.0.1:{ports[i][2]}" for i in (1, 2, 3))
    procs = {i: start(a.strata, d, i, voters, ports, a.cores) for i in (1, 2, 3)}
    result = {"args": vars(a)}
    ok = False
    try:
        admin = wait_brokers(boot, 3, 120, request_timeout_ms=180000)
        time.sleep(a.settle_seconds)
        print(f"measuring the empty cluster for {a.idle_seconds:.0f} s", flush=True)
        empty = measure(procs, cluster_ports, a.idle_seconds)
        result["empty"] = empty
        names = [f"idle-{t:03d}" for t in range(a.topics)]
        t0 = time.monotonic()
        for n in names:
            create(admin, n, a.partitions, a.rf)
        created = time.monotonic() - t0
        print(f"created {a.topics} x {a.partitions} partitions (RF {a.rf}) in {created:.1f} s", flush=True)
        deadline = time.monotonic() + a.leader_timeout_seconds
        while True:
            led, total, per_broker = leaders(admin, names)
            if led == total == a.topics * a.partitions:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {led} of {total} partitions have a leader after "
                                   f"{a.leader_timeout_seconds:.0f} s")
            time.sleep(2)
        all_led = time.monotonic() - t0
        print(f"every partition has a leader {all_led:.1f} s after the first create; "
              f"leaders per broker {dict(sorted(per_broker.items()))}", flush=True)
        result.update(create_s=created, all_led_s=all_led, leaders_per_broker=per_broker)
        time.sleep(a.settle_seconds)
        print(f"measuring {a.topics * a.partitions} idle partitions for {a.idle_seconds:.0f} s", flush=True)
        full = measure(procs, cluster_ports, a.idle_seconds)
        result["full"] = full
        replicas_per_broker = a.topics * a.partitions * a.rf / 3
        print(f"\n| broker | RSS empty MiB | RSS full MiB | KiB per replica | idle CPU empty | idle CPU full |")
        print("| --- | --- | --- | --- | --- | --- |")
        per_replica = {}
        for i in (1, 2, 3):
            e, f = empty["rss_kib"][i], full["rss_kib"][i]
            per_replica[i] = (f - e) / replicas_per_broker
            print(f"| {i} | {e / 1024:.1f} | {f / 1024:.1f} | {per_replica[i]:.1f} | "
                  f"{empty['cpu_pct'][i]:.2f} % | {full['cpu_pct'][i]:.2f} % |")
        result["kib_per_replica"] = per_replica
        print(f"\nbroker-to-broker traffic: empty {empty['packets_per_s']:.0f} packets/s, "
              f"{empty['bytes_per_s'] / 1024:.1f} KiB/s; with partitions "
              f"{full['packets_per_s']:.0f} packets/s, {full['bytes_per_s'] / 1024:.1f} KiB/s")
        print(f"load average while measuring (1/5/15 min): empty {empty['load_avg']}, "
              f"full {full['load_avg']}")
        # Still alive: a broker that died mid-run would make the figures meaningless.
        for i, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"broker {i} exited with {p.returncode}; see {d}/log{i}")
        ok = True
    finally:
        for pr in procs.values():
            pr.send_signal(signal.SIGKILL)
        for pr in procs.values():
            pr.wait()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1, default=str)
        if ok:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"the brokers' data and logs are kept in {d}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
