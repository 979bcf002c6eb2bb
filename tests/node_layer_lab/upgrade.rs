//! The nodes' upgrade from the previous minor release to the bundle's, under load.

use serde_json::Value;

use crate::NODES;
use crate::pods::*;
use crate::support::lab::*;

/// The upgrade from the previous minor release to the bundle's, under a client reading and
/// writing through the VIP: control planes one at a time, then each kubelet, its node cordoned
/// and drained first (the Deployment's pods evicted one at a time as its budget allows; the
/// bare pod left running), Ready again on the new release and uncordoned.
pub fn upgrade_nodes_under_load(lab: &Lab, kubeconfig: &std::path::Path, old: &str, new: &str) {
    import_web_image(lab, &["cp1", "cp3", "w1", "w2"]);
    lab.create_probe_configmap(kubeconfig, "n=start");
    apply(lab, kubeconfig, "kept", kept_deployment());
    apply(
        lab,
        kubeconfig,
        "bare",
        busybox_pod(
            "bare",
            "w1",
            &["/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"],
            "Always",
        ),
    );
    lab.kubectl_ok(
        kubeconfig,
        &["rollout", "status", "deployment/kept", "--timeout=120s"],
    );
    pod_in_phase(lab, kubeconfig, "bare", "Running");
    let bare_before = container_of(lab, kubeconfig, "bare");

    upgrade_to_own_bundle(lab, new);
    // The plan says which nodes will be drained, in their order.
    let (code, _, plan) = lab.up(&["--dry-run"]);
    assert_eq!(code, 0, "dry run: {plan}");
    let expected: Vec<String> = NODES.iter().map(|n| format!("{n} ({old})")).collect();
    assert!(
        plan.contains(&format!("uncordoned once Ready: {}", expected.join(", "))),
        "no drain plan naming {expected:?}: {plan}"
    );
    // spec.rollout.maxUnavailableWorkers: 2: the two workers go together, after the control
    // planes.
    assert!(
        plan.contains("one control plane at a time, then up to 2 workers together"),
        "{plan}"
    );
    let ((code, _, all), took, seen) = ApiLoop::around(lab, PROBE_CONFIGMAP, || lab.up(&[]));
    let events: Vec<Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let drains: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("for its kubelet's upgrade"))
        .collect();
    println!(
        "figures: upgrade {old} -> {new} (3 control planes, 5 kubelets drained, 2 workers \
         together): \
         up {:.1} s, {} requests (reads and writes through the VIP), {} failed, longest gap {} \
         ms; {drains:?}",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(code, 0, "the upgrade: {all}");
    assert_eq!(
        seen.failed, 0,
        "failed requests during the upgrade: {seen:?}"
    );
    assert!(seen.requests > 20, "{seen:?}");
    // The kubelets: each control plane alone, then both workers together, each drained first.
    let order = events
        .iter()
        .find(|e| e["event"] == "restart-order" && e["what"] == "kubelet")
        .unwrap_or_else(|| panic!("no kubelet restart order: {all}"));
    assert_eq!(order["hosts"], serde_json::json!(NODES), "{order}");
    assert_eq!(
        order["together"],
        serde_json::json!([["w1", "w2"]]),
        "{order}"
    );
    let kubelet_steps: Vec<&str> = events
        .iter()
        .filter(|e| e["what"] == "kubelet")
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("restart-") && *e != "restart-order")
        .collect();
    let mut expected_steps = ["restart-started", "restart-finished"].repeat(3);
    expected_steps.extend(["restart-started", "restart-started"]);
    expected_steps.extend(["restart-finished", "restart-finished"]);
    assert_eq!(kubelet_steps, expected_steps, "{all}");
    // No kubelet (nor kube-proxy) is ever newer than an apiserver: they move only once every
    // apiserver runs the new release, in the kubelets phase, not the node phase.
    let at = |what: &str, event: &str| event_positions(&events, what, event);
    let apiservers_done = at("kube-apiserver", "restart-finished");
    assert_eq!(apiservers_done.len(), 3, "{all}");
    let node_side_started: Vec<usize> = ["kubelet", "kube-proxy"]
        .iter()
        .flat_map(|w| at(w, "restart-started"))
        .collect();
    assert!(node_side_started.len() >= 4, "{all}");
    assert!(
        node_side_started
            .iter()
            .all(|i| apiservers_done.iter().all(|a| a < i)),
        "a kubelet or kube-proxy restarted before every apiserver ran {new}: {all}"
    );
    assert!(
        events.iter().any(|e| e["phase"] == "node"
            && e["message"].as_str().is_some_and(|m| m.starts_with(
                "kubelet, kube-proxy move to the new Kubernetes release in phase kubelets"
            ))),
        "{all}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "restart-started" && e["what"] == "kubelet")
            .all(|e| e["phase"] == "kubelets"),
        "{all}"
    );
    assert_eq!(drains.len(), 5, "a drain note per node: {all}");
    assert!(
        drains
            .iter()
            .all(|d| d.contains(&format!("({old} -> {new})"))),
        "{drains:?}"
    );
    // Both of the Deployment's pods were evicted from wherever they ran; the bare pod was not.
    let evicted: Vec<&str> = drains
        .iter()
        .filter_map(|d| d.split_once("evicted ").map(|(_, e)| e))
        .flat_map(|e| e.split(", "))
        .collect();
    assert!(
        evicted
            .iter()
            .filter(|p| p.starts_with("default/kept-"))
            .count()
            >= 2,
        "{drains:?}"
    );
    assert!(!evicted.contains(&"default/bare"), "{drains:?}");
    assert_eq!(
        container_of(lab, kubeconfig, "bare"),
        bare_before,
        "the bare pod lost its container"
    );
    // Every node on the new release, schedulable, without kinit's cordon mark.
    let nodes: Value =
        serde_json::from_str(&lab.kubectl_ok(kubeconfig, &["get", "nodes", "-o", "json"])).unwrap();
    for n in nodes["items"].as_array().unwrap() {
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], new, "{n}");
        assert_ne!(n["spec"]["unschedulable"], true, "{n}");
        assert!(
            n["metadata"]["annotations"]
                .get("kinit.io/cordoned-for")
                .is_none(),
            "{n}"
        );
    }
    lab.kubectl_ok(
        kubeconfig,
        &["rollout", "status", "deployment/kept", "--timeout=120s"],
    );
    lab.kubectl_ok(
        kubeconfig,
        &[
            "delete",
            "--cascade=foreground",
            "deployment/kept",
            "pdb/kept",
            "pod/bare",
        ],
    );
}
