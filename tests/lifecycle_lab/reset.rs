//! Resets on the lab: one member of three while a client writes, then every host (one of them
//! unreachable at first), and the cluster built again.

use std::time::Instant;

use crate::support::hang_guard::kinit;
use crate::support::lab::*;
use crate::*;

/// One member of three reset, the leader at that: leadership moves first, a client keeps
/// writing through cp1 and cp2 all along, and the other two keep the data.
pub fn one_member(lab: &Lab) {
    let eps = endpoints(&ADDRS);
    let want = expected_keys(1000, "v1");
    // One member of three reset, the leader at that: leadership moves first, a client keeps
    // writing through cp1 and cp2 all along, and the other two keep the data.
    // A stray file in the data dir of the member to go: the reset refuses, naming it, before
    // the member is removed; nothing changes.
    lab.on("cp3", "echo mine > /var/lib/etcd/stray.txt");
    let out = lab.kinit(&["reset", "--hosts", "cp3", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reset cp3 with a stray file: {}",
        text(&out)
    );
    let all = text(&out);
    assert!(all.contains("cp3") && all.contains("stray.txt"), "{all}");
    let list = lab.etcdctl(&eps, &["member", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().count(),
        3,
        "no member removed: {}",
        text(&list)
    );
    lab.on(
        "cp3",
        "test -f /var/lib/etcd/stray.txt && test -d /var/lib/etcd/member && systemctl is-active -q etcd && \
         test -f /etc/etcd/etcd.conf.yml && rm /var/lib/etcd/stray.txt",
    );
    let cp3_id = member_id(lab, ADDRS[2]);
    let moved = lab.etcdctl(&eps, &["move-leader", &cp3_id]);
    assert!(moved.status.success(), "move-leader: {}", text(&moved));
    let writer = Writer::start(lab, &ADDRS[..2]);
    let started = Instant::now();
    let out = lab.kinit(&["-o", "json", "reset", "--hosts", "cp3", "--yes"]);
    let took = started.elapsed();
    let WriterReport {
        acked,
        failed: lost,
        ..
    } = writer.stop();
    println!(
        "figures: reset cp3 (its member first) {took:.1?}: {acked} writes acknowledged, {lost} lost"
    );
    assert!(out.status.success(), "reset cp3: {}", text(&out));
    assert_eq!(
        lost, 0,
        "writes lost while cp3 was reset ({acked} acknowledged)"
    );
    assert!(acked > 0);
    let written = lab.etcdctl(&eps[..2], &["get", "--prefix", "w/", "--keys-only"]);
    let written = String::from_utf8_lossy(&written.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(written, acked, "every acknowledged write is there");
    let r = result_event(&out, "reset");
    assert_eq!(r["membership"]["kind"], "remove", "{r:#}");
    // cp3's steps reported as `up`'s are: its etcd stopped, its data dir moved aside.
    let steps = step_actions(&json_lines(&out), "hosts", "cp3");
    for want in [
        r#"{"action":"stop","target":"etcd"}"#,
        r#"{"action":"move","target":{"from":"/var/lib/etcd","to":"/var/lib/etcd.reset-"#,
    ] {
        assert!(steps.contains(want), "{want}: {steps}");
    }
    let two = &eps[..2];
    let list = lab.etcdctl(two, &["member", "list"]);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(!list.contains("cp3"), "{list}");
    let health = lab.etcdctl(two, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health));
    assert_eq!(keys_on(lab, ADDRS[1]), want);
}

/// Everything off every host: nothing kinit started runs, none of its files stay, nothing
/// listens on etcd's or the frontend's ports, preflight passes, up builds it again.
pub fn everything(lab: &Lab) {
    let eps = endpoints(&ADDRS);
    // Everything off every host: nothing kinit started runs, none of its files stay, nothing
    // listens on etcd's or the frontend's ports, preflight passes, up builds it again.
    // A host that cannot be reached is reported and the others are still reset (exit 1); once
    // it is back, a second reset finishes the job.
    // A file kinit did not put in its scratch dir stays, and the report says so.
    lab.on(
        "cp1",
        "mkdir -p /var/lib/kinit/snapshot && echo mine > /var/lib/kinit/snapshot/mine.db",
    );
    let stopped = kinit(&["lab", "stop", "--name", lab.name, "cp3"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let out = lab.kinit(&["-o", "json", "reset", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reset with cp3 down: {}",
        text(&out)
    );
    let r = result_event(&out, "reset");
    let hosts = r["hosts"].as_array().unwrap();
    let by_name = |n: &str| hosts.iter().find(|h| h["host"] == n).unwrap().clone();
    assert!(by_name("cp3")["error"].is_string(), "{r:#}");
    for n in ["cp1", "cp2"] {
        assert!(by_name(n)["error"].is_null(), "{r:#}");
    }
    let kept = serde_json::json!({
        "action": "kept",
        "target": {"path": "/var/lib/kinit/snapshot", "found": ["mine.db"]}
    });
    assert!(
        by_name("cp1")["actions"]
            .as_array()
            .unwrap()
            .contains(&kept),
        "{r:#}"
    );
    lab.on(
        "cp1",
        "test -f /var/lib/kinit/snapshot/mine.db && rm /var/lib/kinit/snapshot/mine.db",
    );
    let started = kinit(&["lab", "start", "--name", lab.name, "cp3"]);
    assert!(started.status.success(), "{}", text(&started));
    let started = Instant::now();
    let out = lab.kinit(&["-o", "json", "reset", "--yes"]);
    println!("figures: reset of every host {:.1?}", started.elapsed());
    assert!(out.status.success(), "reset: {}", text(&out));
    let inv = inventory(lab);
    for host in &inv.hosts {
        let mut paths: Vec<&str> = Vec::new();
        let mut units: Vec<&str> = Vec::new();
        for c in components::on_host(&inv, host) {
            paths.extend(c.files.iter().map(|f| f.path));
            paths.extend(c.binaries.iter().map(|b| b.path));
            units.extend(c.units.iter().map(|u| u.name));
        }
        let left = lab.on(
            &host.name,
            &format!(
                "for p in {} /etc/kubernetes /var/lib/kinit/pending; do [ -e \"$p\" ] && echo \"$p\"; done; true",
                paths.join(" ")
            ),
        );
        assert_eq!(left, "", "{}: files left", host.name);
        for u in units.iter().filter(|u| !u.starts_with("systemd-")) {
            let state = lab.ssh(&host.name, &format!("systemctl is-active {u}"));
            let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
            assert_ne!(state, "active", "{}: {u} still active", host.name);
        }
        let listening = lab.on(
            &host.name,
            &format!(
                "ss -Hltn 'sport = :2379 or sport = :2380 or sport = :{}'",
                inv.endpoint.port
            ),
        );
        assert_eq!(listening, "", "{}: ports still held", host.name);
    }
    // cp2's data dir, a mount point, stays mounted and empty; its member went aside.
    lab.on(
        "cp2",
        &format!(
            "{CP2_MOUNTED} && test -z \"$(ls -A /var/lib/etcd)\" && test -d /var/lib/etcd.reset-*/member"
        ),
    );
    let pre = lab.kinit(&["preflight"]);
    assert_eq!(
        pre.status.code(),
        Some(0),
        "preflight after reset: {}",
        text(&pre)
    );
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "up after reset: {all}");
    let health = lab.etcdctl(&eps, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health));
}
