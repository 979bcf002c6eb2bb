//! One host's reset as steps of the engine's host job: what its plan takes off, in order.

use super::*;
use crate::engine::lifecycle_step::LifecycleStep;
use crate::engine::plan::Step;

/// The steps that take `plan` off its host: manifests first (the kubelet stops their pods, and
/// the reset waits for their ports), then units, pods and what they made, etcd's data dir,
/// the other files, kinit's state, the directories left empty, and systemd's reload.
pub(super) fn take_off_steps(plan: &HostReset, settings: &ResetSettings) -> Vec<Step> {
    let mut steps = Vec::new();
    if !plan.manifests.is_empty() {
        steps.push(LifecycleStep::Manifests(plan.manifests.clone()));
    }
    if !plan.pod_ports.is_empty() && !settings.dry_run {
        steps.push(LifecycleStep::PodPortsFree {
            runner: crate::components::static_pod_runner(),
            ports: plan.pod_ports.clone(),
        });
    }
    if !plan.units.is_empty() {
        steps.push(LifecycleStep::Units(plan.units.clone()));
    }
    // Pods' processes go even where the table names no runtime state: a kubelet put there by
    // hand leaves its shims running.
    steps.push(LifecycleStep::RuntimeState(plan.runtime_state.clone()));
    if let Some(dir) = &plan.data_dir {
        steps.push(LifecycleStep::EtcdData {
            dir: dir.clone(),
            aside: aside_path(dir, &settings.stamp, "reset"),
            entry: crate::host_paths::ETCD_DATA_ENTRY.to_string(),
            purge: settings.purge,
        });
    }
    if !plan.files.is_empty() {
        steps.push(LifecycleStep::Files(plan.files.clone()));
    }
    steps.extend(plan.state_dirs.iter().map(|d| LifecycleStep::StateDir {
        path: d.path.to_string(),
        kinit_names: d.kinit_names.clone(),
    }));
    if !plan.dirs.is_empty() {
        steps.push(LifecycleStep::EmptyDirs(plan.dirs.clone()));
    }
    if !settings.dry_run {
        steps.push(LifecycleStep::DaemonReload);
    }
    steps.into_iter().map(Step::Lifecycle).collect()
}

/// `/var/lib/etcd` -> `/var/lib/etcd.reset-20261127T101500Z`: next to it, so on the same
/// filesystem (a rename, not a copy).
pub fn aside_path(data_dir: &str, stamp: &str, why: &str) -> String {
    format!("{}.{why}-{stamp}", data_dir.trim_end_matches('/'))
}
