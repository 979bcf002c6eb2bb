//! A kubelet restart that no workload sees, as kubeadm's upgrade asks of each node: when the
//! Node's kubelet runs another release than `kubernetesVersion` (an upgrade), the node is
//! cordoned (marked as kinit's cordon, so a run interrupted here is finished by the next) and
//! the pods a controller re-creates are evicted first (PodDisruptionBudgets honoured: a budget that still refuses at
//! the deadline stops the run before the kubelet restarts, and the node is uncordoned again).
//! Bare pods stay: nothing would re-create them, and their containers outlive the kubelet.
//! The node is back when its Node is Ready with a status its kubelet posted since the restart;
//! then, if the cordon is kinit's, it is uncordoned (an operator's own cordon stays). A restart for a changed configuration drains
//! nothing. Without an answer from the API the restart goes on undrained, and the run says so.

use std::time::Duration;

use super::super::playbook::Phase;
use super::super::run_context::Engine;
use super::super::verify::{self, WaitError};
use crate::bundle::version::Version;
use crate::config::KubernetesVersion;
use crate::kube::drain::{self, Cordon, Leaving};
use crate::kube::{ApiClient, KubeApiError, nodes};

/// One API request.
const REQUEST: Duration = Duration::from_secs(5);
/// How long evictions may take (a budget refusing, pods shutting down).
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);
/// How long a restarted kubelet may take to post a Ready status.
const NODE_BACK: Duration = Duration::from_secs(120);

/// What kinit did to a node before its kubelet restarts, for [`Engine::node_back`].
#[derive(Debug, Clone, Default)]
pub(super) struct NodeVisit {
    pub host: String,
    /// The API client (admin.conf, through the VIP); `None` when it could not be built.
    client: Option<ApiClient>,
    /// The `Ready` condition's heartbeat before the restart.
    heartbeat_before: Option<String>,
    /// The cordon is kinit's, to lift once the node is back (an operator's stays).
    uncordon: bool,
}

/// The Node's kubelet (`status.nodeInfo.kubeletVersion`) runs another release than `target`:
/// its restart is an upgrade (or a downgrade), and the node is drained first. A version that
/// does not parse counts as another release: draining is the safe side.
fn moves_release(kubelet_version: &str, target: &KubernetesVersion) -> bool {
    Version::parse(kubelet_version).is_none_or(|v| {
        (v.major, v.minor, v.patch)
            != (
                u64::from(target.major),
                u64::from(target.minor),
                u64::from(target.patch),
            )
    })
}

/// The API client one roll of the kubelets uses for every node (admin.conf, through the VIP);
/// why there is none when it could not be built.
pub(super) struct NodeRoll {
    client: Result<ApiClient, String>,
}

impl NodeRoll {
    pub(super) fn new(inv: &crate::inventory::Inventory) -> NodeRoll {
        NodeRoll {
            client: ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf")
                .map_err(|e| e.to_string()),
        }
    }
}

impl NodeVisit {
    /// No visit: only whether the Node is Ready.
    pub(super) fn look(inv: &crate::inventory::Inventory, host: &str) -> NodeVisit {
        NodeVisit {
            host: host.to_string(),
            client: ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf").ok(),
            ..NodeVisit::default()
        }
    }
}

impl Engine {
    /// Say, before the kubelets roll (in a dry run too), which nodes will be drained: those
    /// whose kubelet runs another release than `kubernetesVersion`, in `order`. Nothing when
    /// none does or the API does not answer (each restart says so again then).
    pub(super) async fn announce_drains(
        &self,
        roll: &NodeRoll,
        phase: &Phase,
        turns: &[Vec<String>],
    ) {
        let target = &self.inventory.kubernetes_version;
        let Ok(client) = &roll.client else {
            return;
        };
        let Ok(nodes) = nodes::list(client, REQUEST).await else {
            return;
        };
        let moving: Vec<String> = turns
            .iter()
            .flatten()
            .filter_map(|h| {
                let n = nodes.get(h)?;
                moves_release(&n.kubelet_version, target)
                    .then(|| format!("{h} ({})", n.kubelet_version))
            })
            .collect();
        if !moving.is_empty() {
            let pace = match turns.iter().map(Vec::len).max() {
                Some(n) if n > 1 => {
                    format!("one control plane at a time, then up to {n} workers together")
                }
                _ => "one node at a time".to_string(),
            };
            self.note(
                phase,
                format!(
                    "kubelets moving to {target}, {pace}, each cordoned and drained first \
                     (PodDisruptionBudgets honoured) and uncordoned once Ready: {}",
                    moving.join(", ")
                ),
            );
        }
    }

    /// Before `host`'s kubelet restarts: its heartbeat noted, and when its kubelet moves to
    /// another release, the node cordoned and drained. Err: a budget kept pods there (the node
    /// is uncordoned again).
    pub(super) async fn node_leaves(
        &self,
        roll: &NodeRoll,
        phase: &Phase,
        host: &str,
    ) -> Result<NodeVisit, WaitError> {
        let mut visit = NodeVisit {
            host: host.to_string(),
            ..NodeVisit::default()
        };
        let client = match &roll.client {
            Ok(c) => c.clone(),
            Err(e) => {
                self.note(
                    phase,
                    format!("{host}: not drained before its kubelet restarts: {e}"),
                );
                return Ok(visit);
            }
        };
        let before = match nodes::get(&client, host, REQUEST).await {
            Ok(n) => n,
            Err(e) => {
                self.note(
                    phase,
                    format!("{host}: not drained before its kubelet restarts: {e}"),
                );
                visit.client = Some(client);
                return Ok(visit);
            }
        };
        visit.heartbeat_before = Some(before.heartbeat.clone());
        let target = &self.inventory.kubernetes_version;
        let upgrade = moves_release(&before.kubelet_version, target);
        // An operator's own cordon is theirs: drained under it, left in place after.
        let ours = !before.unschedulable || before.cordoned_by_kinit;
        visit.uncordon = before.cordoned_by_kinit || (upgrade && ours);
        if upgrade {
            if ours {
                let reason = format!("kubelet {} -> {target}", before.kubelet_version);
                drain::set_unschedulable(&client, host, Cordon::On(Some(&reason)), REQUEST)
                    .await
                    .map_err(|e| WaitError::Invalid(format!("cordoning {host}: {e}")))?;
            }
            let limits = (REQUEST, DRAIN_DEADLINE);
            let drained = drain::drain(&client, host, Leaving::ForRestart, limits, &self.cancel)
                .await
                .map_err(|e| match e {
                    // Cordoned by kinit's mark: the next run lifts it.
                    KubeApiError::Interrupted { .. } => WaitError::Cancelled,
                    e => WaitError::Invalid(format!("draining {host}: {e}")),
                })?;
            if !drained.left.is_empty() {
                if visit.uncordon {
                    let _ = drain::set_unschedulable(&client, host, Cordon::Off, REQUEST).await;
                }
                return Err(WaitError::Invalid(format!(
                    "its kubelet was not restarted: after {} s these pods were still on {host} \
                     (a PodDisruptionBudget refusing, or a slow shutdown): {}",
                    DRAIN_DEADLINE.as_secs(),
                    drained.left.join(", ")
                )));
            }
            self.note(
                phase,
                if drained.evicted.is_empty() {
                    format!(
                        "{host}: cordoned for its kubelet's upgrade ({} -> {target}): no pod to \
                         evict",
                        before.kubelet_version
                    )
                } else {
                    format!(
                        "{host}: cordoned and drained for its kubelet's upgrade ({} -> {target}): \
                         evicted {}",
                        before.kubelet_version,
                        drained.evicted.join(", ")
                    )
                },
            );
        }
        visit.client = Some(client);
        Ok(visit)
    }

    /// The node stays as it was (its kubelet not restarted after all): uncordoned when kinit
    /// cordoned it. Best effort: the next run finishes a cordon of kinit's that is left.
    pub(super) async fn node_stays(&self, visit: &NodeVisit) {
        if let (true, Some(client)) = (visit.uncordon, &visit.client) {
            let _ = drain::set_unschedulable(client, &visit.host, Cordon::Off, REQUEST).await;
        }
    }

    /// The node serves again: its Node Ready, with a status posted since the restart; then
    /// uncordoned when kinit cordoned it.
    pub(super) async fn node_back(&self, visit: &NodeVisit) -> Result<String, WaitError> {
        let Some(client) = &visit.client else {
            return Ok("not checked: the API was not reachable".to_string());
        };
        let host = visit.host.as_str();
        let before = visit.heartbeat_before.as_deref();
        let ready = verify::until(NODE_BACK, &self.cancel, || async {
            let node = nodes::get(client, host, REQUEST)
                .await
                .map_err(|e| e.to_string())?;
            match (node.ready, before) {
                (false, _) => Err(format!("Node {host} is not Ready ({})", node.why)),
                (true, Some(b)) if b == node.heartbeat => Err(format!(
                    "Node {host} has posted no status since its kubelet restarted"
                )),
                (true, _) => Ok(format!("Node {host} is Ready")),
            }
        })
        .await?;
        if visit.uncordon {
            drain::set_unschedulable(client, host, Cordon::Off, REQUEST)
                .await
                .map_err(|e| WaitError::Invalid(format!("uncordoning {host}: {e}")))?;
            return Ok(format!("{ready}, uncordoned"));
        }
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubelet_on_another_release_moves_and_one_on_the_target_only_restarts() {
        let target = KubernetesVersion {
            major: 1,
            minor: 37,
            patch: 2,
            pre: None,
        };
        assert!(!moves_release("v1.37.2", &target));
        assert!(moves_release("v1.36.3", &target), "a minor upgrade");
        assert!(moves_release("v1.37.1", &target), "a patch upgrade");
        assert!(moves_release("v1.37.20", &target), "not a prefix match");
        assert!(moves_release("", &target), "unknown: drained to be safe");
    }
}
