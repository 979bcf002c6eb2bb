//! The component table: for each thing kinit runs on a host, the hosts it runs on, its files,
//! binaries, units and ports, and what a change to each input asks of it. Playbooks order
//! phases over these rows; they never restate them.

use super::OnChange::{Nothing, Reload, Restart};
use super::OnReset::{Keep, Remove};
use super::StartPolicy::{Always, OnChange};
use super::{
    BinaryRow, CertificateInput, Component, ComponentId, Condition, FileRow, FilesPer, GoesLast,
    Healthy, NamesHosts, PortNumber, PortRow, ReachedFrom, Rolling, UnitRow,
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
        names_hosts: NamesHosts::No,
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

mod control_plane;
mod etcd;
pub(super) use etcd::{ETCD_CONFIG_FILE, ETCD_MANIFEST_FILE};
mod host;
mod load_balancer;
mod node;

/// In the order render lists a host's files and status lists its units.
pub const TABLE: &[Component] = &[
    etcd::ETCD,
    etcd::ETCD_STATIC_POD,
    etcd::ETCD_SNAPSHOTS,
    control_plane::CONTROL_PLANE,
    control_plane::KUBE_APISERVER,
    control_plane::KUBE_CONTROLLER_MANAGER,
    control_plane::KUBE_SCHEDULER,
    load_balancer::HAPROXY,
    load_balancer::KEEPALIVED,
    node::CONTAINERD,
    node::KUBELET,
    node::KUBE_PROXY,
    control_plane::CONTROL_PLANE_IMAGES,
    etcd::ETCD_IMAGE,
    host::KERNEL_SETTINGS,
    host::CHRONY,
];
