//! `kinit exec` end to end: the binary, a cluster.yaml, and a real sshd on loopback addresses.

mod support;

use std::process::Command;
use support::sshd::*;

fn cluster_yaml(
    port: u16,
    user: &str,
    key: &std::path::Path,
    known_hosts: &std::path::Path,
) -> String {
    format!(
        r#"apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata: {{name: exec-test}}
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {{address: 127.0.0.100, port: 8443}}
  ssh: {{user: {user}, port: {port}, identityFile: {key}, knownHosts: {kh}}}
  hosts:
    - {{name: cp1, address: 127.0.0.1, roles: [control-plane, etcd]}}
    - {{name: cp2, address: 127.0.0.2, roles: [control-plane, etcd]}}
    - {{name: w1, address: 127.0.0.3, roles: [worker]}}
"#,
        key = key.display(),
        kh = known_hosts.display()
    )
}

#[test]
fn exec_runs_on_selected_hosts_and_summarises() {
    let dir = temp_dir();
    let user = TestUser::create(dir.path(), SudoRights::Passwordless);
    let key = client_key(dir.path(), "id_ed25519", "ed25519", "");
    let sshd = Sshd::start(
        dir.path(),
        &[(&user.name, &key.public)],
        &["127.0.0.2", "127.0.0.3"],
    );
    let known_hosts = dir.path().join("known_hosts");
    let config = dir.path().join("cluster.yaml");
    std::fs::write(
        &config,
        cluster_yaml(sshd.port, &user.name, &key.private, &known_hosts),
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
            .env("NO_COLOR", "1");
        support::hang_guard::output_within(&mut cmd, support::hang_guard::kinit_limit(args))
    };

    // Strict by default: nothing is known yet.
    let out = kinit(&["exec", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("unknown host key"), "{stdout}");
    assert!(stdout.contains("--accept-new-host-keys"), "{stdout}");

    let out = kinit(&[
        "exec",
        "--accept-new-host-keys",
        "--hosts",
        "etcd",
        "--",
        "id -u;",
        "echo",
        "from",
        "kinit",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("=== cp1 (127.0.0.1): exit 0\n0\nfrom kinit\n"),
        "{stdout}"
    );
    assert!(stdout.contains("=== cp2 (127.0.0.2): exit 0\n"), "{stdout}");
    assert!(!stdout.contains("w1"), "{stdout}");
    assert!(
        stderr.contains("2 hosts: 2 succeeded, 0 failed"),
        "{stderr}"
    );

    // One failing host: the others still run, exit 1, summarised.
    let out = kinit(&[
        "exec",
        "--no-sudo",
        "--accept-new-host-keys",
        "--",
        "case \"$SSH_CONNECTION\" in *' 127.0.0.2 '*) exit 3;; esac; echo ok >&2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("=== cp2 (127.0.0.2): exit 3"), "{stdout}");
    assert!(
        stdout.contains("=== w1 (127.0.0.3): exit 0\nstderr: ok"),
        "{stdout}"
    );
    assert!(
        stderr.contains("3 hosts: 2 succeeded, 1 failed (cp2: exit 3)"),
        "{stderr}"
    );

    // JSON for programs.
    let out = kinit(&["-o", "json", "exec", "--hosts", "w1", "--", "echo hi"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["succeeded"], true);
    assert_eq!(doc["hosts"][0]["stdout"], "hi\n");

    // A selector that names nothing is a usage error.
    let out = kinit(&["exec", "--hosts", "cp9", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`cp9` is neither a host nor a role"));
}

#[test]
fn ctrl_c_stops_every_host_and_exits_130() {
    let dir = temp_dir();
    let user = TestUser::create(dir.path(), SudoRights::Passwordless);
    let key = client_key(dir.path(), "id_ed25519", "ed25519", "");
    let sshd = Sshd::start(
        dir.path(),
        &[(&user.name, &key.public)],
        &["127.0.0.2", "127.0.0.3"],
    );
    let known_hosts = dir.path().join("known_hosts");
    let config = dir.path().join("cluster.yaml");
    std::fs::write(
        &config,
        cluster_yaml(sshd.port, &user.name, &key.private, &known_hosts),
    )
    .unwrap();
    // As root through sudo (the default), and as the login user.
    for (round, extra) in [&[][..], &["--no-sudo"][..]].into_iter().enumerate() {
        let marker = format!("2{}.{round}5", std::process::id());
        let child = support::hang_guard::spawn_guarded(
            Command::new(env!("CARGO_BIN_EXE_kinit"))
                .arg("-c")
                .arg(&config)
                .args(["exec", "--accept-new-host-keys"])
                .args(extra)
                .args(["--", &format!("sleep {marker}")])
                .env("HOME", dir.path())
                .env_remove("SSH_AUTH_SOCK")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        );
        let watchdog =
            support::hang_guard::Watchdog::arm(&child, support::hang_guard::kinit_limit(&["exec"]));
        let running = || {
            let out = std::process::Command::new("pgrep")
                .args(["-c", "-f", &format!("^sleep {marker}")])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while running() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(running(), 3, "the command runs on all three hosts");
        run(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]));
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !watchdog.disarm(),
            "hung: kinit exec ignored Ctrl-C\n{stderr}"
        );
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while running() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(running(), 0, "the remote commands were stopped ({extra:?})");
    }
}

#[test]
fn exec_goes_through_the_configured_bastion() {
    let dir = temp_dir();
    let user = TestUser::create(dir.path(), SudoRights::None);
    let key = client_key(dir.path(), "id_ed25519", "ed25519", "");
    let sshd = Sshd::start(
        dir.path(),
        &[(&user.name, &key.public)],
        &["127.0.0.2", "127.0.0.3"],
    );
    let jump = Sshd::start(dir.path(), &[(&user.name, &key.public)], &[]);
    let known_hosts = dir.path().join("known_hosts");
    let config = dir.path().join("cluster.yaml");
    let with_bastion = |port: u16| {
        cluster_yaml(sshd.port, &user.name, &key.private, &known_hosts).replace(
            "}\n  hosts:",
            &format!(", bastion: {{address: 127.0.0.1, port: {port}}}}}\n  hosts:"),
        )
    };
    let kinit = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinit"));
        cmd.arg("-c")
            .arg(&config)
            .args(["exec", "--no-sudo", "--accept-new-host-keys", "--"])
            .arg("echo ${SSH_CONNECTION%% *}")
            .env("HOME", dir.path())
            .env_remove("SSH_AUTH_SOCK");
        support::hang_guard::output_within(&mut cmd, support::hang_guard::kinit_limit(&["exec"]))
    };
    // A bastion nobody answers on: every host fails, so the hosts are not reached directly.
    std::fs::write(&config, with_bastion(free_port())).unwrap();
    let out = kinit();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.matches("through bastion 127.0.0.1:").count(),
        3,
        "{stdout}"
    );

    let yaml = with_bastion(jump.port);
    assert!(yaml.contains("bastion"), "{yaml}");
    std::fs::write(&config, yaml).unwrap();
    let out = kinit();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every host answered, and the bastion's key was learned next to the hosts'.
    assert_eq!(
        stdout.matches(": exit 0\n127.0.0.1\n").count(),
        3,
        "{stdout}"
    );
    let known = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(known.contains(&jump.known_hosts_line()), "{known}");
    assert_eq!(known.lines().count(), 4, "{known}");
}
