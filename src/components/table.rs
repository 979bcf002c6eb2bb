//! The component table: for each thing kinit runs on a host, the hosts it runs on, its files,
//! binaries, units and ports, and what a change to each input asks of it. Playbooks order
//! phases over these rows; they never restate them.

use super::OnChange::{Nothing, Reload, Restart};
use super::OnReset::{Keep, Remove};
use super::StartPolicy::{Always, OnChange};
use super::{
    BinaryRow, CertificateInput, Component, ComponentId, Condition, FileRow, FilesPer, GoesLast,
    Healthy, PortNumber, PortRow, ReachedFrom, Rolling, UnitRow,
};
use crate::config::Role::{ControlPlane, Etcd, Worker};
use crate::host_paths as paths;
use crate::inventory::ports;

const fn file(
    template: &'static str,
    path: &'static str,
    mode: u32,
    on_change: super::OnChange,
) -> FileRow {
    FileRow {
        template,
        path,
        mode,
        on_change,
        gated: false,
        certificates: &[],
        per: FilesPer::Host,
    }
}

/// A static pod's manifest (0600 as kubeadm writes them, `WriteStaticPodToDisk`): the kubelet
/// reads it anew, and its pod reads `certificates`.
const fn pod_manifest(
    template: &'static str,
    path: &'static str,
    certificates: &'static [&'static str],
) -> FileRow {
    FileRow {
        certificates,
        ..file(template, path, 0o600, Nothing)
    }
}

/// What each static pod reads, as its flags name them (tests/render_certificates.rs checks
/// these lists against the rendered manifests' flags both ways).
const ETCD_POD_READS: &[&str] = &[
    paths::ETCD_CA_CRT,
    paths::ETCD_SERVER_CRT,
    paths::ETCD_SERVER_KEY,
    paths::ETCD_PEER_CRT,
    paths::ETCD_PEER_KEY,
];
const APISERVER_READS: &[&str] = &[
    paths::CA_CRT,
    paths::APISERVER_CRT,
    paths::APISERVER_KEY,
    paths::APISERVER_KUBELET_CLIENT_CRT,
    paths::APISERVER_KUBELET_CLIENT_KEY,
    paths::FRONT_PROXY_CA_CRT,
    paths::FRONT_PROXY_CLIENT_CRT,
    paths::FRONT_PROXY_CLIENT_KEY,
    paths::SA_KEY,
    paths::SA_PUB,
    paths::ETCD_CA_CRT,
    paths::APISERVER_ETCD_CLIENT_CRT,
    paths::APISERVER_ETCD_CLIENT_KEY,
];
const CONTROLLER_MANAGER_READS: &[&str] = &[
    paths::CA_CRT,
    paths::CA_KEY,
    paths::FRONT_PROXY_CA_CRT,
    paths::SA_KEY,
    paths::CONTROLLER_MANAGER_CONF,
];
const SCHEDULER_READS: &[&str] = &[paths::SCHEDULER_CONF];

/// A binary from the bundle, 0755, whose change restarts `unit`.
/// An image archive the kubelet's unit imports before it starts, where the bundle has it.
const fn image_row(file: &'static str, path: &'static str) -> BinaryRow {
    BinaryRow {
        file,
        path,
        mode: 0o644,
        on_change: Restart("kubelet"),
        optional: true,
    }
}

const fn bin(file: &'static str, path: &'static str, unit: &'static str) -> BinaryRow {
    BinaryRow {
        file,
        path,
        mode: 0o755,
        on_change: super::OnChange::Restart(unit),
        optional: false,
    }
}

const fn port(
    number: u16,
    label: &'static str,
    process: &'static str,
    reached_from: ReachedFrom,
) -> PortRow {
    PortRow {
        port: PortNumber::Fixed(number),
        label,
        process,
        reached_from,
    }
}

/// The control plane's ports, whichever way it runs.
const APISERVER_PORT: PortRow = port(
    ports::APISERVER,
    "kube-apiserver",
    "kube-apiserver",
    EVERY_HOST,
);
// kubeadm binds both to 127.0.0.1.
const CONTROLLER_MANAGER_PORT: PortRow = port(
    ports::CONTROLLER_MANAGER,
    "kube-controller-manager",
    "kube-controller",
    ReachedFrom::Local,
);
const SCHEDULER_PORT: PortRow = port(
    ports::SCHEDULER,
    "kube-scheduler",
    "kube-scheduler",
    ReachedFrom::Local,
);

/// A control-plane component's systemd unit file: its flags are the static pod's
/// (`<component>.flags.tera`), and it carries the hash of the certificates the component reads,
/// so a renewed certificate changes the file and restarts exactly the units that read it.
const fn control_plane_unit(
    template: &'static str,
    path: &'static str,
    unit: &'static str,
    certificates: &'static [&'static str],
) -> FileRow {
    FileRow {
        certificates,
        ..file(template, path, 0o644, Restart(unit))
    }
}

const fn control_plane_binary(file: &'static str, path: &'static str) -> BinaryRow {
    BinaryRow {
        file,
        path,
        mode: 0o755,
        on_change: Restart(file),
        optional: false,
    }
}

/// Every host of the cluster (kubelets and operators' tools reach the apiservers through the
/// frontend or directly).
const EVERY_HOST: ReachedFrom = ReachedFrom::Roles(&[ControlPlane, Etcd, Worker]);

const fn unit(name: &'static str) -> UnitRow {
    UnitRow {
        name,
        enable: true,
        start: Always,
        no_block: false,
    }
}

/// The timer of scheduled etcd snapshots: enabled and running (waiting for its next time); it
/// starts `kinit-etcd-snapshot.service`, which `kinit up` never starts itself.
pub const ETCD_SNAPSHOT_TIMER: &str = "kinit-etcd-snapshot.timer";

/// reset's entry for kube-proxy's Service rules: `kube-proxy --cleanup` takes them off (run
/// before its binary goes).
pub const KUBE_PROXY_CLEANUP: &str = "cleanup:/usr/local/bin/kube-proxy";

/// The oneshot unit that sets the routes between the nodes' pod slices.
pub const POD_NETWORK_UNIT: &str = "kinit-pod-network";

/// Clients: the apiservers and the other members (health checks, `kinit status`); peers: the
/// other members; metrics: 127.0.0.1 only.
const ETCD_PORTS: &[PortRow] = &[
    port(
        ports::ETCD_CLIENT,
        "etcd",
        "etcd",
        ReachedFrom::Roles(&[Etcd, ControlPlane]),
    ),
    port(
        ports::ETCD_PEER,
        "etcd",
        "etcd",
        ReachedFrom::Roles(&[Etcd]),
    ),
    port(ports::ETCD_METRICS, "etcd", "etcd", ReachedFrom::Local),
];

/// In the order render lists a host's files and status lists its units.
pub const TABLE: &[Component] = &[
    Component {
        id: ComponentId::Etcd,
        name: "etcd",
        roles: &[Etcd],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::EtcdSystemd),
        packages: &[],
        binaries: &[
            BinaryRow {
                file: "etcd",
                path: paths::ETCD_BINARY,
                mode: 0o755,
                on_change: Restart("etcd"),
                optional: false,
            },
            BinaryRow {
                file: "etcdctl",
                path: "/usr/local/bin/etcdctl",
                mode: 0o755,
                on_change: Nothing,
                optional: false,
            },
            // etcd 3.6 restores snapshots with etcdutl only (etcdctl 3.4 still can; 3.4 has
            // no etcdutl).
            BinaryRow {
                file: "etcdutl",
                path: "/usr/local/bin/etcdutl",
                mode: 0o755,
                on_change: Nothing,
                optional: true,
            },
        ],
        files: &[
            file(
                "etcd.service.tera",
                paths::ETCD_UNIT,
                0o644,
                Restart("etcd"),
            ),
            file(
                "etcd.conf.yml.tera",
                paths::ETCD_CONFIG,
                0o644,
                Restart("etcd"),
            ),
        ],
        certificates: &[CertificateInput {
            under: "pki/etcd/",
            on_change: Restart("etcd"),
        }],
        units: &[UnitRow {
            no_block: true,
            ..unit("etcd")
        }],
        ports: ETCD_PORTS,
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: false,
        runtime_state: &[],
        rolling: Some(Rolling {
            healthy: Healthy::EtcdMember,
            last: GoesLast::EtcdLeader,
        }),
    },
    Component {
        id: ComponentId::EtcdStaticPod,
        name: "etcd-static-pod",
        roles: &[Etcd],
        with_static_pods: false,
        static_pod: true,
        when: Some(Condition::EtcdStaticPod),
        packages: &[],
        binaries: &[],
        files: &[pod_manifest(
            "etcd.yaml.tera",
            paths::ETCD_MANIFEST,
            ETCD_POD_READS,
        )],
        certificates: &[],
        units: &[],
        ports: ETCD_PORTS,
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: false,
        runtime_state: &[],
        rolling: Some(Rolling {
            healthy: Healthy::PhaseWaits,
            last: GoesLast::EtcdLeader,
        }),
    },
    Component {
        id: ComponentId::EtcdSnapshots,
        name: "etcd-snapshots",
        roles: &[Etcd],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::EtcdSnapshots),
        // etcdctl: the bundle's in /usr/local/bin (etcd.mode: systemd), else the host's own.
        packages: &[],
        binaries: &[],
        files: &[
            // Run afresh each time the timer fires.
            file(
                "etcd-snapshot.sh.tera",
                paths::ETCD_SNAPSHOT_SCRIPT,
                0o755,
                Nothing,
            ),
            // Not started by `kinit up` (the timer starts it); systemd reads the changed unit
            // at the daemon-reload a unit file change always brings.
            file(
                "kinit-etcd-snapshot.service.tera",
                paths::ETCD_SNAPSHOT_SERVICE,
                0o644,
                Nothing,
            ),
            file(
                "kinit-etcd-snapshot.timer.tera",
                paths::ETCD_SNAPSHOT_TIMER,
                0o644,
                Restart(ETCD_SNAPSHOT_TIMER),
            ),
        ],
        // The script reads them anew on each run.
        certificates: &[],
        units: &[unit(ETCD_SNAPSHOT_TIMER)],
        ports: &[],
        bundle_gate: &[],
        // The timer, service and script go; the snapshots taken stay (reset says where).
        on_reset: Remove,
        stopped_for_restore: false,
        runtime_state: &[],
        rolling: None,
    },
    Component {
        id: ComponentId::ControlPlane,
        name: "control-plane",
        roles: &[ControlPlane],
        with_static_pods: false,
        static_pod: true,
        when: Some(Condition::ControlPlaneStaticPod),
        packages: &[],
        binaries: &[],
        files: &[
            pod_manifest(
                "kube-apiserver.yaml.tera",
                paths::KUBE_APISERVER_MANIFEST,
                APISERVER_READS,
            ),
            pod_manifest(
                "kube-controller-manager.yaml.tera",
                paths::KUBE_CONTROLLER_MANAGER_MANIFEST,
                CONTROLLER_MANAGER_READS,
            ),
            pod_manifest(
                "kube-scheduler.yaml.tera",
                paths::KUBE_SCHEDULER_MANIFEST,
                SCHEDULER_READS,
            ),
        ],
        certificates: &[],
        units: &[],
        ports: &[APISERVER_PORT, CONTROLLER_MANAGER_PORT, SCHEDULER_PORT],
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: true,
        runtime_state: &[],
        rolling: Some(Rolling {
            healthy: Healthy::PhaseWaits,
            last: GoesLast::None,
        }),
    },
    // The same three programs as systemd units running the bundle's binaries.
    Component {
        id: ComponentId::KubeApiserver,
        name: "kube-apiserver",
        roles: &[ControlPlane],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::ControlPlaneSystemd),
        packages: &[],
        binaries: &[
            control_plane_binary("kube-apiserver", paths::KUBE_APISERVER_BINARY),
            // For operators on the host (and `kubectl --kubeconfig /etc/kubernetes/admin.conf`).
            BinaryRow {
                file: "kubectl",
                path: paths::KUBECTL_BINARY,
                mode: 0o755,
                on_change: Nothing,
                optional: false,
            },
        ],
        files: &[control_plane_unit(
            "kube-apiserver.service.tera",
            paths::KUBE_APISERVER_UNIT,
            "kube-apiserver",
            APISERVER_READS,
        )],
        certificates: &[],
        units: &[unit("kube-apiserver")],
        ports: &[APISERVER_PORT],
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: true,
        runtime_state: &[],
        // Drained by every haproxy before it stops (it fails /readyz for its shutdown delay
        // while still serving), back in rotation only once /readyz passes; the VIP holder last.
        rolling: Some(Rolling {
            healthy: Healthy::ApiserverReady,
            last: GoesLast::VipHolder,
        }),
    },
    Component {
        id: ComponentId::KubeControllerManager,
        name: "kube-controller-manager",
        roles: &[ControlPlane],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::ControlPlaneSystemd),
        packages: &[],
        binaries: &[control_plane_binary(
            "kube-controller-manager",
            paths::KUBE_CONTROLLER_MANAGER_BINARY,
        )],
        files: &[control_plane_unit(
            "kube-controller-manager.service.tera",
            paths::KUBE_CONTROLLER_MANAGER_UNIT,
            "kube-controller-manager",
            CONTROLLER_MANAGER_READS,
        )],
        certificates: &[],
        units: &[unit("kube-controller-manager")],
        ports: &[CONTROLLER_MANAGER_PORT],
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: true,
        runtime_state: &[],
        // Leader-elected: one host at a time keeps a standby ready to take the lease.
        rolling: Some(Rolling {
            healthy: Healthy::PhaseWaits,
            last: GoesLast::None,
        }),
    },
    Component {
        id: ComponentId::KubeScheduler,
        name: "kube-scheduler",
        roles: &[ControlPlane],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::ControlPlaneSystemd),
        packages: &[],
        binaries: &[control_plane_binary(
            "kube-scheduler",
            paths::KUBE_SCHEDULER_BINARY,
        )],
        files: &[control_plane_unit(
            "kube-scheduler.service.tera",
            paths::KUBE_SCHEDULER_UNIT,
            "kube-scheduler",
            SCHEDULER_READS,
        )],
        certificates: &[],
        units: &[unit("kube-scheduler")],
        ports: &[SCHEDULER_PORT],
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: true,
        runtime_state: &[],
        rolling: Some(Rolling {
            healthy: Healthy::PhaseWaits,
            last: GoesLast::None,
        }),
    },
    Component {
        id: ComponentId::Haproxy,
        name: "haproxy",
        roles: &[ControlPlane],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::HaproxyKeepalived),
        packages: &["haproxy"],
        binaries: &[],
        files: &[file(
            "haproxy.cfg.tera",
            paths::HAPROXY_CFG,
            0o644,
            Reload("haproxy"),
        )],
        certificates: &[],
        units: &[unit("haproxy")],
        ports: &[
            PortRow {
                port: PortNumber::Frontend,
                label: "haproxy",
                process: "haproxy",
                reached_from: EVERY_HOST,
            },
            port(
                ports::HAPROXY_STATS,
                "haproxy stats",
                "haproxy",
                ReachedFrom::Local,
            ),
        ],
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: false,
        runtime_state: &[],
        rolling: Some(Rolling {
            healthy: Healthy::Port(PortNumber::Frontend),
            last: GoesLast::None,
        }),
    },
    Component {
        id: ComponentId::Keepalived,
        name: "keepalived",
        roles: &[ControlPlane],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::HaproxyKeepalived),
        // curl: the apiserver check script.
        packages: &["keepalived", "curl"],
        binaries: &[],
        files: &[
            file(
                "keepalived.conf.tera",
                paths::KEEPALIVED_CONF,
                0o644,
                Reload("keepalived"),
            ),
            // keepalived with enable_script_security runs only root-owned scripts that group and
            // others cannot write; it runs the script afresh each time.
            file(
                "check_apiserver.sh.tera",
                paths::CHECK_APISERVER_SH,
                0o755,
                Nothing,
            ),
        ],
        certificates: &[],
        units: &[unit("keepalived")],
        // VRRP is an IP protocol, not a port.
        ports: &[],
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: false,
        runtime_state: &[],
        rolling: Some(Rolling {
            healthy: Healthy::Vip,
            last: GoesLast::VipHolder,
        }),
    },
    Component {
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
            file(
                "pod-network.sh.tera",
                paths::POD_NETWORK_SCRIPT,
                0o755,
                Restart(POD_NETWORK_UNIT),
            ),
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
    },
    Component {
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
        // drained, and the next only once it is Ready again.
        rolling: Some(Rolling {
            healthy: Healthy::NodeReady,
            last: GoesLast::None,
        }),
    },
    Component {
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
    },
    Component {
        id: ComponentId::ControlPlaneImages,
        name: "control-plane-images",
        // The static pods' images, from the bundle: on the hosts that run them, before their
        // kubelet (re)starts and imports every archive, so no static pod waits for a pull.
        roles: &[ControlPlane],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::ControlPlaneStaticPod),
        packages: &[],
        binaries: &[
            image_row(
                "images/kube-apiserver.tar",
                paths::KUBE_APISERVER_IMAGE_ARCHIVE,
            ),
            image_row(
                "images/kube-controller-manager.tar",
                paths::KUBE_CONTROLLER_MANAGER_IMAGE_ARCHIVE,
            ),
            image_row(
                "images/kube-scheduler.tar",
                paths::KUBE_SCHEDULER_IMAGE_ARCHIVE,
            ),
        ],
        files: &[],
        certificates: &[],
        units: &[],
        ports: &[],
        // Only where a kubelet runs them.
        bundle_gate: &["kubelet"],
        on_reset: Remove,
        stopped_for_restore: false,
        runtime_state: &[],
        rolling: None,
    },
    Component {
        id: ComponentId::KernelSettings,
        name: "kernel-settings",
        // Every node: pods on control planes need forwarding and bridge netfilter too.
        roles: &[ControlPlane, Worker],
        with_static_pods: true,
        static_pod: false,
        when: None,
        packages: &[],
        binaries: &[],
        files: &[
            file(
                "sysctl-kubernetes.conf.tera",
                paths::SYSCTL_CONF,
                0o644,
                Restart("systemd-sysctl"),
            ),
            file(
                "modules-load-kubernetes.conf.tera",
                paths::MODULES_LOAD_CONF,
                0o644,
                Restart("systemd-modules-load"),
            ),
        ],
        certificates: &[],
        units: &[
            UnitRow {
                enable: false,
                start: OnChange,
                ..unit("systemd-sysctl")
            },
            UnitRow {
                enable: false,
                start: OnChange,
                ..unit("systemd-modules-load")
            },
        ],
        ports: &[],
        bundle_gate: &[],
        on_reset: Remove,
        stopped_for_restore: false,
        runtime_state: &[],
        rolling: None,
    },
    Component {
        id: ComponentId::Chrony,
        name: "chrony",
        roles: &[ControlPlane, Etcd, Worker],
        with_static_pods: false,
        static_pod: false,
        when: Some(Condition::TimeServers),
        packages: &["chrony"],
        binaries: &[],
        files: &[file(
            "chrony.conf.tera",
            paths::CHRONY_CONF,
            0o644,
            Restart("chrony"),
        )],
        certificates: &[],
        units: &[unit("chrony")],
        ports: &[],
        bundle_gate: &[],
        // The host keeps its time sync after leaving the cluster (a host without it drifts).
        on_reset: Keep("time sync stays: chrony keeps running with its configuration"),
        stopped_for_restore: false,
        runtime_state: &[],
        rolling: None,
    },
];
