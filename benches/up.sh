#!/usr/bin/env bash
# `kinit up` figures (not a test): wall time of `kinit up` on 3 fresh lab nodes (node creation
# excluded), of the no-op re-run, and how long the VIP took to move (and VIP:port to answer
# again through haproxy) after the node holding it was stopped. Run as root from the repository:
#   benches/up.sh            (RUNS=3 by default: fresh nodes each run)
# Traffic goes only to the nodes of the bench's own lab, on the bridge it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
K=$PWD/target/release/kinit
NAME=kupbench
SUBNET=10.213.207.0/24
VIP=10.213.207.100
RUNS=${RUNS:-3}
CONFIG=/var/lib/kinit/labs/$NAME/cluster.yaml

trap '$K lab down --name $NAME -q || true' EXIT
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }

for i in $(seq "$RUNS"); do
  $K lab down --name $NAME -q
  $K lab up --name $NAME --subnet $SUBNET --bundle image -q
  s=$(date +%s.%N)
  /usr/bin/time -f '%M' -o /tmp/kinit-up-rss $K -c $CONFIG -q up >/dev/null
  e=$(date +%s.%N)
  echo "kinit up, 3 fresh nodes, run $i: $(secs "$s" "$e") s (max RSS $(cat /tmp/kinit-up-rss) KiB)"
  s=$(date +%s.%N)
  $K -c $CONFIG -q up >/dev/null
  e=$(date +%s.%N)
  echo "kinit up, no-op re-run $i: $(secs "$s" "$e") s"
done

# The apiserver stand-in on every node, behind haproxy.
for n in cp1 cp2 cp3; do
  $K lab ssh --name $NAME $n -- 'systemd-run -q --unit apiserver-standin openssl s_server -quiet -accept 6443 -cert /etc/kubernetes/pki/apiserver.crt -key /etc/kubernetes/pki/apiserver.key -www'
done
answers() {
  openssl s_client -connect $VIP:8443 -CAfile /var/lib/kinit/labs/$NAME/pki/ca.crt -verify_return_error \
    -verify_ip $VIP </dev/null 2>/dev/null | grep -q 'Verify return code: 0 (ok)'
}
until answers; do sleep 0.2; done
holder=$(for n in cp1 cp2 cp3; do $K lab ssh --name $NAME $n -- "ip -o addr show | grep -q 'inet $VIP/' && echo $n" || true; done)
s=$(date +%s.%N)
$K lab stop --name $NAME "$holder" -q
until answers; do sleep 0.1; done
e=$(date +%s.%N)
new=$(for n in cp1 cp2 cp3; do [ "$n" = "$holder" ] || $K lab ssh --name $NAME $n -- "ip -o addr show | grep -q 'inet $VIP/' && echo $n" || true; done)
echo "VIP moved from $holder to $new; VIP:8443 answered again (TLS verified) after $(secs "$s" "$e") s"

# A harder failure: the new holder's link cut (no goodbye advert from keepalived; the others
# notice the missing adverts, and haproxy redispatches connections meant for the lost backend).
# Scheduled on the node, so the ssh session asking for it is not cut with the link.
$K lab ssh --name $NAME "$new" -- 'setsid sh -c "sleep 2; ip link set host0 down" </dev/null >/dev/null 2>&1 &'
s=$(awk -v t="$(date +%s.%N)" 'BEGIN { printf "%.3f", t + 2 }')
sleep 2.1
until answers; do sleep 0.1; done
e=$(date +%s.%N)
stable=0
for _ in $(seq 20); do answers && stable=$((stable + 1)); sleep 0.1; done
echo "link of $new cut: VIP:8443 answered again (TLS verified) after $(secs "$s" "$e") s; then $stable of 20 handshakes in the next ~3 s succeeded"
