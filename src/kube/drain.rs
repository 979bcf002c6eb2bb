//! A node leaving the cluster, for good or for its kubelet's upgrade: cordoned, its pods
//! evicted (the Eviction API, so PodDisruptionBudgets are honoured), and for good its Node
//! object deleted once the host is reset. Mirror pods (the kubelet's static pods) and DaemonSet
//! pods stay, as `kubectl drain` leaves them: they go with the kubelet.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{ApiClient, KubeApiError, status_error};

/// What draining one node did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drained {
    /// Pods evicted (and gone before the deadline).
    pub evicted: Vec<String>,
    /// Pods still there at the deadline (a PodDisruptionBudget refusing, a slow shutdown).
    pub left: Vec<String>,
}

/// Why a node is drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// It leaves the cluster: every pod goes.
    ForGood,
    /// Its kubelet restarts onto a new release: only pods a controller re-creates elsewhere
    /// go. A bare pod would be gone for good, and it survives the kubelet's restart (its
    /// containers outlive the kubelet).
    ForRestart,
}

/// The pods on `node` a drain evicts, as `namespace/name`.
fn evictable(list: &Value, why: Leaving) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            let mirror = p["metadata"]["annotations"]
                .get("kubernetes.io/config.mirror")
                .is_some();
            let daemon = p["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["kind"] == "DaemonSet" && o["controller"] == true);
            let done = matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
            let managed = p["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["controller"] == true);
            !mirror && !daemon && !done && (managed || why == Leaving::ForGood)
        })
        .filter_map(|p| {
            Some((
                p["metadata"]["namespace"].as_str()?.to_string(),
                p["metadata"]["name"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Every pod in a list, as (namespace, name).
fn all_pods(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["metadata"]["namespace"].as_str()?.to_string(),
                p["metadata"]["name"].as_str()?.to_string(),
            ))
        })
        .collect()
}

async fn pods_on(client: &ApiClient, node: &str, timeout: Duration) -> Result<Value, KubeApiError> {
    client
        .get_json(
            &format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"),
            timeout,
        )
        .await
}

/// The annotation on a Node kinit cordoned for a while (its kubelet's upgrade): a later run
/// that finds it still there (an interrupted run) knows the cordon is kinit's to lift.
pub const CORDONED_BY_KINIT: &str = "kinit.io/cordoned-for";

/// What to do to a Node's `spec.unschedulable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cordon<'a> {
    /// Cordon it; with a reason, marked [`CORDONED_BY_KINIT`].
    On(Option<&'a str>),
    /// Uncordon it, and drop kinit's mark.
    Off,
    /// Uncordon it only when kinit's mark says the cordon is kinit's (a removal cut short puts
    /// back what it cordoned; an operator's own cordon stays).
    OffIfKinits,
}

/// Change the Node `object` as `cordon` asks; false when nothing changes. A Node cordoned
/// already stays as it is (an operator's cordon never becomes kinit's).
fn cordoned(object: &mut Value, cordon: Cordon<'_>) -> bool {
    let was = object["spec"]["unschedulable"].as_bool().unwrap_or(false);
    let marked = object["metadata"]["annotations"]
        .get(CORDONED_BY_KINIT)
        .is_some();
    match cordon {
        Cordon::On(_) if was => false,
        Cordon::On(reason) => {
            object["spec"]["unschedulable"] = json!(true);
            if let Some(reason) = reason {
                if !object["metadata"]["annotations"].is_object() {
                    object["metadata"]["annotations"] = json!({});
                }
                object["metadata"]["annotations"][CORDONED_BY_KINIT] = json!(reason);
            }
            true
        }
        Cordon::Off if !was && !marked => false,
        Cordon::OffIfKinits if !marked => false,
        Cordon::Off | Cordon::OffIfKinits => {
            object["spec"]["unschedulable"] = json!(false);
            if let Some(a) = object["metadata"]["annotations"].as_object_mut() {
                a.remove(CORDONED_BY_KINIT);
            }
            true
        }
    }
}

/// Cordon or uncordon `node` (`kubectl cordon` / `uncordon`); a Node that is not there is fine.
pub async fn set_unschedulable(
    client: &ApiClient,
    node: &str,
    cordon: Cordon<'_>,
    timeout: Duration,
) -> Result<(), KubeApiError> {
    let path = format!("/api/v1/nodes/{node}");
    let (status, body) = client.send("GET", &path, None, timeout).await?;
    if status == 404 {
        return Ok(());
    }
    if status != 200 {
        return Err(status_error(
            format!("{}{path}", client.server()),
            status,
            &body,
        ));
    }
    let mut object: Value = serde_json::from_slice(&body).map_err(|e| KubeApiError::Decode {
        url: format!("{}{path}", client.server()),
        message: e.to_string(),
    })?;
    if !cordoned(&mut object, cordon) {
        return Ok(());
    }
    let body = serde_json::to_vec(&object).expect("serializable");
    let (status, answer) = client.send("PUT", &path, Some(&body), timeout).await?;
    if status != 200 {
        return Err(status_error(
            format!("{}{path}", client.server()),
            status,
            &answer,
        ));
    }
    Ok(())
}

/// What kinit's mark on a Node it cordoned for good says.
pub const LEAVING_FOR_GOOD: &str = "leaving the cluster";

/// Cordon `node` and evict its pods, asking again while a disruption budget refuses (429),
/// until they are gone or `deadline` has passed, or `cancel` fires (an error: the Node stays
/// cordoned, for the caller to put back). A Node cordoned for good carries kinit's mark, so
/// that only kinit's own cordon is lifted when the removal is cut short.
pub async fn drain(
    client: &ApiClient,
    node: &str,
    why: Leaving,
    (request, deadline): (Duration, Duration),
    cancel: &CancellationToken,
) -> Result<Drained, KubeApiError> {
    let started = Instant::now();
    let mark = (why == Leaving::ForGood).then_some(LEAVING_FOR_GOOD);
    set_unschedulable(client, node, Cordon::On(mark), request).await?;
    let first = evictable(&pods_on(client, node, request).await?, why);
    loop {
        let list = pods_on(client, node, request).await?;
        // An evicted pod is gone once its object is: a pod whose containers stopped is still
        // being finalized by its kubelet (volumes, status), and a kubelet stopped now would
        // leave the object behind until the pod garbage collector finds it.
        let present = all_pods(&list);
        let now = evictable(&list, why);
        let waiting: Vec<&(String, String)> =
            first.iter().filter(|p| present.contains(p)).collect();
        let gone = |p: &(String, String)| !present.contains(p);
        if (now.is_empty() && waiting.is_empty()) || started.elapsed() >= deadline {
            let name = |(ns, n): &(String, String)| format!("{ns}/{n}");
            let mut left: Vec<String> = now.iter().map(name).collect();
            left.extend(waiting.into_iter().filter(|p| !now.contains(p)).map(name));
            return Ok(Drained {
                evicted: first.iter().filter(|p| gone(p)).map(name).collect(),
                left,
            });
        }
        for (ns, name) in &now {
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}/eviction");
            let body = serde_json::to_vec(&json!({
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": ns},
            }))
            .expect("serializable");
            let (status, answer) = client.send("POST", &path, Some(&body), request).await?;
            // 429: a budget says not now; 404: already gone.
            if !matches!(status, 200 | 201 | 404 | 429) {
                return Err(status_error(
                    format!("{}{path}", client.server()),
                    status,
                    &answer,
                ));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = cancel.cancelled() => {
                return Err(KubeApiError::Interrupted { node: node.to_string() });
            }
        }
    }
}

/// Delete the Node object; one that is not there is fine.
pub async fn delete_node(
    client: &ApiClient,
    node: &str,
    timeout: Duration,
) -> Result<(), KubeApiError> {
    let path = format!("/api/v1/nodes/{node}");
    let (status, answer) = client.send("DELETE", &path, None, timeout).await?;
    if !matches!(status, 200 | 202 | 404) {
        return Err(status_error(
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
    fn a_drain_evicts_workloads_and_leaves_mirror_daemonset_and_finished_pods() {
        let list = json!({"items": [
            {"metadata": {"namespace": "default", "name": "web"}, "status": {"phase": "Running"}},
            {"metadata": {"namespace": "kube-system", "name": "etcd-w1",
                          "annotations": {"kubernetes.io/config.mirror": "abc"}},
             "status": {"phase": "Running"}},
            {"metadata": {"namespace": "kube-system", "name": "proxy-x",
                          "ownerReferences": [{"kind": "DaemonSet", "controller": true}]},
             "status": {"phase": "Running"}},
            {"metadata": {"namespace": "default", "name": "job-1"}, "status": {"phase": "Succeeded"}},
            {"metadata": {"namespace": "default", "name": "rs-1",
                          "ownerReferences": [{"kind": "ReplicaSet", "controller": true}]},
             "status": {"phase": "Pending"}}
        ]});
        assert_eq!(
            evictable(&list, Leaving::ForGood),
            [
                ("default".to_string(), "web".to_string()),
                ("default".to_string(), "rs-1".to_string())
            ]
        );
        // For a kubelet's restart the bare pod stays: nothing would re-create it.
        assert_eq!(
            evictable(&list, Leaving::ForRestart),
            [("default".to_string(), "rs-1".to_string())]
        );
        // An evicted pod counts as gone only once its object is (a Failed pod whose kubelet
        // has not finalized it yet is still listed).
        assert_eq!(all_pods(&list).len(), 5);
    }

    #[test]
    fn kinits_cordon_is_marked_and_lifted_and_an_operators_cordon_is_left_alone() {
        let mut node = json!({"metadata": {"name": "w1"}, "spec": {}});
        assert!(cordoned(
            &mut node,
            Cordon::On(Some("kubelet v1.36.3 -> v1.37.2"))
        ));
        assert_eq!(node["spec"]["unschedulable"], true);
        assert_eq!(
            node["metadata"]["annotations"][CORDONED_BY_KINIT],
            "kubelet v1.36.3 -> v1.37.2"
        );
        // Cordoned already (a run interrupted here): nothing to do, the mark stays.
        assert!(!cordoned(&mut node, Cordon::On(None)));
        assert!(!cordoned(&mut node, Cordon::On(Some("again"))));
        assert!(cordoned(&mut node, Cordon::Off));
        assert_eq!(node["spec"]["unschedulable"], false);
        assert!(
            node["metadata"]["annotations"]
                .get(CORDONED_BY_KINIT)
                .is_none()
        );
        assert!(!cordoned(&mut node, Cordon::Off));
        // An operator's cordon never becomes kinit's.
        let mut theirs = json!({"metadata": {"name": "w2"}, "spec": {"unschedulable": true}});
        assert!(!cordoned(&mut theirs, Cordon::On(Some("kubelet upgrade"))));
        assert!(theirs["metadata"].get("annotations").is_none());
    }

    #[test]
    fn a_removal_cut_short_lifts_only_kinits_own_cordon() {
        // Cordoned by a removal's drain, marked: a removal cut short lifts it.
        let mut leaving = json!({"metadata": {"name": "w1"}, "spec": {}});
        assert!(cordoned(&mut leaving, Cordon::On(Some(LEAVING_FOR_GOOD))));
        assert!(cordoned(&mut leaving, Cordon::OffIfKinits));
        assert_eq!(leaving["spec"]["unschedulable"], false);
        assert!(
            leaving["metadata"]["annotations"]
                .get(CORDONED_BY_KINIT)
                .is_none()
        );
        // The operator's own cordon (no mark) stays, even though the drain went over it.
        let mut theirs = json!({"metadata": {"name": "w2"}, "spec": {"unschedulable": true}});
        assert!(!cordoned(&mut theirs, Cordon::On(Some(LEAVING_FOR_GOOD))));
        assert!(!cordoned(&mut theirs, Cordon::OffIfKinits));
        assert_eq!(theirs["spec"]["unschedulable"], true);
    }
}
