//! A restore's steps run here on temporary directories, with a PATH of the tools they use and
//! a stand-in `etcdutl` (it makes `--data-dir`'s `member/wal`, refusing, as etcd 3.4 does, a
//! dir that exists): their answers read back into what a restore reports.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

/// A PATH of the tools the scripts use, plus the stand-in `etcdutl` when `tool` is given.
fn tools(tool: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for t in [
        "tr", "head", "readlink", "awk", "stat", "mkdir", "mv", "chmod", "chown", "rmdir", "rm",
        "grep",
    ] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(t))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no {t}"));
        std::os::unix::fs::symlink(found, dir.path().join(t)).unwrap();
    }
    if tool {
        executable(
            &dir.path().join("etcdutl"),
            "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --data-dir ] && d=$2; shift; done\n\
             [ -e \"$d\" ] && { echo \"data-dir $d exists\" >&2; exit 1; }\n\
             mkdir -p \"$d/member/wal\"\n",
        );
    }
    dir
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `what` run here with only `tools` on the PATH: what its answers say.
fn run_with(what: &LifecycleStep, tools: &Path) -> Vec<HostAction> {
    super::tests::run_with_path(what, false, &tools.display().to_string())
}

fn check(data: &Path) -> LifecycleStep {
    LifecycleStep::EtcdRestoreCheck {
        dir: data.display().to_string(),
        entry: "member".into(),
    }
}

#[test]
fn the_check_names_what_is_not_etcds_and_finds_the_tool() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("etcd");
    std::fs::create_dir_all(data.join("member/snap")).unwrap();
    let with_tool = tools(true);
    assert_eq!(run_with(&check(&data), with_tool.path()), vec![]);
    // An absent data dir is fine too.
    assert_eq!(
        run_with(&check(&root.path().join("none")), with_tool.path()),
        vec![]
    );
    // Something else in it: named, and nothing else is said.
    std::fs::write(data.join("backup.tar"), "x").unwrap();
    assert_eq!(
        run_with(&check(&data), with_tool.path()),
        vec![HostAction::ForeignData {
            dir: data.display().to_string(),
            found: vec!["backup.tar".into()],
        }]
    );
    // No restore tool, and a data dir that is a file.
    let file = root.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let found = run_with(&check(&file), tools(false).path());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        matches!(&found[0], HostAction::Failed(w) if w.contains("etcdutl")),
        "{found:?}"
    );
    assert!(
        matches!(&found[1], HostAction::Failed(w) if w.contains("not a directory")),
        "{found:?}"
    );
}

#[test]
fn an_etcdctl_that_cannot_restore_is_no_restore_tool() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("etcd");
    let tools = tools(false);
    for (usage, found) in [
        // 3.6: `snapshot restore` is gone; the group's usage is all it prints.
        ("NAME:\n  snapshot - Manages etcd node snapshots", false),
        (
            "NAME:\n\tsnapshot restore - Restores an etcd member snapshot",
            true,
        ),
    ] {
        executable(
            &tools.path().join("etcdctl"),
            &format!("#!/bin/sh\nprintf '{usage}\\n'\n"),
        );
        let said = run_with(&check(&d), tools.path());
        assert_eq!(said.is_empty(), found, "{usage}: {said:?}");
    }
}

fn member_restore(root: &Path) -> LifecycleStep {
    LifecycleStep::EtcdRestore(Box::new(MemberRestore {
        snapshot: root.join("restore-X.db").display().to_string(),
        data_dir: root.join("etcd").display().to_string(),
        entry: "member".into(),
        name: "cp1".into(),
        peer_url: "https://10.0.0.1:2380".into(),
        initial_cluster: "cp1=https://10.0.0.1:2380".into(),
        token: "tok".into(),
    }))
}

#[test]
fn a_member_is_restored_into_an_absent_or_an_empty_data_dir_and_the_upload_goes() {
    for keep_dir in [false, true] {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("etcd");
        if keep_dir {
            // A mount point whose entry went aside: the directory stays.
            std::fs::create_dir(&data).unwrap();
        }
        std::fs::write(root.path().join("restore-X.db"), "db").unwrap();
        let said = run_with(&member_restore(root.path()), tools(true).path());
        assert_eq!(
            said,
            vec![HostAction::Restored {
                member: "cp1".into(),
                dir: data.display().to_string()
            }],
            "{keep_dir}"
        );
        assert!(data.join("member/wal").is_dir(), "{keep_dir}: restored");
        let names: Vec<_> = std::fs::read_dir(&data).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{keep_dir}: only the member");
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
fn a_data_dir_still_holding_etcds_member_is_not_restored_over() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("etcd");
    std::fs::create_dir_all(data.join("member/wal")).unwrap();
    std::fs::write(data.join("member/wal/old"), "old").unwrap();
    std::fs::write(root.path().join("restore-X.db"), "db").unwrap();
    let said = run_with(&member_restore(root.path()), tools(true).path());
    assert!(
        matches!(&said[..], [HostAction::Failed(w)] if w.contains("still holds")),
        "{said:?}"
    );
    assert!(data.join("member/wal/old").is_file(), "nothing touched");
    assert!(
        !root.path().join("restore-X.db").exists(),
        "the upload goes"
    );
    // A restore that fails says so (the data dir's parent is not there).
    let gone = tempfile::tempdir().unwrap();
    let mut step = member_restore(&gone.path().join("no/such"));
    if let LifecycleStep::EtcdRestore(r) = &mut step {
        r.data_dir = gone.path().join("no/such/etcd/x").display().to_string();
    }
    let tools = tools(false);
    executable(&tools.path().join("etcdutl"), "#!/bin/sh\nexit 1\n");
    let said = run_with(&step, tools.path());
    assert!(
        matches!(&said[..], [HostAction::Failed(w)] if w.starts_with("restore member cp1")),
        "{said:?}"
    );
}

#[test]
fn the_scratch_dir_is_made_root_s_alone_and_one_there_is_closed() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: chown to root needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("work/kinit");
    let step = LifecycleStep::PrivateDir(dir.display().to_string());
    let tools = tools(false);
    assert_eq!(run_with(&step, tools.path()), vec![]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(run_with(&step, tools.path()), vec![]);
    assert_eq!(mode(&dir), 0o700, "an open one is closed");
    // Where it cannot be made, that is said.
    let file = root.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let step = LifecycleStep::PrivateDir(file.join("sub").display().to_string());
    let said = run_with(&step, tools.path());
    assert!(matches!(&said[..], [HostAction::Failed(_)]), "{said:?}");
}
