//! Fields that reach a rendered file or a remote command as one token: the VRRP interface, time
//! servers, etcd's data directory, certificate SANs, the external load balancer's name, the jump
//! host and login names. Each is held to what it is (a Linux interface name, a host name or IP,
//! an absolute normal path, ...), so none can carry a second line or a second word.

use super::super::model::*;
use super::super::problem::ConfigProblem;
use super::text::{
    check_dns_subdomain, check_host_or_ip, check_host_path, check_interface_name, check_login_name,
    check_san, shown,
};

pub(super) fn tokens(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let ep = &spec.control_plane_endpoint;
    if ep.load_balancer == LoadBalancerKind::HaproxyKeepalived
        && let Err(why) = check_interface_name(&ep.interface)
    {
        out.push(
            ConfigProblem::error(
                "config::interface",
                "spec.controlPlaneEndpoint.interface",
                format!("`{}` {why}", shown(&ep.interface)),
            )
            .help("the network interface keepalived announces the VIP on, as `ip link` names it, e.g. eth0"),
        );
    }
    // A name for the external load balancer (an IP parses as one; the haproxy-keepalived case
    // is refused by the endpoint rule, which needs an IP).
    if let Some(EndpointAddress::Dns(name)) = &ep.address
        && ep.load_balancer == LoadBalancerKind::External
        && let Err(why) = check_dns_subdomain(name)
    {
        out.push(
            ConfigProblem::error(
                "config::endpoint-address",
                "spec.controlPlaneEndpoint.address",
                format!(
                    "`{}` is neither an IP address nor a DNS name: it {why}",
                    shown(name)
                ),
            )
            .help("the load balancer's IP address or RFC 1123 DNS name, e.g. api.example.com"),
        );
    }
    for (i, server) in spec.time_sync.servers.iter().enumerate() {
        if let Err(why) = check_host_or_ip(server) {
            out.push(
                ConfigProblem::error(
                    "config::time-server",
                    format!("spec.timeSync.servers[{i}]"),
                    format!("`{}` {why}", shown(server)),
                )
                .help("an NTP server's host name or IP address, e.g. pool.ntp.org or 192.168.9.1"),
            );
        }
    }
    if let Err((why, help)) = check_host_path(
        &spec.etcd.data_dir,
        "etcd's data directory",
        "e.g. /var/lib/etcd",
    ) {
        out.push(
            ConfigProblem::error(
                "config::etcd-data-dir",
                "spec.etcd.dataDir",
                format!("`{}` {why}", shown(&spec.etcd.data_dir)),
            )
            .help(help),
        );
    }
    for (i, san) in spec.pki.extra_sans.iter().enumerate() {
        if let Err(why) = check_san(san) {
            out.push(
                ConfigProblem::error(
                    "config::san",
                    format!("spec.pki.extraSANs[{i}]"),
                    format!("`{}` {why}", shown(san)),
                )
                .help("an IP address or a lowercase DNS name, e.g. api.example.com, *.api.example.com or 203.0.113.10"),
            );
        }
    }
    ssh(spec, out);
}

/// The jump host's address and every login name.
fn ssh(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    if let Some(bastion) = &spec.ssh.bastion
        && let Some(address) = &bastion.address
        && let Err(why) = check_host_or_ip(address)
    {
        out.push(
            ConfigProblem::error(
                "config::bastion",
                "spec.ssh.bastion.address",
                format!("`{}` {why}", shown(address)),
            )
            .help("the jump host's IP address or DNS name, e.g. bastion.example.com"),
        );
    }
    let users = std::iter::once(("spec.ssh.user".to_string(), Some(&spec.ssh.user)))
        .chain(
            spec.ssh
                .bastion
                .iter()
                .map(|b| ("spec.ssh.bastion.user".to_string(), b.user.as_ref())),
        )
        .chain(
            spec.hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("spec.hosts[{i}].ssh.user"), h.ssh.user.as_ref())),
        );
    for (path, user) in users {
        if let Some(user) = user
            && let Err(why) = check_login_name(user)
        {
            out.push(
                ConfigProblem::error("config::ssh-user", path, format!("`{}` {why}", shown(user)))
                    .help("a login name on the hosts, e.g. root or ubuntu"),
            );
        }
    }
}
