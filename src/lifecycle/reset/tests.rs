use super::*;

#[test]
fn the_script_report_parses_into_actions() {
    let got = parse_actions(
        "stop keepalived\ndisable keepalived\nmove /var/lib/etcd /var/lib/etcd.reset-X\n\
         remove /etc/etcd/etcd.conf.yml\nfailed stop etcd\nrmdir /etc/etcd\nnoise\n",
    );
    assert_eq!(
        got,
        vec![
            ResetAction::Stop("keepalived".into()),
            ResetAction::Disable("keepalived".into()),
            ResetAction::Move {
                from: "/var/lib/etcd".into(),
                to: "/var/lib/etcd.reset-X".into()
            },
            ResetAction::Remove("/etc/etcd/etcd.conf.yml".into()),
            ResetAction::Failed("stop etcd".into()),
            ResetAction::Rmdir("/etc/etcd".into()),
        ]
    );
}

/// The script run here, as root or not, with a `systemctl` that does nothing.
fn run_here(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("systemctl");
    std::fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script_text())
        .arg("kinit")
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap()
}

fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir(root)
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(walkdir(&e.path()));
        }
    }
    out
}

#[test]
fn a_data_dir_holding_more_than_etcds_member_stops_the_script_before_anything() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("etcd");
    std::fs::create_dir_all(data.join("member/wal")).unwrap();
    std::fs::write(data.join("notes.txt"), "mine").unwrap();
    std::fs::write(data.join(".hidden"), "mine").unwrap();
    let file = root.path().join("etcd.conf");
    std::fs::write(&file, "x").unwrap();
    let before = tree(root.path());
    let aside = root.path().join("etcd.reset-X");
    for (dry, purge) in [("yes", "no"), ("no", "no"), ("no", "yes")] {
        let out = run_here(&[
            dry,
            purge,
            data.to_str().unwrap(),
            aside.to_str().unwrap(),
            "member",
            "--manifests",
            file.to_str().unwrap(),
            "--data",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let refused = out.status.code() == Some(FOREIGN_EXIT as i32);
        assert!(refused, "{stdout}");
        let mut found = foreign_names(&stdout, refused).unwrap();
        found.sort();
        assert_eq!(found, [".hidden", "notes.txt"], "{stdout}");
        assert_eq!(tree(root.path()), before, "dry={dry} purge={purge}");
    }
}

#[test]
fn a_data_dir_of_etcds_member_alone_moves_aside_or_goes() {
    for purge in ["no", "yes"] {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("etcd");
        std::fs::create_dir_all(data.join("member/wal")).unwrap();
        let aside = root.path().join("etcd.reset-X");
        let (d, a) = (data.to_str().unwrap(), aside.to_str().unwrap());
        let out = run_here(&["no", purge, d, a, "member", "--data"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(!data.exists());
        if purge == "yes" {
            assert_eq!(parse_actions(&stdout), vec![ResetAction::Purge(d.into())]);
            assert!(!aside.exists());
        } else {
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
    let (w, p) = (work.to_str().unwrap(), pending.to_str().unwrap());
    let out = run_here(&[
        "no",
        "no",
        "-",
        "-",
        "member",
        "--state",
        "restore-*.db",
        "save.*",
        w,
        "*.service",
        p,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        tree(root.path()),
        ["snapshot", "snapshot/mine.db"],
        "{stdout}"
    );
    let actions = parse_actions(&stdout);
    assert!(
        actions.contains(&ResetAction::Kept {
            path: w.into(),
            found: vec!["mine.db".into()]
        }),
        "{actions:?}"
    );
    assert!(
        actions.contains(&ResetAction::Remove(p.into())),
        "{actions:?}"
    );
}

#[test]
fn the_data_dir_goes_next_to_itself() {
    assert_eq!(
        aside_path("/var/lib/etcd/", "20261127T101500Z", "reset"),
        "/var/lib/etcd.reset-20261127T101500Z"
    );
}
