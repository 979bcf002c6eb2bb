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
//! Every step that touches a host is a host job of the engine's steps, with the events `up`'s
//! steps give: the check, the private scratch dir, setting etcd's data aside, the member's
//! restore, stopping units, moving aside, putting back and starting units
//! (`engine::lifecycle_step`), and `up`'s verified file write (the snapshot, etcd's config) and
//! its unit step from the component table.
//!
//! A restore that fails after data dirs were moved says where each host's old data went.

mod members;
mod old_data;
mod phases;
mod plan;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::SnapshotError;
use crate::components;
use crate::config::Role;
use crate::engine::cluster_lock::LockRequest;
use crate::engine::event::Observer;
use crate::engine::phase_runner;
use crate::etcd::ClientTls;
use crate::etcd::snapshot_file::SnapshotStatus;
use crate::fanout::{self, FanoutError};
use crate::inventory::{Host, Inventory};
use crate::render::Templates;
use crate::ssh::{HostTarget, Pool, Session};
use phases::{RestorePhase, RestoreRun};
pub use plan::{PlannedHost, PlannedMember, RestorePlan};
use steps::Restoring;

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

/// Every manifest a restore may hold aside (a subset per host, see [`manifests_to_move`]): the
/// static pod files of the components the table stops for a restore, and etcd's.
pub fn aside_manifests() -> Vec<&'static str> {
    components::TABLE
        .iter()
        .filter(|c| c.stopped_for_restore && c.static_pod)
        .flat_map(|c| c.files.iter().map(|f| f.path))
        .chain(etcd_pod().files.iter().map(|f| f.path))
        .collect()
}

/// The file names of [`aside_manifests`].
fn aside_names() -> Vec<&'static str> {
    aside_manifests()
        .into_iter()
        .filter_map(|m| m.rsplit_once('/').map(|(_, n)| n))
        .collect()
}

/// The static pods a restore holds aside on `host`: the control plane's, and etcd's.
fn pods_held_aside<'a>(
    inv: &'a Inventory,
    host: &'a Host,
) -> impl Iterator<Item = &'static components::Component> + 'a {
    components::on_host(inv, host).filter(|c| {
        c.static_pod && (c.stopped_for_restore || c.id == components::ComponentId::EtcdStaticPod)
    })
}

/// The control-plane manifests (and etcd's, as a static pod) that must not run meanwhile.
fn manifests_to_move(inv: &Inventory, host: &Host) -> Vec<&'static str> {
    pods_held_aside(inv, host)
        .flat_map(|c| c.files.iter().map(|f| f.path))
        .collect()
}

/// etcd as a static pod: its manifest is held aside like the control plane's.
fn etcd_pod() -> &'static components::Component {
    components::component(components::ComponentId::EtcdStaticPod)
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

/// A restore of every etcd member of `inv` from `file` (already inspected: `status`). `inv`
/// carries the new cluster token (`pki::cluster_token::new_token`), which a restore keeps in
/// the PKI dir once every host answered and passed the checks, just before the first change.
pub struct Restore<'a> {
    pub inv: &'a Inventory,
    pub tls: &'a ClientTls,
    pub pool: Arc<Pool>,
    pub targets: &'a BTreeMap<String, HostTarget>,
    pub templates: &'a Templates,
    pub file: &'a Path,
    pub status: &'a SnapshotStatus,
    pub settings: &'a RestoreSettings,
    pub cancel: &'a CancellationToken,
}

/// The hosts a restore concerns, and a session to each.
struct Reached {
    etcd_hosts: Vec<Host>,
    involved: Vec<Host>,
    sessions: BTreeMap<String, Arc<Session>>,
}

impl Restore<'_> {
    /// Restore, holding the cluster lock from before the first check to the end.
    pub async fn run(&self, observer: Arc<dyn Observer>) -> Result<RestoreReport, SnapshotError> {
        let started = Instant::now();
        let reached = self.reach().await?;
        // The lock `kinit up` takes, on every host the restore changes, before the first check:
        // another operator's run is refused by name and nothing changes.
        let lock_targets = self.targets_of(&reached.involved);
        let locked = self
            .settings
            .lock
            .take(&self.pool, &lock_targets, self.cancel, &*observer)
            .await?;
        let result = match self.restoring(&reached, started, observer.clone()) {
            Ok(restoring) => {
                let mut run = RestoreRun::new(&restoring, false);
                self.phases(&mut run, false, &*observer)
                    .await
                    .map(|()| run.report())
            }
            Err(e) => Err(e),
        };
        self.settings.lock.release(&locked).await;
        result
    }

    /// What [`Restore::run`] would do, through the same phases: the check runs (no change),
    /// the others say what they would do. No lock, no token kept, no change.
    pub async fn plan(&self, observer: Arc<dyn Observer>) -> Result<RestorePlan, SnapshotError> {
        let reached = self.reach().await?;
        let restoring = self.restoring(&reached, Instant::now(), observer.clone())?;
        let mut run = RestoreRun::new(&restoring, true);
        self.phases(&mut run, true, &*observer).await?;
        Ok(restoring.plan(&run.configs, &run.mounts))
    }

    async fn phases(
        &self,
        run: &mut RestoreRun<'_, '_>,
        dry_run: bool,
        observer: &dyn Observer,
    ) -> Result<(), SnapshotError> {
        phase_runner::run_phases(run, &RestorePhase::ALL, dry_run, observer, self.cancel).await
    }

    fn restoring<'r>(
        &'r self,
        reached: &'r Reached,
        started: Instant,
        observer: Arc<dyn Observer>,
    ) -> Result<Restoring<'r>, SnapshotError> {
        let token = self
            .inv
            .etcd_cluster_token
            .as_deref()
            .ok_or_else(|| SnapshotError::Render("no new cluster token".into()))?;
        Ok(Restoring {
            inv: self.inv,
            tls: self.tls,
            templates: self.templates,
            file: self.file,
            status: self.status,
            settings: self.settings,
            cancel: self.cancel,
            sessions: &reached.sessions,
            etcd_hosts: &reached.etcd_hosts,
            involved: &reached.involved,
            token,
            started,
            observer,
        })
    }

    fn targets_of(&self, hosts: &[Host]) -> BTreeMap<String, HostTarget> {
        hosts
            .iter()
            .filter_map(|h| Some((h.name.clone(), self.targets.get(&h.name)?.clone())))
            .collect()
    }

    /// Every etcd and control-plane host must answer before anything is touched: the member
    /// list is the inventory's.
    async fn reach(&self) -> Result<Reached, SnapshotError> {
        let etcd_hosts: Vec<Host> = self.inv.with_role(Role::Etcd).cloned().collect();
        if etcd_hosts.is_empty() {
            return Err(SnapshotError::NoEtcdHosts);
        }
        let involved: Vec<Host> = self
            .inv
            .hosts
            .iter()
            .filter(|h| h.has(Role::Etcd) || h.has(Role::ControlPlane))
            .cloned()
            .collect();
        let pool = self.pool.clone();
        let connected = fanout::run(
            self.targets_of(&involved).into_iter().collect(),
            self.settings.concurrency,
            self.cancel,
            move |t: HostTarget| {
                let pool = pool.clone();
                async move {
                    pool.get(&t)
                        .await
                        .map_err(|e| SnapshotError::host(&t.name, "connect", e.to_string()))
                }
            },
        )
        .await;
        Ok(Reached {
            etcd_hosts,
            involved,
            sessions: all_ok(connected)?.into_iter().collect(),
        })
    }
}
