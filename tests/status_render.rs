//! `kinit status` output, text and JSON, from constructed reports: healthy, etcd members on two
//! releases, one etcd member down, and the VIP held by no host.

use kinit::kube::nodes::NodeState;
use kinit::status::control_plane::{ApiserverStatus, ControlPlaneStatus, LeaseStatus, NodeStatus};
use kinit::status::{
    BackendServer, CertificateNote, CertificateSummary, EtcdMemberStatus, EtcdStatus,
    HaproxyStatus, HostStatus, KeepalivedState, ServiceStatus, StatusReport, UnitVersion,
    VipStatus,
};
use kinit::ui::status::{render_json, render_text};

fn member(name: &str, n: u8, leader: bool) -> EtcdMemberStatus {
    EtcdMemberStatus {
        name: name.into(),
        endpoint: format!("https://192.168.9.1{n}:2379"),
        id: Some(format!("8e9e05c52164694{n}")),
        healthy: true,
        leader,
        db_size: Some(20480),
        version: Some("3.4.23".into()),
        raft_term: Some(2),
        learner: false,
        in_inventory: true,
        error: None,
    }
}

fn host(name: &str, n: u8, vip: bool) -> HostStatus {
    let svc = |s: &str| ServiceStatus {
        name: s.into(),
        state: "active".into(),
    };
    HostStatus {
        name: name.into(),
        address: format!("192.168.9.1{n}"),
        roles: vec!["control-plane".into(), "etcd".into()],
        reachable: true,
        error: None,
        services: vec![
            svc("etcd"),
            svc("haproxy"),
            svc("keepalived"),
            svc("kubelet"),
        ],
        holds_vip: Some(vip),
        keepalived: Some(if vip {
            KeepalivedState::Master
        } else {
            KeepalivedState::Backup
        }),
        haproxy: Some(HaproxyStatus {
            servers: (1..=3)
                .map(|i| BackendServer {
                    backend: "apiserver".into(),
                    server: format!("cp{i}"),
                    status: "UP".into(),
                    check: Some("L7OK".into()),
                })
                .collect(),
            error: None,
            not_in_config: vec![],
            missing: vec![],
        }),
        versions: vec![],
    }
}

fn healthy() -> StatusReport {
    StatusReport {
        cluster: "demo".into(),
        etcd: EtcdStatus {
            members: vec![
                member("cp1", 1, true),
                member("cp2", 2, false),
                member("cp3", 3, false),
            ],
            listed_by: Some("cp1".into()),
            error: None,
            missing_from_list: vec![],
            not_in_inventory: vec![],
            leaders: vec!["cp1".into()],
        },
        vip: Some(VipStatus {
            address: "192.168.9.100".into(),
            holders: vec!["cp1".into()],
        }),
        hosts: vec![
            host("cp1", 1, true),
            host("cp2", 2, false),
            host("cp3", 3, false),
        ],
        certificates: CertificateSummary {
            total: 30,
            valid: 30,
            soonest: Some(CertificateNote {
                name: "apiserver (cp1)".into(),
                file: "hosts/cp1/etc/kubernetes/pki/apiserver.crt".into(),
                expires: Some("2027-11-22T04:50:00Z".into()),
                days_left: Some(364),
            }),
            ..CertificateSummary::default()
        },
        control_plane: None,
    }
}

fn control_plane() -> ControlPlaneStatus {
    let apiserver = |host: &str, n: u8| ApiserverStatus {
        host: host.into(),
        url: format!("https://192.168.9.1{n}:6443"),
        ready: true,
        failing: vec![],
        error: None,
        version: Some("v1.37.2".into()),
    };
    ControlPlaneStatus {
        apiservers: vec![
            apiserver("cp1", 1),
            apiserver("cp2", 2),
            apiserver("cp3", 3),
        ],
        leases: vec![
            LeaseStatus {
                name: "kube-controller-manager".into(),
                holder: Some("cp2".into()),
                error: None,
            },
            LeaseStatus {
                name: "kube-scheduler".into(),
                holder: Some("cp1".into()),
                error: None,
            },
        ],
        nodes: Vec::new(),
    }
}

fn node(host: &str, ready: bool, why: &str) -> NodeStatus {
    NodeStatus {
        host: host.into(),
        node: Some(NodeState {
            ready,
            why: why.into(),
            unschedulable: false,
            kubelet_version: "v1.37.2".into(),
            pod_cidr: "10.244.21.0/24".into(),
            heartbeat: "2026-12-05T07:00:00Z".into(),
            cordoned_by_kinit: false,
        }),
        error: None,
    }
}

#[test]
fn each_kubelet_hosts_node_shows_its_readiness_and_a_missing_or_unready_one_is_a_problem() {
    let mut r = healthy();
    let mut cp = control_plane();
    cp.nodes = vec![
        node("cp1", true, ""),
        node(
            "w1",
            false,
            "KubeletNotReady: container runtime network not ready",
        ),
        NodeStatus {
            host: "w2".into(),
            node: None,
            error: None,
        },
    ];
    r.control_plane = Some(cp);
    assert_eq!(
        r.problems(),
        vec![
            "w1: Node is not Ready (KubeletNotReady: container runtime network not ready)"
                .to_string(),
            "w2: not registered as a Node".to_string(),
        ]
    );
    let text = render_text(&r);
    let row = |host: &str| {
        text.lines()
            // (Not its apiserver's row: a Node's has its pod slice, or says it has none.)
            .find(|l| {
                l.trim_start().starts_with(host)
                    && (l.contains("10.244.") || l.contains("NOT REGISTERED"))
            })
            .unwrap_or_else(|| panic!("no node row for {host}: {text}"))
            .to_string()
    };
    assert!(
        row("cp1").contains("Ready") && row("cp1").contains("10.244.21.0/24"),
        "{text}"
    );
    assert!(row("w1").contains("NOT READY: KubeletNotReady"), "{text}");
    assert!(row("w2").contains("NOT REGISTERED"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
    assert_eq!(
        json["controlPlane"]["nodes"][1]["node"]["ready"], false,
        "{json:#}"
    );
}

#[test]
fn a_serving_control_plane_shows_each_apiserver_and_lease_holder() {
    let mut r = healthy();
    r.control_plane = Some(control_plane());
    assert!(r.healthy(), "{:?}", r.problems());
    let text = render_text(&r);
    assert!(
        text.contains("lease kube-controller-manager: held by cp2"),
        "{text}"
    );
    assert!(text.contains("https://192.168.9.13:6443"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
    assert_eq!(
        json["controlPlane"]["apiservers"][1]["ready"], true,
        "{json:#}"
    );

    let cp = r.control_plane.as_mut().unwrap();
    cp.apiservers[2].ready = false;
    cp.apiservers[2].failing = vec!["etcd".into(), "poststarthook/rbac/bootstrap-roles".into()];
    cp.apiservers[0].error = Some("connection refused".into());
    cp.leases[1].holder = None;
    let problems = r.problems();
    assert_eq!(
        problems,
        vec![
            "cp1: kube-apiserver does not answer: connection refused".to_string(),
            "cp3: kube-apiserver is not ready (failing: etcd, poststarthook/rbac/bootstrap-roles)"
                .to_string(),
            "no kube-scheduler holds its lease".to_string(),
        ]
    );
    assert!(render_text(&r).contains("NOT READY: etcd, poststarthook/rbac/bootstrap-roles"));
}

#[test]
fn each_hosts_releases_and_a_restart_still_to_come() {
    let mut r = healthy();
    let mut cp = control_plane();
    cp.apiservers[2].version = Some("v1.36.3".into());
    r.control_plane = Some(cp);
    r.hosts[2].versions = vec![
        UnitVersion {
            unit: "kube-apiserver".into(),
            version: Some("v1.37.2".into()),
            restart_pending: true,
        },
        UnitVersion {
            unit: "kube-scheduler".into(),
            version: Some("v1.37.2".into()),
            restart_pending: false,
        },
    ];
    let text = render_text(&r);
    assert!(
        text.contains(
            "cp3: releases: kube-apiserver v1.37.2 (installed; the unit still runs the one \
             before), kube-scheduler v1.37.2"
        ),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.contains("https://192.168.9.13:6443"))
        .unwrap();
    assert!(row.contains("v1.36.3"), "{row}");
    let json: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
    assert_eq!(json["hosts"][2]["versions"][0]["restartPending"], true);
    assert_eq!(json["controlPlane"]["apiservers"][2]["version"], "v1.36.3");
    // Hosts whose units were not asked show no releases line.
    assert!(!text.contains("cp1: releases"), "{text}");
}

#[test]
fn healthy_cluster() {
    let r = healthy();
    assert!(r.healthy(), "{:?}", r.problems());
    insta::assert_snapshot!("healthy_text", render_text(&r));
    insta::assert_snapshot!("healthy_json", render_json(&r));
}

#[test]
fn members_on_two_etcd_releases_during_an_upgrade() {
    let mut r = healthy();
    r.etcd.members[0].version = Some("3.5.1".into());
    let text = render_text(&r);
    assert!(
        text.contains(
            "  members run different etcd releases (3.4.23 on cp2, cp3; 3.5.1 on cp1): an \
             upgrade under way, or one that stopped; `kinit up` with the same bundle finishes it\n"
        ),
        "{text}"
    );
    assert!(!render_text(&healthy()).contains("different etcd releases"));
}

#[test]
fn one_member_down() {
    let mut r = healthy();
    let m = &mut r.etcd.members[2];
    m.healthy = false;
    m.id = None;
    m.db_size = None;
    m.version = None;
    m.raft_term = None;
    m.error =
        Some("https://192.168.9.13:2379: cannot connect: Connection refused (os error 111)".into());
    r.hosts[2].services[0].state = "failed".into();
    for h in &mut r.hosts {
        if let Some(hp) = &mut h.haproxy {
            hp.servers[2].status = "DOWN".into();
            hp.servers[2].check = Some("L4CON".into());
        }
    }
    let problems = r.problems();
    assert!(!r.healthy());
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("etcd member cp3 is unhealthy")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p == "cp3: etcd is failed"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p == "cp1: haproxy backend apiserver/cp3 is DOWN (L4CON)"),
        "{problems:?}"
    );
    insta::assert_snapshot!("member_down_text", render_text(&r));
    insta::assert_snapshot!("member_down_json", render_json(&r));
}

#[test]
fn vip_on_no_host_and_an_unreachable_host() {
    let mut r = healthy();
    r.vip.as_mut().unwrap().holders.clear();
    r.hosts[0].holds_vip = Some(false);
    r.hosts[0].keepalived = Some(KeepalivedState::Stopped);
    r.hosts[0].services[2].state = "inactive".into();
    r.hosts[1] = HostStatus {
        reachable: false,
        error: Some("cp2 (192.168.9.12:22): connect: timed out after 5s".into()),
        services: vec![],
        holds_vip: None,
        keepalived: None,
        haproxy: None,
        ..host("cp2", 2, false)
    };
    let problems = r.problems();
    assert!(
        problems.contains(&"the VIP 192.168.9.100 is held by no host".to_string()),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("cp2 is unreachable")),
        "{problems:?}"
    );
    insta::assert_snapshot!("vip_none_text", render_text(&r));

    // And the split-brain case.
    r.vip.as_mut().unwrap().holders = vec!["cp1".into(), "cp3".into()];
    assert!(
        r.problems()
            .iter()
            .any(|p| p.contains("more than one host: cp1, cp3"))
    );
}
