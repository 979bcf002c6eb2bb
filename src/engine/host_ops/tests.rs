use super::*;

/// Run one of the scripts here with `sh`, as the host does over SSH.
fn sh(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(with_stamp_fns(script))
        .arg("kinit")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn sha_of(path: &std::path::Path) -> String {
    crate::ssh::sha256_hex(&std::fs::read(path).unwrap())
}

#[test]
fn a_large_file_is_hashed_once_then_known_by_its_stamp_until_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("stamps");
    let (sd, big, small) = (
        sd.to_str().unwrap(),
        dir.path().join("kube-apiserver"),
        dir.path().join("small.conf"),
    );
    std::fs::write(&big, vec![7u8; 2 << 20]).unwrap();
    std::fs::write(&small, b"small\n").unwrap();
    let (bp, spath) = (big.to_str().unwrap(), small.to_str().unwrap());
    let (bn, sn) = (stamp_name(bp), stamp_name(spath));
    let args = [sd, bp, &bn, spath, &sn, "/nonexistent/file", "x.stamp"];
    let first = sh(STAT, &args);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 3, "{first}");
    assert!(lines[0].starts_with(&sha_of(&big)), "{first}");
    assert!(lines[1].starts_with(&sha_of(&small)), "{first}");
    assert_eq!(lines[2], "-");
    let stamp = std::path::Path::new(sd).join(&bn);
    assert!(stamp.is_file(), "the large file is stamped");
    assert!(
        !std::path::Path::new(sd).join(&sn).exists(),
        "a small one is not"
    );
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(sd).unwrap().permissions())
            & 0o777,
        0o700
    );

    // The stamp is what is read: a forged hash under the same identity comes back.
    let text = std::fs::read_to_string(&stamp).unwrap();
    let (ident, _) = text.trim().split_once(' ').unwrap();
    let forged = "f".repeat(64);
    std::fs::write(&stamp, format!("{ident} {forged}\n")).unwrap();
    assert!(sh(STAT, &args).starts_with(&forged));

    // Rewritten in place, same size: the identity moved on, so the file is read again and
    // stamped anew.
    let mut bytes = std::fs::read(&big).unwrap();
    bytes[1000] = 8;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&big, &bytes).unwrap();
    let again = sh(STAT, &args);
    assert!(again.starts_with(&sha_of(&big)), "{again}");
    assert!(!std::fs::read_to_string(&stamp).unwrap().contains(&forged));

    // After a write the stamp is made from the hash the write checked.
    std::fs::remove_file(&stamp).unwrap();
    let sha = sha_of(&big);
    sh(STAMP, &[sd, bp, &bn, &sha]);
    assert!(
        std::fs::read_to_string(&stamp)
            .unwrap()
            .ends_with(&format!(" {sha}\n"))
    );
    sh(STAMP, &[sd, spath, &sn, &sha_of(&small)]);
    assert!(!std::path::Path::new(sd).join(&sn).exists());
    // Nothing but stamps in the stamp dir (no temporary file left).
    let names: Vec<String> = std::fs::read_dir(sd)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![bn.clone()]);
}

#[test]
fn unit_states_and_package_answers_parse() {
    assert_eq!(
        parse_unit_state("activating disabled yes no yes"),
        Some(UnitState {
            running: true,
            enabled: false,
            restart_noted: true,
            reload_noted: false,
            daemon_reload_noted: true,
        })
    );
    assert_eq!(parse_unit_state("inactive"), None);
    assert_eq!(
        parse_packages("installed haproxy curl"),
        Some(PackagesState::Installed(vec![
            "haproxy".into(),
            "curl".into()
        ]))
    );
    assert_eq!(parse_packages("present"), Some(PackagesState::Present));
    assert_eq!(parse_packages("what"), None);
}

/// The prune script on a real directory: only kinit's entries not kept go, never a link
/// or an entry whose marker another wrote; a dry run names without removing.
#[test]
fn the_prune_script_removes_only_kinits_entries_that_are_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (entry, first_line) in [
        ("kept", "# Rendered by kinit for w1 (cluster c)."),
        ("gone", "# Rendered by kinit for w1 (cluster c)."),
        ("by-hand", "server = \"https://by-hand\""),
    ] {
        std::fs::create_dir(d.join(entry)).unwrap();
        std::fs::write(
            d.join(entry).join("hosts.toml"),
            format!("{first_line}\nx\n"),
        )
        .unwrap();
    }
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("hosts.toml"), "# Rendered by kinit\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), d.join("link")).unwrap();
    let root = d.to_str().unwrap();
    let args = |apply| vec![root, "hosts.toml", RENDERED_MARK, apply, "kept"];
    assert_eq!(sh(PRUNE, &args("no")), "gone\n");
    assert!(d.join("gone").exists(), "a dry run removes nothing");
    assert_eq!(sh(PRUNE, &args("yes")), "gone\n");
    let mut left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["by-hand", "kept", "link"]);
    assert!(outside.path().join("hosts.toml").exists());
    assert_eq!(sh(PRUNE, &args("yes")), "");
    let missing = d.join("none");
    assert_eq!(
        sh(
            PRUNE,
            &[
                missing.to_str().unwrap(),
                "hosts.toml",
                RENDERED_MARK,
                "yes"
            ]
        ),
        ""
    );
}

#[test]
fn stat_lines_parse() {
    assert_eq!(parse_stat_line("-"), None);
    assert_eq!(
        parse_stat_line("abc 600 root:root"),
        Some(FileState {
            sha256: "abc".into(),
            mode: 0o600,
            owner: "root:root".into()
        })
    );
}
