#!/usr/bin/env bash
# The whole test suite (README "Tests"): every target `cargo test --all-targets` runs, in two
# streams at once. The labs that run Kubernetes (3 to 5 nodes with kube-apiservers and kubelets)
# go one after another, as they always did; everything else (unit and CLI tests, and the labs
# of etcd, haproxy and keepalived alone) runs beside them. The Kubernetes labs spend most of
# their time waiting on health checks and timers (the whole suite kept a 2-core machine about
# a sixth busy), so the second stream costs them little; one after the other the suite took
# 83 of CI's 90 minutes. Each lab has its own name, subnet and bridge, so the streams share
# nothing but the cached node image, which is built under a lock.
#
# Exit status: 0 when both streams pass.
set -uo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_LABS=(
  static_pod_lab node_layer_lab control_plane_day2_lab control_plane_lab
  kubernetes_upgrade_lab drill_lab control_plane_etcd_upgrade_lab
)

cargo test --all-targets --no-run || exit 1

is_kubernetes_lab() {
  local lab
  for lab in "${KUBERNETES_LABS[@]}"; do [ "$lab" = "$1" ] && return 0; done
  return 1
}

# Every integration test target: tests/NAME.rs and tests/NAME/main.rs.
kubernetes=()
others=()
for f in tests/*.rs tests/*/main.rs; do
  name=${f#tests/}
  name=${name%/main.rs}
  name=${name%.rs}
  if is_kubernetes_lab "$name"; then kubernetes+=(--test "$name"); else others+=(--test "$name"); fi
done
if [ "${#kubernetes[@]}" -ne $((2 * ${#KUBERNETES_LABS[@]})) ]; then
  echo "tests/run-suite.sh: a lab named in KUBERNETES_LABS has no tests/NAME.rs or tests/NAME/main.rs" >&2
  exit 1
fi

# The Kubernetes labs print as they go; the rest's output is held and printed whole when it ends
# (so its lines do not tangle with theirs).
others_log=$(mktemp)
trap 'rm -f "$others_log"' EXIT
cargo test --no-fail-fast "${kubernetes[@]}" &
kubernetes_pid=$!
cargo test --no-fail-fast --lib --bins --examples --benches "${others[@]}" >"$others_log" 2>&1
others_rc=$?
echo "===== tests/run-suite.sh: everything but the Kubernetes labs (exit $others_rc) ====="
cat "$others_log"
echo "===== end of everything but the Kubernetes labs ====="
wait "$kubernetes_pid"
kubernetes_rc=$?
echo "tests/run-suite.sh: the rest exit $others_rc, the Kubernetes labs exit $kubernetes_rc"
[ "$others_rc" -eq 0 ] && [ "$kubernetes_rc" -eq 0 ]
