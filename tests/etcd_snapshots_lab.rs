//! Scheduled etcd snapshots (`spec.etcd.snapshots`) end to end on a lab node: real systemd
//! running the rendered timer and service, real etcd (Debian's, through the lab's bundle) and
//! the rendered script saving, checking and rotating snapshots on the node. Runs as root. The
//! lab (`ksnap`, 10.213.216.0/24: its own name and subnet, so it runs beside the other lab
//! tests) is removed when the test ends however it ends.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

mod hang_guard;
use hang_guard::kinit;

const NAME: &str = "ksnap";
const SUBNET: &str = "10.213.216.0/24";
const DIR: &str = "/var/lib/etcd-snapshots";

struct Lab {
    config: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = kinit(&["lab", "down", "--name", NAME]);
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Lab {
    /// One node (cp1: control-plane and etcd) is enough: snapshots are each member's own.
    fn up() -> Lab {
        let _ = kinit(&["lab", "down", "--name", NAME]);
        // Made before the lab: dropped (lab down) on every way out from here.
        let lab = Lab {
            config: PathBuf::from(format!("/var/lib/kinit/labs/{NAME}/cluster.yaml")),
        };
        let out = kinit(&[
            "lab", "up", "--name", NAME, "--subnet", SUBNET, "--nodes", "1",
        ]);
        assert!(out.status.success(), "lab up: {}", text(&out));
        lab
    }

    fn kinit(&self, args: &[&str]) -> Output {
        let config = self.config.to_str().unwrap();
        let mut all = vec!["-c", config];
        all.extend_from_slice(args);
        kinit(&all)
    }

    /// `kinit -o json up`: (exit code, every JSON line, all output).
    fn up_json(&self) -> (i32, Vec<Value>, String) {
        let out = self.kinit(&["-o", "json", "up"]);
        let events = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect();
        (out.status.code().unwrap_or(-1), events, text(&out))
    }

    /// A command on cp1 (as root, over the lab's SSH); its output, or a failed test.
    fn on(&self, script: &str) -> String {
        let out = kinit(&["lab", "ssh", "--name", NAME, "cp1", "--", script]);
        assert!(out.status.success(), "cp1: {script}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The snapshots on cp1 named as the script names them, oldest first.
    fn snapshots(&self) -> Vec<String> {
        let listing = self.on(&format!(
            "test -d {DIR} || exit 0; cd {DIR} && find . -maxdepth 1 -type f \
             -name 'ksnap-cp1-[0-9]*T[0-9]*Z.db' -printf '%f\\n' | sort"
        ));
        listing.lines().map(str::to_string).collect()
    }
}

#[test]
fn the_snapshot_timer_runs_and_each_run_saves_a_checked_0600_snapshot_keeping_two() {
    let lab = Lab::up();
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

    let (code, events, all) = lab.up_json();
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
        lab.on("systemctl is-active kinit-etcd-snapshot.timer"),
        "active"
    );
    assert_eq!(
        lab.on("systemctl is-enabled kinit-etcd-snapshot.timer"),
        "enabled"
    );
    assert_eq!(
        lab.on("systemctl show -P Triggers kinit-etcd-snapshot.timer"),
        "kinit-etcd-snapshot.service"
    );
    let calendar = lab.on("systemctl show -P TimersCalendar kinit-etcd-snapshot.timer");
    assert!(calendar.contains("OnCalendar=*-*-* *:00:00"), "{calendar}");
    let triggered = lab.on("systemctl show -P LastTriggerUSecMonotonic kinit-etcd-snapshot.timer");
    if triggered == "0" {
        // (Unless the hour turned while the test ran and the timer fired on its own.)
        assert!(lab.snapshots().is_empty(), "up took a snapshot");
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
        "ETCDCTL_API=3 etcdctl --endpoints=https://10.213.216.11:2379 \
         --cacert=/etc/kubernetes/pki/etcd/ca.crt \
         --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
         --key=/etc/kubernetes/pki/etcd/healthcheck-client.key put kinit-snapshot-test 1",
    );

    // Three runs of the service, as the timer starts it: each leaves one new snapshot, 0600 in
    // a 0700 directory, that etcdctl on the node reads as an etcd database.
    let mut made = Vec::new();
    for run in 1..=3 {
        let before = lab.snapshots();
        lab.on("systemctl start kinit-etcd-snapshot.service");
        let after = lab.snapshots();
        // `systemctl start` returns when the oneshot run finished: the newest is this run's.
        let newest = after.last().cloned().unwrap_or_default();
        assert!(
            !newest.is_empty() && !before.contains(&newest),
            "run {run}: {before:?} -> {after:?}"
        );
        let path = format!("{DIR}/{newest}");
        assert_eq!(lab.on(&format!("stat -c %a {path}")), "600", "run {run}");
        assert_eq!(lab.on(&format!("stat -c %a {DIR}")), "700");
        let status = lab.on(&format!(
            "ETCDCTL_API=3 etcdctl snapshot status --write-out=json {path}"
        ));
        let status: Value = serde_json::from_str(&status).unwrap();
        assert!(status["totalKey"].as_u64().unwrap() >= 1, "{status}");
        assert!(status["revision"].as_u64().unwrap() >= 2, "{status}");
        assert_eq!(
            lab.on("systemctl show -P Result kinit-etcd-snapshot.service"),
            "success"
        );
        made.push(newest);
    }
    // keep: 2 — the oldest went; the last two runs' snapshots remain.
    assert_eq!(lab.snapshots(), made[1..].to_vec());
    // The journal has what the script said.
    let journal = lab.on("journalctl -u kinit-etcd-snapshot.service --no-pager -o cat");
    assert!(
        journal.contains(&format!("removed {DIR}/{}", made[0])),
        "{journal}"
    );

    // A second `up` changes nothing: no file written, the timer neither started nor restarted.
    let (code, events, all) = lab.up_json();
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
