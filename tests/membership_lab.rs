//! etcd membership grown through cluster.yaml and `kinit up` on lab nodes (real systemd, sshd,
//! etcd 3.4 from Debian, haproxy, keepalived): two workers made control-plane + etcd in one
//! `up` while a client writes to the original members and another connects through the VIP;
//! a host whose address is a member under another name refused; a join that fails after
//! `member add` resumed by the next `up` without a second member. Runs as root; the lab is
//! removed when the test ends however it ends.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::hang_guard::kinit;
use support::lab::*;

use kinit::etcd::{ClientTls, Member};

const SUBNET: &str = "10.213.221.0/24";
const ORIGINAL: [&str; 3] = ["10.213.221.11", "10.213.221.12", "10.213.221.13"];
/// The apiserver stand-ins hold 6443 once started.
const UP: &[&str] = &["--ignore-preflight-errors=Port-6443"];
const ALL: [&str; 5] = ["cp1", "cp2", "cp3", "w1", "w2"];

fn tls(lab: &Lab) -> ClientTls {
    ClientTls::from_pki_dir(&lab.dir().join("pki")).unwrap()
}

fn vip(lab: &Lab) -> String {
    let loaded = kinit::config::load(&lab.config).unwrap();
    kinit::inventory::Inventory::from_config(&loaded.config, lab.dir(), None)
        .unwrap()
        .endpoint
        .address
}

fn members(lab: &Lab) -> Vec<Member> {
    let tls = tls(lab);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for a in ORIGINAL {
            let ep = format!("https://{a}:2379");
            if let Ok(l) = kinit::etcd::member_list(&tls, &ep, Duration::from_secs(3)).await {
                return l;
            }
        }
        panic!("no original member gives its member list")
    })
}

/// Give `nodes` the roles control-plane and etcd in the lab's cluster.yaml.
fn promote_in_config(lab: &Lab, nodes: &[&str]) {
    for n in nodes {
        lab.edit_host(n, |l| Some(l.replace("[worker]", "[control-plane, etcd]")));
    }
}

/// The main PID of `unit` on `node` (unchanged by a reload, new after a restart).
fn main_pid(lab: &Lab, node: &str, unit: &str) -> String {
    lab.on(node, &format!("systemctl show -p MainPID --value {unit}"))
}

/// A loop of TLS handshakes through VIP:8443 to the apiserver stand-ins, the certificate
/// verified against the cluster CA: (handshakes, failures).
struct Connector {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, Vec<String>)>,
}

impl Connector {
    fn start(lab: &Lab, vip: &str) -> Connector {
        let ca = lab.pki("ca.crt");
        let vip = vip.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut done, mut failures) = (0, Vec::new());
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                // A handshake that hangs is a failure of its own, recorded with when it began
                // (the up's output, printed with the failures, says what was changing then),
                // not a panic of this thread that would hide the up's output.
                let at = started.elapsed();
                let child = support::hang_guard::spawn_guarded(
                    std::process::Command::new("openssl")
                        .args(["s_client", "-connect", &format!("{vip}:8443")])
                        .args(["-CAfile", &ca, "-verify_return_error", "-verify_ip", &vip])
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped()),
                );
                let watchdog = support::hang_guard::Watchdog::arm(&child, Duration::from_secs(30));
                let out = child.wait_with_output().unwrap();
                let hung = watchdog.disarm();
                let all = String::from_utf8_lossy(&out.stdout).to_string()
                    + &String::from_utf8_lossy(&out.stderr);
                done += 1;
                if hung {
                    failures.push(format!(
                        "{:.1} s in: no handshake within 30 s: {}",
                        at.as_secs_f64(),
                        tail(&all)
                    ));
                } else if !(out.status.success() && all.contains("Verify return code: 0 (ok)")) {
                    failures.push(format!("{:.1} s in: {}", at.as_secs_f64(), tail(&all)));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (done, failures)
        });
        Connector { stop, thread }
    }

    fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The last lines of a client's output, on one line.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

/// haproxy's log lines, on the original control planes, of connections from this machine whose
/// termination state is not `--` (a normal end): which backend a failed or hung handshake went
/// to, and which side timed out or reset.
fn unusual_connections(lab: &Lab) -> String {
    ALL[..3]
        .iter()
        .map(|n| {
            // This machine is the lab bridge's first address in SUBNET.
            let here = SUBNET.replace(".0/24", ".1");
            let log = lab.on(
                n,
                &format!(
                    "journalctl -u haproxy --no-pager -o short-precise \
                     | grep ' {here}:' | grep -v ' -- ' | tail -n 10"
                ),
            );
            format!("{n}:\n{log}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls the member list every 100 ms: the learners it saw (by name or peer URL).
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<String>>,
}

impl Watcher {
    fn start(lab: &Lab) -> Watcher {
        let tls = tls(lab);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let mut seen: Vec<String> = Vec::new();
                let ep = format!("https://{}:2379", ORIGINAL[0]);
                while !flag.load(Ordering::Relaxed) {
                    if let Ok(list) =
                        kinit::etcd::member_list(&tls, &ep, Duration::from_secs(2)).await
                    {
                        for m in list.iter().filter(|m| m.is_learner) {
                            let who = format!("{} {}", m.name, m.peer_urls.join(","));
                            if !seen.contains(&who) {
                                seen.push(who);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                seen
            })
        });
        Watcher { stop, thread }
    }

    fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The `etcd-member` events of a `kinit -o json up` run, as (action, host).
fn member_events(all: &str) -> Vec<(String, String)> {
    all.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "etcd-member")
        .map(|v| {
            (
                v["action"].as_str().unwrap().to_string(),
                v["host"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn workers_become_etcd_members_as_learners_one_at_a_time() {
    let lab = lab_up("kjoin", SUBNET, "5");
    let vip = vip(&lab);
    let (code, _, all) = lab.up(UP);
    assert_eq!(code, 0, "first up: {all}");
    for n in &ALL[..3] {
        lab.start_standin(n);
    }
    wait_for("the VIP to answer", Duration::from_secs(30), || {
        lab.vip_verifies(&vip, 8443)
    });

    // Refused before any host is touched: cp3's address under another name.
    let original = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(&lab.config, original.replace("{name: cp3,", "{name: cp9,")).unwrap();
    let (code, _, all) = lab.up(UP);
    assert_ne!(code, 0, "{all}");
    assert!(
        all.contains("is already etcd member cp3") && all.contains("cp9"),
        "{all}"
    );
    assert!(
        !all.contains("\"phase-started\""),
        "refused before any phase: {all}"
    );
    std::fs::write(&lab.config, &original).unwrap();
    assert_eq!(members(&lab).len(), 3);

    // 3 -> 5 in one `up`, under a writer and a connect loop.
    let pids =
        |unit: &str| -> Vec<String> { ALL[..3].iter().map(|n| main_pid(&lab, n, unit)).collect() };
    let before = (pids("etcd"), pids("haproxy"), pids("keepalived"));
    let holders = lab.vip_holders(&ALL, &vip);
    assert_eq!(holders.len(), 1, "{holders:?}");
    promote_in_config(&lab, &["w1", "w2"]);
    let writer = Writer::start(&lab, &ORIGINAL);
    let connector = Connector::start(&lab, &vip);
    let watcher = Watcher::start(&lab);
    let started = Instant::now();
    let (code, _, all) = lab.up(UP);
    let took = started.elapsed();
    let learners = watcher.stop();
    let (connects, connect_failures) = connector.stop();
    let WriterReport {
        acked,
        failed,
        longest_gap: gap,
    } = writer.stop();
    eprintln!(
        "3 -> 5: up {:.1} s; writer {acked} acked, {failed} failed, longest gap {} ms; \
         {connects} connects, {} failed; learners seen {learners:?}",
        took.as_secs_f64(),
        gap.as_millis(),
        connect_failures.len()
    );
    assert_eq!(code, 0, "3 -> 5: {all}");
    assert_eq!(
        member_events(&all),
        [
            ("learner-added".to_string(), "w1".to_string()),
            ("promoted".into(), "w1".into()),
            ("learner-added".into(), "w2".into()),
            ("promoted".into(), "w2".into()),
        ],
        "one at a time: {all}"
    );
    assert!(
        all.contains("w1 added as learner, promoted after "),
        "{all}"
    );
    assert!(
        all.contains(" 0 re-issued"),
        "no certificate issued again: {all}"
    );
    for peer in ["10.213.221.14:2380", "10.213.221.15:2380"] {
        assert!(
            learners.iter().any(|l| l.contains(peer)),
            "the member list showed {peer} as a learner: {learners:?}"
        );
    }
    let list = members(&lab);
    let mut names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ALL, "{list:?}");
    assert!(list.iter().all(|m| !m.is_learner), "{list:?}");
    assert_eq!(
        (pids("etcd"), pids("haproxy"), pids("keepalived")),
        before,
        "existing etcd members not restarted; haproxy and keepalived reloaded, not restarted"
    );
    assert_eq!(lab.vip_holders(&ALL, &vip), holders, "the VIP stayed");
    assert_eq!(failed, 0, "failed puts (longest gap {gap:?})");
    assert!(
        connect_failures.is_empty(),
        "{connect_failures:#?}\nhaproxy's log of connections from here that did not end \
         normally:\n{}\nthe up (from the connector's start):\n{all}",
        unusual_connections(&lab)
    );
    for n in &ALL[3..] {
        lab.start_standin(n);
    }
    let report = lab.wait_healthy(lab.config.to_str().unwrap());
    for n in ALL {
        let servers = host(&report, n)["haproxy"]["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 5, "{n}: {servers:?}");
    }
    // A second `up` changes nothing.
    let (code, _, all) = lab.up(UP);
    assert_eq!(code, 0, "{all}");
    assert!(member_events(&all).is_empty(), "{all}");

    // A join that fails after `member add` (w2's etcd cannot start: its data dir is a file),
    // then the next `up` converges without a second member for w2.
    let w2 = list.iter().find(|m| m.name == "w2").unwrap().id;
    let out = lab.etcdctl(
        &endpoints(&ORIGINAL),
        &["member", "remove", &format!("{w2:x}")],
    );
    assert!(out.status.success(), "{}", text(&out));
    lab.on(
        "w2",
        "systemctl stop etcd && rm -rf /var/lib/etcd && touch /var/lib/etcd",
    );
    let (code, _, all) = lab.up(UP);
    assert_ne!(code, 0, "{all}");
    assert!(all.contains("did not start within"), "{all}");
    let list = members(&lab);
    let w2_peer = "https://10.213.221.15:2380";
    let unstarted: Vec<&Member> = list
        .iter()
        .filter(|m| m.peer_urls.iter().any(|u| u == w2_peer))
        .collect();
    assert_eq!(unstarted.len(), 1, "{list:?}");
    assert!(unstarted[0].name.is_empty(), "{list:?}");
    lab.on("w2", "systemctl stop etcd; rm -f /var/lib/etcd");
    let (code, _, all) = lab.up(UP);
    if code != 0 {
        for n in ALL {
            eprintln!(
                "{n}: {}",
                text(&lab.ssh(
                    n,
                    "journalctl -u etcd --no-pager -n 15 -o cat | cut -c1-300"
                ))
            );
        }
    }
    assert_eq!(code, 0, "resumed: {all}");
    assert_eq!(
        member_events(&all),
        [
            ("unstarted-removed".to_string(), "w2".to_string()),
            ("learner-added".into(), "w2".into()),
            ("promoted".into(), "w2".into()),
        ],
        "{all}"
    );
    let list = members(&lab);
    assert_eq!(list.len(), 5, "no second member for w2: {list:?}");
    assert!(list.iter().all(|m| !m.name.is_empty() && !m.is_learner));
    lab.wait_healthy(lab.config.to_str().unwrap());

    // A control plane dropped from cluster.yaml by hand: `up` names its etcd member and its
    // haproxy backends as not in cluster.yaml (a dry run: nothing changes).
    lab.edit_host("w1", |l| {
        Some(l.replace("[control-plane, etcd]", "[worker]"))
    });
    let (code, _, all) = lab.up(&[UP[0], "--dry-run"]);
    assert_eq!(code, 0, "{all}");
    assert!(
        all.contains("haproxy's backend server(s) w1 (10.213.221.14:6443) are not in cluster.yaml"),
        "{all}"
    );
    assert!(
        member_events(&all).contains(&("not-in-config".to_string(), "w1".to_string())),
        "{all}"
    );
    promote_in_config(&lab, &["w1"]);

    // 5 -> 3: `kinit remove` takes both back out under the writer, then they are workers again.
    let marker = lab.etcdctl(&endpoints(&ORIGINAL), &["put", "replace/marker", "kept"]);
    assert!(marker.status.success(), "{}", text(&marker));
    let writer = Writer::start(&lab, &ORIGINAL);
    let out = lab.kinit(&["remove", "w1", "w2", "--yes"]);
    let WriterReport {
        acked,
        failed,
        longest_gap: gap,
    } = writer.stop();
    eprintln!("5 -> 3: {acked} puts acknowledged, {failed} failed, longest gap {gap:?}");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(failed, 0, "failed puts (longest gap {gap:?})");
    let names = |lab: &Lab| {
        let mut n: Vec<String> = members(lab).into_iter().map(|m| m.name).collect();
        n.sort();
        n
    };
    assert_eq!(names(&lab), ["cp1", "cp2", "cp3"]);
    for n in ["w1", "w2"] {
        lab.edit_host(n, |l| Some(l.replace("[control-plane, etcd]", "[worker]")));
    }
    lab.wait_healthy(lab.config.to_str().unwrap());

    // Replace: cp3 is gone for good (data deleted, node powered off), taken out with
    // --unreachable, and w1 takes its place through cluster.yaml and `up`.
    lab.on("cp3", "systemctl stop etcd && rm -rf /var/lib/etcd");
    let stop = kinit(&["lab", "stop", "--name", "kjoin", "cp3"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let out = lab.kinit(&["remove", "cp3", "--unreachable", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(names(&lab), ["cp1", "cp2"]);
    lab.edit_host("cp3", |_| None);
    promote_in_config(&lab, &["w1"]);
    let (code, _, all) = lab.up(UP);
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        member_events(&all),
        [
            ("learner-added".to_string(), "w1".to_string()),
            ("promoted".into(), "w1".into()),
        ],
        "{all}"
    );
    assert_eq!(names(&lab), ["cp1", "cp2", "w1"]);
    lab.start_standin("w1");
    lab.wait_healthy(lab.config.to_str().unwrap());
    let got = lab.etcdctl(
        &endpoints(&["10.213.221.14"]),
        &["get", "replace/marker", "--print-value-only"],
    );
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "kept",
        "data intact on the new member"
    );
}
