//! The control plane as static pods on a lab node that runs containers (`kinit lab up
//! --runtime`, then `controlPlane.mode: static-pod`, kubeadm's layout): `kinit up` ships the
//! images kinit built from the bundle's own kube-apiserver, kube-controller-manager and
//! kube-scheduler to the control plane before its kubelet starts, the kubelet imports them and
//! runs the manifests kinit rendered with the real runc, and the API answers through the VIP.
//! The apiserver, controller-manager and scheduler must be Running as the kubelet's mirror pods,
//! from the bundle's images (no registry: nothing may be pulled), the node Ready, CoreDNS rolled
//! out, and a second `up` must change nothing. Three control planes, because a changed manifest
//! must roll as kubeadm's upgrade does, one host at a time: an operator's flag (through `up
//! --templates`) makes the kubelet replace each apiserver in turn, each drained from every
//! haproxy before its manifest changes and back once the new one is ready, while a client
//! reading and writing through the VIP every 100 ms sees no failure.
//! Runs as root; the lab is removed when the test ends however it ends.

mod support;

use std::time::Duration;

use serde_json::Value;

use support::lab::*;

#[test]
fn the_control_plane_runs_as_static_pods_from_the_bundles_images() {
    let lab = lab_up_runtime("kspod", "10.213.235.0/24", "3");
    // The lab writes a systemd-mode control plane and etcd; this cluster is kubeadm's layout:
    // both as static pods.
    let text_before = std::fs::read_to_string(&lab.config).unwrap();
    let static_pods = text_before.replace("  controlPlane:\n    mode: systemd\n", "");
    assert_ne!(
        static_pods, text_before,
        "no controlPlane block to take out"
    );
    let etcd_before = static_pods.clone();
    let static_pods = static_pods.replace(
        "  etcd:\n    mode: systemd\n",
        "  etcd:\n    mode: static-pod\n",
    );
    assert_ne!(static_pods, etcd_before, "no etcd mode to change");
    std::fs::write(&lab.config, static_pods).unwrap();
    // The cluster starts on the previous minor release (its images built into a copy of the
    // bundle), upgraded to the bundle's at the end.
    let (old, new) = start_on_previous_release(&lab);

    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "up: {all}");
    assert_eq!(summary["event"], "summary", "{all}");
    assert!(
        all.contains("3 node(s) Ready: cp1, cp2, cp3"),
        "no nodes-ready note: {all}"
    );
    assert!(
        all.contains("CoreDNS answers at 10.96.0.10"),
        "no cluster-dns note: {all}"
    );

    // The images containerd runs them from are the ones kinit built, under kubeadm's names;
    // etcd's of the bundle's etcd release.
    let etcd_image = format!(
        "registry.k8s.io/etcd:{}-0",
        etcd_release_of(&lab.dir().join("bundle/etcd"))
    );
    for node in CONTROL_PLANES {
        let images = lab.on(node, "ctr --namespace k8s.io images ls -q");
        assert!(
            images.lines().any(|l| l == etcd_image),
            "{etcd_image} not in {node}'s images:\n{images}"
        );
        for program in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            let name = format!("registry.k8s.io/{program}:{old}");
            assert!(
                images.lines().any(|l| l == name),
                "{name} not in {node}'s images:\n{images}"
            );
        }
    }
    // No unit runs them: the kubelet does, in containers.
    for unit in [
        "etcd",
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
        "crictl ps --state running -o json | grep -o '\"name\": \"[a-z-]*\"' | sort -u",
    );
    for name in [
        "etcd",
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
            let missing: Vec<String> = CONTROL_PLANES
                .iter()
                .flat_map(|node| {
                    [
                        "etcd",
                        "kube-apiserver",
                        "kube-controller-manager",
                        "kube-scheduler",
                    ]
                    .map(|c| format!("{c}-{node}"))
                })
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
        apiserver["spec"]["containers"][0]["image"],
        format!("registry.k8s.io/kube-apiserver:{old}"),
        "{apiserver}"
    );

    // A second run finds everything as it should be.
    let (_, all) = lab.assert_up_is_a_no_op(&[]);
    assert!(all.contains("unchanged"), "CoreDNS applied again: {all}");

    // A flag change: every apiserver's manifest changes; the kubelet replaces them one host at
    // a time, each drained from every haproxy first and back once the new one is ready, and
    // not one request through the VIP fails.
    lab.create_probe_configmap(&kubeconfig, "n=start");
    let templates = lab.templates_with_apiserver_flag("--profiling=false");
    let before: Vec<String> = CONTROL_PLANES
        .iter()
        .map(|node| lab.on(node, "pgrep -x kube-apiserver"))
        .collect();
    let with_flag = ["--templates", templates.to_str().unwrap()];
    let ((code, _, all), took, seen) =
        ApiLoop::around(&lab.dir().join("pki"), PROBE_CONFIGMAP, || {
            lab.up(&with_flag)
        });
    println!(
        "figures: static-pod apiserver flag change on 3 hosts: up {:.1} s, {} requests (reads \
         and writes through the VIP), {} failed, longest gap {} ms",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(code, 0, "up with a changed flag: {all}");
    assert_eq!(
        seen.failed, 0,
        "failed requests during the flag change: {seen:?}\n{all}"
    );
    // One host at a time: each host's new manifest is done before the next one's starts.
    let restarts: Vec<(String, String)> = all
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "restart-started" || e["event"] == "restart-finished")
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (field("event"), field("host"))
        })
        .collect();
    assert_eq!(restarts.len(), 6, "{restarts:?}\n{all}");
    let mut hosts: Vec<&str> = Vec::new();
    for pair in restarts.chunks(2) {
        assert_eq!(pair[0].0, "restart-started", "{restarts:?}");
        assert_eq!(pair[1].0, "restart-finished", "{restarts:?}");
        assert_eq!(pair[0].1, pair[1].1, "{restarts:?}");
        hosts.push(&pair[0].1);
    }
    hosts.sort();
    assert_eq!(hosts, CONTROL_PLANES, "{restarts:?}");
    let drained = all
        .matches("drained from every haproxy before the kubelet replaces its kube-apiserver")
        .count();
    assert_eq!(drained, 3, "{all}");
    // Each runs the flag now, in a process the kubelet started after the change.
    for (node, old) in CONTROL_PLANES.iter().zip(&before) {
        let now = lab.on(node, "pgrep -x kube-apiserver");
        assert_ne!(&now, old, "{node}: the same apiserver");
        let running = lab.on(node, &format!("tr '\\0' ' ' < /proc/{now}/cmdline"));
        assert!(running.contains("--profiling=false"), "{node}: {running}");
    }
    let (code, report) = lab.status(lab.config.to_str().unwrap());
    assert_eq!(code, 0, "status after the flag change: {report:#}");
    lab.assert_up_is_a_no_op(&with_flag);

    etcd_flag_change_under_load(&lab, &templates);
    upgrade_under_load(&lab, &kubeconfig, &with_flag, &old, &new);
}

/// An etcd flag change (through the same `--templates` dir): the kubelet replaces each etcd
/// member in turn, the leader last, behind the quorum guard; the host's apiserver, which reads
/// only that member, drained from every haproxy first and back once ready; no request through
/// the VIP fails.
fn etcd_flag_change_under_load(lab: &Lab, templates: &std::path::Path) {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/etcd.yaml.tera"),
    )
    .unwrap();
    let flag = "    - --snapshot-count=10000\n";
    assert!(manifest.contains(flag), "{manifest}");
    // etcd's default, written out: a new manifest, the same etcd.
    let changed = manifest.replace(flag, &format!("{flag}    - --heartbeat-interval=100\n"));
    std::fs::write(templates.join("etcd.yaml.tera"), changed).unwrap();
    let with_flag = ["--templates", templates.to_str().unwrap()];
    let before: Vec<String> = CONTROL_PLANES
        .iter()
        .map(|node| lab.on(node, "pgrep -x etcd"))
        .collect();
    let ((code, _, all), took, seen) =
        ApiLoop::around(&lab.dir().join("pki"), PROBE_CONFIGMAP, || {
            lab.up(&with_flag)
        });
    println!(
        "figures: static-pod etcd flag change on 3 members: up {:.1} s, {} requests (reads and \
         writes through the VIP), {} failed, longest gap {} ms",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(code, 0, "up with a changed etcd flag: {all}");
    assert_eq!(
        seen.failed, 0,
        "failed requests during the etcd flag change: {seen:?}\n{all}"
    );
    let events: Vec<Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let started = event_positions(&events, "etcd-static-pod", "restart-started");
    let finished = event_positions(&events, "etcd-static-pod", "restart-finished");
    assert_eq!((started.len(), finished.len()), (3, 3), "{all}");
    assert!(
        started.iter().zip(&finished).all(|(s, f)| s < f)
            && started.iter().skip(1).zip(&finished).all(|(s, f)| f < s),
        "not one member at a time: {all}"
    );
    let order = events
        .iter()
        .find(|e| e["event"] == "restart-order" && e["what"] == "etcd-static-pod")
        .unwrap_or_else(|| panic!("no restart order: {all}"));
    assert!(
        order["last"]
            .as_str()
            .unwrap_or_default()
            .contains("leads etcd"),
        "the leader is not last: {order}"
    );
    let drained = all
        .matches("drained from every haproxy before the kubelet replaces its etcd member")
        .count();
    assert_eq!(drained, 3, "{all}");
    // The control plane's manifests did not change: no apiserver was replaced.
    assert!(
        event_positions(&events, "control-plane", "restart-started").is_empty(),
        "{all}"
    );
    for (node, old) in CONTROL_PLANES.iter().zip(&before) {
        let now = lab.on(node, "pgrep -x etcd");
        assert_ne!(&now, old, "{node}: the same etcd");
        let running = lab.on(node, &format!("tr '\\0' ' ' < /proc/{now}/cmdline"));
        assert!(
            running.contains("--heartbeat-interval=100"),
            "{node}: {running}"
        );
    }
    lab.wait_healthy(lab.config.to_str().unwrap());
    lab.assert_up_is_a_no_op(&with_flag);
}

/// kubeadm's order, under a client reading and writing through the VIP: each host's static
/// pods move to `new` (their images imported first, the apiserver drained) while the kubelets
/// still run `old`, and only then the kubelets, one node at a time.
fn upgrade_under_load(
    lab: &Lab,
    kubeconfig: &std::path::Path,
    templates: &[&str],
    old: &str,
    new: &str,
) {
    upgrade_to_own_bundle(lab, new);
    let ((code, _, all), took, seen) =
        ApiLoop::around(&lab.dir().join("pki"), PROBE_CONFIGMAP, || {
            lab.up(templates)
        });
    println!(
        "figures: static-pod upgrade {old} -> {new} on 3 control planes: up {:.1} s, {} \
         requests (reads and writes through the VIP), {} failed, longest gap {} ms",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(code, 0, "the upgrade: {all}\n{seen:?}");
    assert_eq!(
        seen.failed, 0,
        "failed requests during the upgrade: {seen:?}\n{all}"
    );
    let events: Vec<Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let at = |what: &str, event: &str| event_positions(&events, what, event);
    // Whether each kubelet of the new release re-created its static pods or kept them.
    let kubelets_back: Vec<&str> = at("kubelet", "restart-finished")
        .into_iter()
        .filter_map(|i| events[i]["healthy"].as_str())
        .collect();
    println!("figures: static-pod upgrade, kubelets back: {kubelets_back:?}");
    let manifests_done = at("control-plane", "restart-finished");
    let kubelets_started = at("kubelet", "restart-started");
    assert_eq!(manifests_done.len(), 3, "{all}");
    assert_eq!(kubelets_started.len(), 3, "{all}");
    assert!(
        kubelets_started
            .iter()
            .all(|k| manifests_done.iter().all(|m| m < k)),
        "a kubelet moved before every apiserver ran {new}: {all}"
    );
    // Every mirror pod runs the new image; every node's kubelet is the new release.
    for node in CONTROL_PLANES {
        for program in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            let image = lab.kubectl_ok(
                kubeconfig,
                &[
                    "-n",
                    "kube-system",
                    "get",
                    "pod",
                    &format!("{program}-{node}"),
                    "-o",
                    "jsonpath={.spec.containers[0].image}",
                ],
            );
            assert_eq!(image, format!("registry.k8s.io/{program}:{new}"), "{node}");
        }
    }
    let versions = lab.kubectl_ok(
        kubeconfig,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.status.nodeInfo.kubeletVersion} {end}",
        ],
    );
    assert_eq!(
        versions.split_whitespace().collect::<Vec<_>>(),
        [new; 3],
        "{versions}"
    );
    let report = lab.wait_healthy(lab.config.to_str().unwrap());
    assert_eq!(
        report["controlPlane"]["nodes"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );
    lab.assert_up_is_a_no_op(templates);
}

const CONTROL_PLANES: [&str; 3] = ["cp1", "cp2", "cp3"];
