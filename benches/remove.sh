#!/usr/bin/env bash
# `kinit remove` figures (not a test): on 4 lab control-plane + etcd hosts (cp1..cp3 and w1 given
# both roles), the wall time of removing a follower (w1), then of removing the etcd leader (cp3,
# made leader with `etcdctl move-leader` first: the removal hands leadership over), each while a
# writer on this machine puts a key every 100 ms: its failed puts and longest gap between two
# acknowledged puts. Run as root from the repository:
#   benches/remove.sh                  (KINIT=path/to/kinit to time a binary already built)
# Traffic goes only to the nodes of the bench's own lab, on the bridge it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KINIT:-}" ]; then
  cargo build --release -q
  KINIT=${CARGO_TARGET_DIR:-$PWD/target}/release/kinit
fi
K=$KINIT
NAME=kremove
NET=10.213.223
CONFIG=/var/lib/kinit/labs/$NAME/cluster.yaml
PKI=/var/lib/kinit/labs/$NAME/pki
OUT=$(mktemp -d)
WRITER=

cleanup() {
  [ -n "$WRITER" ] && kill "$WRITER" 2>/dev/null || true
  $K lab down --name $NAME -q || true
  rm -rf "$OUT"
}
trap cleanup EXIT
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }
ectl() {
  ETCDCTL_API=3 etcdctl --endpoints="$1" --cacert=$PKI/etcd/ca.crt \
    --cert=$PKI/etcd/healthcheck-client.crt --key=$PKI/etcd/healthcheck-client.key \
    --dial-timeout=1s --command-timeout=2s "${@:2}"
}
ALL=https://$NET.11:2379,https://$NET.12:2379,https://$NET.13:2379,https://$NET.14:2379

# A put every 100 ms (etcdctl tries the endpoints in turn); one line per put: the time it was
# acknowledged, or FAIL.
writer() {
  n=0
  while :; do
    if ectl "$ALL" put "bench/w/$n" x >/dev/null 2>&1; then date +%s.%N; else echo FAIL; fi
    n=$((n + 1))
    sleep 0.1
  done
}
writer_figures() {
  awk '/FAIL/ { f++; next } { if (p) { g = $1 - p; if (g > m) m = g } p = $1; n++ }
       END { printf "writer: %d puts acknowledged, %d failed, longest gap %.0f ms\n", n, f, m * 1000 }' "$1"
}
member_id() {
  ectl "$ALL" member list | awk -F', ' -v n="$1" '$3 == n { print $1 }'
}

$K lab down --name $NAME -q
$K lab up --name $NAME --subnet $NET.0/24 --nodes 4 --bundle image -q
sed -i 's/{name: w1, \(.*\)roles: \[worker\]}/{name: w1, \1roles: [control-plane, etcd]}/' $CONFIG
$K -c $CONFIG -q up >/dev/null
for n in cp1 cp2 cp3 w1; do
  $K lab ssh --name $NAME $n -- "systemd-run --unit apiserver-standin openssl s_server -quiet \
    -accept 6443 -cert /etc/kubernetes/pki/apiserver.crt -key /etc/kubernetes/pki/apiserver.key -www" >/dev/null 2>&1
done

remove() {
  writer >"$OUT/w-$1" & WRITER=$!
  sleep 2
  s=$(date +%s.%N)
  $K -c $CONFIG -q remove "$1" --yes >/dev/null
  e=$(date +%s.%N)
  sleep 2
  kill $WRITER; wait $WRITER 2>/dev/null || true; WRITER=
  echo "remove $1 ($2): $(secs "$s" "$e") s; $(writer_figures "$OUT/w-$1")"
  sed -i "/{name: $1, /d" $CONFIG
}

remove w1 "a follower, 4 -> 3 members"
THREE=https://$NET.11:2379,https://$NET.12:2379,https://$NET.13:2379
ectl "$THREE" move-leader "$(member_id cp3)" >/dev/null
remove cp3 "the leader, 3 -> 2 members"
