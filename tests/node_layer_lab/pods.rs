//! The pods and images the node-layer lab runs: manifests, the test image, and waits on pods.

use std::time::Duration;

use serde_json::Value;

use crate::support::lab::*;

/// A pod of the bundle's pause image pinned to `node`, never pulled.
pub fn pause_pod(name: &str, node: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10.1",
                "imagePullPolicy": "Never",
                "resources": {"limits": {"cpu": "50m", "memory": "32Mi"}},
            }],
        },
    })
    .to_string()
}

/// The test image: Debian's static busybox (an HTTP server and client in one binary), packed
/// by the bundle's image code and imported on `nodes` the way kinit imports the pause image.
pub const WEB_IMAGE: &str = "kinit.test/busybox:1";

pub fn import_web_image(lab: &Lab, nodes: &[&str]) {
    let archive = web_image_archive(WEB_IMAGE);
    for node in nodes {
        let inside = "/var/tmp/kinit-test-busybox.tar";
        let path = lab
            .dir()
            .join("nodes")
            .join(node)
            .join("root")
            .join(&inside[1..]);
        std::fs::write(&path, &archive).unwrap();
        lab.on(
            node,
            &format!("ctr --namespace k8s.io images import {inside} >/dev/null"),
        );
    }
}

/// The test image built as `import_web_image` builds it, under `reference`.
pub fn web_image_archive(reference: &str) -> Vec<u8> {
    let binary = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian's busybox-static)");
    kinit::bundle::image::oci_archive(&kinit::bundle::image::StaticImage {
        reference,
        binary_name: "busybox",
        binary: &binary,
        user: "65534:65534",
        arch: "amd64",
    })
    .unwrap()
    .0
}

/// A pod of the test image on `node` running `command`; control planes are tolerated.
pub fn busybox_pod(name: &str, node: &str, command: &[&str], restart: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "restartPolicy": restart,
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            "containers": [{
                "name": name,
                "image": WEB_IMAGE,
                "imagePullPolicy": "Never",
                "command": command,
            }],
        },
    })
    .to_string()
}

/// Two replicas of the web server that may run on any node but cp2, and a budget keeping one
/// of them available: a drain may evict one at a time. (cp2 must pull the test image from the
/// registry later: its layers imported there would leave containerd nothing to fetch.)
pub fn kept_deployment() -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "kept", "namespace": "default"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "kept"}},
                    "template": {
                        "metadata": {"labels": {"app": "kept"}},
                        "spec": {
                            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [{
                                    "key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["cp2"],
                                }]}],
                            }}},
                            "terminationGracePeriodSeconds": 2,
                            "containers": [{
                                "name": "web",
                                "image": WEB_IMAGE,
                                "imagePullPolicy": "Never",
                                "command": ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"],
                            }],
                        },
                    },
                },
            },
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "kept", "namespace": "default"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "kept"}}},
            },
        ],
    })
    .to_string()
}

/// Pod `name`'s node, container and restart count.
pub fn container_of(lab: &Lab, kubeconfig: &std::path::Path, name: &str) -> String {
    lab.kubectl_ok(
        kubeconfig,
        &[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.spec.nodeName} {.status.containerStatuses[0].containerID} \
             {.status.containerStatuses[0].restartCount}",
        ],
    )
}

/// Wait until pod `name` is in `phase`; its object.
pub fn pod_in_phase(lab: &Lab, kubeconfig: &std::path::Path, name: &str, phase: &str) -> Value {
    let mut pod = Value::Null;
    wait_for(
        &format!("pod {name} {phase}"),
        Duration::from_secs(120),
        || {
            let (ok, out, all) = lab.kubectl(kubeconfig, &["get", "pod", name, "-o", "json"]);
            if !ok {
                return Err(all);
            }
            pod = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            if pod["status"]["phase"] == phase {
                Ok(())
            } else {
                Err(pod["status"].to_string())
            }
        },
    );
    pod
}

pub fn apply(lab: &Lab, kubeconfig: &std::path::Path, name: &str, manifest: String) {
    let path = lab.dir().join(format!("{name}.json"));
    std::fs::write(&path, manifest).unwrap();
    lab.kubectl_ok(kubeconfig, &["apply", "-f", path.to_str().unwrap()]);
}
