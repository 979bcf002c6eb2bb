//! kinit's snapshot verifier against a real etcd (Debian's etcd-server 3.4, single member, plain
//! http on loopback): the snapshot `etcdctl snapshot save` writes, and the member's own database
//! file once it is stopped, must give what `etcdctl snapshot status` gives; damaged copies must
//! give typed errors.

mod support;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::free_port;

use kinit::etcd::snapshot_file::{Integrity, SnapshotFileError, SnapshotStatus, inspect};

const LIMIT: Duration = Duration::from_secs(60);

/// What the tests compare against, made once: etcd is gone by the time any test runs.
struct Fixture {
    /// `etcdctl snapshot save` output (database + sha256 trailer).
    snapshot: Vec<u8>,
    snapshot_status: serde_json::Value,
    /// The member's own `member/snap/db` after a clean stop: no trailer, its own meta pages.
    member_db: Vec<u8>,
    member_db_status: serde_json::Value,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

struct Etcd {
    child: Option<Child>,
    endpoint: String,
}

impl Etcd {
    /// Stop with SIGTERM so the backend commits, SIGKILL if that takes too long.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the pid of our own child, not yet waited for.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_etcd(dir: &Path) -> Etcd {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
    let child = Command::new("etcd")
        .arg("--name=snap1")
        .arg(format!("--data-dir={}", dir.join("data").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=snap1={peer_url}"))
        .arg("--initial-cluster-state=new")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("etcd is installed (apt-get install etcd-server)");
    let etcd = Etcd {
        child: Some(child),
        endpoint: client_url,
    };
    let started = Instant::now();
    loop {
        let out = etcdctl(&etcd, &["endpoint", "health", "--command-timeout=2s"]);
        if out.status.success() {
            return etcd;
        }
        assert!(
            started.elapsed() < LIMIT,
            "etcd never became healthy: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn etcdctl_command(args: &[&str]) -> Command {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3").args(args);
    cmd
}

fn etcdctl(etcd: &Etcd, args: &[&str]) -> Output {
    let endpoints = format!("--endpoints={}", etcd.endpoint);
    let mut cmd = etcdctl_command(args);
    cmd.arg(endpoints);
    support::hang_guard::output_within(&mut cmd, LIMIT)
}

fn etcdctl_ok(etcd: &Etcd, args: &[&str]) -> String {
    let out = etcdctl(etcd, args);
    assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// One transaction of `ops` (etcdctl txn syntax): no compares, all ops on success.
fn txn(etcd: &Etcd, ops: &[String]) {
    let mut cmd = etcdctl_command(&["txn", &format!("--endpoints={}", etcd.endpoint)]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("etcdctl is installed (apt-get install etcd-client)");
    let watchdog = support::hang_guard::Watchdog::arm(&child, LIMIT);
    let script = format!("\n{}\n\n\n", ops.join("\n"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!watchdog.disarm(), "etcdctl txn hung");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("SUCCESS"),
        "etcdctl txn: {out:?}"
    );
}

/// `etcdctl snapshot status -w json FILE` (works on a plain database file too).
fn etcdctl_status(file: &Path) -> serde_json::Value {
    let mut cmd = etcdctl_command(&["snapshot", "status", "-w", "json"]);
    let out = support::hang_guard::output_within(cmd.arg(file), LIMIT);
    assert!(out.status.success(), "etcdctl snapshot status: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn make_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = start_etcd(dir.path());

    // Small keys in four transactions: one revision each, many sub-revisions.
    for round in 0..4 {
        let ops: Vec<String> = (round * 100..round * 100 + 100)
            .map(|i| format!("put /registry/items/{i:04} value-{i}-first"))
            .collect();
        txn(&etcd, &ops);
    }
    // 10 KB values: each needs a leaf page with overflow pages.
    for batch in 0..4 {
        let ops: Vec<String> = (batch * 10..batch * 10 + 10)
            .map(|i| format!("put /registry/big/{i:02} {}", "x".repeat(10 * 1024)))
            .collect();
        txn(&etcd, &ops);
    }
    // Overwrites, single puts, deletes (tombstones) and a lease.
    let ops: Vec<String> = (0..50)
        .map(|i| format!("put /registry/items/{i:04} value-{i}-second"))
        .collect();
    txn(&etcd, &ops);
    for i in 0..15 {
        etcdctl_ok(&etcd, &["put", &format!("/registry/single/{i}"), "one"]);
    }
    etcdctl_ok(&etcd, &["del", "--prefix", "/registry/items/02"]);
    etcdctl_ok(&etcd, &["del", "/registry/items/0001"]);
    etcdctl_ok(&etcd, &["del", "/registry/big/03"]);
    let lease = etcdctl_ok(&etcd, &["lease", "grant", "600"]);
    let lease_id = lease.split_whitespace().nth(1).unwrap().to_string();
    etcdctl_ok(
        &etcd,
        &["put", "--lease", &lease_id, "/registry/leased", "v"],
    );
    // Compact away the first rounds' history (frees pages), then write on top.
    let header = etcdctl_ok(&etcd, &["get", "/registry/single/0", "-w", "json"]);
    let header: serde_json::Value = serde_json::from_str(&header).unwrap();
    let rev = header["header"]["revision"].as_i64().unwrap();
    etcdctl_ok(&etcd, &["compact", &(rev - 10).to_string(), "--physical"]);
    for i in 0..5 {
        etcdctl_ok(&etcd, &["put", &format!("/registry/after/{i}"), "late"]);
    }

    let snap_path = dir.path().join("snap.db");
    let path_arg = snap_path.display().to_string();
    etcdctl_ok(&etcd, &["snapshot", "save", &path_arg]);
    etcd.stop();

    let db_copy = dir.path().join("member.db");
    std::fs::copy(dir.path().join("data/member/snap/db"), &db_copy).unwrap();
    Fixture {
        snapshot_status: etcdctl_status(&snap_path),
        snapshot: std::fs::read(&snap_path).unwrap(),
        member_db_status: etcdctl_status(&db_copy),
        member_db: std::fs::read(&db_copy).unwrap(),
    }
}

/// Write `bytes` to a fresh file in `dir`.
fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn assert_same_as_etcdctl(ours: &SnapshotStatus, etcdctl: &serde_json::Value) {
    assert_eq!(
        Some(u64::from(ours.hash)),
        etcdctl["hash"].as_u64(),
        "{etcdctl}"
    );
    assert_eq!(
        Some(ours.revision),
        etcdctl["revision"].as_i64(),
        "{etcdctl}"
    );
    assert_eq!(
        Some(ours.total_keys),
        etcdctl["totalKey"].as_u64(),
        "{etcdctl}"
    );
    assert_eq!(
        Some(ours.total_size),
        etcdctl["totalSize"].as_u64(),
        "{etcdctl}"
    );
}

fn sha256sum(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    let out = support::hang_guard::output_within(cmd.arg(path), LIMIT);
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Page types at every page boundary of a 4 KiB-page database: (branch pages, pages with overflow).
fn page_shapes(db: &[u8]) -> (usize, usize) {
    let headers = db
        .chunks_exact(4096)
        .enumerate()
        .filter(|(i, p)| u64::from_le_bytes(p[..8].try_into().unwrap()) == *i as u64);
    let (mut branches, mut overflowing) = (0, 0);
    for (_, p) in headers {
        let flags = u16::from_le_bytes([p[8], p[9]]);
        let overflow = u32::from_le_bytes(p[12..16].try_into().unwrap());
        branches += usize::from(flags == 0x01);
        overflowing += usize::from(flags == 0x02 && overflow > 0);
    }
    (branches, overflowing)
}

#[test]
fn snapshot_status_matches_etcdctl() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "snap.db", &f.snapshot);

    let status = inspect(&path).unwrap();
    assert_same_as_etcdctl(&status, &f.snapshot_status);
    assert_eq!(status.integrity, Integrity::Verified);
    assert_eq!(status.file_size, f.snapshot.len() as u64);
    assert_eq!(status.file_size, status.total_size + 32);
    assert_eq!(status.sha256, sha256sum(&path));
    // Deletes, overwrites and multi-put transactions: revision and key count differ.
    assert_ne!(status.revision, status.total_keys as i64);

    // The data set reaches the parts of the format worth testing.
    let (branches, overflowing) = page_shapes(&f.snapshot[..f.snapshot.len() - 32]);
    assert!(branches > 0, "no branch page in the snapshot");
    assert!(
        overflowing > 0,
        "no leaf page with overflow in the snapshot"
    );

    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["totalKeys"], serde_json::json!(status.total_keys));
    assert_eq!(json["integrity"], "verified");
    assert_eq!(json["sha256"], status.sha256.as_str());
}

#[test]
fn stopped_member_database_matches_etcdctl() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "db", &f.member_db);

    let status = inspect(&path).unwrap();
    assert_same_as_etcdctl(&status, &f.member_db_status);
    assert_eq!(status.integrity, Integrity::Absent);
    assert!(status.total_size <= status.file_size, "{status:?}");
    assert_eq!(status.sha256, sha256sum(&path));
}

#[test]
fn stripped_trailer_reads_as_absent_with_the_same_status() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "stripped.db", &f.snapshot[..f.snapshot.len() - 32]);

    let status = inspect(&path).unwrap();
    assert_same_as_etcdctl(&status, &f.snapshot_status);
    assert_eq!(status.integrity, Integrity::Absent);
    assert_eq!(status.file_size, status.total_size);
}

#[test]
fn flipped_byte_is_an_integrity_mismatch() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = f.snapshot.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let path = write(&dir, "flipped.db", &bytes);

    let err = inspect(&path).unwrap_err();
    match &err {
        SnapshotFileError::IntegrityMismatch {
            path: named,
            expected,
            actual,
        } => {
            assert_eq!(named, &path);
            assert_ne!(expected, actual);
            assert_eq!(expected, &hex(&f.snapshot[f.snapshot.len() - 32..]));
        }
        other => panic!("expected an integrity mismatch, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    // etcd's own restore refuses the same file for the same reason.
    let restore_dir = dir.path().join("restored");
    let mut cmd = etcdctl_command(&["snapshot", "restore"]);
    let out = support::hang_guard::output_within(
        cmd.arg(&path)
            .arg(format!("--data-dir={}", restore_dir.display())),
        LIMIT,
    );
    assert!(!out.status.success(), "etcdctl restored a damaged snapshot");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected sha256"),
        "{out:?}"
    );
}

#[test]
fn truncated_snapshot_is_an_error() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let len = f.snapshot.len();
    let db_len = len - 32;
    let lengths = [
        0,
        1,
        16,
        79,
        80,
        4096,
        4096 + 32,
        8192,
        8192 + 100,
        len / 2,
        db_len - 4096,
        db_len - 4096 + 32,
        db_len - 1,
        len - 1,
    ];
    for cut in lengths {
        let path = write(&dir, &format!("cut-{cut}.db"), &f.snapshot[..cut]);
        let err = inspect(&path).expect_err(&format!("{cut} bytes of {len} passed"));
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{cut}: {err}"
        );
        if cut == 0 {
            assert!(matches!(err, SnapshotFileError::Empty { .. }), "{err:?}");
        }
    }
}

#[test]
fn not_a_file_and_missing_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = inspect(dir.path()).unwrap_err();
    assert!(matches!(err, SnapshotFileError::NotAFile { .. }), "{err:?}");
    let err = inspect(&dir.path().join("missing.db")).unwrap_err();
    assert!(matches!(err, SnapshotFileError::Read { .. }), "{err:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
