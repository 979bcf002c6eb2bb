//! What a lab is made of, computed from the operator's request before anything is touched:
//! names, the bridge, every address. Pure.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::LabError;

pub const DEFAULT_NAME: &str = "default";
pub const DEFAULT_NODES: u32 = 3;
/// Unusual enough not to clash with home, office or cloud networks.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";
pub const MAX_NODES: u32 = 20;
/// `kinit-<name>` must fit a Linux interface name (15 bytes), and so must nspawn's host-side
/// veth `vb-<name>-<node>` with node names up to 3 characters.
pub const MAX_NAME_LEN: usize = 8;
/// How many nodes run etcd and the control plane; the rest are workers.
pub const CONTROL_PLANES: u32 = 3;

const NODE_OFFSET: u32 = 11;
const VIP_OFFSET: u32 = 100;

#[derive(Debug, Clone, Default)]
pub struct LabRequest {
    pub name: Option<String>,
    pub nodes: Option<u32>,
    pub subnet: Option<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPlan {
    pub name: String,
    pub subnet: Ipv4Net,
    pub bridge: String,
    /// The subnet's first address, on the bridge: the operator machine's side of the lab.
    pub bridge_address: Ipv4Addr,
    /// The virtual IP the generated cluster.yaml gives keepalived.
    pub vip: Ipv4Addr,
    pub nodes: Vec<PlannedNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedNode {
    /// Hostname and Kubernetes node name: `cp1..cp3`, then `w1..`.
    pub name: String,
    /// nspawn's machine name, unique on this machine: `<lab>-<node>`.
    pub machine: String,
    /// The host side of the node's veth, named by nspawn after the machine.
    pub veth: String,
    pub address: Ipv4Addr,
    pub control_plane: bool,
}

pub fn validate_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(LabError::Invalid(format!(
            "lab name `{name}`: use 1 to {MAX_NAME_LEN} lowercase letters, digits or '-', not starting or ending with '-' \
             (it names the bridge kinit-<name> and the nodes' interfaces)"
        )))
    }
}

pub fn node_names(count: u32) -> Vec<(String, bool)> {
    (1..=count)
        .map(|i| {
            if i <= CONTROL_PLANES {
                (format!("cp{i}"), true)
            } else {
                (format!("w{}", i - CONTROL_PLANES), false)
            }
        })
        .collect()
}

impl LabPlan {
    pub fn new(req: &LabRequest) -> Result<LabPlan, LabError> {
        let name = req.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
        validate_name(&name)?;
        let count = req.nodes.unwrap_or(DEFAULT_NODES);
        if !(1..=MAX_NODES).contains(&count) {
            return Err(LabError::Invalid(format!(
                "--nodes {count}: a lab has 1 to {MAX_NODES} nodes"
            )));
        }
        let subnet = req
            .subnet
            .unwrap_or_else(|| DEFAULT_SUBNET.parse().expect("default subnet parses"))
            .trunc();
        if subnet.prefix_len() > 25 {
            return Err(LabError::Invalid(format!(
                "--subnet {subnet}: use a /25 or larger (the VIP is the subnet's 100th address)"
            )));
        }
        if !subnet.network().is_private() {
            return Err(LabError::Invalid(format!(
                "--subnet {subnet}: use a private range (10/8, 172.16/12, 192.168/16) so the lab never shadows a real network"
            )));
        }
        let at = |offset: u32| Ipv4Addr::from(u32::from(subnet.network()) + offset);
        let nodes = node_names(count)
            .into_iter()
            .enumerate()
            .map(|(i, (node, control_plane))| PlannedNode {
                machine: format!("{name}-{node}"),
                veth: format!("vb-{name}-{node}"),
                address: at(NODE_OFFSET + i as u32),
                name: node,
                control_plane,
            })
            .collect();
        Ok(LabPlan {
            bridge: format!("kinit-{name}"),
            bridge_address: at(1),
            vip: at(VIP_OFFSET),
            name,
            subnet,
            nodes,
        })
    }

    pub fn node(&self, name: &str) -> Option<&PlannedNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lab_has_three_control_planes_on_the_default_subnet() {
        let plan = LabPlan::new(&LabRequest::default()).unwrap();
        assert_eq!(plan.bridge, "kinit-default");
        assert_eq!(plan.bridge_address, Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(plan.vip, Ipv4Addr::new(10, 213, 0, 100));
        let names: Vec<_> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["cp1", "cp2", "cp3"]);
        assert_eq!(plan.nodes[2].address, Ipv4Addr::new(10, 213, 0, 13));
        assert!(plan.nodes.iter().all(|n| n.control_plane));
    }

    #[test]
    fn interface_names_fit_the_kernel_limit_for_the_longest_names() {
        let plan = LabPlan::new(&LabRequest {
            name: Some("abcdefgh".into()),
            nodes: Some(MAX_NODES),
            subnet: Some("192.168.50.0/24".parse().unwrap()),
        })
        .unwrap();
        assert!(plan.bridge.len() <= 15);
        for n in &plan.nodes {
            assert!(n.veth.len() <= 15, "{} too long", n.veth);
        }
        assert_eq!(plan.nodes[3].name, "w1");
        assert!(!plan.nodes[3].control_plane);
        assert!(plan.nodes.iter().all(|n| n.address != plan.vip));
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let bad = |req: LabRequest, needle: &str| {
            let err = LabPlan::new(&req).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        };
        bad(
            LabRequest {
                name: Some("Has_Caps".into()),
                ..Default::default()
            },
            "lab name",
        );
        bad(
            LabRequest {
                name: Some("waytoolongname".into()),
                ..Default::default()
            },
            "1 to 8",
        );
        bad(
            LabRequest {
                nodes: Some(0),
                ..Default::default()
            },
            "--nodes 0",
        );
        bad(
            LabRequest {
                subnet: Some("10.9.0.0/28".parse().unwrap()),
                ..Default::default()
            },
            "/25",
        );
        bad(
            LabRequest {
                subnet: Some("8.8.0.0/24".parse().unwrap()),
                ..Default::default()
            },
            "private",
        );
    }
}
