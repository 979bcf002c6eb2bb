//! `kinit up` end to end on lab nodes (real systemd, sshd, etcd from Debian's packages, haproxy,
//! keepalived with a moving VIP). Runs as root. Each scenario has its own lab name and subnet;
//! labs are removed when the test ends however it ends. These scenarios are about etcd, haproxy
//! and keepalived: on each node a stand-in (a second haproxy, `Lab::start_standin`) presents the
//! generated apiserver certificate on 6443 behind haproxy.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use support::hang_guard::{Watchdog, kinit, spawn_guarded};
use support::lab::*;

/// The scenarios run one at a time: the VIP failover is timed, and two clusters booting side by
/// side on two cores would blur it.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn stacked_up_survives_a_stopped_node_converges_fails_over_and_reruns_as_a_no_op() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab_up("kup", "10.213.204.0/24", "3");
    let nodes = ["cp1", "cp2", "cp3"];
    let addrs = ["10.213.204.11", "10.213.204.12", "10.213.204.13"];
    let vip = "10.213.204.100";
    let eps = endpoints(&addrs);

    // A dry run changes nothing and lists files as new.
    let out = lab.kinit(&["up", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let dry = String::from_utf8_lossy(&out.stdout);
    assert!(dry.contains("/etc/etcd/etcd.conf.yml (new)"), "{dry}");
    assert!(dry.contains("dry run (nothing was changed)"), "{dry}");
    assert!(
        lab.ssh("cp1", "test -e /etc/etcd/etcd.conf.yml")
            .status
            .code()
            == Some(1),
        "the dry run wrote a file"
    );

    // A node stopped in the middle of `up`: a clear error naming the host and the phase.
    let config = lab.config.to_str().unwrap().to_string();
    let mut run = spawn_guarded(
        Command::new(env!("CARGO_BIN_EXE_kinit"))
            .args(["-c", &config, "up"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let watchdog = Watchdog::arm(&run, COMMAND_LIMIT);
    let mut seen = String::new();
    for line in BufReader::new(run.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("== certificates") {
            let stop = kinit(&["lab", "stop", "--name", lab.name, "cp3"]);
            assert!(stop.status.success(), "{}", text(&stop));
            break;
        }
    }
    let failed = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !watchdog.disarm(),
        "hung: kinit up still running {COMMAND_LIMIT:?} after a node stopped\n{seen}{stderr}"
    );
    assert_eq!(failed.status.code(), Some(1), "{seen}{stderr}");
    assert!(stderr.contains("cp3"), "{seen}{stderr}");
    assert!(
        stderr.contains("resume with:") && stderr.contains("up --from-phase "),
        "{stderr}"
    );
    let start = kinit(&["lab", "start", "--name", lab.name, "cp3"]);
    assert!(start.status.success(), "{}", text(&start));

    // Re-run: the cluster converges.
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(summary["event"], "summary", "{all}");
    let not_done = summary["notDone"].to_string();
    assert!(
        not_done.contains("kubelet") && not_done.contains("has no `kubelet`"),
        "{all}"
    );

    // Three members healthy over mTLS from this machine; a key written through one member is
    // read through each of the others.
    let health = lab.etcdctl(&eps, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health));
    let list = lab.etcdctl(&eps[..1], &["member", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    for n in nodes {
        assert!(list.contains(&format!(", {n}, ")), "{list}");
    }
    let put = lab.etcdctl(&eps[..1], &["put", "kinit-test", "written-through-cp1"]);
    assert!(put.status.success(), "{}", text(&put));
    for ep in &eps[1..] {
        let get = lab.etcdctl(
            std::slice::from_ref(ep),
            &["get", "--print-value-only", "kinit-test"],
        );
        assert_eq!(
            String::from_utf8_lossy(&get.stdout).trim(),
            "written-through-cp1",
            "{ep}: {}",
            text(&get)
        );
    }

    // The VIP is on exactly one node; the stand-in behind haproxy answers on VIP:8443 with the
    // apiserver certificate, which verifies against the generated CA for the VIP's address.
    let holders = lab.vip_holders(&nodes, vip);
    assert_eq!(holders.len(), 1, "{holders:?}");
    // Status before the stand-ins: etcd healthy, the VIP where it is, but no apiserver behind
    // haproxy, so degraded with the backends named.
    let cfg = lab.config.to_str().unwrap().to_string();
    let (code, report) = lab.status(&cfg);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["vip"]["holders"], serde_json::json!([holders[0]]));
    assert_eq!(host(&report, &holders[0])["keepalived"], "MASTER");
    let members = report["etcd"]["members"].as_array().unwrap();
    assert_eq!(
        members.iter().filter(|m| m["healthy"] == true).count(),
        3,
        "{report:#}"
    );
    assert_eq!(
        members.iter().filter(|m| m["leader"] == true).count(),
        1,
        "{report:#}"
    );
    assert!(
        report["problems"]
            .to_string()
            .contains("haproxy backend apiserver/"),
        "{report:#}"
    );
    for n in nodes {
        lab.start_standin(n);
    }
    wait_for("VIP:8443 through haproxy", Duration::from_secs(20), || {
        lab.vip_verifies(vip, 8443)
    });
    // With the stand-ins every backend comes up: healthy, in text and JSON.
    let report = lab.wait_healthy(&cfg);
    for n in nodes {
        let h = host(&report, n);
        assert_eq!(h["reachable"], true);
        assert_eq!(
            h["keepalived"],
            if *n == holders[0] { "MASTER" } else { "BACKUP" }
        );
    }
    let out = lab.kinit(&["status"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        shown.contains(&format!("VIP {vip} held by {}", holders[0])),
        "{shown}"
    );
    assert!(shown.contains("cluster kup: HEALTHY"), "{shown}");

    // A second run writes nothing and restarts nothing. (The stand-in holds 6443 as the
    // apiserver would; preflight is told so.)
    let (summary, all) = lab.assert_up_is_a_no_op(&["--ignore-preflight-errors=Port-6443"]);
    assert!(summary["filesUnchanged"].as_u64().unwrap() > 50, "{all}");
    // On a terminal (spinners per host): the dry run of a converged cluster changes nothing.
    let out = lab.in_a_terminal(&["up", "--dry-run", "--ignore-preflight-errors=Port-6443"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        shown.contains("dry run (nothing was changed)")
            && shown.contains(" 0 file(s) would be written")
            && shown.contains("0 would be restarted"),
        "{shown}"
    );

    // Another machine's lock on one host: refused, naming its owner, and no host stays locked by
    // this run; --break-lock removes it.
    lab.on(
        "cp2",
        "mkdir -p /run/kinit/up.lock && echo 'other-operator 4242 1700000000' > /run/kinit/up.lock/owner",
    );
    let (code, _, all) = lab.up(&["--ignore-preflight-errors=Port-6443"]);
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("locked by kinit up on other-operator (pid 4242)")
            && all.contains("--break-lock"),
        "{all}"
    );
    for n in ["cp1", "cp3"] {
        assert_eq!(
            lab.ssh(n, "test -e /run/kinit/up.lock").status.code(),
            Some(1),
            "{n} still locked"
        );
    }
    let (code, _, all) = lab.up(&["--ignore-preflight-errors=Port-6443", "--break-lock"]);
    assert_eq!(code, 0, "{all}");
    // A lock left by a run of this machine (hostname and machine-id) that no longer exists is
    // taken over.
    let me = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    lab.on(
        "cp3",
        &format!(
            "mkdir -p /run/kinit/up.lock && echo '{} {dead_pid} 1700000000 {}' > /run/kinit/up.lock/owner",
            me.trim(),
            std::fs::read_to_string("/etc/machine-id").unwrap().trim()
        ),
    );
    let (code, _, all) = lab.up(&["--ignore-preflight-errors=Port-6443"]);
    assert_eq!(code, 0, "{all}");
    assert!(all.contains("cp3: took over a stale lock"), "{all}");

    // Failover: stop the node holding the VIP; the VIP moves and VIP:8443 answers again.
    let holder = holders[0].clone();
    let stop = kinit(&["lab", "stop", "--name", lab.name, &holder]);
    assert!(stop.status.success(), "{}", text(&stop));
    let rest: Vec<&str> = nodes.iter().copied().filter(|n| **n != *holder).collect();
    let moved = wait_for("the VIP to move", Duration::from_secs(10), || {
        let h = lab.vip_holders(&rest, vip);
        if h.len() == 1 {
            lab.vip_verifies(vip, 8443)
        } else {
            Err(format!("holders: {h:?}"))
        }
    });
    eprintln!("VIP moved from {holder} and answered again after {moved:?}");
    // etcd keeps quorum with two members and accepts writes.
    let alive: Vec<String> = nodes
        .iter()
        .zip(&eps)
        .filter(|(n, _)| **n != holder)
        .map(|(_, e)| e.clone())
        .collect();
    let put = lab.etcdctl(&alive, &["put", "after-failover", "yes"]);
    assert!(put.status.success(), "{}", text(&put));
    // Status sees it: the stopped node unreachable and its member down, the VIP on the new
    // holder, degraded.
    let (code, report) = lab.status(&cfg);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(host(&report, &holder)["reachable"], false, "{report:#}");
    let new_holder = lab.vip_holders(&rest, vip);
    assert_eq!(
        report["vip"]["holders"],
        serde_json::json!(new_holder),
        "{report:#}"
    );
    let down = report["etcd"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == holder.as_str())
        .unwrap();
    assert_eq!(down["healthy"], false, "{report:#}");
    // The stopped node comes back, rejoins, and every member is healthy.
    let start = kinit(&["lab", "start", "--name", lab.name, &holder]);
    assert!(start.status.success(), "{}", text(&start));
    wait_for("all members healthy again", Duration::from_secs(60), || {
        etcd_all_healthy(&lab, &eps)
    });
    let back = eps[nodes.iter().position(|n| *n == holder).unwrap()].clone();
    let get = lab.etcdctl(&[back], &["get", "--print-value-only", "after-failover"]);
    assert_eq!(
        String::from_utf8_lossy(&get.stdout).trim(),
        "yes",
        "{}",
        text(&get)
    );
    // The node came back (its stand-in did not: start it again) and status is healthy again.
    lab.start_standin(&holder);
    let report = lab.wait_healthy(&cfg);
    assert_eq!(host(&report, &holder)["reachable"], true);
}

#[test]
fn external_etcd_up_on_three_etcd_hosts_and_two_control_planes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab_up("kux", "10.213.205.0/24", "5");
    // The lab's cluster.yaml made external: etcd on cp1-cp3 only, control plane on w1, w2.
    let stacked = std::fs::read_to_string(&lab.config).unwrap();
    let external = stacked
        .replace("topology: stacked", "topology: external")
        .replace("roles: [control-plane, etcd]", "roles: [etcd]")
        .replace("roles: [worker]", "roles: [control-plane]")
        // The time-sync phase runs too: chrony on every host pointed at a lab node.
        .replace(
            "  hosts:\n",
            "  timeSync:\n    servers: [10.213.205.11]\n  hosts:\n",
        );
    let config = lab.dir().join("external.yaml");
    std::fs::write(&config, &external).unwrap();
    let config = config.to_str().unwrap().to_string();
    let out = kinit(&["-c", &config, "-o", "json", "up", "--topology", "stacked"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a topology that does not match: {}",
        text(&out)
    );

    let out = kinit(&["-c", &config, "-o", "json", "up", "--topology", "external"]);
    assert!(out.status.success(), "{}", text(&out));

    let eps = endpoints(&["10.213.205.11", "10.213.205.12", "10.213.205.13"]);
    let health = lab.etcdctl(&eps, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health));
    let put = lab.etcdctl(&eps[..1], &["put", "k", "v"]);
    assert!(put.status.success(), "{}", text(&put));
    for ep in &eps[1..] {
        let get = lab.etcdctl(
            std::slice::from_ref(ep),
            &["get", "--print-value-only", "k"],
        );
        assert_eq!(
            String::from_utf8_lossy(&get.stdout).trim(),
            "v",
            "{}",
            text(&get)
        );
    }
    // No etcd on the control-plane hosts; they hold the apiserver-etcd-client certificate.
    for cp in ["w1", "w2"] {
        assert_ne!(lab.on(cp, "systemctl is-active etcd || true"), "active");
        lab.on(cp, "test -s /etc/kubernetes/pki/apiserver-etcd-client.key");
        let manifest = lab.on(cp, "cat /etc/kubernetes/manifests/kube-apiserver.yaml");
        assert!(
            manifest.contains("--etcd-servers=https://10.213.205.11:2379"),
            "{manifest}"
        );
    }
    for n in ["cp1", "w2"] {
        let conf = lab.on(n, "cat /etc/chrony/chrony.conf");
        assert!(conf.contains("server 10.213.205.11 iburst"), "{conf}");
        assert_eq!(lab.on(n, "systemctl is-active chrony"), "active");
    }
    let vip = "10.213.205.100";
    assert_eq!(lab.vip_holders(&["w1", "w2"], vip).len(), 1);
    assert!(lab.vip_holders(&["cp1", "cp2", "cp3"], vip).is_empty());
    for cp in ["w1", "w2"] {
        lab.start_standin(cp);
    }
    wait_for("VIP:8443 through haproxy", Duration::from_secs(20), || {
        lab.vip_verifies(vip, 8443)
    });

    let report = lab.wait_healthy(&config);
    assert_eq!(
        report["etcd"]["members"].as_array().unwrap().len(),
        3,
        "{report:#}"
    );
    for cp in ["w1", "w2"] {
        assert_eq!(
            host(&report, cp)["haproxy"]["servers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    external_static_pod_dry_run_plans_a_kubelet_on_the_etcd_hosts(&lab, &external);

    let again = kinit(&[
        "-c",
        &config,
        "-o",
        "json",
        "up",
        "--ignore-preflight-errors=Port-6443",
    ]);
    let last: Value = String::from_utf8_lossy(&again.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    assert_eq!(
        (
            last["filesWritten"].as_u64(),
            last["servicesRestarted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{}",
        text(&again)
    );
}

/// The same hosts with etcd as a static pod, and a bundle that also carries a kubelet and a
/// container runtime: `up --dry-run -o json` plans a kubelet for every etcd-only host, started in
/// the node phase, before the etcd-static-pod phase waits for the etcd the kubelet runs.
fn external_static_pod_dry_run_plans_a_kubelet_on_the_etcd_hosts(lab: &Lab, external: &str) {
    let bundle = lab.dir().join("bundle-with-kubelet");
    std::fs::create_dir_all(&bundle).unwrap();
    let mut sums = std::fs::read_to_string(lab.dir().join("bundle/SHA256SUMS")).unwrap();
    for f in ["etcd", "etcdctl"] {
        std::fs::copy(lab.dir().join("bundle").join(f), bundle.join(f)).unwrap();
    }
    // The node layer: the kubelet, containerd and everything their rows install.
    for f in [
        "kubelet",
        "containerd",
        "containerd-shim-runc-v2",
        "ctr",
        "runc",
        "cni/bridge",
        "cni/host-local",
        "cni/loopback",
        "cni/portmap",
        "images/pause.tar",
        "kube-proxy",
    ] {
        // Stand-ins: a dry run checks them against SHA256SUMS and uploads nothing.
        let content = format!("#!/bin/sh\n# {f} stand-in\n");
        std::fs::create_dir_all(bundle.join(f).parent().unwrap()).unwrap();
        std::fs::write(bundle.join(f), &content).unwrap();
        let sum = Command::new("sha256sum")
            .arg(bundle.join(f))
            .output()
            .unwrap();
        let hex = String::from_utf8_lossy(&sum.stdout)[..64].to_string();
        sums.push_str(&format!("{hex}  {f}\n"));
    }
    std::fs::write(bundle.join("SHA256SUMS"), sums).unwrap();
    let static_pod = external
        .replace("mode: systemd", "mode: static-pod")
        .replace("bundle: ./bundle", "bundle: ./bundle-with-kubelet");
    assert!(static_pod.contains("mode: static-pod") && static_pod.contains("bundle-with-kubelet"));
    let config = lab.dir().join("external-static-pod.yaml");
    std::fs::write(&config, static_pod).unwrap();
    let out = kinit(&[
        "-c",
        config.to_str().unwrap(),
        "-o",
        "json",
        "up",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started = |phase: &str| {
        events
            .iter()
            .position(|e| e["event"] == "phase-started" && e["phase"] == phase)
            .unwrap_or_else(|| panic!("no phase {phase}: {}", text(&out)))
    };
    let (node, etcd_phase) = (started("node"), started("etcd-static-pod"));
    assert!(node < etcd_phase, "{}", text(&out));
    for h in ["cp1", "cp2", "cp3"] {
        let kubelet = events
            .iter()
            .position(|e| {
                e["event"] == "step-finished"
                    && e["phase"] == "node"
                    && e["host"] == h
                    && e["step"] == "service kubelet"
                    && e["outcome"]["action"] == "start"
            })
            .unwrap_or_else(|| panic!("{h}: no kubelet planned: {}", text(&out)));
        assert!(kubelet < etcd_phase);
        let manifest = events.iter().any(|e| {
            e["event"] == "step-finished"
                && e["phase"] == "etcd-static-pod"
                && e["host"] == h
                && e["outcome"]["written"].as_array().is_some_and(|w| {
                    w.iter()
                        .any(|f| f["path"] == "/etc/kubernetes/manifests/etcd.yaml")
                })
        });
        assert!(manifest, "{h}: no etcd manifest planned: {}", text(&out));
    }
    // Nothing was changed on the hosts.
    assert_eq!(
        lab.on(
            "cp1",
            "test -e /etc/kubernetes/manifests/etcd.yaml && echo yes || echo no"
        ),
        "no"
    );
    assert_eq!(lab.on("cp1", "systemctl is-active etcd || true"), "active");
}
