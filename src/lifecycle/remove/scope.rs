//! Which hosts a removal takes and what changes on the hosts that stay: read from the
//! inventory and the component table alone (no host is contacted).

use std::collections::BTreeSet;

use super::RemoveError;
use crate::components;
use crate::config::Role;
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
/// that stay: the table's files marked so (`names_hosts`) of the components that run somewhere
/// in this cluster.
pub fn files_to_update(inv: &Inventory) -> Vec<&'static str> {
    components::TABLE
        .iter()
        .filter(|c| !c.hosts(inv).is_empty())
        .flat_map(|c| c.files.iter())
        .filter(|f| f.names_hosts.holds(inv))
        .map(|f| f.path)
        .collect()
}

/// The hosts that stay and hold a file of [`files_to_update`], in table order: the control
/// planes (the apiserver, haproxy, keepalived), then the other nodes (the pod network's routes).
pub fn hosts_to_update(rest: &Inventory) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    let naming = components::TABLE
        .iter()
        .filter(|c| c.files.iter().any(|f| f.names_hosts.holds(rest)));
    for c in naming {
        for h in c.hosts(rest) {
            if !hosts.contains(&h.name) {
                hosts.push(h.name.clone());
            }
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
