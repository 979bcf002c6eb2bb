//! The control plane as static pods on a lab node that runs containers (`kinit lab up
//! --runtime`, then `controlPlane.mode: static-pod`, kubeadm's layout): `kinit up` ships the
//! images kinit built from the bundle's own kube-apiserver, kube-controller-manager and
//! kube-scheduler to the control plane before its kubelet starts, the kubelet imports them and
//! runs the manifests kinit rendered with the real runc, and the API answers through the VIP.
//! The apiserver, controller-manager and scheduler must be Running as the kubelet's mirror pods,
//! from the bundle's images (no registry: nothing may be pulled), the node Ready, CoreDNS rolled
//! out, and a second `up` must change nothing. One node keeps it cheap: HA of the control plane
//! is the systemd-mode lab tests' business; what this shows is that the static-pod path runs.
//! Runs as root; the lab is removed when the test ends however it ends.

use std::time::Duration;

use serde_json::Value;

mod hang_guard;
mod lab_support;
use lab_support::*;

#[test]
fn the_control_plane_runs_as_static_pods_from_the_bundles_images() {
    let lab = lab_up_runtime("kspod", "10.213.235.0/24", "1");
    // The lab writes a systemd-mode control plane; this cluster is kubeadm's layout.
    let text_before = std::fs::read_to_string(&lab.config).unwrap();
    let static_pods = text_before.replace("  controlPlane:\n    mode: systemd\n", "");
    assert_ne!(
        static_pods, text_before,
        "no controlPlane block to take out"
    );
    std::fs::write(&lab.config, static_pods).unwrap();

    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "up: {all}");
    assert_eq!(summary["event"], "summary", "{all}");
    assert!(
        all.contains("1 node(s) Ready: cp1"),
        "no nodes-ready note: {all}"
    );
    assert!(
        all.contains("CoreDNS answers at 10.96.0.10"),
        "no cluster-dns note: {all}"
    );

    // The images containerd runs them from are the ones kinit built, under kubeadm's names.
    let images = lab.on("cp1", "ctr --namespace k8s.io images ls -q");
    for name in [
        "registry.k8s.io/kube-apiserver:v1.37.2",
        "registry.k8s.io/kube-controller-manager:v1.37.2",
        "registry.k8s.io/kube-scheduler:v1.37.2",
    ] {
        assert!(
            images.lines().any(|l| l == name),
            "{name} not in cp1's images:\n{images}"
        );
    }
    // No unit runs them: the kubelet does, in containers.
    for unit in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert_ne!(
            lab.unit_property("cp1", unit, "ActiveState"),
            "active",
            "{unit} runs as a unit"
        );
    }
    let running = lab.on(
        "cp1",
        "crictl ps --state running -o json | grep -o '\"name\": \"kube-[a-z-]*\"' | sort -u",
    );
    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(
            running.contains(&format!("\"{name}\"")),
            "no {name} container on cp1: {running}"
        );
    }

    // The API (through the VIP) shows each as the kubelet's mirror pod, Running and Ready.
    let kubeconfig = lab.admin_kubeconfig();
    let mut pods = Value::Null;
    wait_for(
        "the control plane's mirror pods Ready",
        Duration::from_secs(120),
        || {
            let (ok, out, all) = lab.kubectl(
                &kubeconfig,
                &["-n", "kube-system", "get", "pods", "-o", "json"],
            );
            if !ok {
                return Err(all);
            }
            pods = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            let ready = |name: &str| {
                pods["items"].as_array().into_iter().flatten().any(|p| {
                    p["metadata"]["name"] == name
                        && p["status"]["phase"] == "Running"
                        && p["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            };
            let missing: Vec<&str> = [
                "kube-apiserver-cp1",
                "kube-controller-manager-cp1",
                "kube-scheduler-cp1",
            ]
            .into_iter()
            .filter(|n| !ready(n))
            .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("not Ready yet: {missing:?}"))
            }
        },
    );
    let apiserver = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == "kube-apiserver-cp1")
        .unwrap();
    assert!(
        apiserver["metadata"]["annotations"]
            .get("kubernetes.io/config.mirror")
            .is_some(),
        "not a mirror pod: {apiserver}"
    );
    assert_eq!(
        apiserver["spec"]["containers"][0]["image"], "registry.k8s.io/kube-apiserver:v1.37.2",
        "{apiserver}"
    );

    // A second run finds everything as it should be.
    let (_, all) = lab.assert_up_is_a_no_op(&[]);
    assert!(all.contains("unchanged"), "CoreDNS applied again: {all}");
}
