//! Nodes as the API sees them: registered or not, and their `Ready` condition.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{ApiClient, KubeApiError};

/// One Node object's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// The `Ready` condition's `lastHeartbeatTime`: it changes when the kubelet posts its
    /// status (on its start, then when something changed or every few minutes).
    #[serde(skip)]
    pub heartbeat: String,
    /// Cordoned by kinit for a while ([`super::drain::CORDONED_BY_KINIT`]): kinit's to lift.
    #[serde(skip)]
    pub cordoned_by_kinit: bool,
}

/// Every Node, by name.
pub async fn list(
    client: &ApiClient,
    timeout: Duration,
) -> Result<BTreeMap<String, NodeState>, KubeApiError> {
    let list = client.get_json("/api/v1/nodes", timeout).await?;
    Ok(parse(&list))
}

/// One Node, by name.
pub async fn get(
    client: &ApiClient,
    name: &str,
    timeout: Duration,
) -> Result<NodeState, KubeApiError> {
    let node = client
        .get_json(&format!("/api/v1/nodes/{name}"), timeout)
        .await?;
    Ok(state(&node))
}

fn parse(list: &serde_json::Value) -> BTreeMap<String, NodeState> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| Some((item["metadata"]["name"].as_str()?.to_string(), state(item))))
        .collect()
}

fn state(item: &serde_json::Value) -> NodeState {
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
    NodeState {
        ready: is_ready,
        why,
        unschedulable: item["spec"]["unschedulable"].as_bool().unwrap_or(false),
        kubelet_version: item["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        pod_cidr: item["spec"]["podCIDR"].as_str().unwrap_or("").to_string(),
        cordoned_by_kinit: item["metadata"]["annotations"]
            .get(super::drain::CORDONED_BY_KINIT)
            .is_some(),
        heartbeat: ready
            .and_then(|c| c["lastHeartbeatTime"].as_str())
            .unwrap_or("")
            .to_string(),
    }
}

/// kubeadm's label on control-plane nodes, and its taint on those that are not also workers.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// kubeadm's label keeping control planes out of external load balancers' backends.
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// What kinit sets on a Node object once it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// `spec.podCIDR`: the slice its CNI bridge uses.
    pub pod_cidr: String,
    /// A control-plane host: kubeadm's labels.
    pub control_plane: bool,
    /// The control-plane taint (`NoSchedule`): a control plane that is not also a worker.
    pub tainted: bool,
}

/// Give the Node `settings`: read, changed, written back with its resourceVersion (a
/// concurrent change is refused, not overwritten), and not written at all when it has them.
/// Labels are added, never removed; the taint follows `tainted` both ways. The API lets the pod
/// slice be set once: a Node that has another one is an error naming both.
pub async fn apply_settings(
    client: &ApiClient,
    node: &str,
    settings: &NodeSettings,
    timeout: Duration,
) -> Result<(), KubeApiError> {
    let path = format!("/api/v1/nodes/{node}");
    let mut object = client.get_json(&path, timeout).await?;
    let changed = settle(&mut object, settings).map_err(|message| KubeApiError::Decode {
        url: format!("{}{path}", client.server()),
        message,
    })?;
    if !changed {
        return Ok(());
    }
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

/// Change the Node `object` to have `settings`; whether anything changed.
fn settle(object: &mut serde_json::Value, settings: &NodeSettings) -> Result<bool, String> {
    use serde_json::json;
    let mut changed = false;
    match object["spec"]["podCIDR"].as_str() {
        Some(have) if have == settings.pod_cidr => {}
        Some(have) if !have.is_empty() => {
            return Err(format!(
                "the Node has the pod addresses {have}, but its CNI bridge uses {}",
                settings.pod_cidr
            ));
        }
        _ => {
            object["spec"]["podCIDR"] = json!(settings.pod_cidr);
            object["spec"]["podCIDRs"] = json!([settings.pod_cidr]);
            changed = true;
        }
    }
    if settings.control_plane {
        for label in [CONTROL_PLANE_LABEL, EXCLUDE_FROM_LB_LABEL] {
            if object["metadata"]["labels"].get(label).is_none() {
                if !object["metadata"]["labels"].is_object() {
                    object["metadata"]["labels"] = json!({});
                }
                object["metadata"]["labels"][label] = json!("");
                changed = true;
            }
        }
    }
    let is_ours =
        |t: &serde_json::Value| t["key"] == CONTROL_PLANE_LABEL && t["effect"] == "NoSchedule";
    let mut taints: Vec<serde_json::Value> = object["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = taints.iter().any(is_ours);
    if settings.tainted != has {
        if settings.tainted {
            taints.push(json!({"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}));
        } else {
            taints.retain(|t| !is_ours(t));
        }
        object["spec"]["taints"] = json!(taints);
        changed = true;
    }
    Ok(changed)
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

    fn settings(control_plane: bool, tainted: bool) -> NodeSettings {
        NodeSettings {
            pod_cidr: "10.244.11.0/24".into(),
            control_plane,
            tainted,
        }
    }

    #[test]
    fn a_new_control_plane_node_gets_its_slice_kubeadms_labels_and_taint_once() {
        let mut node = serde_json::json!({"metadata": {"name": "cp1", "labels": {"kubernetes.io/hostname": "cp1"}},
                                          "spec": {}});
        assert_eq!(settle(&mut node, &settings(true, true)), Ok(true));
        assert_eq!(node["spec"]["podCIDR"], "10.244.11.0/24");
        assert_eq!(
            node["spec"]["podCIDRs"],
            serde_json::json!(["10.244.11.0/24"])
        );
        assert_eq!(node["metadata"]["labels"][CONTROL_PLANE_LABEL], "");
        assert_eq!(node["metadata"]["labels"][EXCLUDE_FROM_LB_LABEL], "");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "cp1");
        assert_eq!(
            node["spec"]["taints"],
            serde_json::json!([{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}])
        );
        // Settled: nothing to write the second time.
        assert_eq!(settle(&mut node, &settings(true, true)), Ok(false));
    }

    #[test]
    fn a_control_plane_that_is_also_a_worker_loses_the_taint_and_keeps_other_taints() {
        let mut node = serde_json::json!({"metadata": {"name": "cp1"},
            "spec": {"podCIDR": "10.244.11.0/24", "taints": [
                {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"},
                {"key": "example.com/gpu", "effect": "NoSchedule"}]}});
        assert_eq!(settle(&mut node, &settings(true, false)), Ok(true));
        assert_eq!(
            node["spec"]["taints"],
            serde_json::json!([{"key": "example.com/gpu", "effect": "NoSchedule"}])
        );
        // A worker gets neither labels nor taint.
        let mut worker = serde_json::json!({"metadata": {"name": "w1"}, "spec": {}});
        assert_eq!(settle(&mut worker, &settings(false, false)), Ok(true));
        assert!(worker["metadata"].get("labels").is_none());
        assert!(worker["spec"].get("taints").is_none());
    }

    #[test]
    fn a_node_with_another_slice_is_an_error_naming_both() {
        let mut node =
            serde_json::json!({"metadata": {"name": "w1"}, "spec": {"podCIDR": "10.244.99.0/24"}});
        let e = settle(&mut node, &settings(false, false)).unwrap_err();
        assert!(
            e.contains("10.244.99.0/24") && e.contains("10.244.11.0/24"),
            "{e}"
        );
    }
}
