//! `kinit etcd snapshot restore FILE`: the disaster path, which must work when the cluster is
//! already dead (members down, data wiped, no quorum). On every host at once, step by step:
//! 1. stop: control-plane static pod manifests moved aside (no apiserver writes to a
//!    half-restored etcd), etcd stopped (its unit, or its manifest moved aside too);
//! 2. restore: the snapshot uploaded (checksum-verified), the data dir moved aside (kept),
//!    `etcdutl`/`etcdctl snapshot restore` with the member's own name and peer URL, the full
//!    member list and a NEW cluster token, so no restored member can rejoin the old cluster;
//! 3. start: etcd's config rendered with the new token, all members started together;
//! 4. wait until every member is healthy in one new cluster under one leader;
//! 5. the control-plane manifests put back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{HOST_WORK_DIR, SnapshotError, stderr_tail};
use crate::config::{EtcdMode, Role};
use crate::engine::host_ops::run_script;
use crate::etcd::snapshot_file::SnapshotStatus;
use crate::etcd::{self, ClientTls};
use crate::fanout::{self, FanoutError};
use crate::host_paths;
use crate::inventory::{Host, Inventory};
use crate::lifecycle::reset::aside_path;
use crate::render::{self, Templates};
use crate::ssh::{FileSpec, HostTarget, Pool, Session};

#[derive(Debug, Clone)]
pub struct RestoreSettings {
    /// UTC `YYYYMMDDTHHMMSSZ`: names what is moved aside.
    pub stamp: String,
    /// How long the restored cluster may take to become healthy.
    pub wait: Duration,
    pub etcd_timeout: Duration,
    pub concurrency: usize,
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
    pub seconds: f64,
}

/// Step 1 on one host. Args: mode (systemd|static-pod), is-etcd (yes|no), aside dir, then the
/// manifests to move. Prints `moved PATH` per manifest moved.
const STOP: &str = r#"set -eu
mode=$1; etcd=$2; aside=$3; shift 3
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

/// Step 2 on one etcd host. Args: snapshot path, data dir, aside path, name, peer URL, initial
/// cluster, token. Prints `aside PATH` when a data dir was moved.
const RESTORE: &str = r#"set -eu
snap=$1; data=$2; aside=$3; name=$4; peer=$5; cluster=$6; token=$7
trap 'rm -f -- "$snap"' EXIT
if [ -e "$data" ]; then mv -- "$data" "$aside"; echo "aside $aside"; fi
if command -v etcdutl >/dev/null 2>&1; then tool=etcdutl
elif command -v etcdctl >/dev/null 2>&1; then tool=etcdctl
else echo "neither etcdutl nor etcdctl is on this host (PATH=$PATH)" >&2; exit 4; fi
ETCDCTL_API=3 "$tool" snapshot restore "$snap" --name "$name" --data-dir "$data" \
  --initial-cluster "$cluster" --initial-cluster-token "$token" \
  --initial-advertise-peer-urls "$peer" >&2
chmod 0700 -- "$data""#;

/// Step 3 on one etcd host: start etcd (its config was written just before; as a static pod,
/// the new manifest is the one that stays, not the copy moved aside).
const START: &str = r#"set -eu
mode=$1; aside=$2
rm -f -- "$aside/etcd.yaml"
if [ "$mode" = systemd ]; then systemctl daemon-reload; systemctl enable -q etcd; systemctl start --no-block etcd; fi"#;

/// Step 5: the manifests back where the kubelet reads them. Args: aside dir, manifests dir.
const PUT_BACK: &str = r#"set -eu
aside=$1; dir=$2
if [ -d "$aside" ]; then
  for f in "$aside"/*; do [ -e "$f" ] && mv -f -- "$f" "$dir/"; done
  rmdir -- "$aside"
fi"#;

/// The control-plane manifests (and etcd's, as a static pod) that must not run meanwhile.
fn manifests_to_move(inv: &Inventory, host: &Host) -> Vec<&'static str> {
    let mut out = Vec::new();
    if host.has(Role::ControlPlane) {
        out.extend([
            host_paths::KUBE_APISERVER_MANIFEST,
            host_paths::KUBE_CONTROLLER_MANAGER_MANIFEST,
            host_paths::KUBE_SCHEDULER_MANIFEST,
        ]);
    }
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
/// the new cluster token (see `pki::cluster_token::renew`).
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
    // The rendered etcd config with the new token, per etcd host (before any change: a
    // template error stops here).
    let mut configs: BTreeMap<String, (String, String)> = BTreeMap::new();
    for h in &etcd_hosts {
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

    // 1. stop
    let jobs: Vec<_> = involved
        .iter()
        .map(|h| {
            let s = sessions[&h.name].clone();
            let words: Vec<String> = [
                mode.to_string(),
                if h.has(Role::Etcd) { "yes" } else { "no" }.to_string(),
                aside_manifests.clone(),
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
    )?;
    let manifests_moved: Vec<String> = stopped
        .iter()
        .filter(|(_, out)| out.lines().any(|l| l.starts_with("moved ")))
        .map(|(h, _)| format!("{h}: {aside_manifests}"))
        .collect();

    tracing::info!(elapsed = ?started.elapsed(), "restore: stopped");
    // 2. restore
    let sha = status.sha256.clone();
    let initial_cluster = inv.etcd_initial_cluster();
    let jobs: Vec<_> = etcd_hosts
        .iter()
        .map(|h| {
            let member = crate::inventory::EtcdMember {
                name: h.name.clone(),
                address: h.address,
            };
            let words = vec![
                format!("{HOST_WORK_DIR}/restore-{}.db", settings.stamp),
                inv.etcd.data_dir.clone(),
                aside_path(&inv.etcd.data_dir, &settings.stamp, "restore"),
                h.name.clone(),
                member.peer_url(),
                initial_cluster.clone(),
                token.clone(),
            ];
            let job = (
                sessions[&h.name].clone(),
                h.name.clone(),
                words,
                file.to_path_buf(),
                sha.clone(),
            );
            (h.name.clone(), job)
        })
        .collect();
    let restored =
        all_ok(
            fanout::run(
                jobs,
                settings.concurrency,
                cancel,
                |(s, host, words, file, sha): (
                    Arc<Session>,
                    String,
                    Vec<String>,
                    PathBuf,
                    String,
                )| async move {
                    let mut f = tokio::fs::File::open(&file).await.map_err(|source| {
                        SnapshotError::Local {
                            path: file.clone(),
                            source,
                        }
                    })?;
                    s.write_from(
                        &mut f,
                        &sha,
                        &words[0],
                        &FileSpec::new(0o600, Some("root:root")),
                    )
                    .await
                    .map_err(|e| {
                        SnapshotError::host(&host, "upload the snapshot", e.to_string())
                    })?;
                    let args: Vec<&str> = words.iter().map(String::as_str).collect();
                    script(&s, &host, "snapshot restore", RESTORE, &args).await
                },
            )
            .await,
        )?;
    let old_dirs: BTreeMap<String, Option<String>> = restored
        .into_iter()
        .map(|(h, out)| {
            let aside = out
                .lines()
                .find_map(|l| l.strip_prefix("aside "))
                .map(str::to_string);
            (h, aside)
        })
        .collect();

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
    )?;

    tracing::info!(elapsed = ?started.elapsed(), "restore: started");
    // 4. wait for one healthy cluster.
    let (cluster_id, statuses) = wait_healthy(inv, tls, settings, cancel).await?;

    tracing::info!(elapsed = ?started.elapsed(), "restore: healthy");
    // 5. the control plane back.
    let jobs: Vec<_> = involved
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                (
                    sessions[&h.name].clone(),
                    h.name.clone(),
                    aside_manifests.clone(),
                ),
            )
        })
        .collect();
    all_ok(
        fanout::run(
            jobs,
            settings.concurrency,
            cancel,
            |(s, host, aside): (Arc<Session>, String, String)| async move {
                script(
                    &s,
                    &host,
                    "put the manifests back",
                    PUT_BACK,
                    &[&aside, host_paths::MANIFESTS_DIR],
                )
                .await
            },
        )
        .await,
    )?;

    let members = etcd_hosts
        .iter()
        .map(|h| {
            let s = statuses.get(&h.name);
            RestoredMember {
                host: h.name.clone(),
                old_data_dir: old_dirs.get(&h.name).cloned().flatten(),
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
        seconds: started.elapsed().as_secs_f64(),
    })
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
