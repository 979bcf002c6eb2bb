//! Shared by the PKI tests: a cluster.yaml in a temp dir and its inventory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kinit::inventory::Inventory;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// `hosts`: `(name, address, roles)`.
pub fn cluster(
    topology: &str,
    algorithm: &str,
    hosts: &[(&str, &str, &str)],
    extra_sans: &[&str],
) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.yaml");
    write_config(&config, topology, algorithm, hosts, extra_sans);
    Cluster { dir, config }
}

pub fn write_config(
    path: &Path,
    topology: &str,
    algorithm: &str,
    hosts: &[(&str, &str, &str)],
    extra_sans: &[&str],
) {
    let mut yaml = format!(
        "apiVersion: kinit.io/v1alpha1\nkind: Cluster\nmetadata: {{name: demo}}\nspec:\n  topology: {topology}\n  kubernetesVersion: v1.31.4\n  controlPlaneEndpoint: {{address: 192.168.9.100, port: 8443}}\n  pki: {{dir: ./pki, keyAlgorithm: {algorithm}, extraSANs: [{}]}}\n  hosts:\n",
        extra_sans.join(", ")
    );
    for (name, address, roles) in hosts {
        yaml.push_str(&format!(
            "    - {{name: {name}, address: {address}, roles: [{roles}]}}\n"
        ));
    }
    std::fs::write(path, yaml).unwrap();
}

pub fn inventory(config: &Path) -> Inventory {
    let loaded = kinit::config::load(config).unwrap_or_else(|e| panic!("{e}"));
    Inventory::from_config(&loaded.config, config.parent().unwrap(), None).unwrap()
}

pub const STACKED: &[(&str, &str, &str)] = &[
    ("cp1", "192.168.9.11", "control-plane, etcd"),
    ("cp2", "192.168.9.12", "control-plane, etcd"),
    ("cp3", "192.168.9.13", "control-plane, etcd"),
    ("w1", "192.168.9.21", "worker"),
];

/// sha256 of every file under `dir`, by relative path (uses sha256sum, not kinit code).
pub fn hashes(dir: &Path) -> BTreeMap<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -type f -print0 | sort -z | xargs -0 sha256sum")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (hash, path) = l.split_once("  ").unwrap();
            (path.trim_start_matches("./").to_string(), hash.to_string())
        })
        .collect()
}

/// Run openssl; returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Debian's etcd as member `name`, serving `client_url` and `peer_url` (both https) with the
/// certificates kinit generated for it (`pki_etcd_dir` = the host tree's `pki/etcd`), client
/// certificates required on both ports. Output discarded; the caller spawns it.
pub fn etcd_command(
    name: &str,
    data_dir: &Path,
    client_url: &str,
    peer_url: &str,
    initial_cluster: &str,
    pki_etcd_dir: &Path,
) -> Command {
    let f = |file: &str| pki_etcd_dir.join(file).display().to_string();
    let mut cmd = Command::new("etcd");
    cmd.arg(format!("--name={name}"))
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster={initial_cluster}"))
        .arg("--initial-cluster-state=new")
        .arg(format!("--cert-file={}", f("server.crt")))
        .arg(format!("--key-file={}", f("server.key")))
        .arg("--client-cert-auth=true")
        .arg(format!("--trusted-ca-file={}", f("ca.crt")))
        .arg(format!("--peer-cert-file={}", f("peer.crt")))
        .arg(format!("--peer-key-file={}", f("peer.key")))
        .arg("--peer-client-cert-auth=true")
        .arg(format!("--peer-trusted-ca-file={}", f("ca.crt")))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}
