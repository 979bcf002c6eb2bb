//! One component table, seven views: the files `kinit render` writes, the ports `kinit preflight`
//! checks, the units `kinit status` expects, what `kinit up` plans, the certificates and
//! kubeconfigs the PKI ships each host, what `kinit reset` takes off a host and what `kinit
//! remove` rewrites on the hosts that stay must all agree, for both topologies and both etcd
//! modes, with and without a kubelet in the bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use kinit::bundle::Bundle;
use kinit::components::{self, StartPolicy};
use kinit::config::template::{InitShape, render};
use kinit::config::{self, ControlPlaneMode, Topology};
use kinit::engine::plan::{self, PlanInputs, PutKind, Step};
use kinit::engine::playbook;
use kinit::facts::{ClockSkew, HostFacts};
use kinit::inventory::Inventory;
use kinit::preflight::{HostObservation, IgnoreSet, OperatorView, evaluate};
use kinit::render::Templates;

mod lifecycle_views;
mod pki_views;

const CLEAN: &str = include_str!("../fixtures/probe/clean-node.txt");

fn inventory(topology: Topology, etcd_mode: &str, bundle: &Path, snapshots: bool) -> Inventory {
    let mut text = render(InitShape {
        topology,
        control_planes: 2,
        workers: 1,
        etcd_hosts: 3,
    })
    .unwrap()
    .replace("mode: systemd", &format!("mode: {etcd_mode}"))
    .replace("bundle: ./bundle", &format!("bundle: {}", bundle.display()));
    if snapshots {
        // The line `kinit init` writes commented out.
        assert!(text.contains("    # snapshots: {"), "{text}");
        text = text.replace("    # snapshots: {", "    snapshots: {");
    }
    let (cfg, report) = config::check(Path::new("c.yaml"), text);
    assert!(!report.has_errors(), "{report:?}");
    Inventory::from_config(&cfg.unwrap(), Path::new("/tmp"), None).unwrap()
}

/// A bundle directory holding `files` (made-up contents) and their SHA256SUMS.
/// The node layer: what the kubelet's and containerd's bundle gates ask for, and the rest of
/// their binaries.
const NODE_FILES: &[&str] = &[
    "kubelet",
    "containerd",
    "runc",
    "images/pause.tar",
    "containerd-shim-runc-v2",
    "ctr",
    "cni/bridge",
    "cni/host-local",
    "cni/loopback",
    "cni/portmap",
    "kube-proxy",
];

fn bundle_with(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut sums = String::new();
    for f in files {
        let content = format!("#!/bin/sh\n# {f}\n");
        let path = dir.path().join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &content).unwrap();
        sums.push_str(&format!(
            "{}  {f}\n",
            kinit::ssh::sha256_hex(content.as_bytes())
        ));
    }
    std::fs::write(dir.path().join("SHA256SUMS"), sums).unwrap();
    dir
}

/// What `kinit up` plans for each host, over every phase: files, units, binaries, in phase order.
struct Planned {
    files: BTreeMap<String, BTreeSet<String>>,
    units: BTreeMap<String, Vec<(String, String)>>,
    running_units: BTreeMap<String, BTreeSet<String>>,
    /// Each host's prune steps, and whether its phase had written the marker files by then
    /// (pruning first would remove what the run is about to write).
    prunes: BTreeMap<String, Vec<(plan::PruneDir, bool)>>,
}

fn plan_all(inv: &Inventory) -> Planned {
    let book = playbook::load(None).unwrap();
    let templates = Templates::embedded().unwrap();
    let rendered: BTreeMap<_, _> = kinit::render::render_all(inv, &templates)
        .unwrap()
        .into_iter()
        .collect();
    let mut bundle = Bundle::open(inv.bundle.as_deref()).unwrap();
    let mut out = Planned {
        files: BTreeMap::new(),
        units: BTreeMap::new(),
        running_units: BTreeMap::new(),
        prunes: BTreeMap::new(),
    };
    // An upgrade-only phase converges again what an earlier phase does.
    for phase in book
        .phases
        .iter()
        .filter(|p| !p.converge.is_empty() && !p.upgrade_only)
    {
        for host in &inv.hosts {
            let mut inputs = PlanInputs {
                inventory: inv,
                pki_dir: Path::new("/nonexistent"),
                bundle: &mut bundle,
            };
            let steps = plan::for_host(phase, host, &rendered[&host.name], &mut inputs).unwrap();
            let mut written_in_phase: Vec<String> = Vec::new();
            for step in steps {
                match step {
                    Step::Put {
                        kind: PutKind::Files,
                        files,
                    } => {
                        written_in_phase.extend(files.iter().map(|f| f.path.clone()));
                        out.files
                            .entry(host.name.clone())
                            .or_default()
                            .extend(files.into_iter().map(|f| f.path))
                    }
                    Step::Prune(p) => {
                        let markers_written = written_in_phase.iter().any(|f| {
                            f.starts_with(&p.dir) && f.ends_with(&format!("/{}", p.marker_file))
                        });
                        out.prunes
                            .entry(host.name.clone())
                            .or_default()
                            .push((p, markers_written));
                    }
                    Step::Unit(u) => {
                        out.units
                            .entry(host.name.clone())
                            .or_default()
                            .push((phase.name.clone(), u.name.to_string()));
                        if u.start == StartPolicy::Always {
                            out.running_units
                                .entry(host.name.clone())
                                .or_default()
                                .insert(u.name.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// The `Port-N` checks preflight makes on each host (of a clean node).
fn preflight_ports(inv: &Inventory) -> BTreeMap<String, BTreeSet<u16>> {
    let obs: BTreeMap<String, HostObservation> = inv
        .hosts
        .iter()
        .map(|h| {
            let facts =
                HostFacts::parse(&CLEAN.replace("192.168.9.11/24", &format!("{}/24", h.address)))
                    .unwrap();
            (
                h.name.clone(),
                HostObservation::Reached {
                    facts: Box::new(facts),
                    clock_skew: Some(ClockSkew {
                        offset: 0.01,
                        uncertainty: 0.002,
                    }),
                },
            )
        })
        .collect();
    let report = evaluate(inv, &obs, &OperatorView::default(), &IgnoreSet::default());
    let mut out: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for f in report.findings {
        if let Some(port) = f.check.strip_prefix("Port-") {
            out.entry(f.host).or_default().insert(port.parse().unwrap());
        }
    }
    out
}

/// The shape of a cluster the views are compared for.
#[derive(Clone, Copy)]
struct Shape<'a> {
    topology: Topology,
    etcd_mode: &'a str,
    cp_mode: ControlPlaneMode,
    with_kubelet: bool,
    snapshots: bool,
}

fn check_views(shape: Shape) {
    let Shape {
        topology,
        etcd_mode,
        cp_mode,
        with_kubelet,
        snapshots,
    } = shape;
    let mut files = vec!["etcd", "etcdctl"];
    if with_kubelet {
        files.extend(NODE_FILES);
    }
    if cp_mode == ControlPlaneMode::Systemd {
        files.extend([
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
        ]);
    }
    let bundle = bundle_with(&files);
    let mut inv = inventory(topology, etcd_mode, bundle.path(), snapshots);
    inv.control_plane_mode = cp_mode;
    let case = format!(
        "{topology} / etcd {etcd_mode} / control plane {cp_mode} / kubelet in bundle: \
         {with_kubelet} / snapshots: {snapshots}"
    );
    let templates = Templates::embedded().unwrap();
    let planned = plan_all(&inv);
    let ports = preflight_ports(&inv);
    for host in &inv.hosts {
        let rendered: BTreeSet<String> = kinit::render::render_host(&inv, host, &templates)
            .unwrap()
            .into_iter()
            .map(|f| f.path.to_string())
            .collect();
        let mut deployed = planned.files.get(&host.name).cloned().unwrap_or_default();
        if !with_kubelet {
            // The files render shows that a bundle without the node layer does not bring: the
            // units and containerd's own configuration.
            for gated in [
                "/etc/systemd/system/kubelet.service",
                "/etc/systemd/system/kube-proxy.service",
                "/etc/systemd/system/containerd.service",
                "/etc/containerd/config.toml",
            ] {
                assert!(!deployed.contains(gated), "{case}: {gated}");
                if rendered.contains(gated) {
                    deployed.insert(gated.into());
                }
            }
        }
        assert_eq!(rendered, deployed, "{case}: {}: render vs up", host.name);

        let table_ports: BTreeSet<u16> = components::ports_on(&inv, host)
            .into_iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(
            ports.get(&host.name).cloned().unwrap_or_default(),
            table_ports,
            "{case}: {}: preflight vs table",
            host.name
        );

        let status: BTreeSet<String> = kinit::status::gather::probe_request(&inv, host)
            .units
            .into_iter()
            .collect();
        assert_eq!(
            status,
            planned
                .running_units
                .get(&host.name)
                .cloned()
                .unwrap_or_default(),
            "{case}: {}: status vs up",
            host.name
        );

        // Snapshots: on exactly the etcd hosts when set, the timer running (status expects it,
        // up starts it in the etcd-snapshots phase), the service it starts never a unit of up.
        let etcd_host = host.has(kinit::config::Role::Etcd);
        let timer_files = [
            "/usr/local/lib/kinit/etcd-snapshot.sh",
            "/etc/systemd/system/kinit-etcd-snapshot.service",
            "/etc/systemd/system/kinit-etcd-snapshot.timer",
        ];
        for f in timer_files {
            assert_eq!(
                rendered.contains(f),
                snapshots && etcd_host,
                "{case}: {}: {f}",
                host.name
            );
        }
        let host_units = planned.units.get(&host.name).cloned().unwrap_or_default();
        let timer: Vec<&(String, String)> = host_units
            .iter()
            .filter(|(_, u)| u.starts_with("kinit-etcd-snapshot"))
            .collect();
        if snapshots && etcd_host {
            assert_eq!(
                timer,
                [&(
                    "etcd-snapshots".to_string(),
                    "kinit-etcd-snapshot.timer".to_string()
                )],
                "{case}: {}",
                host.name
            );
            assert!(status.contains("kinit-etcd-snapshot.timer"), "{case}");
        } else {
            assert!(timer.is_empty(), "{case}: {}: {timer:?}", host.name);
        }

        // Anything the kubelet runs has a kubelet on the same host, started before any wait.
        let runs_static_pods = rendered
            .iter()
            .any(|p| p.starts_with("/etc/kubernetes/manifests/"));
        if runs_static_pods {
            assert!(ports[&host.name].contains(&10250), "{case}: {}", host.name);
            assert!(rendered.contains("/var/lib/kubelet/config.yaml"), "{case}");
            let kubelet = planned
                .units
                .get(&host.name)
                .and_then(|u| u.iter().find(|(_, unit)| unit == "kubelet"));
            match kubelet {
                Some((phase, _)) => {
                    assert!(with_kubelet, "{case}");
                    assert_eq!(phase, "node", "{case}: {}", host.name);
                }
                None => assert!(!with_kubelet, "{case}: {}: no kubelet planned", host.name),
            }
        }
    }
}

#[test]
fn render_preflight_status_and_up_agree_for_every_shape() {
    for topology in [Topology::Stacked, Topology::External] {
        for etcd_mode in ["systemd", "static-pod"] {
            for cp_mode in [ControlPlaneMode::StaticPod, ControlPlaneMode::Systemd] {
                for with_kubelet in [false, true] {
                    for snapshots in [false, true] {
                        check_views(Shape {
                            topology,
                            etcd_mode,
                            cp_mode,
                            with_kubelet,
                            snapshots,
                        });
                    }
                }
            }
        }
    }
}

#[test]
fn external_static_pod_etcd_hosts_get_a_kubelet_before_etcd_is_awaited() {
    let bundle = bundle_with(&[&["etcd", "etcdctl"][..], NODE_FILES].concat());
    let inv = inventory(Topology::External, "static-pod", bundle.path(), false);
    let planned = plan_all(&inv);
    let etcd1 = &planned.units["etcd1"];
    assert_eq!(
        etcd1,
        &[
            ("node".to_string(), "systemd-sysctl".to_string()),
            ("node".to_string(), "systemd-modules-load".to_string()),
            // Its container runtime first.
            ("node".to_string(), "containerd".to_string()),
            ("node".to_string(), "kinit-pod-network".to_string()),
            ("node".to_string(), "kubelet".to_string()),
            ("node".to_string(), "kube-proxy".to_string())
        ],
    );
    assert!(planned.files["etcd1"].contains("/etc/kubernetes/manifests/etcd.yaml"));
    assert!(planned.files["etcd1"].contains("/etc/systemd/system/kubelet.service"));
    let book = playbook::load(None).unwrap();
    let at = |name: &str| book.phases.iter().position(|p| p.name == name).unwrap();
    assert!(at("node") < at("etcd-static-pod"));
    assert!(at("node") < at("control-plane"));
    // The snapshot timer comes once etcd runs, in either mode.
    assert!(at("etcd") < at("etcd-snapshots") && at("etcd-static-pod") < at("etcd-snapshots"));
    let status = kinit::status::gather::probe_request(&inv, inv.host("etcd1").unwrap());
    assert_eq!(
        status.units,
        ["containerd", "kinit-pod-network", "kubelet", "kube-proxy"]
    );
}

#[test]
fn the_snapshot_phase_runs_on_every_etcd_host_or_is_skipped_in_the_config_words() {
    let bundle = bundle_with(&["etcd", "etcdctl"]);
    let row = components::component(components::ComponentId::EtcdSnapshots);
    for topology in [Topology::Stacked, Topology::External] {
        let off = inventory(topology, "systemd", bundle.path(), false);
        assert!(row.hosts(&off).is_empty());
        assert_eq!(row.absent_because(&off), "spec.etcd.snapshots is not set");
        for mode in ["systemd", "static-pod"] {
            let on = inventory(topology, mode, bundle.path(), true);
            let hosts: Vec<&str> = row.hosts(&on).iter().map(|h| h.name.as_str()).collect();
            let etcd: Vec<String> = on.etcd_members().into_iter().map(|m| m.name).collect();
            assert_eq!(hosts, etcd, "{topology} / {mode}");
        }
    }
}
