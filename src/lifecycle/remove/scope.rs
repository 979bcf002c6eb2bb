//! Which hosts a removal takes and what changes on the hosts that stay: read from the
//! inventory and the component table alone (no host is contacted).

use std::collections::BTreeSet;

use super::RemoveError;
use crate::components::{self, ComponentId, OnChange};
use crate::config::{ControlPlaneMode, Role, Topology};
use crate::host_paths;
use crate::inventory::{Host, Inventory};

/// The hosts named, checked against the inventory: each must be there (a control plane, an
/// etcd member or a worker: every role is something removal takes out), and a control plane
/// must stay.
pub fn chosen<'a>(inv: &'a Inventory, names: &[String]) -> Result<Vec<&'a Host>, RemoveError> {
    let mut out: Vec<&Host> = Vec::new();
    for name in names {
        let host = inv
            .host(name)
            .ok_or_else(|| RemoveError::UnknownHost { host: name.clone() })?;
        if !out.iter().any(|h| h.name == host.name) {
            out.push(host);
        }
    }
    let names: BTreeSet<&str> = out.iter().map(|h| h.name.as_str()).collect();
    if out.iter().any(|h| h.has(Role::ControlPlane))
        && inv.control_plane().all(|h| names.contains(h.name.as_str()))
    {
        return Err(RemoveError::EveryControlPlane {
            hosts: join(names.iter()),
        });
    }
    Ok(out)
}

/// The inventory as it is once `names` are deleted from the config.
pub fn without(inv: &Inventory, names: &BTreeSet<String>) -> Inventory {
    let mut rest = inv.clone();
    rest.hosts.retain(|h| !names.contains(&h.name));
    rest
}

/// The files that name other control planes, etcd members or nodes, and so change on the hosts
/// that stay: haproxy's backends, keepalived's peers, with external etcd the apiserver's
/// `--etcd-servers` (stacked, it talks to its local member only), and the pod network's routes
/// to the other nodes' pod slices.
pub fn files_to_update(inv: &Inventory) -> Vec<&'static str> {
    let mut files: Vec<&'static str> = [ComponentId::Haproxy, ComponentId::Keepalived]
        .into_iter()
        .map(components::component)
        .filter(|c| c.when.is_none_or(|w| w.holds(inv)))
        .flat_map(|c| c.files.iter())
        .filter(|f| matches!(f.on_change, OnChange::Reload(_)))
        .map(|f| f.path)
        .collect();
    if inv.topology == Topology::External {
        // Where the apiserver's flags are: its static pod's manifest, or its unit file.
        files.push(match inv.control_plane_mode {
            ControlPlaneMode::StaticPod => host_paths::KUBE_APISERVER_MANIFEST,
            ControlPlaneMode::Systemd => host_paths::KUBE_APISERVER_UNIT,
        });
    }
    if !components::component(ComponentId::Containerd)
        .hosts(inv)
        .is_empty()
    {
        files.push(host_paths::POD_NETWORK_SCRIPT);
    }
    files
}

/// The hosts that stay and hold a file of [`files_to_update`]: the control planes, then the
/// other nodes (the pod network's routes).
pub fn hosts_to_update(rest: &Inventory) -> Vec<String> {
    let mut hosts: Vec<String> = rest.control_plane().map(|h| h.name.clone()).collect();
    for h in components::component(ComponentId::Containerd).hosts(rest) {
        if !hosts.contains(&h.name) {
            hosts.push(h.name.clone());
        }
    }
    hosts
}

pub(super) fn join<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    items
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
