#!/bin/bash
cd /tmp/fastbed
T0=$(date +%s.%N)
./start.sh --private-network $CAPS --system-call-filter="$SCF" --kill-signal=SIGRTMIN+3 --bind-ro=/var/cache/kinit-test/bundle-bin:/opt/kbin --bind=/tmp/fastbed/cdata:/var/lib/containerd /usr/local/sbin/kinit-init >/dev/null
for i in $(seq 600); do
  sleep 0.2
  L=$(pgrep -P $(cat nspawn.pid) 2>/dev/null) || continue
  [ -z "$TC" ] && ./in.sh test -S /run/containerd/containerd.sock 2>/dev/null && TC=$(date +%s.%N)
  n=$(./in.sh crictl ps --state running -q 2>/dev/null | wc -l)
  if [ "$n" -ge 3 ]; then T1=$(date +%s.%N); break; fi
done
echo "containerd socket after $(echo "$TC - $T0" | bc) s; 3 pods' containers running after $(echo "$T1 - $T0" | bc) s"
