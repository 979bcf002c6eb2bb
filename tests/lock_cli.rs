//! The cluster lock across the commands that change hosts, against the binary and a real OpenSSH
//! sshd on loopback (see tests/support): `remove`, `etcd snapshot restore` and `reset` are refused while a
//! running `kinit up` holds the lock, naming it, and change nothing; SIGTERM during that up's
//! phase wait stops it with 143 and the lock released; `up`, `remove` and `restore` are refused
//! while another operator's `remove` holds the lock, and `--break-lock` takes it.
//!
//! The lock is this machine's /run/kinit/up.lock (the sshd runs here), so the tests take turns.
//! The sshd runs in a mount namespace of its own where /etc and /var/lib are overlays: what an
//! `up` or a `remove` writes there (the kubelet's config, an apiserver manifest) never reaches
//! this machine, and the test reads it through /proc/<sshd>/root.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use kinit::engine::lock::LockOwner;
use support::sshd::*;

const LOCK: &str = "/run/kinit/up.lock";
/// Hang guards, never speed targets.
const LIMIT: Duration = Duration::from_secs(120);

/// One test at a time holds this machine's lock directory.
static TURNS: Mutex<()> = Mutex::new(());

/// Field order is drop order: the sshd (and its namespace) first, then the user, then the files.
struct Setup {
    sshd: Sshd,
    _user: TestUser,
    dir: tempfile::TempDir,
    /// One control plane with etcd on 127.0.0.1: for `up` and `restore`.
    one_host: PathBuf,
    /// External etcd: cp1 (127.0.0.1), cp2 (127.0.0.2, never contacted: `--unreachable`) and
    /// etcd1, the endpoint an external load balancer: removing cp2 contacts cp1 only.
    two_planes: PathBuf,
    /// Its `up.yaml`: the kubelet's phase (its config only: the bundle has no kubelet), then a
    /// wait for a port nothing listens on, for ten minutes.
    playbooks: PathBuf,
    snapshot: PathBuf,
    data_dir: PathBuf,
}

fn setup() -> Setup {
    let dir = temp_dir();
    let user = TestUser::create(dir.path(), SudoRights::Passwordless);
    let key = client_key(dir.path(), "id_ed25519", "ed25519", "");
    let sshd = Sshd::start_sandboxed(
        dir.path(),
        &[(&user.name, &key.public)],
        &["/etc", "/var/lib"],
    );
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let ssh = format!(
        "{{user: {}, port: {}, identityFile: {}, knownHosts: {}}}",
        user.name,
        sshd.port,
        key.private.display(),
        known_hosts.display()
    );
    let data_dir = dir.path().join("etcd-data");
    // etcd's member, and a file that is not etcd's: a restore that got past the lock would
    // refuse here (before changing anything), never move it.
    std::fs::create_dir_all(data_dir.join("member/snap")).unwrap();
    std::fs::write(data_dir.join("notes.txt"), "not etcd's\n").unwrap();
    let one_host = dir.path().join("one-host.yaml");
    std::fs::write(
        &one_host,
        format!(
            r#"apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata: {{name: lock-test}}
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {{address: 127.0.0.100, port: 8443}}
  etcd: {{dataDir: {data}}}
  ssh: {ssh}
  pki: {{dir: {pki}}}
  hosts:
    - {{name: cp1, address: 127.0.0.1, roles: [control-plane, etcd]}}
"#,
            data = data_dir.display(),
            pki = dir.path().join("pki").display(),
        ),
    )
    .unwrap();
    let two_planes = dir.path().join("two-planes.yaml");
    std::fs::write(
        &two_planes,
        format!(
            r#"apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata: {{name: lock-test-external}}
spec:
  topology: external
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {{address: 127.0.0.100, port: 8443, loadBalancer: external}}
  ssh: {ssh}
  pki: {{dir: {pki}}}
  hosts:
    - {{name: cp1, address: 127.0.0.1, roles: [control-plane]}}
    - {{name: cp2, address: 127.0.0.2, roles: [control-plane]}}
    - {{name: etcd1, address: 127.0.0.3, roles: [etcd]}}
"#,
            pki = dir.path().join("pki-external").display(),
        ),
    )
    .unwrap();
    let playbooks = dir.path().join("playbooks");
    std::fs::create_dir_all(&playbooks).unwrap();
    std::fs::write(
        playbooks.join("up.yaml"),
        format!(
            r#"name: up
phases:
  - name: node
    title: The kubelet's config, then a wait that never holds
    converge: [kubelet]
    wait:
      - tcp: {{port: {port}, timeout: 10m}}
"#,
            port = free_port()
        ),
    )
    .unwrap();
    let snapshot = dir.path().join("snapshot.db");
    std::fs::write(&snapshot, snapshot_bytes()).unwrap();
    let s = Setup {
        sshd,
        _user: user,
        dir,
        one_host,
        two_planes,
        playbooks,
        snapshot,
        data_dir,
    };
    for config in [&s.one_host, &s.two_planes] {
        let out = s.kinit(config, &["certs", "generate"]);
        assert!(out.status.success(), "certs generate: {out:?}");
    }
    s
}

impl Setup {
    fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinit"));
        cmd.arg("-c")
            .arg(config)
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("KINIT_SUDO_PASSWORD")
            .env_remove("KINIT_CONFIG")
            .env("NO_COLOR", "1");
        cmd
    }

    fn kinit(&self, config: &Path, args: &[&str]) -> Output {
        support::hang_guard::output_within(&mut self.command(config, args), LIMIT)
    }

    fn up_args(&self) -> Vec<String> {
        vec![
            "up".into(),
            "--playbooks".into(),
            self.playbooks.display().to_string(),
        ]
    }

    fn remove(&self, extra: &[&str]) -> Output {
        let mut args = vec!["remove", "cp2", "--unreachable", "--yes"];
        args.extend_from_slice(extra);
        self.kinit(&self.two_planes, &args)
    }

    fn restore(&self) -> Output {
        let file = self.snapshot.display().to_string();
        self.kinit(
            &self.one_host,
            &["etcd", "snapshot", "restore", &file, "--yes"],
        )
    }

    /// What could change on a host or here: the files under etcd's data dir, the PKI's cluster
    /// token, the files the commands would write (in the sshd's namespace).
    fn state(&self) -> Vec<String> {
        let mut out = Vec::new();
        for entry in walk(&self.data_dir) {
            out.push(entry.display().to_string());
        }
        for p in [
            self.dir.path().join("pki/etcd/cluster-token"),
            self.dir.path().join("pki-external/etcd/cluster-token"),
        ] {
            out.push(format!("{}: {:?}", p.display(), std::fs::read(&p).ok()));
        }
        for p in [
            "/var/lib/kubelet/config.yaml",
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "/var/lib/kinit/pending",
        ] {
            out.push(format!("{p}: {}", self.sshd.in_namespace(p).exists()));
        }
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        out.push(d.clone());
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                todo.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn lock_owner() -> Option<LockOwner> {
    LockOwner::parse(&std::fs::read_to_string(Path::new(LOCK).join("owner")).ok()?)
}

/// Before a test: no lock here (another kinit, or a test that failed to clean up).
fn no_lock_here() {
    assert!(
        !Path::new(LOCK).exists(),
        "{LOCK} exists: another kinit holds this machine's lock"
    );
}

/// Removes the lock a test planted or left, if it is still that one, however the test ends.
struct LockCleanup(String);

impl Drop for LockCleanup {
    fn drop(&mut self) {
        if let Ok(owner) = std::fs::read_to_string(Path::new(LOCK).join("owner"))
            && owner.trim() == self.0
        {
            let _ = std::fs::remove_dir_all(LOCK);
        }
    }
}

/// `kinit up` running in the background: its JSON events as they come.
struct RunningUp {
    child: Option<Child>,
    events: mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
    stderr: PathBuf,
}

impl RunningUp {
    fn start(s: &Setup) -> RunningUp {
        let stderr = s.dir.path().join("up.stderr");
        let mut cmd = s.command(&s.one_host, &[]);
        cmd.args(["-o", "json"])
            .args(s.up_args())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = support::hang_guard::spawn_guarded(&mut cmd);
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "line": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        RunningUp {
            child: Some(child),
            events,
            seen: Vec::new(),
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Until an event matches (panics with what it saw when up ends or the guard passes).
    fn wait_for(&mut self, what: &str, matches: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    let hit = matches(&event);
                    self.seen.push(event);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "kinit up: no {what}; events: {:?}; stderr: {}",
                    self.seen,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }

    /// Signal it and wait for it: its exit code, and how long it took from the signal.
    fn stop(&mut self, signal: libc::c_int) -> (Option<i32>, Duration) {
        let child = self.child.take().unwrap();
        let watchdog = support::hang_guard::Watchdog::arm(&child, LIMIT);
        let sent = Instant::now();
        // SAFETY: kill(2) on our own child's pid, not yet waited for.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let mut child = child;
        let status = child.wait().unwrap();
        let took = sent.elapsed();
        assert!(!watchdog.disarm(), "kinit up did not stop after the signal");
        // Up to the end of its output.
        self.seen.extend(self.events.iter());
        (status.code(), took)
    }
}

impl Drop for RunningUp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn is_event(e: &serde_json::Value, event: &str, phase: &str) -> bool {
    e["event"] == event && e["phase"] == phase
}

#[test]
fn remove_restore_and_reset_are_refused_while_up_holds_the_lock_and_sigterm_stops_its_wait() {
    let _turn = TURNS.lock().unwrap_or_else(|p| p.into_inner());
    no_lock_here();
    let s = setup();
    let before = s.state();

    let mut up = RunningUp::start(&s);
    let pid = up.pid();
    // The phase's only host step done: up is in the phase's wait, which never holds.
    up.wait_for("files step of the node phase", |e| {
        is_event(e, "step-finished", "node") && e["step"] == "files"
    });
    let holder = lock_owner().expect("up holds the lock");
    assert_eq!(holder.pid, pid);
    assert_eq!(holder.command, "up");
    assert!(
        s.sshd.in_namespace("/var/lib/kubelet/config.yaml").exists(),
        "up wrote the kubelet's config in the sshd's namespace"
    );
    let _cleanup = LockCleanup(holder.line());
    let names = format!("locked by kinit up on {} (", holder.operator);
    let names_pid = format!("pid {pid}) since ");
    let during_up = s.state();

    let removed = s.remove(&[]);
    let out = text(&removed);
    assert_eq!(removed.status.code(), Some(1), "{out}");
    assert!(
        out.contains("the cluster lock was not taken, so nothing was changed")
            && out.contains(&names)
            && out.contains(&names_pid),
        "remove names the holder: {out}"
    );
    assert_eq!(lock_owner(), Some(holder.clone()), "remove left up's lock");

    let restored = s.restore();
    let out = text(&restored);
    assert_eq!(restored.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&names) && out.contains(&names_pid),
        "restore names the holder: {out}"
    );
    assert_eq!(lock_owner(), Some(holder.clone()), "restore left up's lock");

    // reset takes the lock on its hosts before it asks etcd anything.
    let reset = s.kinit(&s.one_host, &["reset", "--yes"]);
    let out = text(&reset);
    assert_eq!(reset.status.code(), Some(1), "{out}");
    assert!(
        out.contains("the cluster lock was not taken, so nothing was changed")
            && out.contains(&names)
            && out.contains(&names_pid),
        "reset names the holder: {out}"
    );
    assert_eq!(lock_owner(), Some(holder.clone()), "reset left up's lock");
    assert_eq!(s.state(), during_up, "none of them changed anything");

    // SIGTERM while up waits: it stops at once, with the lock released.
    let (code, took) = up.stop(libc::SIGTERM);
    let stderr = std::fs::read_to_string(&up.stderr).unwrap_or_default();
    eprintln!("kinit up: SIGTERM during the phase wait to exit: {took:?}");
    assert_eq!(code, Some(143), "{stderr} {:?}", up.seen);
    // The phase ended with the wait cut short: not passed, and no other failure reported.
    assert!(
        up.seen
            .iter()
            .any(|e| is_event(e, "phase-finished", "node") && e["ok"] == false),
        "the signal came during the wait: {:?}",
        up.seen
    );
    assert!(
        up.seen.iter().any(|e| e["event"] == "interrupted")
            && !up.seen.iter().any(|e| e["event"] == "failed"),
        "{:?}",
        up.seen
    );
    assert!(!Path::new(LOCK).exists(), "the lock was released: {stderr}");
    let after: Vec<String> = s.state();
    assert_ne!(before, after, "up had written the kubelet's config");
}

#[test]
fn another_operators_remove_holds_the_lock_until_it_is_broken() {
    let _turn = TURNS.lock().unwrap_or_else(|p| p.into_inner());
    no_lock_here();
    let s = setup();
    // A `kinit remove` of another machine, written as kinit writes its owner line.
    let remove = LockOwner {
        operator: "other-operator".into(),
        pid: 4242,
        since: 1_700_000_000,
        machine_id: "0123456789abcdef0123456789abcdef".into(),
        command: "remove".into(),
    };
    std::fs::create_dir_all(LOCK).unwrap();
    std::fs::write(
        Path::new(LOCK).join("owner"),
        format!("{}\n", remove.line()),
    )
    .unwrap();
    let _cleanup = LockCleanup(remove.line());
    let names = "locked by kinit remove on other-operator (machine-id \
                 0123456789abcdef0123456789abcdef, pid 4242) since 2023-11-14T22:13:20Z";
    let before = s.state();

    let args = s.up_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (what, out) in [
        ("up", s.kinit(&s.one_host, &args)),
        ("remove", s.remove(&[])),
        ("restore", s.restore()),
    ] {
        let out = text(&out);
        assert!(out.starts_with("exit Some(1)"), "{what}: {out}");
        assert!(
            out.contains(names) && out.contains("--break-lock"),
            "{what} names the holder and how to remove its lock: {out}"
        );
        assert_eq!(lock_owner(), Some(remove.clone()), "{what} left the lock");
        assert_eq!(s.state(), before, "{what} changed nothing");
    }

    // --break-lock: the removal runs (the apiserver manifest of the control plane that stays is
    // rendered without cp2), and its own lock is gone afterwards.
    let removed = s.remove(&["--break-lock"]);
    let out = text(&removed);
    assert_eq!(removed.status.code(), Some(0), "{out}");
    assert!(!Path::new(LOCK).exists(), "remove released its lock: {out}");
    assert!(
        s.sshd
            .in_namespace("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .exists(),
        "{out}"
    );
}

/// A snapshot `etcdctl snapshot save` took of a single-member etcd (Debian's etcd-server on
/// loopback, plain http), made once.
fn snapshot_bytes() -> &'static [u8] {
    static SNAPSHOT: OnceLock<Vec<u8>> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (
            format!("http://127.0.0.1:{}", free_port()),
            format!("http://127.0.0.1:{}", free_port()),
        );
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let mut etcd = Command::new("etcd");
        etcd.arg("--name=snap1")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=snap1={peer}"))
            .stdout(Stdio::null())
            .stderr(log);
        let mut etcd = support::hang_guard::spawn_guarded(&mut etcd);
        let etcdctl = |args: &[&str]| {
            let mut cmd = Command::new("etcdctl");
            cmd.env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={client}"))
                .args(args);
            support::hang_guard::output_within(&mut cmd, LIMIT)
        };
        let deadline = Instant::now() + LIMIT;
        while !etcdctl(&["put", "/registry/lock-test", "v"])
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "etcd never answered: {}",
                std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let file = dir.path().join("snapshot.db");
        let saved = etcdctl(&["snapshot", "save", &file.display().to_string()]);
        assert!(saved.status.success(), "{}", text(&saved));
        let _ = etcd.kill();
        let _ = etcd.wait();
        std::fs::read(&file).unwrap()
    })
}
