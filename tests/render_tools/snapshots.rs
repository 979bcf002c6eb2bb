//! The rendered snapshot service, timer and script, checked by systemd and run against a real
//! etcd.

use super::etcd::*;
use super::*;

/// `systemd-analyze verify` of a host's snapshot service and timer side by side (the timer
/// names the service), the service's ExecStart pointed at a copy of the rendered script.
fn systemd_verify_snapshot_units(dir: &Path, files: &[RenderedFile], timer: &str) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("etcd-snapshot.sh");
    std::fs::write(&script, &file(files, paths::ETCD_SNAPSHOT_SCRIPT).content).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let service = file(files, paths::ETCD_SNAPSHOT_SERVICE)
        .content
        .replace(paths::ETCD_SNAPSHOT_SCRIPT, script.to_str().unwrap());
    let service_path = dir.join("kinit-etcd-snapshot.service");
    let timer_path = dir.join("kinit-etcd-snapshot.timer");
    std::fs::write(&service_path, service).unwrap();
    std::fs::write(&timer_path, timer).unwrap();
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(&timer_path)
        .arg(&service_path))
}

#[test]
fn systemd_accepts_the_snapshot_service_timer_and_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for example in EXAMPLES {
        for (host, files) in rendered(example) {
            let Some(timer) = files.iter().find(|f| f.path == paths::ETCD_SNAPSHOT_TIMER) else {
                continue;
            };
            let out = systemd_verify_snapshot_units(dir.path(), &files, &timer.content);
            // Any output is a finding (systemd-analyze only warns about bad values).
            assert!(
                out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
                "{example}/{host}: {}",
                text(&out)
            );
            // The schedule, as systemd reads it.
            let schedule = timer
                .content
                .lines()
                .find_map(|l| l.strip_prefix("OnCalendar="))
                .expect("the timer has an OnCalendar");
            let out = run(Command::new("systemd-analyze")
                .arg("calendar")
                .arg(schedule));
            assert!(out.status.success(), "{example}/{host}: {}", text(&out));
            // The script is valid sh.
            let out = run(Command::new("sh")
                .arg("-n")
                .arg(dir.path().join("etcd-snapshot.sh")));
            assert!(out.status.success(), "{example}/{host}: {}", text(&out));
            checked.push(format!("{example}/{host}: {schedule}"));
        }
    }
    assert_eq!(
        checked,
        [
            "external/etcd1: hourly",
            "external/etcd2: hourly",
            "external/etcd3: hourly",
            "ipv6/cp1: Mon..Fri *-*-* 02:30:00",
            "ipv6/cp2: Mon..Fri *-*-* 02:30:00",
            "ipv6/cp3: Mon..Fri *-*-* 02:30:00",
        ]
    );
    // The checks can fail: a schedule systemd cannot read, and a unit setting it does not know.
    let (_, files) = rendered("external").remove(3);
    let timer = &file(&files, paths::ETCD_SNAPSHOT_TIMER).content;
    let out = systemd_verify_snapshot_units(
        dir.path(),
        &files,
        &timer.replace("OnCalendar=hourly", "OnCalendar=hourlyy"),
    );
    assert!(
        !out.status.success() && !out.stderr.is_empty(),
        "{}",
        text(&out)
    );
    let out = systemd_verify_snapshot_units(
        dir.path(),
        &files,
        &timer.replace("Persistent=true", "Persistent=maybe"),
    );
    assert!(!out.stderr.is_empty(), "{}", text(&out));
    let out = run(Command::new("systemd-analyze").args(["calendar", "Mon..Fry 02:30"]));
    assert!(!out.status.success(), "{}", text(&out));
}

/// The snapshot files in `dir` whose names are the script's own (`solo-etcd1-<UTC time>.db`).
fn own_snapshots(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("solo-etcd1-")
                .and_then(|t| t.strip_suffix("Z.db"))
                .is_some_and(|t| {
                    t.len() == 15 && t.as_bytes()[8] == b'T' && t.replace('T', "").len() == 14
                })
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_rendered_snapshot_script_saves_checks_and_rotates_snapshots_of_a_real_etcd() {
    use std::os::unix::fs::PermissionsExt;
    let host = EtcdHost::with_snapshots(kinit::config::EtcdMode::Systemd, Some(2));
    let _etcd = host.start(&systemd_etcd_args(&host));
    let [client, _, _] = host.ports;
    let endpoint = format!("https://127.0.0.1:{client}");
    // A key to find in the snapshot's key count.
    let mut put = Command::new("etcdctl");
    put.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!(
            "--cacert={}",
            under(&host.root, paths::ETCD_CA_CRT).display()
        ))
        .arg(format!(
            "--cert={}",
            under(&host.root, paths::ETCD_HEALTHCHECK_CLIENT_CRT).display()
        ))
        .arg(format!(
            "--key={}",
            under(&host.root, paths::ETCD_HEALTHCHECK_CLIENT_KEY).display()
        ))
        .args(["put", "kinit-snapshot-test", "1"]);
    let out = run(&mut put);
    assert!(out.status.success(), "{}", text(&out));

    // The rendered script, with the certificates and port of this loopback etcd.
    let script = under(&host.root, paths::ETCD_SNAPSHOT_SCRIPT);
    std::fs::write(
        &script,
        host.relocate(&std::fs::read_to_string(&script).unwrap()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = host.tmp.path().join("snapshots");

    // What the script must never remove: another host's snapshot, other files, a directory
    // named like a snapshot. An old snapshot of its own counts against `keep`.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let foreign = [
        "solo-etcd2-20000101T000000Z.db",
        "solo-etcd1-20000101T000000Z.db.bak",
        "solo-etcd1-latest.db",
        "notes.txt",
    ];
    for f in foreign {
        std::fs::write(dir.join(f), "not a snapshot").unwrap();
    }
    std::fs::create_dir(dir.join("solo-etcd1-19990101T000000Z.db")).unwrap();
    std::fs::write(dir.join("solo-etcd1-20000101T000000Z.db"), "old").unwrap();

    let mut seen: Vec<String> = Vec::new();
    for run_no in 1..=3 {
        let before = own_snapshots(&dir);
        let out = run_script(&script);
        assert!(out.status.success(), "run {run_no}: {}", text(&out));
        let after = own_snapshots(&dir);
        let new: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
        assert_eq!(new.len(), 1, "run {run_no}: {before:?} -> {after:?}");
        let new = new[0].clone();
        let path = dir.join(&new);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "run {run_no}: {new}");
        let status = run(Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "--write-out=json"])
            .arg(&path));
        assert!(status.status.success(), "{new}: {}", text(&status));
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert!(status["totalKey"].as_u64().unwrap() >= 1, "{status}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("saved {}", path.display())),
            "{}",
            text(&out)
        );
        seen.push(new);
    }
    // Two kept (`keep: 2`): the old one went at the second run, the first new one at the third.
    assert_eq!(own_snapshots(&dir), seen[1..].to_vec());
    for f in foreign {
        assert!(dir.join(f).is_file(), "{f} was removed");
    }
    assert!(dir.join("solo-etcd1-19990101T000000Z.db").is_dir());
    // No temporary file is left behind.
    let hidden: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // A directory others may write to is refused (someone could plant the names it writes).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_script(&script);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is writable by group or others"),
        "{}",
        text(&out)
    );
    assert_eq!(own_snapshots(&dir), seen[1..].to_vec());

    // A missing directory is created 0700; a stopped etcd fails the run and leaves no file.
    std::fs::remove_dir_all(&dir).unwrap();
    let out = run_script(&script);
    assert!(out.status.success(), "{}", text(&out));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    assert_eq!(own_snapshots(&dir).len(), 1);
    drop(_etcd);
    let started = Instant::now();
    let out = run_script(&script);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "the etcd member at https://127.0.0.1:{client} does not answer"
        )),
        "{}",
        text(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a stopped etcd left a file"
    );
}

/// The script as its service runs it (by its #! line), stopped if it hangs.
fn run_script(script: &Path) -> Output {
    run(Command::new("timeout").arg("300").arg(script))
}
