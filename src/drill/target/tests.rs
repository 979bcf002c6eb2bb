use std::path::Path;

use super::*;
use crate::status::{CertificateSummary, EtcdMemberStatus, EtcdStatus, StatusReport, VipStatus};

fn inventory(cps: usize, control_plane_mode: &str) -> Inventory {
    inventory_with(cps, control_plane_mode, &[])
}

/// `cps` control planes with stacked etcd, plus these hosts (`name: role`).
fn inventory_with(cps: usize, control_plane_mode: &str, more: &[(&str, &str)]) -> Inventory {
    let mut text = format!(
        "apiVersion: kinit.io/v1alpha1\nkind: Cluster\nmetadata: {{name: demo}}\nspec:\n  \
         kubernetesVersion: v1.31.4\n  controlPlane: {{mode: {control_plane_mode}}}\n  \
         controlPlaneEndpoint: {{address: 192.168.9.100}}\n  hosts:\n"
    );
    for i in 1..=cps {
        text.push_str(&format!(
            "    - {{name: cp{i}, address: 192.168.9.1{i}, roles: [control-plane, etcd]}}\n"
        ));
    }
    for (i, (name, role)) in more.iter().enumerate() {
        text.push_str(&format!(
            "    - {{name: {name}, address: 192.168.9.5{i}, roles: [{role}]}}\n"
        ));
    }
    let (cfg, report) = crate::config::check(Path::new("c.yaml"), text);
    let cfg = cfg.unwrap_or_else(|| panic!("{report:?}"));
    Inventory::from_config(&cfg, Path::new("."), None).unwrap()
}

fn member(name: &str, healthy: bool, leader: bool) -> EtcdMemberStatus {
    EtcdMemberStatus {
        name: name.into(),
        endpoint: format!("https://{name}:2379"),
        id: Some("1".into()),
        healthy,
        leader,
        db_size: None,
        version: None,
        raft_term: None,
        learner: false,
        in_inventory: true,
        error: None,
    }
}

/// cp1 holds the VIP, `leader` leads etcd; the members named in `down` are unhealthy.
fn status(cps: usize, leader: &str, down: &[&str]) -> StatusReport {
    let members = (1..=cps)
        .map(|i| {
            let name = format!("cp{i}");
            member(&name, !down.contains(&name.as_str()), name == leader)
        })
        .collect();
    StatusReport {
        cluster: "demo".into(),
        etcd: EtcdStatus {
            members,
            leaders: vec![leader.to_string()],
            ..EtcdStatus::default()
        },
        vip: Some(VipStatus {
            address: "192.168.9.100".into(),
            holders: vec!["cp1".into()],
        }),
        hosts: Vec::new(),
        certificates: CertificateSummary {
            total: 1,
            valid: 1,
            ..CertificateSummary::default()
        },
        control_plane: None,
    }
}

#[test]
fn the_targets_are_the_vip_holder_the_leader_and_the_named_apiserver_with_the_tables_units() {
    let inv = inventory(3, "systemd");
    let s = status(3, "cp2", &[]);
    let t = choose(&inv, &DrillKind::VipHolder, &s).unwrap();
    assert_eq!((t.host.as_str(), t.unit), ("cp1", "keepalived"));
    let t = choose(&inv, &DrillKind::EtcdLeader, &s).unwrap();
    assert_eq!((t.host.as_str(), t.unit), ("cp2", "etcd"));
    assert!(t.no_block, "etcd starts without waiting for its peers");
    let t = choose(&inv, &DrillKind::Apiserver("cp3".into()), &s).unwrap();
    assert_eq!((t.host.as_str(), t.unit), ("cp3", "kube-apiserver"));
}

#[test]
fn an_unknown_host_or_a_static_pod_apiserver_is_refused() {
    let s = status(3, "cp2", &[]);
    let e = choose(
        &inventory(3, "systemd"),
        &DrillKind::Apiserver("cp9".into()),
        &s,
    )
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::UnknownHost { known, .. } if known == "cp1, cp2, cp3"),
        "{e}"
    );
    let e = choose(
        &inventory(3, "static-pod"),
        &DrillKind::Apiserver("cp2".into()),
        &s,
    )
    .unwrap_err();
    assert!(matches!(e, DrillError::NotApplicable { .. }), "{e}");
}

#[test]
fn no_single_vip_holder_or_leader_is_no_target() {
    let inv = inventory(3, "systemd");
    let mut s = status(3, "cp2", &[]);
    s.vip.as_mut().unwrap().holders = vec!["cp1".into(), "cp2".into()];
    s.etcd.leaders.clear();
    let e = choose(&inv, &DrillKind::VipHolder, &s).unwrap_err();
    assert!(e.to_string().contains("cp1, cp2"), "{e}");
    let e = choose(&inv, &DrillKind::EtcdLeader, &s).unwrap_err();
    assert!(e.to_string().contains("none"), "{e}");
}

#[test]
fn stopping_the_leader_of_two_or_of_three_with_one_down_would_cost_the_quorum() {
    // Two voters: the one left is not a majority of two.
    let e = choose(
        &inventory(2, "systemd"),
        &DrillKind::EtcdLeader,
        &status(2, "cp1", &[]),
    )
    .unwrap_err();
    match &e {
        DrillError::WouldLoseQuorum { tally, target, .. } => {
            assert_eq!(target, "cp1");
            assert_eq!(
                (tally.voters_after, tally.healthy_after, tally.needed),
                (2, 1, 2)
            );
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("1 of 2 voting members"), "{e}");
    // Three voters, one down already: stopping the leader leaves one of three.
    let e = choose(
        &inventory(3, "systemd"),
        &DrillKind::EtcdLeader,
        &status(3, "cp1", &["cp3"]),
    )
    .unwrap_err();
    assert!(matches!(e, DrillError::WouldLoseQuorum { .. }), "{e}");
    // Three healthy voters: two stay.
    assert!(
        choose(
            &inventory(3, "systemd"),
            &DrillKind::EtcdLeader,
            &status(3, "cp1", &[])
        )
        .is_ok()
    );
    // Drills that leave etcd alone do not pause a member.
    assert!(
        choose(
            &inventory(2, "systemd"),
            &DrillKind::VipHolder,
            &status(2, "cp1", &[])
        )
        .is_ok()
    );
}

#[test]
fn a_learner_is_no_voter_the_drill_may_count_on() {
    // cp3 has joined as a learner and is not promoted yet: two voters, so stopping the leader
    // leaves one of two.
    let mut s = status(3, "cp1", &[]);
    s.etcd.members[2].learner = true;
    let e = choose(&inventory(3, "systemd"), &DrillKind::EtcdLeader, &s).unwrap_err();
    match &e {
        DrillError::WouldLoseQuorum { tally, .. } => {
            assert_eq!((tally.voters_after, tally.healthy_after), (2, 1));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_single_control_plane_has_nobody_to_take_over() {
    let e = choose(
        &inventory(1, "systemd"),
        &DrillKind::VipHolder,
        &status(1, "cp1", &[]),
    )
    .unwrap_err();
    assert!(matches!(e, DrillError::NoStandby { .. }), "{e}");
}

#[test]
fn a_degraded_cluster_is_refused_with_its_problems_named() {
    let s = status(3, "cp1", &["cp3"]);
    let e = healthy_enough(&s).unwrap_err();
    assert!(
        e.to_string().contains("etcd member cp3 is unhealthy"),
        "{e}"
    );
    assert!(healthy_enough(&status(3, "cp1", &[])).is_ok());
}

#[test]
fn a_node_drill_stops_the_kubelet_of_any_node_and_needs_another_node() {
    let inv = inventory_with(3, "systemd", &[("w1", "worker")]);
    let s = status(3, "cp2", &[]);
    let t = choose(&inv, &DrillKind::Node("w1".into()), &s).unwrap();
    assert_eq!(
        (t.host.as_str(), t.component, t.unit),
        ("w1", "kubelet", "kubelet")
    );
    // A control plane is a node too; stopping its kubelet leaves etcd alone, so even a
    // leader of two passes the quorum guard.
    let t = choose(&inv, &DrillKind::Node("cp2".into()), &s).unwrap();
    assert_eq!(t.unit, "kubelet");
    let two = inventory_with(2, "systemd", &[]);
    assert!(choose(&two, &DrillKind::Node("cp1".into()), &status(2, "cp1", &[])).is_ok());
    // An etcd-only host runs no kubelet here (systemd-run etcd).
    let ext = inventory_with(2, "systemd", &[("e1", "etcd")]);
    let e = choose(&ext, &DrillKind::Node("e1".into()), &s).unwrap_err();
    assert!(
        matches!(&e, DrillError::UnknownHost { runs: "kubelet", known, .. } if known == "cp1, cp2"),
        "{e}"
    );
    assert!(e.to_string().contains("e1 runs no kubelet"), "{e}");
    // One node: nowhere for its pods to go.
    let e = choose(
        &inventory(1, "systemd"),
        &DrillKind::Node("cp1".into()),
        &status(1, "cp1", &[]),
    )
    .unwrap_err();
    assert!(
        matches!(&e, DrillError::NoStandby { what, .. } if what == "kubelet host"),
        "{e}"
    );
}
