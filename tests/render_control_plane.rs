//! The control plane's flags are stated once (`templates/<component>.flags.tera`) and rendered
//! twice: into the static pods (controlPlane.mode: static-pod) and the systemd units
//! (controlPlane.mode: systemd). Both renderings carry exactly the same arguments, and a change
//! to the one statement reaches both.

mod support;

use kinit::config::ControlPlaneMode;
use kinit::host_paths as paths;
use kinit::render::{self, RenderedFile, Templates};
use support::render::inventory;

/// (program, manifest path, unit path).
const COMPONENTS: &[(&str, &str, &str)] = &[
    (
        "kube-apiserver",
        paths::KUBE_APISERVER_MANIFEST,
        paths::KUBE_APISERVER_UNIT,
    ),
    (
        "kube-controller-manager",
        paths::KUBE_CONTROLLER_MANAGER_MANIFEST,
        paths::KUBE_CONTROLLER_MANAGER_UNIT,
    ),
    (
        "kube-scheduler",
        paths::KUBE_SCHEDULER_MANIFEST,
        paths::KUBE_SCHEDULER_UNIT,
    ),
];

fn rendered(example: &str, mode: ControlPlaneMode, templates: &Templates) -> Vec<RenderedFile> {
    let mut inv = inventory(example);
    inv.control_plane_mode = mode;
    let host = inv.hosts.iter().find(|h| h.name == "cp1").unwrap().clone();
    render::render_host(&inv, &host, templates).unwrap()
}

fn content<'a>(files: &'a [RenderedFile], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no {path} among {:?}",
                files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>()
            )
        })
        .content
}

/// The container's command: program, then its arguments.
fn manifest_command(yaml: &str) -> Vec<String> {
    let pod: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    pod["spec"]["containers"][0]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// `ExecStart=` with its continuation lines joined, split into words, `%%` read back as `%`.
fn unit_command(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {unit}"));
    line.split_whitespace()
        .map(|w| w.replace("%%", "%"))
        .collect()
}

#[test]
fn static_pods_and_units_carry_the_same_flags() {
    let templates = Templates::embedded().unwrap();
    for example in ["stacked", "external", "ipv6"] {
        let pods = rendered(example, ControlPlaneMode::StaticPod, &templates);
        let units = rendered(example, ControlPlaneMode::Systemd, &templates);
        for (program, manifest, unit) in COMPONENTS {
            let pod = manifest_command(content(&pods, manifest));
            let exec = unit_command(content(&units, unit));
            assert_eq!(pod[0], *program);
            assert_eq!(exec[0], format!("/usr/local/bin/{program}"));
            assert_eq!(pod[1..], exec[1..], "{example}: {program}");
            assert!(pod.len() > 4, "{pod:?}");
            // Each mode renders only its own way.
            assert!(
                !units.iter().any(|f| f.path == *manifest),
                "{example}: {manifest}"
            );
            assert!(!pods.iter().any(|f| f.path == *unit), "{example}: {unit}");
        }
    }
}

#[test]
fn one_statement_of_a_flag_reaches_both_renderings() {
    let dir = tempfile::tempdir().unwrap();
    let flags = include_str!("../templates/kube-scheduler.flags.tera");
    std::fs::write(
        dir.path().join("kube-scheduler.flags.tera"),
        format!("{flags}- --v=4\n"),
    )
    .unwrap();
    let templates = Templates::with_overrides(dir.path()).unwrap();
    let pods = rendered("stacked", ControlPlaneMode::StaticPod, &templates);
    let units = rendered("stacked", ControlPlaneMode::Systemd, &templates);
    let pod = manifest_command(content(&pods, paths::KUBE_SCHEDULER_MANIFEST));
    let exec = unit_command(content(&units, paths::KUBE_SCHEDULER_UNIT));
    assert_eq!(pod.last().unwrap(), "--v=4");
    assert_eq!(exec.last().unwrap(), "--v=4");
}

#[test]
fn a_flags_template_that_is_not_a_list_of_flags_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kube-scheduler.flags.tera"),
        "- --leader-elect=true\n- kubeconfig\n",
    )
    .unwrap();
    let templates = Templates::with_overrides(dir.path()).unwrap();
    let inv = inventory("stacked");
    let err = render::render_all(&inv, &templates)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kube-scheduler.flags.tera") && err.contains("`kubeconfig` is not a flag"),
        "{err}"
    );
}

#[test]
fn a_unit_argument_cannot_become_two_or_expand() {
    let dir = tempfile::tempdir().unwrap();
    let flags = include_str!("../templates/kube-scheduler.flags.tera");
    std::fs::write(
        dir.path().join("kube-scheduler.flags.tera"),
        format!("{flags}- \"--v=4 --kubeconfig=/tmp/x\"\n"),
    )
    .unwrap();
    let templates = Templates::with_overrides(dir.path()).unwrap();
    let mut inv = inventory("stacked");
    inv.control_plane_mode = ControlPlaneMode::Systemd;
    let err = render::render_all(&inv, &templates)
        .unwrap_err()
        .to_string();
    assert!(err.contains("kube-scheduler.service.tera"), "{err}");
    // In a manifest the same value stays one item of the command.
    inv.control_plane_mode = ControlPlaneMode::StaticPod;
    let all = render::render_all(&inv, &templates).unwrap();
    let cp1 = &all.iter().find(|(h, _)| h == "cp1").unwrap().1;
    let pod = manifest_command(content(cp1, paths::KUBE_SCHEDULER_MANIFEST));
    assert_eq!(pod.last().unwrap(), "--v=4 --kubeconfig=/tmp/x");
}

#[test]
fn the_systemd_control_plane_runs_from_the_bundle_with_units_in_the_table() {
    let mut inv = inventory("stacked");
    inv.control_plane_mode = ControlPlaneMode::Systemd;
    // etcd as a unit too (the fixture runs it as a static pod, which needs a kubelet).
    inv.etcd.mode = kinit::config::EtcdMode::Systemd;
    let cp1 = inv.hosts.iter().find(|h| h.name == "cp1").unwrap();
    let units = kinit::components::units_running_on(&inv, cp1, &Default::default());
    for u in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(units.contains(&u), "{units:?}");
    }
    // Nothing on these hosts runs as a static pod any more, but each is a node still: a kubelet
    // runs there (for what runs on every node), as on kubeadm's control planes.
    use kinit::components::{ComponentId, component};
    assert!(component(ComponentId::Kubelet).runs_on(&inv, cp1));
    inv.control_plane_mode = ControlPlaneMode::StaticPod;
    assert!(component(ComponentId::Kubelet).runs_on(&inv, cp1));
}
