#!/usr/bin/env bash
# Runs the whole strata test suite on a fresh machine: installs what the tests need,
# builds once (dev profile, optimised — see Cargo.toml), runs every test with nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
# Crash tests kill and restart a writer this many times (the engine issue asks for >= 200).
export STRATA_CRASH_ITERATIONS="${STRATA_CRASH_ITERATIONS:-200}"

# cmake and a C++ compiler build flatc from the `flatc` crate's vendored source
# (schema staleness test); make and the compilers build librdkafka (rdkafka-sys).
missing=""
for tool in cmake:cmake g++:g++ make:make; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool##*:}"
done
if [ -n "$missing" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

# kafka-python and its codecs: a Kafka client from outside Rust for the Kafka-listener
# tests (tests/python/kafka_python_check.py).
if ! python3 -c "import kafka, lz4, zstandard, snappy" >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check \
    "kafka-python==3.0.12" "lz4==4.4.5" "zstandard==0.25.0" "python-snappy==0.7.3"
fi

# kafkajs: a Kafka client written in JavaScript, for tests/tests/kafka_js.rs.
if [ ! -d tests/js/node_modules/kafkajs ]; then
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast

# Model checks for the few structures shared across threads (loom), in their own
# target dir because --cfg loom changes every crate's build.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p strata-engine --release --lib loom
