//! Day two on lab nodes (real systemd, sshd, etcd 3.4 from Debian): etcd snapshots saved,
//! checked and restored (also after quorum is lost), a bad snapshot refused before anything
//! stops, one member reset out of three, then every host reset and the cluster built again.
//! Runs as root; the lab is removed when the test ends however it ends.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
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
    let eps: Vec<String> = ADDRS.iter().map(|a| format!("https://{a}:2379")).collect();
    let out = lab.etcdctl(&eps, &["endpoint", "status", "-w", "json"]);
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

/// `kinit GLOBAL etcd snapshot restore FILE FLAG`: the exit code, stdout's last line as JSON
/// (the report or plan after the run's events; Null when it is not JSON), and everything it
/// What `kinit GLOBAL etcd snapshot restore FILE FLAG` printed.
fn restore_output(lab: &Lab, file: &Path, global: &[&str], flag: &str) -> Output {
    let mut args = global.to_vec();
    args.extend(["etcd", "snapshot", "restore", file.to_str().unwrap(), flag]);
    lab.kinit(&args)
}

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

/// The phases of a restore, as `kinit up`'s runner reports them (systemd units: none here,
/// the control plane runs as static pods, so `start-units` is skipped).
const RESTORE_PHASES: [&str; 6] = ["check", "stop", "restore", "start", "healthy", "put-back"];

#[test]
fn snapshots_restore_a_dead_cluster_and_reset_takes_everything_off() {
    let lab = lab_up("klife", SUBNET, "3");
    let eps: Vec<String> = ADDRS.iter().map(|a| format!("https://{a}:2379")).collect();
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "up: {all}");

    // 1,000 keys, then a verified snapshot streamed here.
    write_keys(&lab, 1000, "v1");
    let saved = lab.kinit(&["-o", "json", "etcd", "snapshot", "save"]);
    assert!(saved.status.success(), "save: {}", text(&saved));
    // Its phases, from the runner `kinit up` uses: the stream comes from the member found.
    let fetched: Vec<Value> = json_lines(&saved)
        .into_iter()
        .filter(|e| e["event"] == "phase-started")
        .map(|e| serde_json::json!([e["phase"], e["hosts"]]))
        .collect();
    let saved = result_event(&saved, "saved");
    assert_eq!(
        fetched,
        [
            serde_json::json!(["member", []]),
            serde_json::json!(["fetch", [saved["member"]]]),
            serde_json::json!(["place", []]),
        ],
        "{saved:#}"
    );
    let file = PathBuf::from(saved["path"].as_str().unwrap());
    assert!(file.starts_with(lab.dir().join("backups")), "{file:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&lab.dir().join("backups")), 0o700);
    assert_eq!(saved["status"]["integrity"], "verified");
    assert!(saved["status"]["totalKeys"].as_u64().unwrap() >= 1000);
    let status = lab.kinit(&[
        "-o",
        "json",
        "etcd",
        "snapshot",
        "status",
        file.to_str().unwrap(),
    ]);
    assert!(status.status.success(), "status: {}", text(&status));
    assert_eq!(
        json(&status),
        saved["status"],
        "status FILE says what save said"
    );

    // Changes after the snapshot: deleted, overwritten and new keys.
    let out = lab.etcdctl(&eps, &["del", "--prefix", "k/00"]);
    assert!(out.status.success(), "{}", text(&out));
    write_keys(&lab, 300, "v2");
    let out = lab.etcdctl(&eps, &["put", "k/new", "after"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = cluster_id(&lab);

    // A damaged snapshot is refused before anything stops.
    let bytes = std::fs::read(&file).unwrap();
    let truncated = lab.dir().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let corrupt = lab.dir().join("corrupt.db");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 3;
    flipped[mid] ^= 0xff;
    std::fs::write(&corrupt, &flipped).unwrap();
    for bad in [&truncated, &corrupt] {
        let (code, _, all) = restore(&lab, bad);
        assert_eq!(code, 1, "{bad:?}: {all}");
    }
    let (code, _, all) = restore(&lab, &lab.dir().join("missing.db"));
    assert_eq!(code, 2, "missing file: {all}");
    assert!(all.contains("no such snapshot file"), "{all}");
    let no_yes = lab.kinit(&["etcd", "snapshot", "restore", file.to_str().unwrap()]);
    assert_eq!(no_yes.status.code(), Some(2), "{}", text(&no_yes));
    assert_eq!(
        cluster_id(&lab),
        before,
        "a refused restore changed nothing"
    );
    assert_eq!(
        keys_on(&lab, ADDRS[0]).get("k/new").map(String::as_str),
        Some("after")
    );
    // A data dir holding more than etcd's member (issue 26): refused before anything stops,
    // naming what it found; no data dir or manifest moved, the cluster's token unchanged.
    let token_file = lab.dir().join("pki/etcd/cluster-token");
    let token_before = std::fs::read_to_string(&token_file).unwrap();
    lab.on("cp2", "echo mine > /var/lib/etcd/not-etcds.txt");
    // A dry run runs the same checks: refused the same way, with no confirmation asked.
    let (code, _, all) = restore_dry_run(&lab, &file);
    assert_eq!(code, 1, "dry run with a stray file: {all}");
    assert!(all.contains("not-etcds.txt"), "{all}");
    let (code, _, all) = restore(&lab, &file);
    assert_eq!(code, 1, "restore with a stray file: {all}");
    assert!(
        all.contains("host cp2") && all.contains("not-etcds.txt"),
        "{all}"
    );
    for node in NODES {
        let left = lab.on(
            node,
            "test -f /etc/kubernetes/manifests/kube-apiserver.yaml && systemctl is-active -q etcd && \
             ls -d /var/lib/etcd.restore-* 2>/dev/null | wc -l",
        );
        assert_eq!(left, "0", "{node}: nothing moved");
    }
    lab.on(
        "cp2",
        "test -f /var/lib/etcd/not-etcds.txt && test -d /var/lib/etcd/member",
    );
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        token_before,
        "a restore that changed no host keeps the cluster's token"
    );
    lab.on("cp2", "rm /var/lib/etcd/not-etcds.txt");

    // The dry run: every host's part, and nothing changed (same cluster, keys, token; nothing
    // moved aside).
    let (code, plan, all) = restore_dry_run(&lab, &file);
    assert_eq!(code, 0, "restore --dry-run: {all}");
    assert_eq!(plan["event"], "restore-plan", "{all}");
    // The same phases as the restore below, from the runner `kinit up` uses: the check ran,
    // every other phase said per host what it would do.
    let dry = restore_output(&lab, &file, &["-o", "json"], "--dry-run");
    let dry_events = json_lines(&dry);
    let (started, finished) = restore_phases(&dry_events);
    assert_eq!(started, RESTORE_PHASES, "{}", text(&dry));
    assert_eq!(finished, RESTORE_PHASES, "{}", text(&dry));
    assert!(
        dry_events.iter().any(|e| e["event"] == "note"
            && e["phase"] == "stop"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("cp2: would ")),
        "{}",
        text(&dry)
    );
    let hosts = plan["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 3, "{plan:#}");
    for h in hosts {
        let m = &h["member"];
        assert!(
            m["movedTo"]
                .as_str()
                .is_some_and(|p| p.starts_with("/var/lib/etcd.restore-")),
            "{plan:#}"
        );
        assert_eq!(m["config"], "/etc/etcd/etcd.conf.yml", "{plan:#}");
        assert!(
            h["manifestsAside"]
                .to_string()
                .contains("/etc/kubernetes/manifests/kube-apiserver.yaml"),
            "{plan:#}"
        );
    }
    let (code, text_plan) = restore_dry_run_text(&lab, &file);
    assert_eq!(code, 0, "{text_plan}");
    assert!(
        text_plan.contains("cp2:") && text_plan.contains("nothing was changed"),
        "{text_plan}"
    );
    assert_eq!(cluster_id(&lab), before, "a dry run changed the cluster");
    assert_eq!(
        keys_on(&lab, ADDRS[0]).get("k/new").map(String::as_str),
        Some("after")
    );
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        token_before,
        "a dry run keeps the cluster's token"
    );
    for node in NODES {
        let left = lab.on(node, "ls -d /var/lib/etcd.restore-* 2>/dev/null | wc -l");
        assert_eq!(left, "0", "{node}: a dry run moved nothing");
    }

    // Restore: exactly the saved keys, through every member, in a new cluster.
    let out = restore_output(&lab, &file, &["-o", "json"], "--yes");
    let (code, all) = (out.status.code().unwrap_or(-1), text(&out));
    assert_eq!(code, 0, "restore: {all}");
    let restore_events = json_lines(&out);
    let report = restore_events.last().cloned().unwrap_or(Value::Null);
    assert_eq!(report["event"], "restored", "{all}");
    let (started, finished) = restore_phases(&restore_events);
    assert_eq!(started, RESTORE_PHASES, "{all}");
    assert_eq!(finished, RESTORE_PHASES, "{all}");
    let want = expected_keys(1000, "v1");
    for addr in ADDRS {
        assert_eq!(keys_on(&lab, addr), want, "keys on {addr}");
    }
    let first = cluster_id(&lab);
    assert_ne!(first, before, "restored members must form a new cluster");
    for node in NODES {
        let aside = lab.on(node, "ls -d /var/lib/etcd.restore-* | wc -l");
        assert_eq!(aside, "1", "{node}: the old data dir is kept");
        let scratch = lab.on(node, "stat -c %a /var/lib/kinit/snapshot");
        assert_eq!(scratch, "700", "{node}: the scratch dir is root's alone");
    }
    assert_ne!(
        std::fs::read_to_string(&token_file).unwrap(),
        token_before,
        "a restore keeps its new token"
    );
    assert_eq!(report["members"].as_array().unwrap().len(), 3, "{report:#}");

    // Quorum lost: two members stopped and their data wiped; the restore still works.
    for node in ["cp2", "cp3"] {
        lab.on(node, "systemctl stop etcd && rm -rf /var/lib/etcd");
    }
    // cp2's data dir is a mount point from now on: restore and reset move what is in it, never
    // the directory itself.
    lab.on(
        "cp2",
        "mkdir -m 0700 /var/lib/etcd && mount -t tmpfs -o mode=0700 kinit-test /var/lib/etcd",
    );
    let cp2_mounted =
        "awk '$5 == \"/var/lib/etcd\" { f = 1 } END { exit !f }' /proc/self/mountinfo";
    // A restore that fails half way (cp3 cannot take the upload) leaves the control-plane
    // manifests held aside; the next restore finishes and puts them back.
    lab.on(
        "cp3",
        "mkdir -p /var/lib/kinit && rm -rf /var/lib/kinit/snapshot && touch /var/lib/kinit/snapshot",
    );
    let (code, _, all) = restore(&lab, &file);
    assert_eq!(code, 1, "restore with cp3 broken: {all}");
    assert!(all.contains("cp3"), "{all}");
    // It says where every host's old data went: cp1's moved aside, cp2 and cp3 had none.
    assert!(all.contains("etcd's old data"), "{all}");
    assert!(
        all.contains("cp1: moved to /var/lib/etcd.restore-"),
        "{all}"
    );
    assert!(all.contains("cp3: not moved"), "{all}");
    lab.on(
        "cp1",
        "test -f /etc/kubernetes/manifests.kinit-restore/kube-apiserver.yaml && \
         test ! -e /etc/kubernetes/manifests/kube-apiserver.yaml",
    );
    lab.on("cp3", "rm -f /var/lib/kinit/snapshot");
    let (code, _, all) = restore(&lab, &file);
    assert_eq!(code, 0, "restore without quorum: {all}");
    lab.on(
        "cp2",
        &format!("{cp2_mounted} && test -d /var/lib/etcd/member"),
    );
    for node in NODES {
        lab.on(
            node,
            "test -f /etc/kubernetes/manifests/kube-apiserver.yaml && \
             test ! -e /etc/kubernetes/manifests.kinit-restore",
        );
    }
    for addr in ADDRS {
        assert_eq!(
            keys_on(&lab, addr),
            want,
            "keys on {addr} after the second restore"
        );
    }
    let second = cluster_id(&lab);
    assert_ne!(second, first, "a second restore is a new cluster again");
    // kinit up afterwards renders what is there: the new token is kept in the PKI dir.
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "up after restore: {all}");
    assert_eq!(summary["servicesRestarted"], 0, "{summary:#}");

    // One member of three reset, the leader at that: leadership moves first, a client keeps
    // writing through cp1 and cp2 all along, and the other two keep the data.
    // A stray file in the data dir of the member to go: the reset refuses, naming it, before
    // the member is removed; nothing changes.
    lab.on("cp3", "echo mine > /var/lib/etcd/stray.txt");
    let out = lab.kinit(&["reset", "--hosts", "cp3", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reset cp3 with a stray file: {}",
        text(&out)
    );
    let all = text(&out);
    assert!(all.contains("cp3") && all.contains("stray.txt"), "{all}");
    let list = lab.etcdctl(&eps, &["member", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().count(),
        3,
        "no member removed: {}",
        text(&list)
    );
    lab.on(
        "cp3",
        "test -f /var/lib/etcd/stray.txt && test -d /var/lib/etcd/member && systemctl is-active -q etcd && \
         test -f /etc/etcd/etcd.conf.yml && rm /var/lib/etcd/stray.txt",
    );
    let cp3_id = member_id(&lab, ADDRS[2]);
    let moved = lab.etcdctl(&eps, &["move-leader", &cp3_id]);
    assert!(moved.status.success(), "move-leader: {}", text(&moved));
    let writer = Writer::start(&lab, &ADDRS[..2]);
    let out = lab.kinit(&["-o", "json", "reset", "--hosts", "cp3", "--yes"]);
    let WriterReport {
        acked,
        failed: lost,
        ..
    } = writer.stop();
    assert!(out.status.success(), "reset cp3: {}", text(&out));
    assert_eq!(
        lost, 0,
        "writes lost while cp3 was reset ({acked} acknowledged)"
    );
    assert!(acked > 0);
    let written = lab.etcdctl(&eps[..2], &["get", "--prefix", "w/", "--keys-only"]);
    let written = String::from_utf8_lossy(&written.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(written, acked, "every acknowledged write is there");
    let r = result_event(&out, "reset");
    assert_eq!(r["membership"]["kind"], "remove", "{r:#}");
    let two = &eps[..2];
    let list = lab.etcdctl(two, &["member", "list"]);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(!list.contains("cp3"), "{list}");
    let health = lab.etcdctl(two, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health));
    assert_eq!(keys_on(&lab, ADDRS[1]), want);

    // Everything off every host: nothing kinit started runs, none of its files stay, nothing
    // listens on etcd's or the frontend's ports, preflight passes, up builds it again.
    // A host that cannot be reached is reported and the others are still reset (exit 1); once
    // it is back, a second reset finishes the job.
    // A file kinit did not put in its scratch dir stays, and the report says so.
    lab.on(
        "cp1",
        "mkdir -p /var/lib/kinit/snapshot && echo mine > /var/lib/kinit/snapshot/mine.db",
    );
    let stopped = kinit(&["lab", "stop", "--name", lab.name, "cp3"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let out = lab.kinit(&["-o", "json", "reset", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reset with cp3 down: {}",
        text(&out)
    );
    let r = result_event(&out, "reset");
    let hosts = r["hosts"].as_array().unwrap();
    let by_name = |n: &str| hosts.iter().find(|h| h["host"] == n).unwrap().clone();
    assert!(by_name("cp3")["error"].is_string(), "{r:#}");
    for n in ["cp1", "cp2"] {
        assert!(by_name(n)["error"].is_null(), "{r:#}");
    }
    let kept = serde_json::json!({
        "action": "kept",
        "target": {"path": "/var/lib/kinit/snapshot", "found": ["mine.db"]}
    });
    assert!(
        by_name("cp1")["actions"]
            .as_array()
            .unwrap()
            .contains(&kept),
        "{r:#}"
    );
    lab.on(
        "cp1",
        "test -f /var/lib/kinit/snapshot/mine.db && rm /var/lib/kinit/snapshot/mine.db",
    );
    let started = kinit(&["lab", "start", "--name", lab.name, "cp3"]);
    assert!(started.status.success(), "{}", text(&started));
    let out = lab.kinit(&["-o", "json", "reset", "--yes"]);
    assert!(out.status.success(), "reset: {}", text(&out));
    let inv = inventory(&lab);
    for host in &inv.hosts {
        let mut paths: Vec<&str> = Vec::new();
        let mut units: Vec<&str> = Vec::new();
        for c in components::on_host(&inv, host) {
            paths.extend(c.files.iter().map(|f| f.path));
            paths.extend(c.binaries.iter().map(|b| b.path));
            units.extend(c.units.iter().map(|u| u.name));
        }
        let left = lab.on(
            &host.name,
            &format!(
                "for p in {} /etc/kubernetes /var/lib/kinit/pending; do [ -e \"$p\" ] && echo \"$p\"; done; true",
                paths.join(" ")
            ),
        );
        assert_eq!(left, "", "{}: files left", host.name);
        for u in units.iter().filter(|u| !u.starts_with("systemd-")) {
            let state = lab.ssh(&host.name, &format!("systemctl is-active {u}"));
            let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
            assert_ne!(state, "active", "{}: {u} still active", host.name);
        }
        let listening = lab.on(
            &host.name,
            &format!(
                "ss -Hltn 'sport = :2379 or sport = :2380 or sport = :{}'",
                inv.endpoint.port
            ),
        );
        assert_eq!(listening, "", "{}: ports still held", host.name);
    }
    // cp2's data dir, a mount point, stays mounted and empty; its member went aside.
    lab.on(
        "cp2",
        &format!(
            "{cp2_mounted} && test -z \"$(ls -A /var/lib/etcd)\" && test -d /var/lib/etcd.reset-*/member"
        ),
    );
    let pre = lab.kinit(&["preflight"]);
    assert_eq!(
        pre.status.code(),
        Some(0),
        "preflight after reset: {}",
        text(&pre)
    );
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "up after reset: {all}");
    let health = lab.etcdctl(&eps, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health));
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
