//! The node layer: containerd, the kubelet and kube-proxy.

use super::*;

pub(super) const CONTAINERD: Component = Component {
    id: ComponentId::Containerd,
    name: "containerd",
    // Wherever a kubelet runs (its roles and static-pod rule are the kubelet's).
    roles: &[ControlPlane, Worker],
    with_static_pods: true,
    static_pod: false,
    when: None,
    packages: &[],
    binaries: &[
        bin("containerd", paths::CONTAINERD_BINARY, "containerd"),
        bin(
            "containerd-shim-runc-v2",
            paths::CONTAINERD_SHIM_BINARY,
            "containerd",
        ),
        bin("ctr", paths::CTR_BINARY, "containerd"),
        // Each container's runc is started afresh by its shim: a new runc needs no restart.
        BinaryRow {
            on_change: Nothing,
            ..bin("runc", paths::RUNC_BINARY, "containerd")
        },
        BinaryRow {
            on_change: Nothing,
            optional: true,
            ..bin("crictl", paths::CRICTL_BINARY, "containerd")
        },
        // CNI plugins run once per pod sandbox, likewise.
        BinaryRow {
            on_change: Nothing,
            ..bin("cni/bridge", paths::CNI_BRIDGE_PLUGIN, "containerd")
        },
        BinaryRow {
            on_change: Nothing,
            ..bin("cni/host-local", paths::CNI_HOST_LOCAL_PLUGIN, "containerd")
        },
        BinaryRow {
            on_change: Nothing,
            ..bin("cni/loopback", paths::CNI_LOOPBACK_PLUGIN, "containerd")
        },
        BinaryRow {
            on_change: Nothing,
            ..bin("cni/portmap", paths::CNI_PORTMAP_PLUGIN, "containerd")
        },
    ],
    files: &[
        FileRow {
            gated: true,
            ..file(
                "containerd.service.tera",
                paths::CONTAINERD_UNIT,
                0o644,
                Restart("containerd"),
            )
        },
        // Only with kinit's own containerd: a runtime installed another way keeps its
        // configuration.
        FileRow {
            gated: true,
            ..file(
                "containerd-config.toml.tera",
                paths::CONTAINERD_CONFIG,
                0o644,
                Restart("containerd"),
            )
        },
        // Registry mirrors and CAs: containerd reads certs.d anew for every pull.
        FileRow {
            gated: true,
            per: FilesPer::Registry,
            ..file(
                "containerd-hosts.toml.tera",
                paths::CONTAINERD_REGISTRY_HOSTS,
                0o644,
                Nothing,
            )
        },
        FileRow {
            gated: true,
            per: FilesPer::RegistryWithCa,
            ..file(
                "containerd-registry-ca.crt.tera",
                paths::CONTAINERD_REGISTRY_CA,
                0o644,
                Nothing,
            )
        },
        file("crictl.yaml.tera", paths::CRICTL_CONFIG, 0o644, Nothing),
        // containerd reads the CNI configuration for each new pod sandbox.
        file(
            "cni-bridge.conflist.tera",
            paths::CNI_CONFLIST,
            0o644,
            Nothing,
        ),
        // Routes to the other nodes' pods: set again as a whole when a node comes or goes.
        FileRow {
            names_hosts: NamesHosts::Yes,
            ..file(
                "pod-network.sh.tera",
                paths::POD_NETWORK_SCRIPT,
                0o755,
                Restart(POD_NETWORK_UNIT),
            )
        },
        file(
            "kinit-pod-network.service.tera",
            paths::POD_NETWORK_UNIT,
            0o644,
            Restart(POD_NETWORK_UNIT),
        ),
    ],
    certificates: &[],
    units: &[unit("containerd"), unit(POD_NETWORK_UNIT)],
    ports: &[],
    bundle_gate: &["containerd", "runc"],
    on_reset: Remove,
    stopped_for_restore: false,
    // The images and snapshots, the shims' state, the pods' addresses and their bridge.
    runtime_state: &[
        paths::CONTAINERD_ROOT,
        // Every registry's hosts.toml, also of registries no longer in cluster.yaml.
        paths::CONTAINERD_CERTS_DIR,
        "/run/containerd",
        "/var/lib/cni",
        "link:cni0",
    ],
    rolling: None,
};

pub(super) const KUBELET: Component = Component {
    id: ComponentId::Kubelet,
    name: "kubelet",
    // Every node: control planes (systemd-run ones too: a node for DaemonSets), workers,
    // and hosts whose static pods need a kubelet.
    roles: &[ControlPlane, Worker],
    with_static_pods: true,
    static_pod: false,
    when: None,
    packages: &[],
    binaries: &[
        BinaryRow {
            file: "kubelet",
            path: paths::KUBELET_BINARY,
            mode: 0o755,
            on_change: Restart("kubelet"),
            optional: false,
        },
        // The sandbox image, imported into containerd by the kubelet's unit before it starts.
        BinaryRow {
            file: crate::bundle::image::PAUSE_ARCHIVE,
            path: paths::PAUSE_IMAGE_ARCHIVE,
            mode: 0o644,
            on_change: Restart("kubelet"),
            optional: false,
        },
        // The cluster DNS add-on's image, where the bundle has it (the kubelet's restart
        // imports it; CoreDNS pods may land on any node).
        BinaryRow {
            file: crate::bundle::image::COREDNS_ARCHIVE,
            path: paths::COREDNS_IMAGE_ARCHIVE,
            mode: 0o644,
            on_change: Restart("kubelet"),
            optional: true,
        },
    ],
    files: &[
        FileRow {
            gated: true,
            ..file(
                "kubelet.service.tera",
                paths::KUBELET_UNIT,
                0o644,
                Restart("kubelet"),
            )
        },
        // Written even without a kubelet in the bundle: a kubelet installed another way
        // finds its configuration.
        file(
            "kubelet-config.yaml.tera",
            paths::KUBELET_CONFIG,
            0o644,
            Restart("kubelet"),
        ),
    ],
    // Its client certificate is embedded in kubelet.conf, read once at start.
    certificates: &[CertificateInput {
        under: "kubelet.conf",
        on_change: Restart("kubelet"),
    }],
    units: &[unit("kubelet")],
    // The apiservers reach each kubelet (logs, exec, port-forward).
    ports: &[port(
        ports::KUBELET,
        "kubelet",
        "kubelet",
        ReachedFrom::Roles(&[ControlPlane]),
    )],
    // The kubelet needs a container runtime and the sandbox image; kinit starts it only
    // when the bundle carries them.
    bundle_gate: &[
        "kubelet",
        "containerd",
        "runc",
        crate::bundle::image::PAUSE_ARCHIVE,
    ],
    on_reset: Remove,
    stopped_for_restore: false,
    // Its pods' volumes and its own certificates (rotated client certificate, serving
    // certificate); its configuration file inside is a file row.
    runtime_state: &["/var/lib/kubelet"],
    // One node at a time: a kubelet moving to another release goes only once its node is
    // drained, and the next only once it is Ready again. Its restart may re-create a static-pod
    // etcd member: that member's leadership is handed over first.
    rolling: Some(Rolling {
        healthy: Healthy::NodeReady,
        last: GoesLast::StaticPodEtcdLeader,
    }),
};

pub(super) const KUBE_PROXY: Component = Component {
    id: ComponentId::KubeProxy,
    name: "kube-proxy",
    // Beside every kubelet: Services answer on every node.
    roles: &[ControlPlane, Worker],
    with_static_pods: true,
    static_pod: false,
    when: None,
    packages: &[],
    binaries: &[bin("kube-proxy", paths::KUBE_PROXY_BINARY, "kube-proxy")],
    files: &[
        FileRow {
            gated: true,
            ..file(
                "kube-proxy.service.tera",
                paths::KUBE_PROXY_UNIT,
                0o644,
                Restart("kube-proxy"),
            )
        },
        file(
            "kube-proxy-config.yaml.tera",
            paths::KUBE_PROXY_CONFIG,
            0o644,
            Restart("kube-proxy"),
        ),
    ],
    // Its client certificate is embedded in kube-proxy.conf, read once at start.
    certificates: &[CertificateInput {
        under: "kube-proxy.conf",
        on_change: Restart("kube-proxy"),
    }],
    units: &[unit("kube-proxy")],
    // Its healthz answers external load balancers (externalTrafficPolicy: Local Services),
    // not the cluster's hosts: preflight checks it is free, not that other hosts reach it.
    ports: &[
        port(
            ports::KUBE_PROXY_HEALTHZ,
            "kube-proxy healthz",
            "kube-proxy",
            ReachedFrom::Local,
        ),
        port(
            ports::KUBE_PROXY_METRICS,
            "kube-proxy metrics",
            "kube-proxy",
            ReachedFrom::Local,
        ),
    ],
    bundle_gate: &["kube-proxy"],
    on_reset: Remove,
    stopped_for_restore: false,
    // Its Service rules (KUBE-* chains): kube-proxy --cleanup takes them off.
    runtime_state: &[KUBE_PROXY_CLEANUP],
    rolling: None,
};
