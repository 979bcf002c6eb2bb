//! The cluster's DNS add-on as kubeadm installs it (ServiceAccount, ClusterRole and binding
//! `system:coredns`, ConfigMap and Deployment `coredns`, Service `kube-dns` at the kubelets'
//! clusterDNS), applied server-side under the field manager `kinit`: applying the same objects
//! again changes nothing, and fields other managers own are left alone. The image is the one the
//! bundle built from its own CoreDNS binary and every kubelet host imported.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use super::{ApiClient, KubeApiError, status_error};

/// The field manager kinit's applies are recorded under.
pub const FIELD_MANAGER: &str = "kinit";
const APPLY_PATCH: &str = "application/apply-patch+yaml";
/// kubeadm's replica count: one pod may move while the other answers.
pub const REPLICAS: u32 = 2;

/// What the objects depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreDnsSettings {
    /// The image reference the nodes imported.
    pub image: String,
    /// The Service's address: the kubelets' clusterDNS.
    pub cluster_ip: IpAddr,
    /// `cluster.local`.
    pub domain: String,
    /// Where names outside the cluster go: `None` is the node's resolv.conf, empty is nowhere.
    pub upstreams: Option<Vec<IpAddr>>,
}

/// One object and where it is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AddonObject {
    /// `ConfigMap kube-system/coredns`, for messages.
    pub name: String,
    /// Its API path (without the query).
    pub path: String,
    pub body: Value,
}

/// The Corefile: kubeadm's, with the forwarding the settings ask for. Every value in it is a
/// validated domain or a parsed address: none can add a line or a directive.
pub fn corefile(s: &CoreDnsSettings) -> String {
    let forward = match &s.upstreams {
        None => "    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    loop\n"
            .to_string(),
        Some(list) if list.is_empty() => String::new(),
        Some(list) => {
            let to: Vec<String> = list.iter().map(|a| a.to_string()).collect();
            format!(
                "    forward . {} {{\n       max_concurrent 1000\n    }}\n    loop\n",
                to.join(" ")
            )
        }
    };
    let d = &s.domain;
    format!(
        ".:53 {{\n    errors\n    health {{\n       lameduck 5s\n    }}\n    ready\n    \
         kubernetes {d} in-addr.arpa ip6.arpa {{\n       pods insecure\n       \
         fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }}\n    prometheus :9153\n\
         {forward}    cache 30 {{\n       disable success {d}\n       disable denial {d}\n    }}\n    \
         reload\n    loadbalance\n}}\n"
    )
}

const NS: &str = "kube-system";

fn labels() -> Value {
    json!({"k8s-app": "kube-dns", "app.kubernetes.io/managed-by": FIELD_MANAGER})
}

/// Every object, in the order they are applied (what a pod needs before the pod).
pub fn objects(s: &CoreDnsSettings) -> Vec<AddonObject> {
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    vec![
        AddonObject {
            name: format!("ServiceAccount {NS}/coredns"),
            path: format!("/api/v1/namespaces/{NS}/serviceaccounts/coredns"),
            body: json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "coredns", "namespace": NS, "labels": labels()},
            }),
        },
        AddonObject {
            name: "ClusterRole system:coredns".into(),
            path: format!("{rbac}/clusterroles/system%3Acoredns"),
            body: json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "system:coredns", "labels": labels()},
                "rules": [
                    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                     "verbs": ["list", "watch"]},
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                     "verbs": ["list", "watch"]},
                ],
            }),
        },
        AddonObject {
            name: "ClusterRoleBinding system:coredns".into(),
            path: format!("{rbac}/clusterrolebindings/system%3Acoredns"),
            body: json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "system:coredns", "labels": labels()},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "system:coredns"},
                "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NS}],
            }),
        },
        AddonObject {
            name: format!("ConfigMap {NS}/coredns"),
            path: format!("/api/v1/namespaces/{NS}/configmaps/coredns"),
            body: json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "coredns", "namespace": NS, "labels": labels()},
                "data": {"Corefile": corefile(s)},
            }),
        },
        AddonObject {
            name: format!("Deployment {NS}/coredns"),
            path: format!("/apis/apps/v1/namespaces/{NS}/deployments/coredns"),
            body: deployment(s),
        },
        AddonObject {
            name: format!("Service {NS}/kube-dns"),
            path: format!("/api/v1/namespaces/{NS}/services/kube-dns"),
            body: json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {
                    "name": "kube-dns", "namespace": NS,
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                               "kubernetes.io/name": "CoreDNS",
                               "app.kubernetes.io/managed-by": FIELD_MANAGER},
                    "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
                },
                "spec": {
                    "selector": {"k8s-app": "kube-dns"},
                    "clusterIP": s.cluster_ip.to_string(),
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                        {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
                    ],
                },
            }),
        },
    ]
}

fn deployment(s: &CoreDnsSettings) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": NS, "labels": labels()},
        "spec": {
            "replicas": REPLICAS,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    // Each replica on another node where it can.
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchExpressions": [
                                {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }]}},
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{
                        "name": "coredns",
                        "image": s.image,
                        // Imported on every node from the bundle: never pulled.
                        "imagePullPolicy": "Never",
                        "resources": {"limits": {"memory": "170Mi"},
                                      "requests": {"cpu": "100m", "memory": "70Mi"}},
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns",
                                          "readOnly": true}],
                        "ports": [
                            {"containerPort": 53, "name": "dns", "protocol": "UDP"},
                            {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                            {"containerPort": 9153, "name": "metrics", "protocol": "TCP"},
                        ],
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                            "readOnlyRootFilesystem": true,
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                            "initialDelaySeconds": 60, "timeoutSeconds": 5,
                            "successThreshold": 1, "failureThreshold": 5,
                        },
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                        },
                    }],
                    // CoreDNS forwards with the node's resolver, not itself.
                    "dnsPolicy": "Default",
                    "volumes": [{"name": "config-volume", "configMap": {
                        "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                },
            },
        },
    })
}

/// Whether an apply changed the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Changed,
    Unchanged,
}

fn resource_version(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(|r| r.as_str())
}

/// Server-side apply of one object (forcing kinit's ownership of the fields it sets), and
/// whether that changed it: the server keeps the resourceVersion when nothing changed.
pub async fn apply(
    client: &ApiClient,
    object: &AddonObject,
    timeout: Duration,
) -> Result<Applied, KubeApiError> {
    let (status, before) = client.send("GET", &object.path, None, timeout).await?;
    let before = match status {
        200 => serde_json::from_slice::<Value>(&before).ok(),
        404 => None,
        _ => {
            return Err(status_error(
                format!("{}{}", client.server(), object.path),
                status,
                &before,
            ));
        }
    };
    let path = format!("{}?fieldManager={FIELD_MANAGER}&force=true", object.path);
    let body = serde_json::to_vec(&object.body).expect("a JSON value serializes");
    let (status, after) = client
        .send_typed("PATCH", &path, Some(&body), APPLY_PATCH, timeout)
        .await?;
    if status != 200 && status != 201 {
        return Err(status_error(
            format!("{}{path}", client.server()),
            status,
            &after,
        ));
    }
    let after: Value = serde_json::from_slice(&after).map_err(|e| KubeApiError::Decode {
        url: format!("{}{path}", client.server()),
        message: e.to_string(),
    })?;
    Ok(match before {
        None => Applied::Created,
        Some(b) if resource_version(&b) == resource_version(&after) => Applied::Unchanged,
        Some(_) => Applied::Changed,
    })
}

/// A Deployment's rollout: `None` when done (every replica of the newest generation ready),
/// else what it waits for.
pub fn rollout_pending(deployment: &Value) -> Option<String> {
    let n = |p: &str| deployment.pointer(p).and_then(|v| v.as_i64()).unwrap_or(0);
    let want = deployment
        .pointer("/spec/replicas")
        .and_then(|v| v.as_i64())
        .unwrap_or(1);
    if n("/status/observedGeneration") < n("/metadata/generation") {
        return Some("the controller has not seen the newest spec".into());
    }
    let (updated, ready, total) = (
        n("/status/updatedReplicas"),
        n("/status/readyReplicas"),
        n("/status/replicas"),
    );
    if updated < want || ready < want || total > want {
        return Some(format!(
            "{ready}/{want} replicas ready, {updated} updated, {total} in all"
        ));
    }
    None
}

/// The CoreDNS Deployment's rollout, as [`rollout_pending`] says.
pub async fn pending(
    client: &ApiClient,
    timeout: Duration,
) -> Result<Option<String>, KubeApiError> {
    let d = client
        .get_json(
            &format!("/apis/apps/v1/namespaces/{NS}/deployments/coredns"),
            timeout,
        )
        .await?;
    Ok(rollout_pending(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(upstreams: Option<Vec<IpAddr>>) -> CoreDnsSettings {
        CoreDnsSettings {
            image: "registry.k8s.io/coredns/coredns:v1.15.0".into(),
            cluster_ip: "10.96.0.10".parse().unwrap(),
            domain: "cluster.local".into(),
            upstreams,
        }
    }

    #[test]
    fn the_corefile_forwards_where_the_cluster_says() {
        let kubeadm = corefile(&settings(None));
        assert!(
            kubeadm.contains("forward . /etc/resolv.conf {"),
            "{kubeadm}"
        );
        assert!(kubeadm.contains("\n    loop\n"));
        assert!(kubeadm.contains("kubernetes cluster.local in-addr.arpa ip6.arpa {"));
        assert!(kubeadm.contains("disable denial cluster.local"));
        let listed = corefile(&settings(Some(vec![
            "192.168.9.1".parse().unwrap(),
            "fd00::53".parse().unwrap(),
        ])));
        assert!(
            listed.contains("forward . 192.168.9.1 fd00::53 {"),
            "{listed}"
        );
        let none = corefile(&settings(Some(vec![])));
        assert!(
            !none.contains("forward") && !none.contains("loop"),
            "{none}"
        );
        // Braces balance: the server block is whole.
        for c in [kubeadm, listed, none] {
            assert_eq!(c.matches('{').count(), c.matches('}').count(), "{c}");
        }
    }

    #[test]
    fn the_service_sits_at_the_kubelets_cluster_dns_and_selects_the_pods() {
        let objects = objects(&settings(None));
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o.body["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "ConfigMap",
                "Deployment",
                "Service"
            ]
        );
        let svc = &objects[5].body;
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
        let dep = &objects[4].body;
        assert_eq!(
            svc["spec"]["selector"],
            dep["spec"]["template"]["metadata"]["labels"]
        );
        assert_eq!(
            dep["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.k8s.io/coredns/coredns:v1.15.0"
        );
        // Every path names the object its body names.
        for o in &objects {
            let name = o.body["metadata"]["name"].as_str().unwrap();
            assert!(o.path.ends_with(&name.replace(':', "%3A")), "{}", o.path);
        }
    }

    #[test]
    fn a_rollout_is_done_when_every_replica_of_the_newest_spec_is_ready() {
        let d = |generation: i64, observed: i64, replicas: i64, updated: i64, ready: i64| {
            json!({"metadata": {"generation": generation}, "spec": {"replicas": 2},
                   "status": {"observedGeneration": observed, "replicas": replicas,
                              "updatedReplicas": updated, "readyReplicas": ready}})
        };
        assert_eq!(rollout_pending(&d(3, 3, 2, 2, 2)), None);
        assert!(rollout_pending(&d(3, 2, 2, 2, 2)).is_some());
        assert!(rollout_pending(&d(3, 3, 2, 2, 1)).unwrap().contains("1/2"));
        // An old pod still running beside the new ones.
        assert!(rollout_pending(&d(3, 3, 3, 2, 2)).is_some());
        assert!(rollout_pending(&json!({})).is_some());
    }
}
