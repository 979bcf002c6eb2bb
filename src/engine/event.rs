//! What the engine reports while it runs. The ui turns these into bars, lines or JSON; the
//! engine itself never prints.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    PhaseStarted {
        phase: String,
        title: String,
        hosts: Vec<String>,
    },
    PhaseSkipped {
        phase: String,
        reason: String,
    },
    /// A step on the operator machine (preflight, PKI) or a wait: one line of what happened.
    Note {
        phase: String,
        message: String,
    },
    /// The cluster moves to another Kubernetes release (found before any host changes): from
    /// which release on which hosts, and each version-skew rule's verdict.
    KubernetesUpgrade {
        phase: String,
        message: String,
        upgrade: crate::planning::kubernetes_upgrade::KubernetesUpgrade,
    },
    /// Certificates re-issued on this machine (`kinit certs renew --rollout`): the renewal's
    /// report, its fields beside `event` and `phase`.
    CertificatesRenewed {
        phase: String,
        #[serde(flatten)]
        report: crate::pki::GenerateReport,
    },
    /// A change to etcd's membership, or a member found that cluster.yaml does not name.
    EtcdMember {
        phase: String,
        host: String,
        /// learner-added, unstarted-removed, promoted, not-in-config, would-join.
        action: &'static str,
        /// For `promoted`: seconds from the member's addition to its promotion.
        #[serde(skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
        message: String,
    },
    StepStarted {
        phase: String,
        host: String,
        step: String,
    },
    StepFinished {
        phase: String,
        host: String,
        step: String,
        outcome: super::outcome::StepOutcome,
        changed: bool,
    },
    StepFailed {
        phase: String,
        host: String,
        step: String,
        error: String,
    },
    PhaseFinished {
        phase: String,
        seconds: f64,
        ok: bool,
    },
    /// The hosts whose component restarts (reloads, gets a new manifest) in this phase, in the
    /// order they go, one at a time; also in a dry run.
    RestartOrder {
        phase: String,
        /// The unit, or the static pods' component.
        what: &'static str,
        action: RestartKind,
        hosts: Vec<String>,
        /// Why the last host is last, when one is special.
        #[serde(skip_serializing_if = "Option::is_none")]
        last: Option<String>,
        /// The hosts that restart together (workers, `spec.rollout`), each group in turn.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        together: Vec<Vec<String>>,
    },
    RestartStarted {
        phase: String,
        host: String,
        what: &'static str,
        action: RestartKind,
        /// Wall-clock time, seconds since the Unix epoch.
        at: f64,
    },
    /// The host serves again (`healthy` says what showed it).
    RestartFinished {
        phase: String,
        host: String,
        what: &'static str,
        action: RestartKind,
        at: f64,
        seconds: f64,
        healthy: String,
    },
}

/// What a rolling step does to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartKind {
    Restart,
    Reload,
    /// A static pod's manifest is replaced: the kubelet re-creates the pod.
    NewManifest,
}

impl RestartKind {
    pub fn verb(self) -> &'static str {
        match self {
            RestartKind::Restart => "restart",
            RestartKind::Reload => "reload",
            RestartKind::NewManifest => "new manifest for",
        }
    }
}

/// Seconds since the Unix epoch, for events that others compare across hosts.
pub fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Receives events as they happen (from several tasks at once).
pub trait Observer: Send + Sync {
    fn event(&self, event: &Event);
}

/// Hears nothing: for a look at what a job would do that is not shown as such.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &Event) {}
}
