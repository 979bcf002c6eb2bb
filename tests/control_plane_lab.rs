//! The real control plane on lab nodes: kube-apiserver, kube-controller-manager and
//! kube-scheduler v1.37 (built here by hack/build-upstream.sh) as systemd units behind
//! haproxy and the keepalived VIP, on etcd 3.6 from the same build. A client on this machine
//! reads `/readyz` and a ConfigMap through VIP:8443 every 100 ms during each change and counts
//! failed requests and the longest gap. Runs as root.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::hang_guard::output_within;
use support::lab::*;

const CONFIGMAP: &str = "/api/v1/namespaces/kinit-probe/configmaps/probe";

/// A command's stdout, once it succeeded.
fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The status report's control-plane section: (apiservers ready, lease holders).
fn control_plane(report: &Value) -> (Vec<String>, Vec<(String, String)>) {
    let cp = &report["controlPlane"];
    let ready = cp["apiservers"]
        .as_array()
        .unwrap_or_else(|| panic!("no control plane in {report:#}"))
        .iter()
        .filter(|a| a["ready"] == true)
        .map(|a| a["host"].as_str().unwrap().to_string())
        .collect();
    let leases = cp["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["holder"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (ready, leases)
}

#[test]
fn a_real_control_plane_serves_through_the_vip_fails_over_and_rolls_without_a_failed_request() {
    let lab = lab_up_kubernetes("kcp", "10.213.210.0/24", "3");
    let vip = "10.213.210.100";
    let config = lab.config.to_str().unwrap().to_string();
    let yaml = std::fs::read_to_string(&lab.config).unwrap();
    assert!(
        yaml.contains("mode: systemd") && yaml.contains("v1.37"),
        "{yaml}"
    );

    // up: etcd 3.6, haproxy + keepalived, the three units, the RBAC binding.
    let started = Instant::now();
    let (code, summary, all) = lab.up(&["--topology", "stacked"]);
    assert_eq!(code, 0, "up: {all}");
    assert_eq!(summary["event"], "summary", "{all}");
    let up_took = started.elapsed();
    assert!(
        all.contains("bound the group kubeadm:cluster-admins"),
        "the RBAC step: {all}"
    );

    // kubectl through the VIP with the admin kubeconfig (cluster-admin through its group).
    let kubeconfig = lab.dir().join("admin.kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let out = lab.kinit(&["kubeconfig", kubeconfig.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        lab.kubectl_ok(&kubeconfig, &["get", "--raw", "/readyz"]),
        "ok"
    );
    lab.kubectl_ok(&kubeconfig, &["create", "namespace", "kinit-probe"]);
    lab.kubectl_ok(
        &kubeconfig,
        &[
            "-n",
            "kinit-probe",
            "create",
            "configmap",
            "probe",
            "--from-literal=k=v1",
        ],
    );
    let got = lab.kubectl_ok(
        &kubeconfig,
        &[
            "-n",
            "kinit-probe",
            "get",
            "configmap",
            "probe",
            "-o",
            "jsonpath={.data.k}",
        ],
    );
    assert_eq!(got, "v1");
    let server = lab.kubectl_ok(
        &kubeconfig,
        &[
            "config",
            "view",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    );
    assert_eq!(server, format!("https://{vip}:8443"));

    // `kinit kubeconfig --merge` into a fresh ~/.kube/config, then a plain `kubectl get ns`.
    let home = tempfile::tempdir().unwrap();
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_kinit"))
            .args(["-c", &config, "kubeconfig", "--merge"])
            .env("HOME", home.path())
            .env_remove("KUBECONFIG"),
        COMMAND_LIMIT,
    );
    assert!(out.status.success(), "{}", text(&out));
    let namespaces = ok(output_within(
        Command::new(upstream_bin().join("kubectl"))
            .args(["get", "ns", "-o", "name"])
            .env("HOME", home.path())
            .env_remove("KUBECONFIG"),
        COMMAND_LIMIT,
    ));
    assert!(namespaces.contains("namespace/kinit-probe"), "{namespaces}");

    // status: every apiserver ready on its own address, one holder per lease, HEALTHY.
    let report = lab.wait_healthy(&config);
    let shown = text(&lab.kinit(&["status"]));
    assert!(shown.contains("cluster kcp: HEALTHY"), "{shown}");
    assert!(
        shown.contains("lease kube-scheduler: held by cp"),
        "{shown}"
    );
    let (ready, leases) = control_plane(&report);
    assert_eq!(ready, ["cp1", "cp2", "cp3"], "{report:#}");
    for (name, holder) in &leases {
        assert!(
            ["cp1", "cp2", "cp3"].contains(&holder.as_str()),
            "{name} held by {holder:?}: {report:#}"
        );
    }
    for node in ["cp1", "cp2", "cp3"] {
        let listens = lab.on(node, "ss -Hltn 'sport = :6443'");
        let addr = format!("10.213.210.{}:6443", 10 + node[2..].parse::<u32>().unwrap());
        assert!(
            listens.contains(&addr),
            "{node} binds its own address: {listens}"
        );
    }

    // A second up changes nothing (the apiserver holding 6443 is kinit's own: no preflight
    // override needed).
    lab.assert_up_is_a_no_op(&[]);

    // A rollout: a renewed apiserver certificate restarts the apiservers one host at a time,
    // each drained by haproxy first; not one request through the VIP fails.
    let client = ApiLoop::start(&lab, CONFIGMAP);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let out = lab.kinit(&["certs", "renew", "apiserver", "--rollout"]);
    let rollout_took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let seen = client.stop();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("restart kube-apiserver goes one host at a time"),
        "{shown}"
    );
    // The renewal is up's first phase, once the lock is held: before preflight, and it says
    // what it re-issued.
    let renewal = shown.find("== renew-certificates:").expect(&shown);
    assert!(
        renewal < shown.find("== preflight:").expect(&shown),
        "{shown}"
    );
    assert!(
        shown.contains("renew-certificates: re-issued  apiserver ("),
        "{shown}"
    );
    assert_eq!(
        seen.failed, 0,
        "failed requests during the rollout: {seen:?}\n{shown}"
    );
    assert!(seen.requests > 20, "{seen:?}");
    eprintln!(
        "figures: up {:.1}s; apiserver rollout {:.1}s, {} requests, 0 failed, longest gap {} ms",
        up_took.as_secs_f64(),
        rollout_took.as_secs_f64(),
        seen.requests,
        seen.longest_gap.as_millis()
    );

    // A flag change: an operator's kube-apiserver.flags.tera (through `up --templates`) adds a
    // flag; `up` restarts the three apiservers one host at a time, drained first, and nothing
    // else; not one request fails; every unit then runs with the flag.
    let templates = lab.templates_with_apiserver_flag("--profiling=false");
    let client = ApiLoop::start(&lab, CONFIGMAP);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let (code, summary, all) = lab.up(&["--templates", templates.to_str().unwrap()]);
    let flag_took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let seen = client.stop();
    assert_eq!(code, 0, "up with a changed flag: {all}");
    assert_eq!(summary["servicesRestarted"].as_u64(), Some(3), "{all}");
    // One host at a time: each apiserver's restart finishes before the next one starts, and
    // nothing else restarts.
    let restarts: Vec<(String, String, String)> = all
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["event"]
                .as_str()
                .is_some_and(|k| k.starts_with("restart-") && k != "restart-order")
        })
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (field("event"), field("what"), field("host"))
        })
        .collect();
    assert_eq!(restarts.len(), 6, "{restarts:?}");
    let mut hosts = Vec::new();
    for pair in restarts.chunks(2) {
        let (started, finished) = (&pair[0], &pair[1]);
        assert_eq!(started.0, "restart-started", "{restarts:?}");
        assert_eq!(finished.0, "restart-finished", "{restarts:?}");
        assert_eq!(
            (&started.1, &started.2),
            (&finished.1, &finished.2),
            "{restarts:?}"
        );
        assert_eq!(started.1, "kube-apiserver", "{restarts:?}");
        hosts.push(started.2.clone());
    }
    hosts.sort();
    assert_eq!(hosts, ["cp1", "cp2", "cp3"], "{restarts:?}");
    assert_eq!(
        seen.failed, 0,
        "failed requests during the flag change: {seen:?}\n{all}"
    );
    for node in ["cp1", "cp2", "cp3"] {
        let running = lab.on(
            node,
            "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value kube-apiserver)/cmdline",
        );
        assert!(running.contains("--profiling=false"), "{node}: {running}");
    }
    eprintln!(
        "figures: apiserver flag change {:.1}s, {} requests, 0 failed, longest gap {} ms",
        flag_took.as_secs_f64(),
        seen.requests,
        seen.longest_gap.as_millis()
    );

    // A flag the apiserver refuses: the first host's restart fails (its unit cannot start), and
    // `up` stops there, naming the host. Nothing is left drained (haproxy's /readyz check keeps
    // the dead apiserver out; a drained one would stay out after it recovers), the other hosts
    // are not touched, and no request fails. The operator's fix brings it back.
    let pids = |lab: &Lab| -> Vec<String> {
        ["cp1", "cp2", "cp3"]
            .iter()
            .map(|n| lab.on(n, "systemctl show -p MainPID --value kube-apiserver"))
            .collect()
    };
    let before = pids(&lab);
    let refused = lab.templates_with_apiserver_flag("--no-such-flag=1");
    let client = ApiLoop::start(&lab, CONFIGMAP);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (code, _, all) = lab.up(&["--templates", refused.to_str().unwrap()]);
    let failed_took = started.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let seen = client.stop();
    assert_ne!(code, 0, "up with a flag the apiserver refuses: {all}");
    let tried: Vec<String> = all
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "restart-started")
        .map(|e| e["host"].as_str().unwrap_or_default().to_string())
        .collect();
    let [failed] = &tried[..] else {
        panic!("one restart tried: {tried:?}\n{all}")
    };
    assert!(
        all.contains(&format!(
            "{failed}: the step failed; its apiserver is no longer drained"
        )),
        "{all}"
    );
    let after = pids(&lab);
    for ((node, b), a) in ["cp1", "cp2", "cp3"].iter().zip(&before).zip(&after) {
        if node != failed {
            assert_eq!(
                a, b,
                "{node}'s apiserver was restarted after {failed} failed"
            );
            // Each host gets its files at its turn: the hosts after the failed one keep the
            // unit they run, so a daemon-reload there cannot pick up the refused flag.
            let unit = lab.on(node, "cat /etc/systemd/system/kube-apiserver.service");
            assert!(!unit.contains("--no-such-flag"), "{node}: {unit}");
        }
    }
    let (code, report) = lab.status(&config);
    assert_ne!(code, 0, "{failed}'s apiserver is down: {report:#}");
    let problems = report["problems"].to_string();
    assert!(problems.contains(failed.as_str()), "{problems}");
    assert!(
        !problems.contains("DRAIN") && !problems.contains("MAINT"),
        "an apiserver left drained: {problems}"
    );
    assert_eq!(
        seen.failed, 0,
        "failed requests while {failed}'s restart failed: {seen:?}\n{all}"
    );
    eprintln!(
        "figures: refused apiserver flag: up failed on {failed} after {:.1}s, {} requests, 0 \
         failed, longest gap {} ms",
        failed_took.as_secs_f64(),
        seen.requests,
        seen.longest_gap.as_millis()
    );
    // Only the failed host had the refused unit written, so the fix restarts that one alone.
    let templates = lab.templates_with_apiserver_flag("--profiling=false");
    let (code, summary, all) = lab.up(&["--templates", templates.to_str().unwrap()]);
    assert_eq!(code, 0, "up with the flag fixed: {all}");
    assert_eq!(summary["servicesRestarted"].as_u64(), Some(1), "{all}");
    let report = lab.wait_healthy(&config);
    assert_eq!(control_plane(&report).0.len(), 3, "{report:#}");

    // A rollout killed (SIGKILL: the operator's machine lost power) right after every haproxy
    // drained an apiserver: status names the drained server; the next `up` puts it back in
    // rotation and finishes what the rollout left; no request fails meanwhile.
    let client = ApiLoop::start(&lab, CONFIGMAP);
    let drained = kill_a_rollout_after_its_first_drain(&lab);
    let (code, report) = lab.status(&config);
    assert_ne!(code, 0, "a drained apiserver is a problem: {report:#}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(&drained) && problems.contains("DRAIN"),
        "{drained} drained: {problems}"
    );
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "up after a killed rollout: {all}");
    let (code, report) = lab.status(&config);
    assert_eq!(code, 0, "problems: {}\n{report:#}", report["problems"]);
    let seen = client.stop();
    assert_eq!(
        seen.failed, 0,
        "failed requests around the killed rollout: {seen:?}\n{all}"
    );
    // That `up` had the killed rollout's restarts to finish, which put the host back. A host
    // left drained with nothing to restart (drained through the runtime API as kinit does) is
    // put back too.
    drain_in_every_haproxy(&lab, "cp2");
    let (code, report) = lab.status(&config);
    assert_ne!(code, 0, "a drained apiserver is a problem: {report:#}");
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "up with cp2 drained: {all}");
    assert_eq!(summary["servicesRestarted"].as_u64(), Some(0), "{all}");
    assert!(
        all.contains("cp2: left drained by an interrupted run; back in every haproxy"),
        "{all}"
    );
    let (code, report) = lab.status(&config);
    assert_eq!(code, 0, "problems: {}\n{report:#}", report["problems"]);

    // Failover: the VIP holder powered off; the API answers through the VIP again, both leases
    // end up on surviving hosts, the ConfigMap is still there.
    let holders = lab.vip_holders(&["cp1", "cp2", "cp3"], vip);
    assert_eq!(holders.len(), 1, "{holders:?}");
    let holder = holders[0].clone();
    let client = ApiLoop::start(&lab, CONFIGMAP);
    std::thread::sleep(Duration::from_secs(1));
    let off = Instant::now();
    let out = lab.kinit_lab(&["stop", &holder]);
    assert!(out.status.success(), "{}", text(&out));
    let answered = wait_for("the API through the VIP", Duration::from_secs(60), || {
        let (ready, _, all) = lab.kubectl(&kubeconfig, &["get", "--raw", "/readyz"]);
        if ready { Ok(()) } else { Err(all) }
    });
    let failover = off.elapsed();
    let survivors: Vec<&str> = ["cp1", "cp2", "cp3"]
        .into_iter()
        .filter(|n| *n != holder)
        .collect();
    wait_for(
        "both leases on surviving hosts",
        Duration::from_secs(90),
        || {
            let (_, report) = lab.status(&config);
            let (_, leases) = control_plane(&report);
            match leases
                .iter()
                .find(|(_, h)| !survivors.contains(&h.as_str()))
            {
                None => Ok(()),
                Some((name, h)) => Err(format!("{name} held by {h:?}")),
            }
        },
    );
    let got = lab.kubectl_ok(
        &kubeconfig,
        &[
            "-n",
            "kinit-probe",
            "get",
            "configmap",
            "probe",
            "-o",
            "jsonpath={.data.k}",
        ],
    );
    assert_eq!(got, "v1");
    let seen = client.stop();
    eprintln!(
        "figures: failover: {holder} off -> API through the VIP after {:.1}s ({:.1}s of polling); \
         client: {} requests, {} failed, longest gap {} ms",
        failover.as_secs_f64(),
        answered.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );

    // The host back: it rejoins, every apiserver ready, healthy.
    let out = lab.kinit_lab(&["start", &holder]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        "every apiserver ready again",
        Duration::from_secs(180),
        || {
            let (code, report) = lab.status(&config);
            let (ready, _) = control_plane(&report);
            if code == 0 && ready.len() == 3 {
                Ok(())
            } else {
                Err(format!("{:#}", report["problems"]))
            }
        },
    );
}

/// Start `certs renew apiserver --rollout` and SIGKILL it once it says it drained a host from
/// every haproxy (before that host is back): the host it drained.
fn kill_a_rollout_after_its_first_drain(lab: &Lab) -> String {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinit"))
        .args(["-c", lab.config.to_str().unwrap(), "-o", "json"])
        .args(["certs", "renew", "apiserver", "--rollout"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut drained = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(at) = line.find(": drained from every haproxy before kube-apiserver restarts") {
            let start = line[..at].rfind('"').map_or(0, |q| q + 1);
            drained = Some(line[start..at].to_string());
            break;
        }
        seen.push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The renewal came first, as up's `renew-certificates` phase.
    let renewed = seen.iter().position(|l| {
        l.contains(r#""event":"certificates-renewed""#)
            && l.contains(r#""phase":"renew-certificates""#)
    });
    let preflight = seen.iter().position(|l| {
        l.contains(r#""event":"phase-started""#) && l.contains(r#""phase":"preflight""#)
    });
    assert!(
        renewed.is_some() && renewed < preflight,
        "no renewal before preflight:\n{}",
        seen.join("\n")
    );
    drained.unwrap_or_else(|| panic!("the rollout never drained a host:\n{}", seen.join("\n")))
}

/// Every haproxy of the lab stops sending `host`'s apiserver new requests, through the runtime
/// API over SSH as kinit's drain does, and nothing puts it back.
fn drain_in_every_haproxy(lab: &Lab, host: &str) {
    use kinit::engine::rolling::apiserver::{ServerState, set_backend_state};
    let loaded = kinit::config::load(&lab.config).unwrap();
    let inv = kinit::inventory::Inventory::from_config(&loaded.config, lab.dir(), None).unwrap();
    let hosts: Vec<_> = inv.hosts.iter().collect();
    let (targets, ssh) =
        kinit::commands::remote::connect_options(&inv, &hosts, false, false).unwrap();
    let balancers: Vec<_> = hosts.iter().map(|h| h.name.clone()).zip(targets).collect();
    let pool = kinit::ssh::Pool::new(ssh);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let drained = set_backend_state(&pool, &balancers, host, ServerState::Drain).await;
        pool.close_all().await;
        drained.unwrap();
    });
}
