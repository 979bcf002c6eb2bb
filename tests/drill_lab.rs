//! `kinit drill` on the real control plane (kube-apiserver, controller-manager and scheduler as
//! systemd units behind haproxy and the keepalived VIP, etcd 3.6): each drill takes its piece
//! down for real, measures, brings it back and passes; a drill on a degraded cluster is
//! refused with nothing changed; SIGTERM mid-drill starts the stopped unit again. Runs as root.

mod support;

use serde_json::Value;

use support::lab::*;

const NODES: [&str; 3] = ["cp1", "cp2", "cp3"];

/// `kinit -o json drill ARGS --duration 4 --yes`: (exit code, report, all output).
fn drill(lab: &Lab, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["-o", "json", "drill"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--duration", "4", "--yes"]);
    let out = lab.kinit(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, text(&out))
}

/// The drill passed, its unit was down during it and up after, and status is healthy.
fn passed(lab: &Lab, config: &str, code: i32, r: &Value, all: &str, unit: &str) {
    assert_eq!(code, 0, "{all}");
    assert_eq!(r["verdict"]["pass"], true, "{all}");
    assert_eq!(r["target"]["unit"], unit, "{all}");
    // `failed`: systemd killed it at TimeoutStopSec (kube-apiserver's shutdown can take longer).
    let during = r["unitStateDuring"].as_str().unwrap_or_default();
    assert!(["inactive", "failed"].contains(&during), "{all}");
    assert_eq!(r["unitStateAfter"], "active", "{all}");
    assert!(r["healthyAfterMs"].is_u64(), "{all}");
    assert!(r["api"]["requests"].as_u64().unwrap() > 10, "{all}");
    assert!(r["etcdWrites"]["requests"].as_u64().unwrap() > 10, "{all}");
    let host = r["target"]["host"].as_str().unwrap();
    assert_eq!(lab.unit_state(host, unit), "active", "{all}");
    let (code, report) = lab.status(config);
    assert_eq!(code, 0, "status after the drill: {report:#}");
    println!("{}", drill_figures(r));
}

#[test]
fn drills_take_each_piece_down_measure_bring_it_back_and_are_refused_or_undone_when_they_must() {
    let lab = lab_up_kubernetes("kdrill", "10.213.231.0/24", "3");
    let vip = "10.213.231.100";
    let config = lab.config.to_str().unwrap().to_string();
    let (code, _, all) = lab.up(&["--topology", "stacked"]);
    assert_eq!(code, 0, "up: {all}");
    lab.wait_healthy(&config);

    // The VIP holder: keepalived stopped there, the VIP on another host meanwhile.
    let (code, r, all) = drill(&lab, &["vip-holder"]);
    passed(&lab, &config, code, &r, &all, "keepalived");
    let before = r["before"]["vipHolder"].as_str().unwrap();
    assert_eq!(r["target"]["host"], before, "{all}");
    let during = r["during"]["vipHolder"]
        .as_str()
        .unwrap_or_else(|| panic!("{all}"));
    assert_ne!(during, before, "{all}");
    assert!(r["recoveredAfterMs"].is_u64(), "{all}");
    assert_eq!(lab.vip_holders(&NODES, vip).len(), 1);

    // The etcd leader: etcd stopped there, another member elected meanwhile.
    let (code, r, all) = drill(&lab, &["etcd-leader"]);
    passed(&lab, &config, code, &r, &all, "etcd");
    let before = r["before"]["etcdLeader"].as_str().unwrap();
    assert_eq!(r["target"]["host"], before, "{all}");
    let during = r["during"]["etcdLeader"]
        .as_str()
        .unwrap_or_else(|| panic!("{all}"));
    assert_ne!(during, before, "{all}");

    // One apiserver: requests through the VIP keep being answered by the others.
    let (code, r, all) = drill(&lab, &["apiserver", "cp2"]);
    passed(&lab, &config, code, &r, &all, "kube-apiserver");
    assert_eq!(r["target"]["host"], "cp2", "{all}");
    assert!(r["recoveredAfterMs"].is_u64(), "{all}");

    // A degraded cluster (etcd stopped on cp3 by hand): refused, nothing else changed.
    let holders = lab.vip_holders(&NODES, vip);
    lab.on("cp3", "systemctl stop etcd");
    let (code, r, all) = drill(&lab, &["vip-holder"]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(r, Value::Null, "no report: {all}");
    assert!(all.contains("degraded") && all.contains("cp3"), "{all}");
    assert!(all.contains("nothing was changed"), "{all}");
    assert_eq!(lab.vip_holders(&NODES, vip), holders);
    for node in NODES {
        assert_eq!(lab.unit_state(node, "keepalived"), "active", "{node}");
        assert_eq!(lab.unit_state(node, "kube-apiserver"), "active", "{node}");
    }
    assert_eq!(lab.unit_state("cp3", "etcd"), "inactive");
    lab.on("cp3", "systemctl start etcd");
    lab.wait_healthy(&config);

    // SIGTERM while cp3's apiserver is down: kinit starts it again before it exits (143).
    let drill = lab.drill_stopping(
        &["apiserver", "cp3", "--duration", "120"],
        "cp3",
        "kube-apiserver",
    );
    // The cluster lock is held on every host meanwhile, by the drill.
    let owner = format!("{}/owner", kinit::host_paths::LOCK_DIR);
    for node in NODES {
        let held = lab.on(node, &format!("cat {owner}"));
        assert!(held.contains("drill"), "{node}: {held}");
    }
    let out = drill.terminate();
    assert_eq!(
        lab.unit_state("cp3", "kube-apiserver"),
        "active",
        "{}",
        text(&out)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(r["interrupted"], true, "{}", text(&out));
    for node in NODES {
        let lock = kinit::host_paths::LOCK_DIR;
        assert_eq!(
            lab.on(node, &format!("test -e {lock} && echo held || echo free")),
            "free"
        );
    }
    let during = r["unitStateDuring"].as_str().unwrap_or_default();
    assert!(["inactive", "failed"].contains(&during), "{}", text(&out));
    lab.wait_healthy(&config);
}
