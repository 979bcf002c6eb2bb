//! Nodes as the API sees them: registered or not, and their `Ready` condition.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{ApiClient, KubeApiError};

/// One Node object's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeState {
    /// `Ready` is `True`.
    pub ready: bool,
    /// The `Ready` condition's reason and message when it is not (`KubeletNotReady: ...`).
    pub why: String,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// The kubelet's release (`status.nodeInfo.kubeletVersion`).
    pub kubelet_version: String,
    /// `spec.podCIDR` (empty until set).
    pub pod_cidr: String,
}

/// Every Node, by name.
pub async fn list(
    client: &ApiClient,
    timeout: Duration,
) -> Result<BTreeMap<String, NodeState>, KubeApiError> {
    let list = client.get_json("/api/v1/nodes", timeout).await?;
    Ok(parse(&list))
}

fn parse(list: &serde_json::Value) -> BTreeMap<String, NodeState> {
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let Some(name) = item["metadata"]["name"].as_str() else {
            continue;
        };
        let ready = item["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready");
        let (is_ready, why) = match ready {
            Some(c) => (
                c["status"] == "True",
                format!(
                    "{}: {}",
                    c["reason"].as_str().unwrap_or("?"),
                    c["message"].as_str().unwrap_or("")
                ),
            ),
            None => (false, "no Ready condition yet".to_string()),
        };
        out.insert(
            name.to_string(),
            NodeState {
                ready: is_ready,
                why,
                unschedulable: item["spec"]["unschedulable"].as_bool().unwrap_or(false),
                kubelet_version: item["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                pod_cidr: item["spec"]["podCIDR"].as_str().unwrap_or("").to_string(),
            },
        );
    }
    out
}

/// Record `cidr` as the Node's pod slice (`spec.podCIDR`, `spec.podCIDRs`): read, changed,
/// written back with its resourceVersion, so a concurrent change is refused, not overwritten.
/// The API lets these fields be set once; a Node that has another slice is an error naming both.
pub async fn set_pod_cidr(
    client: &ApiClient,
    node: &str,
    cidr: &str,
    timeout: Duration,
) -> Result<(), KubeApiError> {
    let path = format!("/api/v1/nodes/{node}");
    let mut object = client.get_json(&path, timeout).await?;
    match object["spec"]["podCIDR"].as_str() {
        Some(have) if have == cidr => return Ok(()),
        Some(have) if !have.is_empty() => {
            return Err(KubeApiError::Decode {
                url: format!("{}{path}", client.server()),
                message: format!(
                    "the Node has the pod addresses {have}, but its CNI bridge uses {cidr}"
                ),
            });
        }
        _ => {}
    }
    object["spec"]["podCIDR"] = serde_json::json!(cidr);
    object["spec"]["podCIDRs"] = serde_json::json!([cidr]);
    let body = serde_json::to_vec(&object).expect("serializable");
    let (status, answer) = client.send("PUT", &path, Some(&body), timeout).await?;
    if status != 200 {
        return Err(super::status_error(
            format!("{}{path}", client.server()),
            status,
            &answer,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_not_ready_nodes_are_told_apart_with_the_reason() {
        let list = serde_json::json!({"items": [
            {"metadata": {"name": "cp1"}, "spec": {},
             "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                        "nodeInfo": {"kubeletVersion": "v1.37.2"}}},
            {"metadata": {"name": "w1"}, "spec": {"unschedulable": true},
             "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                       {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                                        "message": "container runtime network not ready"}]}},
            {"metadata": {"name": "w2"}, "status": {}}
        ]});
        let nodes = parse(&list);
        assert!(nodes["cp1"].ready);
        assert_eq!(nodes["cp1"].kubelet_version, "v1.37.2");
        assert!(!nodes["w1"].ready);
        assert!(nodes["w1"].unschedulable);
        assert_eq!(
            nodes["w1"].why,
            "KubeletNotReady: container runtime network not ready"
        );
        assert!(!nodes["w2"].ready);
        assert_eq!(nodes["w2"].why, "no Ready condition yet");
        assert_eq!(nodes["w2"].pod_cidr, "");
    }
}
