//! Issue 16, section 1, second line of defence: with validation bypassed (hostile values put
//! straight into the inventory the templates render from), no template emits an extra line from
//! one value. YAML values are quoted (they read back as exactly the hostile string); tokens of
//! keepalived, haproxy, chrony, systemd units and the snapshot script are refused instead.

mod support;

use std::collections::HashMap;

use kinit::config::{EtcdMode, EtcdSnapshots};
use kinit::inventory::Inventory;
use kinit::render::{self, RenderError, RenderedFile, Templates};

/// The `stacked` example with every optional file on (chrony, snapshots), etcd in `mode`.
fn base(mode: EtcdMode) -> Inventory {
    let mut inv = support::render::inventory("stacked");
    inv.etcd.mode = mode;
    inv.etcd.snapshots = Some(EtcdSnapshots::default());
    inv
}

fn render(inv: &Inventory) -> Result<Vec<(String, Vec<RenderedFile>)>, RenderError> {
    render::render_all(inv, &Templates::embedded().unwrap())
}

fn by_path(files: Vec<(String, Vec<RenderedFile>)>) -> HashMap<(String, String), String> {
    files
        .into_iter()
        .flat_map(|(host, files)| {
            files
                .into_iter()
                .map(move |f| ((host.clone(), f.path), f.content))
        })
        .collect()
}

const MARK: &str = "INJECTED";

/// Every file has as many lines as with the plain value, no line starts with the injected text,
/// and every YAML file still parses.
fn assert_contained(
    what: &str,
    mode: EtcdMode,
    hostile: &Inventory,
) -> HashMap<(String, String), String> {
    let plain = by_path(render(&base(mode)).unwrap());
    let evil = by_path(render(hostile).unwrap_or_else(|e| panic!("{what}: {e}")));
    assert_eq!(plain.len(), evil.len(), "{what}");
    for (key, content) in &evil {
        let before = &plain[key];
        assert_eq!(
            content.lines().count(),
            before.lines().count(),
            "{what}: {key:?} gained lines:\n{content}"
        );
        for line in content.lines() {
            assert!(
                !line.trim_start().starts_with(MARK),
                "{what}: {key:?} has an injected line: {line}"
            );
        }
        if key.1.ends_with(".yaml") || key.1.ends_with(".yml") {
            serde_yaml::from_str::<serde_yaml::Value>(content)
                .unwrap_or_else(|e| panic!("{what}: {key:?} no longer parses: {e}\n{content}"));
        }
    }
    evil
}

fn yaml(content: &str) -> serde_yaml::Value {
    serde_yaml::from_str(content).unwrap()
}

#[test]
fn yaml_values_are_quoted_and_read_back_exactly() {
    let data_dir = format!("/var/lib/etcd\n{MARK}: true\nhostPID: true");

    // etcd as a static pod: the data dir in the command, the mount and the hostPath volume.
    let mut inv = base(EtcdMode::StaticPod);
    inv.etcd.data_dir = data_dir.clone();
    let files = assert_contained("dataDir (static pod)", EtcdMode::StaticPod, &inv);
    let pod = yaml(
        &files[&(
            "cp1".to_string(),
            "/etc/kubernetes/manifests/etcd.yaml".to_string(),
        )],
    );
    let command = &pod["spec"]["containers"][0]["command"];
    assert!(
        command
            .as_sequence()
            .unwrap()
            .iter()
            .any(|a| a.as_str() == Some(&format!("--data-dir={data_dir}"))),
        "{command:?}"
    );
    assert_eq!(
        pod["spec"]["volumes"][1]["hostPath"]["path"].as_str(),
        Some(data_dir.as_str())
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"].as_str(),
        Some(data_dir.as_str())
    );
    assert!(pod["spec"].get("hostPID").is_none());

    // etcd under systemd: its config file.
    let mut inv = base(EtcdMode::Systemd);
    inv.etcd.data_dir = data_dir.clone();
    inv.etcd_cluster_token = Some(format!("tok\n{MARK}: 1"));
    let files = assert_contained("dataDir (systemd)", EtcdMode::Systemd, &inv);
    let conf = yaml(&files[&("cp1".to_string(), "/etc/etcd/etcd.conf.yml".to_string())]);
    assert_eq!(conf["data-dir"].as_str(), Some(data_dir.as_str()));
    assert_eq!(
        conf["initial-cluster-token"].as_str(),
        Some(&*format!("tok\n{MARK}: 1"))
    );

    // The DNS domain (kubelet config, apiserver flag) and the image repository (every pod).
    let mut inv = base(EtcdMode::StaticPod);
    inv.networking.dns_domain = format!("cluster.local\n{MARK}: x");
    inv.image_repository = format!("registry.k8s.io\n    {MARK}: {{privileged: true}}");
    let files = assert_contained("dnsDomain, imageRepository", EtcdMode::StaticPod, &inv);
    let kubelet = yaml(
        &files[&(
            "cp1".to_string(),
            "/var/lib/kubelet/config.yaml".to_string(),
        )],
    );
    assert_eq!(
        kubelet["clusterDomain"].as_str(),
        Some(&*format!("cluster.local\n{MARK}: x"))
    );
    let apiserver = yaml(
        &files[&(
            "cp1".to_string(),
            "/etc/kubernetes/manifests/kube-apiserver.yaml".to_string(),
        )],
    );
    assert_eq!(
        apiserver["spec"]["containers"][0]["image"].as_str(),
        Some(&*format!(
            "registry.k8s.io\n    {MARK}: {{privileged: true}}/kube-apiserver:v1.31.4"
        ))
    );
}

#[test]
fn tokens_that_would_break_a_line_or_a_word_are_refused() {
    type Mutate = fn(&mut Inventory);
    let cases: [(&str, Mutate, &str); 8] = [
        (
            "interface (keepalived.conf)",
            |i| i.endpoint.interface = format!("eth0\nvrrp_script {MARK} {{"),
            "keepalived.conf",
        ),
        (
            "time server (chrony.conf)",
            |i| i.time_servers[0] = format!("pool.ntp.org\n{MARK} cmdallow all"),
            "chrony.conf",
        ),
        (
            "time server with a space (chrony.conf)",
            |i| i.time_servers[0] = "pool.ntp.org cmdallow".into(),
            "chrony.conf",
        ),
        (
            "snapshot dir (shell quote)",
            |i| i.etcd.snapshots.as_mut().unwrap().dir = "/x'; rm -rf / #".into(),
            "etcd-snapshot.sh",
        ),
        (
            "snapshot schedule (timer)",
            |i| i.etcd.snapshots.as_mut().unwrap().schedule = format!("hourly\n{MARK}=/bin/sh"),
            "kinit-etcd-snapshot.timer",
        ),
        (
            "host name (haproxy.cfg, comments)",
            |i| i.hosts[3].name = format!("worker1\n{MARK}"),
            "",
        ),
        (
            "control-plane name (haproxy server, snapshot script)",
            |i| i.hosts[0].name = "cp1 backup".into(),
            "",
        ),
        (
            "cluster name (comments, vrrp_instance)",
            |i| i.name = format!("demo\n{MARK}"),
            "",
        ),
    ];
    for (what, mutate, template) in cases {
        let mut inv = base(EtcdMode::StaticPod);
        mutate(&mut inv);
        let err = render(&inv)
            .err()
            .unwrap_or_else(|| panic!("{what}: rendered"));
        let message = err.to_string();
        assert!(message.contains("refusing"), "{what}: {message}");
        assert!(message.contains(template), "{what}: {message}");
    }
}

/// A registry's mirror is a TOML string in hosts.toml: quoted and escaped, it stays one key of
/// one table, whatever it holds.
#[test]
fn registry_mirrors_stay_one_toml_string() {
    let registry = |mirror: String| kinit::inventory::Registry {
        name: "registry.k8s.io".into(),
        mirrors: vec![mirror],
        ca_file: None,
        insecure: true,
    };
    let mut plain = base(EtcdMode::Systemd);
    plain.registries = vec![registry("https://mirror.internal".into())];
    let mut hostile = base(EtcdMode::Systemd);
    let evil = format!("https://m\"]\n{MARK} = true\n[host.\"x\\");
    hostile.registries = vec![registry(evil.clone())];
    let hosts_toml = |inv: &Inventory| {
        render(inv).unwrap()[0]
            .1
            .iter()
            .find(|f| f.path == "/etc/containerd/certs.d/registry.k8s.io/hosts.toml")
            .expect("cp1 renders the registry's hosts.toml")
            .content
            .clone()
    };
    let (before, after) = (hosts_toml(&plain), hosts_toml(&hostile));
    assert_eq!(before.lines().count(), after.lines().count(), "{after}");
    let doc: toml_edit::DocumentMut = after.parse().unwrap_or_else(|e| panic!("{e}\n{after}"));
    let hosts: Vec<&str> = doc["host"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(hosts, [evil.as_str()], "{after}");
    assert!(doc.get(MARK).is_none(), "{after}");
}

/// A registry's name is a directory under certs.d: one that would leave it is refused, whatever
/// validation let through.
#[test]
fn a_registry_name_cannot_leave_the_certs_directory() {
    for name in ["../../etc/cron.d", "..", "a/b", "x\ny", ""] {
        let mut inv = base(EtcdMode::Systemd);
        inv.registries = vec![kinit::inventory::Registry {
            name: name.into(),
            mirrors: vec![],
            ca_file: None,
            insecure: false,
        }];
        let err = render(&inv).expect_err(name).to_string();
        assert!(err.contains("cannot name a directory"), "{name:?}: {err}");
    }
}

/// A bundle holding only `images/etcd.tar`, named `reference` (as kinit builds it).
fn bundle_with_etcd_image(reference: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    let (archive, _) = kinit::bundle::image::oci_archive(&kinit::bundle::image::StaticImage {
        reference,
        binary_name: "usr/local/bin/etcd",
        binary: b"\x7fELF not really",
        user: "0:0",
        arch: "amd64",
    })
    .unwrap();
    std::fs::write(dir.path().join("images/etcd.tar"), archive).unwrap();
    dir
}

fn etcd_manifest(inv: &Inventory) -> Result<serde_yaml::Value, RenderError> {
    let files = by_path(render(inv)?);
    let manifest = files
        .iter()
        .find(|((host, path), _)| host == "cp1" && path == "/etc/kubernetes/manifests/etcd.yaml")
        .map(|(_, content)| content.clone())
        .expect("cp1's etcd manifest");
    Ok(yaml(&manifest))
}

#[test]
fn etcd_as_a_static_pod_runs_the_image_of_the_bundles_etcd() {
    // Without a bundle image: kubeadm's etcd for the Kubernetes release.
    let plain = etcd_manifest(&base(EtcdMode::StaticPod)).unwrap();
    let image = plain["spec"]["containers"][0]["image"].as_str().unwrap();
    assert!(image.starts_with("registry.k8s.io/etcd:3."), "{image}");
    // The bundle's etcd image, by its tag, under the cluster's imageRepository.
    let bundle = bundle_with_etcd_image("registry.k8s.io/etcd:3.6.16-0");
    let mut inv = base(EtcdMode::StaticPod);
    inv.bundle = Some(bundle.path().to_path_buf());
    let pod = etcd_manifest(&inv).unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.k8s.io/etcd:3.6.16-0"
    );
    let command = serde_yaml::to_string(&pod["spec"]["containers"][0]["command"]).unwrap();
    assert!(
        command.contains("--feature-gates=InitialCorruptCheck=true"),
        "etcd 3.6's flags: {command}"
    );
    inv.image_repository = "10.0.0.5:5000/k8s".into();
    let pod = etcd_manifest(&inv).unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "10.0.0.5:5000/k8s/etcd:3.6.16-0"
    );
    // etcd 3.5's flags for an etcd 3.5 image.
    let bundle = bundle_with_etcd_image("registry.k8s.io/etcd:3.5.26-0");
    inv.bundle = Some(bundle.path().to_path_buf());
    let pod = etcd_manifest(&inv).unwrap();
    let command = serde_yaml::to_string(&pod["spec"]["containers"][0]["command"]).unwrap();
    assert!(
        command.contains("--experimental-initial-corrupt-check=true"),
        "etcd 3.5's flags: {command}"
    );
    // A tag that is no image tag never reaches the manifest.
    let bundle = bundle_with_etcd_image(&format!("registry.k8s.io/etcd:3.6.16-0\n{MARK}: true"));
    inv.bundle = Some(bundle.path().to_path_buf());
    match etcd_manifest(&inv) {
        Err(e @ RenderError::ReadBundle { .. }) => {
            assert!(e.to_string().contains("images/etcd.tar"), "{e}")
        }
        other => panic!("rendered: {other:?}"),
    }
}
