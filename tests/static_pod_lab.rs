//! The control plane as static pods on a lab node that runs containers (`kinit lab up
//! --runtime`, then `controlPlane.mode: static-pod`, kubeadm's layout): `kinit up` ships the
//! images kinit built from the bundle's own kube-apiserver, kube-controller-manager and
//! kube-scheduler to the control plane before its kubelet starts, the kubelet imports them and
//! runs the manifests kinit rendered with the real runc, and the API answers through the VIP.
//! The apiserver, controller-manager and scheduler must be Running as the kubelet's mirror pods,
//! from the bundle's images (no registry: nothing may be pulled), the node Ready, CoreDNS rolled
//! out, and a second `up` must change nothing. Three control planes, because a changed manifest
//! must roll as kubeadm's upgrade does, one host at a time: one `up` changes an etcd flag and an
//! apiserver flag (through `up --templates`) and upgrades the previous minor release to the
//! bundle's. The kubelet replaces each etcd member in turn (the leader last), then each host's
//! control-plane pods, each apiserver drained from every haproxy before its pod or its member is
//! replaced and back once ready, then the kubelets move, while a client reading and writing
//! through the VIP every 100 ms sees no failure. Then a snapshot restore of the static-pod etcd
//! (the manifests held aside, the data replaced, the API serving the snapshot's objects) and a
//! `reset` that leaves no static pod, manifest, port or etcd data dir behind.
//! Runs as root; the lab is removed when the test ends however it ends.

mod support;

use std::path::Path;
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

    // One `up` under load changes everything a static-pod control plane can be asked to change:
    // an etcd flag and an apiserver flag (through `--templates`) and the Kubernetes release.
    lab.create_probe_configmap(&kubeconfig, "n=start");
    let templates = lab.templates_with_apiserver_flag("--profiling=false");
    add_etcd_flag(&templates);
    everything_rolls_under_load(&lab, &kubeconfig, &templates, &old, &new);

    // Day two of a static-pod etcd: a snapshot restored, then the cluster reset.
    a_snapshot_restore_brings_back_what_etcd_held_when_it_was_saved(&lab, &kubeconfig);
    reset_takes_the_static_pods_off(&lab);
}

/// `etcd snapshot restore` on etcd as static pods: every member's manifest (and the control
/// plane's) held aside so the kubelet stops the pods, the data replaced, the manifests put back
/// so the kubelet runs new etcd containers; the API serves what the snapshot held, and not
/// what was written after it.
fn a_snapshot_restore_brings_back_what_etcd_held_when_it_was_saved(lab: &Lab, kubeconfig: &Path) {
    let config = lab.config.to_str().unwrap();
    let probe = |name: &str| {
        lab.kubectl(
            kubeconfig,
            &[
                "-n",
                "kinit-probe",
                "get",
                "configmap",
                name,
                "-o",
                "jsonpath={.data.n}",
            ],
        )
    };
    let (ok, held, all) = probe("probe");
    assert!(ok, "the probe ConfigMap before the snapshot: {all}");
    let file = lab.save_snapshot();
    // After the snapshot: the probe deleted, another ConfigMap created.
    lab.kubectl_ok(
        kubeconfig,
        &["-n", "kinit-probe", "delete", "configmap", "probe"],
    );
    lab.kubectl_ok(
        kubeconfig,
        &[
            "-n",
            "kinit-probe",
            "create",
            "configmap",
            "after-snapshot",
            "--from-literal=n=later",
        ],
    );
    let etcd_pids: Vec<String> = CONTROL_PLANES
        .iter()
        .map(|n| lab.on(n, "pgrep -x etcd"))
        .collect();

    let out = lab.kinit(&["-o", "json", "etcd", "snapshot", "restore", &file, "--yes"]);
    assert!(out.status.success(), "restore: {}", text(&out));
    let report = result_event(&out, "restored");
    let moved: Vec<&str> = report["manifestsMoved"]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        moved,
        CONTROL_PLANES.map(|n| format!("{n}: /etc/kubernetes/manifests.kinit-restore")),
        "{report:#}"
    );
    assert_eq!(
        report["members"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );
    // Every etcd is a new container's process, and the manifests are back where the kubelet
    // reads them (none left waiting).
    for (node, before) in CONTROL_PLANES.iter().zip(&etcd_pids) {
        let now = lab.on(node, "pgrep -x etcd || true");
        assert!(
            !now.is_empty() && &now != before,
            "{node}: etcd {before} -> {now:?}"
        );
        let left = lab.on(
            node,
            "ls /etc/kubernetes/manifests; ls /etc/kubernetes/manifests.kinit-restore 2>/dev/null; true",
        );
        assert_eq!(
            left.lines().collect::<Vec<_>>(),
            [
                "etcd.yaml",
                "kube-apiserver.yaml",
                "kube-controller-manager.yaml",
                "kube-scheduler.yaml"
            ],
            "{node}"
        );
    }
    let waited = wait_for(
        "the restored ConfigMap through the VIP",
        Duration::from_secs(180),
        || match probe("probe") {
            (true, n, _) if n == held => Ok(()),
            (_, n, all) => Err(format!("{n:?} {all}")),
        },
    );
    let (found, _, all) = probe("after-snapshot");
    assert!(
        !found,
        "a ConfigMap written after the snapshot survived: {all}"
    );
    lab.wait_healthy(config);
    println!(
        "figures: static-pod etcd restore on 3 members: {:.1} s (kinit's report), the API \
         serving the snapshot's objects {:.1} s after it returned",
        report["seconds"].as_f64().unwrap_or_default(),
        waited.as_secs_f64()
    );
}

/// `reset` of the whole cluster: every static pod stopped (etcd's too), their manifests gone,
/// the ports free, etcd's data moved aside rather than deleted.
fn reset_takes_the_static_pods_off(lab: &Lab) {
    let out = lab.kinit(&["-o", "json", "reset", "--yes"]);
    assert!(out.status.success(), "reset: {}", text(&out));
    assert_eq!(
        result_event(&out, "reset")["hosts"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{}",
        text(&out)
    );
    for node in CONTROL_PLANES {
        let left = lab.on(
            node,
            "pgrep -x etcd; pgrep -x kube-apiserver; ls /etc/kubernetes/manifests 2>/dev/null; \
             ls -d /var/lib/etcd/member 2>/dev/null; \
             ss -Hltn 'sport = :2379 or sport = :2380 or sport = :6443 or sport = :10257 or sport = :10259'; \
             true",
        );
        assert_eq!(left, "", "{node}: left after reset");
        let aside = lab.on(node, "ls -d /var/lib/etcd.reset-*/member");
        assert!(!aside.is_empty(), "{node}: etcd's data not kept aside");
    }
}

/// etcd's default heartbeat, written out as a flag in the `--templates` dir's etcd manifest: a
/// new manifest, the same etcd.
fn add_etcd_flag(templates: &Path) {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/etcd.yaml.tera"),
    )
    .unwrap();
    let flag = "    - --snapshot-count=10000\n";
    assert!(manifest.contains(flag), "{manifest}");
    let changed = manifest.replace(flag, &format!("{flag}    - --heartbeat-interval=100\n"));
    std::fs::write(templates.join("etcd.yaml.tera"), changed).unwrap();
}

/// kubeadm's order, under a client reading and writing through the VIP every 100 ms: the etcd
/// members first (the leader last, behind the quorum guard, each host's apiserver, which reads
/// only its own member, drained from every haproxy first), then each host's control-plane pods
/// (their new images imported first, the apiserver drained), all while the kubelets still run
/// `old`, and only then the kubelets, one node at a time. Not one request may fail.
fn everything_rolls_under_load(
    lab: &Lab,
    kubeconfig: &Path,
    templates: &Path,
    old: &str,
    new: &str,
) {
    upgrade_to_own_bundle(lab, new);
    let pids = |program: &str| -> Vec<String> {
        CONTROL_PLANES
            .iter()
            .map(|node| lab.on(node, &format!("pgrep -x {program}")))
            .collect()
    };
    let before = (pids("etcd"), pids("kube-apiserver"));
    let with_templates = ["--templates", templates.to_str().unwrap()];
    let ((code, _, all), took, seen) =
        ApiLoop::around(lab, PROBE_CONFIGMAP, || lab.up(&with_templates));
    println!(
        "figures: static-pod etcd flag, apiserver flag and upgrade {old} -> {new} on 3 control \
         planes: up {:.1} s, {} requests (reads and writes through the VIP), {} failed, longest \
         gap {} ms",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(code, 0, "the roll: {all}\n{seen:?}");
    assert_eq!(
        seen.failed, 0,
        "failed requests during the roll: {seen:?}\n{all}"
    );
    let events: Vec<Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // Where the roll's time goes (what to shorten when CI's budget gets tight).
    let phases: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "phase-finished" && e["seconds"].as_f64() > Some(1.0))
        .map(|e| format!("{} {:.0} s", e["phase"], e["seconds"].as_f64().unwrap()))
        .collect();
    println!("figures: the roll's phases over 1 s: {}", phases.join(", "));
    for what in ["etcd-static-pod", "control-plane", "kubelet"] {
        println!("figures: {}", turn_timeline(&events, what));
    }
    let etcd_done = one_host_at_a_time(&events, "etcd-static-pod", &all);
    let manifests_done = one_host_at_a_time(&events, "control-plane", &all);
    // The etcd leader goes last in both rolls that may restart a member: its manifest's, and
    // its kubelet's (a kubelet of another release re-creates its static pods, etcd's too).
    for what in ["etcd-static-pod", "kubelet"] {
        let order = events
            .iter()
            .find(|e| e["event"] == "restart-order" && e["what"] == what)
            .unwrap_or_else(|| panic!("no restart order of {what}: {all}"));
        assert!(
            order["last"]
                .as_str()
                .unwrap_or_default()
                .contains("leads etcd"),
            "{what}: the leader is not last: {order}"
        );
    }
    let handed_over = |phase: &str| {
        events.iter().any(|e| {
            e["event"] == "note"
                && e["phase"] == phase
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("etcd leadership handed from"))
        })
    };
    assert!(
        handed_over("etcd-static-pod") && handed_over("kubelets"),
        "no hand-over of etcd's leadership before the leader's restart: {all}"
    );
    for what in ["etcd member", "kube-apiserver"] {
        let drained = all
            .matches(&format!(
                "drained from every haproxy before the kubelet replaces its {what}"
            ))
            .count();
        assert_eq!(drained, 3, "{what}: {all}");
    }
    let kubelets_started = event_positions(&events, "kubelet", "restart-started");
    assert_eq!(kubelets_started.len(), 3, "{all}");
    let first = |v: &[usize]| v.iter().copied().min().unwrap();
    let last = |v: &[usize]| v.iter().copied().max().unwrap();
    assert!(
        last(&etcd_done) < first(&manifests_done)
            && last(&manifests_done) < first(&kubelets_started),
        "not etcd, then the control plane, then the kubelets: {all}"
    );
    // Whether each kubelet of the new release re-created its static pods or kept them.
    let kubelets_back: Vec<&str> = event_positions(&events, "kubelet", "restart-finished")
        .into_iter()
        .filter_map(|i| events[i]["healthy"].as_str())
        .collect();
    println!("figures: static-pod upgrade, kubelets back: {kubelets_back:?}");
    // A kubelet of another release re-creates every static pod of its host, and each turn waits
    // for all of them, not only the apiserver, before the next host goes.
    for back in &kubelets_back {
        for pod in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            assert!(
                back.contains("re-created") && back.contains(pod),
                "a kubelet's turn ended without {pod} settled: {back}"
            );
        }
    }
    // Each runs its flag now, in a process the kubelet started after the change.
    let after = (pids("etcd"), pids("kube-apiserver"));
    for (i, node) in CONTROL_PLANES.iter().enumerate() {
        for (old_pid, new_pid, flag) in [
            (&before.0[i], &after.0[i], "--heartbeat-interval=100"),
            (&before.1[i], &after.1[i], "--profiling=false"),
        ] {
            assert_ne!(new_pid, old_pid, "{node}: the same process, without {flag}");
            let running = lab.on(node, &format!("tr '\\0' ' ' < /proc/{new_pid}/cmdline"));
            assert!(running.contains(flag), "{node}: {running}");
        }
    }
    assert_all_run(lab, kubeconfig, new);
    let report = lab.wait_healthy(lab.config.to_str().unwrap());
    assert_eq!(
        report["controlPlane"]["nodes"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );
    lab.assert_up_is_a_no_op(&with_templates);
}

/// The `restart-finished` positions of `what`'s roll, checked to have gone over the three
/// control planes one host at a time (each host's turn ended before the next one's began).
fn one_host_at_a_time(events: &[Value], what: &str, all: &str) -> Vec<usize> {
    let started = event_positions(events, what, "restart-started");
    let finished = event_positions(events, what, "restart-finished");
    assert_eq!((started.len(), finished.len()), (3, 3), "{what}: {all}");
    assert!(
        started.iter().zip(&finished).all(|(s, f)| s < f)
            && started.iter().skip(1).zip(&finished).all(|(s, f)| f < s),
        "{what}: not one host at a time: {all}"
    );
    let mut hosts: Vec<&str> = finished
        .iter()
        .filter_map(|&i| events[i]["host"].as_str())
        .collect();
    hosts.sort();
    assert_eq!(hosts, CONTROL_PLANES, "{what}: {all}");
    finished
}

/// Every mirror pod runs `release`'s image; every node's kubelet is `release`. A mirror pod is
/// the API's copy of a static pod, which the kubelet replaces after the pod itself (and retries
/// at its next sync when the API did not answer during the roll): waited for, up to 2 min, and
/// the wait printed.
fn assert_all_run(lab: &Lab, kubeconfig: &Path, release: &str) {
    let waited = wait_for(
        &format!("every mirror pod on {release}"),
        Duration::from_secs(120),
        || {
            for node in CONTROL_PLANES {
                for program in [
                    "kube-apiserver",
                    "kube-controller-manager",
                    "kube-scheduler",
                ] {
                    let (_, image, all) = lab.kubectl(
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
                    if image != format!("registry.k8s.io/{program}:{release}") {
                        return Err(format!("{node}: {program}: {all}"));
                    }
                }
            }
            Ok(())
        },
    );
    eprintln!(
        "figures: mirror pods on {release} {} ms after the up",
        waited.as_millis()
    );
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
        [release; 3],
        "{versions}"
    );
}

const CONTROL_PLANES: [&str; 3] = ["cp1", "cp2", "cp3"];
