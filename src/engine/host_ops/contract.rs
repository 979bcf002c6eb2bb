//! The contract between the per-host job and a host: the operations [`HostOps`] a job asks
//! for, the answers (file, package and unit states) and the one error every operation returns.
//! `SshHost` carries it out over SSH; the job's tests against an in-memory host.

use std::collections::BTreeSet;
use std::future::Future;

use crate::engine::lifecycle_step::{HostAction, LifecycleStep};
use crate::engine::plan::{PendingNote, PruneDir, PutFile};
use crate::ssh::SshError;

#[derive(Debug, thiserror::Error)]
pub enum HostOpError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{summary}")]
    Failed { summary: String, stderr: String },
}

impl HostOpError {
    /// One answer per file asked about, or the host's reply is not to be trusted.
    pub fn check_answers(answers: usize, asked: usize, stderr: String) -> Result<(), HostOpError> {
        if answers == asked {
            return Ok(());
        }
        Err(HostOpError::Failed {
            summary: format!(
                "looking at the files on the host: {answers} answers for {asked} files"
            ),
            stderr,
        })
    }

    /// The last lines of the remote stderr, for the failure report.
    pub fn stderr_tail(&self) -> Option<String> {
        match self {
            HostOpError::Failed { stderr, .. } if !stderr.trim().is_empty() => {
                let lines: Vec<&str> = stderr.trim_end().lines().collect();
                Some(lines[lines.len().saturating_sub(12)..].join("\n"))
            }
            _ => None,
        }
    }
}

/// What a file on the host is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub sha256: String,
    pub mode: u32,
    pub owner: String,
}

/// Whether packages were there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "packages")]
pub enum PackagesState {
    Present,
    /// Missing, and left so (dry run).
    Missing(Vec<String>),
    Installed(Vec<String>),
}

/// A unit as the host sees it, with the notes left for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnitState {
    /// active or activating.
    pub running: bool,
    pub enabled: bool,
    pub restart_noted: bool,
    pub reload_noted: bool,
    pub daemon_reload_noted: bool,
}

/// What to do to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitAction {
    None,
    Start,
    Restart,
    Reload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitPlan {
    pub daemon_reload: bool,
    pub enable: bool,
    pub action: UnitAction,
    pub no_block: bool,
}

impl UnitPlan {
    pub fn is_noop(&self) -> bool {
        !self.daemon_reload && !self.enable && self.action == UnitAction::None
    }
}

/// The operations the per-host job needs. Futures are `Send`: jobs run on tokio's workers.
pub trait HostOps: Send + Sync {
    /// Every path's state at once (`None`: no such file).
    fn stat_files(
        &self,
        paths: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<FileState>>, HostOpError>> + Send;
    /// Leave notes for units that must restart or reload (before the files that cause it).
    fn note_pending(
        &self,
        notes: &BTreeSet<PendingNote>,
    ) -> impl Future<Output = Result<(), HostOpError>> + Send;
    /// Write a file atomically with its mode and owner, checked against its sha256.
    fn write_file(&self, file: &PutFile) -> impl Future<Output = Result<(), HostOpError>> + Send;
    /// Look for packages; install the missing ones when `install`.
    fn packages(
        &self,
        packages: &[&str],
        install: bool,
    ) -> impl Future<Output = Result<PackagesState, HostOpError>> + Send;
    fn unit_state(&self, unit: &str)
    -> impl Future<Output = Result<UnitState, HostOpError>> + Send;
    /// Carry out `plan` and clear the unit's notes (and the daemon-reload note if reloaded).
    fn apply_unit(
        &self,
        unit: &str,
        plan: &UnitPlan,
    ) -> impl Future<Output = Result<(), HostOpError>> + Send;
    /// The entries of `prune.dir` kinit rendered that are not kept, removed when `apply`;
    /// their names either way.
    fn prune(
        &self,
        prune: &PruneDir,
        apply: bool,
    ) -> impl Future<Output = Result<Vec<String>, HostOpError>> + Send;
    /// Take `what` off the host when `apply` (else say what would go): what went, and what
    /// could not (as [`HostAction::Failed`]); an error only when the host cannot be asked.
    fn lifecycle_step(
        &self,
        what: &LifecycleStep,
        apply: bool,
    ) -> impl Future<Output = Result<Vec<HostAction>, HostOpError>> + Send;
}
