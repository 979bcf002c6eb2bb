//! Which drill the operator asked for.

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
}

impl DrillKind {
    pub fn name(&self) -> &'static str {
        match self {
            DrillKind::VipHolder => "vip-holder",
            DrillKind::EtcdLeader => "etcd-leader",
            DrillKind::Apiserver(_) => "apiserver",
        }
    }
}

impl std::fmt::Display for DrillKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrillKind::Apiserver(h) => write!(f, "apiserver {h}"),
            other => f.write_str(other.name()),
        }
    }
}
