# Sourced by the etcd benches (membership.sh, rolling.sh): etcdctl with the lab's PKI, ~10 MB
# of data, and a writer that times a command. Needs LAB (the lab's directory), WORK (a scratch
# directory) and WRITE_TO (the endpoints the writer puts through, comma-separated).

etcdctl_() {
  ETCDCTL_API=3 etcdctl --endpoints="$1" --cacert="$LAB/pki/etcd/ca.crt" \
    --cert="$LAB/pki/etcd/healthcheck-client.crt" --key="$LAB/pki/etcd/healthcheck-client.key" \
    --dial-timeout=2s --command-timeout=2s "${@:2}"
}

# ~10 MB: 100 values of 100 KB, so a member that restarts or joins has something to load.
fill_10mb() {
  head -c 75000 /dev/urandom | base64 -w0 >"$WORK/value"
  for i in $(seq -w 1 100); do etcdctl_ "$WRITE_TO" put "bulk/$i" <"$WORK/value" >/dev/null; done
}

# A put every 100 ms through WRITE_TO; one line per put: time and ok|failed.
writer() {
  local n=0
  while [ ! -e "$WORK/stop" ]; do
    local t0
    t0=$(date +%s.%N)
    if etcdctl_ "$WRITE_TO" put "writer/$n" x >/dev/null 2>&1; then
      echo "$(date +%s.%N) ok"
    else
      echo "$(date +%s.%N) failed"
    fi
    n=$((n + 1))
    sleep "$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { d = 0.1 - (now - t0); print (d > 0 ? d : 0) }')"
  done
}

# Time a kinit command under the writer: "<label>: X s; N puts, F failed, longest gap G ms".
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
