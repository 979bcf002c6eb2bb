//! Day two on the real control plane (issue 28 §3): kube-apiserver, kube-controller-manager and
//! kube-scheduler v1.37 as systemd units (built here by hack/build-upstream.sh) on etcd 3.6,
//! behind haproxy and the keepalived VIP. Each scenario is its own lab (own name and subnet),
//! removed when its test ends however it ends. Runs as root.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::lab::*;

const NODES: [&str; 3] = ["cp1", "cp2", "cp3"];
/// The control plane's units, as an operator lists them.
const CONTROL_PLANE_UNITS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// `up --topology stacked` on a fresh lab of the real control plane; the probe ConfigMap
/// created through the VIP; the admin kubeconfig.
fn up_with_probe(lab: &Lab) -> std::path::PathBuf {
    let (code, _, all) = lab.up(&["--topology", "stacked"]);
    assert_eq!(code, 0, "up: {all}");
    lab.wait_healthy(lab.config.to_str().unwrap());
    let kubeconfig = lab.admin_kubeconfig();
    wait_for(
        "the API through the VIP",
        Duration::from_secs(60),
        || match lab.kubectl(&kubeconfig, &["get", "--raw", "/readyz"]) {
            (true, _, _) => Ok(()),
            (false, _, all) => Err(all),
        },
    );
    lab.create_probe_configmap(&kubeconfig, "k=v1");
    kubeconfig
}

/// The probe ConfigMap's value, or None when the API says it is not there.
fn probe_value(lab: &Lab, kubeconfig: &Path) -> Option<String> {
    let (ok, stdout, all) = lab.kubectl(
        kubeconfig,
        &[
            "-n",
            "kinit-probe",
            "get",
            "configmap",
            "probe",
            "-o",
            "jsonpath={.data.k}",
        ],
    );
    if ok {
        Some(stdout)
    } else {
        assert!(all.contains("NotFound"), "{all}");
        None
    }
}

/// The hosts whose apiserver `kinit status` reports ready.
fn apiservers_ready(report: &Value) -> Vec<String> {
    report["controlPlane"]["apiservers"]
        .as_array()
        .unwrap_or_else(|| panic!("no control plane in {report:#}"))
        .iter()
        .filter(|a| a["ready"] == true)
        .map(|a| a["host"].as_str().unwrap().to_string())
        .collect()
}

/// A systemd timestamp property in microseconds of the (shared) monotonic clock.
fn monotonic(lab: &Lab, node: &str, unit: &str, property: &str) -> u64 {
    let v = lab.unit_property(node, unit, property);
    v.parse()
        .unwrap_or_else(|e| panic!("{node}: {unit} {property} = {v:?}: {e}"))
}

#[test]
fn a_snapshot_restore_stops_the_control_plane_units_before_etcd_is_replaced_and_brings_the_objects_back()
 {
    let lab = lab_up_kubernetes("kcprst", "10.213.211.0/24", "3");
    let config = lab.config.to_str().unwrap().to_string();
    let kubeconfig = up_with_probe(&lab);

    // A verified snapshot holding the ConfigMap; then the ConfigMap deleted through the API.
    let file = lab.save_snapshot();
    lab.kubectl_ok(
        &kubeconfig,
        &["-n", "kinit-probe", "delete", "configmap", "probe"],
    );
    assert_eq!(probe_value(&lab, &kubeconfig), None);
    let invocation = |node: &str, unit: &str| lab.unit_property(node, unit, "InvocationID");
    let before: Vec<Vec<String>> = NODES
        .iter()
        .map(|n| {
            CONTROL_PLANE_UNITS
                .iter()
                .map(|u| invocation(n, u))
                .collect()
        })
        .collect();

    let started = Instant::now();
    let out = lab.kinit(&["-o", "json", "etcd", "snapshot", "restore", &file, "--yes"]);
    let restore_took = started.elapsed();
    assert!(out.status.success(), "restore: {}", text(&out));
    // `-o json`: the restore's phase events (systemd mode: its units started again in the
    // last phase), then the report as the last line.
    let events = json_lines(&out);
    assert!(
        events.iter().any(|e| e["event"] == "phase-finished"
            && e["phase"] == "start-units"
            && e["ok"] == true),
        "{}",
        text(&out)
    );
    let report = result_event(&out, "restored");
    let restarted: Vec<&str> = report["unitsRestarted"]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#}"))
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let each = CONTROL_PLANE_UNITS.join(", ");
    assert_eq!(
        restarted,
        NODES.map(|n| format!("{n}: {each}")),
        "{report:#}"
    );

    // On every host each unit ran anew, and in this order: the control plane stopped, then
    // etcd stopped (its data replaced) and started, then the control plane started.
    for (i, node) in NODES.iter().enumerate() {
        for (j, unit) in CONTROL_PLANE_UNITS.iter().enumerate() {
            assert_eq!(lab.unit_property(node, unit, "ActiveState"), "active");
            assert_ne!(
                invocation(node, unit),
                before[i][j],
                "{node}: {unit} not restarted"
            );
            let stopped = monotonic(&lab, node, unit, "InactiveEnterTimestampMonotonic");
            let running = monotonic(&lab, node, unit, "ActiveEnterTimestampMonotonic");
            let etcd_stopped = monotonic(&lab, node, "etcd", "InactiveEnterTimestampMonotonic");
            let etcd_started = monotonic(&lab, node, "etcd", "ActiveEnterTimestampMonotonic");
            assert!(
                stopped < etcd_stopped,
                "{node}: {unit} stopped at {stopped}, etcd at {etcd_stopped}"
            );
            assert!(
                etcd_started < running,
                "{node}: etcd started at {etcd_started}, {unit} at {running}"
            );
        }
    }

    // The API object is back, every apiserver ready, the cluster healthy.
    assert_eq!(probe_value(&lab, &kubeconfig).as_deref(), Some("v1"));
    let status = lab.wait_healthy(&config);
    assert_eq!(apiservers_ready(&status), NODES, "{status:#}");
    eprintln!(
        "figures: restore with the control plane stopped and started: {:.1}s",
        restore_took.as_secs_f64()
    );
}

#[test]
fn removing_a_control_plane_and_adding_it_back_through_the_config_fails_no_request() {
    let lab = lab_up_kubernetes("kcprm", "10.213.212.0/24", "3");
    let vip = "10.213.212.100";
    let config = lab.config.to_str().unwrap().to_string();
    let kubeconfig = up_with_probe(&lab);
    lab.wait_healthy(&config);
    // cp3 is not the VIP holder: its own haproxy carries no client's requests.
    let holders = lab.vip_holders(&NODES, vip);
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_ne!(
        holders[0], "cp3",
        "keepalived's priority puts the VIP elsewhere"
    );
    let with_cp3 = std::fs::read_to_string(&lab.config).unwrap();

    let client = ApiLoop::start(&lab, PROBE_CONFIGMAP);
    std::thread::sleep(Duration::from_secs(2));

    // A removal cut short (SIGTERM) once cp3's apiserver is drained, before its etcd member
    // leaves: the run puts cp3's apiserver back in every haproxy before it exits (143), and
    // the cluster is as it was.
    let (lines, stderr) = lab
        .kinit_until(
            &["remove", "cp3", "--yes"],
            &["cp3: its apiserver was drained from every haproxy"],
        )
        .terminate();
    let all = format!("{}\n{stderr}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains(
            "cp3: stopped before the host was reset: its apiserver is back in every haproxy"
        )),
        "{all}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(r#""phase-started""#) && l.contains(r#""etcd-members""#)),
        "the member's removal began: {all}"
    );
    let (_, report) = lab.status(&config);
    let problems = report["problems"].to_string();
    assert!(
        !problems.contains("DRAIN") && !problems.contains("MAINT"),
        "cp3's apiserver left drained: {problems}"
    );
    let status = lab.wait_healthy(&config);
    assert_eq!(apiservers_ready(&status), NODES, "{status:#}");

    // cp3 removed: its apiserver drained from every haproxy before its etcd member leaves,
    // then the host reset; the config follows.
    let started = Instant::now();
    let out = lab.kinit(&["-o", "json", "remove", "cp3", "--yes"]);
    let remove_took = started.elapsed();
    assert!(out.status.success(), "remove: {}", text(&out));
    let report = result_event(&out, "removed");
    assert_eq!(
        report["drained"],
        serde_json::json!(["cp3: its apiserver was drained from every haproxy"]),
        "{report:#}"
    );
    lab.edit_host("cp3", |_| None);
    let left = lab.on(
        "cp3",
        "for p in /usr/local/bin/kube-apiserver /etc/systemd/system/kube-apiserver.service; do \
         [ -e \"$p\" ] && echo \"$p\"; done; ss -Hltn 'sport = :6443'; true",
    );
    assert_eq!(left, "", "cp3 still runs an apiserver");
    let status = lab.wait_healthy(&config);
    assert_eq!(apiservers_ready(&status), ["cp1", "cp2"], "{status:#}");
    let removed = client.stop();

    // cp3 back through cluster.yaml and `up`: etcd learner first, its apiserver in haproxy
    // only once /readyz passes.
    let client = ApiLoop::start(&lab, PROBE_CONFIGMAP);
    std::fs::write(&lab.config, &with_cp3).unwrap();
    let started = Instant::now();
    let (code, _, all) = lab.up(&[]);
    let add_took = started.elapsed();
    assert_eq!(code, 0, "up with cp3 back: {all}");
    wait_for("cp3's apiserver ready", Duration::from_secs(120), || {
        let (_, report) = lab.status(&config);
        match apiservers_ready(&report) {
            ready if ready == NODES => Ok(()),
            ready => Err(format!("{ready:?}")),
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let added = client.stop();
    assert_eq!(probe_value(&lab, &kubeconfig).as_deref(), Some("v1"));
    lab.wait_healthy(&config);

    eprintln!(
        "figures: remove cp3 {:.1}s: {} requests, {} failed, longest gap {} ms; \
         add cp3 back {:.1}s: {} requests, {} failed, longest gap {} ms",
        remove_took.as_secs_f64(),
        removed.requests,
        removed.failed,
        removed.longest_gap.as_millis(),
        add_took.as_secs_f64(),
        added.requests,
        added.failed,
        added.longest_gap.as_millis()
    );
    assert_eq!(
        removed.failed, 0,
        "while a removal of cp3 was cut short, then while cp3 was removed: {removed:?}"
    );
    assert_eq!(added.failed, 0, "while cp3 was added back: {added:?}");
    assert!(removed.requests > 20 && added.requests > 20);
}

#[test]
fn reset_takes_the_control_plane_units_binaries_and_files_off() {
    let lab = lab_up_kubernetes("kcpreset", "10.213.213.0/24", "1");
    let (code, _, all) = lab.up(&["--topology", "stacked"]);
    assert_eq!(code, 0, "up: {all}");
    lab.wait_healthy(lab.config.to_str().unwrap());
    for unit in CONTROL_PLANE_UNITS {
        assert_eq!(lab.unit_property("cp1", unit, "ActiveState"), "active");
    }

    let out = lab.kinit(&["-o", "json", "reset", "--yes"]);
    assert!(out.status.success(), "reset: {}", text(&out));
    // The reset's phases, from the runner `kinit up` uses, then its report.
    let started: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|e| e["event"] == "phase-started")
        .map(|e| e["phase"].clone())
        .collect();
    assert_eq!(
        started.get(..3),
        Some(&["etcd-members", "drain-nodes", "hosts"].map(Value::from)[..]),
        "{}",
        text(&out)
    );
    assert_eq!(
        result_event(&out, "reset")["hosts"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // No unit loaded or running, no binary, unit file or kubeconfig left; the apiserver's,
    // controller-manager's and scheduler's ports free.
    for unit in CONTROL_PLANE_UNITS {
        assert_eq!(
            lab.unit_property("cp1", unit, "LoadState"),
            "not-found",
            "{unit}"
        );
        let left = lab.on(
            "cp1",
            &format!(
                "for p in /usr/local/bin/{unit} /etc/systemd/system/{unit}.service \
                 /etc/systemd/system/multi-user.target.wants/{unit}.service; do \
                 [ -e \"$p\" ] && echo \"$p\"; done; true"
            ),
        );
        assert_eq!(left, "", "{unit}: left behind");
    }
    let left = lab.on(
        "cp1",
        "for p in /usr/local/bin/kubectl /etc/kubernetes; do [ -e \"$p\" ] && echo \"$p\"; done; \
         true",
    );
    assert_eq!(left, "", "left behind");
    let listening = lab.on(
        "cp1",
        "ss -Hltn 'sport = :6443 or sport = :10257 or sport = :10259'",
    );
    assert_eq!(listening, "", "ports still held");

    // The host takes the control plane again.
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "up after reset: {all}");
    lab.wait_healthy(lab.config.to_str().unwrap());
}

#[test]
fn the_external_topology_runs_the_real_control_plane_on_dedicated_etcd_hosts() {
    let lab = lab_up_kubernetes("kcpext", "10.213.214.0/24", "5");
    // etcd on cp1-cp3 alone, the control plane on w1 and w2.
    let stacked = std::fs::read_to_string(&lab.config).unwrap();
    let external = stacked
        .replace("topology: stacked", "topology: external")
        .replace("roles: [control-plane, etcd]", "roles: [etcd]")
        .replace("roles: [worker]", "roles: [control-plane]");
    assert_ne!(external, stacked);
    std::fs::write(&lab.config, &external).unwrap();
    let config = lab.config.to_str().unwrap().to_string();

    let started = Instant::now();
    let (code, _, all) = lab.up(&["--topology", "external"]);
    let up_took = started.elapsed();
    assert_eq!(code, 0, "up: {all}");
    let status = lab.wait_healthy(&config);
    assert_eq!(apiservers_ready(&status), ["w1", "w2"], "{status:#}");

    // The control-plane hosts run no etcd; their apiservers read every member.
    for cp in ["w1", "w2"] {
        assert_ne!(lab.on(cp, "systemctl is-active etcd || true"), "active");
        let unit = lab.on(cp, "cat /etc/systemd/system/kube-apiserver.service");
        assert!(
            unit.contains(
                "--etcd-servers=https://10.213.214.11:2379,https://10.213.214.12:2379,\
                 https://10.213.214.13:2379"
            ),
            "{unit}"
        );
        for unit in CONTROL_PLANE_UNITS {
            assert_eq!(lab.unit_property(cp, unit, "ActiveState"), "active");
        }
    }
    for etcd in ["cp1", "cp2", "cp3"] {
        for unit in CONTROL_PLANE_UNITS {
            assert_eq!(
                lab.unit_property(etcd, unit, "LoadState"),
                "not-found",
                "{etcd}: {unit}"
            );
        }
    }

    // kubectl through the VIP: an object written, read back.
    let kubeconfig = lab.admin_kubeconfig();
    lab.create_probe_configmap(&kubeconfig, "k=v1");
    assert_eq!(probe_value(&lab, &kubeconfig).as_deref(), Some("v1"));

    // A second up changes nothing.
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "second up: {all}");
    assert_eq!(
        (
            summary["filesWritten"].as_u64(),
            summary["servicesRestarted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{all}"
    );

    // An etcd host removed: each apiserver's unit names the members that stay and restarts
    // drained from haproxy; not one request through the VIP fails.
    let client = ApiLoop::start(&lab, PROBE_CONFIGMAP);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let out = lab.kinit(&["-o", "json", "remove", "cp3", "--yes"]);
    let remove_took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let seen = client.stop();
    assert!(out.status.success(), "remove cp3: {}", text(&out));
    lab.edit_host("cp3", |_| None);
    for cp in ["w1", "w2"] {
        let unit = lab.on(cp, "cat /etc/systemd/system/kube-apiserver.service");
        assert!(
            unit.contains("--etcd-servers=https://10.213.214.11:2379,https://10.213.214.12:2379")
                && !unit.contains("10.213.214.13"),
            "{cp}: {unit}"
        );
    }
    let status = lab.wait_healthy(&config);
    assert_eq!(apiservers_ready(&status), ["w1", "w2"], "{status:#}");
    eprintln!(
        "figures: external up {:.1}s; remove etcd host cp3 {:.1}s: {} requests, {} failed, \
         longest gap {} ms",
        up_took.as_secs_f64(),
        remove_took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(seen.failed, 0, "while cp3 was removed: {seen:?}");
}

#[test]
fn renewed_control_plane_certificates_and_kubeconfigs_roll_out_without_a_failed_request() {
    let lab = lab_up_kubernetes("kcpcert", "10.213.215.0/24", "3");
    let config = lab.config.to_str().unwrap().to_string();
    let kubeconfig = up_with_probe(&lab);
    let invocation = |node: &str, unit: &str| lab.unit_property(node, unit, "InvocationID");
    let before: Vec<Vec<String>> = NODES
        .iter()
        .map(|n| {
            CONTROL_PLANE_UNITS
                .iter()
                .map(|u| invocation(n, u))
                .collect()
        })
        .collect();

    // The apiserver's certificates and the controller-manager's and scheduler's kubeconfigs
    // renewed and rolled out: each unit restarts (the apiservers drained from haproxy first),
    // one host at a time; not one request through the VIP fails.
    let client = ApiLoop::start(&lab, PROBE_CONFIGMAP);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let out = lab.kinit(&[
        "certs",
        "renew",
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "controller-manager.conf",
        "scheduler.conf",
        "--rollout",
    ]);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let seen = client.stop();
    assert!(out.status.success(), "{}", text(&out));
    for (i, node) in NODES.iter().enumerate() {
        for (j, unit) in CONTROL_PLANE_UNITS.iter().enumerate() {
            assert_eq!(lab.unit_property(node, unit, "ActiveState"), "active");
            assert_ne!(
                invocation(node, unit),
                before[i][j],
                "{node}: {unit} not restarted"
            );
        }
    }
    eprintln!(
        "figures: control-plane rollout {:.1}s: {} requests, {} failed, longest gap {} ms",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(
        seen.failed, 0,
        "failed requests during the rollout: {seen:?}"
    );

    // The controllers and the scheduler hold their leases again; the API answers.
    wait_for(
        "both leases held by a control plane",
        Duration::from_secs(90),
        || {
            let (code, report) = lab.status(&config);
            let leases = report["controlPlane"]["leases"].as_array().cloned();
            match leases {
                Some(l)
                    if code == 0
                        && l.len() == 2
                        && l.iter()
                            .all(|l| NODES.contains(&l["holder"].as_str().unwrap_or(""))) =>
                {
                    Ok(())
                }
                _ => Err(format!("{:#}", report["controlPlane"])),
            }
        },
    );
    assert_eq!(probe_value(&lab, &kubeconfig).as_deref(), Some("v1"));
}
