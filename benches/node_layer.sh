#!/usr/bin/env bash
# Node layer figures (not a test): a fresh `lab up --runtime` of 3 control-plane nodes and a
# worker running the binaries hack/build-upstream.sh built (the kubernetes, etcd and node sets in
# one directory): `lab up`, `kinit up` until every node is Ready (the nodes-ready phase's own
# figure too, and the cluster-dns phase's CoreDNS rollout), the sandbox and CoreDNS images' import
# on one node, the no-op re-run, the memory of containerd + kubelet + kube-proxy + the pods
# (CoreDNS among them) on each node (PSS, smaps_rollup, after a minute), and the
# time from a pod's creation to Running on the worker. Run as root from the repository:
#   benches/node_layer.sh          (UPSTREAM=/var/cache/kinit-test/bundle-bin by default;
#                                   KINIT=target/debug/kinit skips the release build)
# Traffic goes only to the nodes of the bench's own lab, on the bridge it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${KINIT:-}" ]; then
  K=$(realpath "$KINIT")
else
  cargo build --release -q
  K=$PWD/target/release/kinit
fi
UPSTREAM=${UPSTREAM:-/var/cache/kinit-test/bundle-bin}
NAME=knbench
SUBNET=10.213.209.0/24
DIR=/var/lib/kinit/labs/$NAME
CONFIG=$DIR/cluster.yaml
KUBECTL="$UPSTREAM/kubectl --kubeconfig $DIR/admin.kubeconfig --request-timeout=5s"

trap '$K lab down --name $NAME -q || true' EXIT
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }

$K lab down --name $NAME -q
s=$(date +%s.%N)
$K lab up --name $NAME --subnet $SUBNET --nodes 4 --bundle "$UPSTREAM" --runtime -q
e=$(date +%s.%N)
echo "lab up --runtime, 4 nodes: $(secs "$s" "$e") s"
s=$(date +%s.%N)
$K -c $CONFIG up > /tmp/kinit-node-up.log
e=$(date +%s.%N)
echo "kinit up until every node is Ready and CoreDNS rolled out: $(secs "$s" "$e") s ($(grep -o 'nodes-ready: [0-9]* node(s) Ready.*' /tmp/kinit-node-up.log))"
echo "  $(grep -o 'CoreDNS answers at.*' /tmp/kinit-node-up.log || echo 'no CoreDNS note')"
s=$(date +%s.%N)
$K -c $CONFIG -q up >/dev/null
e=$(date +%s.%N)
echo "kinit up, no-op re-run: $(secs "$s" "$e") s"
t=$($K lab ssh --name $NAME w1 -- 's=$(date +%s%N); ctr -n k8s.io images import /var/lib/kinit/images/pause.tar >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))')
echo "pause image import on w1 (already present): $t ms"
t=$($K lab ssh --name $NAME w1 -- 'ctr -n k8s.io images rm registry.k8s.io/coredns/coredns:'"$(cat hack/upstream/coredns/VERSION)"' >/dev/null 2>&1 || true; s=$(date +%s%N); ctr -n k8s.io images import /var/lib/kinit/images/coredns.tar >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))')
echo "CoreDNS image import on w1 (78 MB binary, not yet present): $t ms"

rm -f "$DIR/admin.kubeconfig"
$K -c $CONFIG -q kubeconfig "$DIR/admin.kubeconfig"
cat > /tmp/kinit-bench-pod.json <<'POD'
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench"},"spec":{"nodeName":"w1",
 "containers":[{"name":"pause","image":"registry.k8s.io/pause:3.10.1","imagePullPolicy":"Never"}]}}
POD
s=$(date +%s.%N)
$KUBECTL apply -f /tmp/kinit-bench-pod.json >/dev/null
until [ "$($KUBECTL get pod bench -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; do sleep 0.1; done
e=$(date +%s.%N)
echo "pod created -> Running on w1: $(secs "$s" "$e") s"

sleep 60
for n in cp1 cp2 cp3 w1; do
  line=$($K lab ssh --name $NAME $n -- 'tot=0; for p in containerd kubelet kube-proxy containerd-shim pause coredns; do s=0; for pid in $(pgrep -x $p); do s=$((s + $(awk "/^Pss:/ {print \$2}" /proc/$pid/smaps_rollup))); done; tot=$((tot + s)); printf "%s %d MiB, " $p $((s / 1024)); done; printf "together %d MiB" $((tot / 1024))')
  echo "$n: $line"
done
