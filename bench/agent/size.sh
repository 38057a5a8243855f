#!/usr/bin/env bash
# Size of the tocsin-agent binary, stripped, as shipped (agent-release
# profile) and with the plain release profile, and a check that no
# collector crate is linked into it (`cargo tree -e normal`).
#
# Usage: bench/agent/size.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/bench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for profile in agent-release release; do
  nice cargo build --profile "$profile" -q -p tocsin-agent
  cp "$CARGO_TARGET_DIR/$profile/tocsin-agent" "$work/tocsin-agent-$profile"
  strip "$work/tocsin-agent-$profile"
  printf '%-14s %10d bytes unstripped, %10d bytes stripped\n' "$profile" \
    "$(stat -c %s "$CARGO_TARGET_DIR/$profile/tocsin-agent")" "$(stat -c %s "$work/tocsin-agent-$profile")"
done
crates=$(cargo tree -p tocsin-agent -e normal --prefix none | sed 's/ (.*//' | sort -u)
echo "crates linked (normal dependencies): $(wc -l <<<"$crates")"
if grep -E '^(tocsin-collector|tocsin-rules|tocsinctl) ' <<<"$crates"; then
  echo "a collector crate is linked into the agent" >&2
  exit 1
fi
echo "workspace crates linked: $(grep -E '^tocsin-' <<<"$crates" | cut -d' ' -f1 | xargs)"
