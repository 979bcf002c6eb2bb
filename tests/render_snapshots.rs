//! Every file kinit renders for the example clusters (tests/fixtures/render/), one snapshot per host and path, so a
//! template change shows up as a reviewable diff.

mod support;

use std::collections::BTreeSet;

use support::render::{EXAMPLES, rendered, snapshot_name};

#[test]
fn every_rendered_file_matches_its_snapshot() {
    for example in EXAMPLES {
        for (host, files) in rendered(example) {
            assert!(!files.is_empty(), "{example}/{host} received no files");
            for f in files {
                insta::assert_snapshot!(snapshot_name(example, &host, &f.path), f.content);
            }
        }
    }
}

#[test]
fn the_examples_use_every_template() {
    let used: BTreeSet<&str> = EXAMPLES
        .iter()
        .flat_map(|e| rendered(e))
        .flat_map(|(_, files)| files.into_iter().map(|f| f.template))
        .collect();
    let all: BTreeSet<&str> = kinit::render::templates::EMBEDDED
        .iter()
        .map(|(name, _)| *name)
        .collect();
    // The flags templates are rendered into the manifests and units, not to files of their own.
    let flags: BTreeSet<&str> = kinit::render::flags::FLAG_SETS
        .iter()
        .map(|f| f.template)
        .collect();
    assert_eq!(&used | &flags, all);
    assert!(used.is_disjoint(&flags));
}

#[test]
fn each_host_gets_the_files_of_its_roles() {
    let paths = |example: &str, host: &str| -> Vec<&'static str> {
        rendered(example)
            .into_iter()
            .find(|(h, _)| h == host)
            .unwrap()
            .1
            .iter()
            // Leaked: a test's few paths, compared with the &'static path constants.
            .map(|f| &*Box::leak(f.path.clone().into_boxed_str()))
            .collect()
    };
    use kinit::host_paths as p;
    // Stacked, static-pod etcd: etcd manifest next to the control plane, no etcd unit.
    let cp = paths("stacked", "cp2");
    for want in [
        p::ETCD_MANIFEST,
        p::KUBE_APISERVER_MANIFEST,
        p::HAPROXY_CFG,
        p::CHRONY_CONF,
    ] {
        assert!(cp.contains(&want), "stacked cp2 lacks {want}");
    }
    assert!(!cp.contains(&p::ETCD_UNIT));
    // No snapshots block, no snapshot timer.
    assert!(!cp.contains(&p::ETCD_SNAPSHOT_TIMER));
    // Snapshots with a static-pod etcd: on every etcd host, next to the manifest.
    for host in ["cp1", "cp2", "cp3"] {
        let cp = paths("ipv6", host);
        for want in [
            p::ETCD_MANIFEST,
            p::ETCD_SNAPSHOT_SCRIPT,
            p::ETCD_SNAPSHOT_SERVICE,
            p::ETCD_SNAPSHOT_TIMER,
        ] {
            assert!(cp.contains(&want), "ipv6 {host} lacks {want}");
        }
    }
    // External, systemd etcd: unit + config on etcd hosts only, nothing of the control plane.
    let etcd = paths("external", "etcd1");
    assert_eq!(
        etcd,
        vec![
            p::ETCD_UNIT,
            p::ETCD_CONFIG,
            p::ETCD_SNAPSHOT_SCRIPT,
            p::ETCD_SNAPSHOT_SERVICE,
            p::ETCD_SNAPSHOT_TIMER
        ]
    );
    let cp = paths("external", "cp1");
    assert!(!cp.contains(&p::ETCD_UNIT) && !cp.contains(&p::ETCD_MANIFEST));
    assert!(
        !cp.contains(&p::ETCD_SNAPSHOT_TIMER),
        "snapshots are an etcd host's"
    );
    // Workers: containerd and its pod network, the kubelet and kernel settings, no control
    // plane, no load balancer. Each registry of spec.registries gets its hosts.toml, and the
    // one with a CA file its ca.crt.
    assert_eq!(
        paths("external", "worker1"),
        vec![
            p::CONTAINERD_UNIT,
            p::CONTAINERD_CONFIG,
            "/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
            "/etc/containerd/certs.d/docker.io/hosts.toml",
            "/etc/containerd/certs.d/registry.k8s.io/ca.crt",
            p::CRICTL_CONFIG,
            p::CNI_CONFLIST,
            p::POD_NETWORK_SCRIPT,
            p::POD_NETWORK_UNIT,
            p::KUBELET_UNIT,
            p::KUBELET_CONFIG,
            p::KUBE_PROXY_UNIT,
            p::KUBE_PROXY_CONFIG,
            p::SYSCTL_CONF,
            p::MODULES_LOAD_CONF
        ]
    );
}

/// spec.imageRepository feeds every static pod's `image:`: kubeadm's registry when unset
/// (stacked), the mirror when set (ipv6).
#[test]
fn static_pod_images_come_from_the_image_repository() {
    use kinit::host_paths as p;
    for (example, repository) in [
        ("stacked", "registry.k8s.io"),
        ("ipv6", "registry.aliyuncs.com/google_containers"),
    ] {
        let (_, files) = rendered(example)
            .into_iter()
            .find(|(h, _)| h == "cp1")
            .unwrap();
        for (path, image) in [
            (p::KUBE_APISERVER_MANIFEST, "kube-apiserver"),
            (
                p::KUBE_CONTROLLER_MANAGER_MANIFEST,
                "kube-controller-manager",
            ),
            (p::KUBE_SCHEDULER_MANIFEST, "kube-scheduler"),
            (p::ETCD_MANIFEST, "etcd"),
        ] {
            let f = files.iter().find(|f| f.path == path).unwrap();
            let images: Vec<&str> = f
                .content
                .lines()
                .filter_map(|l| l.trim().strip_prefix("image: "))
                .collect();
            assert_eq!(images.len(), 1, "{example} {path}: {images:?}");
            assert!(
                images[0].starts_with(&format!("{repository}/{image}:")),
                "{example} {path}: {}",
                images[0]
            );
        }
    }
}
