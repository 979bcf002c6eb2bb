//! A real etcd cluster (Debian's etcd-server) on loopback, run with the certificates kinit
//! generated: server and peer certificates per member, client-certificate auth on both ports.
//! Every process is killed by PID when the cluster is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

use kinit::inventory::Inventory;
use kinit::pki::{Mode, generate};

use super::pki;

pub struct EtcdMember {
    pub name: String,
    /// `https://127.0.0.1:PORT`
    pub client_url: String,
    child: Option<Child>,
}

pub struct EtcdCluster {
    /// The cluster.yaml dir (holds the PKI); kept alive with the cluster.
    pub cluster: pki::Cluster,
    pub inventory: Inventory,
    pub members: Vec<EtcdMember>,
    _data: tempfile::TempDir,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.stop();
        }
    }
}

impl EtcdMember {
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub use super::free_port;

impl EtcdCluster {
    pub fn pki_dir(&self) -> PathBuf {
        self.inventory.pki_dir.clone()
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// The operator's etcd client credentials: (ca, cert, key) PEM.
    pub fn operator_credentials(&self) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        read_credentials(&self.pki_dir())
    }
}

pub fn read_credentials(pki: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let r = |f: &str| std::fs::read(pki.join(f)).unwrap();
    (
        r("etcd/ca.crt"),
        r("etcd/healthcheck-client.crt"),
        r("etcd/healthcheck-client.key"),
    )
}

/// A fresh PKI for the stacked test cluster (cp1..cp3 with etcd), in its own temp dir.
pub fn fresh_pki() -> (pki::Cluster, Inventory) {
    let c = pki::cluster("stacked", "ecdsa-p256", pki::STACKED, &[]);
    let inv = pki::inventory(&c.config);
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    (c, inv)
}

/// Start etcd for the inventory's members `names` on loopback and wait until `etcdctl endpoint
/// health` (etcd's own client, not kinit's) reports every member healthy.
pub fn start(names: &[&str]) -> EtcdCluster {
    let (cluster, inventory) = fresh_pki();
    let data = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = names.iter().map(|_| (free_port(), free_port())).collect();
    let initial: Vec<String> = names
        .iter()
        .zip(&ports)
        .map(|(m, (_, peer))| format!("{m}=https://127.0.0.1:{peer}"))
        .collect();
    let mut members = Vec::new();
    for (m, (client, peer)) in names.iter().zip(&ports) {
        let pki = inventory
            .pki_dir
            .join(format!("hosts/{m}/etc/kubernetes/pki/etcd"));
        let child = pki::etcd_command(
            m,
            &data.path().join(m),
            &format!("https://127.0.0.1:{client}"),
            &format!("https://127.0.0.1:{peer}"),
            &initial.join(","),
            &pki,
        )
        .spawn()
        .expect("etcd is installed (apt-get install etcd-server)");
        members.push(EtcdMember {
            name: m.to_string(),
            client_url: format!("https://127.0.0.1:{client}"),
            child: Some(child),
        });
    }
    let cluster = EtcdCluster {
        cluster,
        inventory,
        members,
        _data: data,
    };
    wait_healthy(&cluster);
    cluster
}

fn wait_healthy(c: &EtcdCluster) {
    let pki = c.pki_dir();
    let started = Instant::now();
    loop {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", c.endpoints().join(",")))
            .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
            .arg(format!(
                "--cert={}",
                pki.join("etcd/healthcheck-client.crt").display()
            ))
            .arg(format!(
                "--key={}",
                pki.join("etcd/healthcheck-client.key").display()
            ))
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=3s")
            .args(["endpoint", "health"])
            .output()
            .expect("etcdctl is installed (apt-get install etcd-client)");
        if out.status.success() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "etcd never became healthy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
