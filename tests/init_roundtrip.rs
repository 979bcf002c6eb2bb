//! `kinit init` writes a config that validates as written, for every topology and host count,
//! and the validated inventory has exactly the hosts that were asked for.

use std::path::Path;

use kinit::config::template::{InitShape, MAX_HOSTS, render};
use kinit::config::{self, Role, Topology};
use kinit::inventory::Inventory;
use proptest::prelude::*;

fn shape() -> impl Strategy<Value = InitShape> {
    (
        prop_oneof![Just(Topology::Stacked), Just(Topology::External)],
        1u32..=9,
        0u32..=80,
        1u32..=7,
    )
        .prop_map(
            |(topology, control_planes, workers, etcd_hosts)| InitShape {
                topology,
                control_planes,
                workers,
                etcd_hosts,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_config_validates_with_the_requested_hosts(shape in shape()) {
        let text = render(shape).unwrap();
        let (cfg, report) = config::check(Path::new("cluster.yaml"), text);
        let errors: Vec<_> = report.errors().map(|p| format!("{}: {}", p.path, p.message)).collect();
        prop_assert!(errors.is_empty(), "{shape:?}: {errors:?}");
        let inv = Inventory::from_config(&cfg.unwrap(), Path::new("/tmp"), None).unwrap();
        prop_assert_eq!(inv.topology, shape.topology);
        prop_assert_eq!(inv.control_plane().count() as u32, shape.control_planes);
        prop_assert_eq!(inv.workers().count() as u32, shape.workers);
        let etcd = inv.with_role(Role::Etcd).count() as u32;
        match shape.topology {
            Topology::Stacked => prop_assert_eq!(etcd, shape.control_planes),
            Topology::External => prop_assert_eq!(etcd, shape.etcd_hosts),
        }
    }
}

#[test]
fn the_largest_shape_fits_and_one_more_host_is_refused() {
    let fits = InitShape {
        topology: Topology::Stacked,
        control_planes: 3,
        workers: MAX_HOSTS - 3,
        etcd_hosts: 0,
    };
    let (_, report) = config::check(Path::new("c.yaml"), render(fits).unwrap());
    assert!(!report.has_errors(), "{:?}", report.problems);
    let too_many = InitShape {
        workers: MAX_HOSTS - 2,
        ..fits
    };
    assert!(render(too_many).is_err());
}

#[test]
fn external_without_etcd_hosts_is_refused() {
    let s = InitShape {
        topology: Topology::External,
        control_planes: 2,
        workers: 0,
        etcd_hosts: 0,
    };
    assert!(render(s).is_err());
}

#[test]
fn the_commented_snapshots_line_validates_once_uncommented_and_shows_the_defaults() {
    for topology in [Topology::Stacked, Topology::External] {
        let text = render(InitShape {
            topology,
            control_planes: 3,
            workers: 0,
            etcd_hosts: 3,
        })
        .unwrap();
        let (cfg, _) = config::check(Path::new("c.yaml"), text.clone());
        assert_eq!(cfg.unwrap().spec.etcd.snapshots, None, "off as written");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("# snapshots: {"))
            .expect("init shows spec.etcd.snapshots, commented out");
        let on = text.replace(line, &line.replacen("# snapshots", "snapshots", 1));
        let (cfg, report) = config::check(Path::new("c.yaml"), on);
        assert!(!report.has_errors(), "{:?}", report.problems);
        assert_eq!(
            cfg.unwrap().spec.etcd.snapshots,
            Some(config::EtcdSnapshots::default()),
            "the line shows the defaults"
        );
    }
}
