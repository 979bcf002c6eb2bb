//! The Kubernetes control plane as `kinit status` sees it from this machine: each apiserver's
//! own `/readyz` (verified against the cluster CA; the names of the failing checks when not
//! ready), and which host holds the controller-manager's and the scheduler's leases (read
//! with admin.conf through the endpoint, else through any ready apiserver). Asked only where
//! kinit runs a control plane that serves: systemd units, or static pods a kinit kubelet runs.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::bundle::Bundle;
use crate::components::{ComponentId, component};
use crate::inventory::{Inventory, ports};
use crate::kube::{self, ApiClient, LEADER_LEASES};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneStatus {
    pub apiservers: Vec<ApiserverStatus>,
    pub leases: Vec<LeaseStatus>,
    /// Every kubelet host's Node, when the bundle runs kubelets; empty otherwise.
    pub nodes: Vec<NodeStatus>,
}

/// A kubelet host as the API sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub host: String,
    /// The Node as the API has it; None when it is not registered.
    pub node: Option<kube::nodes::NodeState>,
    /// Why the Nodes could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiserverStatus {
    pub host: String,
    pub url: String,
    pub ready: bool,
    /// The `/readyz` checks that fail.
    pub failing: Vec<String>,
    /// Why it could not be asked.
    pub error: Option<String>,
    /// The release it serves (`/version`).
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseStatus {
    pub name: String,
    /// The host whose instance holds it.
    pub holder: Option<String>,
    pub error: Option<String>,
}

/// Whether kinit runs a control plane that serves in this cluster (with this bundle).
pub fn expected(inv: &Inventory) -> bool {
    if component(ComponentId::KubeApiserver).hosts(inv).is_empty() {
        let bundle = Bundle::open(inv.bundle.as_deref()).unwrap_or_default();
        let pods = !component(ComponentId::ControlPlane).hosts(inv).is_empty();
        pods && component(ComponentId::Kubelet).lacking(&bundle).is_empty()
    } else {
        true
    }
}

/// Ask every apiserver, then the leases.
pub async fn gather(inv: &Inventory, timeout: Duration) -> Option<ControlPlaneStatus> {
    if !expected(inv) {
        return None;
    }
    let ca = std::fs::read(inv.pki_dir.join("ca.crt"));
    let mut apiservers = Vec::new();
    for h in inv.control_plane() {
        let url = format!("https://{}", SocketAddr::new(h.address, ports::APISERVER));
        let mut s = ApiserverStatus {
            host: h.name.clone(),
            url: url.clone(),
            ready: false,
            failing: Vec::new(),
            error: None,
            version: None,
        };
        let asked = match &ca {
            Ok(ca) => match ApiClient::anonymous(ca, &url) {
                Ok(c) => {
                    let (ready, version) =
                        tokio::join!(kube::readyz(&c, timeout), kube::server_version(&c, timeout));
                    s.version = version.ok().map(|v| v.to_string());
                    ready.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(format!("cannot read the cluster CA: {e}")),
        };
        match asked {
            Ok(r) => {
                s.ready = r.ready;
                s.failing = r.failing;
            }
            Err(e) => s.error = Some(e),
        }
        apiservers.push(s);
    }
    let leases = leases(inv, &apiservers, timeout).await;
    let nodes = nodes(inv, &apiservers, timeout).await;
    Some(ControlPlaneStatus {
        apiservers,
        leases,
        nodes,
    })
}

/// Each kubelet host's Node, read with admin.conf through the endpoint, else any ready
/// apiserver.
async fn nodes(
    inv: &Inventory,
    apiservers: &[ApiserverStatus],
    timeout: Duration,
) -> Vec<NodeStatus> {
    let kubelet = component(ComponentId::Kubelet);
    let bundle = Bundle::open(inv.bundle.as_deref()).unwrap_or_default();
    if !kubelet.lacking(&bundle).is_empty() {
        return Vec::new();
    }
    let hosts: Vec<String> = kubelet.hosts(inv).iter().map(|h| h.name.clone()).collect();
    let listed = match ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf") {
        Ok(client) => {
            let mut servers = vec![client.server().to_string()];
            servers.extend(apiservers.iter().filter(|a| a.ready).map(|a| a.url.clone()));
            let mut last = Err("no apiserver to ask".to_string());
            for server in &servers {
                last = kube::nodes::list(&client.at(server), timeout)
                    .await
                    .map_err(|e| e.to_string());
                if last.is_ok() {
                    break;
                }
            }
            last
        }
        Err(e) => Err(e.to_string()),
    };
    hosts
        .into_iter()
        .map(|host| match &listed {
            Ok(list) => NodeStatus {
                node: list.get(&host).cloned(),
                host,
                error: None,
            },
            Err(e) => NodeStatus {
                host,
                node: None,
                error: Some(e.clone()),
            },
        })
        .collect()
}

async fn leases(
    inv: &Inventory,
    apiservers: &[ApiserverStatus],
    timeout: Duration,
) -> Vec<LeaseStatus> {
    let client = match ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf") {
        Ok(c) => c,
        Err(e) => {
            return LEADER_LEASES
                .iter()
                .map(|n| LeaseStatus {
                    name: n.to_string(),
                    holder: None,
                    error: Some(e.to_string()),
                })
                .collect();
        }
    };
    let mut servers = vec![client.server().to_string()];
    servers.extend(apiservers.iter().filter(|a| a.ready).map(|a| a.url.clone()));
    let mut out = Vec::new();
    for name in LEADER_LEASES {
        let mut status = LeaseStatus {
            name: name.to_string(),
            holder: None,
            error: None,
        };
        for server in &servers {
            match kube::lease_holder(&client.at(server), name, timeout).await {
                Ok(holder) => {
                    status.holder = holder.map(|h| kube::holder_host(&h).to_string());
                    status.error = None;
                    break;
                }
                Err(e) => status.error = Some(e.to_string()),
            }
        }
        out.push(status);
    }
    out
}

/// What makes the control plane degraded, one sentence each.
pub fn problems(cp: &ControlPlaneStatus) -> Vec<String> {
    let mut out = Vec::new();
    for a in &cp.apiservers {
        match (&a.error, a.ready) {
            (Some(e), _) => out.push(format!("{}: kube-apiserver does not answer: {e}", a.host)),
            (None, false) => out.push(format!(
                "{}: kube-apiserver is not ready (failing: {})",
                a.host,
                if a.failing.is_empty() {
                    "no check named".to_string()
                } else {
                    a.failing.join(", ")
                }
            )),
            (None, true) => {}
        }
    }
    for n in &cp.nodes {
        match (&n.node, &n.error) {
            (_, Some(e)) => out.push(format!("{}: cannot read its Node: {e}", n.host)),
            (None, None) => out.push(format!("{}: not registered as a Node", n.host)),
            (Some(s), None) if !s.ready => {
                out.push(format!("{}: Node is not Ready ({})", n.host, s.why))
            }
            (Some(_), None) => {}
        }
    }
    for l in &cp.leases {
        match (&l.holder, &l.error) {
            (Some(_), _) => {}
            (None, Some(e)) => out.push(format!("cannot read the {} lease: {e}", l.name)),
            (None, None) => out.push(format!("no {} holds its lease", l.name)),
        }
    }
    out
}
