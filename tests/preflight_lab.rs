//! `kinit preflight` over real SSH against three lab nodes: a clean lab passes (warnings
//! allowed), then one injected fault at a time produces exactly its finding. Runs as root (the
//! lab needs it); the lab gets its own name and subnet, and is removed even when a step fails.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;

use support::hang_guard::kinit;

const LAB: &str = "kpf";
const SUBNET: &str = "10.213.202.0/24";
const CONFIG: &str = "/var/lib/kinit/labs/kpf/cluster.yaml";

fn on_node(node: &str, script: &str) -> String {
    let out = kinit(&["lab", "ssh", "--name", LAB, node, "--", script]);
    assert!(
        out.status.success(),
        "{node}: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct DownOnDrop;

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = kinit(&["lab", "down", "--name", LAB]);
    }
}

/// Run preflight; return its exit code and the set of (host, check) that failed.
fn preflight() -> (i32, BTreeSet<(String, String)>, Value) {
    let out = kinit(&["-c", CONFIG, "-o", "json", "preflight"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let failed = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| {
            (
                f["host"].as_str().unwrap().to_string(),
                f["check"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (out.status.code().unwrap(), failed, report)
}

/// The one finding of `check` on `host` in a JSON report.
fn finding<'a>(report: &'a Value, host: &str, check: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check && f["host"] == host)
        .unwrap_or_else(|| panic!("no {check} finding on {host}: {report:#}"))
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(h, c)| (h.to_string(), c.to_string()))
        .collect()
}

#[test]
fn preflight_on_lab_nodes_finds_each_injected_fault() {
    let _ = kinit(&["lab", "down", "--name", LAB]);
    let up = kinit(&["lab", "up", "--name", LAB, "--subnet", SUBNET]);
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let _down = DownOnDrop;

    // A clean lab passes; every host was probed and every check ran on it.
    let (code, failed, report) = preflight();
    assert_eq!((code, &failed), (0, &BTreeSet::new()), "{report:#}");
    for host in ["cp1", "cp2", "cp3"] {
        let checks = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["host"] == host)
            .count();
        assert!(checks >= 20, "{host}: only {checks} findings");
    }

    // Two nodes with the same machine-id: both are named.
    let cp1_id = on_node("cp1", "cat /etc/machine-id");
    on_node(
        "cp2",
        &format!("cp /etc/machine-id /root/machine-id.orig && echo {cp1_id} > /etc/machine-id"),
    );
    let (code, failed, _) = preflight();
    assert_eq!(
        (code, failed),
        (
            1,
            set(&[("cp1", "UniqueMachineID"), ("cp2", "UniqueMachineID")])
        )
    );
    on_node("cp2", "cat /root/machine-id.orig > /etc/machine-id");

    // Something that is not etcd listening on 2379.
    on_node(
        "cp2",
        "nohup perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalPort => 2379, Listen => 1, ReuseAddr => 1) or die; sleep 300' >/dev/null 2>&1 &",
    );
    // It listens before preflight looks (perl starts in the background).
    on_node(
        "cp2",
        "for i in $(seq 100); do ss -Hltn 'sport = :2379' | grep -q . && exit 0; sleep 0.1; done; exit 1",
    );
    let (code, failed, report) = preflight();
    assert_eq!(
        (code, &failed),
        (1, &set(&[("cp2", "Port-2379")])),
        "{report:#}"
    );
    let msg = finding(&report, "cp2", "Port-2379")["message"].clone();
    assert!(msg.as_str().unwrap().contains("perl"), "{msg}");
    on_node("cp2", "pkill -x perl; true");

    // chronyd stopped (the lab runs it without clock control; see src/lab/recipe.rs).
    assert_eq!(on_node("cp1", "systemctl is-active chrony"), "active");
    on_node("cp1", "systemctl stop chrony");
    let (code, failed, report) = preflight();
    assert_eq!(
        (code, &failed),
        (1, &set(&[("cp1", "TimeSync")])),
        "{report:#}"
    );
    let msg = finding(&report, "cp1", "TimeSync")["message"].clone();
    assert_eq!(msg, "chrony is installed but not running");
    let out = kinit(&[
        "-c",
        CONFIG,
        "-o",
        "json",
        "preflight",
        "--ignore-preflight-errors",
        "timesync",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "an ignored failure (any case) only warns"
    );
    on_node("cp1", "systemctl start chrony");

    // ip_forward off: a warning, not a failure, since `kinit up` sets it.
    on_node("cp3", "sysctl -qw net.ipv4.ip_forward=0");
    let (code, failed, report) = preflight();
    assert_eq!((code, &failed), (0, &set(&[])), "{report:#}");
    let status =
        finding(&report, "cp3", "FileContent--proc-sys-net-ipv4-ip_forward")["status"].clone();
    assert_eq!(status, "warn");
    on_node("cp3", "sysctl -qw net.ipv4.ip_forward=1");

    // A stopped node: a finding for it, the others still fully checked (the paths to it are
    // not judged: its Reachable failure comes first).
    let stop = kinit(&["lab", "stop", "--name", LAB, "cp3"]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let (code, failed, report) = preflight();
    assert_eq!(
        (code, &failed),
        (1, &set(&[("cp3", "Reachable")])),
        "{report:#}"
    );
    let cp1_checks = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["host"] == "cp1")
        .count();
    assert!(cp1_checks >= 20);
}
