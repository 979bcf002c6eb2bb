//! A restore's steps (see the module's doc) as phases of the engine's one phase loop, so that
//! a restore says what it does with the events `kinit up` uses (`-o json` streams them), and a
//! dry run walks the same phases: the check runs (it changes nothing), the others say what they
//! would do on each host.

use std::collections::BTreeMap;

use super::old_data::{OldData, half_way};
use super::steps::{EtcdConfig, Restoring};
use super::{RestoreReport, manifests_to_move};
use crate::components;
use crate::config::Role;
use crate::engine::phase_runner::{DryRun, Interrupted, RunPhase};
use crate::etcd;
use crate::host_paths;
use crate::inventory::EtcdMember;
use crate::lifecycle::reset::aside_path;
use crate::lifecycle::snapshot::SnapshotError;

/// A restore's phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RestorePhase {
    Check,
    Stop,
    Restore,
    Start,
    Healthy,
    PutBack,
    StartUnits,
}

impl RestorePhase {
    pub(super) const ALL: [RestorePhase; 7] = [
        RestorePhase::Check,
        RestorePhase::Stop,
        RestorePhase::Restore,
        RestorePhase::Start,
        RestorePhase::Healthy,
        RestorePhase::PutBack,
        RestorePhase::StartUnits,
    ];
}

/// What a restore's phases share: the restore, and what each phase found or did for the next.
pub(super) struct RestoreRun<'r, 'a> {
    pub restoring: &'r Restoring<'a>,
    pub dry_run: bool,
    /// etcd's config with the new token, per etcd host (the check renders them).
    pub configs: BTreeMap<String, EtcdConfig>,
    /// Whether each etcd host's data dir is a mount point.
    pub mounts: BTreeMap<String, bool>,
    /// Where each etcd host's old data went, for an error once the stop began.
    pub old: BTreeMap<String, OldData>,
    pub manifests_moved: Vec<String>,
    pub healthy: Option<(u64, BTreeMap<String, etcd::MemberStatus>)>,
    pub kept_aside: Vec<String>,
    pub units_restarted: Vec<String>,
}

impl<'r, 'a> RestoreRun<'r, 'a> {
    pub(super) fn new(restoring: &'r Restoring<'a>, dry_run: bool) -> Self {
        RestoreRun {
            restoring,
            dry_run,
            configs: BTreeMap::new(),
            mounts: BTreeMap::new(),
            old: restoring
                .etcd_hosts
                .iter()
                .map(|h| (h.name.clone(), OldData::Untouched))
                .collect(),
            manifests_moved: Vec::new(),
            healthy: None,
            kept_aside: Vec::new(),
            units_restarted: Vec::new(),
        }
    }

    /// The report once every phase ran.
    pub(super) fn report(self) -> RestoreReport {
        let r = self.restoring;
        let (cluster_id, statuses) = self.healthy.unwrap_or_default();
        RestoreReport {
            snapshot: r.file.to_path_buf(),
            cluster_id: format!("{cluster_id:x}"),
            members: r.members(&statuses, &self.old),
            manifests_moved: self.manifests_moved,
            units_restarted: self.units_restarted,
            kept_aside: self.kept_aside,
            seconds: r.started.elapsed().as_secs_f64(),
        }
    }

    fn half_way(&self, e: SnapshotError) -> SnapshotError {
        half_way(e, &self.restoring.inv.etcd.data_dir, &self.old)
    }

    fn names(hosts: &[crate::inventory::Host]) -> Vec<String> {
        hosts.iter().map(|h| h.name.clone()).collect()
    }
}

impl From<Interrupted> for SnapshotError {
    fn from(_: Interrupted) -> Self {
        SnapshotError::Interrupted
    }
}

impl RunPhase<RestoreRun<'_, '_>> for RestorePhase {
    type Error = SnapshotError;

    fn name(&self) -> &str {
        match self {
            RestorePhase::Check => "check",
            RestorePhase::Stop => "stop",
            RestorePhase::Restore => "restore",
            RestorePhase::Start => "start",
            RestorePhase::Healthy => "healthy",
            RestorePhase::PutBack => "put-back",
            RestorePhase::StartUnits => "start-units",
        }
    }

    fn title(&self) -> &str {
        match self {
            RestorePhase::Check => {
                "Check every etcd host can be restored (restore tool, data dir), then keep the \
                 new cluster token"
            }
            RestorePhase::Stop => "Stop the control plane, then etcd",
            RestorePhase::Restore => {
                "Restore every member from the snapshot, its old data dir moved aside"
            }
            RestorePhase::Start => "Start every etcd member with the new cluster token",
            RestorePhase::Healthy => "Every member healthy in one new cluster under one leader",
            RestorePhase::PutBack => "Put the control plane's static pod manifests back",
            RestorePhase::StartUnits => "Start the control plane's units again",
        }
    }

    fn hosts(&self, run: &RestoreRun<'_, '_>) -> Vec<String> {
        let r = run.restoring;
        match self {
            RestorePhase::Check | RestorePhase::Restore | RestorePhase::Start => {
                RestoreRun::names(r.etcd_hosts)
            }
            RestorePhase::Stop => RestoreRun::names(r.involved),
            RestorePhase::Healthy => Vec::new(),
            // Every host: a restore cut short after its stop left manifests there too.
            RestorePhase::PutBack => RestoreRun::names(r.involved),
            RestorePhase::StartUnits => r
                .involved
                .iter()
                .filter(|h| !components::stopped_for_restore(r.inv, h).0.is_empty())
                .map(|h| h.name.clone())
                .collect(),
        }
    }

    fn skipped(&self, run: &RestoreRun<'_, '_>) -> Option<String> {
        (*self == RestorePhase::StartUnits && self.hosts(run).is_empty())
            .then(|| "no host runs a control-plane unit the restore stops".into())
    }

    fn dry_run(&self, run: &RestoreRun<'_, '_>) -> DryRun {
        let r = run.restoring;
        let inv = r.inv;
        let data_dir = &inv.etcd.data_dir;
        let lines: Vec<String> = match self {
            RestorePhase::Check => return DryRun::Runs,
            RestorePhase::Stop => r
                .involved
                .iter()
                .map(|h| {
                    let (units, _) = components::stopped_for_restore(inv, h);
                    let mut what = Vec::new();
                    if !units.is_empty() {
                        what.push(format!("stop {}", units.join(", ")));
                    }
                    let aside = manifests_to_move(inv, h);
                    if !aside.is_empty() {
                        what.push(format!(
                            "move {} to {}",
                            aside.join(", "),
                            host_paths::MANIFESTS_ASIDE_DIR
                        ));
                    }
                    if h.has(Role::Etcd) {
                        what.push("stop etcd".into());
                    }
                    format!("{}: would {}", h.name, what.join("; "))
                })
                .collect(),
            RestorePhase::Restore => {
                let aside = aside_path(data_dir, &r.settings.stamp, "restore");
                r.etcd_hosts
                    .iter()
                    .map(|h| {
                        let mount = if run.mounts.get(&h.name).copied().unwrap_or(false) {
                            " (a mount point: its contents)"
                        } else {
                            ""
                        };
                        let peer = EtcdMember {
                            name: h.name.clone(),
                            address: h.address,
                        }
                        .peer_url();
                        format!(
                            "{}: would move {data_dir}{mount} to {aside}, and restore member {} \
                             at {peer}",
                            h.name, h.name
                        )
                    })
                    .collect()
            }
            RestorePhase::Start => run
                .configs
                .iter()
                .map(|(host, (path, _, _))| {
                    format!("{host}: would write {path} with the new cluster token, start etcd")
                })
                .collect(),
            RestorePhase::Healthy => vec![format!(
                "would wait up to {} s for {} member(s) under one leader",
                r.settings.wait.as_secs(),
                r.etcd_hosts.len()
            )],
            RestorePhase::PutBack => self
                .hosts(run)
                .into_iter()
                .map(|h| {
                    format!(
                        "{h}: would move back what {} holds of kinit's",
                        host_paths::MANIFESTS_ASIDE_DIR
                    )
                })
                .collect(),
            RestorePhase::StartUnits => r
                .involved
                .iter()
                .filter_map(|h| {
                    let (units, _) = components::stopped_for_restore(inv, h);
                    (!units.is_empty())
                        .then(|| format!("{}: would start {}", h.name, units.join(", ")))
                })
                .collect(),
        };
        DryRun::Says(lines)
    }

    async fn run(&self, run: &mut RestoreRun<'_, '_>) -> Result<(), SnapshotError> {
        let r = run.restoring;
        match self {
            RestorePhase::Check => {
                (run.configs, run.mounts) = r.checked().await?;
                if !run.dry_run {
                    // The restore starts now: the new token is the cluster's from here on.
                    crate::pki::cluster_token::store(&r.inv.pki_dir, r.token)?;
                }
            }
            RestorePhase::Stop => {
                run.manifests_moved = r.stop().await.map_err(|e| run.half_way(e))?;
            }
            RestorePhase::Restore => {
                let mut old = std::mem::take(&mut run.old);
                let restored = r.restore_members(&mut old).await;
                run.old = old;
                restored.map_err(|e| run.half_way(e))?;
            }
            RestorePhase::Start => {
                r.start_etcd(&run.configs)
                    .await
                    .map_err(|e| run.half_way(e))?;
            }
            RestorePhase::Healthy => {
                let healthy = super::members::wait_healthy(r.inv, r.tls, r.settings, r.cancel)
                    .await
                    .map_err(|e| run.half_way(e))?;
                run.healthy = Some(healthy);
            }
            RestorePhase::PutBack => {
                run.kept_aside = r.put_back().await.map_err(|e| run.half_way(e))?;
            }
            RestorePhase::StartUnits => {
                run.units_restarted = r.start_units().await.map_err(|e| run.half_way(e))?;
            }
        }
        Ok(())
    }
}
