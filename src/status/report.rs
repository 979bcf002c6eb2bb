//! What `kinit status` found, as data: per etcd member, per host, the VIP and the certificates,
//! and the list of problems that make the cluster degraded.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub cluster: String,
    pub etcd: EtcdStatus,
    /// `None` when the load balancer is external (kinit runs no VIP).
    pub vip: Option<VipStatus>,
    pub hosts: Vec<HostStatus>,
    pub certificates: CertificateSummary,
    /// `None` where kinit runs no control plane that serves (static pods without a kubelet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<super::control_plane::ControlPlaneStatus>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdStatus {
    /// The inventory's members first (in its order), then listed members it does not name.
    pub members: Vec<EtcdMemberStatus>,
    /// The member whose member list is shown.
    pub listed_by: Option<String>,
    /// Why no member list could be read, or why etcd could not be asked at all.
    pub error: Option<String>,
    /// Inventory members the member list does not contain.
    pub missing_from_list: Vec<String>,
    /// Listed members the inventory does not name.
    pub not_in_inventory: Vec<String>,
    /// Names of the leader(s) the healthy members follow (more than one: they disagree).
    pub leaders: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdMemberStatus {
    pub name: String,
    pub endpoint: String,
    /// Hex, as etcdctl shows it.
    pub id: Option<String>,
    pub healthy: bool,
    pub leader: bool,
    pub db_size: Option<u64>,
    pub version: Option<String>,
    pub raft_term: Option<u64>,
    /// In the member list as a learner: it receives the log but does not vote (shown only when
    /// it is one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learner: bool,
    pub in_inventory: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VipStatus {
    pub address: String,
    /// Reachable control-plane hosts that carry the address.
    pub holders: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    pub name: String,
    pub address: String,
    pub roles: Vec<String>,
    pub reachable: bool,
    /// Why the host could not be asked.
    pub error: Option<String>,
    pub services: Vec<ServiceStatus>,
    /// For control-plane hosts when kinit runs the VIP.
    pub holds_vip: Option<bool>,
    pub keepalived: Option<KeepalivedState>,
    pub haproxy: Option<HaproxyStatus>,
    /// The release of each unit's binary kinit installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<UnitVersion>,
}

/// The release a unit runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitVersion {
    pub unit: String,
    /// Of the installed binary (`None`: it printed no release).
    pub version: Option<String>,
    /// The unit's process started before that binary was written: it still runs the one
    /// before (a restart `kinit up` has yet to do).
    pub restart_pending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    /// What `systemctl is-active` said: active, inactive, failed, activating, ... (`unknown`
    /// when it said nothing).
    pub state: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeepalivedState {
    /// Running and holding the VIP.
    Master,
    /// Running without the VIP.
    Backup,
    Stopped,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HaproxyStatus {
    pub servers: Vec<BackendServer>,
    /// Why the stats could not be read.
    pub error: Option<String>,
    /// Servers whose name is no control-plane host of cluster.yaml (never removed silently).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_in_config: Vec<String>,
    /// Control-plane hosts of cluster.yaml the backend lacks (`kinit up` adds them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendServer {
    pub backend: String,
    pub server: String,
    /// haproxy's status: `UP`, `DOWN`, `UP 1/2` (going down), `MAINT`, `no check`, ...
    pub status: String,
    /// The last health check's result (`L7OK`, `L4CON`, ...), when there was one.
    pub check: Option<String>,
}

impl BackendServer {
    pub fn is_up(&self) -> bool {
        self.status == "UP" || self.status == "no check" || self.status == "OPEN"
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSummary {
    /// Certificates and CAs read.
    pub total: usize,
    pub valid: usize,
    /// Still valid, but not for long (see `certificates::EXPIRING_WITHIN`).
    pub expiring: Vec<CertificateNote>,
    pub expired: Vec<CertificateNote>,
    pub missing: Vec<CertificateNote>,
    pub unreadable: Vec<CertificateNote>,
    /// The certificate that expires first.
    pub soonest: Option<CertificateNote>,
    /// Why the PKI dir could not be read at all.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateNote {
    /// `apiserver (cp1)`, `etcd-ca`.
    pub name: String,
    /// Relative to the PKI dir.
    pub file: String,
    pub expires: Option<String>,
    pub days_left: Option<i64>,
}

impl StatusReport {
    /// Everything that makes the cluster degraded, one sentence each; empty when healthy.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        etcd_problems(&self.etcd, &mut out);
        if let Some(vip) = &self.vip {
            vip_problems(vip, &mut out);
        }
        for h in &self.hosts {
            host_problems(h, &mut out);
        }
        if let Some(cp) = &self.control_plane {
            out.extend(super::control_plane::problems(cp));
        }
        certificate_problems(&self.certificates, &mut out);
        out
    }

    pub fn healthy(&self) -> bool {
        self.problems().is_empty()
    }
}

fn etcd_problems(etcd: &EtcdStatus, out: &mut Vec<String>) {
    if let Some(e) = &etcd.error {
        out.push(format!("etcd: {e}"));
    }
    for m in &etcd.members {
        if !m.healthy {
            let why = m.error.as_deref().unwrap_or("reports itself unhealthy");
            out.push(format!("etcd member {} is unhealthy: {why}", m.name));
        }
    }
    if !etcd.missing_from_list.is_empty() {
        out.push(format!(
            "etcd's member list lacks {} (in cluster.yaml): `kinit up` adds it (a learner, \
             promoted once caught up)",
            etcd.missing_from_list.join(", ")
        ));
    }
    if !etcd.not_in_inventory.is_empty() {
        out.push(format!(
            "etcd's member list has {} that cluster.yaml does not name: `kinit up` leaves it; \
             to take it out, put its host back in cluster.yaml and run `kinit remove HOST`",
            etcd.not_in_inventory.join(", ")
        ));
    }
    if etcd.members.iter().any(|m| m.healthy) {
        match etcd.leaders.len() {
            0 => out.push("etcd has no leader".to_string()),
            1 => {}
            _ => out.push(format!(
                "etcd members disagree on the leader: {}",
                etcd.leaders.join(", ")
            )),
        }
    }
}

fn vip_problems(vip: &VipStatus, out: &mut Vec<String>) {
    match vip.holders.len() {
        0 => out.push(format!("the VIP {} is held by no host", vip.address)),
        1 => {}
        _ => out.push(format!(
            "the VIP {} is held by more than one host: {}",
            vip.address,
            vip.holders.join(", ")
        )),
    }
}

fn host_problems(h: &HostStatus, out: &mut Vec<String>) {
    if !h.reachable {
        let why = h.error.as_deref().unwrap_or("no answer");
        out.push(format!("{} is unreachable: {why}", h.name));
        return;
    }
    for s in &h.services {
        if s.state != "active" {
            out.push(format!("{}: {} is {}", h.name, s.name, s.state));
        }
    }
    if let Some(hp) = &h.haproxy {
        if let Some(e) = &hp.error {
            out.push(format!("{}: cannot read haproxy's stats: {e}", h.name));
        }
        if !hp.not_in_config.is_empty() {
            out.push(format!(
                "{}: haproxy has backend server(s) {} that cluster.yaml does not name",
                h.name,
                hp.not_in_config.join(", ")
            ));
        }
        if !hp.missing.is_empty() {
            out.push(format!(
                "{}: haproxy lacks backend server(s) {} (in cluster.yaml): `kinit up` adds them",
                h.name,
                hp.missing.join(", ")
            ));
        }
        for s in hp.servers.iter().filter(|s| !s.is_up()) {
            out.push(format!(
                "{}: haproxy backend {}/{} is {}{}",
                h.name,
                s.backend,
                s.server,
                s.status,
                s.check
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ));
        }
    }
}

fn certificate_problems(c: &CertificateSummary, out: &mut Vec<String>) {
    if let Some(e) = &c.error {
        out.push(format!("certificates: {e}"));
    }
    if c.total > 0 && c.missing.len() == c.total {
        out.push(
            "no certificate is in the PKI dir: run `kinit certs generate` (or point -c at the right cluster.yaml)"
                .to_string(),
        );
        return;
    }
    for (what, notes) in [
        ("expired", &c.expired),
        ("expiring soon", &c.expiring),
        ("missing", &c.missing),
        ("unreadable", &c.unreadable),
    ] {
        if !notes.is_empty() {
            let names: Vec<&str> = notes.iter().map(|n| n.name.as_str()).collect();
            out.push(format!(
                "{} certificate(s) {what}: {}",
                notes.len(),
                names.join(", ")
            ));
        }
    }
}
