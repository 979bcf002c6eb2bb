//! Rolling changes on lab nodes (real systemd, sshd, etcd from Debian, haproxy, keepalived with
//! its VIP; a TLS stand-in for the apiserver behind haproxy). Three control-plane +
//! etcd hosts; while a writer on this machine puts a key every 100 ms through every member and
//! a connect loop goes through VIP:8443:
//! - `certs renew all` + `up`: each member restarts alone, healthy before the next, the leader
//!   last; every member then serves a certificate with a new serial; no put fails;
//! - a change to haproxy.cfg and keepalived.conf: reloads one host at a time (the VIP holder's
//!   keepalived last), the VIP never on two hosts, no failed connect;
//! - a renewal while one member is stopped, or frozen: the quorum guard refuses before any
//!   member restarts; `--force --dry-run` says it would go anyway;
//! - a new kubernetesVersion: the control planes' manifests replaced one host at a time.
//!
//! Runs as root; the lab is removed when the test ends however it ends.

mod support;

use std::time::Duration;

use serde_json::Value;

use support::lab::*;

const NAME: &str = "kroll";
const SUBNET: &str = "10.213.227.0/24";
const VIP: &str = "10.213.227.100";
const NODES: [&str; 3] = ["cp1", "cp2", "cp3"];
const ADDRS: [&str; 3] = ["10.213.227.11", "10.213.227.12", "10.213.227.13"];

/// Every JSON event `kinit -o json up` printed.
fn events(all: &str) -> Vec<Value> {
    all.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str, what: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["what"] == what)
        .collect()
}

fn hosts_of(events: &[&Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect()
}

/// The serial of the certificate etcd serves on `addr`:2379.
fn served_serial(lab: &Lab, addr: &str) -> String {
    let out = support::hang_guard::output_within(
        std::process::Command::new("sh").arg("-c").arg(format!(
            "openssl s_client -connect {addr}:2379 -CAfile {ca} -cert {cert} -key {key} \
             </dev/null 2>/dev/null | openssl x509 -noout -serial",
            ca = lab.pki("etcd/ca.crt"),
            cert = lab.pki("etcd/healthcheck-client.crt"),
            key = lab.pki("etcd/healthcheck-client.key"),
        )),
        COMMAND_LIMIT,
    );
    let serial = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(serial.starts_with("serial="), "{addr}: {}", text(&out));
    serial
}

/// The name of the member that leads.
fn leader(lab: &Lab) -> String {
    let out = lab.etcdctl(&endpoints(&ADDRS), &["endpoint", "status", "-w", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = status[0]["Status"]["leader"].as_u64().unwrap();
    let out = lab.etcdctl(&endpoints(&ADDRS), &["member", "list", "-w", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["ID"].as_u64() == Some(id))
        .map(|m| m["name"].as_str().unwrap().to_string())
        .unwrap()
}

/// When `unit` last started on `node`, seconds since the epoch (the nodes share this machine's
/// clock).
fn started_at(lab: &Lab, node: &str, unit: &str) -> f64 {
    lab.on(
        node,
        &format!(
            "date -d \"$(systemctl show {unit} -p ExecMainStartTimestamp --value \
             --timestamp=us+utc)\" +%s.%N"
        ),
    )
    .parse()
    .unwrap()
}

fn main_pids(lab: &Lab, unit: &str) -> Vec<String> {
    NODES
        .iter()
        .map(|n| lab.on(n, &format!("systemctl show -p MainPID --value {unit}")))
        .collect()
}

/// Restarts of `what` did not overlap: each started after the previous one was healthy again.
fn one_at_a_time(started: &[&Value], finished: &[&Value]) {
    assert_eq!(hosts_of(started), hosts_of(finished));
    for (s, f) in started.iter().zip(finished) {
        assert!(f["at"].as_f64() >= s["at"].as_f64(), "{s} {f}");
    }
    for (f, next) in finished.iter().zip(started.iter().skip(1)) {
        assert!(next["at"].as_f64() >= f["at"].as_f64(), "{f} then {next}");
    }
}

/// Each node samples, every 50 ms, whether it holds the VIP (a transient unit writing to
/// /run/vip-samples), so the VIP is watched on all nodes at once rather than one after another.
fn start_vip_samplers(lab: &Lab) {
    for n in NODES {
        lab.on(
            n,
            &format!(
                "systemd-run --unit vip-sampler sh -c 'while :; do if ip -o addr show | grep -q \
                 inet.{VIP}/; then echo 1; else echo 0; fi; sleep 0.05; done \
                 >/run/vip-samples'"
            ),
        );
    }
}

/// Stop the samplers: per node, (samples, samples holding the VIP).
fn stop_vip_samplers(lab: &Lab) -> Vec<(usize, usize)> {
    NODES
        .iter()
        .map(|n| {
            let out = lab.on(n, "systemctl stop vip-sampler; cat /run/vip-samples");
            let samples: Vec<&str> = out.lines().collect();
            (samples.len(), samples.iter().filter(|s| **s == "1").count())
        })
        .collect()
}

/// The built-in templates with a comment added to haproxy.cfg and keepalived.conf.
fn changed_templates(lab: &Lab, mark: &str) -> String {
    let dir = lab.dir().join("templates-rolling");
    std::fs::create_dir_all(&dir).unwrap();
    for t in ["haproxy.cfg.tera", "keepalived.conf.tera"] {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("templates")
            .join(t);
        let text = std::fs::read_to_string(src).unwrap();
        std::fs::write(dir.join(t), format!("# {mark}\n{text}")).unwrap();
    }
    dir.display().to_string()
}

#[test]
fn renewals_and_load_balancer_changes_roll_one_host_at_a_time() {
    let lab = lab_up(NAME, SUBNET, "3");
    let cfg = lab.config.to_str().unwrap().to_string();
    lab.up_serving(&NODES, VIP);

    // (a) Renewed certificates roll out: a dry run first changes nothing and shows the order.
    let serials: Vec<String> = ADDRS.iter().map(|a| served_serial(&lab, a)).collect();
    let out = lab.kinit(&["certs", "renew", "all"]);
    assert!(out.status.success(), "{}", text(&out));
    let etcd_pids = main_pids(&lab, "etcd");
    let lead = leader(&lab);
    let (code, _, all) = up(&lab, &["--dry-run"]);
    assert_eq!(code, 0, "dry run: {all}");
    let dry = events(&all);
    let order = of_kind(&dry, "restart-order", "etcd");
    assert_eq!(order.len(), 1, "{all}");
    let planned: Vec<String> = serde_json::from_value(order[0]["hosts"].clone()).unwrap();
    assert_eq!(planned.len(), 3, "{all}");
    assert_eq!(planned.last(), Some(&lead), "the leader goes last: {all}");
    assert!(of_kind(&dry, "restart-started", "etcd").is_empty(), "{all}");
    assert_eq!(
        main_pids(&lab, "etcd"),
        etcd_pids,
        "a dry run restarted etcd"
    );

    let writer = Writer::start(&lab, &ADDRS);
    let connects = ConnectLoop::start(&lab, VIP, 8443);
    std::thread::sleep(Duration::from_secs(2));
    let lead = leader(&lab);
    let (code, _, all) = up(&lab, &[]);
    std::thread::sleep(Duration::from_secs(1));
    let report = writer.stop();
    let (tries, failed_connects, last_error) = connects.stop();
    eprintln!(
        "renew rollout: writer acked {} failed {} longest gap {:?}; connects {tries} failed \
         {failed_connects}",
        report.acked, report.failed, report.longest_gap
    );
    assert_eq!(code, 0, "up: {all}");
    let ev = events(&all);
    let started = of_kind(&ev, "restart-started", "etcd");
    let finished = of_kind(&ev, "restart-finished", "etcd");
    assert_eq!(started.len(), 3, "{all}");
    one_at_a_time(&started, &finished);
    assert_eq!(hosts_of(&started).last(), Some(&lead), "leader last: {all}");
    assert!(
        all.contains(&format!("etcd leadership handed from {lead}")),
        "{all}"
    );
    // Each unit's own start time falls inside its restart's window.
    for (s, f) in started.iter().zip(&finished) {
        let host = s["host"].as_str().unwrap();
        let at = started_at(&lab, host, "etcd");
        assert!(
            at >= s["at"].as_f64().unwrap() - 0.5 && at <= f["at"].as_f64().unwrap(),
            "{host}: etcd started at {at}, restart window {s} .. {f}"
        );
    }
    for (addr, before) in ADDRS.iter().zip(&serials) {
        assert_ne!(
            &served_serial(&lab, addr),
            before,
            "{addr} serves the old cert"
        );
    }
    assert_eq!(report.failed, 0, "failed puts: {report:?}");
    assert_eq!(failed_connects, 0, "{last_error}");
    // Converged: a second run restarts nothing.
    let (code, _, all) = up(&lab, &[]);
    assert_eq!(code, 0, "{all}");
    assert!(
        !events(&all).iter().any(|e| e["event"] == "restart-started"),
        "{all}"
    );

    // (b) haproxy.cfg and keepalived.conf change: reloads roll, the VIP stays on one host.
    let templates = changed_templates(&lab, "rolling test");
    let holder = lab.vip_holders(&NODES, VIP);
    assert_eq!(holder.len(), 1, "{holder:?}");
    let lb_pids = (main_pids(&lab, "haproxy"), main_pids(&lab, "keepalived"));
    let connects = ConnectLoop::start(&lab, VIP, 8443);
    start_vip_samplers(&lab);
    let (code, _, all) = up(&lab, &["--templates", &templates]);
    std::thread::sleep(Duration::from_secs(1));
    let samples = stop_vip_samplers(&lab);
    let (tries, failed_connects, last_error) = connects.stop();
    eprintln!("load balancer: VIP samples per node (taken, holding) {samples:?}; connects {tries}");
    assert_eq!(code, 0, "up: {all}");
    let ev = events(&all);
    for unit in ["haproxy", "keepalived"] {
        let started = of_kind(&ev, "restart-started", unit);
        let finished = of_kind(&ev, "restart-finished", unit);
        assert_eq!(started.len(), 3, "{unit}: {all}");
        assert!(started.iter().all(|e| e["action"] == "reload"), "{all}");
        one_at_a_time(&started, &finished);
    }
    let keepalived = hosts_of(&of_kind(&ev, "restart-started", "keepalived"));
    assert_eq!(keepalived.last(), holder.first(), "VIP holder last: {all}");
    // The VIP never moved: its holder had it in every sample, no other node in any.
    for (n, (taken, holding)) in NODES.iter().zip(&samples) {
        assert!(*taken > 20, "{n}: {taken} samples");
        let expected = if holder.iter().any(|h| h == n) {
            *taken
        } else {
            0
        };
        assert_eq!(
            *holding, expected,
            "{n}: held the VIP in {holding} of {taken} samples"
        );
    }
    assert_eq!(failed_connects, 0, "{last_error}");
    assert_eq!(
        (main_pids(&lab, "haproxy"), main_pids(&lab, "keepalived")),
        lb_pids,
        "a reload restarted a daemon"
    );
    assert_eq!(lab.vip_holders(&NODES, VIP), holder);

    // (c) One member stopped: preflight knows its data for this host's member (not another
    // install's), and the quorum guard refuses a renewal before any member restarts or starts.
    lab.on("cp3", "systemctl stop etcd");
    let out = lab.kinit(&[
        "-o",
        "json",
        "preflight",
        "--ignore-preflight-errors=Port-6443",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "/var/lib/etcd holds this host's etcd member (kinit's etcd config names it); etcd is \
             not running"
        ),
        "{}",
        text(&out)
    );
    let out = lab.kinit(&["certs", "renew", "all"]);
    assert!(out.status.success(), "{}", text(&out));
    let etcd_pids = main_pids(&lab, "etcd");
    let (code, _, all) = up(&lab, &["--templates", &templates]);
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("would leave 1 of 3 voting member(s) healthy (cp3 is not)"),
        "{all}"
    );
    assert_eq!(
        main_pids(&lab, "etcd"),
        etcd_pids,
        "a member restarted or started"
    );
    lab.on("cp3", "systemctl start etcd");
    lab.wait_healthy(&cfg);
    let (code, _, all) = up(&lab, &["--templates", &templates]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        of_kind(&events(&all), "restart-finished", "etcd").len(),
        3,
        "{all}"
    );

    // (c') One member frozen (running, not answering: a hung disk looks like this): refused
    // the same way.
    lab.on(
        "cp3",
        "kill -STOP $(systemctl show -p MainPID --value etcd)",
    );
    let out = lab.kinit(&["certs", "renew", "all"]);
    assert!(out.status.success(), "{}", text(&out));
    let etcd_pids = main_pids(&lab, "etcd");
    let args = ["--templates", templates.as_str()];
    let (code, _, all) = up(&lab, &args);
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("would leave 1 of 3 voting member(s) healthy (cp3 is not)")
            && all.contains("a majority of 3, which is 2")
            && all.contains("--force"),
        "{all}"
    );
    assert_eq!(main_pids(&lab, "etcd"), etcd_pids, "something restarted");
    let (code, _, all) = up(&lab, &["--templates", &templates, "--dry-run", "--force"]);
    assert_eq!(code, 0, "{all}");
    assert!(
        all.contains("warning: --force: restarting etcd on"),
        "{all}"
    );
    // Back to three: the renewal rolls out.
    lab.on(
        "cp3",
        "kill -CONT $(systemctl show -p MainPID --value etcd)",
    );
    lab.wait_healthy(&cfg);
    let (code, _, all) = up(&lab, &args);
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        of_kind(&events(&all), "restart-finished", "etcd").len(),
        3,
        "{all}"
    );

    // (c'') Every member frozen: the guard cannot read the member list, so it refuses (fails
    // closed) instead of restarting etcd unguarded; --force goes on, said.
    let freeze = |signal: &str| {
        for n in NODES {
            lab.on(
                n,
                &format!("kill -{signal} $(systemctl show -p MainPID --value etcd)"),
            );
        }
    };
    freeze("STOP");
    let out = lab.kinit(&["certs", "renew", "all"]);
    assert!(out.status.success(), "{}", text(&out));
    let etcd_pids = main_pids(&lab, "etcd");
    let (code, _, all) = up(&lab, &args);
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("the quorum guard cannot count etcd's voting members")
            && all.contains("no etcd member answered")
            && all.contains("--force"),
        "{all}"
    );
    assert_eq!(main_pids(&lab, "etcd"), etcd_pids, "something restarted");
    let (code, _, all) = up(&lab, &["--templates", &templates, "--dry-run", "--force"]);
    assert_eq!(code, 0, "{all}");
    assert!(
        all.contains("warning: --force: etcd restarts without the quorum guard"),
        "{all}"
    );
    freeze("CONT");
    lab.wait_healthy(&cfg);
    let (code, _, all) = up(&lab, &args);
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        of_kind(&events(&all), "restart-finished", "etcd").len(),
        3,
        "{all}"
    );

    // (d) A new kubernetesVersion: the control planes' manifests are replaced one host at a
    // time (the plan's order; no kubelet runs here to re-create the pods).
    let yaml = std::fs::read_to_string(&lab.config).unwrap();
    let version = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("kubernetesVersion: "))
        .unwrap()
        .to_string();
    let next = bump_patch(&version);
    std::fs::write(
        &lab.config,
        yaml.replace(
            &format!("kubernetesVersion: {version}"),
            &format!("kubernetesVersion: {next}"),
        ),
    )
    .unwrap();
    let manifest = "sha256sum /etc/kubernetes/manifests/kube-apiserver.yaml";
    let before: Vec<String> = NODES.iter().map(|n| lab.on(n, manifest)).collect();
    let (code, _, all) = up(&lab, &["--templates", &templates, "--dry-run"]);
    assert_eq!(code, 0, "{all}");
    let dry = events(&all);
    let order = of_kind(&dry, "restart-order", "control-plane");
    assert_eq!(order.len(), 1, "{all}");
    assert_eq!(order[0]["hosts"], serde_json::json!(NODES), "{all}");
    // Each host's steps of the phase end before the next host's begin.
    let steps: Vec<String> = dry
        .iter()
        .filter(|e| {
            e["phase"] == "control-plane"
                && (e["event"] == "step-started" || e["event"] == "step-finished")
        })
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    let mut runs = steps.clone();
    runs.dedup();
    assert_eq!(runs, NODES, "interleaved: {steps:?}");
    let after: Vec<String> = NODES.iter().map(|n| lab.on(n, manifest)).collect();
    assert_eq!(before, after, "a dry run wrote a manifest");
    let (code, _, all) = up(&lab, &["--templates", &templates]);
    assert_eq!(code, 0, "{all}");
    let ev = events(&all);
    let started = of_kind(&ev, "restart-started", "control-plane");
    let finished = of_kind(&ev, "restart-finished", "control-plane");
    assert_eq!(hosts_of(&started), NODES, "{all}");
    one_at_a_time(&started, &finished);
    for (n, b) in NODES.iter().zip(&before) {
        assert_ne!(&lab.on(n, manifest), b, "{n}: manifest unchanged");
    }
}

/// `kinit up` once the apiserver stand-in holds 6443 (preflight would name it).
fn up(lab: &Lab, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["--ignore-preflight-errors=Port-6443"];
    args.extend_from_slice(extra);
    lab.up(&args)
}

/// v1.31.4 -> v1.31.5
fn bump_patch(version: &str) -> String {
    let (head, patch) = version.rsplit_once('.').unwrap();
    format!("{head}.{}", patch.parse::<u32>().unwrap() + 1)
}
