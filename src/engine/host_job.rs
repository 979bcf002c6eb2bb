//! One host's steps in one phase, in order: compare files by content and write only what
//! differs (after noting what the change asks of which unit), install missing packages, bring
//! units to their state. It decides; [`HostOps`] carries out, so the logic is tested in memory.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use super::event::{Event, Observer};
use super::host_ops::{HostOpError, HostOps, UnitAction, UnitPlan, UnitState};
use super::lifecycle_step::HostAction;
use super::outcome::{FileWrite, StepOutcome};
use super::plan::{PendingNote, PutFile, Step};
use crate::components::{StartPolicy, UnitRow};

/// One host's failure in a phase.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{host}: {step}: {error}")]
pub struct HostFailure {
    pub host: String,
    pub step: String,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
}

impl HostFailure {
    pub fn new(host: &str, step: &str, e: &HostOpError) -> HostFailure {
        HostFailure {
            host: host.to_string(),
            step: step.to_string(),
            error: e.to_string(),
            stderr_tail: e.stderr_tail(),
        }
    }
}

pub struct HostJob {
    pub phase: String,
    pub host: String,
    pub steps: Vec<Step>,
    pub dry_run: bool,
    /// In a dry run, what earlier jobs' files would have noted on this host (a renewed
    /// certificate of the certificates phase restarts etcd in the etcd phase); this job's own
    /// are added.
    pub dry_notes: DryNotes,
    /// Leave the restarts and reloads of running units for later (they roll: see
    /// [`StepOutcome::Held`]); starts and enables happen now.
    pub hold_restarts: bool,
    pub observer: Arc<dyn Observer>,
}

/// The notes a dry run would have left on a host, carried from phase to phase.
pub type DryNotes = Arc<std::sync::Mutex<BTreeSet<PendingNote>>>;

/// What a unit step does given the host's state: restart or reload what a changed input asks,
/// start what must run, enable what must be enabled.
pub fn decide(row: &UnitRow, state: &UnitState) -> UnitPlan {
    let action = if state.restart_noted {
        if state.running {
            UnitAction::Restart
        } else {
            UnitAction::Start
        }
    } else if state.reload_noted {
        if state.running {
            UnitAction::Reload
        } else {
            UnitAction::Start
        }
    } else if row.start == StartPolicy::Always && !state.running {
        UnitAction::Start
    } else {
        UnitAction::None
    };
    UnitPlan {
        daemon_reload: state.daemon_reload_noted,
        enable: row.enable && !state.enabled,
        action,
        no_block: row.no_block,
    }
}

impl HostJob {
    /// Run every step; the outcomes in step order, or the first failure.
    pub async fn run<H: HostOps>(self, host: &H) -> Result<Vec<StepOutcome>, HostFailure> {
        // A dry run writes no notes: what its files would ask is remembered here instead.
        let mut would_note: BTreeSet<PendingNote> =
            self.dry_notes.lock().expect("not poisoned").clone();
        let mut outcomes = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let label = step.label();
            self.observer.event(&Event::StepStarted {
                phase: self.phase.clone(),
                host: self.host.clone(),
                step: label.clone(),
            });
            match self.step(host, step, &mut would_note).await {
                Ok(outcome) => {
                    self.observer.event(&Event::StepFinished {
                        phase: self.phase.clone(),
                        host: self.host.clone(),
                        step: label,
                        changed: outcome.changed(),
                        outcome: outcome.clone(),
                    });
                    outcomes.push(outcome);
                }
                Err(e) => {
                    let failure = HostFailure::new(&self.host, &label, &e);
                    self.observer.event(&Event::StepFailed {
                        phase: self.phase.clone(),
                        host: self.host.clone(),
                        step: label,
                        error: failure.error.clone(),
                    });
                    return Err(failure);
                }
            }
        }
        if self.dry_run {
            *self.dry_notes.lock().expect("not poisoned") = would_note;
        }
        Ok(outcomes)
    }

    async fn step<H: HostOps>(
        &self,
        host: &H,
        step: &Step,
        would_note: &mut BTreeSet<PendingNote>,
    ) -> Result<StepOutcome, HostOpError> {
        match step {
            Step::NotStarted { component, reason } => Ok(StepOutcome::NotStarted {
                component,
                reason: reason.clone(),
            }),
            Step::Packages(p) => Ok(StepOutcome::Packages {
                state: host.packages(p, !self.dry_run).await?,
            }),
            Step::Put { files, .. } => self.put(host, files, would_note).await,
            Step::Prune(prune) => Ok(StepOutcome::Pruned {
                dir: prune.dir.clone(),
                removed: host.prune(prune, !self.dry_run).await?,
            }),
            Step::Lifecycle(what) => {
                let actions = host.lifecycle_step(what, !self.dry_run).await?;
                if what.relied_on()
                    && let Some(failed) = actions.iter().find_map(|a| match a {
                        HostAction::Failed(what) => Some(what),
                        _ => None,
                    })
                {
                    return Err(HostOpError::Failed {
                        summary: format!("could not {failed}"),
                        stderr: String::new(),
                    });
                }
                Ok(StepOutcome::Lifecycle { actions })
            }
            Step::Unit(row) => {
                let mut state = host.unit_state(row.name).await?;
                if self.dry_run {
                    state.restart_noted |= would_note.contains(&PendingNote::Restart(row.name));
                    state.reload_noted |= would_note.contains(&PendingNote::Reload(row.name));
                    state.daemon_reload_noted |= would_note.contains(&PendingNote::DaemonReload);
                }
                let plan = decide(row, &state);
                if self.hold_restarts
                    && matches!(plan.action, UnitAction::Restart | UnitAction::Reload)
                {
                    return Ok(StepOutcome::Held {
                        unit: row.name,
                        action: plan.action,
                    });
                }
                // Notes are cleared by applying, even when nothing else is left to do.
                let notes_left = state.restart_noted || state.reload_noted;
                if !self.dry_run && (!plan.is_noop() || notes_left) {
                    host.apply_unit(row.name, &plan).await?;
                }
                Ok(StepOutcome::Unit {
                    unit: row.name,
                    action: plan.action,
                    enabled: plan.enable,
                    start: row.start,
                })
            }
        }
    }

    async fn put<H: HostOps>(
        &self,
        host: &H,
        files: &[PutFile],
        would_note: &mut BTreeSet<PendingNote>,
    ) -> Result<StepOutcome, HostOpError> {
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let states = host.stat_files(&paths).await?;
        HostOpError::check_answers(states.len(), files.len(), String::new())?;
        let changed: Vec<(&PutFile, bool)> = files
            .iter()
            .zip(&states)
            .filter(|(f, state)| {
                !state.as_ref().is_some_and(|s| {
                    s.sha256.eq_ignore_ascii_case(&f.sha256)
                        && s.mode == f.mode
                        && s.owner == f.owner
                })
            })
            .map(|(f, state)| (f, state.is_none()))
            .collect();
        let notes: BTreeSet<PendingNote> = changed
            .iter()
            .flat_map(|(f, _)| f.notes.iter().copied())
            .collect();
        if self.dry_run {
            would_note.extend(notes);
        } else {
            // Noted before writing: a run cut short after the write still restarts next time.
            host.note_pending(&notes).await?;
            for (f, _) in &changed {
                host.write_file(f).await?;
            }
        }
        Ok(StepOutcome::Files {
            unchanged: files.len() - changed.len(),
            written: changed
                .into_iter()
                .map(|(f, new)| FileWrite {
                    path: f.path.clone(),
                    new,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests;
