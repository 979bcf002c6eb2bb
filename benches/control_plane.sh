#!/usr/bin/env bash
# Real control plane figures (not a test): on 3 fresh lab nodes running the binaries
# hack/build-upstream.sh built (kube-apiserver, kube-controller-manager, kube-scheduler v1.37,
# etcd 3.6, as systemd units): `lab up`, `kinit up` until the API answers through the VIP, the
# no-op re-run, each component's memory per node (PSS), and the API failover time after the VIP
# holder is powered off. The rollout figures (duration, failed requests, longest gap of a client
# reading /readyz and a ConfigMap through the VIP every 100 ms) are printed by the lab test:
#   cargo test --test control_plane_lab -- --nocapture | grep figures
# Run as root from the repository:
#   benches/control_plane.sh          (UPSTREAM=/var/cache/kinit-test/bundle-bin by default)
# Traffic goes only to the nodes of the bench's own lab, on the bridge it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
K=$PWD/target/release/kinit
UPSTREAM=${UPSTREAM:-/var/cache/kinit-test/bundle-bin}
NAME=kcpbench
SUBNET=10.213.208.0/24
VIP=10.213.208.100
DIR=/var/lib/kinit/labs/$NAME
CONFIG=$DIR/cluster.yaml
KUBECTL="$UPSTREAM/kubectl --kubeconfig $DIR/admin.kubeconfig --request-timeout=2s"

trap '$K lab down --name $NAME -q || true' EXIT
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }

$K lab down --name $NAME -q
s=$(date +%s.%N)
$K lab up --name $NAME --subnet $SUBNET --bundle "$UPSTREAM" -q
e=$(date +%s.%N)
echo "lab up, 3 nodes with the Kubernetes bundle: $(secs "$s" "$e") s"
s=$(date +%s.%N)
/usr/bin/time -f '%M' -o /tmp/kinit-cp-rss $K -c $CONFIG -q up >/dev/null
rm -f "$DIR/admin.kubeconfig"
$K -c $CONFIG -q kubeconfig "$DIR/admin.kubeconfig"
until $KUBECTL get --raw /readyz >/dev/null 2>&1; do sleep 0.1; done
e=$(date +%s.%N)
echo "kinit up until the API answers through the VIP: $(secs "$s" "$e") s (kinit max RSS $(cat /tmp/kinit-cp-rss) KiB)"
s=$(date +%s.%N)
$K -c $CONFIG -q up >/dev/null
e=$(date +%s.%N)
echo "kinit up, no-op re-run: $(secs "$s" "$e") s"

# PSS of each component's process on each node (smaps_rollup), after a minute of running.
sleep 60
for n in cp1 cp2 cp3; do
  line=$($K lab ssh --name $NAME $n -- 'for p in kube-apiserver kube-controller kube-scheduler etcd haproxy keepalived; do pid=$(pgrep -o -x $p) || continue; printf "%s %s MiB, " $p $(awk "/^Pss:/ {printf \"%.0f\", \$2/1024}" /proc/$pid/smaps_rollup); done')
  echo "$n: ${line%, }"
done

holder=$(for n in cp1 cp2 cp3; do $K lab ssh --name $NAME $n -- "ip -o addr show | grep -q 'inet $VIP/' && echo $n" || true; done)
s=$(date +%s.%N)
$K lab stop --name $NAME "$holder" -q
until $KUBECTL get --raw /readyz >/dev/null 2>&1; do sleep 0.1; done
e=$(date +%s.%N)
echo "API failover: $holder powered off -> first answered request through the VIP after $(secs "$s" "$e") s"
$K lab start --name $NAME "$holder" -q
