//! Day two on lab nodes (real systemd, sshd, etcd 3.4 from Debian): etcd snapshots saved,
//! checked and restored (also after quorum is lost), a bad snapshot refused before anything
//! stops, one member reset out of three, then every host reset and the cluster built again.
//! Runs as root; the lab is removed when the test ends however it ends.

mod reset;
mod snapshots;
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use support::hang_guard::kinit;
use support::lab::*;

use kinit::components;
use kinit::inventory::Inventory;

const SUBNET: &str = "10.213.217.0/24";
const ADDRS: [&str; 3] = ["10.213.217.11", "10.213.217.12", "10.213.217.13"];
const NODES: [&str; 3] = ["cp1", "cp2", "cp3"];
/// Succeeds on cp2 when its etcd data dir is a mount point (it is made one half way).
const CP2_MOUNTED: &str =
    "awk '$5 == \"/var/lib/etcd\" { f = 1 } END { exit !f }' /proc/self/mountinfo";

/// Where the lab keeps etcd's cluster token (a restore makes a new one).
fn token_file(lab: &Lab) -> PathBuf {
    lab.dir().join("pki/etcd/cluster-token")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn inventory(lab: &Lab) -> Inventory {
    let loaded = kinit::config::load(&lab.config).unwrap();
    Inventory::from_config(&loaded.config, lab.dir(), None).unwrap()
}

/// `count` keys `k/NNNN` = `v1-NNNN`, written over mTLS with kinit's etcd client.
fn write_keys(lab: &Lab, count: usize, value_prefix: &str) {
    let tls = kinit::etcd::ClientTls::from_pki_dir(&lab.dir().join("pki")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ep = format!("https://{}:2379", ADDRS[0]);
    rt.block_on(async {
        for i in 0..count {
            let key = format!("k/{i:04}");
            let value = format!("{value_prefix}-{i:04}");
            kinit::etcd::put(
                &tls,
                &ep,
                key.as_bytes(),
                value.as_bytes(),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        }
    });
}

/// A member's ID in hex (as etcdctl's member commands take it).
fn member_id(lab: &Lab, addr: &str) -> String {
    let out = lab.etcdctl(
        &[format!("https://{addr}:2379")],
        &["endpoint", "status", "-w", "json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    format!(
        "{:x}",
        v[0]["Status"]["header"]["member_id"].as_u64().unwrap()
    )
}

/// Every `k/` key and value as one member serves it.
fn keys_on(lab: &Lab, addr: &str) -> BTreeMap<String, String> {
    let out = lab.etcdctl(
        &[format!("https://{addr}:2379")],
        &["get", "--prefix", "k/"],
    );
    assert!(out.status.success(), "get on {addr}: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    lines
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv.get(1).unwrap_or(&"").to_string()))
        .collect()
}

fn expected_keys(count: usize, value_prefix: &str) -> BTreeMap<String, String> {
    (0..count)
        .map(|i| (format!("k/{i:04}"), format!("{value_prefix}-{i:04}")))
        .collect()
}

/// The cluster ID every member reports (they must agree).
fn cluster_id(lab: &Lab) -> String {
    let out = lab.etcdctl(&endpoints(&ADDRS), &["endpoint", "status", "-w", "json"]);
    assert!(out.status.success(), "endpoint status: {}", text(&out));
    let v: Value = json(&out);
    let ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["header"]["cluster_id"].to_string())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "members disagree: {ids:?}"
    );
    ids[0].clone()
}

fn restore(lab: &Lab, file: &Path) -> (i32, Value, String) {
    restore_as(lab, file, &["-o", "json"], "--yes")
}

fn restore_dry_run(lab: &Lab, file: &Path) -> (i32, Value, String) {
    restore_as(lab, file, &["-o", "json"], "--dry-run")
}

fn restore_dry_run_text(lab: &Lab, file: &Path) -> (i32, String) {
    let (code, _, all) = restore_as(lab, file, &[], "--dry-run");
    (code, all)
}

/// What `kinit GLOBAL etcd snapshot restore FILE FLAG` printed.
fn restore_output(lab: &Lab, file: &Path, global: &[&str], flag: &str) -> Output {
    let mut args = global.to_vec();
    args.extend(["etcd", "snapshot", "restore", file.to_str().unwrap(), flag]);
    lab.kinit(&args)
}

/// `kinit GLOBAL etcd snapshot restore FILE FLAG`: the exit code, stdout's last line as JSON
/// (the report or plan after the run's events; Null when it is not JSON), and everything it
/// printed.
fn restore_as(lab: &Lab, file: &Path, global: &[&str], flag: &str) -> (i32, Value, String) {
    let out = restore_output(lab, file, global, flag);
    let v = json_lines(&out).pop().unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v, text(&out))
}

/// The phases a restore's `-o json` events say started, and those that finished well, in order.
fn restore_phases(all_events: &[Value]) -> (Vec<String>, Vec<String>) {
    let named = |kind: &str, ok: bool| {
        all_events
            .iter()
            .filter(|e| e["event"] == kind && (!ok || e["ok"] == true))
            .map(|e| e["phase"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    (named("phase-started", false), named("phase-finished", true))
}

/// The actions a host's steps in `phase` reported (`step-finished` events, as `up`'s steps
/// give them), as JSON text.
fn step_actions(events: &[Value], phase: &str, host: &str) -> String {
    let actions: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step-finished" && e["phase"] == phase && e["host"] == host)
        .map(|e| &e["outcome"]["actions"])
        .collect();
    serde_json::to_string(&actions).unwrap()
}

/// The phases of a restore, as `kinit up`'s runner reports them (systemd units: none here,
/// the control plane runs as static pods, so `start-units` is skipped).
const RESTORE_PHASES: [&str; 6] = ["check", "stop", "restore", "start", "healthy", "put-back"];

#[test]
fn snapshots_restore_a_dead_cluster_and_reset_takes_everything_off() {
    let lab = lab_up("klife", SUBNET, "3");
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "up: {all}");
    let file = snapshots::save(&lab);
    let before = snapshots::change_after_the_snapshot(&lab);
    snapshots::refused(&lab, &file, &before);
    snapshots::dry_run(&lab, &file, &before);
    let first = snapshots::restore_the_saved_keys(&lab, &file, &before);
    snapshots::restore_without_quorum(&lab, &file, &first);
    reset::one_member(&lab);
    reset::everything(&lab);
}

/// Reset refuses without --yes off a terminal, before contacting any host.
#[test]
fn reset_without_a_terminal_needs_yes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.yaml");
    let init = kinit(&["-c", config.to_str().unwrap(), "init"]);
    assert!(init.status.success(), "{}", text(&init));
    let out = kinit(&["-c", config.to_str().unwrap(), "reset"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    // On a terminal (util-linux `script`) it shows the plan and asks; no answer is a no.
    let line = shlex::try_join([
        env!("CARGO_BIN_EXE_kinit"),
        "-c",
        config.to_str().unwrap(),
        "reset",
    ])
    .unwrap();
    let out = support::hang_guard::output_within(
        std::process::Command::new("script").args(["-qec", &line, "/dev/null"]),
        COMMAND_LIMIT,
    );
    let all = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for want in [
        "cp1:",
        "stop and disable: ",
        "/var/lib/etcd aside",
        "Reset these hosts? [y/N]",
    ] {
        assert!(all.contains(want), "{want}: {all}");
    }
    assert!(all.contains("nothing was changed"), "{all}");
}
