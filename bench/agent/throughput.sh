#!/usr/bin/env bash
# Lines from file to acknowledged at the collector, with the agent pinned
# to core 0 and the collector to core 1: writes SIZE_MIB of application log
# lines (129-165 bytes, 45% INFO, 30% WARN, 20% ERROR, 5% DEBUG) before the
# agent starts, runs the agent with `read_from: beginning` and
# `min_severity: all` (every line ships), and times from the agent's start
# until the collector's /metrics count every line as stored
# (tocsin_receiver_log_records_stored_total + _duplicate_total, which the
# collector increments after the record is in its write-ahead log and
# before it answers the agent). Prints MiB/s and lines/s, and the CPU
# seconds (utime+stime) each process used, as a share of its core, to show
# which side limits.
#
# Usage: bench/agent/throughput.sh [SIZE_MIB]     (default 2048)
# With SINK=null the collector is replaced by bench/agent/agentbench.py's
# sink (OTLP/HTTP, answers 200 without decoding) on core 1, and the end is
# when the agent's checkpoint reaches the end of the file (checkpoints are
# written at most once a second: up to a second late). That measures the
# agent's side alone.
#
# Env:   LOG_STORE_MIB=N gives the collector's log store N MiB (its
#        logs.max_bytes); by default it is sized above the input so nothing
#        is evicted and the store only grows (every stored byte is memory
#        the kernel hands out fresh); 1024 is the collector's default, with
#        which a run longer than that measures the store in its steady
#        state, evicting the oldest records as new ones come;
#        COLLECTOR_CPUS=LIST pins the collector (taskset -c LIST; default 1,
#        the core the agent does not use; 0,1 lets it use what the agent
#        leaves of core 0 too);
#        PROTOCOL=http uses OTLP/HTTP (default grpc); GZIP=true compresses
#        (default false: on loopback compression only costs CPU);
#        MAX_IN_FLIGHT=N lets the agent have N requests awaiting an
#        answer (its collector.max_in_flight; default 4, the agent's own);
#        KEEP=1 keeps the work directory; BIN_DIR=DIR uses the binaries in
#        DIR instead of building them.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-2048}
protocol=${PROTOCOL:-grpc}
sink=${SINK:-collector}
[ "$sink" = null ] && protocol=http
gzip=${GZIP:-false}
helper=bench/agent/agentbench.py
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/bench}

. bench/agent/common.sh
build_binaries

make_workdir throughput

read -r grpc http api <<<"$(python3 $helper free-ports 3)"
mkdir -p "$work/collector" "$work/agent" "$work/logs"
# The log store is sized above the input (unless LOG_STORE_MIB says
# otherwise) so that no eviction runs during the measurement.
log_store_mib=${LOG_STORE_MIB:-$(( size_mib * 4 + 1024 ))}
cat >"$work/collector/collector.yaml" <<EOF
data_dir: $work/collector/data
receivers:
  otlp:
    grpc: { listen: "127.0.0.1:$grpc" }
    http: { listen: "127.0.0.1:$http" }
api:
  listen: "127.0.0.1:$api"
logs:
  max_bytes: $(( log_store_mib << 20 ))
EOF
if [ "$protocol" = grpc ]; then endpoint=http://127.0.0.1:$grpc; else endpoint=http://127.0.0.1:$http; fi
cat >"$work/agent/agent.yaml" <<EOF
collector:
  endpoint: $endpoint
  protocol: $protocol
  gzip: $gzip
  max_in_flight: ${MAX_IN_FLIGHT:-4}
resource:
  host.name: bench-host
  service.name: bench
logs:
  - name: app
    include: ['$work/logs/*.log']
    read_from: beginning
    min_severity: all
data_dir: $work/agent/data
EOF

echo "writing $size_mib MiB of log lines..."
read -r lines bytes <<<"$(python3 $helper generate "$work/logs/app.log" $(( size_mib << 20 )))"
echo "input: $lines lines, $bytes bytes ($(( bytes / lines )) bytes/line), in the page cache"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$sink" = null ]; then
  taskset -c 1 python3 $helper sink "$http" &
  collector=$!; pids+=("$collector")
  for _ in $(seq 100); do
    curl -fs -X POST --data x "http://127.0.0.1:$http/v1/logs" >/dev/null && break
    sleep 0.1
  done
else
  taskset -c "${COLLECTOR_CPUS:-1}" "$bin/tocsin-collector" --config "$work/collector/collector.yaml" >"$work/collector.log" 2>&1 &
  collector=$!; pids+=("$collector")
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$api/-/ready" >/dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$api/-/ready" >/dev/null || { echo "collector not ready:"; cat "$work/collector.log"; exit 1; } >&2
fi
collector_cpu0=$(python3 $helper cpu "$collector")

start=$(date +%s.%N)
RUST_LOG=warn taskset -c 0 "$agent_bin" --config "$work/agent/agent.yaml" >"$work/agent.log" 2>&1 &
agent=$!; pids+=("$agent")
# The count is polled every 0.1 s from an unpinned process; the CPU
# figures are read right after the last line is counted (the agent idles
# from then on).
if [ "$sink" = null ]; then
  read -r waited offset <<<"$(python3 $helper wait-checkpoint "$work/agent/data/logs/logtail-checkpoints.json" "$work/logs/app.log" "$bytes" 3600)"
  # Every line is acknowledged once the checkpoint is at the end of the file.
  if [ "$offset" -ge "$bytes" ]; then stored=$lines; else stored=0; fi
  dup=0
else
  read -r waited stored dup <<<"$(python3 $helper wait-stored "http://127.0.0.1:$api/metrics" "$lines" 3600)"
fi
end=$(date +%s.%N)
agent_cpu=$(python3 $helper cpu "$agent")
agent_runq=$(python3 $helper runq "$agent")
collector_cpu=$(python3 $helper cpu "$collector")
agent_rss=$(grep VmHWM "/proc/$agent/status" | awk '{print $2}')
collector_rss=$(grep VmHWM "/proc/$collector/status" | awk '{print $2}')

receiver_cpus=1
[ "$sink" = collector ] && receiver_cpus=${COLLECTOR_CPUS:-1}
python3 - "$start" "$end" "$bytes" "$lines" "$stored" "$dup" "$agent_cpu" "$collector_cpu0" "$collector_cpu" "$agent_rss" "$collector_rss" "$agent_runq" "$receiver_cpus" <<'EOF'
import sys
start, end, size, lines, stored, dup, acpu, ccpu0, ccpu1, arss, crss, arunq = map(float, sys.argv[1:13])
rcpus = sys.argv[13]
wall = end - start
ccpu = ccpu1 - ccpu0
print("lines acknowledged: %d stored + %d duplicates of %d" % (stored, dup, lines))
print("wall %.2f s: %.1f MiB/s, %.0f lines/s" % (wall, size / wall / 2**20, lines / wall))
print("agent (core 0):     %.2f CPU-s = %3.0f%% of its core, %.1f MiB per CPU-second, peak RSS %.1f MB" % (
    acpu, 100 * acpu / wall, size / acpu / 2**20, arss / 1000))
print("agent threads waited %.2f s in total for a CPU (run queue): the rest of the wall time not running is waiting for the receiver" % arunq)
print("receiver (cores %s): %.2f CPU-s = %3.0f%% of one core, %.1f MiB per CPU-second, peak RSS %.1f MB" % (
    rcpus, ccpu, 100 * ccpu / wall, size / ccpu / 2**20, crss / 1000))
EOF
echo "receiver: $sink, protocol $protocol, gzip $gzip; load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
if grep -qiE 'error|warn' "$work/agent.log"; then echo "agent warnings:"; grep -iE 'error|warn' "$work/agent.log" | head; fi
[ "$stored" -ge "$lines" ]
