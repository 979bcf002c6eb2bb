#!/usr/bin/env bash
# Day-two figures (not a test): `kinit etcd snapshot save` and `restore` on 3 lab members with
# ~10 MB and ~100 MB of data (wall time, and kinit's max RSS: the snapshot is streamed, never
# held whole), then `kinit reset` of the 3 hosts. Run as root from the repository:
#   benches/lifecycle.sh
# Traffic goes only to the nodes of the bench's own lab, on the bridge it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
K=$PWD/target/release/kinit
NAME=klbench
SUBNET=10.213.218.0/24
CONFIG=/var/lib/kinit/labs/$NAME/cluster.yaml
OUT=$(mktemp -d)

trap '$K lab down --name $NAME -q || true; rm -rf "$OUT"' EXIT
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }

$K lab down --name $NAME -q
$K lab up --name $NAME --subnet $SUBNET --bundle image -q
$K -c $CONFIG -q up >/dev/null

# Fill etcd on cp1 with 10 KB values, 100 puts per transaction (under etcd's 128-op and
# 1.5 MiB request limits), until the store holds about `$1` MB more.
fill() {
  $K lab ssh --name $NAME cp1 -- "
    set -e
    v=\$(head -c 7500 /dev/urandom | base64 -w0 | head -c 10000)
    e='--endpoints=https://10.213.218.11:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key'
    for t in \$(seq $1); do
      { echo; for i in \$(seq 100); do echo \"put bench/$2/\$t/\$i \$v\"; done; echo; echo; } |
        ETCDCTL_API=3 etcdctl \$e txn >/dev/null
    done"
}

for size in 10 100; do
  fill $((size * 1)) "$size"     # 100 x 10 KB = ~1 MB per transaction
  file=$OUT/snap-$size.db
  s=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$OUT/rss" $K -c $CONFIG -q etcd snapshot save "$file" >/dev/null
  e=$(date +%s.%N)
  bytes=$(stat -c %s "$file")
  echo "snapshot save, ~$size MB added ($((bytes / 1048576)) MiB file): $(secs "$s" "$e") s, kinit max RSS $(cat "$OUT/rss") KiB"
  s=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$OUT/rss" $K -c $CONFIG -q etcd snapshot restore "$file" --yes >/dev/null
  e=$(date +%s.%N)
  echo "snapshot restore of it on 3 members: $(secs "$s" "$e") s, kinit max RSS $(cat "$OUT/rss") KiB"
done

s=$(date +%s.%N)
$K -c $CONFIG -q reset --yes >/dev/null
e=$(date +%s.%N)
echo "reset of 3 hosts: $(secs "$s" "$e") s"
