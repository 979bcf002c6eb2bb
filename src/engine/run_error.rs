//! How a run of the engine fails: typed, naming the phase (and the host, step or wait) where
//! it stopped, so the edge can render it once and `--from-phase` can resume there.

use std::path::PathBuf;
use std::time::Duration;

use super::host_job::HostFailure;
use super::plan::PlanError;
use super::playbook::Phase;
use super::select::UnknownPhase;
use super::verify::WaitError;
use crate::bundle::BundleError;
use crate::etcd::EtcdError;
use crate::pki::PkiError;
use crate::planning::join_plan::JoinRefusal;
use crate::preflight::{self, PreflightReport};
use crate::render::RenderError;

/// What went wrong in a step the operator machine runs.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{host}: {source}")]
    Plan { host: String, source: PlanError },
    #[error("copying {from} for the dry run: {source}")]
    Scratch {
        from: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the cluster CA {path}: {source}")]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    EtcdClient(#[from] crate::etcd::EtcdError),
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    KubeApi(#[from] crate::kube::KubeApiError),
    /// A wait of an operator step ran out (or was interrupted) before `what` held.
    #[error("{what} after {}s: {last}", waited.as_secs())]
    NotReady {
        /// What did not happen, e.g. "the nodes were not all Ready".
        what: &'static str,
        waited: std::time::Duration,
        /// The last reason the condition did not hold.
        last: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    UnknownPhase(#[from] UnknownPhase),
    #[error("before any host was changed: {0}")]
    Bundle(#[from] BundleError),
    #[error("before any host was changed: {0}")]
    ClusterToken(PkiError),
    #[error("before any host was changed: {0}")]
    EtcdVersion(#[from] crate::planning::etcd_upgrade::UpgradeRefusal),
    #[error("before any host was changed: {0}")]
    KubernetesVersion(#[from] Box<crate::planning::kubernetes_upgrade::KubernetesRefusal>),
    #[error("before any host was changed: {0}")]
    BundleEtcdVersion(super::bundle_etcd_version::UnknownBundleVersion),
    #[error("phase {phase}: {} host(s) failed", failures.len())]
    Hosts {
        phase: String,
        failures: Vec<HostFailure>,
    },
    #[error("phase {phase}: waiting for {what}: {error}")]
    Wait {
        phase: String,
        what: String,
        error: WaitError,
    },
    #[error("phase preflight: {} check(s) failed", report.count(preflight::Status::Fail))]
    Preflight { report: Box<PreflightReport> },
    #[error("phase {phase}: {error}")]
    Operator { phase: String, error: OperatorError },
    /// The quorum guard refused an etcd restart; nothing was restarted by this step.
    #[error("phase {phase}: {refusal}")]
    Quorum {
        phase: String,
        refusal: Box<crate::planning::restart_order::QuorumRefusal>,
    },
    /// The quorum guard could not read or place etcd's members, so it refused (fails closed);
    /// nothing was restarted by this step.
    #[error(
        "phase {phase}: etcd on {host} is not restarted: the quorum guard cannot count etcd's \
         voting members: {reason}. Bring etcd's members back (`kinit status`), or pass --force \
         to restart without the guard"
    )]
    QuorumUnjudged {
        phase: String,
        host: String,
        reason: crate::planning::quorum::Unjudged,
    },
    /// A host did not serve again after its restart; the hosts after it were left alone.
    #[error(
        "phase {phase}: {what} on {host} did not serve again after its {}: {error}{}",
        action.verb(),
        if left.is_empty() {
            String::new()
        } else {
            format!("; not done yet, so nothing else is down: {} (the next `kinit up` does them)", left.join(", "))
        }
    )]
    NotBack {
        phase: String,
        host: String,
        what: &'static str,
        action: super::event::RestartKind,
        error: WaitError,
        left: Vec<String>,
    },
    #[error("interrupted")]
    Interrupted,
}

impl RunError {
    /// The phase to resume from, when the run stopped in one.
    pub fn phase(&self) -> Option<&str> {
        match self {
            RunError::Hosts { phase, .. }
            | RunError::Wait { phase, .. }
            | RunError::Quorum { phase, .. }
            | RunError::QuorumUnjudged { phase, .. }
            | RunError::NotBack { phase, .. }
            | RunError::Operator { phase, .. } => Some(phase),
            RunError::Preflight { .. } => Some("preflight"),
            _ => None,
        }
    }

    pub(super) fn operator(phase: &Phase, error: impl Into<OperatorError>) -> RunError {
        RunError::Operator {
            phase: phase.name.clone(),
            error: error.into(),
        }
    }
}

/// Why an etcd host could not join the running cluster as a learner (the etcd phase when etcd
/// already runs).
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Refused(#[from] JoinRefusal),
    #[error("{host}: {step} through {endpoint}: {source}")]
    Etcd {
        host: String,
        step: &'static str,
        endpoint: String,
        #[source]
        source: Box<EtcdError>,
    },
    #[error(
        "{host}: learner {id} did not start within {}s (it has no name in the member list): \
         check `journalctl -u etcd` on {host}; the next `kinit up` removes the unstarted member \
         and adds it again",
        after.as_secs()
    )]
    NotStarted {
        host: String,
        id: String,
        after: Duration,
    },
    #[error(
        "{host}: learner {id} was not in sync with the leader after {}s, so etcd refused to \
         promote it; it stays a learner (it does not vote, quorum is unchanged): check its \
         network and disk, then run `kinit up` again to promote it",
        after.as_secs()
    )]
    NotCaughtUp {
        host: String,
        id: String,
        after: Duration,
    },
    #[error(
        "etcd already runs on {running}, but no member answers ({why}), so {joining} cannot \
         join it now: bring etcd back (`kinit status` shows it), then run `kinit up` again"
    )]
    NoMemberAnswers {
        running: String,
        joining: String,
        why: String,
    },
    #[error(
        "{host}: its etcd config {path} says {key}: `{value}`, which kinit did not write; fix \
         or remove the line"
    )]
    BadBootstrap {
        host: String,
        path: &'static str,
        key: &'static str,
        value: String,
    },
    /// The run was cancelled while it waited for the learner (the next `kinit up` picks it up).
    #[error("interrupted")]
    Interrupted,
}
