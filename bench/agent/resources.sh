#!/usr/bin/env bash
# The agent's resource use beside Debian's prometheus-node-exporter, in one
# run: a tocsin-collector (temporary data directory, free ports), the agent
# with 1 s host metrics (all scrapers) tailing a file that a writer appends
# 1,000 lines/s to (45% INFO, 30% WARN, 20% ERROR, 5% DEBUG; min_severity
# all, so every line ships), and node_exporter with its default collectors
# scraped once a second. Samples VmRSS and utime+stime of both once a
# second and prints the steady-state figures (after a warm-up of 15 s or a
# tenth of the run, whichever is longer), then checks that every line
# written reached the collector.
#
# Usage: bench/agent/resources.sh [SECONDS]    (default 120; full run 600)
# Env:   KEEP=1 keeps the work directory; PROTOCOL=http uses OTLP/HTTP;
#        BIN_DIR=DIR uses the binaries in DIR instead of building them.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-120}
protocol=${PROTOCOL:-grpc}
warmup=$(( seconds / 10 > 15 ? seconds / 10 : 15 ))
node_exporter=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
helper=bench/agent/agentbench.py
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/bench}

[ -x "$node_exporter" ] || { echo "$node_exporter not found (apt-get install prometheus-node-exporter)" >&2; exit 1; }
. bench/agent/common.sh
build_binaries

make_workdir resources

read -r grpc http api nx <<<"$(python3 $helper free-ports 4)"
mkdir -p "$work/collector" "$work/agent" "$work/logs"
cat >"$work/collector/collector.yaml" <<EOF
data_dir: $work/collector/data
receivers:
  otlp:
    grpc: { listen: "127.0.0.1:$grpc" }
    http: { listen: "127.0.0.1:$http" }
api:
  listen: "127.0.0.1:$api"
EOF
if [ "$protocol" = grpc ]; then endpoint=http://127.0.0.1:$grpc; else endpoint=http://127.0.0.1:$http; fi
cat >"$work/agent/agent.yaml" <<EOF
collector:
  endpoint: $endpoint
  protocol: $protocol
resource:
  host.name: bench-host
  service.name: bench
metrics:
  interval: 1s
logs:
  - name: app
    include: ['$work/logs/*.log']
    read_from: beginning
    min_severity: all
data_dir: $work/agent/data
EOF

"$bin/tocsin-collector" --config "$work/collector/collector.yaml" >"$work/collector.log" 2>&1 &
collector=$!; pids+=("$collector")
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$api/-/ready" >/dev/null && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$api/-/ready" >/dev/null || { echo "collector not ready:"; cat "$work/collector.log"; exit 1; } >&2

"$node_exporter" --web.listen-address="127.0.0.1:$nx" >"$work/node_exporter.log" 2>&1 &
nodeexp=$!; pids+=("$nodeexp")
touch "$work/logs/app.log"
RUST_LOG=warn "$agent_bin" --config "$work/agent/agent.yaml" >"$work/agent.log" 2>&1 &
agent=$!; pids+=("$agent")
sleep 1

echo "tocsin-agent $("$agent_bin" --version | cut -d' ' -f2) ($protocol) vs $("$node_exporter" --version 2>&1 | head -1)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "run: $seconds s, writer 1000 lines/s, agent metrics every 1 s, node_exporter scraped every 1 s"

python3 $helper write "$work/logs/app.log" 1000 "$seconds" >"$work/written" &
writer=$!; pids+=("$writer")
python3 $helper scrape "http://127.0.0.1:$nx/metrics" "$seconds" >"$work/scrapes" &
scraper=$!; pids+=("$scraper")
python3 $helper sample "$seconds" "$warmup" "$work/samples.csv" \
  tocsin-agent="$agent" node_exporter="$nodeexp" tocsin-collector="$collector"
wait "$writer" "$scraper"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"

written=$(cat "$work/written")
bytes=$(stat -c %s "$work/logs/app.log")
read -r waited stored dup <<<"$(python3 $helper wait-stored "http://127.0.0.1:$api/metrics" "$written" 60)"
echo "node_exporter scrapes: $(cat "$work/scrapes") of $seconds"
echo "lines written: $written ($bytes bytes, $(( bytes / written )) bytes/line); at the collector: $stored stored + $dup duplicates, ${waited}s after the writer stopped"
if [ "$stored" -eq "$written" ]; then echo "every line arrived once"; else echo "MISMATCH: $written written, $stored stored" >&2; fi
if grep -qiE 'error|warn' "$work/agent.log"; then echo "agent warnings:"; grep -iE 'error|warn' "$work/agent.log" | head; fi
cp "$work/samples.csv" "${SAMPLES_OUT:-/tmp/tocsin-agent-resources.csv}"
echo "samples: ${SAMPLES_OUT:-/tmp/tocsin-agent-resources.csv}"
[ "$stored" -eq "$written" ]
