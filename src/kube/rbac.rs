//! The RBAC kinit's certificates rely on. kubeadm ≥ 1.29 puts admin.conf's user in the group
//! `kubeadm:cluster-admins` and binds that group to cluster-admin through super-admin.conf
//! (whose `system:masters` group needs no binding); kinit issues the same certificates, so it
//! creates the same binding, the same way.

use std::time::Duration;

use super::{ApiClient, CLUSTER_ADMINS_GROUP, KubeApiError, status_error};

const BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";

/// What [`ensure_cluster_admins`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    AlreadyThere,
}

/// The ClusterRoleBinding `kubeadm:cluster-admins` → cluster-admin for the group of the same
/// name, created when missing (a binding of that name made by someone else is left alone).
pub async fn ensure_cluster_admins(
    client: &ApiClient,
    timeout: Duration,
) -> Result<Ensured, KubeApiError> {
    let path = format!("{BINDINGS}/{}", CLUSTER_ADMINS_GROUP.replace(':', "%3A"));
    let (status, body) = client.send("GET", &path, None, timeout).await?;
    match status {
        200 => return Ok(Ensured::AlreadyThere),
        404 => {}
        _ => {
            return Err(status_error(
                format!("{}{path}", client.server()),
                status,
                &body,
            ));
        }
    }
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": CLUSTER_ADMINS_GROUP,
            "labels": {"app.kubernetes.io/managed-by": "kinit"},
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Group",
            "name": CLUSTER_ADMINS_GROUP,
        }],
    });
    let body_bytes = serde_json::to_vec(&binding).expect("a JSON value serializes");
    let (status, body) = client
        .send("POST", BINDINGS, Some(&body_bytes), timeout)
        .await?;
    match status {
        200 | 201 => Ok(Ensured::Created),
        // Created meanwhile by another writer: there now.
        409 => Ok(Ensured::AlreadyThere),
        _ => Err(status_error(
            format!("{}{BINDINGS}", client.server()),
            status,
            &body,
        )),
    }
}
