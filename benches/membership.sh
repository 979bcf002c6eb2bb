#!/usr/bin/env bash
# etcd membership figures (not a test), on a lab of 5 nodes (cp1-cp3 control-plane + etcd, w1
# and w2 workers) whose etcd holds ~10 MB:
#   - time of the `kinit up` that grows etcd 3 -> 5 (w1 and w2 given control-plane + etcd in
#     cluster.yaml: each joins as a learner, promoted once caught up, one at a time);
#   - time of the `kinit up` that adds one member (w2, after its member was taken out by hand);
#   - time of the `kinit remove w1 w2` that shrinks it back 5 -> 3;
#   - during each, a writer on this machine putting a key every 100 ms through the original
#     members: failed puts and the longest gap between two acknowledged puts.
# Run as root from the repository:
#   benches/membership.sh            (PROFILE=debug to use a debug build)
# Traffic goes only to the nodes of the bench's own lab, on the bridge it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build --release -q; else cargo build -q; fi
K=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE/kinit
NAME=kjbench
SUBNET=10.213.222.0/24
NET=10.213.222
LAB=/var/lib/kinit/labs/$NAME
CONFIG=$LAB/cluster.yaml
UP=(-c "$CONFIG" up -q --ignore-preflight-errors=Port-6443)
ORIGINAL=https://$NET.11:2379,https://$NET.12:2379,https://$NET.13:2379
WORK=$(mktemp -d /tmp/kinit-membership-bench.XXXXXX)

trap '$K lab down --name $NAME -q || true; rm -rf "$WORK"' EXIT
$K lab down --name $NAME -q
$K lab up --name $NAME --subnet $SUBNET --nodes 5 --bundle image -q
$K "${UP[@]}"

WRITE_TO=$ORIGINAL
# shellcheck source=benches/etcd_writer.sh
. benches/etcd_writer.sh
fill_10mb
etcdctl_ "https://$NET.11:2379" endpoint status -w table

roles() { sed -i "s/{name: $1, \(.*\)roles: \[worker\]}/{name: $1, \1roles: [control-plane, etcd]}/" "$CONFIG"; }

roles w1
roles w2
measure "grow 3 -> 5 (~10 MB), kinit up" $K "${UP[@]}"
etcdctl_ "$ORIGINAL" member list -w table

# One member added: w2's member taken out by hand and its data wiped first (not timed).
id=$(etcdctl_ "$ORIGINAL" member list | awk -F', ' '$3 == "w2" { print $1 }')
etcdctl_ "$ORIGINAL" member remove "$id" >/dev/null
$K lab ssh --name $NAME w2 -- 'systemctl stop etcd && rm -rf /var/lib/etcd'
measure "add one member, 4 -> 5 (~10 MB), kinit up" $K "${UP[@]}"

# Shrink 5 -> 3 back: both taken out by `kinit remove` (leadership handed over if one leads,
# members removed, hosts reset, the others' haproxy/keepalived reloaded one at a time).
measure "shrink 5 -> 3, kinit remove w1 w2" $K -c "$CONFIG" remove --yes w1 w2
etcdctl_ "$ORIGINAL" member list -w table
