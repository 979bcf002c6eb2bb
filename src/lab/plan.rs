//! What a lab is made of, computed from the operator's request before anything is touched:
//! names, the bridge, every address. Pure.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::LabError;
use super::bridge::{UsedNet, nets_overlap, overlaps};

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
    /// Where the lab's binaries come from (a new lab only).
    pub bundle: LabBundleChoice,
    /// Nodes that run containers (a new lab only): see [`LabPlan::runtime`].
    pub runtime: bool,
}

/// The binaries a new lab's `kinit up` deploys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LabBundleChoice {
    /// The Kubernetes bundle built by `hack/build-upstream.sh` into its default directory when
    /// it is there, else the image's etcd.
    #[default]
    Default,
    /// etcd and etcdctl from the image's Debian packages (no Kubernetes binaries: the control
    /// plane's manifests are rendered but nothing runs them).
    Image,
    /// A directory of binaries holding at least etcd, etcdctl, kube-apiserver,
    /// kube-controller-manager, kube-scheduler and kubectl.
    Dir(std::path::PathBuf),
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
    /// The Kubernetes release of the lab's bundle (its control plane runs as systemd units);
    /// None: the image's etcd only.
    #[serde(default)]
    pub kubernetes: Option<String>,
    /// Nodes that can run containers: writable cgroup v1 controllers of their own, runc's
    /// keyring calls allowed, containerd's store outside the node's overlay, and the bundle's
    /// containerd, runc, CNI plugins, kubelet and pause image for `kinit up` (see `runtime`).
    #[serde(default)]
    pub runtime: bool,
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
            kubernetes: None,
            runtime: req.runtime,
        })
    }

    pub fn node(&self, name: &str) -> Option<&PlannedNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// The subnet chosen for a new lab that was given no `--subnet`, and the ones passed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetPick {
    pub subnet: Ipv4Net,
    pub skipped: Vec<SkippedSubnet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedSubnet {
    pub subnet: Ipv4Net,
    pub used_by: String,
}

/// The first /24 from `first` up to the end of its /16 (10.213.0.0/24, 10.213.1.0/24, ...,
/// 10.213.255.0/24 by default) that overlaps neither another lab's subnet (`labs`: name and
/// subnet, from their recorded state, so a lab whose bridge is gone still holds its subnet) nor
/// any address or route of this machine (`machine`, except what is on `own_bridge`).
pub fn pick_subnet(
    first: Ipv4Net,
    labs: &[(String, Ipv4Net)],
    machine: &[UsedNet],
    own_bridge: &str,
) -> Result<SubnetPick, LabError> {
    let start = u32::from(first.network()) & 0xffff_ff00;
    let end = start | 0xffff;
    let mut skipped = Vec::new();
    for base in (start..=end).step_by(256) {
        let subnet = Ipv4Net::new(Ipv4Addr::from(base), 24).expect("a /24");
        let holders: Vec<&String> = labs
            .iter()
            .filter(|(_, net)| nets_overlap(subnet, *net))
            .map(|(name, _)| name)
            .collect();
        let mut users: Vec<String> = holders.iter().map(|name| format!("lab {name}")).collect();
        // A lab's own bridge (its address and routes) is already named by the lab.
        let bridges: Vec<String> = holders.iter().map(|name| format!("kinit-{name}")).collect();
        let others: Vec<UsedNet> = machine
            .iter()
            .filter(|u| !u.dev.as_ref().is_some_and(|d| bridges.contains(d)))
            .cloned()
            .collect();
        users.extend(overlaps(subnet, own_bridge, &others));
        if users.is_empty() {
            return Ok(SubnetPick { subnet, skipped });
        }
        skipped.push(SkippedSubnet {
            subnet,
            used_by: users.join(", "),
        });
    }
    Err(LabError::Invalid(format!(
        "no free /24 from {} to {}: every one is used by a lab or this machine; choose a subnet with --subnet",
        Ipv4Net::new(Ipv4Addr::from(start), 24).expect("a /24"),
        Ipv4Net::new(Ipv4Addr::from(end & 0xffff_ff00), 24).expect("a /24"),
    )))
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
            ..Default::default()
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

    fn used(net: &str, dev: &str) -> UsedNet {
        UsedNet {
            net: net.parse().unwrap(),
            dev: Some(dev.to_string()),
            what: format!("address {net} on {dev}"),
        }
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_subnet_is_picked_when_it_is_free() {
        let pick = pick_subnet(
            net(DEFAULT_SUBNET),
            &[("other".into(), net("10.213.200.0/24"))],
            &[used("192.168.1.0/24", "eth0")],
            "kinit-b",
        )
        .unwrap();
        assert_eq!(pick.subnet, net("10.213.0.0/24"));
        assert!(pick.skipped.is_empty());
    }

    #[test]
    fn subnets_held_by_labs_or_this_machine_are_skipped_and_named() {
        let labs = [
            ("default".to_string(), net("10.213.0.0/24")),
            // A larger lab subnet covers several /24s.
            ("big".to_string(), net("10.213.2.0/23")),
        ];
        let machine = [
            used("10.213.1.7/24", "eth1"),
            UsedNet {
                net: net("10.213.4.0/24"),
                dev: Some("tun0".into()),
                what: "route 10.213.4.0/24 dev tun0".into(),
            },
            // On the new lab's own bridge (a leftover): not a user.
            used("10.213.5.1/24", "kinit-b"),
            // The default lab's bridge: named as the lab, not again as an address.
            used("10.213.0.1/24", "kinit-default"),
            // Something else on the same subnet as a lab is named too.
            used("10.213.3.9/32", "wg1"),
        ];
        let pick = pick_subnet(net(DEFAULT_SUBNET), &labs, &machine, "kinit-b").unwrap();
        assert_eq!(pick.subnet, net("10.213.5.0/24"));
        let skipped: Vec<(String, &str)> = pick
            .skipped
            .iter()
            .map(|s| (s.subnet.to_string(), s.used_by.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("10.213.0.0/24".to_string(), "lab default"),
                ("10.213.1.0/24".to_string(), "address 10.213.1.7/24 on eth1"),
                ("10.213.2.0/24".to_string(), "lab big"),
                (
                    "10.213.3.0/24".to_string(),
                    "lab big, address 10.213.3.9/32 on wg1"
                ),
                ("10.213.4.0/24".to_string(), "route 10.213.4.0/24 dev tun0"),
            ]
        );
    }

    #[test]
    fn a_wide_route_over_the_whole_range_leaves_nothing_to_pick() {
        let machine = [UsedNet {
            net: net("10.0.0.0/8"),
            dev: Some("wg0".into()),
            what: "route 10.0.0.0/8 dev wg0".into(),
        }];
        let err = pick_subnet(net(DEFAULT_SUBNET), &[], &machine, "kinit-b")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no free /24 from 10.213.0.0/24 to 10.213.255.0/24")
                && err.contains("--subnet"),
            "{err}"
        );
    }

    #[test]
    fn the_walk_starts_where_asked_and_ends_with_its_16() {
        let labs = [("a".to_string(), net("10.213.254.0/24"))];
        let pick = pick_subnet(net("10.213.254.0/24"), &labs, &[], "x").unwrap();
        assert_eq!(pick.subnet, net("10.213.255.0/24"));
        let labs = [
            ("a".to_string(), net("10.213.254.0/24")),
            ("b".to_string(), net("10.213.255.0/24")),
        ];
        assert!(pick_subnet(net("10.213.254.0/24"), &labs, &[], "x").is_err());
    }
}
