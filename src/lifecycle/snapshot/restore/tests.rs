use std::collections::BTreeMap;
use std::path::Path;

use super::old_data::{OldData, half_way};
use super::scripts::{CHECK, FOREIGN_EXIT, RESTORE, RESTORE_TOOL, foreign_names};
use crate::engine::lifecycle_step::DIR_FUNCTIONS;
use crate::lifecycle::snapshot::SnapshotError;
use std::os::unix::fs::PermissionsExt;

/// A PATH of the tools the scripts use, plus `etcdutl` when `tool` is given: a stand-in
/// that makes `--data-dir`'s `member/wal` (refusing, as etcd 3.4 does, a dir that exists).
fn bin(tool: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for t in [
        "tr", "head", "readlink", "awk", "stat", "mkdir", "mv", "chmod", "rmdir", "rm", "grep",
    ] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(t))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no {t}"));
        std::os::unix::fs::symlink(found, dir.path().join(t)).unwrap();
    }
    if tool {
        let fake = dir.path().join("etcdutl");
        std::fs::write(
            &fake,
            "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --data-dir ] && d=$2; shift; done\n\
             [ -e \"$d\" ] && { echo \"data-dir $d exists\" >&2; exit 1; }\n\
             mkdir -p \"$d/member/wal\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn run(text: &str, bin: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{DIR_FUNCTIONS}{RESTORE_TOOL}{text}"))
        .arg("kinit")
        .args(args)
        .env("PATH", bin)
        .output()
        .unwrap()
}

#[test]
fn the_check_names_what_is_not_etcds_and_finds_the_tool() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("etcd");
    std::fs::create_dir_all(data.join("member/snap")).unwrap();
    let d = data.to_str().unwrap();
    let with_tool = bin(true);
    let out = run(CHECK, with_tool.path(), &[d, "member"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("tool etcdutl") && stdout.contains("mount no"));
    // An absent data dir is fine too.
    let absent = root.path().join("none");
    let out = run(
        CHECK,
        with_tool.path(),
        &[absent.to_str().unwrap(), "member"],
    );
    assert!(out.status.success());
    // Something else in it: refused, named.
    std::fs::write(data.join("backup.tar"), "x").unwrap();
    let out = run(CHECK, with_tool.path(), &[d, "member"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let refused = out.status.code() == Some(FOREIGN_EXIT as i32);
    assert_eq!(
        foreign_names(&stdout, refused),
        Some(vec!["backup.tar".to_string()]),
        "{stdout}"
    );
    // No restore tool: refused before anything.
    std::fs::remove_file(data.join("backup.tar")).unwrap();
    let out = run(CHECK, bin(false).path(), &[d, "member"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither etcdutl nor an etcdctl"));
}

#[test]
fn an_etcdctl_that_cannot_restore_is_no_restore_tool() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("etcd");
    let tools = bin(false);
    for (usage, found) in [
        // 3.6: `snapshot restore` is gone; the group's usage is all it prints.
        ("NAME:\n  snapshot - Manages etcd node snapshots", false),
        (
            "NAME:\n\tsnapshot restore - Restores an etcd member snapshot",
            true,
        ),
    ] {
        let fake = tools.path().join("etcdctl");
        std::fs::write(&fake, format!("#!/bin/sh\nprintf '{usage}\\n'\n")).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = run(CHECK, tools.path(), &[d.to_str().unwrap(), "member"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.success(), found, "{usage}: {stdout}");
        assert_eq!(stdout.contains("tool etcdctl"), found, "{usage}: {stdout}");
    }
}

fn restore_here(mount: &str, extra: Option<&str>) -> (tempfile::TempDir, std::process::Output) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("etcd");
    std::fs::create_dir_all(data.join("member/wal")).unwrap();
    std::fs::write(data.join("member/wal/old"), "old").unwrap();
    if let Some(name) = extra {
        std::fs::write(data.join(name), "x").unwrap();
    }
    let snap = root.path().join("restore-X.db");
    std::fs::write(&snap, "db").unwrap();
    let aside = root.path().join("etcd.restore-X");
    let tools = bin(true);
    let out = run(
        RESTORE,
        tools.path(),
        &[
            snap.to_str().unwrap(),
            data.to_str().unwrap(),
            aside.to_str().unwrap(),
            "cp1",
            "https://10.0.0.1:2380",
            "cp1=https://10.0.0.1:2380",
            "tok",
            mount,
            "member",
        ],
    );
    (root, out)
}

#[test]
fn the_old_data_goes_aside_whole_or_of_a_mount_point_its_member() {
    for mount in ["no", "yes"] {
        let (root, out) = restore_here(mount, None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mount}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (data, aside) = (root.path().join("etcd"), root.path().join("etcd.restore-X"));
        assert!(
            stdout.contains(&format!("aside {}", aside.display())),
            "{stdout}"
        );
        assert!(
            aside.join("member/wal/old").is_file(),
            "{mount}: old data kept"
        );
        assert!(data.join("member/wal").is_dir(), "{mount}: restored");
        assert!(!data.join("member/wal/old").exists(), "{mount}");
        assert!(!data.join(".kinit-restore").exists(), "{mount}");
        let names: Vec<_> = std::fs::read_dir(&data).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{mount}: only the member");
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(
            !root.path().join("restore-X.db").exists(),
            "the upload goes"
        );
    }
}

#[test]
fn the_restore_step_checks_again_and_moves_nothing_of_someone_elses() {
    let (root, out) = restore_here("no", Some("keep-me"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(FOREIGN_EXIT as i32), "{stdout}");
    assert!(stdout.contains("foreign keep-me"), "{stdout}");
    assert!(root.path().join("etcd/keep-me").is_file());
    assert!(root.path().join("etcd/member/wal/old").is_file());
    assert!(!root.path().join("etcd.restore-X").exists());
}

#[test]
fn a_half_way_failure_says_where_each_hosts_old_data_is() {
    let old: BTreeMap<String, OldData> = [
        ("cp1", OldData::Moved("/var/lib/etcd.restore-X".into())),
        ("cp2", OldData::Untouched),
        ("cp3", OldData::Unknown("/var/lib/etcd.restore-X".into())),
    ]
    .into_iter()
    .map(|(h, o)| (h.to_string(), o))
    .collect();
    let e = half_way(
        SnapshotError::host("cp3", "snapshot restore", "exit 1: boom"),
        "/var/lib/etcd",
        &old,
    )
    .to_string();
    for want in [
        "host cp3: snapshot restore: exit 1: boom",
        "cp1: moved to /var/lib/etcd.restore-X",
        "cp2: not moved",
        "cp3: at /var/lib/etcd, or moved to /var/lib/etcd.restore-X",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
}
