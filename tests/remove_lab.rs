//! `kinit remove` on lab nodes (real systemd, sshd, etcd from Debian, haproxy, keepalived with
//! its VIP; a TLS stand-in for the apiserver behind haproxy). Four control-plane +
//! etcd hosts (the lab's cp1..cp3 and w1 given both roles), then, while a writer on this machine
//! puts a key every 100 ms and a connect loop goes through VIP:8443: the etcd leader (moved there
//! with `etcdctl move-leader`) is removed; a removal that would cost the majority is refused;
//! a powered-off host is removed with `--unreachable`. Runs as root; the lab is removed when the
//! test ends however it ends.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;

use support::hang_guard::kinit;
use support::lab::*;

const NAME: &str = "kremove";
const SUBNET: &str = "10.213.223.0/24";
const VIP: &str = "10.213.223.100";
const NODES: [&str; 4] = ["cp1", "cp2", "cp3", "w1"];
const ADDRS: [&str; 4] = [
    "10.213.223.11",
    "10.213.223.12",
    "10.213.223.13",
    "10.213.223.14",
];

fn addr(node: &str) -> &'static str {
    ADDRS[NODES.iter().position(|n| *n == node).unwrap()]
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// `(id hex, name)` of every member, as one member lists them.
fn members(lab: &Lab, via: &[&str]) -> Vec<(String, String)> {
    let eps = endpoints(via);
    let out = lab.etcdctl(&eps, &["member", "list", "-w", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    json(&out)["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                format!("{:x}", m["ID"].as_u64().unwrap()),
                m["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn member_names(lab: &Lab, via: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = members(lab, via).into_iter().map(|(_, n)| n).collect();
    names.sort();
    names
}

/// The name of the member that leads, as `via` sees it.
fn leader(lab: &Lab, via: &[&str]) -> String {
    let out = lab.etcdctl(&endpoints(via), &["endpoint", "status", "-w", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = json(&out);
    let leader = status[0]["Status"]["leader"].as_u64().unwrap();
    members(lab, via)
        .into_iter()
        .find(|(id, _)| *id == format!("{leader:x}"))
        .map(|(_, n)| n)
        .unwrap()
}

/// haproxy's master and keepalived's main process: a reload keeps both.
fn pids(lab: &Lab, node: &str) -> String {
    lab.on(
        node,
        "systemctl show -p MainPID --value haproxy; systemctl show -p MainPID --value keepalived",
    )
}

fn backends(lab: &Lab, node: &str) -> Vec<String> {
    lab.on(
        node,
        "awk '$1 == \"server\" {print $2}' /etc/haproxy/haproxy.cfg",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn remove_moves_leadership_guards_quorum_and_takes_unreachable_hosts_out() {
    let lab = lab_up(NAME, SUBNET, "4");
    let cfg = lab.config.to_str().unwrap().to_string();
    // w1 becomes the fourth control-plane + etcd host.
    lab.edit_host("w1", |l| {
        Some(l.replace("roles: [worker]", "roles: [control-plane, etcd]"))
    });
    lab.up_serving(&NODES, VIP);
    assert_eq!(member_names(&lab, &ADDRS), ["cp1", "cp2", "cp3", "w1"]);
    let holder = lab.vip_holders(&NODES, VIP);
    assert_eq!(holder.len(), 1, "{holder:?}");

    // Not a host of the config; no terminal and no --yes; a dry run: nothing changes.
    let out = lab.kinit(&["remove", "cp9", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cp9 is not a host"),
        "{}",
        text(&out)
    );
    let out = lab.kinit(&["remove", "w1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--yes") && stderr.contains("--dry-run"),
        "{stderr}"
    );
    // On a terminal it asks, showing the plan; no answer is a no.
    let out = lab.in_a_terminal(&["remove", "w1"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        shown.contains("kinit remove will take out w1")
            && shown.contains("etcd: remove member w1")
            && shown.contains("Remove these hosts? [y/N]")
            && shown.contains("not confirmed"),
        "{shown}"
    );
    let cfg_before = lab.on("cp1", "sha256sum /etc/haproxy/haproxy.cfg");
    let out = lab.kinit(&["remove", "w1", "--dry-run"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        shown.contains(
            "etcd quorum: 4 - 1 = 3 member(s) stay, 3 of them healthy; a majority of 3 is 2"
        ) && shown.contains("cp1: would write /etc/haproxy/haproxy.cfg")
            && shown.contains("reload haproxy")
            && shown.contains("dry run: nothing was changed"),
        "{shown}"
    );
    let out = lab.kinit(&["-o", "json", "remove", "w1", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let dry = result_event(&out, "removed");
    // The removal's phases, from the runner `kinit up` uses: those that only ask run in a dry
    // run too; one that does not apply says why.
    let events = json_lines(&out);
    let named = |kind: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .map(|e| e["phase"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // w1 runs an apiserver (drained from haproxy first: said, not done) and no kubelet (no
    // Node to delete); it is reachable (nothing gone for good).
    assert_eq!(
        named("phase-started"),
        [
            "drain-nodes",
            "drain-apiservers",
            "etcd-members",
            "reset",
            "update"
        ],
        "{}",
        text(&out)
    );
    assert_eq!(
        named("phase-skipped"),
        ["delete-nodes", "gone-nodes"],
        "{}",
        text(&out)
    );
    // The jobs the removal runs on hosts show their steps under its phases: w1's reset, and
    // the update of each control plane that stays.
    let steps_on = |phase: &str| -> std::collections::BTreeSet<String> {
        events
            .iter()
            .filter(|e| e["event"] == "step-finished" && e["phase"] == phase)
            .map(|e| e["host"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        steps_on("reset").into_iter().collect::<Vec<_>>(),
        ["w1"],
        "{}",
        text(&out)
    );
    assert_eq!(
        steps_on("update").into_iter().collect::<Vec<_>>(),
        ["cp1", "cp2", "cp3"],
        "{}",
        text(&out)
    );
    assert_eq!(dry["dryRun"], true, "{dry:#}");
    assert_eq!(dry["plan"]["etcd"]["members"][0]["name"], "w1", "{dry:#}");
    assert_eq!(dry["plan"]["etcd"]["quorum"]["remaining"], 3, "{dry:#}");
    let would: Vec<&Value> = dry["updates"].as_array().unwrap().iter().collect();
    assert_eq!(would.len(), 3, "{dry:#}");
    for u in &would {
        assert!(
            u["written"]
                .to_string()
                .contains("/etc/haproxy/haproxy.cfg"),
            "{dry:#}"
        );
        assert!(u["units"].to_string().contains("reload haproxy"), "{dry:#}");
    }
    assert_eq!(member_names(&lab, &ADDRS), ["cp1", "cp2", "cp3", "w1"]);
    assert_eq!(
        lab.on("cp1", "sha256sum /etc/haproxy/haproxy.cfg"),
        cfg_before
    );
    assert_eq!(
        lab.on("w1", "systemctl is-active etcd haproxy keepalived"),
        "active\nactive\nactive"
    );

    // (a) The leader is removed while a writer and a connect loop run.
    let pids_before: Vec<String> = ["cp1", "cp2", "cp3"]
        .iter()
        .map(|n| pids(&lab, n))
        .collect();
    let w1_id = members(&lab, &ADDRS)
        .into_iter()
        .find(|(_, n)| n == "w1")
        .unwrap()
        .0;
    let out = lab.etcdctl(&endpoints(&ADDRS), &["move-leader", &w1_id]);
    assert!(
        out.status.success() || leader(&lab, &ADDRS) == "w1",
        "{}",
        text(&out)
    );
    wait_for("w1 to lead", Duration::from_secs(10), || {
        match leader(&lab, &ADDRS[..1]).as_str() {
            "w1" => Ok(()),
            other => Err(other.to_string()),
        }
    });
    let writer = Writer::start(&lab, &[addr("cp1"), addr("cp2"), addr("cp3"), addr("w1")]);
    let connects = ConnectLoop::start(&lab, VIP, 8443);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let out = lab.kinit(&["-o", "json", "remove", "w1", "--yes"]);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let WriterReport {
        acked,
        failed,
        longest_gap: gap,
    } = writer.stop();
    let (tries, connect_failures, connect_error) = connects.stop();
    assert!(out.status.success(), "remove w1: {}", text(&out));
    let report = result_event(&out, "removed");
    eprintln!(
        "remove w1 (the leader): {took:.1?}; writer: {acked} puts acknowledged, {failed} failed, \
         longest gap {gap:.0?}; connect loop: {tries} handshakes, {connect_failures} failed"
    );
    assert_eq!(failed, 0, "puts not accepted during the removal");
    assert_eq!(
        connect_failures, 0,
        "handshakes through the VIP failed: {connect_error}"
    );
    assert_eq!(report["plan"]["etcd"]["handOver"], "w1", "{report:#}");
    assert_eq!(
        report["removedMembers"],
        serde_json::json!([w1_id]),
        "{report:#}"
    );
    assert_eq!(
        report["deleteFromConfig"],
        serde_json::json!(["w1"]),
        "{report:#}"
    );
    let stay = ["cp1", "cp2", "cp3"];
    assert_eq!(member_names(&lab, &ADDRS[..3]), stay);
    etcd_all_healthy(&lab, &endpoints(&ADDRS[..3])).unwrap();
    assert_ne!(leader(&lab, &ADDRS[..1]), "w1");
    // w1 is reset: no etcd, haproxy or keepalived running, none of kinit's files left.
    let units = lab.ssh("w1", "systemctl is-active etcd haproxy keepalived");
    assert_eq!(
        String::from_utf8_lossy(&units.stdout).trim(),
        "inactive\ninactive\ninactive",
        "{}",
        text(&units)
    );
    let files = lab.ssh(
        "w1",
        "ls /etc/etcd/etcd.conf.yml /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf \
         /etc/kubernetes/pki 2>/dev/null",
    );
    assert_eq!(
        String::from_utf8_lossy(&files.stdout).trim(),
        "",
        "{}",
        text(&files)
    );
    // The others list only the backends that stay, reloaded (same processes), VIP unmoved.
    for (n, before) in stay.iter().zip(&pids_before) {
        assert_eq!(backends(&lab, n), stay, "{n}");
        assert_eq!(
            &pids(&lab, n),
            before,
            "{n}: haproxy or keepalived was restarted"
        );
        let u = report["updates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["host"] == *n)
            .unwrap_or_else(|| panic!("no update of {n}: {report:#}"));
        assert!(u["units"].to_string().contains("reload haproxy"), "{u}");
        assert!(u["units"].to_string().contains("reload keepalived"), "{u}");
    }
    assert_eq!(lab.vip_holders(&NODES, VIP), holder);
    // The operator deletes w1 from cluster.yaml, as told: the cluster is healthy.
    lab.edit_host("w1", |_| None);
    lab.wait_healthy(&cfg);

    // (b) A healthy member of three while another is down: refused with the arithmetic.
    lab.on("cp3", "systemctl stop etcd");
    let out = lab.kinit(&["remove", "cp2", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "3 - 1 = 2 member(s) stay, 1 of them healthy (cp3 is not); a majority of 2 is 2"
        ) && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(member_names(&lab, &ADDRS[..2]), stay);
    assert_eq!(
        lab.on("cp2", "systemctl is-active etcd haproxy"),
        "active\nactive"
    );
    assert_eq!(backends(&lab, "cp1"), stay);
    // --force would go (shown on a dry run: nothing changes).
    let out = lab.kinit(&["-o", "json", "remove", "cp2", "--force", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let forced = result_event(&out, "removed");
    assert!(
        forced["plan"]["etcd"]["forced"][0]
            .as_str()
            .unwrap_or("")
            .contains("a majority of 2 is 2"),
        "{forced:#}"
    );
    assert_eq!(member_names(&lab, &ADDRS[..2]), stay);
    lab.on("cp3", "systemctl start etcd");
    wait_for("cp3's etcd back", Duration::from_secs(30), || {
        etcd_all_healthy(&lab, &endpoints(&ADDRS[..3]))
    });
    lab.wait_healthy(&cfg);

    // (c) cp3 is gone for good (powered off): without --unreachable an error naming it; with
    // it, its member is removed by ID and the others no longer list it.
    let pids_before: Vec<String> = ["cp1", "cp2"].iter().map(|n| pids(&lab, n)).collect();
    let writer = Writer::start(&lab, &[addr("cp1"), addr("cp2"), addr("cp3")]);
    let stop = kinit(&["lab", "stop", "--name", NAME, "cp3"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let out = lab.kinit(&["remove", "cp3", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--unreachable"),
        "{}",
        text(&out)
    );
    let cp3_id = members(&lab, &ADDRS[..2])
        .into_iter()
        .find(|(_, n)| n == "cp3")
        .unwrap()
        .0;
    let out = lab.kinit(&["-o", "json", "remove", "cp3", "--unreachable", "--yes"]);
    let WriterReport {
        acked,
        failed,
        longest_gap: gap,
    } = writer.stop();
    assert!(
        out.status.success(),
        "remove cp3 --unreachable: {}",
        text(&out)
    );
    eprintln!(
        "cp3 powered off, then removed --unreachable; writer: {acked} puts acknowledged, \
         {failed} failed, longest gap {gap:.0?}"
    );
    assert_eq!(failed, 0, "puts not accepted");
    let report = result_event(&out, "removed");
    assert_eq!(
        report["removedMembers"],
        serde_json::json!([cp3_id]),
        "{report:#}"
    );
    assert_eq!(report["reset"], Value::Null, "{report:#}");
    let two = ["cp1", "cp2"];
    assert_eq!(member_names(&lab, &ADDRS[..2]), two);
    etcd_all_healthy(&lab, &endpoints(&ADDRS[..2])).unwrap();
    for (n, before) in two.iter().zip(&pids_before) {
        assert_eq!(backends(&lab, n), two, "{n}");
        assert_eq!(
            &pids(&lab, n),
            before,
            "{n}: haproxy or keepalived was restarted"
        );
    }
    lab.vip_verifies(VIP, 8443).unwrap();
    lab.edit_host("cp3", |_| None);
    lab.wait_healthy(&cfg);
}
