#!/usr/bin/env bash
# Ingest benchmark: samples per CPU-second of tocsin-collector taking OTLP
# (protobuf over HTTP, WAL fsync'd before each acknowledgement) next to
# Debian's Prometheus 2.42 taking the same samples over remote-write 1.0
# (--web.enable-remote-write-receiver; its WAL is not fsync'd per request).
#
# Usage: bench/ingest/run.sh [SERIES] [ROUNDS]     (defaults: 10000 60)
#   SERIES  series in total, a multiple of 100 (100 host-metric series per host)
#   ROUNDS  samples per series, 10 s apart
# More generator flags through INGEST_BENCH_ARGS, e.g.
#   INGEST_BENCH_ARGS="--otlp-gzip --concurrency 8 --batch 1000 --repeat 3" bench/ingest/run.sh
# (defaults: uncompressed OTLP, 4 connections, 2000 series per request,
# 5 runs per server, alternating, medians reported).
# INGEST_BENCH_SKIP_BUILD=1 runs the release binaries already built.
#
# Builds in release (CARGO_TARGET_DIR, default target/bench), starts
# both servers on free ports of 127.0.0.1 with their own temporary data
# directories, runs the load generator (bench/ingest/src/main.rs), which
# measures each server's utime+stime from /proc/PID/stat around its run,
# checks every request was acknowledged and counts the stored samples by a
# query, and prints the figures. Cleans up whatever it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

series=${1:-10000}
rounds=${2:-60}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/bench}

command -v prometheus >/dev/null 2>&1 || {
  echo "bench: Debian's prometheus (2.42) is missing: apt-get install prometheus" >&2
  exit 1
}
command -v curl >/dev/null 2>&1 || { echo "bench: curl is missing: apt-get install curl" >&2; exit 1; }

if [ "${INGEST_BENCH_SKIP_BUILD:-0}" = 1 ]; then
  echo "bench: using the release binaries already in $CARGO_TARGET_DIR" >&2
else
  echo "bench: building tocsin-collector and the load generator (release, $CARGO_TARGET_DIR)" >&2
  nice cargo build --release -q -p tocsin-collector --bin tocsin-collector
  nice cargo build --release -q -p tocsin-bench-ingest
fi
bin="$CARGO_TARGET_DIR/release"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # name url log
  local deadline=$((SECONDS + 60))
  until curl -sf -o /dev/null "$2"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "bench: $1 not ready within 60 s; its log:" >&2
      cat "$3" >&2
      exit 1
    fi
    sleep 0.2
  done
}

otlp=$(free_port)
api=$(free_port)
prom=$(free_port)

cat >"$work/collector.yaml" <<EOF
data_dir: $work/tocsin
receivers:
  otlp:
    grpc: null
    http: { listen: "127.0.0.1:$otlp" }
    max_series_per_agent: 10000000
api:
  listen: "127.0.0.1:$api"
EOF
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1m
scrape_configs: []
EOF

nice "$bin/tocsin-collector" --config "$work/collector.yaml" --log-level warn \
  >"$work/tocsin.log" 2>&1 &
pids+=($!)
tocsin_pid=$!
nice prometheus --config.file="$work/prometheus.yml" \
  --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="127.0.0.1:$prom" \
  --web.enable-remote-write-receiver \
  --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
prom_pid=$!

wait_ready tocsin-collector "http://127.0.0.1:$api/-/ready" "$work/tocsin.log"
wait_ready prometheus "http://127.0.0.1:$prom/-/ready" "$work/prometheus.log"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
echo "workload: $series series x $rounds rounds; generator flags: ${INGEST_BENCH_ARGS:-none}"
# shellcheck disable=SC2086 # INGEST_BENCH_ARGS is a list of flags
nice "$bin/ingest-bench" --series "$series" --rounds "$rounds" \
  --tocsin-otlp "http://127.0.0.1:$otlp" --tocsin-api "http://127.0.0.1:$api" --tocsin-pid "$tocsin_pid" \
  --prometheus "http://127.0.0.1:$prom" --prometheus-pid "$prom_pid" \
  ${INGEST_BENCH_ARGS:-}
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
