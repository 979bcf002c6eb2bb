//! `kinit reset` on hosts: etcd members of a partial reset removed first (keeping quorum), then
//! on every selected host at once, in one round trip each: static pod manifests removed, units
//! stopped and disabled, etcd's data dir moved aside (or purged), files, binaries and kinit's
//! state removed, systemd reloaded, kinit's empty directories removed. A dry run asks the same
//! script what it would do. The cluster lock is held on every selected host that answers from
//! before etcd is asked anything to the end (by the reset itself, or by the command it is part
//! of: `kinit remove` holds it on every host it contacts).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::reset_plan::HostReset;
use crate::engine::cluster_lock::{LockFailure, LockRequest};
use crate::engine::etcd_members::{self, MembershipError};
use crate::engine::event::Quiet;
use crate::engine::host_ops::run_script;
use crate::engine::lock::LockOwner;
use crate::etcd::ClientTls;
use crate::fanout::{self, FanoutError};
use crate::planning::membership::{self, ResetMembership};
use crate::ssh::{ExitStatus, HostTarget, Pool};

/// How a reset runs.
#[derive(Debug, Clone)]
pub struct ResetSettings {
    pub dry_run: bool,
    /// Delete etcd's data dir instead of moving it aside.
    pub purge: bool,
    pub concurrency: usize,
    /// UTC `YYYYMMDDTHHMMSSZ`: names the moved-aside data dir.
    pub stamp: String,
    pub etcd_timeout: Duration,
    /// The caller holds the lock on these hosts already (`kinit remove`): the reset neither
    /// takes nor releases it.
    pub locked_by_caller: bool,
    /// Remove another run's lock when taking it (`--break-lock`).
    pub break_lock: bool,
}

/// One thing done (or, in a dry run, to be done) on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "target")]
pub enum ResetAction {
    Stop(String),
    Disable(String),
    Remove(String),
    /// etcd's data dir, and where it went.
    Move {
        from: String,
        to: String,
    },
    Purge(String),
    Rmdir(String),
    /// One of kinit's state dirs left in place: it holds `found`, which kinit did not put there
    /// (kinit's own entries in it were removed).
    Kept {
        path: String,
        found: Vec<String>,
    },
    /// A step that failed (the script went on with the rest).
    Failed(String),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostResetOutcome {
    pub host: String,
    pub actions: Vec<ResetAction>,
    pub kept: Vec<String>,
    pub error: Option<String>,
}

impl HostResetOutcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self
                .actions
                .iter()
                .any(|a| matches!(a, ResetAction::Failed(_)))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetReport {
    pub dry_run: bool,
    pub membership: ResetMembership,
    pub hosts: Vec<HostResetOutcome>,
    /// The Node objects of the reset hosts that ran a kubelet.
    pub nodes: Vec<NodeLeaving>,
}

/// A reset host's Node object: drained before the host is reset, deleted after.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLeaving {
    pub host: String,
    pub drained: Option<crate::kube::drain::Drained>,
    pub deleted: bool,
    /// Why it was not drained or deleted (or, in a dry run, what would happen).
    pub note: Option<String>,
}

/// How long one API request of a drain may take, and the whole drain of one node.
const NODE_REQUEST: std::time::Duration = std::time::Duration::from_secs(5);
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(90);

/// The selected hosts whose Nodes are in the API: kubelet hosts, with a kubelet in the bundle,
/// while some control plane stays (a reset of every control plane takes the API and its Node
/// objects with it). None when there is nothing to do.
fn nodes_among(
    inv: &crate::inventory::Inventory,
    selected: &BTreeSet<String>,
) -> Option<Vec<String>> {
    use crate::components::{ComponentId, component};
    let kubelet = component(ComponentId::Kubelet);
    let hosts: Vec<String> = kubelet
        .hosts(inv)
        .into_iter()
        .filter(|h| selected.contains(&h.name))
        .map(|h| h.name.clone())
        .collect();
    let no_kubelet = crate::bundle::Bundle::open(inv.bundle.as_deref())
        .map(|b| !kubelet.lacking(&b).is_empty())
        .unwrap_or(true);
    let api_goes = inv.control_plane().all(|h| selected.contains(&h.name));
    (!hosts.is_empty() && !no_kubelet && !api_goes).then_some(hosts)
}

/// Each host's Node, with `note` said about it.
fn noted(hosts: &[String], note: &str) -> Vec<NodeLeaving> {
    hosts
        .iter()
        .map(|h| NodeLeaving {
            host: h.clone(),
            note: Some(note.to_string()),
            ..Default::default()
        })
        .collect()
}

/// Drain the Nodes of the selected kubelet hosts while the API answers; the client to delete
/// them with once their hosts are reset.
pub(crate) async fn drain_nodes(
    inv: &crate::inventory::Inventory,
    selected: &BTreeSet<String>,
    dry_run: bool,
) -> (Option<crate::kube::ApiClient>, Vec<NodeLeaving>) {
    let Some(hosts) = nodes_among(inv, selected) else {
        return (None, Vec::new());
    };
    if dry_run {
        return (
            None,
            noted(
                &hosts,
                "would drain the Node, and delete it once the host is reset",
            ),
        );
    }
    let client = match crate::kube::ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf") {
        Ok(c) => c,
        Err(e) => return (None, noted(&hosts, &format!("Node left in the API: {e}"))),
    };
    let mut out = Vec::new();
    for host in hosts {
        let mut n = NodeLeaving {
            host: host.clone(),
            ..Default::default()
        };
        match crate::kube::drain::drain(
            &client,
            &host,
            crate::kube::drain::Leaving::ForGood,
            NODE_REQUEST,
            DRAIN_DEADLINE,
        )
        .await
        {
            Ok(d) => n.drained = Some(d),
            Err(e) => n.note = Some(format!("not drained: {e}")),
        }
        out.push(n);
    }
    (Some(client), out)
}

/// Delete the Nodes of hosts gone for good (never contacted, so neither drained nor reset):
/// without its Node, the pods bound to it are deleted and their controllers place them
/// elsewhere; a NotReady Node would keep them there.
pub(crate) async fn delete_gone_nodes(
    inv: &crate::inventory::Inventory,
    gone: &BTreeSet<String>,
    dry_run: bool,
) -> Vec<NodeLeaving> {
    let Some(hosts) = nodes_among(inv, gone) else {
        return Vec::new();
    };
    if dry_run {
        return noted(&hosts, "would delete the Node (its host is gone)");
    }
    let api = match crate::kube::ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf") {
        Ok(c) => c,
        Err(e) => return noted(&hosts, &format!("Node left in the API: {e}")),
    };
    let mut out = Vec::new();
    for host in hosts {
        let mut n = NodeLeaving {
            host: host.clone(),
            ..Default::default()
        };
        match crate::kube::drain::delete_node(&api, &host, NODE_REQUEST).await {
            Ok(()) => n.deleted = true,
            Err(e) => n.note = Some(format!("Node left in the API: {e}")),
        }
        out.push(n);
    }
    out
}

/// Delete the Node of every drained host whose reset succeeded.
pub(crate) async fn delete_nodes(
    api: &crate::kube::ApiClient,
    nodes: &mut [NodeLeaving],
    hosts: &[HostResetOutcome],
) {
    for n in nodes {
        if !hosts.iter().any(|h| h.host == n.host && h.ok()) {
            n.note
                .get_or_insert_with(|| "Node left in the API: the host's reset failed".into());
            continue;
        }
        match crate::kube::drain::delete_node(api, &n.host, NODE_REQUEST).await {
            Ok(()) => n.deleted = true,
            Err(e) => n.note = Some(format!("Node left in the API: {e}")),
        }
    }
}

impl ResetReport {
    pub fn ok(&self) -> bool {
        self.hosts.iter().all(HostResetOutcome::ok)
    }
}

/// etcd's data dir on a host holds what etcd does not put there: reset moves or deletes no such
/// directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "etcd's data dir {dir} holds {} besides etcd's `{entry}`, and kinit moves or deletes only a \
     data dir that holds nothing else",
    .found.join(", "),
    entry = crate::host_paths::ETCD_DATA_ENTRY
)]
pub struct ForeignData {
    pub dir: String,
    /// What the host found (at most 20 names, unprintable characters as `?`).
    pub found: Vec<String>,
}

/// What to do about [`ForeignData`].
const FOREIGN_HELP: &str = "move what is not etcd's out of it (or set spec.etcd.dataDir to etcd's \
                            own directory) and run reset again";

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error("host {host}: {data}: no member was removed and no host was changed; {FOREIGN_HELP}")]
    ForeignData { host: String, data: ForeignData },
    /// Another run holds the cluster lock (named), or a host did not answer while it was taken.
    #[error(transparent)]
    Locked(#[from] LockFailure),
    #[error("interrupted before any host was changed")]
    Interrupted,
}

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
fn script_text() -> String {
    format!("{DIR_FUNCTIONS}{SCRIPT}")
}

/// The script's words for `plan`.
fn script_args(plan: &HostReset, settings: &ResetSettings) -> Vec<String> {
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

fn parse_actions(stdout: &str) -> Vec<ResetAction> {
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

/// Reset the hosts of `plans` (their targets in `targets`). Members of a partial reset are
/// removed first; a refusal there changes nothing anywhere.
pub async fn run(
    inv: &crate::inventory::Inventory,
    tls: Option<&ClientTls>,
    plans: Vec<HostReset>,
    targets: &BTreeMap<String, HostTarget>,
    pool: Arc<Pool>,
    settings: &ResetSettings,
    cancel: &CancellationToken,
) -> Result<ResetReport, ResetError> {
    // The lock on every selected host, all or none, before etcd is even asked: `up`, `remove`
    // and `restore` take it on a superset of these hosts, so none of them runs meanwhile.
    let lock = LockRequest {
        owner: LockOwner::current("reset"),
        break_lock: settings.break_lock,
        concurrency: settings.concurrency,
    };
    let (locked, unreachable) = if settings.dry_run || settings.locked_by_caller {
        (Vec::new(), BTreeMap::new())
    } else {
        let mine: BTreeMap<String, HostTarget> = plans
            .iter()
            .filter_map(|p| Some((p.host.clone(), targets.get(&p.host)?.clone())))
            .collect();
        // A host that cannot be reached cannot be changed by anyone: it is reported, not reset
        // (a second reset does it once it is back), and the others go ahead.
        let (reachable, unreachable) = connect_all(&pool, mine, settings.concurrency, cancel).await;
        (
            lock.take(&pool, &reachable, cancel, &Quiet).await?,
            unreachable,
        )
    };
    let result = run_locked(
        inv,
        tls,
        plans,
        targets,
        pool,
        settings,
        cancel,
        &unreachable,
    )
    .await;
    lock.release(&locked).await;
    result
}

/// The targets that answer, and why each other one did not.
async fn connect_all(
    pool: &Arc<Pool>,
    targets: BTreeMap<String, HostTarget>,
    concurrency: usize,
    cancel: &CancellationToken,
) -> (BTreeMap<String, HostTarget>, BTreeMap<String, String>) {
    let items: Vec<_> = targets.clone().into_iter().collect();
    let pool = pool.clone();
    let results = fanout::run(items, concurrency, cancel, move |target: HostTarget| {
        let pool = pool.clone();
        async move {
            pool.get(&target)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let mut reachable = BTreeMap::new();
    let mut unreachable = BTreeMap::new();
    for (host, r) in results {
        match r {
            Ok(()) => {
                if let Some(t) = targets.get(&host) {
                    reachable.insert(host, t.clone());
                }
            }
            Err(FanoutError::Failed(e)) => {
                unreachable.insert(host, e);
            }
            Err(other) => {
                unreachable.insert(host, other.to_string());
            }
        }
    }
    (reachable, unreachable)
}

#[allow(clippy::too_many_arguments)]
async fn run_locked(
    inv: &crate::inventory::Inventory,
    tls: Option<&ClientTls>,
    plans: Vec<HostReset>,
    targets: &BTreeMap<String, HostTarget>,
    pool: Arc<Pool>,
    settings: &ResetSettings,
    cancel: &CancellationToken,
    unreachable: &BTreeMap<String, String>,
) -> Result<ResetReport, ResetError> {
    let selected: BTreeSet<String> = plans.iter().map(|p| p.host.clone()).collect();
    let membership = match tls {
        Some(tls) => etcd_members::plan_reset(inv, tls, &selected, settings.etcd_timeout).await?,
        None => membership::without_client(inv, &selected).map_err(MembershipError::from)?,
    };
    if cancel.is_cancelled() {
        return Err(ResetError::Interrupted);
    }
    if let (ResetMembership::Remove { members, via }, Some(tls), false) =
        (&membership, tls, settings.dry_run)
    {
        // A host that would refuse must refuse before its member is gone.
        check_data_dirs(&plans, targets, &pool, settings, cancel).await?;
        if cancel.is_cancelled() {
            return Err(ResetError::Interrupted);
        }
        etcd_members::remove(tls, members, via, settings.etcd_timeout).await?;
    }
    let reachable: BTreeSet<String> = selected
        .iter()
        .filter(|h| !unreachable.contains_key(*h))
        .cloned()
        .collect();
    let (api, mut nodes) = drain_nodes(inv, &reachable, settings.dry_run).await;
    if cancel.is_cancelled() {
        return Err(ResetError::Interrupted);
    }
    let kept: BTreeMap<String, Vec<String>> = plans
        .iter()
        .map(|p| (p.host.clone(), p.kept.clone()))
        .collect();
    let items: Vec<_> = plans
        .into_iter()
        .filter(|p| !unreachable.contains_key(&p.host))
        .filter_map(|p| {
            let target = targets.get(&p.host)?.clone();
            Some((p.host.clone(), (p, target)))
        })
        .collect();
    let shared = settings.clone();
    let results = fanout::run(
        items,
        settings.concurrency,
        cancel,
        move |(plan, target)| {
            let (pool, settings) = (pool.clone(), shared.clone());
            async move { reset_host(&pool, &target, &plan, &settings).await }
        },
    )
    .await;
    let mut hosts: Vec<HostResetOutcome> = results
        .into_iter()
        .map(|(host, r)| {
            let kept = kept.get(&host).cloned().unwrap_or_default();
            match r {
                Ok(actions) => HostResetOutcome {
                    host,
                    actions,
                    kept,
                    error: None,
                },
                Err(e) => HostResetOutcome {
                    host,
                    actions: Vec::new(),
                    kept,
                    error: Some(match e {
                        FanoutError::Failed(f) => f.message(),
                        FanoutError::Cancelled => FanoutError::<String>::Cancelled.to_string(),
                        FanoutError::Panicked(p) => FanoutError::<String>::Panicked(p).to_string(),
                    }),
                },
            }
        })
        .collect();
    hosts.extend(unreachable.iter().map(|(host, e)| HostResetOutcome {
        host: host.clone(),
        actions: Vec::new(),
        kept: kept.get(host).cloned().unwrap_or_default(),
        error: Some(format!("{e}; nothing was changed on this host")),
    }));
    if let Some(api) = api {
        delete_nodes(&api, &mut nodes, &hosts).await;
    }
    Ok(ResetReport {
        dry_run: settings.dry_run,
        membership,
        hosts,
        nodes,
    })
}

/// Why one host's reset did not run.
enum HostFailure {
    Foreign(ForeignData),
    Other(String),
}

impl HostFailure {
    fn message(self) -> String {
        match self {
            HostFailure::Foreign(d) => {
                format!("{d}: nothing was changed on this host; {FOREIGN_HELP}")
            }
            HostFailure::Other(s) => s,
        }
    }
}

async fn reset_host(
    pool: &Pool,
    target: &HostTarget,
    plan: &HostReset,
    settings: &ResetSettings,
) -> Result<Vec<ResetAction>, HostFailure> {
    let session = pool
        .get(target)
        .await
        .map_err(|e| HostFailure::Other(e.to_string()))?;
    let args = script_args(plan, settings);
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_script(&session, &script_text(), &words, Duration::from_secs(300)).await;
    let out = out.map_err(|e| HostFailure::Other(e.to_string()))?;
    let stdout = out.stdout_text();
    if let Some(found) = foreign_names(&stdout, out.status == ExitStatus::Code(FOREIGN_EXIT))
        && let Some(dir) = &plan.data_dir
    {
        return Err(HostFailure::Foreign(ForeignData {
            dir: dir.clone(),
            found,
        }));
    }
    let actions = parse_actions(&stdout);
    if !out.success() && !actions.iter().any(|a| matches!(a, ResetAction::Failed(_))) {
        let stderr = out.stderr_text();
        let tail: Vec<&str> = stderr.trim_end().lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(HostFailure::Other(format!(
            "reset: {}: {}",
            out.status,
            tail.join(" / ")
        )));
    }
    Ok(actions)
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

/// Before members are removed: every selected host that answers is asked (a dry run) whether
/// its data dir holds anything but etcd's member. The first that does stops the reset with
/// nothing changed anywhere; a host that does not answer is left to the reset itself.
async fn check_data_dirs(
    plans: &[HostReset],
    targets: &BTreeMap<String, HostTarget>,
    pool: &Arc<Pool>,
    settings: &ResetSettings,
    cancel: &CancellationToken,
) -> Result<(), ResetError> {
    let dry = ResetSettings {
        dry_run: true,
        ..settings.clone()
    };
    let items: Vec<_> = plans
        .iter()
        .filter(|p| p.data_dir.is_some())
        .filter_map(|p| Some((p.host.clone(), (p.clone(), targets.get(&p.host)?.clone()))))
        .collect();
    let pool = pool.clone();
    let results = fanout::run(
        items,
        settings.concurrency,
        cancel,
        move |(plan, target)| {
            let (pool, dry) = (pool.clone(), dry.clone());
            async move {
                match reset_host(&pool, &target, &plan, &dry).await {
                    Err(HostFailure::Foreign(d)) => Err(d),
                    _ => Ok(()),
                }
            }
        },
    )
    .await;
    for (host, r) in results {
        match r {
            Err(FanoutError::Failed(data)) => return Err(ResetError::ForeignData { host, data }),
            Err(FanoutError::Cancelled) => return Err(ResetError::Interrupted),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_report_parses_into_actions() {
        let got = parse_actions(
            "stop keepalived\ndisable keepalived\nmove /var/lib/etcd /var/lib/etcd.reset-X\n\
             remove /etc/etcd/etcd.conf.yml\nfailed stop etcd\nrmdir /etc/etcd\nnoise\n",
        );
        assert_eq!(
            got,
            vec![
                ResetAction::Stop("keepalived".into()),
                ResetAction::Disable("keepalived".into()),
                ResetAction::Move {
                    from: "/var/lib/etcd".into(),
                    to: "/var/lib/etcd.reset-X".into()
                },
                ResetAction::Remove("/etc/etcd/etcd.conf.yml".into()),
                ResetAction::Failed("stop etcd".into()),
                ResetAction::Rmdir("/etc/etcd".into()),
            ]
        );
    }

    /// The script run here, as root or not, with a `systemctl` that does nothing.
    fn run_here(args: &[&str]) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("systemctl");
        std::fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script_text())
            .arg("kinit")
            .args(args)
            .env("PATH", path)
            .output()
            .unwrap()
    }

    fn tree(root: &std::path::Path) -> Vec<String> {
        let mut out: Vec<String> = walkdir(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        out.sort();
        out
    }

    fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walkdir(&e.path()));
            }
        }
        out
    }

    #[test]
    fn a_data_dir_holding_more_than_etcds_member_stops_the_script_before_anything() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("etcd");
        std::fs::create_dir_all(data.join("member/wal")).unwrap();
        std::fs::write(data.join("notes.txt"), "mine").unwrap();
        std::fs::write(data.join(".hidden"), "mine").unwrap();
        let file = root.path().join("etcd.conf");
        std::fs::write(&file, "x").unwrap();
        let before = tree(root.path());
        let aside = root.path().join("etcd.reset-X");
        for (dry, purge) in [("yes", "no"), ("no", "no"), ("no", "yes")] {
            let out = run_here(&[
                dry,
                purge,
                data.to_str().unwrap(),
                aside.to_str().unwrap(),
                "member",
                "--manifests",
                file.to_str().unwrap(),
                "--data",
            ]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let refused = out.status.code() == Some(FOREIGN_EXIT as i32);
            assert!(refused, "{stdout}");
            let mut found = foreign_names(&stdout, refused).unwrap();
            found.sort();
            assert_eq!(found, [".hidden", "notes.txt"], "{stdout}");
            assert_eq!(tree(root.path()), before, "dry={dry} purge={purge}");
        }
    }

    #[test]
    fn a_data_dir_of_etcds_member_alone_moves_aside_or_goes() {
        for purge in ["no", "yes"] {
            let root = tempfile::tempdir().unwrap();
            let data = root.path().join("etcd");
            std::fs::create_dir_all(data.join("member/wal")).unwrap();
            let aside = root.path().join("etcd.reset-X");
            let (d, a) = (data.to_str().unwrap(), aside.to_str().unwrap());
            let out = run_here(&["no", purge, d, a, "member", "--data"]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{stdout}");
            assert!(!data.exists());
            if purge == "yes" {
                assert_eq!(parse_actions(&stdout), vec![ResetAction::Purge(d.into())]);
                assert!(!aside.exists());
            } else {
                assert!(aside.join("member/wal").is_dir());
            }
        }
    }

    #[test]
    fn a_state_dir_holding_what_kinit_did_not_put_there_is_kept_and_said() {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("snapshot");
        std::fs::create_dir_all(work.join("save.abc123")).unwrap();
        std::fs::write(work.join("restore-20261127T101500Z.db"), "x").unwrap();
        std::fs::write(work.join("mine.db"), "y").unwrap();
        let pending = root.path().join("pending");
        std::fs::create_dir_all(&pending).unwrap();
        std::fs::write(pending.join("etcd.service"), "").unwrap();
        let (w, p) = (work.to_str().unwrap(), pending.to_str().unwrap());
        let out = run_here(&[
            "no",
            "no",
            "-",
            "-",
            "member",
            "--state",
            "restore-*.db",
            "save.*",
            w,
            "*.service",
            p,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert_eq!(
            tree(root.path()),
            ["snapshot", "snapshot/mine.db"],
            "{stdout}"
        );
        let actions = parse_actions(&stdout);
        assert!(
            actions.contains(&ResetAction::Kept {
                path: w.into(),
                found: vec!["mine.db".into()]
            }),
            "{actions:?}"
        );
        assert!(
            actions.contains(&ResetAction::Remove(p.into())),
            "{actions:?}"
        );
    }

    #[test]
    fn the_data_dir_goes_next_to_itself() {
        assert_eq!(
            aside_path("/var/lib/etcd/", "20261127T101500Z", "reset"),
            "/var/lib/etcd.reset-20261127T101500Z"
        );
    }
}
