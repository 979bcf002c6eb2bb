//! What each step did on a host, as data: the reporter renders it, the summary counts it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::host_ops::{PackagesState, UnitAction};
use super::lifecycle_step::HostAction;
use crate::components::StartPolicy;

/// A file a put step wrote (or, dry, would write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileWrite {
    pub path: String,
    /// It did not exist before.
    pub new: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StepOutcome {
    Packages {
        state: PackagesState,
    },
    Files {
        written: Vec<FileWrite>,
        unchanged: usize,
    },
    Unit {
        unit: &'static str,
        action: UnitAction,
        /// Enabled by this step.
        enabled: bool,
        start: StartPolicy,
    },
    NotStarted {
        component: &'static str,
        reason: String,
    },
    /// A restart or reload left for later: the phase's component rolls, one host at a time
    /// once every host has its files (`src/engine/rolling.rs`); the note on the host stays
    /// until then.
    Held {
        unit: &'static str,
        action: UnitAction,
    },
    /// Entries of a per-item directory removed (or, dry, that would be).
    Pruned {
        dir: String,
        removed: Vec<String>,
    },
    /// What a reset's step took off the host (or, dry, would), failures among it.
    Lifecycle {
        actions: Vec<HostAction>,
    },
}

impl StepOutcome {
    /// What a lifecycle step did on the host (none for the other kinds).
    pub fn into_host_actions(self) -> Vec<HostAction> {
        match self {
            StepOutcome::Lifecycle { actions } => actions,
            _ => Vec::new(),
        }
    }

    /// Whether the step changed (or, dry, would change) the host.
    pub fn changed(&self) -> bool {
        match self {
            StepOutcome::Packages { state } => *state != PackagesState::Present,
            StepOutcome::Files { written, .. } => !written.is_empty(),
            StepOutcome::Unit {
                action, enabled, ..
            } => *action != UnitAction::None || *enabled,
            StepOutcome::NotStarted { .. } => false,
            StepOutcome::Held { .. } => true,
            StepOutcome::Pruned { removed, .. } => !removed.is_empty(),
            StepOutcome::Lifecycle { actions } => !actions.is_empty(),
        }
    }
}

/// What a run did, counted over all hosts.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub dry_run: bool,
    pub phases_run: Vec<String>,
    pub files_written: usize,
    pub files_unchanged: usize,
    /// Entries of per-item directories removed (a registry that left cluster.yaml).
    pub files_removed: usize,
    pub services_started: usize,
    pub services_restarted: usize,
    pub services_reloaded: usize,
    pub services_enabled: usize,
    pub packages_installed: usize,
    /// What was deliberately not done, and why (`node: kubelet on cp1, cp2: not started: ...`).
    pub not_done: Vec<String>,
    pub seconds: f64,
}

/// Adds up outcomes as hosts finish.
#[derive(Debug, Default)]
pub struct Tally {
    summary: RunSummary,
    /// (phase: component, reason) -> hosts
    not_done: BTreeMap<(String, String), Vec<String>>,
}

impl Tally {
    pub fn add(&mut self, phase: &str, host: &str, outcome: &StepOutcome) {
        let s = &mut self.summary;
        match outcome {
            StepOutcome::Packages { state } => {
                if let PackagesState::Installed(p) = state {
                    s.packages_installed += p.len();
                }
            }
            StepOutcome::Files { written, unchanged } => {
                s.files_written += written.len();
                s.files_unchanged += unchanged;
            }
            StepOutcome::Unit {
                action, enabled, ..
            } => {
                match action {
                    UnitAction::None => {}
                    UnitAction::Start => s.services_started += 1,
                    UnitAction::Restart => s.services_restarted += 1,
                    UnitAction::Reload => s.services_reloaded += 1,
                }
                s.services_enabled += usize::from(*enabled);
            }
            StepOutcome::Pruned { removed, .. } => s.files_removed += removed.len(),
            // The reset's own report lists them.
            StepOutcome::Lifecycle { .. } => {}
            // Counted when carried out.
            StepOutcome::Held { .. } => {}
            StepOutcome::NotStarted { component, reason } => {
                let hosts = self
                    .not_done
                    .entry((format!("{phase}: {component}"), reason.clone()))
                    .or_default();
                hosts.push(host.to_string());
                hosts.sort();
            }
        }
    }

    pub fn finish(mut self, dry_run: bool, phases_run: Vec<String>, seconds: f64) -> RunSummary {
        self.summary.not_done = self
            .not_done
            .iter()
            .map(|((what, reason), hosts)| format!("{what} on {}: {reason}", hosts.join(", ")))
            .collect();
        RunSummary {
            dry_run,
            phases_run,
            seconds,
            ..self.summary
        }
    }
}
