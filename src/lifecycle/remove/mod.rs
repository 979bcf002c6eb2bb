//! `kinit remove HOST...`: take control-plane and etcd hosts out of a running cluster. Their
//! etcd members leave first (the leader hands over to a healthy member that stays; refused when
//! the rest could not keep a majority), then the hosts are reset (unless gone for good:
//! `--unreachable` never contacts them), then the control planes that stay get haproxy
//! backends, keepalived peers and (external etcd) the apiserver's `--etcd-servers` rendered
//! without the removed hosts, with the reloads the component table asks, one host at a time.
//! All of it under the cluster lock on every host it contacts, the lock `kinit up` takes: a
//! removal never runs beside another operator's `up`, `remove` or restore.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::remove_plan::{MemberRemoval, RemovalRefused};
use super::reset::{self, ResetReport, ResetSettings};
use super::reset_plan;
use crate::engine::cluster_lock::{LockFailure, LockRequest};
use crate::engine::etcd_members::{self, MembershipError};
use crate::engine::event::{Nested, Observer};
use crate::engine::phase_runner;
use crate::engine::verify;
use crate::etcd::ClientTls;
use crate::inventory::{Host, Inventory};
use crate::planning::membership::LiveMember;
use crate::render::{RenderError, Templates};
use crate::ssh::{HostTarget, Pool};

mod phases;
mod scope;
mod survey;
mod update;

use phases::{RemovePhase, RemoveRun};
pub use scope::{chosen, files_to_update, hosts_to_update, without};
pub use survey::plan;
use survey::recheck;

/// How a removal runs.
#[derive(Debug, Clone)]
pub struct RemoveSettings {
    pub dry_run: bool,
    /// Go on when the quorum guard refuses (with a warning).
    pub force: bool,
    /// The hosts are gone for good: never contacted, not reset.
    pub unreachable: bool,
    pub concurrency: usize,
    /// UTC `YYYYMMDDTHHMMSSZ`: names the removed hosts' moved-aside etcd data dir.
    pub stamp: String,
    pub etcd_timeout: Duration,
    /// Who takes the cluster lock (not taken for a dry run).
    pub lock: LockRequest,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error(
        "{host} is not a host of the cluster's config; `kinit remove` takes hosts listed there \
         (a live etcd member or haproxy backend whose host was deleted from cluster.yaml: put \
         the host back, run `kinit remove {host}` (with `--unreachable` if it is gone), then \
         delete it)"
    )]
    UnknownHost { host: String },
    #[error(
        "removing {hosts} would leave no control-plane host; use `kinit reset` to take the whole \
         cluster down"
    )]
    EveryControlPlane { hosts: String },
    #[error(
        "cannot reach {host} over SSH ({error}); if it is gone for good, remove it without \
         contacting it: `kinit remove {host} --unreachable`"
    )]
    Unreachable { host: String, error: String },
    #[error(
        "the etcd members of {hosts} must leave etcd, but there is no etcd client certificate in \
         the PKI dir to ask etcd with"
    )]
    NoClient { hosts: String },
    #[error(
        "etcd answers on none of its members ({endpoints}), so the members of {hosts} cannot be \
         removed; bring etcd back first"
    )]
    NoMemberAnswers { endpoints: String, hosts: String },
    #[error(
        "the etcd members have changed since the plan was shown: it removed {shown}, now it \
         would remove {now}; nothing was changed, run `kinit remove` again to see the new plan"
    )]
    Changed { shown: String, now: String },
    #[error(transparent)]
    Refused(#[from] RemovalRefused),
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error(transparent)]
    Reset(#[from] reset::ResetError),
    #[error("rendering the files of {host} without the removed hosts: {source}")]
    Render {
        host: String,
        #[source]
        source: RenderError,
    },
    /// Another run holds the cluster lock (named), or a host did not answer while it was taken.
    #[error(transparent)]
    Locked(LockFailure),
    #[error("interrupted before any host was changed")]
    Interrupted,
    #[error(
        "interrupted while {step}; run `kinit remove` again to finish (each step is re-run \
         safely)"
    )]
    InterruptedDuring { step: &'static str },
}

impl From<LockFailure> for RemoveError {
    fn from(e: LockFailure) -> Self {
        match e {
            LockFailure::Interrupted => RemoveError::Interrupted,
            e => RemoveError::Locked(e),
        }
    }
}

/// What `kinit remove` will do (shown before the confirmation, and by `--dry-run`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovePlan {
    pub hosts: Vec<String>,
    pub unreachable: bool,
    /// The etcd members that leave (none: no removed host runs a live member).
    pub etcd: Option<MemberRemoval>,
    /// The healthy member's client URL the removals go through.
    #[serde(skip)]
    via_url: String,
    #[serde(skip)]
    client_urls: BTreeMap<u64, Vec<String>>,
    /// Hosts reset afterwards (not those gone for good).
    pub reset: Vec<String>,
    /// Hosts that stay whose files name the removed ones (control planes, then the other
    /// nodes), updated one at a time in this order.
    pub update: Vec<String>,
    /// The files rendered anew there (only those that differ are written).
    pub files: Vec<&'static str>,
}

/// One control plane that stays, after its update.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostUpdate {
    pub host: String,
    pub written: Vec<String>,
    /// `reload haproxy`, ...: what the changed files asked of the units.
    pub units: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReport {
    pub dry_run: bool,
    pub plan: RemovePlan,
    /// Per removed control plane, how its apiserver left the load balancer before anything
    /// stopped: drained from every haproxy, or why not (haproxy's health check then takes it
    /// out once it stops answering).
    pub drained: Vec<String>,
    /// The member IDs removed (hex).
    pub removed_members: Vec<String>,
    pub reset: Option<ResetReport>,
    /// The Nodes of hosts gone for good (`--unreachable`), deleted without a drain.
    pub gone_nodes: Vec<reset::NodeLeaving>,
    pub updates: Vec<HostUpdate>,
    /// What the operator deletes from cluster.yaml now.
    pub delete_from_config: Vec<String>,
}

impl RemoveReport {
    pub fn ok(&self) -> bool {
        self.reset.as_ref().is_none_or(ResetReport::ok)
            && self.updates.iter().all(|u| u.error.is_none())
    }
}

/// What every step of a removal works with: the cluster, how to reach its hosts, how to render
/// their files again, the operator's settings and the run's cancellation.
pub struct Removal<'a> {
    pub inv: &'a Inventory,
    pub tls: Option<&'a ClientTls>,
    pub targets: &'a BTreeMap<String, HostTarget>,
    pub pool: Arc<Pool>,
    pub templates: &'a Templates,
    pub settings: &'a RemoveSettings,
    pub cancel: &'a CancellationToken,
    /// Hears the removal's phases, and the steps of the jobs they run on its hosts.
    pub observer: Arc<dyn Observer>,
}

/// Carry out `plan` (shown for `hosts`) under the cluster lock on every host of `targets`:
/// the lock taken (not for a dry run; a holder is refused by name and nothing changes), the
/// members read again (the confirmation may have come long after the plan), then members
/// removed, hosts reset, the control planes that stay updated; the lock released however it
/// ended.
pub async fn run(
    r: &Removal<'_>,
    hosts: &[&Host],
    plan: RemovePlan,
) -> Result<RemoveReport, RemoveError> {
    let observer = &*r.observer;
    if r.cancel.is_cancelled() {
        return Err(RemoveError::Interrupted);
    }
    let settings = r.settings;
    if settings.dry_run {
        return carry_out(r, plan, observer).await;
    }
    let locked = settings
        .lock
        .take(&r.pool, r.targets, r.cancel, observer)
        .await?;
    let rechecked = recheck(r.inv, r.tls, hosts, settings, plan);
    let interrupted = Err(RemoveError::Interrupted);
    let result = match verify::or_cancelled(r.cancel, interrupted, rechecked).await {
        Ok(plan) => carry_out(r, plan, observer).await,
        Err(e) => Err(e),
    };
    settings.lock.release(&locked).await;
    result
}

/// Carry out `plan` through the engine's phase loop: Nodes and apiservers drained, members
/// removed, hosts reset, the control planes that stay updated.
async fn carry_out(
    r: &Removal<'_>,
    plan: RemovePlan,
    observer: &dyn Observer,
) -> Result<RemoveReport, RemoveError> {
    let mut run = RemoveRun::new(r, plan, observer);
    let dry_run = r.settings.dry_run;
    phase_runner::run_phases(&mut run, &RemovePhase::ALL, dry_run, observer, r.cancel).await?;
    Ok(run.report())
}

/// The plan's etcd members removed (none for a dry run), through the member it named; their
/// IDs.
async fn remove_members(r: &Removal<'_>, plan: &RemovePlan) -> Result<Vec<String>, RemoveError> {
    let (settings, cancel) = (r.settings, r.cancel);
    let (Some(members), Some(tls), false) = (&plan.etcd, r.tls, settings.dry_run) else {
        return Ok(Vec::new());
    };
    let live: Vec<LiveMember> = members
        .members
        .iter()
        .map(|m| LiveMember {
            id: m.id.clone(),
            raw_id: m.raw_id,
            client_urls: plan.client_urls.get(&m.raw_id).cloned().unwrap_or_default(),
            name: m.name.clone(),
            host: m.host.clone(),
            healthy: m.healthy,
            learner: m.learner,
        })
        .collect();
    let interrupted = Err(RemoveError::InterruptedDuring {
        step: "removing etcd members",
    });
    let removing = async {
        etcd_members::remove(tls, &live, &plan.via_url, settings.etcd_timeout)
            .await
            .map_err(RemoveError::from)
    };
    verify::or_cancelled(cancel, interrupted, removing).await?;
    Ok(live.into_iter().map(|m| m.id).collect())
}

/// The removed hosts that are reachable reset, under the lock this removal holds already.
async fn reset_removed(
    r: &Removal<'_>,
    rest: &Inventory,
    plan: &RemovePlan,
) -> Result<Option<ResetReport>, RemoveError> {
    let (inv, settings) = (r.inv, r.settings);
    if plan.reset.is_empty() {
        return Ok(None);
    }
    let plans = plan
        .reset
        .iter()
        .filter_map(|h| inv.host(h))
        .map(|h| reset_plan::for_host(inv, h, &inv.pki_dir))
        .collect();
    let reset_settings = ResetSettings {
        dry_run: settings.dry_run,
        purge: false,
        concurrency: settings.concurrency,
        stamp: settings.stamp.clone(),
        etcd_timeout: settings.etcd_timeout,
        locked_by_caller: true,
        break_lock: false,
    };
    // Against the inventory without the removed hosts: their members are gone already, so the
    // reset asks nothing more of etcd.
    let request = reset::ResetRequest {
        inv: rest,
        tls: r.tls,
        plans,
        targets: r.targets,
        pool: r.pool.clone(),
        settings: &reset_settings,
        cancel: r.cancel,
    };
    // The reset's steps are shown as the removal's `reset` phase's.
    let observer = Nested::new(RemovePhase::Reset.id(), r.observer.clone());
    let report = reset::run(request, Arc::new(observer)).await?;
    Ok(Some(report))
}

#[cfg(test)]
mod tests;
