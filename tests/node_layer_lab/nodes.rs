//! Every node registered, Ready and labelled as kubeadm labels it; a pod on the worker.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::NODES;
use crate::pods::*;
use crate::support::lab::*;

/// Every node registered and Ready on kinit's containerd; `kinit status` agrees; the
/// worker's credentials are the certificate kinit issued, its images the ones kinit built.
pub fn every_node_ready(lab: &Lab, kubeconfig: &Path) {
    let nodes: Value =
        serde_json::from_str(&lab.kubectl_ok(kubeconfig, &["get", "nodes", "-o", "json"])).unwrap();
    let items = nodes["items"].as_array().unwrap();
    let mut names: Vec<&str> = items
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, NODES, "{nodes}");
    for n in items {
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True", "{}", n["metadata"]["name"]);
        // The kubelet runs the bundle's release, with kinit's containerd.
        assert!(
            n["status"]["nodeInfo"]["containerRuntimeVersion"]
                .as_str()
                .unwrap()
                .starts_with("containerd://2."),
            "{}",
            n["status"]["nodeInfo"]
        );
    }
    // `kinit status` shows every node Ready with its slice, and nothing wrong.
    let report = lab.wait_healthy(lab.config.to_str().unwrap());
    let status_nodes = report["controlPlane"]["nodes"].as_array().unwrap();
    assert_eq!(status_nodes.len(), 5, "{report:#}");
    assert!(
        status_nodes.iter().all(|n| n["node"]["ready"] == true
            && n["node"]["podCidr"]
                .as_str()
                .unwrap()
                .starts_with("10.244.")),
        "{report:#}"
    );

    // The node's credentials are the certificate kinit issued for it.
    let subject = lab.on(
        "w1",
        "grep client-certificate-data /etc/kubernetes/kubelet.conf | awk '{print $2}' \
         | base64 -d | openssl x509 -noout -subject -nameopt RFC2253",
    );
    assert_eq!(subject, "subject=CN=system:node:w1,O=system:nodes");
    // containerd holds the pause image kinit built, under the name the config pins.
    let images = lab.on(
        "w1",
        "ctr --namespace k8s.io images ls -q | grep pause; crictl images | grep -c pause",
    );
    assert!(
        images.contains("registry.k8s.io/pause:3.10.1"),
        "images on w1: {images}"
    );
}

/// A pod on the worker: created through the API, run by its kubelet, addressed from w1's
/// slice of the pod subnet, limited by the kernel.
pub fn a_pod_on_the_worker(lab: &Lab, kubeconfig: &Path) {
    // (w1's address is 10.213.234.14: its slice is 14.)
    let manifest = lab.dir().join("probe-pod.json");
    std::fs::write(&manifest, pause_pod("probe", "w1")).unwrap();
    lab.kubectl_ok(kubeconfig, &["apply", "-f", manifest.to_str().unwrap()]);
    let w1_address = lab.on("w1", "ip -4 -o addr show host0 | awk '{print $4}'");
    let last_octet = w1_address
        .split('/')
        .next()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
        .to_string();
    let mut pod = Value::Null;
    wait_for("the probe pod Running", Duration::from_secs(120), || {
        let (ok, out, all) = lab.kubectl(kubeconfig, &["get", "pod", "probe", "-o", "json"]);
        if !ok {
            return Err(all);
        }
        pod = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        if pod["status"]["phase"] == "Running" {
            Ok(())
        } else {
            Err(pod["status"].to_string())
        }
    });
    // The Node records the same slice (kinit's, not the controller-manager's).
    let cidr = lab.kubectl_ok(
        kubeconfig,
        &["get", "node", "w1", "-o", "jsonpath={.spec.podCIDR}"],
    );
    assert_eq!(cidr, format!("10.244.{last_octet}.0/24"));
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert!(
        ip.starts_with(&format!("10.244.{last_octet}.")),
        "pod IP {ip} is not in w1's slice 10.244.{last_octet}.0/24"
    );
    // The pod's limits are the kernel's: its memory cgroup says 32 MiB.
    let limit = lab.on(
        "w1",
        "cat $(find /sys/fs/cgroup/memory/ -path '*pod*' -name memory.limit_in_bytes \
         | xargs grep -l '^33554432$' | head -1)",
    );
    assert_eq!(limit, "33554432");
}

/// kubeadm's labels and taint on the control planes, none on the worker.
pub fn control_planes_labelled_and_tainted(lab: &Lab, kubeconfig: &Path) {
    let taints = |node: &str| {
        lab.kubectl_ok(
            kubeconfig,
            &["get", "node", node, "-o", "jsonpath={.spec.taints[*].key}"],
        )
    };
    assert_eq!(taints("cp1"), "node-role.kubernetes.io/control-plane");
    assert_eq!(taints("w1"), "");
    let roles = lab.kubectl_ok(
        kubeconfig,
        &[
            "get",
            "nodes",
            "-l",
            "node-role.kubernetes.io/control-plane",
            "-o",
            "name",
        ],
    );
    assert_eq!(roles, "node/cp1\nnode/cp2\nnode/cp3");
}
