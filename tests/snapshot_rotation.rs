//! The rotation of scheduled etcd snapshots (templates/etcd-snapshot.sh.tera), run for real: the
//! rendered script's rotation block (between `# rotate: begin` and `# rotate: end`) runs under
//! bash and under sh on a temporary directory, with the variables the rest of the script sets.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::render::rendered;

/// The rendered script of `external`'s etcd1, and its snapshot name prefix.
fn script() -> (String, String) {
    let (_, files) = rendered("external")
        .into_iter()
        .find(|(h, _)| h == "etcd1")
        .unwrap();
    let f = files
        .iter()
        .find(|f| f.path == kinit::host_paths::ETCD_SNAPSHOT_SCRIPT)
        .unwrap();
    let prefix = f
        .content
        .lines()
        .find_map(|l| l.strip_prefix("PREFIX='"))
        .and_then(|l| l.strip_suffix('\''))
        .unwrap()
        .to_string();
    (f.content.clone(), prefix)
}

fn rotation_block(script: &str) -> String {
    let begin = script
        .find("# rotate: begin\n")
        .expect("no rotate: begin marker");
    let end = script
        .find("# rotate: end\n")
        .expect("no rotate: end marker");
    script[begin..end].to_string()
}

/// Runs the rotation with `shell` in `dir`, `final_name` being the snapshot just saved.
fn rotate(shell: &str, dir: &Path, keep: u32, prefix: &str, final_name: &str) -> Output {
    let (script, _) = script();
    let text = format!(
        "set -eu\nLC_ALL=C\nexport LC_ALL\nfail() {{\n    echo \"etcd-snapshot: $*\" >&2\n    exit 1\n}}\n\
         DIR='{}'\nKEEP='{keep}'\nPREFIX='{prefix}'\nfinal=\"$DIR/{final_name}\"\n{}",
        dir.display(),
        rotation_block(&script)
    );
    Command::new(shell).arg("-c").arg(text).output().unwrap()
}

fn shells() -> Vec<&'static str> {
    let mut v = vec!["bash"];
    if Path::new("/bin/sh").exists() {
        v.push("/bin/sh");
    }
    v
}

/// A snapshot file named for `stamp` (YYYYmmddTHHMMSSZ) with modification time `mtime`
/// (seconds since 1970).
fn snap(dir: &Path, prefix: &str, stamp: &str, mtime: i64) -> PathBuf {
    let p = dir.join(format!("{prefix}{stamp}.db"));
    std::fs::write(&p, stamp).unwrap();
    set_mtime(&p, mtime);
    p
}

fn set_mtime(p: &Path, mtime: i64) {
    let st = Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{mtime}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn the_script_carries_one_rotation_block() {
    let (script, prefix) = script();
    assert_eq!(script.matches("# rotate: begin\n").count(), 1);
    assert_eq!(script.matches("# rotate: end\n").count(), 1);
    assert_eq!(prefix, "prod-etcd1-");
}

/// keep: 1 with a snapshot named (and written) while the clock was ahead: the new one stays,
/// the one from the "future" goes. Before: the name sort kept 2099's and deleted the new one,
/// and the run succeeded.
#[test]
fn keep_one_never_deletes_the_snapshot_just_written() {
    let (_, prefix) = script();
    for shell in shells() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let t = now();
        snap(dir, &prefix, "20990101T000000Z", 4_070_908_800);
        snap(dir, &prefix, "20250101T000000Z", t - 3600);
        let new = snap(dir, &prefix, "20260101T000000Z", t);
        let out = rotate(shell, dir, 1, &prefix, "prod-etcd1-20260101T000000Z.db");
        assert!(out.status.success(), "{shell}: {out:?}");
        assert_eq!(
            names(dir),
            vec![format!("{prefix}20260101T000000Z.db")],
            "{shell}: {out:?}"
        );
        assert!(new.exists());
    }
}

/// Newest by modification time, not by name; files modified after the new one (the clock was
/// ahead when they were written) count as the oldest.
#[test]
fn keeps_the_newest_by_mtime() {
    let (_, prefix) = script();
    for shell in shells() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let t = now();
        // Names sort opposite to modification times.
        snap(dir, &prefix, "20200101T000000Z", t - 10);
        snap(dir, &prefix, "20210101T000000Z", t - 20);
        snap(dir, &prefix, "20220101T000000Z", t - 30);
        snap(dir, &prefix, "20230101T000000Z", t - 40);
        // Written while the clock was a year ahead.
        snap(dir, &prefix, "20271201T000000Z", t + 365 * 86400);
        snap(dir, &prefix, "20240101T000000Z", t);
        // Not this host's snapshots, or not snapshots: never touched.
        snap(dir, "prod-etcd2-", "20000101T000000Z", 1);
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        std::fs::write(dir.join(format!("{prefix}20000101T000000Z.db.bak")), "x").unwrap();
        std::os::unix::fs::symlink(
            "/nonexistent",
            dir.join(format!("{prefix}19990101T000000Z.db")),
        )
        .unwrap();
        let out = rotate(shell, dir, 3, &prefix, "prod-etcd1-20240101T000000Z.db");
        assert!(out.status.success(), "{shell}: {out:?}");
        let want: Vec<String> = vec![
            "notes.txt".into(),
            format!("{prefix}19990101T000000Z.db"),
            format!("{prefix}20000101T000000Z.db.bak"),
            format!("{prefix}20200101T000000Z.db"),
            format!("{prefix}20210101T000000Z.db"),
            format!("{prefix}20240101T000000Z.db"),
            "prod-etcd2-20000101T000000Z.db".into(),
        ];
        assert_eq!(names(dir), want, "{shell}: {out:?}");
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(said.matches("removed").count(), 3, "{said}");
    }
}

/// Fewer snapshots than `keep`: nothing goes.
#[test]
fn fewer_than_keep_removes_nothing() {
    let (_, prefix) = script();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = now();
    snap(dir, &prefix, "20200101T000000Z", t - 10);
    snap(dir, &prefix, "20240101T000000Z", t);
    let out = rotate("bash", dir, 24, &prefix, "prod-etcd1-20240101T000000Z.db");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(names(dir).len(), 2);
}

/// A run whose new snapshot is not there at the end fails, whatever else happened.
#[test]
fn a_run_that_keeps_nothing_new_fails() {
    let (_, prefix) = script();
    for shell in shells() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        snap(dir, &prefix, "20200101T000000Z", now() - 10);
        let out = rotate(shell, dir, 1, &prefix, "prod-etcd1-20240101T000000Z.db");
        assert!(!out.status.success(), "{shell}: {out:?}");
        assert_eq!(names(dir).len(), 1, "{shell}: the old one stays");
        // The new name as a symlink to an old snapshot is not a new snapshot either.
        std::os::unix::fs::symlink(
            dir.join(format!("{prefix}20200101T000000Z.db")),
            dir.join(format!("{prefix}20240101T000000Z.db")),
        )
        .unwrap();
        let out = rotate(shell, dir, 1, &prefix, "prod-etcd1-20240101T000000Z.db");
        assert!(!out.status.success(), "{shell}: {out:?}");
    }
}
