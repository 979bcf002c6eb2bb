#!/usr/bin/env bash
# Builds the upstream programs kinit deploys from their Go modules, pinned by the wrapper modules
# committed under hack/upstream/<set>/ (go.mod + go.sum: every module hash-checked by the go command).
#
#   hack/build-upstream.sh DIR [--set kubernetes|kubernetes-previous|kubernetes-previous-patch|etcd|etcd-previous|node|containerd|runc|crictl|cni|coredns|all]...
#   hack/build-upstream.sh --regen kubernetes --kubernetes v1.37.2   # rewrite the wrapper for a release
#   hack/build-upstream.sh --regen kubernetes-previous --kubernetes v1.36.3
#   hack/build-upstream.sh --regen kubernetes-previous-patch --kubernetes v1.36.1
#
# DIR receives the binaries (the *-previous sets, the releases an upgrade starts from, have the
# same program names as their newer sets: give each a DIR of its own); each set is cached under $KINIT_UPSTREAM_CACHE (default
# /var/cache/kinit-test/upstream) by the hash of its wrapper module and this script, so a second call
# copies in seconds. Go's module and build caches live under the same root unless GOMODCACHE/GOCACHE
# are set. Nothing but the Go module proxy is contacted (GOPROXY as configured; GOFLAGS=-mod=mod is not
# used: go.sum must already hold every hash). The node set needs gcc and libseccomp-dev (runc is
# linked statically with libseccomp, as its `make static`); the others need only gcc (pause).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wrappers="$here/upstream"
cache_root="${KINIT_UPSTREAM_CACHE:-/var/cache/kinit-test/upstream}"
export GOMODCACHE="${GOMODCACHE:-$cache_root/gomod}"
export GOCACHE="${GOCACHE:-$cache_root/gobuild}"
export GOFLAGS="-buildvcs=false -mod=readonly"
export GOTOOLCHAIN=local
jobs="${KINIT_BUILD_JOBS:-2}"

die() { echo "build-upstream: $*" >&2; exit 1; }

# Staging modules: read from the release's own go.mod (every `k8s.io/M => ./staging/src/k8s.io/M`).
staging_modules() {
  local gomod="$1"
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/k8s\.io/[a-z0-9-]*$#\1#p' "$gomod"
}

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

regen_kubernetes() {
  local set="$1" version="$2" dir="$wrappers/$1"
  [[ "$version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "--kubernetes wants vMAJOR.MINOR.PATCH, got '$version'"
  local minor="${BASH_REMATCH[1]}" patch="${BASH_REMATCH[2]}"
  local tmp; tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' RETURN
  ( cd "$tmp"
    GOFLAGS=-buildvcs=false go mod download -json "k8s.io/kubernetes@$version" > dl.json
    local gomod; gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' dl.json)"
    [ -f "$gomod" ] || die "no go.mod for k8s.io/kubernetes@$version"
    go mod init "kinit.io/upstream/$set" >/dev/null 2>&1
    local godebug; godebug="$(sed -n 's/^godebug \(.*\)$/\1/p' "$gomod")"
    [ -n "$godebug" ] && go mod edit -godebug="$godebug"
    local goline; goline="$(sed -n 's/^go \(.*\)$/\1/p' "$gomod")"
    go mod edit -go="$goline"
    local mods; mods="$(staging_modules "$gomod")"
    [ -n "$mods" ] || die "k8s.io/kubernetes@$version lists no staging modules"
    for m in $mods; do go mod edit -replace="$m=$m@v0.$minor.$patch"; done
    go mod edit -require="k8s.io/kubernetes@$version"
    for c in "${K8S_CMDS[@]}"; do go mod edit -tool="k8s.io/kubernetes/cmd/$c"; done
    GOFLAGS=-buildvcs=false go mod tidy
    printf '%s\n' "$version" > VERSION
  )
  mkdir -p "$dir"
  cp "$tmp/go.mod" "$tmp/go.sum" "$tmp/VERSION" "$dir/"
  echo "build-upstream: wrote $dir for $version ($(staging_modules "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$version.mod" | wc -l) staging modules)"
}

# A set's cache key: its wrapper module, its build function (not the rest of this script: a
# changed comment rebuilds nothing) and the Go version.
set_key() {
  local set="$1"
  { cat "$wrappers/$set"/go.mod "$wrappers/$set"/go.sum "$wrappers/$set"/VERSION* 2>/dev/null
    declare -f "build_${set//-/_}" set_key; [[ "$set" == kubernetes* ]] && declare -f build_kubernetes_release
    go version; } | sha256sum | cut -c1-16
}

build_kubernetes() { build_kubernetes_release kubernetes "$1"; }
# The release a Kubernetes upgrade test starts from (one minor below the kubernetes set).
build_kubernetes_previous() { build_kubernetes_release kubernetes-previous "$1"; }
# An older patch release of that minor (where a patch upgrade starts from).
build_kubernetes_previous_patch() { build_kubernetes_release kubernetes-previous-patch "$1"; }

build_kubernetes_release() {
  local set="$1" out="$2" version; version="$(cat "$wrappers/$set/VERSION")"
  [[ "$version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "bad VERSION $version"
  local minor="${BASH_REMATCH[1]}"
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  ( cd "$wrappers/$set"
    local pkgs=(); for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "$ld" -o "$out/" "${pkgs[@]}"
    # pause: upstream's static C program, from the same module.
    local src; src="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    gcc -Os -Wall -Werror -static -DVERSION="$version" -o "$out/pause" "$src"
  )
}

build_etcd() {
  local out="$1"
  # The three are module-root main packages (each would be named v3): build them one by one.
  ( cd "$wrappers/etcd"
    local ld="-s -w"
    CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "$ld" -o "$out/etcd" go.etcd.io/etcd/server/v3
    CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "$ld" -o "$out/etcdctl" go.etcd.io/etcd/etcdctl/v3
    CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "$ld" -o "$out/etcdutl" go.etcd.io/etcd/etcdutl/v3
  )
}

# The release an etcd 3.5 -> 3.6 upgrade starts from (3.6 wants every member on 3.5.26 or later).
# Its etcd main package is the server module's root, as in 3.6.
build_etcd_previous() {
  local out="$1"
  ( cd "$wrappers/etcd-previous"
    local ld="-s -w"
    CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "$ld" -o "$out/etcd" go.etcd.io/etcd/server/v3
    CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "$ld" -o "$out/etcdctl" go.etcd.io/etcd/etcdctl/v3
    CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "$ld" -o "$out/etcdutl" go.etcd.io/etcd/etcdutl/v3
  )
}

# The node layer: each program through a wrapper module of its own (their dependency graphs do
# not agree with one another).
build_containerd() {
  local out="$1" v; v="$(cat "$wrappers/containerd/VERSION")"
  ( cd "$wrappers/containerd"
    local ld="-s -w -X github.com/containerd/containerd/v2/version.Version=$v"
    ld+=" -X github.com/containerd/containerd/v2/version.Revision=kinit"
    # no_btrfs: the btrfs snapshotter needs cgo headers (containerd BUILDING.md).
    CGO_ENABLED=0 go build -p "$jobs" -trimpath -tags no_btrfs -ldflags "$ld" -o "$out/" \
      github.com/containerd/containerd/v2/cmd/containerd \
      github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
      github.com/containerd/containerd/v2/cmd/ctr
  )
}

build_runc() {
  local out="$1" v; v="$(cat "$wrappers/runc/VERSION")"
  ( cd "$wrappers/runc"
    # cgo for libcontainer's nsenter and libseccomp, linked statically as runc's `make static`.
    CGO_ENABLED=1 go build -p "$jobs" -trimpath -tags "seccomp netgo osusergo" \
      -ldflags "-s -w -extldflags -static -X main.version=${v#v}" \
      -o "$out/runc" github.com/opencontainers/runc
  )
}

build_crictl() {
  local out="$1" v; v="$(cat "$wrappers/crictl/VERSION")"
  ( cd "$wrappers/crictl"
    CGO_ENABLED=0 go build -p "$jobs" -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$v" \
      -o "$out/crictl" sigs.k8s.io/cri-tools/cmd/crictl
  )
}

build_cni() {
  local out="$1" v; v="$(cat "$wrappers/cni/VERSION")"
  ( cd "$wrappers/cni"
    local p=github.com/containernetworking/plugins
    CGO_ENABLED=0 go build -p "$jobs" -trimpath \
      -ldflags "-s -w -X $p/pkg/utils/buildversion.BuildVersion=$v" -o "$out/" \
      $p/plugins/main/bridge $p/plugins/ipam/host-local $p/plugins/main/loopback \
      $p/plugins/meta/portmap
  )
}

# The cluster's DNS add-on: the module root is CoreDNS's main package.
build_coredns() {
  local out="$1"
  ( cd "$wrappers/coredns"
    CGO_ENABLED=0 go build -p "$jobs" -trimpath \
      -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=kinit" \
      -o "$out/coredns" github.com/coredns/coredns
  )
}

build_set() {
  local set="$1" dest="$2"
  [ -f "$wrappers/$set/go.mod" ] || die "no wrapper module for '$set' under $wrappers/$set (run --regen)"
  local key; key="$(set_key "$set")"
  local done_dir="$cache_root/bin/$set-$key"
  if [ ! -f "$done_dir/.complete" ]; then
    local start; start="$(date +%s)"
    local work="$done_dir.partial"; rm -rf "$work"; mkdir -p "$work"
    "build_${set//-/_}" "$work"
    ( cd "$work" && sha256sum -- * > SHA256SUMS.set )
    touch "$work/.complete"
    rm -rf "$done_dir"; mv "$work" "$done_dir"
    # Builds of this set under other keys are stale: only one is kept (the key is 16 hex
    # digits: `kubernetes-*` must not match `kubernetes-previous-*`).
    for old in "$cache_root/bin/$set"-*; do
      [[ "${old#"$cache_root/bin/$set-"}" =~ ^[0-9a-f]{16}(\.partial)?$ ]] || continue
      [ "$old" = "$done_dir" ] || rm -rf "$old"
    done
    echo "build-upstream: built $set in $(( $(date +%s) - start ))s -> $done_dir"
  else
    echo "build-upstream: $set cached ($done_dir)"
  fi
  mkdir -p "$dest"
  for f in "$done_dir"/*; do
    [ "$(basename "$f")" = SHA256SUMS.set ] && continue
    install -m 0755 "$f" "$dest/$(basename "$f").tmp.$$"
    mv -f "$dest/$(basename "$f").tmp.$$" "$dest/$(basename "$f")"
  done
}

main() {
  local dest="" sets=() regen="" k8s_version=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --set) sets+=("$2"); shift 2 ;;
      --regen) regen="$2"; shift 2 ;;
      --kubernetes) k8s_version="$2"; shift 2 ;;
      -h|--help) sed -n "2,15p" "$0"; exit 0 ;;
      -*) die "unknown flag $1" ;;
      *) [ -z "$dest" ] || die "one DIR only"; dest="$1"; shift ;;
    esac
  done
  mkdir -p "$GOMODCACHE" "$GOCACHE"
  if [ -n "$regen" ]; then
    case "$regen" in
      kubernetes|kubernetes-previous|kubernetes-previous-patch) regen_kubernetes "$regen" "${k8s_version:?--regen $regen needs --kubernetes vX.Y.Z}" ;;
      *) die "--regen knows the kubernetes sets only (etcd and node wrappers are edited with go get)" ;;
    esac
    [ -z "$dest" ] && exit 0
  fi
  [ -n "$dest" ] || die "usage: build-upstream.sh DIR [--set kubernetes|etcd|node|all]..."
  [ ${#sets[@]} -gt 0 ] || sets=(kubernetes etcd)
  local expanded=()
  for s in "${sets[@]}"; do
    case "$s" in
      all) expanded+=(kubernetes kubernetes-previous kubernetes-previous-patch etcd etcd-previous containerd runc crictl cni coredns) ;;
      node) expanded+=(containerd runc crictl cni coredns) ;;
      kubernetes|kubernetes-previous|kubernetes-previous-patch|etcd|etcd-previous|containerd|runc|crictl|cni|coredns) expanded+=("$s") ;;
      *) die "unknown set '$s' (kubernetes, kubernetes-previous, kubernetes-previous-patch, etcd, etcd-previous, node = containerd runc crictl cni coredns, all)" ;;
    esac
  done
  dest="$(mkdir -p "$dest" && cd "$dest" && pwd)"
  for s in "${expanded[@]}"; do build_set "$s" "$dest"; done
}
main "$@"
