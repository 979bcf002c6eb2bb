//! What every host gets: kernel settings and time sync.

use super::*;

pub(super) const KERNEL_SETTINGS: Component = Component {
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
};

pub(super) const CHRONY: Component = Component {
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
};
