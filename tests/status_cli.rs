//! `kinit status` end to end: the binary, a cluster.yaml whose hosts are loopback addresses
//! served by a real sshd, the PKI from `kinit certs generate`, and a real 2-member etcd on
//! 127.0.0.1:2379 and 127.0.0.2:2379 started with that PKI. Needs root (throwaway login user).

mod support;

use std::process::Child;

use assert_cmd::Command;
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
metadata: {{name: status-test}}
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

/// Kills the etcd members it owns, by PID.
struct Etcd(Vec<Child>);

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_etcd(dir: &std::path::Path) -> Etcd {
    let members = [("cp1", "127.0.0.1"), ("cp2", "127.0.0.2")];
    for (_, ip) in members {
        for port in [2379, 2380] {
            assert!(
                std::net::TcpListener::bind((ip, port)).is_ok(),
                "{ip}:{port} is in use on this machine; this test needs it free"
            );
        }
    }
    let initial = members
        .iter()
        .map(|(m, ip)| format!("{m}=https://{ip}:2380"))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for (m, ip) in members {
        let pki = dir.join(format!("pki/hosts/{m}/etc/kubernetes/pki/etcd"));
        children.push(
            support::pki::etcd_command(
                m,
                &dir.join(format!("etcd-{m}")),
                &format!("https://{ip}:2379"),
                &format!("https://{ip}:2380"),
                &initial,
                &pki,
            )
            .spawn()
            .expect("etcd is installed"),
        );
    }
    Etcd(children)
}

#[test]
fn status_over_ssh_and_mtls() {
    let dir = temp_dir();
    let user = TestUser::create(dir.path(), SudoRights::Passwordless);
    let key = client_key(dir.path(), "id_ed25519", "ed25519", "");
    // w1 (127.0.0.3) has no sshd: it must show as unreachable while the rest is reported.
    let sshd = Sshd::start(dir.path(), &[(&user.name, &key.public)], &["127.0.0.2"]);
    let known_hosts = dir.path().join("known_hosts");
    let config = dir.path().join("cluster.yaml");
    std::fs::write(
        &config,
        cluster_yaml(sshd.port, &user.name, &key.private, &known_hosts),
    )
    .unwrap();
    let kinit = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kinit"));
        cmd.arg("-c")
            .arg(&config)
            .args(args)
            .env("HOME", dir.path())
            .env_remove("SSH_AUTH_SOCK")
            .env("NO_COLOR", "1");
        support::hang_guard::output_within(&mut cmd, support::hang_guard::kinit_limit(args))
    };
    let json = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };

    // Read-only and strict: unknown host keys are refused, not learned.
    let out = kinit(&["-o", "json", "status", "--timeout", "3"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    assert_eq!(doc["healthy"], false);
    assert_eq!(doc["hosts"][0]["reachable"], false);
    assert!(
        doc["hosts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("unknown host key"),
        "{doc}"
    );
    // No PKI yet: etcd cannot be asked, and the status says how to fix that.
    assert!(
        doc["etcd"]["error"]
            .as_str()
            .unwrap()
            .contains("kinit certs generate"),
        "{doc}"
    );
    assert!(!known_hosts.exists() || std::fs::read_to_string(&known_hosts).unwrap().is_empty());

    // Learn the keys the way an operator would, build the PKI, start etcd with it.
    let out = kinit(&[
        "exec",
        "--accept-new-host-keys",
        "--hosts",
        "cp1,cp2",
        "--",
        "true",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = kinit(&["certs", "generate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _etcd = start_etcd(dir.path());

    // etcd needs a moment to elect a leader: ask until both members are healthy.
    let started = std::time::Instant::now();
    let doc = loop {
        let doc = json(&kinit(&["-o", "json", "status", "--timeout", "3"]));
        let members = doc["etcd"]["members"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if (members.len() == 2 && members.iter().all(|m| m["healthy"] == true))
            || started.elapsed() > std::time::Duration::from_secs(40)
        {
            break doc;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let members = doc["etcd"]["members"].as_array().unwrap();
    assert!(members.iter().all(|m| m["healthy"] == true), "{doc}");
    assert_eq!(
        members.iter().filter(|m| m["leader"] == true).count(),
        1,
        "{doc}"
    );
    assert_eq!(members[1]["endpoint"], "https://127.0.0.2:2379");
    assert_eq!(doc["etcd"]["missingFromList"], serde_json::json!([]));
    assert!(doc["etcd"]["listedBy"].is_string(), "{doc}");

    // Both control-plane hosts answered the probe over SSH; w1 did not.
    let hosts = doc["hosts"].as_array().unwrap();
    for h in &hosts[..2] {
        assert_eq!(h["reachable"], true, "{h}");
        let units: Vec<&str> = h["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        // No kubelet expected: the config's bundle holds none for `kinit up` to start.
        assert_eq!(units, ["etcd", "haproxy", "keepalived"], "{h}");
        // This machine does not carry the test VIP.
        assert_eq!(h["holdsVip"], false, "{h}");
        assert!(h["haproxy"].is_object(), "{h}");
    }
    assert_eq!(hosts[2]["reachable"], false);
    assert_eq!(doc["vip"]["holders"], serde_json::json!([]));
    let problems: Vec<&str> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems.contains(&"the VIP 127.0.0.100 is held by no host"),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("w1 is unreachable")),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.starts_with("etcd")),
        "{problems:?}"
    );
    assert_eq!(doc["certificates"]["missing"], serde_json::json!([]));

    // The text form says the same for people.
    let out = kinit(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cluster status-test: DEGRADED"), "{text}");
    assert!(text.contains("member list from"), "{text}");
    assert!(text.contains("VIP 127.0.0.100 held by NO host"), "{text}");

    // A config that does not exist is a usage error.
    let mut cmd = Command::cargo_bin("kinit").unwrap();
    let out = cmd
        .args(["-c", "/nonexistent/cluster.yaml", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
