//! The rules a well-formed cluster.yaml must also satisfy: names, addresses, topology, quorum,
//! endpoint and subnets (here), scheduled etcd snapshots, the image repository and the
//! directories kinit moves or fills on the hosts (their own files), and the text rules they
//! share (`text`). Each rule reports against the field paths it is about.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::model::*;
use super::problem::ConfigProblem;

mod calendar;
mod etcd_snapshots;
mod host_dirs;
mod image_repository;
mod kubernetes_version;
mod registries;
mod text;
mod tokens;

pub(crate) use text::{describe_char, shown};

use etcd_snapshots::etcd_snapshots;
use host_dirs::host_dirs;
use image_repository::image_repository;
use kubernetes_version::kubernetes_version;
use registries::registries;
use text::{check_dns_label, check_dns_subdomain};
use tokens::tokens;

pub fn validate(cfg: &Config) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    if let Some(name) = &cfg.name
        && let Err(why) = check_dns_label(name)
    {
        out.push(
            ConfigProblem::error(
                "config::cluster-name",
                "metadata.name",
                format!("`{}` {why}", shown(name)),
            )
            .help("use lowercase letters, digits and '-', at most 63 characters (e.g. demo)"),
        );
    }
    let spec = &cfg.spec;
    hosts(spec, &mut out);
    topology(spec, &mut out);
    endpoint(spec, &mut out);
    subnets(spec, &mut out);
    misc(spec, &mut out);
    etcd_snapshots(spec, &mut out);
    image_repository(spec, &mut out);
    registries(spec, &mut out);
    kubernetes_version(spec, &mut out);
    tokens(spec, &mut out);
    host_dirs(spec, &mut out);
    out
}

fn host_path(i: usize) -> String {
    format!("spec.hosts[{i}]")
}

fn hosts(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
    for (i, h) in spec.hosts.iter().enumerate() {
        let p = host_path(i);
        if let Some(name) = &h.name {
            if let Err(why) = check_dns_subdomain(name) {
                out.push(
                    ConfigProblem::error("config::hostname", format!("{p}.name"), format!("`{}` {why}", shown(name)))
                        .help("host names become Kubernetes node names: RFC 1123, lowercase letters, digits, '-' and '.'"),
                );
            }
            if let Some(first) = names.insert(name.to_ascii_lowercase(), i) {
                out.push(
                    ConfigProblem::error(
                        "config::duplicate-host",
                        format!("{p}.name"),
                        format!("host name `{name}` is used twice"),
                    )
                    .label("second use")
                    .also(format!("{}.name", host_path(first)), "first use")
                    .help("every host needs its own name"),
                );
            }
        }
        if let Some(addr) = h.address {
            if let Some(first) = addresses.insert(addr, i) {
                out.push(
                    ConfigProblem::error(
                        "config::duplicate-address",
                        format!("{p}.address"),
                        format!("address {addr} is used by two hosts"),
                    )
                    .label("second use")
                    .also(format!("{}.address", host_path(first)), "first use")
                    .help("every host needs its own address"),
                );
            }
            if addr.is_unspecified() || addr.is_multicast() {
                out.push(
                    ConfigProblem::error(
                        "config::host-address",
                        format!("{p}.address"),
                        format!("{addr} cannot be a host's address"),
                    )
                    .help("use the address kinit reaches the host on over SSH"),
                );
            }
        }
        let mut seen = Vec::new();
        for (j, r) in h.roles.iter().enumerate() {
            if seen.contains(r) {
                out.push(
                    ConfigProblem::warning(
                        "config::duplicate-role",
                        format!("{p}.roles[{j}]"),
                        format!("role `{r}` is listed twice"),
                    )
                    .help("remove the repeated entry"),
                );
            }
            seen.push(*r);
        }
        if h.ssh.port == Some(0) {
            out.push(
                ConfigProblem::error(
                    "config::port",
                    format!("{p}.ssh.port"),
                    "port 0 is not a port",
                )
                .help("expected 1-65535"),
            );
        }
    }
    if spec.ssh.port == 0 {
        out.push(
            ConfigProblem::error("config::port", "spec.ssh.port", "port 0 is not a port")
                .help("expected 1-65535"),
        );
    }
}

fn topology(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    if spec.hosts.is_empty() {
        // Reported by the reader (missing, or an empty list); nothing below is meaningful.
        return;
    }
    let control_planes = spec
        .hosts
        .iter()
        .filter(|h| h.has(Role::ControlPlane))
        .count();
    let etcd_members = spec.hosts.iter().filter(|h| h.has(Role::Etcd)).count();

    for (i, h) in spec.hosts.iter().enumerate() {
        let p = format!("{}.roles", host_path(i));
        let name = h.name.as_deref().unwrap_or("this host");
        match spec.topology {
            Topology::Stacked if h.has(Role::ControlPlane) && !h.has(Role::Etcd) => out.push(
                ConfigProblem::error(
                    "config::stacked-etcd",
                    p,
                    format!("`{name}` is a control-plane host without the etcd role, but the topology is stacked"),
                )
                .help("in a stacked topology every control-plane host runs an etcd member: add `etcd` to its roles, or set `topology: external`"),
            ),
            Topology::Stacked if h.has(Role::Etcd) && !h.has(Role::ControlPlane) => out.push(
                ConfigProblem::warning(
                    "config::stacked-etcd",
                    p,
                    format!("`{name}` runs etcd without the control plane in a stacked topology"),
                )
                .help("stacked means etcd lives on the control-plane hosts; for dedicated etcd hosts use `topology: external`"),
            ),
            Topology::External if h.has(Role::ControlPlane) && h.has(Role::Etcd) => out.push(
                ConfigProblem::error(
                    "config::external-etcd",
                    p,
                    format!("`{name}` has both control-plane and etcd roles, but the topology is external"),
                )
                .help("in an external topology etcd runs on hosts of its own: drop one of the roles, or set `topology: stacked`"),
            ),
            _ => {}
        }
    }

    if control_planes == 0 {
        out.push(
            ConfigProblem::error(
                "config::no-control-plane",
                "spec.hosts",
                "no host has the control-plane role",
            )
            .on_key()
            .help("give at least one host (three for high availability) the role control-plane"),
        );
    } else if control_planes == 1 {
        out.push(
            ConfigProblem::warning(
                "config::single-control-plane",
                "spec.hosts",
                "only one control-plane host: the cluster will work but is not highly available",
            )
            .on_key()
            .help("three control-plane hosts survive the loss of one"),
        );
    }
    if etcd_members == 0 {
        out.push(
            ConfigProblem::error(
                "config::no-etcd",
                "spec.hosts",
                "no host has the etcd role: the cluster has nowhere to keep its state",
            )
            .on_key()
            .help(match spec.topology {
                Topology::Stacked => "add `etcd` to the roles of every control-plane host",
                Topology::External => "add hosts with the role etcd (three for high availability)",
            }),
        );
    } else if etcd_members % 2 == 0 {
        let n = etcd_members;
        out.push(
            ConfigProblem::warning(
                "config::even-etcd",
                "spec.hosts",
                format!(
                    "{n} etcd members: quorum is {}, so the cluster survives {} failure(s), no more than with {}",
                    n / 2 + 1,
                    (n - 1) / 2,
                    n - 1
                ),
            )
            .on_key()
            .help(format!("use an odd number of etcd members ({} or {})", n - 1, n + 1)),
        );
    }
}

fn endpoint(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let ep = &spec.control_plane_endpoint;
    if ep.port == 0 {
        out.push(
            ConfigProblem::error(
                "config::port",
                "spec.controlPlaneEndpoint.port",
                "port 0 is not a port",
            )
            .help("expected 1-65535"),
        );
    }
    if ep.load_balancer != LoadBalancerKind::HaproxyKeepalived {
        return;
    }
    if ep.port == APISERVER_PORT {
        out.push(
            ConfigProblem::error(
                "config::endpoint-port",
                "spec.controlPlaneEndpoint.port",
                format!("haproxy cannot listen on {APISERVER_PORT}: it runs on the control-plane hosts, where kube-apiserver already listens on {APISERVER_PORT}"),
            )
            .help("use another frontend port, e.g. 8443"),
        );
    }
    let vip = match &ep.address {
        None => return,
        Some(EndpointAddress::Dns(name)) => {
            out.push(
                ConfigProblem::error(
                    "config::vip",
                    "spec.controlPlaneEndpoint.address",
                    format!("`{name}` is not an IP address, and keepalived needs one to move between hosts"),
                )
                .help("give the virtual IP (an unused address on the control-plane hosts' network), or set `loadBalancer: external`"),
            );
            return;
        }
        Some(EndpointAddress::Ip(ip)) => *ip,
    };
    for (i, h) in spec.hosts.iter().enumerate() {
        if h.address == Some(vip) {
            out.push(
                ConfigProblem::error(
                    "config::vip",
                    "spec.controlPlaneEndpoint.address",
                    format!(
                        "the VIP {vip} is also the address of host `{}`",
                        h.name.as_deref().unwrap_or("?")
                    ),
                )
                .also(format!("{}.address", host_path(i)), "the same address")
                .help("the VIP must be an unused address that keepalived can move between hosts"),
            );
        }
    }
    if let Some(subnet) = spec.networking.node_subnet {
        if !subnet.contains(&vip) {
            out.push(
                ConfigProblem::error(
                    "config::vip",
                    "spec.controlPlaneEndpoint.address",
                    format!("the VIP {vip} is outside the hosts' subnet {subnet}"),
                )
                .also("spec.networking.nodeSubnet", "hosts' subnet")
                .help("keepalived can only move an address within the subnet the control-plane hosts share"),
            );
        } else if is_network_or_broadcast(subnet, vip) {
            out.push(
                ConfigProblem::error(
                    "config::vip",
                    "spec.controlPlaneEndpoint.address",
                    format!("the VIP {vip} is the network or broadcast address of {subnet}"),
                )
                .help("pick a free host address inside the subnet"),
            );
        }
    } else {
        // Without a declared subnet, at least the address family must match the hosts'.
        let cp_families: Vec<bool> = spec
            .hosts
            .iter()
            .filter(|h| h.has(Role::ControlPlane))
            .filter_map(|h| h.address.map(|a| a.is_ipv4()))
            .collect();
        if !cp_families.is_empty() && cp_families.iter().all(|v4| *v4 != vip.is_ipv4()) {
            out.push(
                ConfigProblem::error(
                    "config::vip",
                    "spec.controlPlaneEndpoint.address",
                    format!("the VIP {vip} is not in the control-plane hosts' address family"),
                )
                .help("keepalived moves the VIP within the control-plane hosts' subnet"),
            );
        }
    }
}

fn is_network_or_broadcast(net: IpNet, ip: IpAddr) -> bool {
    match net {
        IpNet::V4(n) if n.prefix_len() < 31 => {
            ip == IpAddr::V4(n.network()) || ip == IpAddr::V4(n.broadcast())
        }
        IpNet::V6(n) if n.prefix_len() < 127 => ip == IpAddr::V6(n.network()),
        _ => false,
    }
}

fn subnets(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let net = &spec.networking;
    let pod = net.pod_subnet.trunc();
    let svc = net.service_subnet.trunc();
    for (field, written, actual) in [
        ("spec.networking.podSubnet", net.pod_subnet, pod),
        ("spec.networking.serviceSubnet", net.service_subnet, svc),
    ] {
        if written != actual {
            out.push(
                ConfigProblem::warning(
                    "config::subnet-host-bits",
                    field,
                    format!("{written} has host bits set; it means {actual}"),
                )
                .help(format!("write {actual}")),
            );
        }
    }
    if overlaps(pod, svc) {
        out.push(
            ConfigProblem::error(
                "config::subnet-overlap",
                "spec.networking.serviceSubnet",
                format!("the service subnet {svc} overlaps the pod subnet {pod}"),
            )
            .also("spec.networking.podSubnet", "pod subnet")
            .help("pods and services need separate ranges, e.g. 10.244.0.0/16 and 10.96.0.0/12"),
        );
    }
    if let Some(nodes) = net.node_subnet {
        for (field, subnet, what) in [
            ("spec.networking.podSubnet", pod, "pod"),
            ("spec.networking.serviceSubnet", svc, "service"),
        ] {
            if overlaps(subnet, nodes.trunc()) {
                out.push(
                    ConfigProblem::error(
                        "config::subnet-overlap",
                        field,
                        format!("the {what} subnet {subnet} overlaps the hosts' subnet {nodes}"),
                    )
                    .also("spec.networking.nodeSubnet", "hosts' subnet")
                    .help("cluster-internal ranges must not cover the machines' own network"),
                );
            }
        }
    }
    host_addresses(spec, pod, svc, out);
    service_subnet_size(svc, out);
    if let Some(EndpointAddress::Ip(vip)) = spec.control_plane_endpoint.address {
        for (subnet, what) in [(pod, "pod"), (svc, "service")] {
            if subnet.contains(&vip) {
                out.push(
                    ConfigProblem::error("config::vip", "spec.controlPlaneEndpoint.address", format!("the endpoint {vip} lies inside the {what} subnet {subnet}"))
                        .help("the endpoint must be reachable on the hosts' network, outside the cluster ranges"),
                );
            }
        }
    }
    if let Err(why) = check_dns_subdomain(&net.dns_domain) {
        out.push(
            ConfigProblem::error(
                "config::dns-domain",
                "spec.networking.dnsDomain",
                format!("`{}` {why}", net.dns_domain),
            )
            .help("e.g. cluster.local"),
        );
    }
}

/// Each host's address outside the cluster's ranges and inside nodeSubnet (when given).
fn host_addresses(spec: &ClusterSpec, pod: IpNet, svc: IpNet, out: &mut Vec<ConfigProblem>) {
    let net = &spec.networking;
    for (i, h) in spec.hosts.iter().enumerate() {
        let Some(addr) = h.address else { continue };
        for (field, subnet, what) in [
            ("spec.networking.podSubnet", pod, "pod"),
            ("spec.networking.serviceSubnet", svc, "service"),
        ] {
            if subnet.contains(&addr) {
                out.push(
                    ConfigProblem::error(
                        "config::subnet-overlap",
                        format!("{}.address", host_path(i)),
                        format!("host address {addr} lies inside the {what} subnet {subnet}"),
                    )
                    .also(field, format!("{what} subnet"))
                    .help("traffic to this host would be routed into the cluster network; pick a range that excludes the hosts"),
                );
            }
        }
        if let Some(nodes) = net.node_subnet
            && !nodes.contains(&addr)
        {
            out.push(
                ConfigProblem::error(
                    "config::node-subnet",
                    format!("{}.address", host_path(i)),
                    format!("host address {addr} is outside nodeSubnet {nodes}"),
                )
                .also("spec.networking.nodeSubnet", "declared here")
                .help("fix the address, or widen spec.networking.nodeSubnet"),
            );
        }
    }
}

fn service_subnet_size(svc: IpNet, out: &mut Vec<ConfigProblem>) {
    // kube-apiserver refuses service ranges with more than 20 host bits.
    let (bits, max_host_bits) = match svc {
        IpNet::V4(n) => (32 - n.prefix_len(), 20),
        IpNet::V6(n) => (128 - n.prefix_len(), 20),
    };
    if bits > max_host_bits {
        out.push(
            ConfigProblem::error("config::service-subnet", "spec.networking.serviceSubnet", format!("the service subnet {svc} is too large: kube-apiserver accepts at most {max_host_bits} host bits"))
                .help(match svc {
                    IpNet::V4(_) => "use a prefix of /12 or longer, e.g. 10.96.0.0/12",
                    IpNet::V6(_) => "use a prefix of /108 or longer",
                }),
        );
    } else if bits < 4 {
        // kubeadm refuses fewer than 10 addresses; the first one is the `kubernetes` service.
        out.push(
            ConfigProblem::error("config::service-subnet", "spec.networking.serviceSubnet", format!("the service subnet {svc} is too small: it holds {} address(es), kubeadm needs at least 10", 1u32 << bits))
                .help("the `kubernetes` service takes the subnet's first address and cluster services the rest; use a prefix of /24 or shorter"),
        );
    }
}

/// The longest validity kinit issues a certificate for: 100 years. Beyond it the dates approach
/// what X.509 (year 9999) and the time arithmetic can hold, and no cluster needs it.
pub const MAX_VALIDITY_HOURS: u64 = 100 * 365 * 24;

fn misc(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let pki = &spec.pki;
    if pki.cert_validity.as_duration() > pki.ca_validity.as_duration() {
        out.push(
            ConfigProblem::error(
                "config::cert-validity",
                "spec.pki.certValidity",
                format!(
                    "certificates valid for {} would outlive their CA ({})",
                    pki.cert_validity, pki.ca_validity
                ),
            )
            .also("spec.pki.caValidity", "CA validity")
            .help("make certValidity shorter than caValidity"),
        );
    }
    for (field, d) in [
        ("spec.pki.caValidity", &pki.ca_validity),
        ("spec.pki.certValidity", &pki.cert_validity),
    ] {
        let secs = d.as_duration().as_secs();
        if secs < 3600 {
            out.push(
                ConfigProblem::error("config::cert-validity", field, format!("{d} is too short for a certificate"))
                    .help("certificates need at least 1h; kubeadm uses 87600h for CAs and 8760h for the rest"),
            );
        } else if secs > MAX_VALIDITY_HOURS * 3600 {
            out.push(
                ConfigProblem::error(
                    "config::cert-validity",
                    field,
                    format!("{d} is longer than 100 years ({MAX_VALIDITY_HOURS}h), the most kinit issues a certificate for"),
                )
                .help("kubeadm uses 87600h (10 years) for CAs and 8760h (1 year) for the rest"),
            );
        }
    }
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
