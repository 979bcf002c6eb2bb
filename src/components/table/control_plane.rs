//! The control plane: its static pods, the same three programs as units, and the static pods' images.

use super::*;

pub(super) const CONTROL_PLANE: Component = Component {
    id: ComponentId::ControlPlane,
    name: "control-plane",
    roles: &[ControlPlane],
    with_static_pods: false,
    static_pod: true,
    when: Some(Condition::ControlPlaneStaticPod),
    packages: &[],
    binaries: &[],
    files: &[
        // With external etcd, --etcd-servers names every etcd host (stacked: its own member).
        FileRow {
            names_hosts: NamesHosts::When(Condition::ExternalTopology),
            ..pod_manifest(
                "kube-apiserver.yaml.tera",
                paths::KUBE_APISERVER_MANIFEST,
                APISERVER_READS,
            )
        },
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
};

// The same three programs as systemd units running the bundle's binaries.
pub(super) const KUBE_APISERVER: Component = Component {
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
    // With external etcd, --etcd-servers names every etcd host (stacked: its own member).
    files: &[FileRow {
        names_hosts: NamesHosts::When(Condition::ExternalTopology),
        ..control_plane_unit(
            "kube-apiserver.service.tera",
            paths::KUBE_APISERVER_UNIT,
            "kube-apiserver",
            APISERVER_READS,
        )
    }],
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
};

pub(super) const KUBE_CONTROLLER_MANAGER: Component = Component {
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
};

pub(super) const KUBE_SCHEDULER: Component = Component {
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
};

pub(super) const CONTROL_PLANE_IMAGES: Component = Component {
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
};
