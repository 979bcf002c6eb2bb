//! Preflight: checks as pure functions over (inventory, host facts) -> findings.
//!
//! Names follow kubeadm where kubeadm has the check (`NumCPU`, `Mem`, `Swap`, `Port-2379`,
//! `FileContent--proc-sys-net-ipv4-ip_forward`, `DirAvailable--var-lib-etcd`), so
//! `--ignore-preflight-errors` takes the names operators already know. Checks kubeadm leaves to a
//! manual step (unique machine ids, MACs, clock skew, the ports between hosts) only make sense
//! across hosts and are what kinit adds.

mod across_hosts;
mod checks;
pub mod gather;
mod ignore;
mod ports;

use serde::Serialize;

pub use checks::evaluate;
pub use ignore::IgnoreSet;

use crate::facts::{ClockSkew, HostFacts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One check's verdict for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreflightFinding {
    pub host: String,
    /// Stable check name, e.g. `NumCPU`, `Port-2379`.
    pub check: String,
    pub status: Status,
    pub message: String,
    /// What to do about it (empty for passes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// A failure turned into a warning by --ignore-preflight-errors.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
}

/// What was learned about one host.
#[derive(Debug, Clone)]
pub enum HostObservation {
    Reached {
        facts: Box<HostFacts>,
        /// Host clock minus operator clock, with the error bound of the measurement.
        clock_skew: Option<ClockSkew>,
    },
    /// The host could not be probed; the reason names the step (connect, auth, host key, ...).
    Unreachable { reason: String },
    /// The host answered but has no bash, which the probe runs in.
    NoBash,
}

/// Facts gathered on the operator side.
#[derive(Debug, Clone, Default)]
pub struct OperatorView {
    /// Whether something answered on VIP:port before kinit set it up; None when not probed.
    pub vip_answers: Option<bool>,
}

/// All findings of one run, per host in inventory order.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    pub findings: Vec<PreflightFinding>,
}

impl PreflightReport {
    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    pub fn failed(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    /// Findings grouped by host, hosts in inventory order.
    pub fn by_host(&self) -> Vec<(&str, Vec<&PreflightFinding>)> {
        let mut groups: Vec<(&str, Vec<&PreflightFinding>)> = Vec::new();
        for f in &self.findings {
            match groups.iter_mut().find(|(h, _)| *h == f.host) {
                Some((_, v)) => v.push(f),
                None => groups.push((f.host.as_str(), vec![f])),
            }
        }
        groups
    }
}
