//! Kubernetes upgrades on lab nodes with the real control plane (systemd mode): the cluster
//! comes up on an older patch release of the previous minor (`hack/build-upstream.sh DIR --set
//! kubernetes-previous-patch`), moves to that minor's newer patch release (`--set
//! kubernetes-previous`), then to the release the build script builds by default; each time
//! `kubernetesVersion` and the bundle change and `up` rolls the release in while a client reads
//! and writes a ConfigMap through the VIP every 100 ms: not one request may fail. Between them,
//! the refusals the skew rules ask for stop the run with nothing changed. Runs as root; the lab is removed when the test
//! ends however it ends.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use support::lab::*;

const CONTROL_PLANE_PROGRAMS: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
];
const CONTROL_PLANE_UNITS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
const NODES: [&str; 3] = ["cp1", "cp2", "cp3"];

/// What `kinit status` says runs where: every apiserver's `/version` and every control-plane
/// unit's release, as "cp1 kube-apiserver v1.37.2" (a restart still to come marked).
fn releases(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for a in report["controlPlane"]["apiservers"].as_array().unwrap() {
        out.push(format!(
            "{} serves {}",
            a["host"].as_str().unwrap(),
            a["version"].as_str().unwrap_or("?")
        ));
    }
    for node in NODES {
        for v in host(report, node)["versions"].as_array().unwrap() {
            let unit = v["unit"].as_str().unwrap();
            if CONTROL_PLANE_UNITS.contains(&unit) {
                out.push(format!(
                    "{node} {unit} {}{}",
                    v["version"].as_str().unwrap_or("?"),
                    if v["restartPending"] == true {
                        " (pending)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    out
}

fn everywhere(release: &str) -> Vec<String> {
    let mut out: Vec<String> = NODES
        .iter()
        .map(|n| format!("{n} serves {release}"))
        .collect();
    for n in NODES {
        for u in CONTROL_PLANE_UNITS {
            out.push(format!("{n} {u} {release}"));
        }
    }
    out
}

/// A refused run: non-zero, the message, and no host step or restart.
fn assert_refused(lab: &Lab, says: &[&str]) {
    let (code, _, all) = lab.up(&[]);
    assert_ne!(code, 0, "refused: {all}");
    assert!(all.contains("before any host was changed"), "{all}");
    for s in says {
        assert!(all.contains(s), "says {s:?}: {all}");
    }
    assert!(!all.contains("\"step-started\""), "a host step ran: {all}");
    assert!(!all.contains("\"restart-started\""), "a restart ran: {all}");
}

/// The restart events of `unit` in the order they came: (host, started or finished).
fn restarts<'a>(events: &'a [Value], unit: &str) -> Vec<(&'a str, &'a str)> {
    events
        .iter()
        .filter(|e| {
            e["what"] == unit
                && (e["event"] == "restart-started" || e["event"] == "restart-finished")
        })
        .map(|e| (e["host"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect()
}

/// `kinit -o json up` killed (SIGKILL) as soon as `unit` is back on its first host: that host,
/// and the run's output.
fn up_killed_after_first(lab: &Lab, unit: &str) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinit"))
        .args(["-c", lab.config.to_str().unwrap(), "-o", "json", "up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut all = String::new();
    let mut done = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        all.push_str(&line);
        all.push('\n');
        if let Ok(e) = serde_json::from_str::<Value>(&line)
            && e["event"] == "restart-finished"
            && e["what"] == unit
        {
            done = e["host"].as_str().map(String::from);
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    let done = done.unwrap_or_else(|| panic!("no {unit} restart finished ({status}): {all}"));
    (done, all)
}

/// What one upgrade under load measured.
struct Rolled {
    took: Duration,
    seen: ApiLoopReport,
}

/// `up` moving the cluster from `old` to `new` (cluster.yaml already says so) while a client
/// reads and writes through the VIP; checks the order of the restarts and every release after.
fn upgrade_under_load(lab: &Lab, old: &str, new: &str, kind: &str) -> Rolled {
    let says = format!("Kubernetes {old} → {new} on cp1, cp2, cp3 ({kind} release)");
    finish_under_load(lab, &says, new, kind, [3, 3, 3])
}

/// The same for a run that says `says` and restarts each control-plane unit on `restarted`
/// hosts (an upgrade a cut-short run began).
fn finish_under_load(
    lab: &Lab,
    says: &str,
    new: &str,
    kind: &str,
    restarted: [usize; 3],
) -> Rolled {
    let config = lab.config.to_str().unwrap();
    let (code, _, all) = lab.up(&["--dry-run"]);
    assert_eq!(code, 0, "dry run: {all}");
    let plan: Value = all
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "kubernetes-upgrade")
        .unwrap_or_else(|| panic!("no kubernetes-upgrade event: {all}"));
    assert_eq!(plan["message"], says, "{plan:#}");
    let skew = plan["upgrade"]["skew"].as_array().unwrap();
    assert!(skew.len() >= 4, "{plan:#}");
    assert!(skew.iter().all(|s| s["allowed"] == true), "{plan:#}");
    let order: Vec<Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "restart-order")
        .collect();
    let units_in_order: Vec<&str> = order.iter().map(|e| e["what"].as_str().unwrap()).collect();
    assert_eq!(units_in_order, CONTROL_PLANE_UNITS, "{all}");
    for (event, n) in order.iter().zip(restarted) {
        assert_eq!(event["hosts"].as_array().unwrap().len(), n, "{all}");
    }

    let ((code, _, all), took, seen) = ApiLoop::around(lab, PROBE_CONFIGMAP, || lab.up(&[]));
    assert_eq!(code, 0, "the upgrade: {all}");
    assert!(all.contains(says), "the run says {says}: {all}");
    let events: Vec<Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // One host at a time for each unit, every apiserver before any controller-manager, every
    // controller-manager before any scheduler.
    let mut last_finished = 0;
    for (unit, n) in CONTROL_PLANE_UNITS.into_iter().zip(restarted) {
        let seq = restarts(&events, unit);
        let kinds: Vec<&str> = seq.iter().map(|(_, k)| *k).collect();
        assert_eq!(
            kinds,
            ["restart-started", "restart-finished"].repeat(n),
            "{unit}: {all}"
        );
        let first_started = events
            .iter()
            .position(|e| e["what"] == unit && e["event"] == "restart-started")
            .unwrap();
        assert!(first_started > last_finished, "{unit} began early: {all}");
        last_finished = events
            .iter()
            .rposition(|e| e["what"] == unit && e["event"] == "restart-finished")
            .unwrap();
    }
    let report = lab.wait_healthy(config);
    assert_eq!(releases(&report), everywhere(new), "{report:#}");
    eprintln!(
        "figures: {says} ({kind}; systemd control plane, 3 hosts): up {:.1}s, {} requests (reads and writes), {} failed, longest gap {} ms",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(
        seen.failed, 0,
        "failed requests during the upgrade: {seen:?}\n{all}"
    );
    assert!(seen.requests > 20, "{seen:?}");
    Rolled { took, seen }
}

/// The ConfigMap holds what the client last wrote.
fn holds_last_write(lab: &Lab, kubeconfig: &Path, rolled: &Rolled) {
    let last = rolled
        .seen
        .last_written
        .unwrap_or_else(|| panic!("no write acknowledged ({:?})", rolled.took));
    let held = lab.kubectl_ok(
        kubeconfig,
        &[
            "-n",
            "kinit-probe",
            "get",
            "configmap",
            "probe",
            "-o",
            "jsonpath={.data.n}",
        ],
    );
    assert_eq!(held, last.to_string());
}

#[test]
fn patch_then_minor_upgrades_roll_the_control_plane_without_a_failed_request() {
    let oldest = built(
        "kubernetes-previous-patch",
        "KINIT_TEST_KUBERNETES_PREVIOUS_PATCH_BIN",
    );
    let previous = built("kubernetes-previous", "KINIT_TEST_KUBERNETES_PREVIOUS_BIN");
    let (first, old, new) = (
        release_of(&oldest.join("kube-apiserver")),
        release_of(&previous.join("kube-apiserver")),
        release_of(&upstream_bin().join("kube-apiserver")),
    );
    let lab = lab_up_kubernetes("kk8sup", "10.213.233.0/24", "3");
    let config = lab.config.to_str().unwrap().to_string();
    let oldest_bundle = bundle_with(&lab, &oldest, &CONTROL_PLANE_PROGRAMS, "bundle-oldest");
    let older = bundle_with(&lab, &previous, &CONTROL_PLANE_PROGRAMS, "bundle-previous");
    use_bundle(&lab, oldest_bundle.to_str().unwrap());
    set_kubernetes_version(&lab, &first);

    let (code, _, all) = lab.up(&["--topology", "stacked"]);
    assert_eq!(code, 0, "up on {first}: {all}");
    let report = lab.wait_healthy(&config);
    assert_eq!(releases(&report), everywhere(&first), "{report:#}");

    let kubeconfig = lab.admin_kubeconfig();
    lab.create_probe_configmap(&kubeconfig, "n=start");

    // The patch release, the first run killed once one apiserver runs it.
    use_bundle(&lab, older.to_str().unwrap());
    set_kubernetes_version(&lab, &old);
    let client = ApiLoop::start_writing(&lab, PROBE_CONFIGMAP);
    std::thread::sleep(Duration::from_secs(2));
    let (done, all) = up_killed_after_first(&lab, "kube-apiserver");
    let seen = client.stop();
    let (_, report) = lab.status(&config);
    let mut expected = Vec::new();
    let left: Vec<&str> = NODES.into_iter().filter(|n| *n != done).collect();
    for n in NODES {
        let release = if n == done { &old } else { &first };
        expected.push(format!("{n} serves {release}"));
    }
    for n in NODES {
        // Only `done` has the new binaries (a host gets its files at its turn in the roll), and
        // its apiserver runs the new one; the others have and run the one before, with nothing
        // pending. `done`'s controller-manager and scheduler may have started the new one on
        // their own: one whose local apiserver restarts loses its lease and exits, and systemd
        // starts it again (never newer than the apiserver it talks to, its local one).
        for u in CONTROL_PLANE_UNITS {
            let (release, pending) = match (n == done, u) {
                (true, "kube-apiserver") => (&old, ""),
                (true, _) => (&old, " (pending?)"),
                (false, _) => (&first, ""),
            };
            expected.push(format!("{n} {u} {release}{pending}"));
        }
    }
    let mut found = releases(&report);
    for (f, e) in found.iter_mut().zip(&expected) {
        if let Some(either) = e.strip_suffix(" (pending?)") {
            *f = f.replace(" (pending)", "");
            assert_eq!(f, either, "{report:#}");
            *f = e.clone();
        }
    }
    eprintln!(
        "figures: the patch upgrade's first run, killed after {done}'s apiserver: {} requests, {} \
         failed, longest gap {} ms",
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(found, expected, "{report:#}\n{all}");
    assert_eq!(
        seen.failed, 0,
        "failed requests in the run cut short: {seen:?}\n{all}"
    );
    let says = format!(
        "Kubernetes {first} → {old} on {} (patch release) ({done} run(s) {old} already)",
        left.join(", ")
    );
    let patch = finish_under_load(
        &lab,
        &says,
        &old,
        "patch, finishing a run cut short",
        [2, 3, 3],
    );
    holds_last_write(&lab, &kubeconfig, &patch);

    // The next minor asked for, but the bundle still holds the old one.
    set_kubernetes_version(&lab, &new);
    assert_refused(
        &lab,
        &[&format!(
            "kubernetesVersion is {new} but the bundle's kube-apiserver is {old}"
        )],
    );
    assert_eq!(releases(&lab.wait_healthy(&config)), everywhere(&old));

    // The bundle with the new release.
    use_bundle(&lab, "./bundle");
    let minor = upgrade_under_load(&lab, &old, &new, "minor");
    holds_last_write(&lab, &kubeconfig, &minor);

    // Back to the old release: a downgrade, refused with nothing changed.
    use_bundle(&lab, older.to_str().unwrap());
    set_kubernetes_version(&lab, &old);
    assert_refused(
        &lab,
        &[
            "that is a downgrade",
            &format!("kubernetesVersion {old} is older than Kubernetes {new} on cp1, cp2, cp3"),
        ],
    );
    assert_eq!(releases(&lab.wait_healthy(&config)), everywhere(&new));

    // A second up on the new release changes nothing.
    use_bundle(&lab, "./bundle");
    set_kubernetes_version(&lab, &new);
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(summary["servicesRestarted"].as_u64(), Some(0), "{all}");
    assert!(!all.contains("kubernetes-upgrade"), "{all}");
}
