//! A real two-member etcd cluster (Debian's etcd-server) on loopback, run with the generated
//! server and peer certificates and client-certificate auth on both ports; `etcdctl endpoint
//! health` with the generated healthcheck-client certificate. A client certificate from another
//! CA, or none, is refused.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use kinit::pki::{Mode, generate};
use support::pki::{STACKED, cluster, inventory};

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
    // Started with the generated member certificates; healthy by etcd's own etcdctl.
    let etcd = support::etcd::start(&["cp1", "cp2"]);
    let inv = &etcd.inventory;
    let endpoints = etcd.endpoints().join(",");
    // The healthcheck client, as a host would have it (etcd host cp3's copy).
    let cp3 = inv.pki_dir.join("hosts/cp3/etc/kubernetes/pki/etcd");
    let ca = cp3.join("ca.crt");
    let hc = (
        cp3.join("healthcheck-client.crt"),
        cp3.join("healthcheck-client.key"),
    );
    let (healthy, last) = etcdctl(
        &endpoints,
        &ca,
        Some((&hc.0, &hc.1)),
        &["endpoint", "health"],
    );
    assert!(healthy, "the healthcheck client is refused: {last}");
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
}
