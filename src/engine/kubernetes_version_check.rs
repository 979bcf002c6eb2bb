//! Before any host is changed: `kubernetesVersion` against the releases the running apiservers
//! answer `/version` with (and, when it moves, the kubelets the node list names). A downgrade, a
//! skipped minor, a bundle without the target release, a kubelet the target would leave out of
//! skew or an etcd it does not support stops the run here; an upgrade is said, with each rule's
//! verdict, as an event (`up --dry-run` shows it too), and the control-plane phase carries it
//! out: the new binaries land on every host, then the apiservers restart one host at a time
//! (drained from every haproxy first, the VIP holder last), then the controller-managers and
//! the schedulers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;

use super::event::Event;
use super::playbook::Phase;
use super::run_context::Engine;
use super::run_error::RunError;
use crate::bundle::Bundle;
use crate::bundle::manifest::Manifest;
use crate::bundle::version::{self, Version};
use crate::components::ComponentId;
use crate::inventory::{Inventory, ports};
use crate::kube::{self, ApiClient};
use crate::planning::kubernetes_upgrade::{
    self, KubernetesDecision, KubernetesRefusal, RunningVersion, UpgradeInputs,
};

/// One `/version` request (a new cluster: nothing answers).
const PRECHECK: Duration = Duration::from_secs(3);

const APISERVER: &str = "kube-apiserver";
const ETCD: &str = "etcd";

/// Each control-plane host's apiserver release, asked all at once.
pub async fn apiserver_versions(inv: &Inventory, timeout: Duration) -> Vec<RunningVersion> {
    let hosts: Vec<(String, String)> = inv
        .control_plane()
        .map(|h| {
            let url = format!("https://{}", SocketAddr::new(h.address, ports::APISERVER));
            (h.name.clone(), url)
        })
        .collect();
    let Ok(ca) = std::fs::read(inv.pki_dir.join("ca.crt")) else {
        return hosts
            .into_iter()
            .map(|(host, _)| RunningVersion {
                host,
                version: None,
            })
            .collect();
    };
    let mut tasks = JoinSet::new();
    for (i, (host, url)) in hosts.iter().cloned().enumerate() {
        let ca = ca.clone();
        tasks.spawn(async move {
            let version = match ApiClient::anonymous(&ca, &url) {
                Ok(c) => kube::server_version(&c, timeout).await.ok(),
                Err(_) => None,
            };
            (i, RunningVersion { host, version })
        });
    }
    let mut out: Vec<Option<RunningVersion>> = hosts.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, v)) = joined {
            out[i] = Some(v);
        }
    }
    out.into_iter().flatten().collect()
}

/// The release of a bundle file: its bundle.yaml entry, else the binary asked on this machine
/// (checked against SHA256SUMS first: only a checked binary is run).
fn bundle_release(bundle: &mut Bundle, phase: &str, file: &str) -> Result<Version, String> {
    if !bundle.has(file) {
        return Err(format!("the bundle holds no {file}"));
    }
    if let Some(entry) = bundle
        .dir()
        .and_then(|d| Manifest::read(d).ok().flatten())
        .and_then(|m| m.get(file).cloned())
    {
        return Version::parse(&entry.version)
            .ok_or_else(|| format!("bundle.yaml says {file} is {:?}", entry.version));
    }
    let artifact = bundle.verify(phase, file).map_err(|e| e.to_string())?;
    version::read(&artifact.path, file)
}

impl Engine {
    /// Refuse a `kubernetesVersion` the running control plane cannot move to; say an upgrade.
    /// True: the run upgrades (an apiserver answers with another release than the target).
    pub(super) async fn check_kubernetes_version(
        &self,
        phases: &[Phase],
        bundle: &mut Bundle,
    ) -> Result<bool, RunError> {
        let systemd = ComponentId::KubeApiserver;
        let Some(phase) = phases.iter().find(|p| {
            p.converge
                .iter()
                .any(|c| *c == systemd || *c == ComponentId::ControlPlane)
        }) else {
            return Ok(false);
        };
        let inv = &self.inventory;
        if inv.control_plane().next().is_none() {
            return Ok(false);
        }
        let Some(target) = Version::parse(&inv.kubernetes_version.to_string()) else {
            return Ok(false);
        };
        let apiservers = apiserver_versions(inv, PRECHECK).await;
        let moves = apiservers.iter().any(|a| {
            a.version
                .as_ref()
                .is_some_and(|v| v.to_string() != target.to_string())
        });
        if !moves {
            // New, down, or current: nothing whose release could be at odds with the target.
            return Ok(false);
        }
        let by_units = !crate::components::component(systemd).hosts(inv).is_empty();
        // Static pods run the images kubernetesVersion names; units run the bundle's binaries.
        let bundle_version = if by_units {
            bundle_release(bundle, &phase.name, APISERVER)
        } else {
            Ok(target.clone())
        };
        let etcd = bundle_release(bundle, &phase.name, ETCD).ok().map(|v| {
            (
                v.major,
                v.minor,
                format!("{}.{}.{}", v.major, v.minor, v.patch),
            )
        });
        let kubelets = kubelet_versions(inv).await;
        let decision = kubernetes_upgrade::decide(&UpgradeInputs {
            target: &target,
            bundle: bundle_version.as_ref().ok(),
            apiservers: &apiservers,
            kubelets: &kubelets,
            etcd,
        })
        .map_err(|mut refusal| {
            // Say why the bundle's release could not be told.
            if let (KubernetesRefusal::BundleUnknown { why, .. }, Err(said)) =
                (refusal.as_mut(), bundle_version)
            {
                *why = said;
            }
            refusal
        })?;
        let KubernetesDecision::Upgrade(upgrade) = decision else {
            return Ok(false);
        };
        self.emit(Event::KubernetesUpgrade {
            phase: phase.name.clone(),
            message: upgrade.describe(),
            upgrade,
        });
        Ok(true)
    }
}

/// The kubelets the node list names, with admin.conf through the endpoint (none: no node, or
/// the list could not be read; a kubelet that is not registered binds nothing).
async fn kubelet_versions(inv: &Inventory) -> Vec<RunningVersion> {
    let Ok(client) = ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf") else {
        return Vec::new();
    };
    let Ok(list) = client.get_json("/api/v1/nodes", PRECHECK).await else {
        return Vec::new();
    };
    list.get("items")
        .and_then(|i| i.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|n| {
                    let host = n.pointer("/metadata/name")?.as_str()?.to_string();
                    let version = n
                        .pointer("/status/nodeInfo/kubeletVersion")
                        .and_then(|v| v.as_str())
                        .and_then(Version::parse);
                    Some(RunningVersion { host, version })
                })
                .collect()
        })
        .unwrap_or_default()
}
