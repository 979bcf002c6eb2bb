//! The checks across hosts: what must differ between machines, what they must share (one L2
//! segment for the pod routes), and the VIP that none of them may hold yet.

use std::collections::BTreeMap;

use super::checks::{fail, pass};
use super::{HostObservation, OperatorView, PreflightFinding};
use crate::config::Role;
use crate::facts::HostFacts;
use crate::inventory::{Host, Inventory};

/// Identities that must differ between machines.
pub(super) fn identities(
    inv: &Inventory,
    obs: &BTreeMap<String, HostObservation>,
    out: &mut Vec<PreflightFinding>,
) {
    let facts: Vec<(&Host, &HostFacts)> = inv
        .hosts
        .iter()
        .filter_map(|h| match obs.get(&h.name) {
            Some(HostObservation::Reached { facts, .. }) => Some((h, facts.as_ref())),
            _ => None,
        })
        .collect();

    type Extract = fn(&HostFacts) -> Vec<String>;
    let identities: [(&str, &str, Extract, &str); 4] = [
        (
            "Hostname",
            "hostname",
            |f| vec![f.hostname.clone()],
            "set a distinct hostname (`hostnamectl set-hostname NAME`)",
        ),
        (
            "MachineID",
            "machine-id",
            |f| f.machine_id.iter().cloned().collect(),
            "give each clone its own id: `rm /etc/machine-id && systemd-machine-id-setup`",
        ),
        (
            "ProductUUID",
            "product_uuid",
            |f| f.product_uuid.iter().cloned().collect(),
            "cloned VMs share a product_uuid: regenerate the VM's UUID in the hypervisor",
        ),
        (
            "MACAddress",
            "MAC address",
            |f| f.macs.values().cloned().collect(),
            "give each clone its own MAC address in the hypervisor",
        ),
    ];
    for (check, what, extract, fix) in identities {
        let mut owners: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (h, f) in &facts {
            for v in extract(f) {
                owners.entry(v).or_default().push(h.name.as_str());
            }
        }
        let check = format!("Unique{check}");
        for (h, f) in &facts {
            let values = extract(f);
            if values.is_empty() {
                continue;
            }
            let clashes: Vec<String> = values
                .iter()
                .filter_map(|v| {
                    let others: Vec<&str> =
                        owners[v].iter().copied().filter(|o| *o != h.name).collect();
                    (!others.is_empty())
                        .then(|| format!("{what} {v} is also {}'s", others.join(", ")))
                })
                .collect();
            out.push(if clashes.is_empty() {
                pass(&h.name, check.clone(), format!("{what} is unique"))
            } else {
                fail(&h.name, check.clone(), clashes.join("; "), fix)
            });
        }
    }
}

/// kinit's pod network routes each node's pod slice through that node's own address (no
/// tunnel, like flannel's host-gw): every node that runs pods must reach every other one
/// directly, on a subnet of one of its own interfaces. A node beyond a router would make the
/// pod network's unit fail to add its route.
pub(super) fn pod_network_l2(
    inv: &Inventory,
    obs: &BTreeMap<String, HostObservation>,
    out: &mut Vec<PreflightFinding>,
) {
    use crate::components::{ComponentId, component};
    let nodes = component(ComponentId::Kubelet).hosts(inv);
    if nodes.len() < 2 {
        return;
    }
    for h in &nodes {
        let Some(HostObservation::Reached { facts, .. }) = obs.get(&h.name) else {
            continue;
        };
        let subnets: Vec<ipnet::IpNet> = facts
            .addresses
            .iter()
            .filter_map(|(_, a)| a.parse().ok())
            .collect();
        if subnets.is_empty() {
            continue;
        }
        let far: Vec<String> = nodes
            .iter()
            .filter(|o| o.name != h.name && !subnets.iter().any(|n| n.contains(&o.address)))
            .map(|o| format!("{} ({})", o.name, o.address))
            .collect();
        out.push(if far.is_empty() {
            pass(
                &h.name,
                "PodNetworkL2",
                "every other node is on one of its subnets (pod routes go straight to them)",
            )
        } else {
            fail(
                &h.name,
                "PodNetworkL2",
                format!(
                    "not on any subnet of its own: {}; kinit routes a node's pods through the \
                     node's own address, which must be reachable without a router",
                    far.join(", ")
                ),
                "put every node that runs pods on one L2 network (one subnet), or skip this \
                 check with --ignore-preflight-errors=PodNetworkL2 if those routes are on-link",
            )
        });
    }
}

pub(super) fn vip(
    inv: &Inventory,
    obs: &BTreeMap<String, HostObservation>,
    op: &OperatorView,
    out: &mut Vec<PreflightFinding>,
) {
    if inv.endpoint.load_balancer != crate::config::LoadBalancerKind::HaproxyKeepalived {
        return;
    }
    let vip = &inv.endpoint.address;
    let holders: Vec<&str> = inv
        .hosts
        .iter()
        .filter(|h| match obs.get(&h.name) {
            Some(HostObservation::Reached { facts, .. }) => facts
                .addresses
                .iter()
                .any(|(_, a)| a.split('/').next() == Some(vip.as_str())),
            _ => false,
        })
        .map(|h| h.name.as_str())
        .collect();
    let Some(first_cp) = inv.control_plane().next() else {
        return;
    };
    let h = first_cp.name.as_str();
    let ours = holders
        .iter()
        .all(|n| inv.host(n).is_some_and(|x| x.has(Role::ControlPlane)));
    out.push(if !holders.is_empty() && ours {
        pass(
            h,
            "VirtualIP",
            format!("the VIP {vip} is held by {} (ours)", holders.join(", ")),
        )
    } else if !holders.is_empty() {
        fail(
            h,
            "VirtualIP",
            format!(
                "the VIP {vip} is assigned on {}, which is not a control-plane host",
                holders.join(", ")
            ),
            "remove the address from that host",
        )
    } else if op.vip_answers == Some(true) {
        fail(
            h,
            "VirtualIP",
            format!(
                "something already answers on the VIP {vip}, and it is none of the cluster's hosts"
            ),
            "pick an unused address for spec.controlPlaneEndpoint.address",
        )
    } else {
        pass(h, "VirtualIP", format!("the VIP {vip} is free"))
    });
}
