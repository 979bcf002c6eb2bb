//! Snapshots saved and checked, refused when damaged or when a data dir holds more than
//! etcd's, planned (a dry run), and restored: also after quorum is lost, and after a restore
//! that failed half way.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::lab::*;
use crate::*;

/// 1,000 keys, then a verified snapshot streamed here: its file.
pub fn save(lab: &Lab) -> PathBuf {
    write_keys(lab, 1000, "v1");
    // A dry run finds the member and says where the file would go: the fetch and place phases
    // only say what they would do, and nothing is written.
    let backups = lab.dir().join("backups");
    let files_in = |d: &Path| std::fs::read_dir(d).map(|d| d.count()).unwrap_or(0);
    let before = files_in(&backups);
    let planned = lab.kinit(&["-o", "json", "etcd", "snapshot", "save", "--dry-run"]);
    assert!(
        planned.status.success(),
        "save --dry-run: {}",
        text(&planned)
    );
    let said: Vec<Value> = json_lines(&planned)
        .into_iter()
        .filter(|e| e["event"] == "note")
        .map(|e| e["phase"].clone())
        .collect();
    assert_eq!(said, ["fetch", "place"], "{}", text(&planned));
    let plan = result_event(&planned, "save-plan");
    assert!(
        plan["member"].as_str().is_some_and(|m| m.starts_with("cp")),
        "{plan:#}"
    );
    assert!(
        !Path::new(plan["path"].as_str().unwrap()).exists(),
        "{plan:#}"
    );
    assert_eq!(files_in(&backups), before, "a dry run wrote a file");
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

    file
}

/// Changes after the snapshot (deleted, overwritten and new keys): the cluster's ID.
pub fn change_after_the_snapshot(lab: &Lab) -> String {
    let eps = endpoints(&ADDRS);
    let out = lab.etcdctl(&eps, &["del", "--prefix", "k/00"]);
    assert!(out.status.success(), "{}", text(&out));
    write_keys(lab, 300, "v2");
    let out = lab.etcdctl(&eps, &["put", "k/new", "after"]);
    assert!(out.status.success(), "{}", text(&out));
    cluster_id(lab)
}

/// Restores refused before anything stops: a damaged or missing snapshot, no `--yes`, a data
/// dir holding more than etcd's member.
pub fn refused(lab: &Lab, file: &Path, before: &str) {
    // A damaged snapshot is refused before anything stops.
    let bytes = std::fs::read(file).unwrap();
    let truncated = lab.dir().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let corrupt = lab.dir().join("corrupt.db");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 3;
    flipped[mid] ^= 0xff;
    std::fs::write(&corrupt, &flipped).unwrap();
    for bad in [&truncated, &corrupt] {
        let (code, _, all) = restore(lab, bad);
        assert_eq!(code, 1, "{bad:?}: {all}");
    }
    let (code, _, all) = restore(lab, &lab.dir().join("missing.db"));
    assert_eq!(code, 2, "missing file: {all}");
    assert!(all.contains("no such snapshot file"), "{all}");
    let no_yes = lab.kinit(&["etcd", "snapshot", "restore", file.to_str().unwrap()]);
    assert_eq!(no_yes.status.code(), Some(2), "{}", text(&no_yes));
    assert_eq!(cluster_id(lab), before, "a refused restore changed nothing");
    assert_eq!(
        keys_on(lab, ADDRS[0]).get("k/new").map(String::as_str),
        Some("after")
    );
    // A data dir holding more than etcd's member (issue 26): refused before anything stops,
    // naming what it found; no data dir or manifest moved, the cluster's token unchanged.
    let token_file = lab.dir().join("pki/etcd/cluster-token");
    let token_before = std::fs::read_to_string(&token_file).unwrap();
    lab.on("cp2", "echo mine > /var/lib/etcd/not-etcds.txt");
    // A dry run runs the same checks: refused the same way, with no confirmation asked.
    let (code, _, all) = restore_dry_run(lab, file);
    assert_eq!(code, 1, "dry run with a stray file: {all}");
    assert!(all.contains("not-etcds.txt"), "{all}");
    let (code, _, all) = restore(lab, file);
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
}

/// The dry run: every host's part, and nothing changed.
pub fn dry_run(lab: &Lab, file: &Path, before: &str) {
    let token_file = token_file(lab);
    let token_before = std::fs::read_to_string(&token_file).unwrap();
    // The dry run: every host's part, and nothing changed (same cluster, keys, token; nothing
    // moved aside).
    let (code, plan, all) = restore_dry_run(lab, file);
    assert_eq!(code, 0, "restore --dry-run: {all}");
    assert_eq!(plan["event"], "restore-plan", "{all}");
    // The same phases as the restore below, from the runner `kinit up` uses: the check ran,
    // every other phase said per host what it would do.
    let dry = restore_output(lab, file, &["-o", "json"], "--dry-run");
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
    let (code, text_plan) = restore_dry_run_text(lab, file);
    assert_eq!(code, 0, "{text_plan}");
    assert!(
        text_plan.contains("cp2:") && text_plan.contains("nothing was changed"),
        "{text_plan}"
    );
    assert_eq!(cluster_id(lab), before, "a dry run changed the cluster");
    assert_eq!(
        keys_on(lab, ADDRS[0]).get("k/new").map(String::as_str),
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
}

/// Restore: exactly the saved keys, through every member, in a new cluster (its ID).
pub fn restore_the_saved_keys(lab: &Lab, file: &Path, before: &str) -> String {
    let token_file = token_file(lab);
    let token_before = std::fs::read_to_string(&token_file).unwrap();
    let out = restore_output(lab, file, &["-o", "json"], "--yes");
    let (code, all) = (out.status.code().unwrap_or(-1), text(&out));
    assert_eq!(code, 0, "restore: {all}");
    let restore_events = json_lines(&out);
    let report = restore_events.last().cloned().unwrap_or(Value::Null);
    assert_eq!(report["event"], "restored", "{all}");
    let (started, finished) = restore_phases(&restore_events);
    assert_eq!(started, RESTORE_PHASES, "{all}");
    assert_eq!(finished, RESTORE_PHASES, "{all}");
    // The hosts' steps report as `up`'s do: cp1's apiserver manifest held aside, then back.
    let held =
        r#"{"action":"move","target":{"from":"/etc/kubernetes/manifests/kube-apiserver.yaml""#;
    let stop = step_actions(&restore_events, "stop", "cp1");
    assert!(stop.contains(held), "{stop}\n{all}");
    let back = step_actions(&restore_events, "put-back", "cp1");
    assert!(
        back.contains(r#""to":"/etc/kubernetes/manifests/kube-apiserver.yaml"}"#),
        "{back}"
    );
    let want = expected_keys(1000, "v1");
    for addr in ADDRS {
        assert_eq!(keys_on(lab, addr), want, "keys on {addr}");
    }
    let first = cluster_id(lab);
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

    first
}

/// Quorum lost: two members stopped and their data wiped; the restore still works, also after
/// a first attempt failed half way.
pub fn restore_without_quorum(lab: &Lab, file: &Path, first: &str) {
    let want = expected_keys(1000, "v1");
    for node in ["cp2", "cp3"] {
        lab.on(node, "systemctl stop etcd && rm -rf /var/lib/etcd");
    }
    // cp2's data dir is a mount point from now on: restore and reset move what is in it, never
    // the directory itself.
    lab.on(
        "cp2",
        "mkdir -m 0700 /var/lib/etcd && mount -t tmpfs -o mode=0700 kinit-test /var/lib/etcd",
    );
    // A restore that fails half way (cp3 cannot take the upload) leaves the control-plane
    // manifests held aside; the next restore finishes and puts them back.
    lab.on(
        "cp3",
        "mkdir -p /var/lib/kinit && rm -rf /var/lib/kinit/snapshot && touch /var/lib/kinit/snapshot",
    );
    let (code, _, all) = restore(lab, file);
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
    let (code, _, all) = restore(lab, file);
    assert_eq!(code, 0, "restore without quorum: {all}");
    lab.on(
        "cp2",
        &format!("{CP2_MOUNTED} && test -d /var/lib/etcd/member"),
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
            keys_on(lab, addr),
            want,
            "keys on {addr} after the second restore"
        );
    }
    let second = cluster_id(lab);
    assert_ne!(second, first, "a second restore is a new cluster again");
    // kinit up afterwards renders what is there: the new token is kept in the PKI dir.
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "up after restore: {all}");
    assert_eq!(summary["servicesRestarted"], 0, "{summary:#}");
}
