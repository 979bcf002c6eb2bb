use super::*;

fn admin() -> AdminKubeconfig {
    AdminKubeconfig {
        cluster: "demo".into(),
        user: "kubernetes-admin@demo".into(),
        context: "kubernetes-admin@demo".into(),
        server: "https://192.168.9.100:8443".into(),
        ca_pem: "CA".into(),
        cert_pem: "CERT".into(),
        key_pem: "KEY".into(),
    }
}

#[test]
fn merging_through_a_symlink_writes_its_target_and_respects_kubectls_lock() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-config");
    fs::write(&real, "current-context: other\n").unwrap();
    let link = dir.path().join("config");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);

    let lock = dir.path().join("real-config.lock");
    fs::write(&lock, "").unwrap();
    let err = merge_into(&link, &admin(), now).err().unwrap();
    assert!(matches!(err, KubeconfigError::Locked { .. }), "{err}");
    assert!(lock.exists(), "someone else's lock is left alone");
    fs::remove_file(&lock).unwrap();

    let report = merge_into(&link, &admin(), now).unwrap();
    assert_eq!(report.file, fs::canonicalize(&real).unwrap());
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!report.outcome.current_context_set);
    let doc = Document::parse(&fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(doc.current_context.as_deref(), Some("other"));
    assert_eq!(doc.clusters.len(), 1);
    let backup = report.backup.unwrap();
    assert_eq!(
        backup.file_name().unwrap(),
        "real-config.kinit-backup-20231114T221320Z"
    );
    assert_eq!(
        fs::read_to_string(&backup).unwrap(),
        "current-context: other\n"
    );
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&real), mode(&backup)), (0o600, 0o600));
    assert!(!lock.exists());

    // A second change within the same second gets a backup of its own.
    let mut moved = admin();
    moved.server = "https://192.168.9.200:8443".into();
    let again = merge_into(&link, &moved, now).unwrap();
    assert_eq!(
        again.backup.unwrap().file_name().unwrap(),
        "real-config.kinit-backup-20231114T221320Z-2"
    );
}

#[test]
fn the_merge_target_is_kubeconfigs_first_file_else_home() {
    let home = Path::new("/home/op");
    assert_eq!(
        merge_target(None, Some(home)),
        Some(PathBuf::from("/home/op/.kube/config"))
    );
    assert_eq!(
        merge_target(Some(OsStr::new("")), Some(home)),
        Some(PathBuf::from("/home/op/.kube/config"))
    );
    assert_eq!(
        merge_target(Some(OsStr::new("/a/one:/b/two")), Some(home)),
        Some(PathBuf::from("/a/one"))
    );
    assert_eq!(
        merge_target(Some(OsStr::new(":/b/two")), None),
        Some(PathBuf::from("/b/two"))
    );
    assert_eq!(merge_target(None, None), None);
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// kubectl's rule: new entries go to the first file of the list that exists; the
/// current-context is left alone when any file of the list sets one.
#[test]
fn merging_into_a_list_writes_the_first_file_that_exists() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let second = dir.path().join("second");
    let third = dir.path().join("third");
    fs::write(&second, "clusters: []\n").unwrap();
    fs::write(&third, "current-context: prod\n").unwrap();
    let files = vec![missing.clone(), second.clone(), third.clone()];
    assert_eq!(
        merge_target(
            Some(&std::env::join_paths(&files).unwrap()),
            Some(Path::new("/h"))
        ),
        Some(second.clone())
    );
    // A lock on any file of the list (kubectl locks them all) holds kinit off.
    for name in ["missing.lock", "third.lock"] {
        fs::write(dir.path().join(name), "").unwrap();
        let err = merge_into_list(&files, &admin(), at(1_700_000_000))
            .err()
            .unwrap();
        assert!(matches!(err, KubeconfigError::Locked { .. }), "{err}");
        fs::remove_file(dir.path().join(name)).unwrap();
    }
    let report = merge_into_list(&files, &admin(), at(1_700_000_000)).unwrap();
    assert_eq!(report.file, second);
    assert!(!missing.exists(), "the first file that exists is written");
    assert!(!report.outcome.current_context_set);
    assert_eq!(report.outcome.current_context, "prod");
    let doc = Document::parse(&fs::read_to_string(&second).unwrap()).unwrap();
    assert_eq!(doc.current_context, None, "third's current-context is used");
    assert_eq!(doc.clusters.len(), 1);
    assert_eq!(
        fs::read_to_string(&third).unwrap(),
        "current-context: prod\n"
    );
    let left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // No file of the list sets one: kinit's becomes current.
    fs::write(&third, "clusters: []\n").unwrap();
    let fresh = dir.path().join("fresh");
    let report =
        merge_into_list(&[fresh.clone(), third.clone()], &admin(), at(1_700_000_000)).unwrap();
    assert_eq!(report.file, third);
    assert!(report.outcome.current_context_set);
}

/// kubectl locks `<path>.lock` of the path in its list, not of a symlink's target.
#[test]
fn the_lock_is_kubectls_name_for_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-config");
    fs::write(&real, "current-context: other\n").unwrap();
    let link = dir.path().join("config");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let lock = dir.path().join("config.lock");
    fs::write(&lock, "").unwrap();
    let err = merge_into(&link, &admin(), at(1_700_000_000))
        .err()
        .unwrap();
    assert!(matches!(err, KubeconfigError::Locked { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(&real).unwrap(),
        "current-context: other\n"
    );
    fs::remove_file(&lock).unwrap();
    merge_into(&link, &admin(), at(1_700_000_000)).unwrap();
    assert!(!lock.exists());
}

/// Devices, directories and links to nothing are refused, never replaced.
#[test]
fn only_regular_files_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let to_null = dir.path().join("to-null");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    for (path, what) in [
        (Path::new("/dev/null"), "a character device"),
        (to_null.as_path(), "a character device"),
        (dangling.as_path(), "a symbolic link to nothing"),
        (sub.as_path(), "a directory"),
    ] {
        for force in [false, true] {
            let err = write_file(path, &admin(), force).err().unwrap();
            assert!(
                matches!(&err, KubeconfigError::NotRegular { what: w, .. } if *w == what),
                "{}: {err}",
                path.display()
            );
        }
        let err = merge_into(path, &admin(), at(1)).err().unwrap();
        assert!(matches!(err, KubeconfigError::NotRegular { .. }), "{err}");
    }
    assert!(
        fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!dir.path().join("nowhere").exists());
    assert!(
        fs::symlink_metadata(&to_null)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // A link to a regular file is written through, the link kept.
    let real = dir.path().join("real");
    fs::write(&real, "x").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    write_file(&link, &admin(), true).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::read_to_string(&real)
            .unwrap()
            .contains("kubernetes-admin@demo")
    );
}

/// Root merging into another user's kubeconfig leaves it (and its backup) theirs.
#[test]
fn root_keeps_the_owner_and_group() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    fs::write(&file, "current-context: prod\n").unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let (uid, gid) = if root {
        std::os::unix::fs::chown(&file, Some(4321), Some(8765)).unwrap();
        (4321, 8765)
    } else {
        let m = fs::metadata(&file).unwrap();
        (m.uid(), m.gid())
    };
    let report = merge_into(&file, &admin(), at(1_700_000_000)).unwrap();
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid()), (uid, gid));
    let b = fs::metadata(report.backup.unwrap()).unwrap();
    assert_eq!((b.uid(), b.gid()), (uid, gid));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    // write_file --force over it too.
    write_file(&file, &admin(), true).unwrap();
    let m = fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.gid()), (uid, gid));
}
