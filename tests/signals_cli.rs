//! SIGTERM and SIGHUP stop kinit the way Ctrl-C does: the binary, a cluster.yaml, and a real sshd
//! on loopback (see tests/support). The remote command is stopped, the lock released, and the
//! exit code is 128 + the signal's number.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::sshd::*;

fn cluster_yaml(port: u16, user: &str, key: &Path, known_hosts: &Path, pki: &Path) -> String {
    format!(
        r#"apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata: {{name: signal-test}}
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {{address: 127.0.0.100, port: 8443}}
  ssh: {{user: {user}, port: {port}, identityFile: {key}, knownHosts: {kh}}}
  pki: {{dir: {pki}}}
  hosts:
    - {{name: cp1, address: 127.0.0.1, roles: [control-plane, etcd]}}
"#,
        key = key.display(),
        kh = known_hosts.display(),
        pki = pki.display(),
    )
}

/// Processes on this machine (the test sshd's host) whose command line holds `pattern`.
fn processes_matching(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Signal `child` and wait for it (the hang guard's limit, never a speed target).
fn stop(child: Child, signal: libc::c_int) -> std::process::Output {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let watchdog = support::hang_guard::Watchdog::arm(&child, Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    assert!(!watchdog.disarm(), "kinit did not stop after the signal");
    out
}

#[test]
fn sigterm_and_sighup_stop_a_run_like_ctrl_c() {
    let dir = temp_dir();
    let user = TestUser::create(dir.path(), SudoRights::Passwordless);
    let key = client_key(dir.path(), "id_ed25519", "ed25519", "");
    let sshd = Sshd::start(dir.path(), &[(&user.name, &key.public)], &[]);
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let config = dir.path().join("cluster.yaml");
    let pki = dir.path().join("pki");
    std::fs::write(
        &config,
        cluster_yaml(sshd.port, &user.name, &key.private, &known_hosts, &pki),
    )
    .unwrap();
    let kinit = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinit"));
        cmd.arg("-c")
            .arg(&config)
            .args(args)
            .env("HOME", dir.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("KINIT_SUDO_PASSWORD")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        support::hang_guard::spawn_guarded(&mut cmd)
    };

    // `kinit exec` of a long command: the remote command goes with it.
    // Markers unique to this test process: a leftover of another run cannot be mistaken for ours.
    for (signal, code, marker) in [
        (
            libc::SIGTERM,
            143,
            format!("sleep 31{}", std::process::id()),
        ),
        (libc::SIGHUP, 129, format!("sleep 32{}", std::process::id())),
    ] {
        let child = kinit(&["exec", "--", &marker]);
        wait_until("the remote command starts", Duration::from_secs(30), || {
            !processes_matching(&format!("^{marker}$")).is_empty()
        });
        let out = stop(child, signal);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        wait_until(
            "the remote command is stopped",
            Duration::from_secs(10),
            || processes_matching(&marker).is_empty(),
        );
    }

    // `kinit up`: SIGTERM while it holds the lock on the host (taken, then the preflight runs).
    // The lock is this machine's /run/kinit/up.lock: the test sshd runs here.
    let lock = Path::new("/run/kinit/up.lock");
    assert!(!lock.exists(), "another kinit up holds {}", lock.display());
    let child = kinit(&["up", "--only-phase", "preflight"]);
    let pid = child.id();
    wait_until("kinit up takes the lock", Duration::from_secs(30), || {
        std::fs::read_to_string(lock.join("owner"))
            .is_ok_and(|o| o.split_whitespace().nth(1) == Some(&pid.to_string()))
    });
    let out = stop(child, libc::SIGTERM);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(!lock.exists(), "the lock was released: {stderr}");
}
