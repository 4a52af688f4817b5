#!/usr/bin/env python3
"""What replication costs: acks=all throughput and end-to-end latency at a fixed rate
with replication factor 3 beside replication factor 1, on the same local 3-broker
strata cluster (strata-bench's kafka driver, librdkafka).

    python3 bench-harness/scripts/replication_cost.py --strata target/release/strata \\
        --bench target/release/strata-bench --rate 50MB/s --rounds 3

Starts three `strata serve` processes on 127.0.0.1 (one core each by default, data
under --data-dir, wiped first), then runs `strata-bench run --workload e2e` against
the cluster's Kafka listeners, alternating RF=3 and RF=1 (a fresh topic each run) so
drift falls on both alike, and prints the medians over rounds: acknowledged and
received MB/s and end-to-end latency p50/p99/p99.9, with the load average seen. Each
run is bounded by strata-bench's own duration and drain timeout; the script gives up
on a run after --run-timeout-seconds, and kills the brokers at the end.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time


from local_cluster import start, wait_brokers


def run_once(a, boot, rf, topic, out):
    cmd = [a.bench, "run", "--driver", "kafka", "--brokers", boot, "--workload", "e2e",
           "--topic", topic, "--partitions", str(a.partitions), "--replication-factor", str(rf),
           "--producers", "1", "--consumers", "1", "--record-bytes", str(a.record_bytes),
           "--batch-bytes", "65536", "--linger-ms", "1", "--acks", "all", "--keys", "none",
           "--rate", a.rate, "--seconds", str(a.seconds), "--warmup-seconds", str(a.warmup_seconds),
           "--seed", "1", "--json", out, "--quiet"]
    load0 = os.getloadavg()
    subprocess.run(cmd, check=True, timeout=a.run_timeout_seconds, stdout=subprocess.DEVNULL)
    with open(out) as f:
        r = json.load(f)
    lat = r["e2e"]["latency"]
    return {
        "rf": rf,
        "acked_mb_s": r["publish"]["mb_per_s"],
        "received_mb_s": r["e2e"]["mb_per_s"],
        "e2e_p50_us": lat["p50_us"],
        "e2e_p99_us": lat["p99_us"],
        "e2e_p999_us": lat["p999_us"],
        "publish_p99_us": r["publish"]["latency"]["p99_us"],
        "sent": r["counts"]["sent"],
        "acked": r["counts"]["acked"],
        "publish_errors": r["counts"]["publish_errors"],
        "load_avg": [load0, os.getloadavg()],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", default="target/release/strata")
    ap.add_argument("--bench", default="target/release/strata-bench")
    ap.add_argument("--rate", default="50MB/s")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--record-bytes", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup-seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cores", type=int, default=1, help="shards per broker")
    ap.add_argument("--base-port", type=int, default=31440)
    ap.add_argument("--data-dir", default="/tmp/strata-bench-rf")
    ap.add_argument("--run-timeout-seconds", type=float, default=180)
    ap.add_argument("--json", help="also write every run and the medians here")
    a = ap.parse_args()
    d = a.data_dir
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ports = {i: (a.base_port + i, a.base_port + 10 + i, a.base_port + 20 + i) for i in (1, 2, 3)}
    voters = ",".join(f"{i}@127.0.0.1:{ports[i][0]}" for i in (1, 2, 3))
    boot = ",".join(f"127.0.0.1:{ports[i][2]}" for i in (1, 2, 3))
    procs = {i: start(a.strata, d, i, voters, ports, a.cores) for i in (1, 2, 3)}
    runs = []
    out = tempfile.mktemp(prefix="strata-rf-", suffix=".json")
    try:
        wait_brokers(boot, 3, 120).close()
        time.sleep(3)
        for r in range(a.rounds):
            for rf in (3, 1):
                res = run_once(a, boot, rf, f"rf{rf}-round{r + 1}", out)
                res["round"] = r + 1
                runs.append(res)
                print(f"round {r + 1} RF={rf}: {res['acked_mb_s']:.1f} MB/s acked, "
                      f"{res['received_mb_s']:.1f} received, e2e p50/p99/p99.9 "
                      f"{res['e2e_p50_us'] / 1000:.1f} / {res['e2e_p99_us'] / 1000:.1f} / "
                      f"{res['e2e_p999_us'] / 1000:.1f} ms, sent {res['sent']} acked {res['acked']} "
                      f"errors {res['publish_errors']}, load {res['load_avg'][1][0]:.1f}", flush=True)
        for i, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"broker {i} exited with {p.returncode}; see {d}/log{i}")
    finally:
        for pr in procs.values():
            pr.send_signal(signal.SIGKILL)
        for pr in procs.values():
            pr.wait()
        if os.path.exists(out):
            os.remove(out)
    med = {}
    for rf in (3, 1):
        rs = [x for x in runs if x["rf"] == rf]
        med[rf] = {k: statistics.median(x[k] for x in rs) for k in
                   ("acked_mb_s", "received_mb_s", "e2e_p50_us", "e2e_p99_us", "e2e_p999_us")}
    print(f"\nmedians of {a.rounds} alternating rounds, {a.rate}, acks=all, {a.partitions} partitions:")
    print("| RF | MB/s acked | MB/s received | e2e p50 ms | e2e p99 ms | e2e p99.9 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for rf in (3, 1):
        m = med[rf]
        print(f"| {rf} | {m['acked_mb_s']:.1f} | {m['received_mb_s']:.1f} | {m['e2e_p50_us'] / 1000:.1f} | "
              f"{m['e2e_p99_us'] / 1000:.1f} | {m['e2e_p999_us'] / 1000:.1f} |")
    loads = [x["load_avg"][1][0] for x in runs]
    print(f"1-minute load average at the end of each run: {min(loads):.1f}–{max(loads):.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "runs": runs, "medians": med}, f, indent=1)
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
