#!/usr/bin/env bash
# How long `kinit config validate` takes on the two hostile configs of issue 16 (release build):
#   unknown-keys: a valid cluster plus 20,000 unknown top-level keys (~0.5 MiB), every one a
#                 diagnostic with its own line:column (was quadratic: each location re-scanned
#                 the file);
#   deep-nesting: ~500 KB of nested flow mappings `{a: {a: ...`, which must be refused by the
#                 nesting limit rather than parsed.
# Prints the wall time of each (best of ROUNDS, default 3) and the validator's exit code (1 =
# problems reported, the expected outcome; 101 would be a panic).
#
#   benches/config_load.sh                 # builds and measures target/release/kinit
#   KINIT=/path/to/kinit benches/config_load.sh   # measures another binary (e.g. an older build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
if [ -z "${KINIT:-}" ]; then
  cargo build --release --quiet
  KINIT=${CARGO_TARGET_DIR:-$PWD/target}/release/kinit
fi

work=$(mktemp -d /tmp/kinit-config-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

base='apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata:
  name: demo
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint:
    address: 192.168.9.100
  hosts:
    - {name: cp1, address: 192.168.9.11, roles: [control-plane, etcd]}'
{ echo "$base"; for i in $(seq -w 1 20000); do echo "unknownField$i: value"; done; } > "$work/unknown-keys.yaml"
{ head -c 500000 < /dev/zero | tr '\0' 'x' | sed 's/xxxx/{a: /g'; echo; } > "$work/deep-nesting.yaml"

measure() {
  local name=$1 file=$2 best='' rc=0
  for _ in $(seq "$ROUNDS"); do
    local start end
    start=$(date +%s.%N)
    "$KINIT" -c "$file" config validate > /dev/null 2>&1 && rc=0 || rc=$?
    end=$(date +%s.%N)
    local t
    t=$(echo "$end - $start" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  printf '%-14s %8d bytes  best of %d: %6.3f s  (exit %d)\n' "$name" "$(stat -c %s "$file")" "$ROUNDS" "$best" "$rc"
}

measure unknown-keys "$work/unknown-keys.yaml"
measure deep-nesting "$work/deep-nesting.yaml"
