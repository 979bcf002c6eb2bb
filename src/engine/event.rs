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
}

/// Receives events as they happen (from several tasks at once).
pub trait Observer: Send + Sync {
    fn event(&self, event: &Event);
}
