//! Bundles a lab scenario switches between: a copy of the lab's own bundle with some programs
//! from elsewhere (another etcd or Kubernetes release), and cluster.yaml pointed at one of them
//! with the `kubernetesVersion` it holds.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{COMMAND_LIMIT, Lab, text};
use crate::support::hang_guard::output_within;

/// What a runtime lab's cluster starts on before a Kubernetes upgrade: the previous release's
/// programs (and the images built from them).
pub const KUBERNETES_PROGRAMS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
];

/// `<lab>/<name>`: the lab's bundle with each of `programs` taken from `from` (and the images
/// built from them), SHA256SUMS made again (files in subdirectories, `cni/bridge`, too). The other files are hard links (a
/// Kubernetes bundle is 700 MiB; the lab dir is one filesystem).
pub fn bundle_with(lab: &Lab, from: &Path, programs: &[&str], name: &str) -> PathBuf {
    let dir = lab.dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("cp")
        .arg("-al")
        .arg(lab.dir().join("bundle"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for p in programs.iter().chain(&["SHA256SUMS"]) {
        // Unlinked first: a copy through the link would change the lab's own bundle.
        std::fs::remove_file(dir.join(p)).unwrap();
    }
    for p in programs {
        std::fs::copy(from.join(p), dir.join(p))
            .unwrap_or_else(|e| panic!("{}: {e}", from.join(p).display()));
    }
    // A runtime lab's bundle holds images built from some of them (the control plane's static
    // pods): built again from these, tagged with their release, as `kinit bundle import` does.
    let images: Vec<_> = programs
        .iter()
        .filter_map(|p| kinit::bundle::image::bundle_image(p))
        .filter(|i| dir.join(i.archive).is_file())
        .collect();
    if !images.is_empty() {
        for image in images {
            // etcd's image is of etcd's release, the others of Kubernetes'.
            let release = if image.binary == kinit::bundle::image::ETCD_BINARY {
                etcd_release_of(&from.join(image.binary))
            } else {
                release_of(&from.join("kube-apiserver"))
            };
            let at = dir.join(image.archive);
            std::fs::remove_file(&at).unwrap();
            let archive = image
                .build(
                    &dir.join(image.binary),
                    kinit::config::model::DEFAULT_IMAGE_REPOSITORY,
                    "amd64",
                    &release,
                )
                .unwrap();
            std::fs::write(&at, archive).unwrap();
        }
    }
    let out = Command::new("sh")
        .current_dir(&dir)
        .args([
            "-c",
            "find . -type f ! -name SHA256SUMS -printf '%P\\n' | sort \
             | xargs sha256sum > SHA256SUMS",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    dir
}

/// Point cluster.yaml's spec.artifacts.bundle at `dir`.
pub fn use_bundle(lab: &Lab, dir: &str) {
    let yaml = std::fs::read_to_string(&lab.config).unwrap();
    assert!(
        yaml.lines().any(|l| l.trim_start().starts_with("bundle: ")),
        "no bundle line in {yaml}"
    );
    let out: Vec<String> = yaml
        .lines()
        .map(|l| match l.trim_start().strip_prefix("bundle: ") {
            Some(_) => format!("    bundle: {dir}"),
            None => l.to_string(),
        })
        .collect();
    std::fs::write(&lab.config, out.join("\n") + "\n").unwrap();
}

/// Where .ci/run builds a release an upgrade starts from (`set` of hack/build-upstream.sh).
pub fn built(set: &str, env: &str) -> PathBuf {
    let sets = format!("--set {set}");
    crate::support::cached_bin(env, set, "kube-apiserver", &sets)
}

pub fn release_of(apiserver: &Path) -> String {
    let out = output_within(Command::new(apiserver).arg("--version"), COMMAND_LIMIT);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    shown
        .trim()
        .strip_prefix("Kubernetes ")
        .unwrap_or_else(|| panic!("{}: {shown}", apiserver.display()))
        .to_string()
}

/// The release an etcd binary reports (`3.6.16`).
pub fn etcd_release_of(etcd: &Path) -> String {
    let out = output_within(Command::new(etcd).arg("--version"), COMMAND_LIMIT);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    kinit::etcd::version::EtcdVersion::from_version_output(&shown)
        .unwrap_or_else(|e| panic!("{}: {e}: {shown}", etcd.display()))
        .to_string()
}

/// Set cluster.yaml's kubernetesVersion.
pub fn set_kubernetes_version(lab: &Lab, version: &str) {
    let yaml = std::fs::read_to_string(&lab.config).unwrap();
    assert!(yaml.contains("kubernetesVersion: "), "{yaml}");
    let out: Vec<String> = yaml
        .lines()
        .map(|l| match l.split_once("kubernetesVersion: ") {
            Some((indent, _)) => format!("{indent}kubernetesVersion: {version}"),
            None => l.to_string(),
        })
        .collect();
    std::fs::write(&lab.config, out.join("\n") + "\n").unwrap();
}

/// Point the lab at a copy of its bundle holding the previous minor release (`--set
/// kubernetes-previous`) and set kubernetesVersion to it: the cluster starts there and is
/// upgraded to the bundle's own release later. (previous release, the bundle's release)
pub fn start_on_previous_release(lab: &Lab) -> (String, String) {
    let previous = built("kubernetes-previous", "KINIT_TEST_KUBERNETES_PREVIOUS_BIN");
    let old = release_of(&previous.join("kube-apiserver"));
    let new = release_of(&super::upstream_bin().join("kube-apiserver"));
    let older = bundle_with(lab, &previous, &KUBERNETES_PROGRAMS, "bundle-previous");
    use_bundle(lab, older.to_str().unwrap());
    set_kubernetes_version(lab, &old);
    (old, new)
}

/// Back to the lab's own bundle, at `release` (the upgrade after [`start_on_previous_release`]).
pub fn upgrade_to_own_bundle(lab: &Lab, release: &str) {
    use_bundle(lab, lab.dir().join("bundle").to_str().unwrap());
    set_kubernetes_version(lab, release);
}

/// Where in a run's JSON events `what` (a `what` field) had `event`, in order.
pub fn event_positions(events: &[serde_json::Value], what: &str, event: &str) -> Vec<usize> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["what"] == what && e["event"] == event)
        .map(|(i, _)| i)
        .collect()
}

/// The turns of `what` in a run's JSON events, timed from their `elapsed` stamps: one line per
/// host, from the end of the turn before (or the roll's `restart-order`) to its own end, so a
/// turn's guard and drain count too (`cp1 76.8 s, restart 52.0 s`); and for the first turn every
/// event in it, as seconds into the turn, so a figure shows where a turn's time goes.
pub fn turn_timeline(events: &[serde_json::Value], what: &str) -> String {
    let at = |i: usize| events[i]["elapsed"].as_f64().unwrap_or(f64::NAN);
    let started = event_positions(events, what, "restart-started");
    let finished = event_positions(events, what, "restart-finished");
    let Some(&first_start) = started.first() else {
        return format!("{what}: no turn");
    };
    let order = event_positions(events, what, "restart-order")
        .into_iter()
        .find(|&i| i < first_start)
        .unwrap_or(first_start);
    let mut from = order;
    let mut turns = Vec::new();
    for (&s, &f) in started.iter().zip(&finished) {
        turns.push(format!(
            "{} {:.1} s, restart {:.1} s",
            events[f]["host"].as_str().unwrap_or("?"),
            at(f) - at(from),
            at(f) - at(s)
        ));
        from = f;
    }
    let first: Vec<String> = finished
        .first()
        .map(|&f| {
            (order..=f)
                .map(|i| {
                    let e = &events[i];
                    let said = e["message"].as_str().or(e["event"].as_str()).unwrap_or("");
                    format!("+{:.1} {said}", at(i) - at(order))
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{what}: turns {}; first turn: {}",
        turns.join("; "),
        first.join(" | ")
    )
}
