//! Preflight's port checks from captured probe output: who holds a component's port (kinit's own
//! unit, a stray install, something else), paths between hosts the cluster will use, the VIP.

mod support;

use kinit::config::Topology;
use kinit::preflight::{HostObservation, IgnoreSet, OperatorView, Status, evaluate};
use support::preflight::*;

/// A listener on `port` held by pid 900, with what the probe saw of that process.
fn held(
    port: u16,
    comm: &str,
    exe: &str,
    cgroup: &str,
    main_exe: &str,
) -> impl Fn(String) -> String {
    let section = format!(
        "LISTEN 0 5 0.0.0.0:{port} 0.0.0.0:* users:((\"{comm}\",pid=900,fd=3))\n\
         ==kinit:processes==\npid 900\nexe {exe}\ncgroup {cgroup}\nmain-exe {main_exe}\n\
         cmd {exe} --data-dir /var/lib/etcd\npid 61\n"
    );
    move |s: String| s.replacen("==kinit:processes==\npid 61\n", &section, 1)
}

#[test]
fn a_foreign_listener_on_2379_fails_but_kinits_own_etcd_passes() {
    let inv = inventory(Topology::Stacked, 0);
    let line =
        "LISTEN 0 5 0.0.0.0:2379 0.0.0.0:* users:((\"python3\",pid=900,fd=3))\n==kinit:processes==";
    let obs = with_fault(&inv, 1, |s| s.replace("==kinit:processes==", line));
    let (host, check, msg) = only_failure(&run(&inv, &obs));
    assert_eq!((host.as_str(), check.as_str()), ("cp2", "Port-2379"));
    assert!(
        msg.contains("python3 on 0.0.0.0") && msg.contains("etcd needs it"),
        "{msg}"
    );

    // kinit's own: etcd.service running the binary kinit installs.
    let own = held(
        2379,
        "etcd",
        "/usr/local/bin/etcd",
        "/system.slice/etcd.service",
        "/usr/local/bin/etcd",
    );
    let obs = with_fault(&inv, 1, &own);
    let r = run(&inv, &obs);
    assert!(failures(&r).is_empty(), "{:#?}", failures(&r));
    // ... and the data directory it holds is its own.
    let obs = with_fault(&inv, 1, |s| {
        own(s).replace(
            "==kinit:etcd-dir==\nabsent",
            "==kinit:etcd-dir==\nexists\nmember",
        )
    });
    assert!(failures(&run(&inv, &obs)).is_empty());
}

#[test]
fn a_stray_etcd_fails_naming_its_process_unit_and_removal() {
    let inv = inventory(Topology::Stacked, 0);
    // (exe, cgroup, main-exe of the cgroup's unit, in the message, in the fix)
    let cases = [
        // Debian's etcd through its packaged etcd.service: the unit's name is kinit's, the
        // binary is not.
        (
            "/usr/bin/etcd",
            "/system.slice/etcd.service",
            "/usr/bin/etcd",
            "pid 900, /usr/bin/etcd, `/usr/bin/etcd --data-dir /var/lib/etcd`, unit etcd.service",
            "`systemctl stop etcd.service`",
        ),
        // kinit's binary, run by another unit (kubeasz-style, or systemd-run).
        (
            "/usr/local/bin/etcd",
            "/system.slice/run-u12.service",
            "/usr/local/bin/etcd",
            "unit run-u12.service",
            "`systemctl stop run-u12.service`",
        ),
        // Started by hand from a login shell under sshd (no logind): never "stop sshd".
        (
            "/usr/bin/etcd",
            "/system.slice/ssh.service",
            "/usr/sbin/sshd",
            "no unit of its own: started from within ssh.service",
            "`kill 900`",
        ),
        (
            "/usr/bin/etcd",
            "/user.slice/user-0.slice/session-4.scope",
            "",
            "no unit of its own: in session-4.scope",
            "`kill 900`",
        ),
    ];
    for (exe, cgroup, main, in_msg, in_fix) in cases {
        let obs = with_fault(&inv, 1, held(2379, "etcd", exe, cgroup, main));
        let r = run(&inv, &obs);
        let (host, check, msg) = only_failure(&r);
        assert_eq!(
            (host.as_str(), check.as_str()),
            ("cp2", "Port-2379"),
            "{msg}"
        );
        assert!(msg.contains(in_msg), "{in_msg:?} not in {msg}");
        assert!(
            msg.contains("not by etcd as etcd.service running /usr/local/bin/etcd"),
            "{msg}"
        );
        let fix = r
            .findings
            .iter()
            .find(|f| f.check == "Port-2379" && f.host == "cp2")
            .and_then(|f| f.fix.clone())
            .unwrap();
        assert!(fix.contains(in_fix), "{in_fix:?} not in {fix}");
        assert!(!fix.contains("ssh.service"), "{fix}");
    }

    // A stray etcd's data directory is not taken for kinit's member.
    let obs = with_fault(&inv, 1, |s| {
        held(
            2379,
            "etcd",
            "/usr/bin/etcd",
            "/system.slice/etcd.service",
            "/usr/bin/etcd",
        )(s)
        .replace(
            "==kinit:etcd-dir==\nabsent",
            "==kinit:etcd-dir==\nexists\nmember",
        )
    });
    let checks: Vec<String> = failures(&run(&inv, &obs))
        .into_iter()
        .map(|f| f.1)
        .collect();
    assert_eq!(checks, ["Port-2379", "DirAvailable--var-lib-etcd"]);

    // haproxy comes from the distribution: its unit alone makes it kinit's.
    let obs = with_fault(
        &inv,
        0,
        held(
            8443,
            "haproxy",
            "/usr/sbin/haproxy",
            "/system.slice/haproxy.service",
            "/usr/sbin/haproxy",
        ),
    );
    assert!(failures(&run(&inv, &obs)).is_empty());
}

#[test]
fn a_path_that_does_not_get_there_names_the_port_and_the_firewall_case() {
    let inv = inventory(Topology::Stacked, 1);
    let cases = [
        (
            "timeout",
            "no answer within 2 s: a firewall drops the packets",
        ),
        ("No route to host", "a firewall rejects it"),
        (
            "Permission denied",
            "a local firewall rule or a prohibit route rejects it",
        ),
        (
            "Network is unreachable",
            "this host has no route to that address",
        ),
        ("Invalid argument", "the connect failed: Invalid argument"),
    ];
    for (word, said) in cases {
        let obs = with_fault(&inv, 0, |s| {
            // A timeout: bash never said anything (the first line stays).
            let said = if word == "timeout" {
                String::new()
            } else {
                format!("/dev/tcp/192.168.9.13/6443: {word}")
            };
            s.replace("/dev/tcp/192.168.9.13/6443: Connection refused", &said)
        });
        let r = run(&inv, &obs);
        let (host, check, msg) = only_failure(&r);
        assert_eq!(
            (host.as_str(), check.as_str()),
            ("cp1", "PortReachable-6443")
        );
        assert!(
            msg.starts_with("cannot reach kube-apiserver's port 6443 on cp3 (192.168.9.13:6443): ")
                && msg.contains(said),
            "{said:?} not in {msg}"
        );
    }
    // Something already listening answers too: the path is open.
    let obs = with_fault(&inv, 0, |s| {
        s.replace(
            "bash: line 1: /dev/tcp/192.168.9.13/6443: Connection refused",
            "192.168.9.13 6443 open",
        )
    });
    assert!(failures(&run(&inv, &obs)).is_empty());

    // Paths to a host that could not be probed are not judged (its Reachable failure is the
    // one to fix).
    let mut obs = with_fault(&inv, 0, |s| {
        s.replace("/dev/tcp/192.168.9.13/6443: Connection refused", "")
    });
    obs.insert(
        "cp3".into(),
        HostObservation::Unreachable {
            reason: "connect: timed out".into(),
        },
    );
    let (host, check, _) = only_failure(&run(&inv, &obs));
    assert_eq!((host.as_str(), check.as_str()), ("cp3", "Reachable"));

    // No bash on the host: the connects could not run, which warns rather than passes.
    let obs = with_fault(&inv, 0, |s| {
        let start = s.find("==kinit:reach==\n").unwrap() + "==kinit:reach==\n".len();
        let end = s.find("==kinit:clock==").unwrap();
        format!("{}{}", &s[..start], &s[end..])
    });
    let r = run(&inv, &obs);
    assert!(!r.failed());
    let w = r
        .findings
        .iter()
        .find(|f| f.host == "cp1" && f.check == "PortReachable")
        .unwrap();
    assert_eq!(w.status, Status::Warn);
}

#[test]
fn a_vip_answering_elsewhere_fails_and_ours_passes() {
    let inv = inventory(Topology::Stacked, 0);
    let obs = with_fault(&inv, 0, |s| s);
    let r = evaluate(
        &inv,
        &obs,
        &OperatorView {
            vip_answers: Some(true),
        },
        &IgnoreSet::default(),
    );
    let (_, check, _) = only_failure(&r);
    assert_eq!(check, "VirtualIP");
    let obs = with_fault(&inv, 1, |s| {
        s.replace("lo ::1/128", "host0 192.168.9.100/24\nlo ::1/128")
    });
    let r = evaluate(
        &inv,
        &obs,
        &OperatorView {
            vip_answers: Some(true),
        },
        &IgnoreSet::default(),
    );
    assert!(!r.failed(), "{:#?}", failures(&r));
}
