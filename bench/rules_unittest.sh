#!/usr/bin/env bash
# Times `tocsinctl rules test` against `promtool test rules` on the same
# generated rule unit test (bench/gen_rules_bench.py: HOSTS hosts x 16
# series, one day at 1m, twelve rules), in one run, and prints wall time,
# CPU time and peak RSS of each.
#
# Usage: bench/rules_unittest.sh [HOSTS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${1:-100}
runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v promtool >/dev/null || { echo "promtool not found (apt-get install prometheus)" >&2; exit 1; }
cargo build --release -q -p tocsin-collector --bin tocsinctl
tocsinctl=target/release/tocsinctl

python3 bench/gen_rules_bench.py "$work" "$hosts"
echo "file: $(du -h "$work/bench_test.yaml" | cut -f1) of input, $hosts hosts x 16 series, 1441 samples each"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

measure() { # name command...
  local name=$1; shift
  for i in $(seq "$runs"); do
    /usr/bin/time -f "$name run $i: wall %e s, user %U s, sys %S s, peak RSS %M KB, exit %x" \
      "$@" >"$work/out.txt" 2>"$work/time.txt" || true
    tail -n 1 "$work/time.txt"
    if ! grep -q SUCCESS "$work/out.txt"; then
      echo "$name did not pass the test file:" >&2
      head -n 40 "$work/out.txt" >&2
    fi
  done
}

cd "$work"
measure promtool promtool test rules bench_test.yaml
measure tocsinctl "$OLDPWD/$tocsinctl" rules test bench_test.yaml
