//! A real two-member etcd cluster (Debian's etcd-server) on loopback, run with the generated
//! server and peer certificates and client-certificate auth on both ports; `etcdctl endpoint
//! health` with the generated healthcheck-client certificate. A client certificate from another
//! CA, or none, is refused.

mod pki_support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

use kinit::pki::{Mode, generate};
use pki_support::{STACKED, cluster, inventory};

/// Kills the etcd it owns, by PID, when the test ends however it ends.
struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcdctl(
    endpoints: &str,
    ca: &Path,
    cert: Option<(&Path, &Path)>,
    args: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg(format!("--cacert={}", ca.display()))
        .arg("--dial-timeout=2s")
        .arg("--command-timeout=3s");
    if let Some((crt, key)) = cert {
        cmd.arg(format!("--cert={}", crt.display()))
            .arg(format!("--key={}", key.display()));
    }
    let out = cmd.args(args).output().expect("etcdctl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn etcd_runs_with_generated_certificates_and_refuses_foreign_clients() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let inv = inventory(&c.config);
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let members = ["cp1", "cp2"];
    let ports: Vec<(u16, u16)> = members.iter().map(|_| (free_port(), free_port())).collect();
    let initial: Vec<String> = members
        .iter()
        .zip(&ports)
        .map(|(m, (_, peer))| format!("{m}=https://127.0.0.1:{peer}"))
        .collect();
    let mut running = Vec::new();
    for (m, (client, peer)) in members.iter().zip(&ports) {
        let pki = inv
            .pki_dir
            .join(format!("hosts/{m}/etc/kubernetes/pki/etcd"));
        let child = pki_support::etcd_command(
            m,
            &data.path().join(m),
            &format!("https://127.0.0.1:{client}"),
            &format!("https://127.0.0.1:{peer}"),
            &initial.join(","),
            &pki,
        )
        .spawn()
        .expect("etcd is installed");
        running.push(Etcd(child));
    }
    let endpoints = ports
        .iter()
        .map(|(client, _)| format!("https://127.0.0.1:{client}"))
        .collect::<Vec<_>>()
        .join(",");
    // The healthcheck client, as a host would have it (etcd host cp3's copy).
    let cp3 = inv.pki_dir.join("hosts/cp3/etc/kubernetes/pki/etcd");
    let ca = cp3.join("ca.crt");
    let hc = (
        cp3.join("healthcheck-client.crt"),
        cp3.join("healthcheck-client.key"),
    );
    let started = Instant::now();
    let (healthy, last) = loop {
        let (ok, out) = etcdctl(
            &endpoints,
            &ca,
            Some((&hc.0, &hc.1)),
            &["endpoint", "health"],
        );
        if ok || started.elapsed() > Duration::from_secs(40) {
            break (ok, out);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(healthy, "etcd never became healthy: {last}");
    assert_eq!(last.matches("is healthy").count(), 2, "{last}");
    // The peers found each other over mTLS with the peer certificates.
    let (ok, members_out) = etcdctl(&endpoints, &ca, Some((&hc.0, &hc.1)), &["member", "list"]);
    assert!(
        ok && members_out.contains("cp1") && members_out.contains("cp2"),
        "{members_out}"
    );
    // The apiserver's etcd client works too.
    let apiserver = inv.pki_dir.join("hosts/cp1/etc/kubernetes/pki");
    let (ok, out) = etcdctl(
        &endpoints,
        &ca,
        Some((
            &apiserver.join("apiserver-etcd-client.crt"),
            &apiserver.join("apiserver-etcd-client.key"),
        )),
        &["put", "/kinit", "ok"],
    );
    assert!(ok, "{out}");

    // A healthcheck-client certificate from another cluster's etcd CA is refused...
    let other = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let other_inv = inventory(&other.config);
    generate(&other_inv, &Mode::Generate, SystemTime::now()).unwrap();
    let foreign = other_inv.pki_dir.join("etcd");
    let (ok, out) = etcdctl(
        &endpoints,
        &ca,
        Some((
            &foreign.join("healthcheck-client.crt"),
            &foreign.join("healthcheck-client.key"),
        )),
        &["endpoint", "health"],
    );
    assert!(!ok, "a foreign client certificate was accepted: {out}");
    // ...and so is a client without a certificate.
    let (ok, out) = etcdctl(&endpoints, &ca, None, &["endpoint", "health"]);
    assert!(!ok, "a client without a certificate was accepted: {out}");
    drop(running);
}
