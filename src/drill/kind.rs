//! Which drill the operator asked for.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "host")]
pub enum DrillKind {
    /// Stop keepalived on the host holding the VIP.
    VipHolder,
    /// Stop etcd on the current leader.
    EtcdLeader,
    /// Stop kube-apiserver on this host.
    Apiserver(String),
    /// Stop the kubelet on this host: the node is lost to the control plane while its pods
    /// go on running, as when a node's kubelet dies or it drops off the network.
    Node(String),
}

/// kube-controller-manager's `--node-monitor-grace-period` default since v1.32: a Node whose
/// kubelet stopped reporting is marked NotReady only this long after its last report.
pub const NODE_MONITOR_GRACE: Duration = Duration::from_secs(50);

impl DrillKind {
    pub fn name(&self) -> &'static str {
        match self {
            DrillKind::VipHolder => "vip-holder",
            DrillKind::EtcdLeader => "etcd-leader",
            DrillKind::Apiserver(_) => "apiserver",
            DrillKind::Node(_) => "node",
        }
    }

    /// How long the piece stays down when `--duration` is not given: long enough for the
    /// cluster to route around it. A node is noticed only after the controller-manager's grace
    /// period (plus up to one lease renewal and one monitor pass), so its drill lasts longer.
    pub fn default_duration(&self) -> Duration {
        match self {
            DrillKind::Node(_) => NODE_MONITOR_GRACE + Duration::from_secs(20),
            _ => Duration::from_secs(10),
        }
    }
}

impl std::fmt::Display for DrillKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrillKind::Apiserver(h) => write!(f, "apiserver {h}"),
            DrillKind::Node(h) => write!(f, "node {h}"),
            other => f.write_str(other.name()),
        }
    }
}
