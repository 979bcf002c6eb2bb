//! The scripts of the lifecycle steps: each answers one line per item it was given (see each
//! script's comment); `super::read_answers` reads them.

use super::LifecycleStep;
/// Shell functions the lifecycle and restore scripts share: `others DIR ENTRY` prints the names
/// in DIR other than ENTRY (at most 20, one a line, unprintable characters as `?`); `mounted
/// DIR` succeeds when DIR is a mount point.
pub(crate) const DIR_FUNCTIONS: &str = r#"others() {
  for x in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    { [ -e "$x" ] || [ -L "$x" ]; } || continue
    n=${x##*/}
    [ "$n" = "$2" ] && continue
    printf '%s' "$n" | tr -c '[:print:]' '?'; echo
  done | head -n 20
}
mounted() {
  r=$(readlink -f -- "$1") || return 1
  awk -v d="$r" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo 2>/dev/null && return 0
  [ "$(stat -c %d -- "$r")" != "$(stat -c %d -- "$r/..")" ]
}
"#;

/// Every lifecycle step's script starts with `dry` (`yes`: change nothing, answer what would be done)
/// and `act CMD...`, which runs CMD (its output to stderr) and answers `ok` or `failed`.
const PRELUDE: &str = r#"set -u
dry=$1; shift
act() {
  if [ "$dry" = yes ]; then echo ok; return 0; fi
  if "$@" >&2; then echo ok; else echo failed; fi
}
"#;

const REMOVE_FILES: &str = r#"for p in "$@"; do
  if [ -e "$p" ] || [ -L "$p" ]; then act rm -f -- "$p"; else echo -; fi
done"#;

const PORTS_FREE: &str = r#"[ "$dry" = yes ] && exit 0
runner=$1; shift
systemctl is-active -q "$runner" 2>/dev/null || exit 0
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
for p in "$@"; do
  n=0; while listening "$p" && [ $n -lt 60 ]; do sleep 1; n=$((n+1)); done
done"#;

/// Per unit: `<stop> <disable>`, each `-` (nothing to do), `ok` or `failed`.
const UNITS: &str = r#"for u in "$@"; do
  s=$(systemctl is-active "$u" 2>/dev/null || true)
  case $s in active|activating|reloading|deactivating) a=$(act systemctl stop "$u") ;; *) a=- ;; esac
  e=$(systemctl is-enabled "$u" 2>/dev/null || true)
  case $e in enabled|enabled-runtime) b=$(act systemctl disable -q "$u") ;; *) b=- ;; esac
  [ "$dry" = no ] && systemctl reset-failed "$u" >/dev/null 2>&1
  echo "$a $b"
done"#;

/// First `<kubepods.slice> <shims>`, then per item `<result> <how>`: `- -`, or `ok`/`failed`
/// with `deleted`, `removed` or `emptied`.
const RUNTIME: &str = r#"a=-; b=-
if systemctl list-units --all -q --plain kubepods.slice 2>/dev/null | grep -q .; then
  a=$(act systemctl stop kubepods.slice)
fi
if pgrep -f '^[^ ]*/containerd-shim-runc-v2 ' >/dev/null 2>&1; then
  b=$(act pkill -KILL -f '^[^ ]*/containerd-shim-runc-v2 ')
fi
echo "$a $b"
# Mounts below a runtime directory (pod volumes, snapshots, sandboxes' network namespaces) go
# first, deepest first.
unmount_below() {
  awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while IFS= read -r m; do
    umount -l -- "$m" >&2 || true
  done
}
for x in "$@"; do
  case $x in
    link:*)
      if ip link show "${x#link:}" >/dev/null 2>&1; then echo "$(act ip link delete "${x#link:}") deleted"
      else echo "- -"; fi ;;
    cleanup:*)
      c=${x#cleanup:}
      if [ -x "$c" ]; then echo "$(act "$c" --cleanup) deleted"; else echo "- -"; fi ;;
    *)
      if [ ! -d "$x" ]; then echo "- -"; continue; fi
      [ "$dry" = no ] && unmount_below "$x"
      if ! mounted "$x"; then echo "$(act rm -rf -- "$x") removed"
      elif [ -n "$(ls -A -- "$x" 2>/dev/null)" ]; then echo "$(act find "$x" -mindepth 1 -delete) emptied"
      else echo "- -"; fi ;;
  esac
done"#;

/// One line `<scope> <result>`: `- -` (nothing there), `foreign -` (it holds more than
/// etcd's entry: untouched), or `dir`/`entry` with `ok`/`failed`.
const ETCD_DATA: &str = r#"purge=$1; data=$2; aside=$3; entry=$4
if [ ! -d "$data" ] || [ -z "$(ls -A -- "$data" 2>/dev/null)" ]; then echo "- -"; exit 0; fi
if [ -n "$(others "$data" "$entry")" ]; then echo "foreign -"; exit 0; fi
entry_aside() { mkdir -m 0700 -- "$aside" && mv -- "$data/$entry" "$aside/"; }
if mounted "$data"; then
  # A mount point stays where it is: what etcd keeps in it goes.
  if [ "$purge" = yes ]; then r=$(act rm -rf -- "$data/$entry"); else r=$(act entry_aside); fi
  echo "entry $r"
else
  if [ "$purge" = yes ]; then r=$(act rm -rf -- "$data"); else r=$(act mv -- "$data" "$aside"); fi
  echo "dir $r"
fi"#;

/// Nothing when the directory is not there; `whole ok|failed` when it held only kinit's
/// entries; else per entry `ok NAME`, `failed NAME` (kinit's) or `kept NAME` (not kinit's).
const STATE_DIR: &str = r#"dir=$1; shift; pats="$*"
[ -d "$dir" ] || exit 0
ours() {
  set -f
  for q in $pats; do case $1 in $q) set +f; return 0 ;; esac; done
  set +f; return 1
}
name() { printf '%s' "$1" | tr -c '[:print:]' '?'; }
all=yes
for x in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
  { [ -e "$x" ] || [ -L "$x" ]; } || continue
  ours "${x##*/}" || all=no
done
if [ $all = yes ]; then echo "whole $(act rm -rf -- "$dir")"; exit 0; fi
for x in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
  { [ -e "$x" ] || [ -L "$x" ]; } || continue
  if ours "${x##*/}"; then echo "$(act rm -rf -- "$x") $(name "${x##*/}")"
  else echo "kept $(name "${x##*/}")"; fi
done"#;

const EMPTY_DIRS: &str = r#"for d in "$@"; do
  if [ "$dry" = no ] && [ -d "$d" ] && [ -z "$(ls -A -- "$d" 2>/dev/null)" ] && ! mounted "$d"; then
    act rmdir -- "$d"
  else echo -; fi
done"#;

const STOP_UNITS: &str = r#"for u in "$@"; do
  s=$(systemctl is-active "$u" 2>/dev/null || true)
  case $s in active|activating|reloading|deactivating) act systemctl stop "$u" ;; *) echo - ;; esac
done"#;

const MOVE_ASIDE: &str = r#"into=$1; shift
move_aside() { mkdir -p -m 0700 -- "$into" && chmod 0700 -- "$into" && mv -f -- "$1" "$into/"; }
for p in "$@"; do
  if [ -f "$p" ]; then act move_aside "$p"; else echo -; fi
done"#;

/// Per name `-`, `ok` or `failed`; then `gone` (the aside dir removed), `kept NAME` lines (what
/// it still holds) or `failed`. Nothing at all when the aside dir is not there.
const PUT_BACK: &str = r#"aside=$1; dir=$2; shift 2
[ -d "$aside" ] || exit 0
for n in "$@"; do
  if [ -f "$aside/$n" ]; then act mv -f -- "$aside/$n" "$dir/"; else echo -; fi
done
[ "$dry" = yes ] && exit 0
if rmdir -- "$aside" 2>/dev/null; then echo gone; exit 0; fi
k=$(others "$aside" "")
if [ -n "$k" ]; then printf '%s
' "$k" | while IFS= read -r n; do echo "kept $n"; done
else echo failed; fi"#;

/// Per unit `-` (not installed) or how the one start of them all went.
const START_UNITS: &str = r#"there=
for u in "$@"; do
  [ -n "$(systemctl show -P FragmentPath "$u" 2>/dev/null)" ] && there="$there $u"
done
r=ok
if [ -n "$there" ] && [ "$dry" = no ]; then
  # shellcheck disable=SC2086 # unit names are words
  systemctl start $there >&2 || { r=failed; for u in $there; do systemctl status --no-pager -n 5 "$u" >&2; done; }
fi
for u in "$@"; do
  case " $there " in *" $u "*) echo $r ;; *) echo - ;; esac
done"#;

/// Which program restores a snapshot on this host: etcdutl, or an etcdctl that still has
/// `snapshot restore` (3.4; 3.6's etcdctl only saves). Prints its name, or nothing.
const RESTORE_TOOL: &str = r#"restore_tool() {
  if command -v etcdutl >/dev/null 2>&1; then echo etcdutl
  elif command -v etcdctl >/dev/null 2>&1 && ETCDCTL_API=3 etcdctl snapshot restore --help 2>&1 \
      | grep -q 'snapshot restore -'; then echo etcdctl
  fi
}
"#;

/// Changes nothing, dry or not. `tool NAME` (`tool -`: none), then `data absent|dir|mount|other`,
/// or one `foreign NAME` line per name the data dir holds besides etcd's entry.
const RESTORE_CHECK: &str = r#"data=$1; entry=$2
tool=$(restore_tool)
echo "tool ${tool:--}"
if [ -d "$data" ]; then
  found=$(others "$data" "$entry")
  if [ -n "$found" ]; then printf '%s\n' "$found" | while IFS= read -r n; do echo "foreign $n"; done
  elif mounted "$data"; then echo "data mount"
  else echo "data dir"; fi
elif [ -e "$data" ] || [ -L "$data" ]; then echo "data other"
else echo "data absent"; fi"#;

const PRIVATE_DIR: &str = r#"private() { mkdir -p -m 0700 -- "$1" && chown root:root -- "$1" && chmod 0700 -- "$1"; }
act private "$1""#;

/// `ok`, `failed`, `held` (the data dir still holds etcd's entry: nothing done) or `notool`.
/// The snapshot is deleted whatever the answer.
const MEMBER_RESTORE: &str = r#"snap=$1; data=$2; entry=$3; name=$4; peer=$5; cluster=$6; token=$7
[ "$dry" = yes ] && { echo ok; exit 0; }
trap 'rm -f -- "$snap"' EXIT
if [ -e "$data/$entry" ] || [ -L "$data/$entry" ]; then echo held; exit 0; fi
tool=$(restore_tool)
[ -n "$tool" ] || { echo notool; exit 0; }
into=$data
if [ -e "$data" ]; then
  # The data dir stays (a mount point, or empty) and etcd 3.4 restores only into a directory
  # that does not exist yet: into one inside it, then moved in.
  into=$data/.kinit-restore
  trap 'rm -f -- "$snap"; rm -rf -- "$into"' EXIT
fi
restore() {
  ETCDCTL_API=3 "$tool" snapshot restore "$snap" --name "$name" --data-dir "$into" \
    --initial-cluster "$cluster" --initial-cluster-token "$token" \
    --initial-advertise-peer-urls "$peer" || return 1
  if [ "$into" != "$data" ]; then mv -- "$into/$entry" "$data/" && rmdir -- "$into" || return 1; fi
  chmod 0700 -- "$data"
}
act restore"#;

const DAEMON_RELOAD: &str = r#"[ "$dry" = yes ] && exit 0
act systemctl daemon-reload"#;

/// The script for `what` and its words (after the script's own name).
pub(crate) fn script(what: &LifecycleStep, dry_run: bool) -> (String, Vec<String>) {
    let (body, args): (&str, Vec<String>) = match what {
        LifecycleStep::Manifests(paths) | LifecycleStep::Files(paths) => {
            (REMOVE_FILES, paths.clone())
        }
        LifecycleStep::PodPortsFree { runner, ports } => {
            let mut args = vec![runner.to_string()];
            args.extend(ports.iter().map(u16::to_string));
            (PORTS_FREE, args)
        }
        LifecycleStep::StopUnits(units) => (STOP_UNITS, words(units)),
        LifecycleStep::StartUnits(units) => (START_UNITS, words(units)),
        LifecycleStep::MoveAside { paths, into } => {
            let mut args = vec![into.clone()];
            args.extend(paths.iter().cloned());
            (MOVE_ASIDE, args)
        }
        LifecycleStep::PutBack { aside, dir, names } => {
            let mut args = vec![aside.clone(), dir.clone()];
            args.extend(names.iter().cloned());
            (PUT_BACK, args)
        }
        LifecycleStep::Units(units) => (UNITS, words(units)),
        LifecycleStep::RuntimeState(items) => (RUNTIME, items.clone()),
        LifecycleStep::EtcdData {
            dir,
            aside,
            entry,
            purge,
        } => {
            let purge = if *purge { "yes" } else { "no" }.to_string();
            (
                ETCD_DATA,
                vec![purge, dir.clone(), aside.clone(), entry.clone()],
            )
        }
        LifecycleStep::StateDir { path, kinit_names } => {
            let mut args = vec![path.clone()];
            args.extend(kinit_names.iter().cloned());
            (STATE_DIR, args)
        }
        LifecycleStep::EmptyDirs(dirs) => (EMPTY_DIRS, dirs.clone()),
        LifecycleStep::DaemonReload => (DAEMON_RELOAD, Vec::new()),
        LifecycleStep::EtcdRestoreCheck { dir, entry } => {
            (RESTORE_CHECK, vec![dir.clone(), entry.clone()])
        }
        LifecycleStep::PrivateDir(dir) => (PRIVATE_DIR, vec![dir.clone()]),
        LifecycleStep::EtcdRestore(r) => (
            MEMBER_RESTORE,
            vec![
                r.snapshot.clone(),
                r.data_dir.clone(),
                r.entry.clone(),
                r.name.clone(),
                r.peer_url.clone(),
                r.initial_cluster.clone(),
                r.token.clone(),
            ],
        ),
    };
    let mut words = vec![if dry_run { "yes" } else { "no" }.to_string()];
    words.extend(args);
    (
        format!("{DIR_FUNCTIONS}{RESTORE_TOOL}{PRELUDE}{body}"),
        words,
    )
}

fn words(units: &[&str]) -> Vec<String> {
    units.iter().map(|u| u.to_string()).collect()
}

/// Prints what etcd's data dir `$1` holds besides etcd's `$2` (nothing when it is not there).
pub(crate) const FOREIGN: &str = r#"[ -d "$1" ] || exit 0
others "$1" "$2""#;
