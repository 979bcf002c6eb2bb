//! The reset's one script per host, its words, and what its output says.

use super::*;

/// Shell functions the reset and restore scripts share: `others DIR ENTRY` prints the names in
/// DIR other than ENTRY (at most 20, one a line, unprintable characters as `?`); `mounted DIR`
/// succeeds when DIR is a mount point.
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

/// Exit status of the reset script when etcd's data dir holds more than etcd's member: it
/// printed `foreign NAME` lines and changed nothing.
pub(crate) const FOREIGN_EXIT: u32 = 3;

/// Runs as root with: dry purge data aside entry, then sections of words, each opened by its
/// marker, in the order they are carried out. Prints one `<action> <target>` line per thing done
/// (or, dry, to do); `failed <action> <target>` when a step failed (the rest still runs).
/// Before anything: a data dir holding anything but etcd's `entry` stops the script (exit 3,
/// one `foreign NAME` line per name found), nothing touched. A data dir that is a mount point
/// stays: its `entry` is moved aside (or purged). In `--state`, words not starting with `/` are
/// the names kinit puts in the state dir that follows them: a state dir holding only those goes
/// whole; otherwise only those go and `kept DIR NAME...` names the rest.
const SCRIPT: &str = r#"set -u
dry=$1; purge=$2; data=$3; aside=$4; entry=$5; shift 5
fail=0
act() {
  verb=$1; target=$2; shift 2
  if [ "$dry" = yes ]; then echo "$verb $target"; return 0; fi
  if "$@" >&2; then echo "$verb $target"; else echo "failed $verb $target"; fail=1; fi
}
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
if [ "$data" != - ] && [ -d "$data" ]; then
  found=$(others "$data" "$entry")
  if [ -n "$found" ]; then
    printf '%s\n' "$found" | while IFS= read -r n; do echo "foreign $n"; done
    exit 3
  fi
fi
member_aside() { mkdir -m 0700 -- "$aside" && mv -- "$data/$entry" "$aside/"; }
data_dir() {
  [ "$data" = - ] && return 0
  [ -d "$data" ] || return 0
  [ -n "$(ls -A -- "$data" 2>/dev/null)" ] || return 0
  if mounted "$data"; then
    # A mount point stays where it is: what etcd keeps in it goes.
    if [ "$purge" = yes ]; then act purge "$data/$entry" rm -rf -- "$data/$entry"
    else act move "$data/$entry $aside/$entry" member_aside; fi
  elif [ "$purge" = yes ]; then act purge "$data" rm -rf -- "$data"
  else act move "$data $aside" mv -- "$data" "$aside"; fi
}
ours() {
  set -f
  for p in $pats; do case $1 in $p) set +f; return 0 ;; esac; done
  set +f; return 1
}
state_dir() {
  [ -d "$1" ] || return 0
  kept=
  for x in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    { [ -e "$x" ] || [ -L "$x" ]; } || continue
    ours "${x##*/}" || kept="$kept $(printf '%s' "${x##*/}" | tr -c '[:print:]' '?')"
  done
  if [ -z "$kept" ]; then act remove "$1" rm -rf -- "$1"; return 0; fi
  for x in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    { [ -e "$x" ] || [ -L "$x" ]; } || continue
    if ours "${x##*/}"; then act remove "$x" rm -rf -- "$x"; fi
  done
  echo "kept $1$kept"
}
# The pods of a stopped kubelet and containerd run on (containerd's shims outlive it): their
# scopes (the systemd cgroup driver's kubepods.slice) and the shims go.
pods_stopped() {
  if systemctl list-units --all -q --plain kubepods.slice 2>/dev/null | grep -q .; then
    act stop kubepods.slice systemctl stop kubepods.slice
  fi
  if pgrep -f '^[^ ]*/containerd-shim-runc-v2 ' >/dev/null 2>&1; then
    act kill containerd-shim-runc-v2 pkill -KILL -f '^[^ ]*/containerd-shim-runc-v2 '
  fi
}
# Mounts below a runtime directory (pod volumes, snapshots, sandboxes' network namespaces) go
# first, deepest first; a directory that is itself a mount point keeps itself.
unmount_below() {
  awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while IFS= read -r m; do
    umount -l -- "$m" >&2 || true
  done
}
runtime_dir() {
  [ -d "$1" ] || return 0
  if [ "$dry" = no ]; then unmount_below "$1"; fi
  if mounted "$1"; then
    [ -n "$(ls -A -- "$1" 2>/dev/null)" ] && act empty "$1" find "$1" -mindepth 1 -delete
  else
    act remove "$1" rm -rf -- "$1"
  fi
  return 0
}
sec=; pats=
for a in "$@"; do
  case $a in
    --manifests|--wait|--units|--files|--state|--dirs) sec=$a; continue ;;
    --runtime) sec=$a; pods_stopped; continue ;;
    --data) data_dir; continue ;;
  esac
  case $sec in
    --manifests|--files)
      if [ -e "$a" ] || [ -L "$a" ]; then act remove "$a" rm -f -- "$a"; fi ;;
    --wait)
      # The kubelet stops a static pod once its manifest is gone; wait for its port.
      if [ "$dry" = no ] && systemctl is-active -q kubelet 2>/dev/null; then
        n=0; while listening "$a" && [ $n -lt 60 ]; do sleep 1; n=$((n+1)); done
      fi ;;
    --units)
      s=$(systemctl is-active "$a" 2>/dev/null || true)
      case $s in active|activating|reloading|deactivating) act stop "$a" systemctl stop "$a" ;; esac
      e=$(systemctl is-enabled "$a" 2>/dev/null || true)
      case $e in enabled|enabled-runtime) act disable "$a" systemctl disable -q "$a" ;; esac
      [ "$dry" = no ] && systemctl reset-failed "$a" >/dev/null 2>&1
      ;;
    --runtime)
      case $a in
        link:*) ip link show "${a#link:}" >/dev/null 2>&1 && act delete "$a" ip link delete "${a#link:}" ;;
        # A program that takes its own rules off (kube-proxy --cleanup: its KUBE-* chains).
        cleanup:*) b=${a#cleanup:}; [ -x "$b" ] && act delete "rules:${b##*/}" "$b" --cleanup ;;
        *) runtime_dir "$a" ;;
      esac ;;
    --state)
      case $a in
        /*) state_dir "$a"; pats= ;;
        *) pats="$pats $a" ;;
      esac ;;
    --dirs)
      # A mount point (its own filesystem) stays, emptied, as in --runtime.
      if [ "$dry" = no ] && [ -d "$a" ] && [ -z "$(ls -A -- "$a" 2>/dev/null)" ] && ! mounted "$a"; then
        act rmdir "$a" rmdir -- "$a"
      fi ;;
  esac
done
[ "$dry" = no ] && { systemctl daemon-reload || fail=1; }
exit $fail"#;

/// The script as it runs: the shared functions, then [`SCRIPT`].
pub(super) fn script_text() -> String {
    format!("{DIR_FUNCTIONS}{SCRIPT}")
}

/// The script's words for `plan`.
pub(super) fn script_args(plan: &HostReset, settings: &ResetSettings) -> Vec<String> {
    let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
    let (data, aside) = match &plan.data_dir {
        Some(d) => (d.clone(), aside_path(d, &settings.stamp, "reset")),
        None => ("-".into(), "-".into()),
    };
    let mut args = vec![
        yn(settings.dry_run),
        yn(settings.purge),
        data,
        aside,
        crate::host_paths::ETCD_DATA_ENTRY.to_string(),
    ];
    args.push("--manifests".into());
    args.extend(plan.manifests.iter().cloned());
    args.push("--wait".into());
    args.extend(plan.pod_ports.iter().map(u16::to_string));
    args.push("--units".into());
    args.extend(plan.units.iter().map(|u| u.to_string()));
    args.push("--runtime".into());
    args.extend(plan.runtime_state.iter().cloned());
    args.push("--data".into());
    args.push("--files".into());
    args.extend(plan.files.iter().cloned());
    args.push("--state".into());
    for d in &plan.state_dirs {
        // The names first, then the directory they are for (see SCRIPT).
        args.extend(d.kinit_names.iter().cloned());
        args.push(d.path.to_string());
    }
    args.push("--dirs".into());
    args.extend(plan.dirs.iter().cloned());
    args
}

/// `/var/lib/etcd` -> `/var/lib/etcd.reset-20261127T101500Z`: next to it, so on the same
/// filesystem (a rename, not a copy).
pub fn aside_path(data_dir: &str, stamp: &str, why: &str) -> String {
    format!("{}.{why}-{stamp}", data_dir.trim_end_matches('/'))
}

pub(super) fn parse_actions(stdout: &str) -> Vec<ResetAction> {
    stdout
        .lines()
        .filter_map(|line| {
            let (verb, target) = line.split_once(' ')?;
            let t = target.to_string();
            Some(match verb {
                // Pods' processes (`kill containerd-shim-runc-v2`) stop like units.
                "stop" | "kill" => ResetAction::Stop(t),
                "disable" => ResetAction::Disable(t),
                // A link (`delete link:cni0`) and a program's rules (`delete rules:kube-proxy`)
                // go like a file.
                "remove" | "delete" => ResetAction::Remove(t),
                // A mount point's contents.
                "empty" => ResetAction::Remove(format!("{t}/*")),
                "purge" => ResetAction::Purge(t),
                "rmdir" => ResetAction::Rmdir(t),
                "move" => {
                    let (from, to) = target.split_once(' ')?;
                    ResetAction::Move {
                        from: from.into(),
                        to: to.into(),
                    }
                }
                "failed" => ResetAction::Failed(t),
                "kept" => {
                    let (path, found) = target.split_once(' ')?;
                    ResetAction::Kept {
                        path: path.into(),
                        found: found.split(' ').map(str::to_string).collect(),
                    }
                }
                _ => return None,
            })
        })
        .collect()
}

/// The names the script found in etcd's data dir besides etcd's member, when it refused.
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
