//! Every preflight check as a pure function of captured probe output: a clean node passes, and
//! each injected fault produces its own finding, naming the host (and the other host for clashes).
//! Ports and reachability: tests/preflight_port_rules.rs; time: tests/preflight_clock_rules.rs.

mod support;

use std::collections::BTreeMap;

use kinit::config::Topology;
use kinit::facts::{ClockSkew, HostFacts};
use kinit::preflight::{HostObservation, IgnoreSet, OperatorView, Status, evaluate};
use support::preflight::*;

#[test]
fn a_clean_cluster_passes_every_check() {
    let inv = inventory(Topology::Stacked, 1);
    let r = run(&inv, &with_fault(&inv, 0, |s| s));
    assert!(failures(&r).is_empty(), "{:#?}", failures(&r));
    assert_eq!(r.count(Status::Warn), 0);
    let cp1: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.host == "cp1")
        .map(|f| f.check.as_str())
        .collect();
    for check in [
        "IsPrivilegedUser",
        "NumCPU",
        "Mem",
        "Swap",
        "Port-6443",
        "Port-8443",
        "Port-2379",
        "Port-2381",
        "TimeSync",
        "ClockSkew",
        "UniqueMachineID",
        "UniqueMACAddress",
        "PortReachable-2379",
        "PortReachable-2380",
        "PortReachable-6443",
        "PortReachable-8443",
        "VirtualIP",
        "DirAvailable--var-lib-etcd",
        "EtcdDiskSpace",
        "FileContent--proc-sys-net-ipv4-ip_forward",
        "PodNetworkL2",
    ] {
        assert!(cp1.contains(&check), "cp1 lacks {check}: {cp1:?}");
    }
    // Workers are not held to control-plane minimums or etcd ports.
    let worker: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.host == "worker1")
        .map(|f| f.check.as_str())
        .collect();
    assert!(
        worker.contains(&"Port-10250")
            && !worker.contains(&"NumCPU")
            && !worker.contains(&"Port-2379")
    );
    // A worker reaches the apiservers and the frontend, not etcd; the control planes reach
    // its kubelet.
    assert!(
        worker.contains(&"PortReachable-6443")
            && worker.contains(&"PortReachable-8443")
            && !worker.contains(&"PortReachable-2379")
    );
    assert!(!cp1.contains(&"PeerConnectivity"));
    let kubelet = r
        .findings
        .iter()
        .find(|f| f.host == "cp1" && f.check == "PortReachable-10250")
        .unwrap();
    assert_eq!(
        kubelet.message,
        "reaches kubelet's port 10250 on cp2, cp3, worker1"
    );
}

#[test]
fn cloned_machine_id_names_both_hosts() {
    let inv = inventory(Topology::Stacked, 0);
    let obs = with_fault(&inv, 2, |s| {
        s.replace(
            "6a1d2d0f8a2b4e0c9b5e3f1a2c4d6e02",
            "6a1d2d0f8a2b4e0c9b5e3f1a2c4d6e00",
        )
    });
    let f = failures(&run(&inv, &obs));
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(
        (f[0].0.as_str(), f[0].1.as_str()),
        ("cp1", "UniqueMachineID")
    );
    assert!(f[0].2.contains("also cp3's"), "{}", f[0].2);
    assert_eq!(
        (f[1].0.as_str(), f[1].1.as_str()),
        ("cp3", "UniqueMachineID")
    );
    assert!(f[1].2.contains("also cp1's"), "{}", f[1].2);
}

#[test]
fn ip_forward_off_warns_under_kubeadms_name_because_up_sets_it() {
    // A fresh Debian host has ip_forward = 0; failing here would stop `up` before its
    // kernel-settings phase sets it.
    let inv = inventory(Topology::Stacked, 0);
    let obs = with_fault(&inv, 1, |s| {
        s.replace("==kinit:ip-forward==\n1", "==kinit:ip-forward==\n0")
    });
    let r = run(&inv, &obs);
    assert!(failures(&r).is_empty(), "{:?}", failures(&r));
    let f = r
        .findings
        .iter()
        .find(|f| f.host == "cp2" && f.check == "FileContent--proc-sys-net-ipv4-ip_forward")
        .unwrap();
    assert_eq!(f.status, Status::Warn);
    assert!(
        f.fix.as_deref().unwrap().contains("kinit up sets it"),
        "{f:?}"
    );
}

#[test]
fn unreadable_ip_forward_fails() {
    let inv = inventory(Topology::Stacked, 0);
    let obs = with_fault(&inv, 2, |s| {
        s.replace("==kinit:ip-forward==\n1\n", "==kinit:ip-forward==\n")
    });
    let (host, check, _) = only_failure(&run(&inv, &obs));
    assert_eq!(
        (host.as_str(), check.as_str()),
        ("cp3", "FileContent--proc-sys-net-ipv4-ip_forward")
    );
}

#[test]
fn an_unreachable_host_is_a_finding_and_the_others_are_still_checked() {
    let inv = inventory(Topology::Stacked, 0);
    let mut obs = with_fault(&inv, 0, |s| s);
    obs.insert(
        "cp3".into(),
        HostObservation::Unreachable {
            reason: "connect: connection refused".into(),
        },
    );
    let r = run(&inv, &obs);
    let (host, check, msg) = only_failure(&r);
    assert_eq!((host.as_str(), check.as_str()), ("cp3", "Reachable"));
    assert!(
        msg.contains("192.168.9.13:22") && msg.contains("connection refused"),
        "{msg}"
    );
    assert!(
        r.findings.iter().filter(|f| f.host == "cp1").count() > 15,
        "cp1 still fully checked"
    );
}

#[test]
fn resource_and_system_faults() {
    let inv = inventory(Topology::Stacked, 0);
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "NumCPU",
            Box::new(|s| s.replace("==kinit:nproc==\n2", "==kinit:nproc==\n1")),
        ),
        ("Mem", Box::new(|s| s.replace("24570892 kB", "1740000 kB"))),
        (
            "Swap",
            Box::new(|s| s.replace("Priority\n", "Priority\n/swapfile file 1048572 0 -2\n")),
        ),
        (
            "IsPrivilegedUser",
            Box::new(|s| s.replace("==kinit:sudo==\nroot", "==kinit:sudo==\npassword")),
        ),
        (
            "Systemd",
            Box::new(|s| s.replace("==kinit:systemd==\nyes", "==kinit:systemd==\nno")),
        ),
        (
            "DirAvailable--var-lib-etcd",
            Box::new(|s| {
                s.replace(
                    "==kinit:etcd-dir==\nabsent",
                    "==kinit:etcd-dir==\nexists\nmember\nsnapshot.db",
                )
            }),
        ),
        (
            "EtcdDiskSpace",
            Box::new(|s| s.replace("78099948", "1048576")),
        ),
        (
            "PortReachable-2380",
            Box::new(|s| s.replace("/dev/tcp/192.168.9.13/2380: Connection refused", "")),
        ),
    ];
    for (check, edit) in cases {
        let (host, got, msg) = only_failure(&run(&inv, &with_fault(&inv, 0, edit)));
        assert_eq!((host.as_str(), got.as_str()), ("cp1", check), "{msg}");
    }
}

#[test]
fn memory_is_counted_as_kubeadm_counts_it() {
    let inv = inventory(Topology::Stacked, 0);
    // 1700 MB exactly (kubeadm: MemTotal / 1024 / 1024 >= 1700) passes; one MB less fails.
    let at = |kib: u64| {
        let obs = with_fault(&inv, 0, |s| s.replace("24570892 kB", &format!("{kib} kB")));
        failures(&run(&inv, &obs)).iter().any(|f| f.1 == "Mem")
    };
    assert!(!at(1700 * 1024));
    assert!(at(1699 * 1024));
}

#[test]
fn warnings_do_not_fail() {
    let inv = inventory(Topology::Stacked, 0);
    let obs = with_fault(&inv, 0, |s| {
        s.replace("cgroup2fs", "tmpfs")
            .replace("6.1.0-27-amd64", "4.19.0-21-amd64")
            .replace("br_netfilter\n", "")
    });
    let r = run(&inv, &obs);
    assert!(!r.failed(), "{:#?}", failures(&r));
    let warned: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.status == Status::Warn)
        .map(|f| f.check.as_str())
        .collect();
    assert_eq!(
        warned,
        [
            "KernelModule-br_netfilter",
            "KernelVersion",
            "CgroupVersion"
        ]
    );
}

#[test]
fn ignored_failures_become_warnings() {
    let inv = inventory(Topology::Stacked, 0);
    let obs = with_fault(&inv, 0, |s| {
        s.replace("==kinit:nproc==\n2", "==kinit:nproc==\n1")
    });
    let r = evaluate(
        &inv,
        &obs,
        &OperatorView::default(),
        &IgnoreSet::parse(&["numcpu"]),
    );
    assert!(!r.failed());
    let f = r
        .findings
        .iter()
        .find(|f| f.check == "NumCPU" && f.host == "cp1")
        .unwrap();
    assert!(f.ignored && f.status == Status::Warn);
}

#[test]
fn the_report_shows_problems_by_host_with_their_fix() {
    let inv = inventory(Topology::Stacked, 0);
    let mut obs = with_fault(&inv, 1, |s| {
        s.replace("==kinit:ip-forward==\n1", "==kinit:ip-forward==\n0")
            .replace("br_netfilter\n", "")
    });
    obs.insert(
        "cp3".into(),
        HostObservation::Unreachable {
            reason: "connect: timed out after 5s".into(),
        },
    );
    let r = run(&inv, &obs);
    insta::assert_snapshot!(kinit::ui::preflight::render(&r, false));
}

/// Output recorded from a real lab node (cp1 of `kinit lab up`, probed over SSH).
const LAB_NODE: &str = include_str!("fixtures/probe/lab-node-cp1.txt");

#[test]
fn a_recorded_lab_node_parses_and_passes() {
    let f = HostFacts::parse(LAB_NODE).unwrap();
    assert_eq!(f.hostname, "cp1");
    assert_eq!(f.container.as_deref(), Some("systemd-nspawn"));
    assert_eq!(f.ip_forward, Some(true));
    assert_eq!(f.os.get("ID").map(String::as_str), Some("debian"));
    assert!(
        f.listeners
            .iter()
            .any(|l| l.port == 22 && l.process.as_deref() == Some("sshd")),
        "{:?}",
        f.listeners
    );
    assert!(f.clock.is_some());
    assert!(f.macs.contains_key("host0"), "{:?}", f.macs);

    let inv = inventory(Topology::Stacked, 0);
    let obs = BTreeMap::from([(
        "cp1".to_string(),
        HostObservation::Reached {
            facts: Box::new(f),
            clock_skew: Some(ClockSkew {
                offset: 0.0,
                uncertainty: 0.001,
            }),
        },
    )]);
    let mut one = inv.clone();
    one.hosts.truncate(1);
    let r = run(&one, &obs);
    assert!(!r.failed(), "{:#?}", failures(&r));
}

#[test]
fn cgroup_v1_is_a_warning_where_a_kubelet_runs_and_nothing_elsewhere() {
    let mut inv = inventory(Topology::Stacked, 0);
    inv.kubernetes_version = "v1.37.2".parse().unwrap();
    let status = |inv: &kinit::inventory::Inventory, host: usize| {
        let obs = with_fault(inv, host, |s| s.replace("cgroup2fs", "tmpfs"));
        let r = run(inv, &obs);
        r.findings
            .iter()
            .find(|f| f.check == "CgroupVersion" && f.host == inv.hosts[host].name)
            .map(|f| (f.status, f.message.clone()))
            .unwrap()
    };
    // A kubelet runs (static pods, and a control plane run as units is a node too): kubelet
    // v1.35+ refuses cgroup v1 unless told failCgroupV1: false, which kinit's configuration
    // says; so a warning, as kubeadm gives then.
    let (s, message) = status(&inv, 0);
    assert_eq!(s, Status::Warn, "{message}");
    assert!(message.contains("failCgroupV1: false"), "{message}");
    inv.control_plane_mode = kinit::config::ControlPlaneMode::Systemd;
    inv.etcd.mode = kinit::config::EtcdMode::Systemd;
    assert_eq!(status(&inv, 0).0, Status::Warn);
    // An etcd host under systemd runs no kubelet: nothing minds cgroup v1 there.
    let ext = inventory(Topology::External, 0);
    let etcd = ext
        .hosts
        .iter()
        .position(|h| !h.has(kinit::config::Role::ControlPlane))
        .unwrap();
    let (s, message) = status(&ext, etcd);
    assert_eq!(s, Status::Pass, "{message}");
    assert!(message.contains("no kubelet"), "{message}");
}

#[test]
fn a_node_without_iptables_fails_under_kubeadms_name() {
    let inv = inventory(Topology::Stacked, 0);
    let obs = with_fault(&inv, 1, |s| {
        s.replace(
            "==kinit:modules==",
            "==kinit:commands==\nip\nmount\nnsenter\n==kinit:modules==",
        )
    });
    let r = run(&inv, &obs);
    let (host, check, message) = only_failure(&r);
    assert_eq!(
        (host.as_str(), check.as_str()),
        ("cp2", "FileExisting-iptables")
    );
    assert!(message.contains("not found in PATH"), "{message}");
    // The others are there; ip6tables is asked for only with an IPv6 pod subnet.
    let passed: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.host == "cp2" && f.status == Status::Pass)
        .map(|f| f.check.as_str())
        .filter(|c| c.starts_with("FileExisting-"))
        .collect();
    assert_eq!(
        passed,
        [
            "FileExisting-ip",
            "FileExisting-mount",
            "FileExisting-nsenter"
        ]
    );
}

#[test]
fn a_node_beyond_a_router_fails_the_pod_network_check_naming_the_others() {
    let inv = inventory(Topology::Stacked, 1);
    let worker = inv.hosts.iter().position(|h| h.name == "worker1").unwrap();
    // worker1's only subnet is its own address: every other node is beyond it.
    let address = inv.hosts[worker].address;
    let r = run(
        &inv,
        &with_fault(&inv, worker, |s| {
            s.replace(&format!("{address}/24"), &format!("{address}/32"))
        }),
    );
    let (host, check, message) = only_failure(&r);
    assert_eq!((host.as_str(), check.as_str()), ("worker1", "PodNetworkL2"));
    for other in ["cp1", "cp2", "cp3"] {
        assert!(message.contains(other), "{message}");
    }
    assert!(message.contains("without a router"), "{message}");
    // Skipped like any other check.
    let ignored = kinit::preflight::evaluate(
        &inv,
        &with_fault(&inv, worker, |s| {
            s.replace(&format!("{address}/24"), &format!("{address}/32"))
        }),
        &OperatorView::default(),
        &IgnoreSet::parse(&["PodNetworkL2".to_string()]),
    );
    assert!(failures(&ignored).is_empty(), "{:#?}", failures(&ignored));
}
