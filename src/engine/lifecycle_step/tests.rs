//! The lifecycle steps' scripts run here, on temporary directories, with a `systemctl` that says what
//! it was asked: their answers read back into what a reset reports.

use std::path::{Path, PathBuf};

use super::*;

/// `what`'s script run here (as root or not), with `systemctl` answering `active`/`enabled`
/// for every unit, installed but for `not-installed`, and logging its words to `systemctl.log`; the actions read from its answers.
fn run_here(what: &LifecycleStep, dry_run: bool) -> (Vec<HostAction>, String) {
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("systemctl.log");
    let fake = tools.path().join("systemctl");
    let text = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\ncase $1 in is-active) echo active ;; is-enabled) echo enabled ;; show) [ \"$4\" = not-installed ] || echo /etc/systemd/system/$4.service ;; esac\nexit 0\n",
        log.display()
    );
    std::fs::write(&fake, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let actions = run_with_path(what, dry_run, &path);
    (actions, std::fs::read_to_string(log).unwrap_or_default())
}

/// `what`'s script run here with `path` as its PATH: the actions read from its answers.
pub(super) fn run_with_path(what: &LifecycleStep, dry_run: bool, path: &str) -> Vec<HostAction> {
    let (script, words) = script(what, dry_run);
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("kinit")
        .args(words)
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_answers(what, dry_run, &stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn tree(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(root)
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn files_that_are_there_go_and_a_dry_run_only_says_so() {
    let root = tempfile::tempdir().unwrap();
    let (a, gone) = (root.path().join("a.yaml"), root.path().join("gone"));
    std::fs::write(&a, "x").unwrap();
    let what = LifecycleStep::Files(vec![s(&a), s(&gone)]);
    let said = vec![HostAction::Remove(s(&a))];
    assert_eq!(run_here(&what, true).0, said);
    assert!(a.exists(), "a dry run removed a file");
    assert_eq!(run_here(&what, false).0, said);
    assert!(!a.exists());
    assert_eq!(
        run_here(&what, false).0,
        vec![],
        "a second run has nothing to do"
    );
}

#[test]
fn units_are_stopped_then_disabled_in_order() {
    let what = LifecycleStep::Units(vec!["keepalived", "etcd"]);
    let (dry, log) = run_here(&what, true);
    assert!(!log.contains("stop"), "a dry run stopped a unit: {log}");
    let (actions, log) = run_here(&what, false);
    assert_eq!(actions, dry);
    assert_eq!(
        actions,
        vec![
            HostAction::Stop("keepalived".into()),
            HostAction::Disable("keepalived".into()),
            HostAction::Stop("etcd".into()),
            HostAction::Disable("etcd".into()),
        ]
    );
    let asked: Vec<&str> = log.lines().filter(|l| !l.starts_with("is-")).collect();
    assert_eq!(
        asked,
        [
            "stop keepalived",
            "disable -q keepalived",
            "reset-failed keepalived",
            "stop etcd",
            "disable -q etcd",
            "reset-failed etcd"
        ]
    );
}

#[test]
fn a_data_dir_holding_more_than_etcds_member_is_not_touched() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("etcd");
    std::fs::create_dir_all(data.join("member/wal")).unwrap();
    std::fs::write(data.join("notes.txt"), "mine").unwrap();
    std::fs::write(data.join(".hidden"), "mine").unwrap();
    let before = tree(root.path());
    for (dry, purge) in [(true, false), (false, false), (false, true)] {
        let what = LifecycleStep::EtcdData {
            dir: s(&data),
            aside: s(&root.path().join("etcd.reset-X")),
            entry: "member".into(),
            purge,
        };
        let (actions, _) = run_here(&what, dry);
        assert!(
            matches!(&actions[..], [HostAction::Failed(why)] if why.contains("holds more than")),
            "{actions:?}"
        );
        assert_eq!(tree(root.path()), before, "dry={dry} purge={purge}");
    }
}

#[test]
fn the_names_in_a_data_dir_besides_etcds_member_are_found() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("etcd");
    std::fs::create_dir_all(data.join("member")).unwrap();
    std::fs::write(data.join("notes.txt"), "mine").unwrap();
    std::fs::write(data.join(".hidden"), "mine").unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{DIR_FUNCTIONS}{FOREIGN}"))
        .args(["kinit", &s(&data), "member"])
        .output()
        .unwrap();
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    found.sort();
    assert_eq!(found, [".hidden", "notes.txt"]);
}

#[test]
fn a_data_dir_of_etcds_member_alone_moves_aside_or_goes() {
    for purge in [false, true] {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("etcd");
        std::fs::create_dir_all(data.join("member/wal")).unwrap();
        let aside = root.path().join("etcd.reset-X");
        let what = LifecycleStep::EtcdData {
            dir: s(&data),
            aside: s(&aside),
            entry: "member".into(),
            purge,
        };
        let (actions, _) = run_here(&what, false);
        assert!(!data.exists());
        if purge {
            assert_eq!(actions, vec![HostAction::Purge(s(&data))]);
            assert!(!aside.exists());
        } else {
            assert_eq!(
                actions,
                vec![HostAction::Move {
                    from: s(&data),
                    to: s(&aside)
                }]
            );
            assert!(aside.join("member/wal").is_dir());
        }
    }
}

#[test]
fn a_state_dir_holding_what_kinit_did_not_put_there_is_kept_and_said() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("snapshot");
    std::fs::create_dir_all(work.join("save.abc123")).unwrap();
    std::fs::write(work.join("restore-20261127T101500Z.db"), "x").unwrap();
    std::fs::write(work.join("mine.db"), "y").unwrap();
    let pending = root.path().join("pending");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join("etcd.service"), "").unwrap();
    let work_dir = LifecycleStep::StateDir {
        path: s(&work),
        kinit_names: vec!["restore-*.db".into(), "save.*".into()],
    };
    let (mut actions, _) = run_here(&work_dir, false);
    actions.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(
        actions,
        vec![
            HostAction::Kept {
                path: s(&work),
                found: vec!["mine.db".into()]
            },
            HostAction::Remove(format!("{}/restore-20261127T101500Z.db", s(&work))),
            HostAction::Remove(format!("{}/save.abc123", s(&work))),
        ]
    );
    let pending_dir = LifecycleStep::StateDir {
        path: s(&pending),
        kinit_names: vec!["*.service".into()],
    };
    assert_eq!(
        run_here(&pending_dir, false).0,
        vec![HostAction::Remove(s(&pending))]
    );
    assert_eq!(tree(root.path()), ["snapshot", "snapshot/mine.db"]);
}

#[test]
fn runtime_state_goes_and_only_empty_directories_are_removed() {
    let root = tempfile::tempdir().unwrap();
    let (state, link) = (
        root.path().join("cni"),
        "link:kinit-no-such-link".to_string(),
    );
    std::fs::create_dir_all(state.join("net/a")).unwrap();
    let what = LifecycleStep::RuntimeState(vec![s(&state), link, s(&root.path().join("none"))]);
    assert_eq!(
        run_here(&what, false).0,
        vec![HostAction::Remove(s(&state))]
    );
    assert!(!state.exists());
    let (empty, full) = (root.path().join("empty"), root.path().join("full"));
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(full.join("x")).unwrap();
    let dirs = LifecycleStep::EmptyDirs(vec![s(&empty), s(&full)]);
    assert_eq!(
        run_here(&dirs, true).0,
        vec![],
        "a dry run removes no directory"
    );
    assert_eq!(run_here(&dirs, false).0, vec![HostAction::Rmdir(s(&empty))]);
    assert!(!empty.exists() && full.exists());
}

#[test]
fn an_answer_missing_or_unknown_is_an_error_not_a_guess() {
    let what = LifecycleStep::Files(vec!["/a".into(), "/b".into()]);
    assert!(read_answers(&what, false, "ok\n").is_err());
    assert!(read_answers(&what, false, "ok\nmaybe\n").is_err());
    assert_eq!(
        read_answers(&what, false, "ok\nfailed\n").unwrap(),
        vec![
            HostAction::Remove("/a".into()),
            HostAction::Failed("remove /b".into())
        ]
    );
}

#[test]
fn a_restore_stops_units_and_holds_manifests_aside_then_puts_back_only_those() {
    let root = tempfile::tempdir().unwrap();
    let (dir, aside) = (root.path().join("manifests"), root.path().join("aside"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kube-apiserver.yaml"), "m").unwrap();
    let (_, log) = run_here(&LifecycleStep::StopUnits(vec!["kube-apiserver"]), false);
    assert!(log.contains("stop kube-apiserver\n"), "{log}");
    assert!(
        !log.contains("disable"),
        "a restore disables nothing: {log}"
    );
    let held = LifecycleStep::MoveAside {
        paths: vec![
            s(&dir.join("kube-apiserver.yaml")),
            s(&dir.join("etcd.yaml")),
        ],
        into: s(&aside),
    };
    assert_eq!(
        run_here(&held, false).0,
        vec![HostAction::Move {
            from: s(&dir.join("kube-apiserver.yaml")),
            to: s(&aside.join("kube-apiserver.yaml"))
        }]
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&aside).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // Something that is not kinit's waits there too: it stays, and is said.
    std::fs::write(aside.join("cluster-20261127.db"), "snapshot").unwrap();
    let back = LifecycleStep::PutBack {
        aside: s(&aside),
        dir: s(&dir),
        names: vec!["kube-apiserver.yaml".into(), "etcd.yaml".into()],
    };
    let (done, _) = run_here(&back, false);
    assert_eq!(
        done,
        vec![
            HostAction::Move {
                from: s(&aside.join("kube-apiserver.yaml")),
                to: s(&dir.join("kube-apiserver.yaml"))
            },
            HostAction::Kept {
                path: s(&aside),
                found: vec!["cluster-20261127.db".into()]
            }
        ]
    );
    assert!(dir.join("kube-apiserver.yaml").is_file());
    // Without strangers the directory goes; with no directory there is nothing to do.
    std::fs::remove_file(aside.join("cluster-20261127.db")).unwrap();
    assert_eq!(run_here(&back, false).0, vec![HostAction::Rmdir(s(&aside))]);
    assert_eq!(run_here(&back, false).0, vec![]);
}

#[test]
fn units_start_together_and_one_not_installed_is_left_alone() {
    let what = LifecycleStep::StartUnits(vec!["kube-apiserver", "not-installed", "kube-scheduler"]);
    let (dry, log) = run_here(&what, true);
    assert!(!log.contains("start"), "a dry run started a unit: {log}");
    let (done, log) = run_here(&what, false);
    assert_eq!(done, dry);
    assert_eq!(
        done,
        vec![
            HostAction::Start("kube-apiserver".into()),
            HostAction::Start("kube-scheduler".into())
        ]
    );
    assert!(
        log.contains("start kube-apiserver kube-scheduler\n"),
        "{log}"
    );
}
