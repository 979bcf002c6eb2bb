//! The apiservers' frontend on every control plane: haproxy and keepalived's VIP.

use super::*;

pub(super) const HAPROXY: Component = Component {
    id: ComponentId::Haproxy,
    name: "haproxy",
    roles: &[ControlPlane],
    with_static_pods: false,
    static_pod: false,
    when: Some(Condition::HaproxyKeepalived),
    packages: &["haproxy"],
    binaries: &[],
    // Every control plane's apiserver is a backend.
    files: &[FileRow {
        names_hosts: NamesHosts::Yes,
        ..file(
            "haproxy.cfg.tera",
            paths::HAPROXY_CFG,
            0o644,
            Reload("haproxy"),
        )
    }],
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
};

pub(super) const KEEPALIVED: Component = Component {
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
        // The peers (unicast) and each host's priority by its place among the control planes.
        FileRow {
            names_hosts: NamesHosts::Yes,
            ..file(
                "keepalived.conf.tera",
                paths::KEEPALIVED_CONF,
                0o644,
                Reload("keepalived"),
            )
        },
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
};
