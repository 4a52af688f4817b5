"""Local strata brokers for the cluster bench scripts: starting one broker of a
3-broker cluster on 127.0.0.1, and waiting until the cluster has registered them."""
import os, resource, subprocess, time

from kafka.admin import KafkaAdminClient


def raise_open_files():
    """Every partition replica keeps a few files open (segment, indexes): thousands of
    them need more descriptors than the usual limit, as Kafka's do."""
    want = 262144
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(bin_, d, i, voters, ports, cores=1):
    """Broker `i` (node id i) with data and its log under `d`; `ports[i]` is its
    (cluster, native, kafka) ports."""
    os.makedirs(os.path.join(d, f"n{i}"), exist_ok=True)
    log = open(os.path.join(d, f"log{i}"), "ab")
    return subprocess.Popen([bin_, "serve", "--cores", str(cores), "--node-id", str(i),
        "--cluster-listen", f"127.0.0.1:{ports[i][0]}", "--voters", voters,
        "--listen", f"127.0.0.1:{ports[i][1]}", "--kafka-listen", f"127.0.0.1:{ports[i][2]}",
        "--metrics-addr", "off", "--data-dir", os.path.join(d, f"n{i}")], stdout=log, stderr=log,
        preexec_fn=raise_open_files)


def wait_brokers(boot, n, timeout_s, request_timeout_ms=30000):
    """An admin client once `n` brokers are registered (the caller closes it)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=boot, request_timeout_ms=request_timeout_ms)
            brokers = admin.describe_cluster().get("brokers", [])
            if len(brokers) >= n:
                return admin
            last = f"{len(brokers)} brokers registered"
            admin.close()
        except Exception as e:  # not up yet
            last = repr(e)
        time.sleep(1)
    raise RuntimeError(f"the cluster did not come up within {timeout_s} s ({last})")
