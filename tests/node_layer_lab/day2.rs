//! Day two on the node layer: a drill that stops a kubelet, removing a worker, removing a
//! control plane that is gone for good.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::NODES;
use crate::pods::{apply, pause_pod, pod_in_phase};
use crate::support::lab::*;

/// `drill node w1`, run out and interrupted.
pub fn drill_node_w1(lab: &Lab, kubeconfig: &Path) {
    // `drill node w1`: w1's kubelet stops for the default 70 s; the control plane marks the
    // Node NotReady after its grace period, and Ready again once the kubelet is back, while
    // the API through the VIP and etcd writes go on unharmed and w1's pod keeps its container.
    let web_container = || {
        lab.kubectl_ok(
            kubeconfig,
            &[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.spec.nodeName} {.status.containerStatuses[0].containerID} \
                 {.status.containerStatuses[0].restartCount}",
            ],
        )
    };
    let before = web_container();
    assert!(before.starts_with("w1 containerd://"), "web: {before}");
    // A drill refuses a cluster that is degraded already: right after the upgrade a haproxy
    // health check on this loaded machine may still be catching up (one CI run saw cp2 report
    // cp1's backend `UP 1/2 (L6TOUT)`), so the drill starts once `kinit status` is healthy.
    lab.wait_healthy(lab.config.to_str().unwrap());
    let out = lab.kinit(&["-o", "json", "drill", "node", "w1", "--yes"]);
    let drill: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    println!("{}", drill_figures(&drill));
    assert!(out.status.success(), "drill node w1: {}", text(&out));
    assert_eq!(drill["verdict"]["pass"], true, "{drill}");
    assert_eq!(drill["target"]["unit"], "kubelet", "{drill}");
    assert_eq!(drill["unitStateDuring"], "inactive", "{drill}");
    assert_eq!(drill["unitStateAfter"], "active", "{drill}");
    let not_ready = drill["nodeNotReadyAfterMs"]
        .as_u64()
        .expect("NotReady seen");
    assert!(
        (30_000..=70_000).contains(&not_ready),
        "NotReady {not_ready} ms after the stop: not the grace period's doing? {drill}"
    );
    assert!(drill["recoveredAfterMs"].as_u64().is_some(), "{drill}");
    // Losing a kubelet costs the control plane nothing: no etcd write fails, and of the API
    // requests at most one in a hundred runs past the client's 1 s limit (five nodes' control
    // plane and kubelets share this machine's two cores; CI once saw 1 of 784). The drill's
    // verdict above holds the longest gap to its threshold.
    let (requests, failed) = (
        drill["api"]["requests"].as_u64().unwrap_or(0),
        drill["api"]["failed"].as_u64().unwrap_or(u64::MAX),
    );
    assert!(requests > 100 && failed * 100 <= requests, "{drill}");
    assert_eq!(drill["etcdWrites"]["failed"], 0, "{drill}");
    assert_eq!(web_container(), before, "w1's pod lost its container");

    // SIGTERM while w1's kubelet is stopped by a drill: kinit starts it again before it exits
    // (143), says it was interrupted and frees the lock; the Node is Ready again after.
    let out = lab
        .drill_stopping(&["node", "w1", "--duration", "120"], "w1", "kubelet")
        .terminate();
    assert_eq!(lab.unit_state("w1", "kubelet"), "active", "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(r["interrupted"], true, "{}", text(&out));
    for node in NODES {
        let lock = kinit::host_paths::LOCK_DIR;
        assert_eq!(
            lab.on(node, &format!("test -e {lock} && echo held || echo free")),
            "free",
            "{node}"
        );
    }
    wait_for(
        "w1 Ready after the interrupted drill",
        Duration::from_secs(60),
        || {
            let ready = lab.kubectl_ok(
                kubeconfig,
                &[
                    "get",
                    "node",
                    "w1",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
            );
            (ready.trim() == "True").then_some(()).ok_or(ready)
        },
    );
}

/// `remove w1`, then w1 out of cluster.yaml as the report says.
pub fn remove_worker_w1(lab: &Lab, kubeconfig: &Path) {
    // `remove w1` takes the worker out: its Node drained and deleted, the host reset (the
    // pod's processes stop, containerd's shims outliving containerd; containerd's store is
    // emptied, a mount point here that stays; the kubelet's directory, the CNI bridge and the
    // binaries go), and the nodes that stay no longer route w1's pod slice.
    let w1_slice = lab
        .kubectl_ok(
            kubeconfig,
            &["get", "node", "w1", "-o", "jsonpath={.spec.podCIDR}"],
        )
        .trim()
        .to_string();
    assert!(
        lab.on("cp1", "ip route show proto 77").contains(&w1_slice),
        "cp1 had no route to w1's slice {w1_slice}"
    );
    assert_ne!(
        lab.on("w1", "pgrep -c -f '[c]ontainerd-shim-runc-v2' || true"),
        "0",
        "no shim ran before the reset"
    );
    let out = lab.kinit(&["-o", "json", "remove", "w1", "--yes"]);
    assert!(out.status.success(), "remove w1: {}", text(&out));
    // The API answered: the Node was drained first (its pods evicted) and deleted after.
    let report = result_event(&out, "removed");
    let node = &report["reset"]["nodes"][0];
    assert_eq!(node["host"], "w1", "{report}");
    assert_eq!(node["deleted"], true, "{report}");
    // (A CoreDNS replica may have been on w1 too: kube-system's pods are not this test's.)
    let mut evicted: Vec<&str> = node["drained"]["evicted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .filter(|p| p.starts_with("default/"))
        .collect();
    evicted.sort();
    assert_eq!(evicted, ["default/probe", "default/web"], "{report}");
    // Every node that stays was updated one at a time: the pod network's routes set again
    // without w1's slice.
    for node in ["cp1", "cp2", "cp3", "w2"] {
        let routes = lab.on(node, "ip route show proto 77");
        assert!(
            !routes.contains(&w1_slice) && !routes.is_empty(),
            "{node} still routes w1's slice (or nothing): {routes}"
        );
    }
    let updated: Vec<&str> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["host"].as_str().unwrap())
        .collect();
    assert_eq!(updated, ["cp1", "cp2", "cp3", "w2"], "{report}");
    let (found, _, all) = lab.kubectl(kubeconfig, &["get", "node", "w1"]);
    assert!(!found && all.contains("NotFound"), "{all}");
    let (found, _, all) = lab.kubectl(kubeconfig, &["get", "pod", "web"]);
    assert!(!found && all.contains("NotFound"), "{all}");
    assert_eq!(
        // (Bracketed: the patterns must not match the shell running them.)
        lab.on(
            "w1",
            "pgrep -c -f '[c]ontainerd|[k]ubelet|/[p]ause' || true"
        ),
        "0",
        "processes left on w1: {}",
        lab.on("w1", "ps -eo pid,cmd")
    );
    let left = lab.on(
        "w1",
        "ls -A /var/lib/containerd; ls -A /var/lib/kubelet; for p in /run/containerd /var/lib/cni \
         /usr/local/bin/containerd /usr/local/bin/kubelet /usr/local/sbin/runc /opt/cni/bin/bridge \
         /etc/containerd/config.toml /etc/cni/net.d/10-kinit-bridge.conflist \
         /var/lib/kinit/images/pause.tar /var/lib/kinit/images/coredns.tar /sys/class/net/cni0 /usr/local/lib/kinit/pod-network.sh \
         /usr/local/bin/kube-proxy /etc/kubernetes/kube-proxy.conf /etc/containerd/certs.d; do [ -e \"$p\" ] && echo \"$p\"; done; ip route show proto 77; \
         iptables -w -t nat -S | grep 'kinit-pod-network\\|KUBE-SERVICES'; \
         grep -c ' /var/lib/kubelet/\\| /run/containerd/' /proc/self/mountinfo || true",
    );
    assert_eq!(left, "0", "left behind on w1");

    // As the report says, w1 leaves cluster.yaml.
    let config = std::fs::read_to_string(&lab.config).unwrap();
    let without_w1: String = config
        .lines()
        .filter(|l| !l.contains("{name: w1,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without_w1, config, "no w1 in {}", lab.config.display());
    std::fs::write(&lab.config, without_w1).unwrap();
}

/// `remove cp3 --unreachable` once cp3 is powered off.
pub fn remove_unreachable_cp3(lab: &Lab, kubeconfig: &Path) {
    // cp3 gone for good (powered off): `remove cp3 --unreachable` never contacts it, and
    // deletes its Node (no drain: nothing there answers), so no pod stays bound to a node
    // that will not come back.
    let stop = lab.kinit_lab(&["stop", "cp3"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let out = lab.kinit(&["-o", "json", "remove", "cp3", "--unreachable", "--yes"]);
    assert!(
        out.status.success(),
        "remove cp3 --unreachable: {}",
        text(&out)
    );
    let report = result_event(&out, "removed");
    assert!(
        report["reset"].is_null(),
        "cp3 was not to be reset: {report}"
    );
    let gone = &report["goneNodes"][0];
    assert_eq!(
        (&gone["host"], &gone["deleted"], &gone["drained"]),
        (&Value::from("cp3"), &Value::from(true), &Value::Null),
        "{report}"
    );
    let (found, _, all) = lab.kubectl(kubeconfig, &["get", "node", "cp3"]);
    assert!(!found && all.contains("NotFound"), "{all}");
}

/// `remove w2`, then `reset --hosts w2`, each cut short (SIGTERM) while its drain waits on a
/// budget that refuses every eviction: kinit stops waiting at once, and w2's Node is
/// schedulable again before it exits, its pod still running; nothing was reset.
pub fn an_interrupted_removal_puts_the_node_back(lab: &Lab, kubeconfig: &Path) {
    let mut held: Value = serde_json::from_str(&pause_pod("held", "w2")).unwrap();
    held["metadata"]["labels"] = serde_json::json!({"app": "held"});
    apply(lab, kubeconfig, "held", held.to_string());
    apply(
        lab,
        kubeconfig,
        "held-budget",
        serde_json::json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "held", "namespace": "default"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "held"}}},
        })
        .to_string(),
    );
    pod_in_phase(lab, kubeconfig, "held", "Running");
    // Each command, and the phase in which its hosts would be reset.
    for (args, resets_in) in [
        (&["remove", "w2", "--yes"][..], "reset"),
        (&["reset", "--hosts", "w2", "--yes"][..], "hosts"),
    ] {
        drain_cut_short(lab, kubeconfig, args, resets_in);
    }
    lab.kubectl_ok(kubeconfig, &["delete", "pdb/held", "pod/held"]);
}

fn drain_cut_short(lab: &Lab, kubeconfig: &Path, args: &[&str], resets_in: &str) {
    let unschedulable = || {
        lab.kubectl_ok(
            kubeconfig,
            &["get", "node", "w2", "-o", "jsonpath={.spec.unschedulable}"],
        )
    };
    let running = lab.kinit_until(args, &[r#""phase-started""#, r#""drain-nodes""#]);
    wait_for(
        "w2 cordoned by the drain",
        Duration::from_secs(30),
        || match unschedulable().trim() {
            "true" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    // The budget refuses: the drain would ask again for 90 s.
    std::thread::sleep(Duration::from_secs(3));
    let (lines, stderr) = running.terminate();
    let all = format!("{args:?}:\n{}\n{stderr}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l
            .contains("w2: stopped before the host was reset: kinit's cordon on its Node lifted")),
        "{all}"
    );
    let began = format!(r#""phase":"{resets_in}""#);
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(r#""phase-started""#) && l.contains(&began)),
        "the reset began: {all}"
    );
    assert_eq!(unschedulable().trim(), "", "w2 left cordoned: {all}");
    let node = lab.kubectl_ok(kubeconfig, &["get", "node", "w2", "-o", "json"]);
    assert!(!node.contains("kinit.io/cordoned-for"), "{all}\n{node}");
    assert_eq!(lab.unit_state("w2", "kubelet"), "active", "{all}");
    pod_in_phase(lab, kubeconfig, "held", "Running");
}
