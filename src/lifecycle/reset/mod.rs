//! `kinit reset` on hosts: etcd members of a partial reset removed first (keeping quorum), then
//! on every selected host at once, as steps of the engine's host job (`engine::lifecycle_step`):
//! static pod manifests removed, units stopped and disabled, etcd's data dir moved aside (or
//! purged), files, binaries and kinit's state removed, kinit's empty directories removed,
//! systemd reloaded. A dry run asks the same steps what they would do. The cluster lock is held on every selected host that answers from
//! before etcd is asked anything to the end (by the reset itself, or by the command it is part
//! of: `kinit remove` holds it on every host it contacts).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::reset_plan::HostReset;
use crate::engine::cluster_lock::{LockFailure, LockRequest};
use crate::engine::etcd_members::MembershipError;
use crate::engine::event::Observer;
use crate::engine::host_job::HostJob;
use crate::engine::host_ops::SshHost;
use crate::engine::lock::LockOwner;
use crate::engine::outcome::StepOutcome;
use crate::engine::phase_runner;
use crate::etcd::ClientTls;
use crate::fanout::{self, FanoutError};
use crate::planning::membership::ResetMembership;
use crate::ssh::{HostTarget, Pool};

mod nodes;
mod phases;
mod steps;

pub use crate::engine::lifecycle_step::HostAction;
pub use nodes::NodeLeaving;
pub(crate) use nodes::{delete_gone_nodes, delete_nodes, drain_nodes, uncordon_nodes};
use phases::{ResetPhase, ResetRun};
pub use steps::aside_path;
use steps::take_off_steps;

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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostResetOutcome {
    pub host: String,
    pub actions: Vec<HostAction>,
    pub kept: Vec<String>,
    pub error: Option<String>,
}

impl HostResetOutcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self
                .actions
                .iter()
                .any(|a| matches!(a, HostAction::Failed(_)))
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

/// What a reset works on: the hosts of `plans` (their targets in `targets`).
pub struct ResetRequest<'a> {
    pub inv: &'a crate::inventory::Inventory,
    /// The operator's etcd client: without it a reset of part of etcd refuses.
    pub tls: Option<&'a ClientTls>,
    pub plans: Vec<HostReset>,
    pub targets: &'a BTreeMap<String, HostTarget>,
    pub pool: Arc<Pool>,
    pub settings: &'a ResetSettings,
    pub cancel: &'a CancellationToken,
}

/// Reset the hosts of the request. Members of a partial reset are removed first; a refusal
/// there changes nothing anywhere.
pub async fn run(
    request: ResetRequest<'_>,
    observer: Arc<dyn Observer>,
) -> Result<ResetReport, ResetError> {
    let (pool, settings, cancel) = (request.pool.clone(), request.settings, request.cancel);
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
        let mine: BTreeMap<String, HostTarget> = request
            .plans
            .iter()
            .filter_map(|p| Some((p.host.clone(), request.targets.get(&p.host)?.clone())))
            .collect();
        // A host that cannot be reached cannot be changed by anyone: it is reported, not reset
        // (a second reset does it once it is back), and the others go ahead.
        let (reachable, unreachable) = connect_all(&pool, mine, settings.concurrency, cancel).await;
        (
            lock.take(&pool, &reachable, cancel, &*observer).await?,
            unreachable,
        )
    };
    let mut run = ResetRun {
        request,
        observer: observer.clone(),
        unreachable,
        membership: None,
        api: None,
        nodes: Vec::new(),
        resetting: false,
        hosts: Vec::new(),
    };
    let result = phase_runner::run_phases(
        &mut run,
        &ResetPhase::ALL,
        settings.dry_run,
        &*observer,
        cancel,
    )
    .await;
    lock.release(&locked).await;
    result.map(|()| run.report())
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

/// [`reset_host`] on every plan whose host has a target, `settings.concurrency` at a time.
async fn reset_hosts(
    plans: impl IntoIterator<Item = HostReset>,
    targets: &BTreeMap<String, HostTarget>,
    pool: &Arc<Pool>,
    settings: &ResetSettings,
    cancel: &CancellationToken,
    observer: Arc<dyn Observer>,
) -> Vec<(String, Result<Vec<HostAction>, FanoutError<HostFailure>>)> {
    let items = with_targets(plans, targets);
    let (pool, shared) = (pool.clone(), settings.clone());
    fanout::run(
        items,
        settings.concurrency,
        cancel,
        move |(plan, target)| {
            let (pool, settings, observer) = (pool.clone(), shared.clone(), observer.clone());
            async move { reset_host(&pool, &target, &plan, &settings, observer).await }
        },
    )
    .await
}

fn with_targets(
    plans: impl IntoIterator<Item = HostReset>,
    targets: &BTreeMap<String, HostTarget>,
) -> Vec<(String, (HostReset, HostTarget))> {
    plans
        .into_iter()
        .filter_map(|p| {
            let target = targets.get(&p.host)?.clone();
            Some((p.host.clone(), (p, target)))
        })
        .collect()
}

/// The host's data dir checked, then its steps run as one host job: what they took off.
async fn reset_host(
    pool: &Pool,
    target: &HostTarget,
    plan: &HostReset,
    settings: &ResetSettings,
    observer: Arc<dyn Observer>,
) -> Result<Vec<HostAction>, HostFailure> {
    let session = pool
        .get(target)
        .await
        .map_err(|e| HostFailure::Other(e.to_string()))?;
    refuse_foreign_data(&session, plan).await?;
    let job = HostJob {
        phase: "hosts".into(),
        host: plan.host.clone(),
        steps: take_off_steps(plan, settings),
        dry_run: settings.dry_run,
        dry_notes: Default::default(),
        hold_restarts: false,
        observer,
    };
    let outcomes = job
        .run(&SshHost(session))
        .await
        .map_err(|f| HostFailure::Other(format!("{}: {}", f.step, f.error)))?;
    Ok(outcomes
        .into_iter()
        .flat_map(StepOutcome::into_host_actions)
        .collect())
}

/// A data dir holding more than etcd's member stops the host's reset before anything on it.
async fn refuse_foreign_data(
    session: &crate::ssh::Session,
    plan: &HostReset,
) -> Result<(), HostFailure> {
    let Some(dir) = &plan.data_dir else {
        return Ok(());
    };
    let entry = crate::host_paths::ETCD_DATA_ENTRY;
    let found = crate::engine::host_ops::foreign_in_data_dir(session, dir, entry)
        .await
        .map_err(|e| HostFailure::Other(e.to_string()))?;
    if found.is_empty() {
        return Ok(());
    }
    Err(HostFailure::Foreign(ForeignData {
        dir: dir.clone(),
        found,
    }))
}

/// Before members are removed: every selected host that answers is asked whether its data dir
/// holds anything but etcd's member. The first that does stops the reset with nothing changed
/// anywhere; a host that does not answer is left to the reset itself.
async fn check_data_dirs(
    plans: &[HostReset],
    targets: &BTreeMap<String, HostTarget>,
    pool: &Arc<Pool>,
    settings: &ResetSettings,
    cancel: &CancellationToken,
) -> Result<(), ResetError> {
    let with_data = plans.iter().filter(|p| p.data_dir.is_some()).cloned();
    let items = with_targets(with_data, targets);
    let pool = pool.clone();
    let results = fanout::run(
        items,
        settings.concurrency,
        cancel,
        move |(plan, target)| {
            let pool = pool.clone();
            async move {
                let session = pool
                    .get(&target)
                    .await
                    .map_err(|e| HostFailure::Other(e.to_string()))?;
                refuse_foreign_data(&session, &plan).await
            }
        },
    )
    .await;
    for (host, r) in results {
        match r {
            Err(FanoutError::Failed(HostFailure::Foreign(data))) => {
                return Err(ResetError::ForeignData { host, data });
            }
            Err(FanoutError::Cancelled) => return Err(ResetError::Interrupted),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
