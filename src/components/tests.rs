use super::*;

#[test]
fn every_component_has_one_row_and_a_unique_name() {
    let ids = [
        ComponentId::KernelSettings,
        ComponentId::Chrony,
        ComponentId::Etcd,
        ComponentId::EtcdStaticPod,
        ComponentId::EtcdImage,
        ComponentId::EtcdSnapshots,
        ComponentId::Haproxy,
        ComponentId::Keepalived,
        ComponentId::Containerd,
        ComponentId::Kubelet,
        ComponentId::KubeProxy,
        ComponentId::ControlPlane,
        ComponentId::ControlPlaneImages,
        ComponentId::KubeApiserver,
        ComponentId::KubeControllerManager,
        ComponentId::KubeScheduler,
    ];
    assert_eq!(TABLE.len(), ids.len());
    for id in ids {
        assert_eq!(TABLE.iter().filter(|c| c.id == id).count(), 1, "{id:?}");
        // The playbook's name for it is the table's.
        let yaml: ComponentId = serde_yaml::from_str(component(id).name).unwrap();
        assert_eq!(yaml, id);
    }
}

#[test]
fn each_file_has_one_owner_component_and_a_known_template() {
    let mut paths: Vec<&str> = TABLE
        .iter()
        .flat_map(|c| c.files.iter().map(|f| f.path))
        .collect();
    let n = paths.len();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), n, "a path listed twice");
    let known = crate::render::templates::EMBEDDED;
    for f in TABLE.iter().flat_map(|c| c.files.iter()) {
        assert!(
            known.iter().any(|(t, _)| *t == f.template),
            "{}",
            f.template
        );
    }
}

#[test]
fn what_a_change_asks_names_a_unit_of_the_same_component() {
    for c in TABLE {
        let effects = c
            .files
            .iter()
            .map(|f| f.on_change)
            .chain(c.binaries.iter().map(|b| b.on_change))
            .chain(c.certificates.iter().map(|i| i.on_change));
        for e in effects {
            if let OnChange::Restart(u) | OnChange::Reload(u) = e {
                // Or a unit of a component the same playbook phase converges after it, on every
                // host this one runs on (the images the kubelet imports land before it starts).
                let later_in_phase = || {
                    let book = crate::engine::playbook::load(None).unwrap();
                    book.phases.iter().any(|p| {
                        let at = p.converge.iter().position(|id| *id == c.id);
                        at.is_some_and(|i| {
                            p.converge[i + 1..].iter().any(|id| {
                                let other = component(*id);
                                // Where `c` runs, so does `other`: by role, or because
                                // `c` goes exactly where a static pod goes and `other`
                                // runs wherever static pods do.
                                let beside_a_static_pod = other.with_static_pods
                                    && TABLE.iter().any(|s| {
                                        s.static_pod && s.roles == c.roles && s.when == c.when
                                    });
                                other.units.iter().any(|r| r.name == u)
                                    && (c.roles.iter().all(|r| other.roles.contains(r))
                                        || beside_a_static_pod)
                            })
                        })
                    })
                };
                assert!(
                    c.units.iter().any(|r| r.name == u) || later_in_phase(),
                    "{}: {u}",
                    c.name
                );
            }
        }
    }
}

#[test]
fn what_other_hosts_depend_on_rolls() {
    // A component whose ports other hosts reach, or that holds the VIP, restarts one host at a
    // time; one nothing else depends on may restart everywhere at once.
    for c in TABLE {
        let reached = c
            .ports
            .iter()
            .any(|p| matches!(p.reached_from, ReachedFrom::Roles(_)))
            && c.id != ComponentId::Kubelet;
        if reached || c.id == ComponentId::Keepalived {
            assert!(c.rolling.is_some(), "{} does not roll", c.name);
        }
    }
    let last = |id| component(id).rolling.map(|r| r.last);
    assert_eq!(last(ComponentId::Etcd), Some(GoesLast::EtcdLeader));
    assert_eq!(last(ComponentId::EtcdStaticPod), Some(GoesLast::EtcdLeader));
    assert_eq!(last(ComponentId::Keepalived), Some(GoesLast::VipHolder));
    assert_eq!(
        last(ComponentId::Kubelet),
        Some(GoesLast::StaticPodEtcdLeader)
    );
}

#[test]
fn a_restore_stops_the_control_plane_in_either_mode_and_nothing_else() {
    use crate::config::template::{InitShape, render};
    let text = render(InitShape {
        topology: crate::config::Topology::Stacked,
        control_planes: 3,
        workers: 1,
        etcd_hosts: 3,
    })
    .unwrap();
    let (cfg, report) = crate::config::check(std::path::Path::new("c.yaml"), text);
    assert!(!report.has_errors(), "{report:?}");
    let mut inv =
        Inventory::from_config(&cfg.unwrap(), std::path::Path::new("/tmp"), None).unwrap();
    let cp = inv.control_plane().next().unwrap().clone();
    let worker = inv
        .hosts
        .iter()
        .find(|h| !h.has(Role::ControlPlane) && !h.has(Role::Etcd))
        .unwrap()
        .clone();

    inv.control_plane_mode = ControlPlaneMode::Systemd;
    assert_eq!(
        stopped_for_restore(&inv, &cp),
        (
            vec![
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler"
            ],
            vec![]
        )
    );
    inv.control_plane_mode = ControlPlaneMode::StaticPod;
    let (units, manifests) = stopped_for_restore(&inv, &cp);
    assert!(units.is_empty(), "{units:?}");
    assert_eq!(
        manifests,
        [
            crate::host_paths::KUBE_APISERVER_MANIFEST,
            crate::host_paths::KUBE_CONTROLLER_MANAGER_MANIFEST,
            crate::host_paths::KUBE_SCHEDULER_MANIFEST,
        ]
    );
    // A worker runs none of it (its kubelet, haproxy and keepalived elsewhere keep running).
    assert_eq!(stopped_for_restore(&inv, &worker), (vec![], vec![]));
}

#[test]
fn kube_proxy_cleanup_runs_the_binary_the_table_installs() {
    assert_eq!(
        super::table::KUBE_PROXY_CLEANUP,
        format!("cleanup:{}", crate::host_paths::KUBE_PROXY_BINARY)
    );
}

#[test]
fn the_cni_plugins_installed_are_the_ones_bundle_import_files_under_cni() {
    let mut installed: Vec<&str> = TABLE
        .iter()
        .flat_map(|c| c.binaries)
        .filter_map(|b| b.file.strip_prefix(crate::bundle::sources::CNI_DIR))
        .collect();
    installed.sort_unstable();
    let mut imported = crate::bundle::sources::CNI_PLUGINS.to_vec();
    imported.sort_unstable();
    assert_eq!(installed, imported);
}
