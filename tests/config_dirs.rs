//! Issue 26, points 1 and 2: etcd's data dir (which reset moves aside or deletes, and a restore
//! replaces) may not be a system directory, one above one, one of kinit's own or one the
//! snapshots are kept in; the snapshot directory may not be inside kinit's own directories.
//! Each is refused by validation, on the field, at the value's line and column.

use std::path::Path;

use kinit::config::{self, ConfigReport};

const BASE: &str = r#"apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata:
  name: demo
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint:
    address: 192.168.9.100
  etcd:
    dataDir: DATA
    snapshots:
      dir: SNAPS
  hosts:
    - {name: cp1, address: 192.168.9.11, roles: [control-plane, etcd]}
    - {name: cp2, address: 192.168.9.12, roles: [control-plane, etcd]}
    - {name: cp3, address: 192.168.9.13, roles: [control-plane, etcd]}
"#;

fn check(data: &str, snaps: &str) -> (String, ConfigReport) {
    let text = BASE.replace("DATA", data).replace("SNAPS", snaps);
    let (_, report) = config::check(Path::new("cluster.yaml"), text.clone());
    (text, report)
}

/// Line and column (1-based) of the first `needle` after `key` in `text`.
fn place(text: &str, key: &str) -> (usize, usize) {
    let offset = text.find(key).unwrap() + key.len();
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The one error on `path`, located at the value of `key`.
fn refused(report: &ConfigReport, text: &str, path: &str, key: &str, what: &str) -> String {
    let on_field: Vec<_> = report.errors().filter(|p| p.path == path).collect();
    assert_eq!(
        on_field.len(),
        1,
        "{what}: expected one error on {path}, got {:#?}",
        report.problems
    );
    let at = report.location(on_field[0]).expect("located");
    assert_eq!((at.line, at.column), place(text, key), "{what}");
    on_field[0].message.clone()
}

#[test]
fn ordinary_data_and_snapshot_dirs_are_accepted() {
    for (data, snaps) in [
        ("/var/lib/etcd", "/var/lib/etcd-snapshots"),
        ("/data/etcd", "/data/etcd-snapshots"),
        ("/data/etcd", "/backup/etcd"),
        // Siblings whose names merely start with each other's are not inside one another.
        ("/var/lib/etcd-data", "/var/lib/etcd"),
    ] {
        let (_, report) = check(data, snaps);
        let errors: Vec<_> = report.errors().collect();
        assert!(errors.is_empty(), "{data} / {snaps}: {errors:#?}");
    }
}

#[test]
fn system_and_kinit_dirs_are_refused_as_etcds_data_dir() {
    for (data, says) in [
        ("/", "root directory"),
        ("/var/lib", "system directory"),
        ("/etc", "system directory"),
        ("/usr", "system directory"),
        ("/home", "system directory"),
        ("/boot", "system directory"),
        ("/var", "system directory"),
        ("/var/lib/kinit", "kinit keeps its own files"),
        ("/var/lib/kinit/x", "kinit keeps its own files"),
        ("/var/lib/kinit/snapshot", "kinit keeps its own files"),
        ("/etc/kubernetes", "kinit keeps its own files"),
        ("/etc/kubernetes/x", "kinit keeps its own files"),
        (
            "/etc/kubernetes/manifests.kinit-restore",
            "kinit keeps its own files",
        ),
        ("/etc/etcd", "kinit keeps its own files"),
    ] {
        let (text, report) = check(data, "/srv/etcd-snapshots");
        let message = refused(&report, &text, "spec.etcd.dataDir", "dataDir: ", data);
        assert!(message.contains(says), "{data}: {message}");
        let problem = report
            .errors()
            .find(|p| p.path == "spec.etcd.dataDir")
            .unwrap();
        assert_eq!(problem.code, "config::etcd-data-dir", "{data}");
    }
}

#[test]
fn a_data_dir_inside_or_above_the_snapshot_dir_is_refused() {
    // Inside: reported on the data dir, pointing at the snapshot dir.
    let (text, report) = check("/srv/backup/etcd", "/srv/backup");
    let message = refused(&report, &text, "spec.etcd.dataDir", "dataDir: ", "inside");
    assert!(
        message.contains("inside the snapshot directory"),
        "{message}"
    );
    let problem = report
        .errors()
        .find(|p| p.path == "spec.etcd.dataDir")
        .unwrap();
    assert!(
        problem
            .labels
            .iter()
            .any(|l| format!("{:?}", l.target).contains("spec.etcd.snapshots.dir")),
        "{problem:?}"
    );
    // Above (or the same): reported on the snapshot dir.
    for (data, snaps) in [
        ("/srv/etcd", "/srv/etcd/snapshots"),
        ("/srv/etcd", "/srv/etcd"),
    ] {
        let (text, report) = check(data, snaps);
        let message = refused(&report, &text, "spec.etcd.snapshots.dir", "dir: ", snaps);
        assert!(
            message.contains("inside etcd's data directory"),
            "{message}"
        );
        assert_eq!(report.errors().count(), 1, "{:#?}", report.problems);
    }
}

#[test]
fn snapshots_inside_kinits_own_dirs_are_refused() {
    for snaps in [
        "/var/lib/kinit/snapshots",
        "/var/lib/kinit/snapshot",
        "/var/lib/kinit",
        "/etc/kubernetes/manifests.kinit-restore",
        "/etc/kubernetes/manifests",
        "/etc/kubernetes/backup",
    ] {
        let (text, report) = check("/var/lib/etcd", snaps);
        let message = refused(&report, &text, "spec.etcd.snapshots.dir", "dir: ", snaps);
        assert!(
            message.contains("where kinit keeps its own files"),
            "{snaps}: {message}"
        );
    }
}
