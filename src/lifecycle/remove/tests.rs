use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::config::template::{InitShape, render};
use crate::config::{ControlPlaneMode, Topology};
use crate::host_paths;
use crate::render;

fn inventory(topology: Topology) -> Inventory {
    let text = render(InitShape {
        topology,
        control_planes: 3,
        workers: 1,
        etcd_hosts: 3,
    })
    .unwrap();
    let (cfg, report) = crate::config::check(Path::new("c.yaml"), text);
    assert!(!report.has_errors(), "{report:?}");
    Inventory::from_config(&cfg.unwrap(), Path::new("/tmp"), None).unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn hosts_of_the_config_are_removable_and_one_control_plane_stays() {
    let inv = inventory(Topology::Stacked);
    let chosen_names = |list: &[&str]| -> Result<Vec<String>, String> {
        chosen(&inv, &names(list))
            .map(|hs| hs.iter().map(|h| h.name.clone()).collect())
            .map_err(|e| e.to_string())
    };
    assert_eq!(chosen_names(&["cp3", "cp3"]).unwrap(), ["cp3"]);
    let err = chosen_names(&["cp9"]).unwrap_err();
    assert!(err.contains("cp9 is not a host"), "{err}");
    // A worker too: its Node is drained and deleted, the other nodes' routes to its pods go.
    assert_eq!(chosen_names(&["worker1"]).unwrap(), ["worker1"]);
    let err = chosen_names(&["cp1", "cp2", "cp3"]).unwrap_err();
    assert!(err.contains("no control-plane host"), "{err}");
    // External etcd: an etcd host alone may go.
    let ext = inventory(Topology::External);
    let got = chosen(&ext, &names(&["etcd2"])).unwrap();
    assert_eq!(got[0].name, "etcd2");
}

#[test]
fn the_files_updated_are_those_naming_other_hosts() {
    // In table order (the table's `names_hosts` column).
    let stacked = inventory(Topology::Stacked);
    assert_eq!(
        files_to_update(&stacked),
        [
            host_paths::HAPROXY_CFG,
            host_paths::KEEPALIVED_CONF,
            host_paths::POD_NETWORK_SCRIPT
        ]
    );
    // Every host that stays and holds one: control planes first, then the worker.
    assert_eq!(hosts_to_update(&stacked), ["cp1", "cp2", "cp3", "worker1"]);
    let ext = inventory(Topology::External);
    assert_eq!(
        files_to_update(&ext),
        [
            host_paths::KUBE_APISERVER_MANIFEST,
            host_paths::HAPROXY_CFG,
            host_paths::KEEPALIVED_CONF,
            host_paths::POD_NETWORK_SCRIPT
        ]
    );
    // As a systemd unit, the apiserver's flags are in its unit file.
    let mut ext = ext;
    ext.control_plane_mode = ControlPlaneMode::Systemd;
    assert_eq!(
        files_to_update(&ext),
        [
            host_paths::KUBE_APISERVER_UNIT,
            host_paths::HAPROXY_CFG,
            host_paths::KEEPALIVED_CONF,
            host_paths::POD_NETWORK_SCRIPT
        ]
    );
}

#[test]
fn rendered_without_the_removed_hosts_the_others_no_longer_name_them() {
    let templates = Templates::embedded().unwrap();
    let ext = inventory(Topology::External);
    let going: BTreeSet<String> = ["cp3", "etcd3"].iter().map(|s| s.to_string()).collect();
    let rest = without(&ext, &going);
    assert_eq!(rest.hosts.len(), ext.hosts.len() - 2);
    let cp3 = ext.host("cp3").unwrap().address.to_string();
    let etcd3 = ext.host("etcd3").unwrap().address.to_string();
    let files = files_to_update(&rest);
    for h in rest.control_plane() {
        for f in render::render_host(&rest, h, &templates)
            .unwrap()
            .iter()
            .filter(|f| files.contains(&f.path.as_str()))
        {
            assert!(!f.content.contains(&cp3), "{}: {}", f.path, f.content);
            assert!(!f.content.contains(&etcd3), "{}: {}", f.path, f.content);
        }
    }
    // Before, the same files named them: the test would catch a file left out.
    let cp1 = ext.host("cp1").unwrap();
    let before: String = render::render_host(&ext, cp1, &templates)
        .unwrap()
        .iter()
        .filter(|f| files.contains(&f.path.as_str()))
        .map(|f| f.content.clone())
        .collect();
    assert!(before.contains(&cp3) && before.contains(&etcd3));
}
