//! Static pods are re-created when a certificate they read changes. The kubelet restarts a static
//! pod only when its manifest changes, so each manifest carries `kinit.io/certificates-sha256`, a
//! hash of what its pod reads on that host (the component table's per-file `certificates`). A
//! renewal changes exactly the manifests of the pods that read the renewed files, on exactly the
//! hosts that hold them; an unchanged PKI renders the same bytes (a second `up` restarts nothing).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use kinit::components::{FileRow, TABLE};
use kinit::host_paths as p;
use kinit::inventory::Inventory;
use kinit::pki::{Mode, generate};
use kinit::render::certificates::{ANNOTATION, NO_PKI};
use kinit::render::{self, Templates};
use support::render::{EXAMPLES, fixture, inventory_from, rendered};

/// The stacked example (etcd as a static pod) in a temporary directory, with its PKI.
fn stacked_with_pki() -> (tempfile::TempDir, Inventory) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.yaml");
    std::fs::copy(fixture("stacked"), &config).unwrap();
    let inv = inventory_from(&config);
    assert!(inv.pki_dir.starts_with(dir.path()));
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    (dir, inv)
}

/// Every static-pod manifest, by (host, path).
fn manifests(inv: &Inventory) -> BTreeMap<(String, String), String> {
    render::render_all(inv, &Templates::embedded().unwrap())
        .unwrap()
        .into_iter()
        .flat_map(|(host, files)| {
            files
                .into_iter()
                .filter(|f| f.path.starts_with(p::MANIFESTS_DIR))
                .map(move |f| ((host.clone(), f.path), f.content))
        })
        .collect()
}

fn annotation(manifest: &str) -> String {
    let doc: serde_yaml::Value = serde_yaml::from_str(manifest).unwrap();
    doc["metadata"]["annotations"][ANNOTATION]
        .as_str()
        .unwrap_or_else(|| panic!("no {ANNOTATION} in\n{manifest}"))
        .to_string()
}

fn changed(
    before: &BTreeMap<(String, String), String>,
    after: &BTreeMap<(String, String), String>,
) -> Vec<(String, String)> {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    after
        .iter()
        .filter(|(k, v)| before[*k] != **v)
        .map(|(k, _)| k.clone())
        .collect()
}

fn renew(inv: &Inventory, name: &str) {
    generate(
        inv,
        &Mode::Renew([name.to_string()].into()),
        SystemTime::now(),
    )
    .unwrap();
}

#[test]
fn a_renewed_certificate_changes_exactly_the_manifests_of_the_pods_that_read_it() {
    let (_dir, inv) = stacked_with_pki();
    let first = manifests(&inv);
    assert_eq!(first.len(), 12, "4 static pods on each of 3 control planes");
    let hashes: BTreeSet<String> = first.values().map(|m| annotation(m)).collect();
    for h in &hashes {
        assert!(
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "{h}"
        );
    }
    // Per host and per pod: each reads its own set of files, and apiserver.crt, the etcd
    // certificates and the kubeconfigs differ from host to host.
    assert_eq!(hashes.len(), 12);

    // Nothing renewed: the same bytes, so a second `up` writes no manifest and restarts nothing.
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    assert_eq!(manifests(&inv), first);

    const ETCD: &str = p::ETCD_MANIFEST;
    const APISERVER: &str = p::KUBE_APISERVER_MANIFEST;
    const CONTROLLER_MANAGER: &str = p::KUBE_CONTROLLER_MANAGER_MANIFEST;
    const SCHEDULER: &str = p::KUBE_SCHEDULER_MANIFEST;
    let cases: &[(&str, &[&str])] = &[
        ("etcd-server", &[ETCD]),
        ("etcd-peer", &[ETCD]),
        ("apiserver", &[APISERVER]),
        ("apiserver-etcd-client", &[APISERVER]),
        ("apiserver-kubelet-client", &[APISERVER]),
        ("front-proxy-client", &[APISERVER]),
        ("controller-manager.conf", &[CONTROLLER_MANAGER]),
        ("scheduler.conf", &[SCHEDULER]),
        // Read by no pod: kubectl, kinit's own health checks, the kubelet.
        ("admin.conf", &[]),
        ("super-admin.conf", &[]),
        ("etcd-healthcheck-client", &[]),
        ("kubelet.conf", &[]),
    ];
    let mut before = first;
    for (name, pods) in cases {
        renew(&inv, name);
        let after = manifests(&inv);
        let want: Vec<(String, String)> = ["cp1", "cp2", "cp3"]
            .iter()
            .flat_map(|h| pods.iter().map(move |pod| (h.to_string(), pod.to_string())))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(changed(&before, &after), want, "renewing {name}");
        before = after;
    }

    // One host's certificate alone (generate re-issues the one that went missing): only that
    // host's apiserver is re-created.
    std::fs::remove_file(
        inv.pki_dir
            .join(kinit::pki::table::host_root("cp2"))
            .join("pki/apiserver.crt"),
    )
    .unwrap();
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    let after = manifests(&inv);
    assert_eq!(
        changed(&before, &after),
        vec![("cp2".to_string(), APISERVER.to_string())]
    );
}

#[test]
fn without_a_pki_the_annotation_says_so() {
    // The example's pki dir (tests/fixtures/render/pki) does not exist.
    for example in EXAMPLES {
        for (host, files) in rendered(example) {
            for f in files
                .iter()
                .filter(|f| f.path.starts_with(p::MANIFESTS_DIR))
            {
                assert_eq!(annotation(&f.content), NO_PKI, "{example}/{host}{}", f.path);
            }
        }
    }
}

/// The table's lists are what the pods' flags name, both ways: every certificate, key or
/// kubeconfig a flag points at is hashed, and nothing else is.
#[test]
fn each_pod_hashes_the_files_its_flags_name() {
    let rows: Vec<&FileRow> = TABLE.iter().flat_map(|c| c.files.iter()).collect();
    let mut checked = 0;
    for example in EXAMPLES {
        for (host, files) in rendered(example) {
            for f in files
                .iter()
                .filter(|f| f.path.starts_with(p::MANIFESTS_DIR))
            {
                let row = rows.iter().find(|r| r.path == f.path).unwrap();
                let doc: serde_yaml::Value = serde_yaml::from_str(&f.content).unwrap();
                let mut named = BTreeSet::new();
                for container in doc["spec"]["containers"].as_sequence().unwrap() {
                    for arg in container["command"].as_sequence().unwrap() {
                        let arg = arg.as_str().unwrap();
                        if let Some((_, value)) = arg.split_once('=')
                            && value.starts_with(p::KUBERNETES_DIR)
                        {
                            named.insert(value);
                        }
                    }
                }
                let listed: BTreeSet<&str> = row.certificates.iter().copied().collect();
                assert_eq!(named, listed, "{example}/{host}{}", f.path);
                checked += 1;
            }
        }
    }
    assert!(checked >= 4 * 3);
}
