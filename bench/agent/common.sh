# Sourced by the agent benchmarks (from the repository root): the binaries
# they measure and a work directory cleaned up at exit.
#
# Sets `bin` (the folder holding tocsin-collector) and `agent_bin`. The
# agent as shipped is built with the agent-release profile (Cargo.toml);
# AGENT_PROFILE=release measures the plain release build instead, and
# BIN_DIR= measures prebuilt binaries without building.
build_binaries() {
  agent_profile=${AGENT_PROFILE:-agent-release}
  if [ -n "${BIN_DIR:-}" ]; then
    bin=$BIN_DIR
    agent_bin=$BIN_DIR/tocsin-agent
  else
    nice cargo build --release -q -p tocsin-collector
    nice cargo build --profile "$agent_profile" -q -p tocsin-agent
    bin=$CARGO_TARGET_DIR/release
    agent_bin=$CARGO_TARGET_DIR/$agent_profile/tocsin-agent
  fi
}

# Sets `work` to a fresh /tmp/tocsin-agent-NAME.* directory; every pid in
# `pids` is killed at exit and the directory removed (KEEP=1 keeps it).
make_workdir() {
  work=$(mktemp -d "/tmp/tocsin-agent-$1.XXXXXX")
  pids=()
  trap cleanup EXIT
}

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
