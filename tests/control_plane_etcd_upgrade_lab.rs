//! etcd 3.5 -> 3.6 under the real control plane on lab nodes: the cluster comes up with the
//! last etcd 3.5 release (built by `hack/build-upstream.sh DIR --set etcd-previous`) beside
//! kube-apiserver v1.37; the bundle's own etcd 3.6 is then rolled in by `up`, one member at a
//! time, while a client reads and writes a ConfigMap through the VIP every 100 ms. Not one
//! request may fail, and the last acknowledged write is what every apiserver reads after.
//! Runs as root; the lab is removed when the test ends however it ends.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use support::hang_guard::output_within;
use support::lab::*;

const CONFIGMAP: &str = "/api/v1/namespaces/kinit-probe/configmaps/probe";
const ETCD_PROGRAMS: [&str; 3] = ["etcd", "etcdctl", "etcdutl"];

/// Where .ci/run builds the last etcd 3.5 release.
fn etcd_previous() -> PathBuf {
    let sets = "--set etcd-previous";
    support::cached_bin(
        "KINIT_TEST_ETCD_PREVIOUS_BIN",
        "etcd-previous",
        "etcd",
        sets,
    )
}

fn version_of(etcd: &std::path::Path) -> String {
    let out = output_within(Command::new(etcd).arg("--version"), COMMAND_LIMIT);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    shown
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .unwrap_or_else(|| panic!("{}: {shown}", etcd.display()))
        .trim()
        .to_string()
}

/// What `kinit status -o json` says each member runs: ["cp1 3.5.36", ...].
fn member_versions(report: &Value) -> Vec<String> {
    report["etcd"]["members"]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#}"))
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["name"].as_str().unwrap_or("?"),
                m["version"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = output_within(
        Command::new(upstream_bin().join("kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--request-timeout=10s")
            .args(args),
        COMMAND_LIMIT,
    );
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn etcd_3_5_is_rolled_to_3_6_under_the_real_control_plane_without_a_failed_request() {
    let previous = etcd_previous();
    let (old, new) = (
        version_of(&previous.join("etcd")),
        version_of(&upstream_bin().join("etcd")),
    );
    assert!(
        old.starts_with("3.5.") && new.starts_with("3.6."),
        "{old} -> {new}"
    );
    let lab = lab_up_kubernetes("kcpetcd", "10.213.232.0/24", "3");
    let config = lab.config.to_str().unwrap().to_string();
    let older = bundle_with(&lab, &previous, &ETCD_PROGRAMS, "bundle-etcd-3.5");
    use_bundle(&lab, older.to_str().unwrap());

    let (code, _, all) = lab.up(&["--topology", "stacked"]);
    assert_eq!(code, 0, "up with etcd {old}: {all}");
    let report = lab.wait_healthy(&config);
    let on = |v: &str| -> Vec<String> {
        ["cp1", "cp2", "cp3"]
            .iter()
            .map(|h| format!("{h} {v}"))
            .collect()
    };
    assert_eq!(member_versions(&report), on(&old), "{report:#}");

    let kubeconfig = lab.dir().join("admin.kubeconfig");
    let out = lab.kinit(&["kubeconfig", kubeconfig.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    kubectl(&kubeconfig, &["create", "namespace", "kinit-probe"]);
    kubectl(
        &kubeconfig,
        &[
            "-n",
            "kinit-probe",
            "create",
            "configmap",
            "probe",
            "--from-literal=n=start",
        ],
    );

    // The bundle's own etcd 3.6 back in cluster.yaml: the dry run says the upgrade.
    use_bundle(&lab, "./bundle");
    let (code, _, all) = lab.up(&["--dry-run"]);
    assert_eq!(code, 0, "dry run: {all}");
    let says = format!("etcd {old} → {new} on cp1, cp2, cp3");
    assert!(all.contains(&says), "the dry run says {says}: {all}");

    let client = ApiLoop::start_writing(&lab, CONFIGMAP);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let started = Instant::now();
    let (code, _, all) = lab.up(&[]);
    let took = started.elapsed();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let seen = client.stop();
    assert_eq!(code, 0, "the upgrade: {all}");
    assert!(all.contains(&says), "the run says {says}: {all}");
    // One member at a time: each etcd restart began once the one before had finished.
    let events: Vec<Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| {
            e["what"] == "etcd"
                && (e["event"] == "restart-started" || e["event"] == "restart-finished")
        })
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "restart-started",
            "restart-finished",
            "restart-started",
            "restart-finished",
            "restart-started",
            "restart-finished"
        ],
        "{all}"
    );
    let report = lab.wait_healthy(&config);
    assert_eq!(member_versions(&report), on(&new), "{report:#}");
    for node in ["cp1", "cp2", "cp3"] {
        assert_eq!(
            lab.on(node, "/usr/local/bin/etcd --version | head -n 1"),
            format!("etcd Version: {new}")
        );
    }
    // What the client last wrote is what the cluster holds.
    let last = seen
        .last_written
        .unwrap_or_else(|| panic!("no write acknowledged: {seen:?}"));
    let held = kubectl(
        &kubeconfig,
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
    eprintln!(
        "figures: etcd {old} -> {new} under the real control plane: up {:.1}s, {} requests \
         (reads and writes), {} failed, longest gap {} ms",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(
        seen.failed, 0,
        "failed requests during the etcd upgrade: {seen:?}\n{all}"
    );
    assert!(seen.requests > 20, "{seen:?}");

    // A second up changes nothing.
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(summary["servicesRestarted"].as_u64(), Some(0), "{all}");
}
