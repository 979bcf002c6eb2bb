use std::path::Path;

use super::*;
use crate::bundle::Bundle;
use crate::config::Topology;
use crate::config::template::{InitShape, render};

fn inventory(topology: Topology, etcd_mode: &str, time_servers: bool) -> Inventory {
    let mut text = render(InitShape {
        topology,
        control_planes: 2,
        workers: 1,
        etcd_hosts: 3,
    })
    .unwrap()
    .replace("mode: systemd", &format!("mode: {etcd_mode}"));
    if time_servers {
        text = text.replace("servers: []", "servers: [10.0.0.1]");
    }
    let (cfg, report) = crate::config::check(Path::new("c.yaml"), text);
    assert!(!report.has_errors(), "{report:?}");
    Inventory::from_config(&cfg.unwrap(), Path::new("/tmp"), None).unwrap()
}

/// A bundle that carries everything, so every unit the table can start is expected.
fn full_bundle() -> (tempfile::TempDir, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    let mut sums = String::new();
    for f in ["etcd", "etcdctl", "kubelet", "containerd"] {
        std::fs::write(dir.path().join(f), f).unwrap();
        sums.push_str(&format!("{}  {f}\n", crate::ssh::sha256_hex(f.as_bytes())));
    }
    std::fs::write(dir.path().join("SHA256SUMS"), sums).unwrap();
    let bundle = Bundle::open(Some(dir.path())).unwrap();
    (dir, bundle)
}

#[test]
fn reset_takes_every_file_binary_and_running_unit_the_table_puts_on_a_host() {
    let (_dir, bundle) = full_bundle();
    for topology in [Topology::Stacked, Topology::External] {
        for mode in ["systemd", "static-pod"] {
            let inv = inventory(topology, mode, false);
            for host in &inv.hosts {
                let plan = for_host(&inv, host, Path::new("/nonexistent"));
                let removed: Vec<&str> = plan
                    .manifests
                    .iter()
                    .chain(&plan.files)
                    .map(String::as_str)
                    .collect();
                for c in components::on_host(&inv, host) {
                    for f in c.files {
                        assert!(removed.contains(&f.path), "{}: {}", host.name, f.path);
                    }
                    for b in c.binaries {
                        assert!(removed.contains(&b.path), "{}: {}", host.name, b.path);
                    }
                }
                for u in components::units_running_on(&inv, host, &bundle) {
                    assert!(plan.units.contains(&u), "{}: unit {u}", host.name);
                }
                // Certificates and kubeconfigs are named even without this machine's tree.
                if host.has(Role::Etcd) {
                    assert!(
                        removed.contains(&host_paths::ETCD_SERVER_KEY),
                        "{}",
                        host.name
                    );
                    assert_eq!(plan.data_dir.as_deref(), Some("/var/lib/etcd"));
                } else {
                    assert_eq!(plan.data_dir, None, "{}", host.name);
                }
                assert!(plan.state_dirs.iter().any(|d| d.path == PENDING_DIR));
            }
        }
    }
}

#[test]
fn keepalived_gives_up_the_vip_before_haproxy_and_etcd_stop() {
    let inv = inventory(Topology::Stacked, "systemd", false);
    let plan = for_host(&inv, &inv.hosts[0], Path::new("/nonexistent"));
    let at = |u: &str| plan.units.iter().position(|x| *x == u).unwrap();
    assert!(at("keepalived") < at("haproxy"));
    assert!(at("haproxy") < at("etcd"));
}

#[test]
fn static_pod_manifests_go_first_and_their_ports_are_waited_for() {
    let inv = inventory(Topology::Stacked, "static-pod", false);
    let plan = for_host(&inv, &inv.hosts[0], Path::new("/nonexistent"));
    assert!(
        plan.manifests
            .contains(&host_paths::ETCD_MANIFEST.to_string())
    );
    assert!(
        plan.manifests
            .contains(&host_paths::KUBE_APISERVER_MANIFEST.to_string())
    );
    assert!(plan.pod_ports.contains(&2379) && plan.pod_ports.contains(&6443));
    assert!(
        !plan.units.contains(&"etcd"),
        "no etcd unit in static-pod mode"
    );
}

#[test]
fn time_sync_stays_on_a_reset_host() {
    let inv = inventory(Topology::Stacked, "systemd", true);
    let plan = for_host(&inv, &inv.hosts[0], Path::new("/nonexistent"));
    assert!(!plan.units.contains(&"chrony"));
    assert!(!plan.files.contains(&host_paths::CHRONY_CONF.to_string()));
    assert!(
        plan.kept.iter().any(|k| k.starts_with("chrony:")),
        "{:?}",
        plan.kept
    );
    assert!(
        plan.kept
            .iter()
            .any(|k| k.contains("packages stay installed"))
    );
}

#[test]
fn only_kinits_own_directories_are_removed_and_deepest_first() {
    let inv = inventory(Topology::Stacked, "systemd", false);
    let plan = for_host(&inv, &inv.hosts[0], Path::new("/nonexistent"));
    for d in &plan.dirs {
        assert!(!host_paths::SYSTEM_DIRS.contains(&d.as_str()), "{d}");
    }
    let at = |d: &str| plan.dirs.iter().position(|x| x == d).unwrap();
    assert!(at("/etc/kubernetes/pki/etcd") < at("/etc/kubernetes/pki"));
    assert!(at("/etc/kubernetes/pki") < at("/etc/kubernetes"));
    assert!(plan.dirs.contains(&"/var/lib/kinit".to_string()));
}

#[test]
fn the_host_tree_of_this_machines_pki_names_the_certificates() {
    let pki = tempfile::tempdir().unwrap();
    let inv = inventory(Topology::Stacked, "systemd", false);
    let root = pki
        .path()
        .join(crate::pki::table::host_root(&inv.hosts[0].name));
    std::fs::create_dir_all(root.join("pki/etcd")).unwrap();
    std::fs::write(root.join("pki/etcd/peer.key"), "k").unwrap();
    std::fs::write(root.join("admin.conf"), "c").unwrap();
    let plan = for_host(&inv, &inv.hosts[0], pki.path());
    assert!(
        plan.files
            .contains(&"/etc/kubernetes/pki/etcd/peer.key".to_string())
    );
    assert!(
        plan.files
            .contains(&"/etc/kubernetes/admin.conf".to_string())
    );
    // Only what the tree holds: no fallback list on top of it.
    assert!(!plan.files.contains(&host_paths::CA_KEY.to_string()));
}
