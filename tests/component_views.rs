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

const CLEAN: &str = include_str!("fixtures/probe/clean-node.txt");

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

/// Every file under `dir`, as `prefix` + its path below `dir`.
fn files_under(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let e = e.unwrap();
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            files_under(&e.path(), &format!("{name}/"), out);
        } else {
            out.insert(name);
        }
    }
}

/// The paths under /etc/kubernetes/ that `text` names (flags, config fields, shell variables).
fn kubernetes_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("/etc/kubernetes/") {
        let rest = &text[at..];
        let end = rest
            .find(|c: char| c.is_whitespace() || "\"',;:=)]}".contains(c))
            .unwrap_or(rest.len());
        out.insert(rest[..end].to_string());
    }
    out
}

/// Files kubeadm puts on hosts for their operators, not for a component kinit runs: the
/// kubeconfigs on the control-plane hosts (`super-admin.conf` on the first only) and the etcd
/// client certificate on the etcd hosts (etcdctl by hand; the snapshot script reads it too).
fn operators_files(inv: &Inventory, host: &kinit::inventory::Host) -> BTreeSet<String> {
    use kinit::config::Role;
    let mut out = BTreeSet::new();
    if host.has(Role::ControlPlane) {
        out.insert(kinit::host_paths::ADMIN_CONF.to_string());
        if inv
            .control_plane()
            .next()
            .is_some_and(|first| first.name == host.name)
        {
            out.insert(kinit::host_paths::SUPER_ADMIN_CONF.to_string());
        }
    }
    if host.has(Role::Etcd) {
        out.insert(kinit::host_paths::ETCD_HEALTHCHECK_CLIENT_CRT.to_string());
        out.insert(kinit::host_paths::ETCD_HEALTHCHECK_CLIENT_KEY.to_string());
    }
    out
}

/// The PKI's view (what `kinit certs generate` puts in each host's tree, which `kinit up` ships
/// to its /etc/kubernetes) against the table's: each host gets exactly the certificates and
/// kubeconfigs the components the table runs there read, and the kubelet's kubeconfig goes to
/// exactly the hosts the table gives a kubelet.
fn check_pki_view(topology: Topology, etcd_mode: &str, cp_mode: ControlPlaneMode, snapshots: bool) {
    let case =
        format!("{topology} / etcd {etcd_mode} / control plane {cp_mode} / snapshots: {snapshots}");
    let bundle = bundle_with(&[&["etcd", "etcdctl"][..], NODE_FILES].concat());
    let pki = tempfile::tempdir().unwrap();
    let mut inv = inventory(topology, etcd_mode, bundle.path(), snapshots);
    inv.control_plane_mode = cp_mode;
    inv.pki_dir = pki.path().to_path_buf();
    kinit::pki::generate(&inv, &kinit::pki::Mode::Generate, SystemTime::now()).unwrap();
    let templates = Templates::embedded().unwrap();
    let kubelet = components::component(components::ComponentId::Kubelet);
    for host in &inv.hosts {
        let name = &host.name;
        let mut shipped = BTreeSet::new();
        files_under(
            &pki.path().join(kinit::pki::table::host_root(name)),
            "/etc/kubernetes/",
            &mut shipped,
        );

        // What the table's components on this host read: each of them is shipped.
        let mut read = BTreeSet::new();
        for c in components::on_host(&inv, host) {
            for f in c.files {
                read.extend(f.certificates.iter().map(|p| p.to_string()));
            }
            for input in c.certificates {
                let under = format!("/etc/kubernetes/{}", input.under);
                let inputs: Vec<&String> =
                    shipped.iter().filter(|p| p.starts_with(&under)).collect();
                assert!(
                    !inputs.is_empty(),
                    "{case}: {name}: {} reads {under}: none shipped",
                    c.name
                );
                read.extend(inputs.into_iter().cloned());
            }
        }
        let missing: Vec<&String> = read.difference(&shipped).collect();
        assert!(
            missing.is_empty(),
            "{case}: {name}: read but not shipped: {missing:?}"
        );

        // What the files rendered for this host name (the kubelet unit's --kubeconfig, its
        // config's clientCAFile, flags, etcd's config): shipped, rendered, or a directory.
        let rendered = kinit::render::render_host(&inv, host, &templates).unwrap();
        let rendered_paths: BTreeSet<&str> = rendered.iter().map(|f| f.path.as_str()).collect();
        let mut named = BTreeSet::new();
        for f in &rendered {
            named.extend(kubernetes_paths(&f.content));
        }
        for p in &named {
            let dir = format!("{p}/");
            assert!(
                shipped.contains(p)
                    || rendered_paths.contains(p.as_str())
                    || shipped.iter().any(|s| s.starts_with(&dir))
                    || p == kinit::host_paths::MANIFESTS_DIR,
                "{case}: {name}: a rendered file names {p}, which the PKI does not ship"
            );
        }

        // And nothing shipped that no component there reads, but the operators' files.
        let operators = operators_files(&inv, host);
        let unread: Vec<&String> = shipped
            .iter()
            .filter(|p| !read.contains(*p) && !named.contains(*p) && !operators.contains(*p))
            .collect();
        assert!(
            unread.is_empty(),
            "{case}: {name}: shipped, read by nothing there: {unread:?}"
        );
        assert!(
            operators.is_subset(&shipped),
            "{case}: {name}: {operators:?}"
        );

        let conf = kinit::host_paths::KUBELET_CONF.to_string();
        let ca = kinit::host_paths::CA_CRT.to_string();
        let runs_kubelet = kubelet.runs_on(&inv, host);
        assert_eq!(
            shipped.contains(&conf),
            runs_kubelet,
            "{case}: {name}: kubelet.conf"
        );
        if runs_kubelet {
            assert!(
                shipped.contains(&ca),
                "{case}: {name}: the kubelet's client CA"
            );
        }
    }
}

#[test]
fn the_pki_ships_each_host_what_the_table_runs_there_reads() {
    for topology in [Topology::Stacked, Topology::External] {
        for etcd_mode in ["systemd", "static-pod"] {
            for cp_mode in [ControlPlaneMode::StaticPod, ControlPlaneMode::Systemd] {
                for snapshots in [false, true] {
                    check_pki_view(topology, etcd_mode, cp_mode, snapshots);
                }
            }
        }
    }
}

/// The case the PKI once decided by itself: etcd hosts that run etcd as a static pod run a
/// kubelet, which needs its kubeconfig (talking to the endpoint: no apiserver there) and the
/// cluster CA; control-plane hosts running the control plane as systemd units run no kubelet.
#[test]
fn every_host_the_table_gives_a_kubelet_gets_its_kubeconfig_and_no_other() {
    let bundle = bundle_with(&[&["etcd", "etcdctl"][..], NODE_FILES].concat());
    let profiles = kinit::pki::profiles::Profiles::embedded().unwrap();
    let kubelet_confs = |inv: &Inventory| -> Vec<(String, String)> {
        kinit::pki::certificates(inv, &profiles)
            .unwrap()
            .into_iter()
            .filter(|s| s.name == "kubelet.conf")
            .map(|s| match s.output {
                kinit::pki::table::Output::Kubeconfig { server, .. } => (s.host.unwrap(), server),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let mut inv = inventory(Topology::External, "static-pod", bundle.path(), false);
    assert_eq!(
        kubelet_confs(&inv),
        [
            ("cp1", "https://192.168.9.11:6443"),
            ("cp2", "https://192.168.9.12:6443"),
            ("etcd1", "https://192.168.9.100:8443"),
            ("etcd2", "https://192.168.9.100:8443"),
            ("etcd3", "https://192.168.9.100:8443"),
            ("worker1", "https://192.168.9.100:8443"),
        ]
        .map(|(h, s)| (h.to_string(), s.to_string()))
    );
    inv.control_plane_mode = ControlPlaneMode::Systemd;
    let hosts: Vec<String> = kubelet_confs(&inv).into_iter().map(|(h, _)| h).collect();
    // A control plane run as units is a node too (kubeadm's control planes all run kubelets).
    assert_eq!(hosts, ["cp1", "cp2", "etcd1", "etcd2", "etcd3", "worker1"]);
    let table: Vec<String> = components::component(components::ComponentId::Kubelet)
        .hosts(&inv)
        .iter()
        .map(|h| h.name.clone())
        .collect();
    assert_eq!(hosts, table);
}

/// containerd's certs.d holds one directory per registry of cluster.yaml: every host the table
/// gives containerd prunes it down to exactly those registries (after writing theirs), no other
/// host touches it, and each hosts.toml kinit renders starts with the header the prune step
/// tells kinit's directories by.
#[test]
fn every_containerd_host_prunes_certs_d_down_to_the_registries_of_the_config() {
    let bundle = bundle_with(&[&["etcd", "etcdctl"][..], NODE_FILES].concat());
    let text = render(InitShape {
        topology: Topology::Stacked,
        control_planes: 2,
        workers: 1,
        etcd_hosts: 3,
    })
    .unwrap()
    .replace(
        "bundle: ./bundle",
        &format!("bundle: {}", bundle.path().display()),
    );
    let with_registries = text.replacen(
        "\n  hosts:\n",
        "\n  registries:\n    - {name: \"10.0.0.5:5000\", mirrors: [\"http://10.0.0.5:5000\"], insecure: true}\n    - {name: registry.k8s.io, mirrors: [\"https://mirror.example\"]}\n  hosts:\n",
        1,
    );
    assert_ne!(with_registries, text, "no hosts list in {text}");
    let (cfg, report) = config::check(Path::new("c.yaml"), with_registries);
    assert!(!report.has_errors(), "{report:?}");
    let inv = Inventory::from_config(&cfg.unwrap(), Path::new("/tmp"), None).unwrap();
    let containerd: BTreeSet<String> = components::component(components::ComponentId::Containerd)
        .hosts(&inv)
        .into_iter()
        .map(|h| h.name.clone())
        .collect();
    assert!(!containerd.is_empty());
    let prunes = plan_all(&inv).prunes;
    let rendered: BTreeMap<_, _> = kinit::render::render_all(&inv, &Templates::embedded().unwrap())
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(prunes.keys().cloned().collect::<BTreeSet<_>>(), containerd);
    for (host, list) in &prunes {
        let [(p, markers_written)] = &list[..] else {
            panic!("{host}: {list:?}")
        };
        assert!(markers_written, "{host}: pruned before writing");
        let mut keep = p.keep.clone();
        keep.sort();
        assert_eq!(p.dir, "/etc/containerd/certs.d", "{host}");
        assert_eq!(p.marker_file, "hosts.toml", "{host}");
        assert_eq!(keep, ["10.0.0.5:5000", "registry.k8s.io"], "{host}");
        for r in rendered[host]
            .iter()
            .filter(|r| r.path.ends_with("/hosts.toml"))
        {
            assert!(
                r.content.starts_with(plan::RENDERED_MARK),
                "{host} {}: {}",
                r.path,
                r.content
            );
        }
    }
}

/// Every shape the views are checked for, with the node layer in the bundle.
fn every_full_shape(mut check: impl FnMut(&Inventory, &str)) {
    let mut files = vec!["etcd", "etcdctl"];
    files.extend(NODE_FILES);
    files.extend([
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
    ]);
    let bundle = bundle_with(&files);
    for topology in [Topology::Stacked, Topology::External] {
        for etcd_mode in ["systemd", "static-pod"] {
            for cp_mode in [ControlPlaneMode::StaticPod, ControlPlaneMode::Systemd] {
                let mut inv = inventory(topology, etcd_mode, bundle.path(), true);
                inv.control_plane_mode = cp_mode;
                check(
                    &inv,
                    &format!("{topology} / etcd {etcd_mode} / control plane {cp_mode}"),
                );
            }
        }
    }
}

#[test]
fn reset_takes_off_every_file_and_unit_up_puts_on_a_host() {
    use kinit::components::OnReset;
    every_full_shape(|inv, case| {
        let planned = plan_all(inv);
        for host in &inv.hosts {
            let reset =
                kinit::lifecycle::reset_plan::for_host(inv, host, Path::new("/nonexistent"));
            // What the table keeps on reset (the time sync), and says so.
            let kept: Vec<&components::Component> = components::on_host(inv, host)
                .filter(|c| matches!(c.on_reset, OnReset::Keep(_)))
                .collect();
            let kept_files: BTreeSet<&str> = kept
                .iter()
                .flat_map(|c| c.files.iter().map(|f| f.path))
                .collect();
            let kept_units: BTreeSet<&str> = kept
                .iter()
                .flat_map(|c| c.units.iter().map(|u| u.name))
                .collect();
            for c in &kept {
                assert!(
                    reset.kept.iter().any(|k| k.starts_with(c.name)),
                    "{case}: {}: {} kept without a word: {:?}",
                    host.name,
                    c.name,
                    reset.kept
                );
            }
            let removed: BTreeSet<&str> = reset
                .manifests
                .iter()
                .chain(&reset.files)
                .map(String::as_str)
                .collect();
            for f in planned.files.get(&host.name).into_iter().flatten() {
                assert!(
                    kept_files.contains(f.as_str()) || removed.contains(f.as_str()),
                    "{case}: {}: up writes {f}, reset leaves it",
                    host.name
                );
            }
            for u in planned.running_units.get(&host.name).into_iter().flatten() {
                assert!(
                    kept_units.contains(u.as_str()) || reset.units.contains(&u.as_str()),
                    "{case}: {}: up starts {u}, reset leaves it running",
                    host.name
                );
            }
            // Nothing stopped that the table does not run there.
            let table_units: BTreeSet<&str> = components::on_host(inv, host)
                .flat_map(|c| c.units.iter().map(|u| u.name))
                .collect();
            for u in &reset.units {
                assert!(table_units.contains(u), "{case}: {}: {u}", host.name);
            }
            assert_eq!(
                reset.data_dir.is_some(),
                host.has(kinit::config::Role::Etcd),
                "{case}: {}",
                host.name
            );
        }
    });
}

/// `remove` rewrites, on the hosts that stay, the files `files_to_update` names: every file
/// whose rendering changes when a host leaves the config must be one of them (or a host that
/// stays would keep naming the removed one), and each of them does change for some removal.
#[test]
fn remove_rewrites_every_file_that_names_the_removed_host() {
    use kinit::lifecycle::remove::{files_to_update, without};
    every_full_shape(|inv, case| {
        let templates = Templates::embedded().unwrap();
        let listed: BTreeSet<&str> = files_to_update(inv).into_iter().collect();
        let rendered = |inv: &Inventory, host: &kinit::inventory::Host| {
            kinit::render::render_host(inv, host, &templates)
                .unwrap()
                .into_iter()
                .map(|f| (f.path.to_string(), f.content))
                .collect::<BTreeMap<String, String>>()
        };
        let mut seen_changing = BTreeSet::new();
        for leaving in &inv.hosts {
            let going: BTreeSet<String> = [leaving.name.clone()].into();
            let mut rest = without(inv, &going);
            // The members that stay keep the settings they started with: `up` reads them from
            // their config (etcd reads them only on a first start), so etcd's file is stable.
            rest.etcd_bootstrap = rest
                .with_role(kinit::config::Role::Etcd)
                .map(|h| (h.name.clone(), inv.etcd_bootstrap_of(&h.name)))
                .collect();
            for host in &rest.hosts {
                let (before, after) = (rendered(inv, host), rendered(&rest, host));
                let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
                for p in paths {
                    if before.get(p) == after.get(p) {
                        continue;
                    }
                    assert!(
                        listed.contains(p.as_str()),
                        "{case}: without {}, {}'s {p} changes but remove does not rewrite it",
                        leaving.name,
                        host.name
                    );
                    seen_changing.insert(p.clone());
                }
            }
        }
        for f in &listed {
            assert!(
                seen_changing.contains(*f),
                "{case}: remove rewrites {f}, which no removal changes"
            );
        }
    });
}
