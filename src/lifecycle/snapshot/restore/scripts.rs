//! The shell steps a restore runs on its hosts (arguments are words, never spliced into the text).

/// Step 1 on one host. Args: the units that run its etcd member (space-separated, empty where
/// etcd is a static pod or no member), aside dir, the units to stop (space-separated, may be
/// empty), the ports of the static pods moved (space-separated, may be empty), the unit that
/// runs static pods, then the manifests to move. Prints `moved PATH` per manifest moved. A unit
/// that is not installed is not there to stop.
pub(super) const STOP: &str = r#"set -eu
etcd_units=$1; aside=$2; units=$3; ports=$4; pods_unit=$5; shift 5
for u in $units; do
  if [ -n "$(systemctl show -P FragmentPath "$u" 2>/dev/null)" ]; then systemctl stop "$u"; fi
done
moved=no
for m in "$@"; do
  if [ -f "$m" ]; then mkdir -p -m 0700 -- "$aside"; mv -f -- "$m" "$aside/"; echo "moved $m"; moved=yes; fi
done
for u in $etcd_units; do systemctl stop "$u" 2>/dev/null || true; done
filter=
for p in $ports; do filter="$filter${filter:+ or }sport = :$p"; done
if [ "$moved" = yes ] && [ -n "$filter" ] && systemctl is-active -q "$pods_unit" 2>/dev/null; then
  # The kubelet stops a static pod once its manifest is gone: wait for the moved pods' ports
  # (etcd's, the apiserver's, ...) to close.
  n=0
  while ss -Hltn "$filter" 2>/dev/null | grep -q . && [ $n -lt 90 ]; do
    sleep 1; n=$((n+1))
  done
fi"#;

/// Which program restores a snapshot on this host: etcdutl, or an etcdctl that still has
/// `snapshot restore` (3.4; 3.6's etcdctl only saves). Prints its name, or nothing.
pub(super) const RESTORE_TOOL: &str = r#"restore_tool() {
  if command -v etcdutl >/dev/null 2>&1; then echo etcdutl
  elif command -v etcdctl >/dev/null 2>&1 && ETCDCTL_API=3 etcdctl snapshot restore --help 2>&1 \
      | grep -q 'snapshot restore -'; then echo etcdctl
  fi
}
"#;

/// Step 0 on one etcd host, changing nothing. Args: data dir, etcd's entry. Prints `tool NAME`
/// and `mount yes|no`; refuses (exit 3, one `foreign NAME` line per name) a data dir holding
/// anything but etcd's entry.
pub(super) const CHECK: &str = r#"set -u
data=$1; entry=$2
tool=$(restore_tool)
if [ -n "$tool" ]; then echo "tool $tool"
else echo "neither etcdutl nor an etcdctl with snapshot restore is on this host (PATH=$PATH)" >&2; exit 4; fi
if [ -d "$data" ]; then
  found=$(others "$data" "$entry")
  if [ -n "$found" ]; then
    printf '%s\n' "$found" | while IFS= read -r n; do echo "foreign $n"; done
    exit 3
  fi
  if mounted "$data"; then echo "mount yes"; else echo "mount no"; fi
elif [ -e "$data" ] || [ -L "$data" ]; then
  echo "$data is not a directory" >&2; exit 5
else echo "mount no"; fi"#;

/// Before the upload: the scratch dir, root's alone. Args: the dir.
pub(super) const SCRATCH: &str = r#"set -eu
mkdir -p -m 0700 -- "$1"
chmod 0700 -- "$1""#;

/// Step 2 on one etcd host. Args: snapshot path, data dir, aside path, name, peer URL, initial
/// cluster, token, mount point (yes|no), etcd's entry. Prints `aside PATH` when old data was
/// moved: the data dir, or of a mount point (which stays) its entry, into PATH. Checks again,
/// before moving anything, that the data dir holds nothing but etcd's entry.
pub(super) const RESTORE: &str = r#"set -eu
snap=$1; data=$2; aside=$3; name=$4; peer=$5; cluster=$6; token=$7; mount=$8; entry=$9
trap 'rm -f -- "$snap"' EXIT
if [ -d "$data" ]; then
  found=$(others "$data" "$entry")
  if [ -n "$found" ]; then
    printf '%s\n' "$found" | while IFS= read -r n; do echo "foreign $n"; done
    exit 3
  fi
fi
tool=$(restore_tool)
if [ -z "$tool" ]; then
  echo "neither etcdutl nor an etcdctl with snapshot restore is on this host (PATH=$PATH)" >&2; exit 4
fi
if [ "$mount" = yes ]; then
  # The mount point stays: its member goes aside, and the snapshot is restored next to it (etcd
  # 3.4 restores only into a directory that does not exist yet), then moved in.
  if [ -e "$data/$entry" ]; then
    mkdir -m 0700 -- "$aside"; mv -- "$data/$entry" "$aside/"; echo "aside $aside"
  fi
  into=$data/.kinit-restore
  trap 'rm -f -- "$snap"; rm -rf -- "$into"' EXIT
else
  if [ -e "$data" ]; then mv -- "$data" "$aside"; echo "aside $aside"; fi
  into=$data
fi
ETCDCTL_API=3 "$tool" snapshot restore "$snap" --name "$name" --data-dir "$into" \
  --initial-cluster "$cluster" --initial-cluster-token "$token" \
  --initial-advertise-peer-urls "$peer" >&2
if [ "$into" != "$data" ]; then mv -- "$into/$entry" "$data/"; rmdir -- "$into"; fi
chmod 0700 -- "$data""#;

/// Step 3 on one etcd host: start etcd (its config was written just before; as a static pod,
/// the new manifest is the one that stays, not the copy moved aside). Args: aside dir, the
/// static pod manifest's file name, the units that run the member (none for a static pod).
pub(super) const START: &str = r#"set -eu
aside=$1; manifest=$2; shift 2
rm -f -- "$aside/$manifest"
if [ $# -gt 0 ]; then
  systemctl daemon-reload
  for u in "$@"; do systemctl enable -q "$u"; systemctl start --no-block "$u"; done
fi"#;

/// Step 5: the manifests kinit moved back where the kubelet reads them, and nothing else. Args:
/// aside dir, manifests dir, the manifests' file names. Prints `kept DIR` when the aside dir
/// holds something else afterwards (it stays).
pub(super) const PUT_BACK: &str = r#"set -eu
aside=$1; dir=$2; shift 2
if [ -d "$aside" ]; then
  for n in "$@"; do
    if [ -f "$aside/$n" ]; then mv -f -- "$aside/$n" "$dir/"; fi
  done
  rmdir -- "$aside" 2>/dev/null || echo "kept $aside"
fi"#;

/// Step 5 for the units: start those of step 1 that are installed, together (each start waits
/// for its program to say it serves). Args: the units. Prints `started UNIT` per unit.
pub(super) const START_UNITS: &str = r#"set -eu
there=
for u in "$@"; do
  if [ -n "$(systemctl show -P FragmentPath "$u" 2>/dev/null)" ]; then there="$there $u"; fi
done
if [ -n "$there" ]; then
  systemctl start $there
  for u in $there; do echo "started $u"; done
fi"#;
