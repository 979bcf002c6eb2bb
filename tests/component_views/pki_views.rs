//! The PKI's view against the table: each host gets the certificates and kubeconfigs the
//! components the table runs there read; containerd's certs.d holds the config's registries.

use super::*;

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
