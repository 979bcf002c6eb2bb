//! The shell steps a restore runs on its hosts (arguments are words, never spliced into the text).

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

/// Exit status of a restore script when etcd's data dir holds more than etcd's member: it
/// printed `foreign NAME` lines and changed nothing.
pub(crate) const FOREIGN_EXIT: u32 = 3;

/// The names a script found in etcd's data dir besides etcd's member, when it refused.
pub(crate) fn foreign_names(stdout: &str, refused: bool) -> Option<Vec<String>> {
    if !refused {
        return None;
    }
    let found: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("foreign "))
        .map(str::to_string)
        .collect();
    (!found.is_empty()).then_some(found)
}
