#!/usr/bin/env bash
# Lab figures (not a test): `lab up` time with a warm image, memory per idle node, and with
# --cold the time of `lab up` including the image build (in a throwaway state directory, so the
# shared image cache is left alone). Run as root from the repository:
#   benches/lab.sh [--cold]
# Traffic goes only to the nodes of the bench's own lab, on the bridge it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
K=$PWD/target/release/kinit
NAME=kbench
SUBNET=10.213.201.0/24
RUNS=${RUNS:-3}

trap '$K lab down --name $NAME -q || true' EXIT
$K lab down --name $NAME -q

if [ "${1:-}" = "--cold" ]; then
  STATE=$(mktemp -d /var/tmp/kinit-bench-cold.XXXXXX)
  s=$(date +%s.%N)
  KINIT_STATE_DIR=$STATE $K lab up --name $NAME --subnet $SUBNET -q
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "cold lab up (image build + 3 nodes): %.1f s\n", e - s }'
  KINIT_STATE_DIR=$STATE $K lab down --name $NAME -q
  rm -rf "$STATE"
fi

# Warm the image cache if needed (not timed).
$K lab up --name $NAME --subnet $SUBNET -q
$K lab down --name $NAME -q
for i in $(seq "$RUNS"); do
  s=$(date +%s.%N)
  $K lab up --name $NAME --subnet $SUBNET -q
  e=$(date +%s.%N)
  awk -v i="$i" -v s="$s" -v e="$e" 'BEGIN { printf "warm lab up, 3 nodes, run %d: %.2f s\n", i, e - s }'
  [ "$i" = "$RUNS" ] || $K lab down --name $NAME -q
done

# Memory of each idle node (its processes, plus the systemd-nspawn supervising it): wait until its systemd says the boot is over, settle, then sum the
# PSS of every process in the node's PID namespace (and the cgroup's memory.current where the
# memory controller is available).
for n in cp1 cp2 cp3; do $K lab ssh --name $NAME $n -- systemctl is-system-running --wait >/dev/null; done
sleep 10
STATE_JSON=/var/lib/kinit/labs/$NAME/state.json
for n in cp1 cp2 cp3; do
  read -r nspawn leader < <(python3 -c "import json;s=json.load(open('$STATE_JSON'));x=[x for x in s['nodes'] if x['name']=='$n'][0];print(x['nspawn']['pid'], x['leader']['pid'])")
  ns=$(readlink /proc/$leader/ns/pid)
  pss=0; procs=0
  for p in /proc/[0-9]*; do
    [ "$(readlink $p/ns/pid 2>/dev/null)" = "$ns" ] || continue
    k=$(awk '/^Pss:/{print $2}' $p/smaps_rollup 2>/dev/null || true)
    pss=$((pss + ${k:-0})); procs=$((procs + 1))
  done
  cg=""
  for c in $(python3 -c "import json;s=json.load(open('$STATE_JSON'));print(' '.join([x for x in s['nodes'] if x['name']=='$n'][0]['cgroups']))"); do
    [ -f "$c/memory.current" ] && cg=" memory.current $(( $(cat $c/memory.current) / 1024 )) KiB"
  done
  np=$(awk '/^Pss:/{print $2}' /proc/$nspawn/smaps_rollup)
  printf 'idle node %s: %d processes, PSS %d KiB (+ %d KiB for its systemd-nspawn)%s\n' "$n" "$procs" "$pss" "$np" "$cg"
done
