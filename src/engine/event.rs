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

/// What a run nested in one phase of another reports, as that phase's: its steps, notes and
/// restarts carry the outer phase's name, and its own phases' starts and ends are left out (the
/// outer phase has begun already and ends after it). `kinit remove` resets the hosts it takes
/// out this way, so `-o json` shows the reset's steps under its `reset` phase.
pub struct Nested {
    phase: String,
    outer: std::sync::Arc<dyn Observer>,
}

impl Nested {
    pub fn new(phase: &str, outer: std::sync::Arc<dyn Observer>) -> Nested {
        Nested {
            phase: phase.to_string(),
            outer,
        }
    }
}

impl Observer for Nested {
    fn event(&self, event: &Event) {
        if let Some(event) = event.as_part_of(&self.phase) {
            self.outer.event(&event);
        }
    }
}

impl Event {
    /// This event as one of `outer`'s, or None for a phase's own start, skip or end.
    pub fn as_part_of(&self, outer: &str) -> Option<Event> {
        let mut event = self.clone();
        let name = match &mut event {
            Event::PhaseStarted { .. }
            | Event::PhaseSkipped { .. }
            | Event::PhaseFinished { .. } => {
                return None;
            }
            Event::Note { phase, .. }
            | Event::KubernetesUpgrade { phase, .. }
            | Event::CertificatesRenewed { phase, .. }
            | Event::EtcdMember { phase, .. }
            | Event::StepStarted { phase, .. }
            | Event::StepFinished { phase, .. }
            | Event::StepFailed { phase, .. }
            | Event::RestartOrder { phase, .. }
            | Event::RestartStarted { phase, .. }
            | Event::RestartFinished { phase, .. } => phase,
        };
        *name = outer.to_string();
        Some(event)
    }
}

/// Hears nothing: for a look at what a job would do that is not shown as such.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &Event) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Heard(Mutex<Vec<Event>>);

    impl Observer for Heard {
        fn event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn a_nested_run_reports_its_steps_as_the_outer_phases_and_not_its_own_phases() {
        let heard = Arc::new(Heard::default());
        let nested = Nested::new("reset", heard.clone());
        nested.event(&Event::PhaseStarted {
            phase: "stop".into(),
            title: "Stop".into(),
            hosts: vec!["cp3".into()],
        });
        nested.event(&Event::StepFailed {
            phase: "stop".into(),
            host: "cp3".into(),
            step: "stop etcd".into(),
            error: "no".into(),
        });
        nested.event(&Event::Note {
            phase: "files".into(),
            message: "kept".into(),
        });
        nested.event(&Event::PhaseFinished {
            phase: "stop".into(),
            seconds: 1.0,
            ok: false,
        });
        let heard = heard.0.lock().unwrap();
        let json: Vec<serde_json::Value> = heard
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        assert_eq!(json.len(), 2, "{json:?}");
        assert_eq!(json[0]["event"], "step-failed");
        assert_eq!(json[0]["phase"], "reset");
        assert_eq!(json[0]["host"], "cp3");
        assert_eq!(json[1]["event"], "note");
        assert_eq!(json[1]["phase"], "reset");
        assert_eq!(json[1]["message"], "kept");
    }
}
