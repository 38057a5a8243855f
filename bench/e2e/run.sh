#!/usr/bin/env bash
# Full-length end-to-end delivery runs: the tests of tests/tests/{rotation,
# agent_kill,collector_outage}.rs with the sizes of the acceptance criteria,
# against release builds of the real agent and collector.
#
#   bench/e2e/run.sh [rotation] [agent_kill] [collector_outage]   (default: all three)
#
# Sizes (environment, defaults = the full-length run):
#   TOCSIN_E2E_RATE=10000            lines per second the writer appends
#   TOCSIN_E2E_ROTATIONS=50          rename rotations
#   TOCSIN_E2E_COPYTRUNCATES=50      copytruncate rotations
#   TOCSIN_E2E_KILLS=10              kill -9 of the agent
#   TOCSIN_E2E_OUTAGE_SECS=120       collector outage
#   TOCSIN_E2E_INTERVAL_MS=1000      writing time between two disruptions
# CARGO_TARGET_DIR defaults to target/bench (shared by the benchmarks);
# TOCSIN_E2E_BIN_DIR names prebuilt release binaries to use instead of
# building them there.
#
# Each test prints one `e2e-figures ...` line (lines written, on disk,
# received, duplicates, missing, duration); they are collected in
# $TOCSIN_E2E_RESULTS (default $CARGO_TARGET_DIR/e2e-results.txt) and printed
# at the end.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/bench}
export TOCSIN_E2E_RATE=${TOCSIN_E2E_RATE:-10000}
export TOCSIN_E2E_ROTATIONS=${TOCSIN_E2E_ROTATIONS:-50}
export TOCSIN_E2E_COPYTRUNCATES=${TOCSIN_E2E_COPYTRUNCATES:-50}
export TOCSIN_E2E_KILLS=${TOCSIN_E2E_KILLS:-10}
export TOCSIN_E2E_OUTAGE_SECS=${TOCSIN_E2E_OUTAGE_SECS:-120}
export TOCSIN_E2E_INTERVAL_MS=${TOCSIN_E2E_INTERVAL_MS:-1000}
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(rotation agent_kill collector_outage)

test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
# TOCSIN_E2E_BIN_DIR: prebuilt release binaries to measure instead.
if [ -z "${TOCSIN_E2E_BIN_DIR:-}" ]; then
  nice cargo build --release -p tocsin-agent -p tocsin-collector --bins
fi
# The test executables, run directly below: no cargo lock on the shared
# target directory between the runs.
declare -A exe
while read -r name path; do exe[$name]=$path; done < <(
  nice cargo test --release -p tocsin-tests "${test_args[@]}" --no-run 2>&1 |
    sed -n 's|^ *Executable tests/\([a-z_0-9]*\)\.rs (\(.*\))$|\1 \2|p'
)

# The binaries this run measures, copied so that a concurrent rebuild in
# the shared target directory cannot swap them between two restarts.
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
src=${TOCSIN_E2E_BIN_DIR:-$CARGO_TARGET_DIR/release}
cp "$src/tocsin-agent" "$src/tocsin-collector" "$bins/"
export TOCSIN_E2E_BIN_DIR=$bins

results=${TOCSIN_E2E_RESULTS:-$CARGO_TARGET_DIR/e2e-results.txt}
export TOCSIN_E2E_REPORT=$results
{
  echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) rate=$TOCSIN_E2E_RATE renames=$TOCSIN_E2E_ROTATIONS copytruncates=$TOCSIN_E2E_COPYTRUNCATES kills=$TOCSIN_E2E_KILLS outage_s=$TOCSIN_E2E_OUTAGE_SECS interval_ms=$TOCSIN_E2E_INTERVAL_MS nproc=$(nproc)"
} >>"$results"
status=0
for t in "${tests[@]}"; do
  echo "== $t"
  if ! nice "${exe[$t]:?no executable for $t}" --nocapture; then
    echo "e2e-figures test=$t FAILED" >>"$results"
    status=1
  fi
done
echo "== figures ($results)"
tail -n $((${#tests[@]} + 1)) "$results"
exit $status
