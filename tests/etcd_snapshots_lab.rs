//! Scheduled etcd snapshots (`spec.etcd.snapshots`) end to end on a lab node: real systemd
//! running the rendered timer and service, real etcd (Debian's, through the lab's bundle) and
//! the rendered script saving, checking and rotating snapshots on the node. Runs as root. The
//! lab (`ksnap`, 10.213.216.0/24: its own name and subnet, so it runs beside the other lab
//! tests) is removed when the test ends however it ends.

mod support;

use serde_json::Value;

use support::lab::*;

const NAME: &str = "ksnap";
const SUBNET: &str = "10.213.216.0/24";
const DIR: &str = "/var/lib/etcd-snapshots";

/// `kinit -o json up`: (exit code, every JSON line, all output).
fn up_json(lab: &Lab) -> (i32, Vec<Value>, String) {
    let out = lab.kinit(&["-o", "json", "up"]);
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    (out.status.code().unwrap_or(-1), events, text(&out))
}

/// The snapshots on cp1 named as the script names them, oldest first.
fn snapshots(lab: &Lab) -> Vec<String> {
    let listing = lab.on(
        "cp1",
        &format!(
            "test -d {DIR} || exit 0; cd {DIR} && find . -maxdepth 1 -type f \
             -name 'ksnap-cp1-[0-9]*T[0-9]*Z.db' -printf '%f\\n' | sort"
        ),
    );
    listing.lines().map(str::to_string).collect()
}

#[test]
fn the_snapshot_timer_runs_and_each_run_saves_a_checked_0600_snapshot_keeping_two() {
    // One node (cp1: control-plane and etcd) is enough: snapshots are each member's own.
    let lab = lab_up(NAME, SUBNET, "1");
    let written = std::fs::read_to_string(&lab.config).unwrap();
    assert!(written.contains("\n    mode: systemd\n"), "{written}");
    std::fs::write(
        &lab.config,
        written.replace(
            "\n    mode: systemd\n",
            &format!(
                "\n    mode: systemd\n    snapshots: {{schedule: hourly, keep: 2, dir: {DIR}}}\n"
            ),
        ),
    )
    .unwrap();

    let (code, events, all) = up_json(&lab);
    assert_eq!(code, 0, "{all}");
    // The phase ran on cp1 after etcd and started the timer (and only the timer).
    let phase_started = |name: &str| {
        events
            .iter()
            .position(|e| e["event"] == "phase-started" && e["phase"] == name)
            .unwrap_or_else(|| panic!("no phase {name}: {all}"))
    };
    assert!(
        phase_started("etcd") < phase_started("etcd-snapshots"),
        "{all}"
    );
    let units: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "step-finished"
                && e["phase"] == "etcd-snapshots"
                && e["outcome"]["unit"].is_string()
        })
        .map(|e| &e["outcome"]["unit"])
        .collect();
    assert_eq!(units, ["kinit-etcd-snapshot.timer"], "{all}");

    // The timer waits for its next time, enabled for the next boot; the service is the one it
    // starts, and `up` itself started no snapshot.
    assert_eq!(
        lab.on("cp1", "systemctl is-active kinit-etcd-snapshot.timer"),
        "active"
    );
    assert_eq!(
        lab.on("cp1", "systemctl is-enabled kinit-etcd-snapshot.timer"),
        "enabled"
    );
    assert_eq!(
        lab.on(
            "cp1",
            "systemctl show -P Triggers kinit-etcd-snapshot.timer"
        ),
        "kinit-etcd-snapshot.service"
    );
    let calendar = lab.on(
        "cp1",
        "systemctl show -P TimersCalendar kinit-etcd-snapshot.timer",
    );
    assert!(calendar.contains("OnCalendar=*-*-* *:00:00"), "{calendar}");
    let triggered = lab.on(
        "cp1",
        "systemctl show -P LastTriggerUSecMonotonic kinit-etcd-snapshot.timer",
    );
    if triggered == "0" {
        // (Unless the hour turned while the test ran and the timer fired on its own.)
        assert!(snapshots(&lab).is_empty(), "up took a snapshot");
    }
    // `kinit status` expects the timer active on the etcd host and finds it so.
    let out = lab.kinit(&["-o", "json", "status"]);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let cp1 = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "cp1")
        .unwrap();
    assert!(
        cp1["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "kinit-etcd-snapshot.timer" && s["state"] == "active"),
        "{report:#}"
    );

    // A key, so that the snapshots hold a revision of the cluster's data.
    lab.on(
        "cp1",
        "ETCDCTL_API=3 etcdctl --endpoints=https://10.213.216.11:2379 \
         --cacert=/etc/kubernetes/pki/etcd/ca.crt \
         --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
         --key=/etc/kubernetes/pki/etcd/healthcheck-client.key put kinit-snapshot-test 1",
    );

    // Three runs of the service, as the timer starts it: each leaves one new snapshot, 0600 in
    // a 0700 directory, that etcdctl on the node reads as an etcd database.
    let mut made = Vec::new();
    for run in 1..=3 {
        let before = snapshots(&lab);
        lab.on("cp1", "systemctl start kinit-etcd-snapshot.service");
        let after = snapshots(&lab);
        // `systemctl start` returns when the oneshot run finished: the newest is this run's.
        let newest = after.last().cloned().unwrap_or_default();
        assert!(
            !newest.is_empty() && !before.contains(&newest),
            "run {run}: {before:?} -> {after:?}"
        );
        let path = format!("{DIR}/{newest}");
        assert_eq!(
            lab.on("cp1", &format!("stat -c %a {path}")),
            "600",
            "run {run}"
        );
        assert_eq!(lab.on("cp1", &format!("stat -c %a {DIR}")), "700");
        let status = lab.on(
            "cp1",
            &format!("ETCDCTL_API=3 etcdctl snapshot status --write-out=json {path}"),
        );
        let status: Value = serde_json::from_str(&status).unwrap();
        assert!(status["totalKey"].as_u64().unwrap() >= 1, "{status}");
        assert!(status["revision"].as_u64().unwrap() >= 2, "{status}");
        assert_eq!(
            lab.on(
                "cp1",
                "systemctl show -P Result kinit-etcd-snapshot.service"
            ),
            "success"
        );
        made.push(newest);
    }
    // keep: 2 — the oldest went; the last two runs' snapshots remain.
    assert_eq!(snapshots(&lab), made[1..].to_vec());
    // The journal has what the script said.
    let journal = lab.on(
        "cp1",
        "journalctl -u kinit-etcd-snapshot.service --no-pager -o cat",
    );
    assert!(
        journal.contains(&format!("removed {DIR}/{}", made[0])),
        "{journal}"
    );

    // A second `up` changes nothing: no file written, the timer neither started nor restarted.
    let (code, events, all) = up_json(&lab);
    assert_eq!(code, 0, "{all}");
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary", "{all}");
    assert_eq!(
        (
            summary["filesWritten"].as_u64(),
            summary["servicesStarted"].as_u64(),
            summary["servicesRestarted"].as_u64(),
        ),
        (Some(0), Some(0), Some(0)),
        "{all}"
    );
}
