//! What a drill did and measured: a record an operator can keep.

use serde::Serialize;

use super::kind::DrillKind;
use super::series::LoopFigures;
use super::target::Target;
use super::thresholds::{Thresholds, Verdict};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub cluster: String,
    pub drill: DrillKind,
    pub target: Target,
    /// How long the piece was meant to stay down (`--duration`).
    pub duration_ms: u64,
    pub before: Placement,
    /// Where the VIP / the leadership went while the piece was down.
    pub during: Placement,
    pub after: Placement,
    /// `systemctl is-active` on the target right after the stop, and at the end.
    pub unit_state_during: String,
    pub unit_state_after: String,
    /// From the stop until the VIP moved / a new leader was elected / the API answered again;
    /// for a node, from the kubelet's start until its Node was Ready again (`None`: not seen).
    pub recovered_after_ms: Option<u64>,
    /// Node drill: from the stop until the control plane marked the Node NotReady (`None`: not
    /// seen, or another drill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_not_ready_after_ms: Option<u64>,
    /// From the start until `status` was healthy again (`None`: not within the limit).
    pub healthy_after_ms: Option<u64>,
    pub api: LoopFigures,
    pub etcd_writes: LoopFigures,
    pub thresholds: Thresholds,
    pub verdict: Verdict,
    pub interrupted: bool,
    /// What happened when, on the drill's clock.
    pub events: Vec<DrillEvent>,
}

/// Who held the VIP and etcd's leadership at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub vip_holder: Option<String>,
    pub etcd_leader: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillEvent {
    pub at_ms: u64,
    pub what: String,
}

impl DrillReport {
    pub fn passed(&self) -> bool {
        self.verdict.pass
    }
}
