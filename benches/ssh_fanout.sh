#!/usr/bin/env bash
# Connect + authenticate + run `true` on N loopback endpoints (default 50), side by side:
#   OpenSSH `ssh` one after another, OpenSSH `ssh` all at once, and `kinit exec` (release build).
# Same key exchange for both (curve25519-sha256), same ed25519 user key, same strict known_hosts.
#
# The endpoints are 127.0.0.2..127.0.0.(N+1), one port. sshd accepts at most 16 listen sockets
# (MAX_LISTEN_SOCKS), so ceil(N/16) sshd processes share one config template. The login user is
# a throwaway user whose shell is /bin/sh, so no shell rc file runs per command (root's ~/.bashrc
# on this machine runs pyenv init, ~90 ms per command). Everything is removed at the end.
#
# Run as root: benches/ssh_fanout.sh   (N=20 for fewer endpoints, ROUNDS=3 to repeat,
# KINIT=/path/to/kinit to measure another build, e.g. the one before a change)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50}
if [ -z "${KINIT:-}" ]; then
  cargo build --release --quiet
  KINIT=${CARGO_TARGET_DIR:-$PWD/target}/release/kinit
fi

work=$(mktemp -d /tmp/kinit-bench.XXXXXX)
chmod 755 "$work"
user=kb$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  userdel -f "$user" 2>/dev/null || true
  rm -f "/etc/sudoers.d/$user"
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/home" /run/sshd
useradd -M -s /bin/sh -p '*' -d "$work/home" "$user"
chown "$user" "$work/home"
# kinit preflight runs its probe as root (through sudo), as it would on real hosts.
echo "$user ALL=(ALL) NOPASSWD: ALL" > "/etc/sudoers.d/$user"
chmod 440 "/etc/sudoers.d/$user"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
mkdir "$work/authorized"
cp "$work/id_ed25519.pub" "$work/authorized/$user"

port=$((20000 + RANDOM % 20000))
addresses=()
for i in $(seq 2 $((N + 1))); do addresses+=("127.0.0.$i"); done
hostkey=$(cut -d' ' -f1,2 "$work/host_key.pub")
: > "$work/known_hosts"
for a in "${addresses[@]}"; do echo "[$a]:$port $hostkey" >> "$work/known_hosts"; done

for ((start = 0; start < N; start += 16)); do
  cfg="$work/sshd_config.$start"
  {
    echo "Port $port"
    echo "HostKey $work/host_key"
    echo "PidFile none"
    echo "AuthorizedKeysFile $work/authorized/%u"
    echo "StrictModes no"
    echo "UsePAM no"
    echo "PasswordAuthentication no"
    echo "KbdInteractiveAuthentication no"
    echo "MaxStartups 200"
    echo "PrintMotd no"
    echo "LogLevel ERROR"
    for a in "${addresses[@]:start:16}"; do echo "ListenAddress $a"; done
  } > "$cfg"
  /usr/sbin/sshd -D -e -f "$cfg" 2>>"$work/sshd.log" &
  pids+=($!)
done
for a in "${addresses[@]}"; do
  for _ in $(seq 100); do (echo > "/dev/tcp/$a/$port") 2>/dev/null && break; sleep 0.05; done
done

{
  echo "apiVersion: kinit.io/v1alpha1"
  echo "kind: Cluster"
  echo "metadata: {name: bench}"
  echo "spec:"
  echo "  kubernetesVersion: v1.31.4"
  echo "  controlPlaneEndpoint: {address: 127.0.0.254, port: 8443}"
  echo "  ssh: {user: $user, port: $port, identityFile: $work/id_ed25519, knownHosts: $work/known_hosts}"
  echo "  hosts:"
  i=0
  for a in "${addresses[@]}"; do
    roles=worker
    if [ $i -lt 3 ]; then roles="control-plane, etcd"; fi
    echo "    - {name: h$i, address: $a, roles: [$roles]}"
    i=$((i + 1))
  done
} > "$work/cluster.yaml"

SSH=(ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes
  -o "UserKnownHostsFile=$work/known_hosts" -o GlobalKnownHostsFile=/dev/null
  -o IdentitiesOnly=yes -o IdentityAgent=none -o KexAlgorithms=curve25519-sha256
  -i "$work/id_ed25519" -p "$port" -l "$user")
export SSH_LIST="${addresses[*]}"

# CPU (user+sys seconds) the sshd processes and their exited children used so far.
server_cpu() {
  local total=0 p
  for p in "${pids[@]}"; do
    total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat")))
  done
  echo "scale=2; $total / $(getconf CLK_TCK)" | bc
}

measure() {
  local label=$1
  shift
  local before after
  before=$(server_cpu)
  /usr/bin/time -v -o "$work/time.txt" "$@" > "$work/out.txt" 2>&1 || {
    echo "$label FAILED:"; cat "$work/out.txt"; exit 1; }
  # Per-connection sshd processes count once the listener has reaped them.
  sleep 1
  after=$(server_cpu)
  local wall user sys rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  user=$(awk -F': ' '/User time/ {print $2}' "$work/time.txt")
  sys=$(awk -F': ' '/System time/ {print $2}' "$work/time.txt")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$work/time.txt")
  printf '%-28s wall %8s  client cpu %5.2fs (user %s, sys %s)  server cpu %5.2fs  max RSS %6d KiB\n' \
    "$label" "$wall" "$(echo "$user + $sys" | bc)" "$user" "$sys" "$(echo "$after - $before" | bc)" "$rss"
}

echo "endpoints: $N (127.0.0.2..127.0.0.$((N + 1)):$port), sshd processes: ${#pids[@]}, $(ssh -V 2>&1)"
# Warm-up (page cache, first fork of each sshd).
"${SSH[@]}" 127.0.0.2 true
for round in $(seq "${ROUNDS:-1}"); do
measure "ssh, sequential" bash -c 'for a in $SSH_LIST; do "$@" "$a" true || exit 1; done' _ "${SSH[@]}"
measure "ssh, all $N in parallel" bash -c 'for a in $SSH_LIST; do "$@" "$a" true & done; fail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail' _ "${SSH[@]}"
measure "kinit exec (concurrency $N)" env -u SSH_AUTH_SOCK "$KINIT" -q -c "$work/cluster.yaml" exec --no-sudo --concurrency "$N" -- true
measure "kinit exec (concurrency 30)" env -u SSH_AUTH_SOCK "$KINIT" -q -c "$work/cluster.yaml" exec --no-sudo -- true
# The full preflight (probe, every check, and from each host a connect to each port of another
# host the cluster will use: etcd between h0..h2, 6443 and the frontend from every host to
# h0..h2, 10250 from h0..h2 to every host; on these loopback endpoints they are refused at once,
# as they are before `kinit up` on real hosts). Exit 1 is expected: the 50 endpoints are one
# machine, so its hostname and machine-id clash 50 ways.
measure "kinit preflight (concurrency $N)" bash -c '"$@"; [ $? -le 1 ]' _ env -u SSH_AUTH_SOCK "$KINIT" -q -o json -c "$work/cluster.yaml" preflight --concurrency "$N"
# Which checks failed, and on how many hosts (expected: the identity checks, and those this
# machine fails as a host: no systemd as PID 1, ip_forward).
python3 -c 'import json,sys,collections
r=json.load(open(sys.argv[1]))
c=collections.Counter(f["check"] for f in r["findings"] if f["status"]=="fail")
print("  preflight failures by check:", dict(c) or "none")' "$work/out.txt"
done
echo "(max RSS of the parallel ssh run is that of the largest single ssh process; $N of them ran at once)"
