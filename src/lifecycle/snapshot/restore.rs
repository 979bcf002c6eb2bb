//! `kinit etcd snapshot restore FILE`: the disaster path, which must work when the cluster is
//! already dead (members down, data wiped, no quorum). Once every etcd and control-plane host
//! answered, the cluster lock `kinit up` takes is taken on all of them (another operator's run
//! is refused by name before anything changes) and held to the end. On every host at once, step
//! by step:
//! 0. check, before anything changes: the restore tool is on every etcd host, each data dir
//!    holds nothing but etcd's `member` (or is empty or absent), and whether it is a mount
//!    point; then the new cluster token is kept in the PKI dir;
//! 1. stop: what the component table marks `stopped_for_restore` (the control plane: its
//!    systemd units stopped, or its static pod manifests moved aside), so no apiserver writes to
//!    a half-restored etcd and no controller acts on it; then etcd stopped (its unit, or its
//!    manifest moved aside too);
//! 2. restore: the snapshot uploaded into the 0700 scratch dir (checksum-verified), the data dir
//!    moved aside (kept; of a mount point, its `member` only),
//!    `etcdutl`/`etcdctl snapshot restore` with the member's own name and peer URL, the full
//!    member list and a NEW cluster token, so no restored member can rejoin the old cluster;
//! 3. start: etcd's config rendered with the new token, all members started together;
//! 4. wait until every member is healthy in one new cluster under one leader;
//! 5. the control plane back: the manifests put back (those kinit moved: nothing else in the
//!    dir), the units started (each waits for its program to say it serves).
//!
//! A restore that fails after data dirs were moved says where each host's old data went.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{HOST_WORK_DIR, SnapshotError, stderr_tail};
use crate::components;
use crate::config::{EtcdMode, Role};
use crate::engine::cluster_lock::LockRequest;
use crate::engine::event::Observer;
use crate::engine::host_ops::run_script;
use crate::etcd::snapshot_file::SnapshotStatus;
use crate::etcd::{self, ClientTls};
use crate::fanout::{self, FanoutError};
use crate::host_paths;
use crate::inventory::{Host, Inventory};
use crate::lifecycle::reset::{
    DIR_FUNCTIONS, FOREIGN_EXIT, ForeignData, aside_path, foreign_names,
};
use crate::render::{self, Templates};
use crate::ssh::{ExitStatus, FileSpec, HostTarget, Pool, Session};

#[derive(Debug, Clone)]
pub struct RestoreSettings {
    /// UTC `YYYYMMDDTHHMMSSZ`: names what is moved aside.
    pub stamp: String,
    /// How long the restored cluster may take to become healthy.
    pub wait: Duration,
    pub etcd_timeout: Duration,
    pub concurrency: usize,
    /// Who takes the cluster lock.
    pub lock: LockRequest,
}

/// One restored member.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoredMember {
    pub host: String,
    /// Where the data dir that was there went (None: there was none).
    pub old_data_dir: Option<String>,
    pub revision: i64,
    pub leader: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub snapshot: PathBuf,
    /// Hex, as etcdctl prints it.
    pub cluster_id: String,
    pub members: Vec<RestoredMember>,
    /// Where the control-plane manifests waited, per host (they are back now).
    pub manifests_moved: Vec<String>,
    /// The control-plane units stopped during the restore and started again, per host
    /// (`cp1: kube-apiserver, kube-controller-manager, kube-scheduler`).
    pub units_restarted: Vec<String>,
    /// Hosts where the manifests' waiting dir held something kinit did not put there: left in
    /// place.
    pub kept_aside: Vec<String>,
    pub seconds: f64,
}

/// Step 1 on one host. Args: mode (systemd|static-pod), is-etcd (yes|no), aside dir, the units
/// to stop (space-separated, may be empty), then the manifests to move. Prints `moved PATH` per
/// manifest moved. A unit that is not installed is not there to stop.
const STOP: &str = r#"set -eu
mode=$1; etcd=$2; aside=$3; units=$4; shift 4
for u in $units; do
  if [ -n "$(systemctl show -P FragmentPath "$u" 2>/dev/null)" ]; then systemctl stop "$u"; fi
done
moved=no
for m in "$@"; do
  if [ -f "$m" ]; then mkdir -p -m 0700 -- "$aside"; mv -f -- "$m" "$aside/"; echo "moved $m"; moved=yes; fi
done
if [ "$etcd" = yes ] && [ "$mode" = systemd ]; then systemctl stop etcd 2>/dev/null || true; fi
if [ "$moved" = yes ] && systemctl is-active -q kubelet 2>/dev/null; then
  # The kubelet stops a static pod once its manifest is gone: wait for etcd's and the
  # apiserver's ports to close.
  n=0
  while ss -Hltn 'sport = :2379 or sport = :6443' 2>/dev/null | grep -q . && [ $n -lt 90 ]; do
    sleep 1; n=$((n+1))
  done
fi"#;

/// Which program restores a snapshot on this host: etcdutl, or an etcdctl that still has
/// `snapshot restore` (3.4; 3.6's etcdctl only saves). Prints its name, or nothing.
const RESTORE_TOOL: &str = r#"restore_tool() {
  if command -v etcdutl >/dev/null 2>&1; then echo etcdutl
  elif command -v etcdctl >/dev/null 2>&1 && ETCDCTL_API=3 etcdctl snapshot restore --help 2>&1 \
      | grep -q 'snapshot restore -'; then echo etcdctl
  fi
}
"#;

/// Step 0 on one etcd host, changing nothing. Args: data dir, etcd's entry. Prints `tool NAME`
/// and `mount yes|no`; refuses (exit 3, one `foreign NAME` line per name) a data dir holding
/// anything but etcd's entry.
const CHECK: &str = r#"set -u
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
const SCRATCH: &str = r#"set -eu
mkdir -p -m 0700 -- "$1"
chmod 0700 -- "$1""#;

/// Step 2 on one etcd host. Args: snapshot path, data dir, aside path, name, peer URL, initial
/// cluster, token, mount point (yes|no), etcd's entry. Prints `aside PATH` when old data was
/// moved: the data dir, or of a mount point (which stays) its entry, into PATH. Checks again,
/// before moving anything, that the data dir holds nothing but etcd's entry.
const RESTORE: &str = r#"set -eu
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
/// the new manifest is the one that stays, not the copy moved aside).
const START: &str = r#"set -eu
mode=$1; aside=$2
rm -f -- "$aside/etcd.yaml"
if [ "$mode" = systemd ]; then systemctl daemon-reload; systemctl enable -q etcd; systemctl start --no-block etcd; fi"#;

/// Step 5: the manifests kinit moved back where the kubelet reads them, and nothing else. Args:
/// aside dir, manifests dir, the manifests' file names. Prints `kept DIR` when the aside dir
/// holds something else afterwards (it stays).
const PUT_BACK: &str = r#"set -eu
aside=$1; dir=$2; shift 2
if [ -d "$aside" ]; then
  for n in "$@"; do
    if [ -f "$aside/$n" ]; then mv -f -- "$aside/$n" "$dir/"; fi
  done
  rmdir -- "$aside" 2>/dev/null || echo "kept $aside"
fi"#;

/// Step 5 for the units: start those of step 1 that are installed, together (each start waits
/// for its program to say it serves). Args: the units. Prints `started UNIT` per unit.
const START_UNITS: &str = r#"set -eu
there=
for u in "$@"; do
  if [ -n "$(systemctl show -P FragmentPath "$u" 2>/dev/null)" ]; then there="$there $u"; fi
done
if [ -n "$there" ]; then
  systemctl start $there
  for u in $there; do echo "started $u"; done
fi"#;

/// Every manifest a restore may hold aside (a subset per host, see [`manifests_to_move`]): the
/// static pod files of the components the table stops for a restore, and etcd's.
pub fn aside_manifests() -> Vec<&'static str> {
    components::TABLE
        .iter()
        .filter(|c| c.stopped_for_restore && c.static_pod)
        .flat_map(|c| c.files.iter().map(|f| f.path))
        .chain([host_paths::ETCD_MANIFEST])
        .collect()
}

/// The file names of [`aside_manifests`].
fn aside_names() -> Vec<&'static str> {
    aside_manifests()
        .into_iter()
        .filter_map(|m| m.rsplit_once('/').map(|(_, n)| n))
        .collect()
}

/// What became of a host's old data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OldData {
    /// Not moved: still at the data dir (or there was none).
    Untouched,
    Moved(String),
    /// The step failed on this host; if the data was moved, it is here.
    Unknown(String),
}

/// Where every etcd host's old data is, for an error after the restore began.
fn old_data_text(data_dir: &str, old: &BTreeMap<String, OldData>) -> Vec<String> {
    old.iter()
        .map(|(host, o)| match o {
            OldData::Untouched => {
                format!("{host}: not moved (still at {data_dir}, if there was any)")
            }
            OldData::Moved(p) => format!("{host}: moved to {p}"),
            OldData::Unknown(p) => format!(
                "{host}: at {data_dir}, or moved to {p} (the step failed there; look at both)"
            ),
        })
        .collect()
}

/// A failure after the stop step began, with where every host's old data went.
fn half_way(
    error: SnapshotError,
    data_dir: &str,
    old: &BTreeMap<String, OldData>,
) -> SnapshotError {
    if matches!(error, SnapshotError::Interrupted) {
        return error;
    }
    SnapshotError::HalfWay {
        error: Box::new(error),
        old_data: old_data_text(data_dir, old),
    }
}

/// The control-plane manifests (and etcd's, as a static pod) that must not run meanwhile.
fn manifests_to_move(inv: &Inventory, host: &Host) -> Vec<&'static str> {
    let (_, mut out) = components::stopped_for_restore(inv, host);
    if host.has(Role::Etcd) && inv.etcd.mode == EtcdMode::StaticPod {
        out.push(host_paths::ETCD_MANIFEST);
    }
    out
}

fn mode_word(inv: &Inventory) -> &'static str {
    match inv.etcd.mode {
        EtcdMode::Systemd => "systemd",
        EtcdMode::StaticPod => "static-pod",
    }
}

async fn script(
    session: &Session,
    host: &str,
    step: &str,
    text: &str,
    args: &[&str],
) -> Result<String, SnapshotError> {
    let out = run_script(session, text, args, Duration::from_secs(1800))
        .await
        .map_err(|e| SnapshotError::host(host, step, e.to_string()))?;
    if !out.success() {
        return Err(SnapshotError::host(
            host,
            step,
            format!("{}: {}", out.status, stderr_tail(&out.stderr_text())),
        ));
    }
    Ok(out.stdout_text())
}

/// Collect a step's per-host results; the first failure (in host order) is the error.
fn all_ok<R>(
    results: Vec<(String, Result<R, FanoutError<SnapshotError>>)>,
) -> Result<Vec<(String, R)>, SnapshotError> {
    let mut out = Vec::new();
    for (host, r) in results {
        match r {
            Ok(v) => out.push((host, v)),
            Err(FanoutError::Failed(e)) => return Err(e),
            Err(FanoutError::Cancelled) => return Err(SnapshotError::Interrupted),
            Err(e) => return Err(SnapshotError::host(&host, "restore", e.to_string())),
        }
    }
    Ok(out)
}

/// Restore every etcd member of `inv` from `file` (already inspected: `status`). `inv` carries
/// the new cluster token (`pki::cluster_token::new_token`), which is kept in the PKI dir once
/// every host answered and passed the checks, just before the first change.
#[allow(clippy::too_many_arguments)]
pub async fn restore(
    inv: &Inventory,
    tls: &ClientTls,
    pool: Arc<Pool>,
    targets: &BTreeMap<String, HostTarget>,
    templates: &Templates,
    file: &Path,
    status: &SnapshotStatus,
    settings: &RestoreSettings,
    cancel: &CancellationToken,
    observer: &dyn Observer,
) -> Result<RestoreReport, SnapshotError> {
    let started = Instant::now();
    let token = inv
        .etcd_cluster_token
        .clone()
        .ok_or_else(|| SnapshotError::Render("no new cluster token".into()))?;
    let etcd_hosts: Vec<Host> = inv.with_role(Role::Etcd).cloned().collect();
    if etcd_hosts.is_empty() {
        return Err(SnapshotError::NoEtcdHosts);
    }
    let involved: Vec<Host> = inv
        .hosts
        .iter()
        .filter(|h| h.has(Role::Etcd) || h.has(Role::ControlPlane))
        .cloned()
        .collect();
    // Every host must answer before anything is touched: the member list is the inventory's.
    let mut sessions: BTreeMap<String, Arc<Session>> = BTreeMap::new();
    let connected = fanout::run(
        involved
            .iter()
            .filter_map(|h| Some((h.name.clone(), targets.get(&h.name)?.clone())))
            .collect(),
        settings.concurrency,
        cancel,
        {
            let pool = pool.clone();
            move |t: HostTarget| {
                let pool = pool.clone();
                async move {
                    pool.get(&t)
                        .await
                        .map_err(|e| SnapshotError::host(&t.name, "connect", e.to_string()))
                }
            }
        },
    )
    .await;
    for (host, s) in all_ok(connected)? {
        sessions.insert(host, s);
    }
    // The lock `kinit up` takes, on every host the restore changes, before the first check:
    // another operator's run is refused by name and nothing changes.
    let lock_targets: BTreeMap<String, HostTarget> = involved
        .iter()
        .filter_map(|h| Some((h.name.clone(), targets.get(&h.name)?.clone())))
        .collect();
    let locked = settings
        .lock
        .take(&pool, &lock_targets, cancel, observer)
        .await?;
    let run = Restoring {
        inv,
        tls,
        templates,
        file,
        status,
        settings,
        cancel,
        sessions: &sessions,
        etcd_hosts: &etcd_hosts,
        involved: &involved,
        token: &token,
        started,
    };
    let result = run.locked().await;
    settings.lock.release(&locked).await;
    result
}

/// A restore once every host answered and the lock is held.
struct Restoring<'a> {
    inv: &'a Inventory,
    tls: &'a ClientTls,
    templates: &'a Templates,
    file: &'a Path,
    status: &'a SnapshotStatus,
    settings: &'a RestoreSettings,
    cancel: &'a CancellationToken,
    sessions: &'a BTreeMap<String, Arc<Session>>,
    etcd_hosts: &'a [Host],
    involved: &'a [Host],
    token: &'a str,
    started: Instant,
}

impl Restoring<'_> {
    /// Steps 0 to 5 (see the module's doc).
    async fn locked(&self) -> Result<RestoreReport, SnapshotError> {
        let Restoring {
            inv,
            tls,
            templates,
            file,
            status,
            settings,
            cancel,
            sessions,
            etcd_hosts,
            involved,
            token,
            started,
        } = *self;
        let token = token.to_string();
        // The rendered etcd config with the new token, per etcd host (before any change: a
        // template error stops here).
        let mut configs: BTreeMap<String, (String, String)> = BTreeMap::new();
        for h in etcd_hosts {
            let files = render::render_host(inv, h, templates)
                .map_err(|e| SnapshotError::Render(e.to_string()))?;
            let wanted = match inv.etcd.mode {
                EtcdMode::Systemd => host_paths::ETCD_CONFIG,
                EtcdMode::StaticPod => host_paths::ETCD_MANIFEST,
            };
            let f = files
                .into_iter()
                .find(|f| f.path == wanted)
                .ok_or_else(|| SnapshotError::Render(format!("{}: no {wanted}", h.name)))?;
            configs.insert(h.name.clone(), (f.path.to_string(), f.content));
        }

        // One fixed place, not one per run: a restore cut short after the stop step leaves the
        // manifests there, and the next restore (or reset) finds them.
        let aside_manifests = host_paths::MANIFESTS_ASIDE_DIR.to_string();
        let mode = mode_word(inv);
        let data_dir = inv.etcd.data_dir.clone();

        // 0. check: nothing changes on any host unless every etcd host can be restored.
        let mounts = check_hosts(etcd_hosts, sessions, &data_dir, settings, cancel).await?;
        // The restore starts now: the new token is the cluster's from here on.
        crate::pki::cluster_token::store(&inv.pki_dir, &token)?;

        let mut old: BTreeMap<String, OldData> = etcd_hosts
            .iter()
            .map(|h| (h.name.clone(), OldData::Untouched))
            .collect();

        // 1. stop
        let jobs: Vec<_> = involved
            .iter()
            .map(|h| {
                let s = sessions[&h.name].clone();
                let (units, _) = components::stopped_for_restore(inv, h);
                let words: Vec<String> = [
                    mode.to_string(),
                    if h.has(Role::Etcd) { "yes" } else { "no" }.to_string(),
                    aside_manifests.clone(),
                    units.join(" "),
                ]
                .into_iter()
                .chain(manifests_to_move(inv, h).into_iter().map(str::to_string))
                .collect();
                (h.name.clone(), (s, h.name.clone(), words))
            })
            .collect();
        let stopped = all_ok(
            fanout::run(
                jobs,
                settings.concurrency,
                cancel,
                |(s, host, words): (Arc<Session>, String, Vec<String>)| async move {
                    let args: Vec<&str> = words.iter().map(String::as_str).collect();
                    script(&s, &host, "stop", STOP, &args).await
                },
            )
            .await,
        )
        .map_err(|e| half_way(e, &data_dir, &old))?;
        let manifests_moved: Vec<String> = stopped
            .iter()
            .filter(|(_, out)| out.lines().any(|l| l.starts_with("moved ")))
            .map(|(h, _)| format!("{h}: {aside_manifests}"))
            .collect();

        tracing::info!(elapsed = ?started.elapsed(), "restore: stopped");
        // 2. restore
        let sha = status.sha256.clone();
        let initial_cluster = inv.etcd_initial_cluster();
        let restore_text = format!("{DIR_FUNCTIONS}{RESTORE_TOOL}{RESTORE}");
        let jobs: Vec<_> = etcd_hosts
            .iter()
            .map(|h| {
                let member = crate::inventory::EtcdMember {
                    name: h.name.clone(),
                    address: h.address,
                };
                let words = vec![
                    format!("{HOST_WORK_DIR}/restore-{}.db", settings.stamp),
                    data_dir.clone(),
                    aside_path(&data_dir, &settings.stamp, "restore"),
                    h.name.clone(),
                    member.peer_url(),
                    initial_cluster.clone(),
                    token.clone(),
                    if mounts.get(&h.name).copied().unwrap_or(false) {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                    host_paths::ETCD_DATA_ENTRY.to_string(),
                ];
                let job = (
                    sessions[&h.name].clone(),
                    h.name.clone(),
                    words,
                    file.to_path_buf(),
                    sha.clone(),
                    restore_text.clone(),
                );
                (h.name.clone(), job)
            })
            .collect();
        let restored = fanout::run(
            jobs,
            settings.concurrency,
            cancel,
            |(s, host, words, file, sha, text): (
                Arc<Session>,
                String,
                Vec<String>,
                PathBuf,
                String,
                String,
            )| async move {
                let aside = words[2].clone();
                let r = restore_member(&s, &host, &words, &file, &sha, &text).await;
                Ok::<_, SnapshotError>(match r {
                    Ok(moved) => (moved.map_or(OldData::Untouched, OldData::Moved), None),
                    Err((moved, e)) => (
                        match moved {
                            Some(true) => OldData::Moved(aside),
                            Some(false) => OldData::Untouched,
                            None => OldData::Unknown(aside),
                        },
                        Some(e),
                    ),
                })
            },
        )
        .await;
        let mut first_error = None;
        for (host, r) in restored {
            match r {
                Ok((o, e)) => {
                    old.insert(host, o);
                    if first_error.is_none() {
                        first_error = e;
                    }
                }
                Err(e) => {
                    let aside = aside_path(&data_dir, &settings.stamp, "restore");
                    old.insert(host.clone(), OldData::Unknown(aside));
                    if first_error.is_none() {
                        first_error = Some(match e {
                            FanoutError::Cancelled => SnapshotError::Interrupted,
                            other => SnapshotError::host(&host, "restore", other.to_string()),
                        });
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(half_way(e, &data_dir, &old));
        }

        tracing::info!(elapsed = ?started.elapsed(), "restore: restored");
        // 3. start, all members together (the first one waits for a quorum).
        let jobs: Vec<_> = etcd_hosts
            .iter()
            .map(|h| {
                let (path, content) = configs[&h.name].clone();
                (
                    h.name.clone(),
                    (
                        sessions[&h.name].clone(),
                        h.name.clone(),
                        path,
                        content,
                        aside_manifests.clone(),
                    ),
                )
            })
            .collect();
        let mode_owned = mode.to_string();
        all_ok(
            fanout::run(
                jobs,
                settings.concurrency,
                cancel,
                move |(s, host, path, content, aside): (
                    Arc<Session>,
                    String,
                    String,
                    String,
                    String,
                )| {
                    let mode = mode_owned.clone();
                    async move {
                        let file_mode = if path.ends_with(".yaml") {
                            0o600
                        } else {
                            0o644
                        };
                        s.upload(
                            content.as_bytes(),
                            &path,
                            &FileSpec::new(file_mode, Some("root:root")),
                        )
                        .await
                        .map_err(|e| {
                            SnapshotError::host(&host, "write etcd's config", e.to_string())
                        })?;
                        script(&s, &host, "start etcd", START, &[&mode, &aside]).await
                    }
                },
            )
            .await,
        )
        .map_err(|e| half_way(e, &data_dir, &old))?;

        tracing::info!(elapsed = ?started.elapsed(), "restore: started");
        // 4. wait for one healthy cluster.
        let (cluster_id, statuses) = wait_healthy(inv, tls, settings, cancel)
            .await
            .map_err(|e| half_way(e, &data_dir, &old))?;

        tracing::info!(elapsed = ?started.elapsed(), "restore: healthy");
        // 5. the control plane back: the manifests kinit moved, nothing else.
        let names: Vec<String> = aside_names().into_iter().map(str::to_string).collect();
        let jobs: Vec<_> = involved
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    (
                        sessions[&h.name].clone(),
                        h.name.clone(),
                        aside_manifests.clone(),
                        names.clone(),
                    ),
                )
            })
            .collect();
        let put_back = all_ok(
            fanout::run(
                jobs,
                settings.concurrency,
                cancel,
                |(s, host, aside, names): (Arc<Session>, String, String, Vec<String>)| async move {
                    let mut args = vec![aside.as_str(), host_paths::MANIFESTS_DIR];
                    args.extend(names.iter().map(String::as_str));
                    script(&s, &host, "put the manifests back", PUT_BACK, &args).await
                },
            )
            .await,
        )
        .map_err(|e| half_way(e, &data_dir, &old))?;
        let kept_aside: Vec<String> = put_back
            .iter()
            .filter_map(|(h, out)| {
                let dir = out.lines().find_map(|l| l.strip_prefix("kept "))?;
                Some(format!(
                    "{h}: {dir} holds files kinit did not put there; it was left in place"
                ))
            })
            .collect();
        let jobs: Vec<_> = involved
            .iter()
            .filter_map(|h| {
                let (units, _) = components::stopped_for_restore(inv, h);
                let units: Vec<String> = units.into_iter().map(str::to_string).collect();
                (!units.is_empty()).then(|| {
                    (
                        h.name.clone(),
                        (sessions[&h.name].clone(), h.name.clone(), units),
                    )
                })
            })
            .collect();
        let started_units = all_ok(
            fanout::run(
                jobs,
                settings.concurrency,
                cancel,
                |(s, host, units): (Arc<Session>, String, Vec<String>)| async move {
                    let args: Vec<&str> = units.iter().map(String::as_str).collect();
                    script(&s, &host, "start the control plane", START_UNITS, &args).await
                },
            )
            .await,
        )
        .map_err(|e| half_way(e, &data_dir, &old))?;
        let units_restarted: Vec<String> = started_units
            .iter()
            .filter_map(|(h, out)| {
                let units: Vec<&str> = out
                    .lines()
                    .filter_map(|l| l.strip_prefix("started "))
                    .collect();
                (!units.is_empty()).then(|| format!("{h}: {}", units.join(", ")))
            })
            .collect();

        let members = etcd_hosts
            .iter()
            .map(|h| {
                let s = statuses.get(&h.name);
                RestoredMember {
                    host: h.name.clone(),
                    old_data_dir: match old.get(&h.name) {
                        Some(OldData::Moved(p)) => Some(p.clone()),
                        _ => None,
                    },
                    revision: s.map(|s| s.revision).unwrap_or_default(),
                    leader: s.is_some_and(|s| s.leader == s.member_id),
                }
            })
            .collect();
        Ok(RestoreReport {
            snapshot: file.to_path_buf(),
            cluster_id: format!("{cluster_id:x}"),
            members,
            manifests_moved,
            units_restarted,
            kept_aside,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Step 0: on every etcd host at once, the restore tool is there and the data dir holds
/// nothing but etcd's member; whether each data dir is a mount point. Changes nothing.
async fn check_hosts(
    etcd_hosts: &[Host],
    sessions: &BTreeMap<String, Arc<Session>>,
    data_dir: &str,
    settings: &RestoreSettings,
    cancel: &CancellationToken,
) -> Result<BTreeMap<String, bool>, SnapshotError> {
    let text = format!("{DIR_FUNCTIONS}{RESTORE_TOOL}{CHECK}");
    let jobs: Vec<_> = etcd_hosts
        .iter()
        .map(|h| {
            let job = (
                sessions[&h.name].clone(),
                h.name.clone(),
                data_dir.to_string(),
                text.clone(),
            );
            (h.name.clone(), job)
        })
        .collect();
    let checked = all_ok(
        fanout::run(
            jobs,
            settings.concurrency,
            cancel,
            |(s, host, data, text): (Arc<Session>, String, String, String)| async move {
                let out = run_script(
                    &s,
                    &text,
                    &[&data, host_paths::ETCD_DATA_ENTRY],
                    Duration::from_secs(120),
                )
                .await
                .map_err(|e| SnapshotError::host(&host, "check", e.to_string()))?;
                let stdout = out.stdout_text();
                if let Some(found) =
                    foreign_names(&stdout, out.status == ExitStatus::Code(FOREIGN_EXIT))
                {
                    return Err(SnapshotError::ForeignData {
                        host,
                        data: ForeignData { dir: data, found },
                    });
                }
                if !out.success() {
                    return Err(SnapshotError::host(
                        &host,
                        "check",
                        format!(
                            "{}: {}; nothing was changed on any host",
                            out.status,
                            stderr_tail(&out.stderr_text())
                        ),
                    ));
                }
                Ok(stdout.lines().any(|l| l == "mount yes"))
            },
        )
        .await,
    )?;
    Ok(checked.into_iter().collect())
}

/// Step 2 on one member: the scratch dir (0700), the snapshot uploaded into it, the old data
/// moved aside and the snapshot restored. Whether the old data was moved: on failure, `None`
/// when that is not known.
async fn restore_member(
    s: &Session,
    host: &str,
    words: &[String],
    file: &Path,
    sha: &str,
    text: &str,
) -> Result<Option<String>, (Option<bool>, SnapshotError)> {
    script(
        s,
        host,
        "prepare the scratch dir",
        SCRATCH,
        &[HOST_WORK_DIR],
    )
    .await
    .map_err(|e| (Some(false), e))?;
    let mut f = tokio::fs::File::open(file).await.map_err(|source| {
        (
            Some(false),
            SnapshotError::Local {
                path: file.to_path_buf(),
                source,
            },
        )
    })?;
    s.write_from(
        &mut f,
        sha,
        &words[0],
        &FileSpec::new(0o600, Some("root:root")),
    )
    .await
    .map_err(|e| {
        (
            Some(false),
            SnapshotError::host(host, "upload the snapshot", e.to_string()),
        )
    })?;
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let out = run_script(s, text, &args, Duration::from_secs(1800))
        .await
        .map_err(|e| {
            (
                None,
                SnapshotError::host(host, "snapshot restore", e.to_string()),
            )
        })?;
    let stdout = out.stdout_text();
    let moved = stdout
        .lines()
        .find_map(|l| l.strip_prefix("aside "))
        .map(str::to_string);
    if let Some(found) = foreign_names(&stdout, out.status == ExitStatus::Code(FOREIGN_EXIT)) {
        return Err((
            Some(false),
            SnapshotError::ForeignData {
                host: host.to_string(),
                data: ForeignData {
                    dir: words[1].clone(),
                    found,
                },
            },
        ));
    }
    if !out.success() {
        return Err((
            Some(moved.is_some()),
            SnapshotError::host(
                host,
                "snapshot restore",
                format!("{}: {}", out.status, stderr_tail(&out.stderr_text())),
            ),
        ));
    }
    Ok(moved)
}

/// Poll every member until all are healthy, in one cluster, following one leader.
async fn wait_healthy(
    inv: &Inventory,
    tls: &ClientTls,
    settings: &RestoreSettings,
    cancel: &CancellationToken,
) -> Result<(u64, BTreeMap<String, etcd::MemberStatus>), SnapshotError> {
    let deadline = Instant::now() + settings.wait;
    let members = inv.etcd_members();
    loop {
        let mut statuses = BTreeMap::new();
        let mut problems = Vec::new();
        for m in &members {
            let ep = m.client_url();
            match (
                etcd::health(tls, &ep, settings.etcd_timeout).await,
                etcd::status(tls, &ep, settings.etcd_timeout).await,
            ) {
                (Ok(true), Ok(s)) => {
                    statuses.insert(m.name.clone(), s);
                }
                (Ok(false), _) => problems.push(format!("{}: not healthy yet", m.name)),
                (Err(e), _) | (_, Err(e)) => problems.push(format!("{}: {e}", m.name)),
            }
        }
        if problems.is_empty() {
            let first = statuses.values().next().expect("members");
            let (cluster, leader) = (first.cluster_id, first.leader);
            let one_cluster = statuses
                .values()
                .all(|s| s.cluster_id == cluster && s.leader == leader && leader != 0);
            if one_cluster {
                return Ok((cluster, statuses));
            }
            problems.push("members do not agree on the cluster and its leader yet".into());
        }
        if Instant::now() >= deadline {
            return Err(SnapshotError::host(
                "etcd",
                "wait for the restored cluster",
                format!(
                    "not healthy within {}s: {}",
                    settings.wait.as_secs(),
                    problems.join("; ")
                ),
            ));
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(SnapshotError::Interrupted),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A PATH of the tools the scripts use, plus `etcdutl` when `tool` is given: a stand-in
    /// that makes `--data-dir`'s `member/wal` (refusing, as etcd 3.4 does, a dir that exists).
    fn bin(tool: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for t in [
            "tr", "head", "readlink", "awk", "stat", "mkdir", "mv", "chmod", "rmdir", "rm", "grep",
        ] {
            let found = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(t))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("no {t}"));
            std::os::unix::fs::symlink(found, dir.path().join(t)).unwrap();
        }
        if tool {
            let fake = dir.path().join("etcdutl");
            std::fs::write(
                &fake,
                "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --data-dir ] && d=$2; shift; done\n\
                 [ -e \"$d\" ] && { echo \"data-dir $d exists\" >&2; exit 1; }\n\
                 mkdir -p \"$d/member/wal\"\n",
            )
            .unwrap();
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    fn run(text: &str, bin: &Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{DIR_FUNCTIONS}{RESTORE_TOOL}{text}"))
            .arg("kinit")
            .args(args)
            .env("PATH", bin)
            .output()
            .unwrap()
    }

    #[test]
    fn the_check_names_what_is_not_etcds_and_finds_the_tool() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("etcd");
        std::fs::create_dir_all(data.join("member/snap")).unwrap();
        let d = data.to_str().unwrap();
        let with_tool = bin(true);
        let out = run(CHECK, with_tool.path(), &[d, "member"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("tool etcdutl") && stdout.contains("mount no"));
        // An absent data dir is fine too.
        let absent = root.path().join("none");
        let out = run(
            CHECK,
            with_tool.path(),
            &[absent.to_str().unwrap(), "member"],
        );
        assert!(out.status.success());
        // Something else in it: refused, named.
        std::fs::write(data.join("backup.tar"), "x").unwrap();
        let out = run(CHECK, with_tool.path(), &[d, "member"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let refused = out.status.code() == Some(FOREIGN_EXIT as i32);
        assert_eq!(
            foreign_names(&stdout, refused),
            Some(vec!["backup.tar".to_string()]),
            "{stdout}"
        );
        // No restore tool: refused before anything.
        std::fs::remove_file(data.join("backup.tar")).unwrap();
        let out = run(CHECK, bin(false).path(), &[d, "member"]);
        assert_eq!(out.status.code(), Some(4));
        assert!(String::from_utf8_lossy(&out.stderr).contains("neither etcdutl nor an etcdctl"));
    }

    #[test]
    fn an_etcdctl_that_cannot_restore_is_no_restore_tool() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("etcd");
        let tools = bin(false);
        for (usage, found) in [
            // 3.6: `snapshot restore` is gone; the group's usage is all it prints.
            ("NAME:\n  snapshot - Manages etcd node snapshots", false),
            (
                "NAME:\n\tsnapshot restore - Restores an etcd member snapshot",
                true,
            ),
        ] {
            let fake = tools.path().join("etcdctl");
            std::fs::write(&fake, format!("#!/bin/sh\nprintf '{usage}\\n'\n")).unwrap();
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = run(CHECK, tools.path(), &[d.to_str().unwrap(), "member"]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.success(), found, "{usage}: {stdout}");
            assert_eq!(stdout.contains("tool etcdctl"), found, "{usage}: {stdout}");
        }
    }

    fn restore_here(mount: &str, extra: Option<&str>) -> (tempfile::TempDir, std::process::Output) {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("etcd");
        std::fs::create_dir_all(data.join("member/wal")).unwrap();
        std::fs::write(data.join("member/wal/old"), "old").unwrap();
        if let Some(name) = extra {
            std::fs::write(data.join(name), "x").unwrap();
        }
        let snap = root.path().join("restore-X.db");
        std::fs::write(&snap, "db").unwrap();
        let aside = root.path().join("etcd.restore-X");
        let tools = bin(true);
        let out = run(
            RESTORE,
            tools.path(),
            &[
                snap.to_str().unwrap(),
                data.to_str().unwrap(),
                aside.to_str().unwrap(),
                "cp1",
                "https://10.0.0.1:2380",
                "cp1=https://10.0.0.1:2380",
                "tok",
                mount,
                "member",
            ],
        );
        (root, out)
    }

    #[test]
    fn the_old_data_goes_aside_whole_or_of_a_mount_point_its_member() {
        for mount in ["no", "yes"] {
            let (root, out) = restore_here(mount, None);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{mount}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (data, aside) = (root.path().join("etcd"), root.path().join("etcd.restore-X"));
            assert!(
                stdout.contains(&format!("aside {}", aside.display())),
                "{stdout}"
            );
            assert!(
                aside.join("member/wal/old").is_file(),
                "{mount}: old data kept"
            );
            assert!(data.join("member/wal").is_dir(), "{mount}: restored");
            assert!(!data.join("member/wal/old").exists(), "{mount}");
            assert!(!data.join(".kinit-restore").exists(), "{mount}");
            let names: Vec<_> = std::fs::read_dir(&data).unwrap().flatten().collect();
            assert_eq!(names.len(), 1, "{mount}: only the member");
            assert_eq!(
                std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
                0o700
            );
            assert!(
                !root.path().join("restore-X.db").exists(),
                "the upload goes"
            );
        }
    }

    #[test]
    fn the_restore_step_checks_again_and_moves_nothing_of_someone_elses() {
        let (root, out) = restore_here("no", Some("keep-me"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(FOREIGN_EXIT as i32), "{stdout}");
        assert!(stdout.contains("foreign keep-me"), "{stdout}");
        assert!(root.path().join("etcd/keep-me").is_file());
        assert!(root.path().join("etcd/member/wal/old").is_file());
        assert!(!root.path().join("etcd.restore-X").exists());
    }

    #[test]
    fn put_back_moves_only_the_manifests() {
        let root = tempfile::tempdir().unwrap();
        let (aside, dir) = (root.path().join("aside"), root.path().join("manifests"));
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(aside.join("kube-apiserver.yaml"), "m").unwrap();
        std::fs::write(aside.join("cluster-20261127.db"), "snapshot").unwrap();
        let mut args = vec![aside.to_str().unwrap(), dir.to_str().unwrap()];
        args.extend(aside_names());
        let out = run(PUT_BACK, bin(false).path(), &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(dir.join("kube-apiserver.yaml").is_file());
        assert!(!dir.join("cluster-20261127.db").exists());
        assert!(aside.join("cluster-20261127.db").is_file());
        assert!(
            stdout.contains(&format!("kept {}", aside.display())),
            "{stdout}"
        );
        // Without strangers the directory goes.
        std::fs::remove_file(aside.join("cluster-20261127.db")).unwrap();
        let out = run(PUT_BACK, bin(false).path(), &args);
        assert!(out.status.success());
        assert!(!aside.exists());
    }

    #[test]
    fn a_half_way_failure_says_where_each_hosts_old_data_is() {
        let old: BTreeMap<String, OldData> = [
            ("cp1", OldData::Moved("/var/lib/etcd.restore-X".into())),
            ("cp2", OldData::Untouched),
            ("cp3", OldData::Unknown("/var/lib/etcd.restore-X".into())),
        ]
        .into_iter()
        .map(|(h, o)| (h.to_string(), o))
        .collect();
        let e = half_way(
            SnapshotError::host("cp3", "snapshot restore", "exit 1: boom"),
            "/var/lib/etcd",
            &old,
        )
        .to_string();
        for want in [
            "host cp3: snapshot restore: exit 1: boom",
            "cp1: moved to /var/lib/etcd.restore-X",
            "cp2: not moved",
            "cp3: at /var/lib/etcd, or moved to /var/lib/etcd.restore-X",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
