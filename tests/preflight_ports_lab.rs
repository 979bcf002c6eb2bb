//! Preflight's port checks on lab nodes (real systemd, sshd, Debian's etcd, kinit's own etcd
//! unit after `kinit up`): a stray etcd holding 2379 fails `Port-2379` naming its process, unit
//! and how to remove it; a route that rejects, and the drop it causes the other way, fail
//! `PortReachable-<port>` naming the port and the case; after `kinit up`, kinit's own etcd on
//! those ports passes. One lab for the whole file; it is removed however the test ends.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;

use support::lab::*;

const LAB: &str = "kpfport";
const SUBNET: &str = "10.213.224.0/24";
const CP2: &str = "10.213.224.12";

/// `kinit -o json preflight`: (exit code, failed (host, check) pairs, report).
fn preflight(lab: &Lab) -> (i32, BTreeSet<(String, String)>, Value) {
    let out = lab.kinit(&["-o", "json", "preflight"]);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let failed = findings(&report)
        .filter(|f| f["status"] == "fail")
        .map(|f| (s(&f["host"]), s(&f["check"])))
        .collect();
    (out.status.code().unwrap_or(-1), failed, report)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn findings(report: &Value) -> impl Iterator<Item = &Value> {
    report["findings"].as_array().unwrap().iter()
}

fn finding<'a>(report: &'a Value, host: &str, check: &str) -> &'a Value {
    findings(report)
        .find(|f| f["host"] == host && f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} on {host}: {report:#}"))
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(h, c)| (h.to_string(), c.to_string()))
        .collect()
}

/// Debian's etcd (not the bundle's copy kinit installs), on the node's loopback only: the other
/// nodes' connects to its address are still refused.
const STRAY_ETCD: &str = "/usr/bin/etcd --data-dir /tmp/stray-etcd \
     --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
     --listen-peer-urls http://127.0.0.1:2380";

fn wait_listening(lab: &Lab, node: &str, port: u16) {
    wait_for(
        &format!("{node} to listen on {port}"),
        std::time::Duration::from_secs(30),
        || {
            let out = lab.ssh(node, &format!("ss -Hltn 'sport = :{port}'"));
            if String::from_utf8_lossy(&out.stdout).contains("LISTEN") {
                Ok(())
            } else {
                Err(text(&out))
            }
        },
    );
}

#[test]
fn stray_listeners_and_firewalls_fail_by_name_and_kinits_own_etcd_passes() {
    let lab = lab_up(LAB, SUBNET, "3");

    // A clean lab passes, and every path the cluster will use was checked.
    let (code, failed, report) = preflight(&lab);
    assert_eq!((code, &failed), (0, &BTreeSet::new()), "{report:#}");
    for host in ["cp1", "cp2", "cp3"] {
        for port in [2379, 2380, 6443, 8443] {
            let f = finding(&report, host, &format!("PortReachable-{port}"));
            assert_eq!(f["status"], "pass", "{f:#}");
        }
    }
    assert!(
        findings(&report).all(|f| f["check"] != "PeerConnectivity"),
        "{report:#}"
    );

    // A stray etcd in a transient unit (as `systemd-run` or a packaged unit would run it).
    lab.on(
        "cp2",
        &format!("systemd-run --unit stray-etcd {STRAY_ETCD} >/dev/null 2>&1"),
    );
    wait_listening(&lab, "cp2", 2379);
    let pid = lab.on("cp2", "systemctl show -p MainPID --value stray-etcd");
    let (code, failed, report) = preflight(&lab);
    assert_eq!(
        (code, &failed),
        (1, &set(&[("cp2", "Port-2379"), ("cp2", "Port-2380")])),
        "{report:#}"
    );
    let f = finding(&report, "cp2", "Port-2379");
    let (msg, fix) = (s(&f["message"]), s(&f["fix"]));
    for part in [
        &format!("pid {pid}"),
        "/usr/bin/etcd",
        "unit stray-etcd.service",
        "not by etcd as etcd.service running /usr/local/bin/etcd",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    assert!(fix.contains("systemctl stop stray-etcd.service"), "{fix}");
    lab.on("cp2", "systemctl stop stray-etcd && rm -rf /tmp/stray-etcd");

    // A stray etcd started by hand from a login shell: no unit of its own (it sits in sshd's
    // cgroup, or a session scope), so the fix is `kill PID`, never stopping sshd.
    lab.on("cp3", &format!("nohup {STRAY_ETCD} >/dev/null 2>&1 &"));
    wait_listening(&lab, "cp3", 2379);
    let pid = lab.on("cp3", "pgrep -x etcd");
    let (code, failed, report) = preflight(&lab);
    assert_eq!(
        (code, &failed),
        (1, &set(&[("cp3", "Port-2379"), ("cp3", "Port-2380")])),
        "{report:#}"
    );
    let f = finding(&report, "cp3", "Port-2379");
    let (msg, fix) = (s(&f["message"]), s(&f["fix"]));
    assert!(
        msg.contains(&format!("pid {pid}")) && msg.contains("no unit of its own"),
        "{msg}"
    );
    assert!(
        fix.contains(&format!("kill {pid}")) && !fix.contains("systemctl"),
        "{fix}"
    );
    lab.on("cp3", &format!("kill {pid}; rm -rf /tmp/stray-etcd"));
    wait_for(
        "the stray etcd on cp3 to exit",
        std::time::Duration::from_secs(30),
        || match lab.ssh("cp3", "pgrep -x etcd").status.code() {
            Some(1) => Ok(()),
            other => Err(format!("pgrep: {other:?}")),
        },
    );

    // cp1 rejects everything to cp2 (an `unreachable` route: EHOSTUNREACH, what an ICMP reject
    // gives). cp2's SYNs still reach cp1, but cp1's answers are rejected on the way out, so
    // cp2 sees no answer at all: the drop case.
    lab.on("cp1", &format!("ip route add unreachable {CP2}/32"));
    let (code, failed, report) = preflight(&lab);
    let mut expected = BTreeSet::new();
    for port in ["2379", "2380", "6443", "8443", "10250"] {
        expected.insert(("cp1".to_string(), format!("PortReachable-{port}")));
        expected.insert(("cp2".to_string(), format!("PortReachable-{port}")));
    }
    assert_eq!((code, &failed), (1, &expected), "{report:#}");
    let rejected = s(&finding(&report, "cp1", "PortReachable-2380")["message"]);
    assert!(
        rejected.contains(&format!("cp2 ({CP2}:2380)")) && rejected.contains("a firewall rejects"),
        "{rejected}"
    );
    assert!(
        !rejected.contains("cp3"),
        "cp1 still reaches cp3: {rejected}"
    );
    let dropped = s(&finding(&report, "cp2", "PortReachable-2380")["message"]);
    assert!(
        dropped.contains("cp1 (10.213.224.11:2380)") && dropped.contains("a firewall drops"),
        "{dropped}"
    );
    let fix = s(&finding(&report, "cp2", "PortReachable-2380")["fix"]);
    assert!(fix.contains("allow TCP 2380"), "{fix}");

    // The same with a `prohibit` route: refused on cp1 itself before anything is sent.
    lab.on(
        "cp1",
        &format!("ip route del unreachable {CP2}/32 && ip route add prohibit {CP2}/32"),
    );
    let (code, failed, report) = preflight(&lab);
    assert_eq!((code, &failed), (1, &expected), "{report:#}");
    let prohibited = s(&finding(&report, "cp1", "PortReachable-6443")["message"]);
    assert!(
        prohibited.contains(&format!("cp2 ({CP2}:6443)")) && prohibited.contains("prohibit route"),
        "{prohibited}"
    );
    lab.on("cp1", &format!("ip route del prohibit {CP2}/32"));

    // A real `kinit up`: etcd.service from /usr/local/bin/etcd and haproxy.service hold their
    // ports, and preflight counts them as kinit's own.
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "{all}");
    let (code, failed, report) = preflight(&lab);
    assert_eq!((code, &failed), (0, &BTreeSet::new()), "{report:#}");
    for port in ["2379", "2380"] {
        let msg = s(&finding(&report, "cp1", &format!("Port-{port}"))["message"]);
        assert_eq!(
            msg,
            format!("port {port} is held by etcd as etcd.service running /usr/local/bin/etcd")
        );
    }
    let msg = s(&finding(&report, "cp1", "DirAvailable--var-lib-etcd")["message"]);
    assert!(msg.contains("holds the running etcd member"), "{msg}");
}
