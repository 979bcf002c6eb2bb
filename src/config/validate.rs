//! The rules a well-formed cluster.yaml must also satisfy: names, addresses, topology, quorum,
//! endpoint and subnets. Each rule reports against the field paths it is about.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::model::*;
use super::problem::ConfigProblem;

pub fn validate(cfg: &Config) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    if let Some(name) = &cfg.name
        && let Err(why) = check_dns_label(name)
    {
        out.push(
            ConfigProblem::error(
                "config::cluster-name",
                "metadata.name",
                format!("`{name}` {why}"),
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
                    ConfigProblem::error("config::hostname", format!("{p}.name"), format!("`{name}` {why}"))
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

fn misc(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    if !spec.etcd.data_dir.starts_with('/') {
        out.push(
            ConfigProblem::error(
                "config::etcd-data-dir",
                "spec.etcd.dataDir",
                format!("`{}` is not an absolute path", spec.etcd.data_dir),
            )
            .help("etcd's data directory on the hosts, e.g. /var/lib/etcd"),
        );
    }
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
        if d.as_duration().as_secs() < 3600 {
            out.push(
                ConfigProblem::error("config::cert-validity", field, format!("{d} is too short for a certificate"))
                    .help("certificates need at least 1h; kubeadm uses 87600h for CAs and 8760h for the rest"),
            );
        }
    }
    for (i, san) in pki.extra_sans.iter().enumerate() {
        if san.parse::<IpAddr>().is_err()
            && check_dns_subdomain(san.strip_prefix("*.").unwrap_or(san)).is_err()
        {
            out.push(
                ConfigProblem::error(
                    "config::san",
                    format!("spec.pki.extraSANs[{i}]"),
                    format!("`{san}` is neither an IP address nor a DNS name"),
                )
                .help("e.g. api.example.com or 203.0.113.10"),
            );
        }
    }
}

/// `spec.etcd.snapshots`. Its values end up in a systemd timer (`OnCalendar=`) and a shell
/// script, so each is held to a charset in which it can add neither a line to a file nor a word
/// to a command.
fn etcd_snapshots(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let Some(snap) = &spec.etcd.snapshots else {
        return;
    };
    if let Err(why) = check_calendar(&snap.schedule) {
        out.push(
            ConfigProblem::error(
                "config::etcd-snapshot-schedule",
                "spec.etcd.snapshots.schedule",
                format!("`{}` {why}", shown(&snap.schedule)),
            )
            .help(format!(
                "a systemd calendar expression (`man systemd.time`) of at most {MAX_SCHEDULE} \
                 characters: letters, digits, spaces and `{SCHEDULE_PUNCTUATION}`, e.g. hourly, \
                 daily or \"*-*-* 00/6:00:00\" (quoted: YAML reads a leading * as an alias)"
            )),
        );
    }
    if !(1..=MAX_KEEP).contains(&snap.keep) {
        out.push(
            ConfigProblem::error(
                "config::etcd-snapshot-keep",
                "spec.etcd.snapshots.keep",
                if snap.keep == 0 {
                    "`keep: 0` would remove each snapshot as soon as it is taken".to_string()
                } else {
                    format!("`keep: {}` is more than {MAX_KEEP}", snap.keep)
                },
            )
            .help(format!(
                "how many snapshots each etcd host keeps: 1 to {MAX_KEEP} (24 keeps a day of hourly ones)"
            )),
        );
    }
    if let Err((why, help)) = check_snapshot_dir(&snap.dir) {
        out.push(
            ConfigProblem::error(
                "config::etcd-snapshot-dir",
                "spec.etcd.snapshots.dir",
                format!("`{}` {why}", shown(&snap.dir)),
            )
            .help(help),
        );
    } else {
        let data_dir = std::path::Path::new(&spec.etcd.data_dir);
        if data_dir.is_absolute() && std::path::Path::new(&snap.dir).starts_with(data_dir) {
            out.push(
                ConfigProblem::error(
                    "config::etcd-snapshot-dir",
                    "spec.etcd.snapshots.dir",
                    format!(
                        "`{}` is inside etcd's data directory {}",
                        snap.dir, spec.etcd.data_dir
                    ),
                )
                .also("spec.etcd.dataDir", "etcd's data directory")
                .help("keep snapshots outside the data directory: a restore replaces it, and etcd owns what is in it (e.g. /var/lib/etcd-snapshots)"),
            );
        }
    }
}

/// A value as the message quotes it: control characters escaped (`\n`), so that a hostile value
/// shows what it holds instead of breaking the message's lines.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("the control character U+{:04X}", u32::from(c))
    } else if c == ' ' {
        "a space".into()
    } else if c.is_whitespace() {
        format!("the white space character U+{:04X}", u32::from(c))
    } else {
        format!("`{c}`")
    }
}

const MAX_SCHEDULE: usize = 100;
const MAX_KEEP: u32 = 1000;
const SCHEDULE_PUNCTUATION: &str = "*:,/.~-";

/// What `OnCalendar=` gets: a strict charset, so that it stays one value on one line.
/// (systemd itself checks the expression; `systemd-analyze calendar` shows what it means.)
fn check_calendar(s: &str) -> Result<(), String> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "contains {}; a schedule is one line",
            describe_char(c)
        ));
    }
    if s.trim().is_empty() {
        return Err("is empty".into());
    }
    let n = s.chars().count();
    if n > MAX_SCHEDULE {
        return Err(format!(
            "is {n} characters long; the limit is {MAX_SCHEDULE}"
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == ' ' || SCHEDULE_PUNCTUATION.contains(*c)))
    {
        return Err(format!("contains `{c}`, which a schedule cannot"));
    }
    Ok(())
}

/// The snapshot directory as the script uses it: absolute, in its normal form, and quotable
/// (no whitespace, control characters, quotes or backslashes).
fn check_snapshot_dir(s: &str) -> Result<(), (String, String)> {
    let example = "e.g. /var/lib/etcd-snapshots";
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '`' | '\\'))
    {
        return Err((
            format!(
                "contains {}, which the snapshot directory cannot",
                describe_char(c)
            ),
            format!(
                "a path without whitespace, control characters, quotes or backslashes, {example}"
            ),
        ));
    }
    if !s.starts_with('/') {
        return Err((
            "is not an absolute path".into(),
            format!("the directory on each etcd host, {example}"),
        ));
    }
    if s == "/" {
        return Err((
            "is the root directory".into(),
            format!("give the snapshots a directory of their own, {example}"),
        ));
    }
    let parts: Vec<&str> = s[1..].split('/').collect();
    if parts.contains(&"..") {
        return Err((
            "contains `..`".into(),
            format!("write the directory without `..`, {example}"),
        ));
    }
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        let normal: Vec<&str> = parts
            .iter()
            .copied()
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        return Err((
            "is not in normal form (`//`, `/./` or a trailing `/`)".into(),
            if normal.is_empty() {
                format!("give the snapshots a directory of their own, {example}")
            } else {
                format!("write /{}", normal.join("/"))
            },
        ));
    }
    Ok(())
}

/// `spec.imageRepository`: it becomes the start of every static pod's `image:`, so it is held to
/// what an image reference's registry and repository path may be.
fn image_repository(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    if let Err(why) = check_image_repository(&spec.image_repository) {
        out.push(
            ConfigProblem::error(
                "config::image-repository",
                "spec.imageRepository",
                format!("`{}` {why}", shown(&spec.image_repository)),
            )
            .help(format!(
                "a registry host (optionally with :port) and path, without scheme or trailing `/`, \
                 e.g. {DEFAULT_IMAGE_REPOSITORY} or registry.aliyuncs.com/google_containers"
            )),
        );
    }
}

const MAX_IMAGE_REPOSITORY: usize = 255;

/// A registry and repository path as image references write them (the distribution reference
/// grammar, lowercase): `host[:port]` then `/`-separated path components. Host labels are
/// letters, digits and inner `-`; path components are letters and digits joined by `.`, `_`,
/// `__` or runs of `-`.
fn check_image_repository(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "contains {}, which an image repository cannot",
            describe_char(c)
        ));
    }
    let n = s.chars().count();
    if n > MAX_IMAGE_REPOSITORY {
        return Err(format!(
            "is {n} characters long; the limit is {MAX_IMAGE_REPOSITORY}"
        ));
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "starts with the scheme `{scheme}://`; images are pulled by registry name alone"
        ));
    }
    if s.ends_with('/') {
        return Err("ends with `/`; the image names are appended after one".into());
    }
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("has uppercase letters; image references are lowercase".into());
    }
    if let Some(c) = s.chars().find(|c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '/' | ':'))
    }) {
        return Err(format!(
            "contains {}; only lowercase letters, digits, `.`, `-`, `_`, `/` and a `:port` \
             after the host are allowed",
            describe_char(c)
        ));
    }
    let (host_port, path) = match s.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let (host, port) = match host_port.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    };
    if host.is_empty() {
        return Err("has no registry host".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(format!(
                "has an empty label in the registry host `{host}` (two dots, or a leading or \
                 trailing dot)"
            ));
        }
        if label.contains('_') {
            return Err(format!(
                "has `_` in the registry host `{host}`; host names cannot"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "has a label starting or ending with `-` in the registry host `{host}`"
            ));
        }
    }
    if let Some(port) = port {
        if port.contains(':') {
            return Err("has more than one `:`; only the registry's port follows one".into());
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.chars().all(|c| c.is_ascii_digit()) => {}
            _ => {
                return Err(format!(
                    "has `{port}` after the registry host's `:`, which is not a port (1-65535)"
                ));
            }
        }
    }
    let Some(path) = path else {
        return Ok(());
    };
    if path.contains(':') {
        return Err(
            "has `:` in the path; only the registry's port follows one (the tags are kinit's)"
                .into(),
        );
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err("has an empty path component (`//`)".into());
        }
        if let Err(why) = check_path_component(component) {
            return Err(format!("has the path component `{component}`, which {why}"));
        }
    }
    Ok(())
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_path_component(c: &str) -> Result<(), &'static str> {
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    let first = c.chars().next().is_some_and(alnum);
    let last = c.chars().next_back().is_some_and(alnum);
    if !first || !last {
        return Err("must start and end with a letter or digit");
    }
    let bytes = c.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i] as char) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i] as char) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-');
        if !ok {
            return Err("joins letters and digits with something other than `.`, `_`, `__` or `-`");
        }
    }
    Ok(())
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// RFC 1123 label: what a cluster name must be.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > 63 {
        return Err(format!("is {} characters long; the limit is 63", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(if c.is_ascii_uppercase() {
            "has uppercase letters; RFC 1123 names are lowercase".into()
        } else {
            format!("contains `{c}`, which an RFC 1123 name cannot")
        });
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("starts or ends with '-'".into());
    }
    Ok(())
}

/// RFC 1123 subdomain: what a host (node) name must be.
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("is {} characters long; the limit is 253", s.len()));
    }
    if s.is_empty() {
        return Err("is empty".into());
    }
    for label in s.split('.') {
        check_dns_label(label).map_err(|why| {
            if label.is_empty() {
                "has an empty label (two dots, or a leading or trailing dot)".to_string()
            } else {
                why
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1123_names() {
        assert!(check_dns_subdomain("cp1").is_ok());
        assert!(check_dns_subdomain("cp-1.dc1.example.com").is_ok());
        assert!(
            check_dns_subdomain("CP1")
                .unwrap_err()
                .contains("uppercase")
        );
        assert!(check_dns_subdomain("cp_1").unwrap_err().contains('_'));
        assert!(check_dns_subdomain("-cp").is_err());
        assert!(
            check_dns_subdomain("cp..1")
                .unwrap_err()
                .contains("empty label")
        );
        assert!(check_dns_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn snapshot_schedules() {
        for good in [
            "hourly",
            "daily",
            "*-*-* 00/6:00:00",
            "Mon..Fri *-*-* 02:30",
            "Sat,Sun 03:00",
            "*-*~01 04:00",
            "*:0/15",
            &"x".repeat(MAX_SCHEDULE),
        ] {
            assert_eq!(check_calendar(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "   ",
            "hourly\n[Service]",
            "hourly\r",
            "daily\t",
            "hourly\u{85}",
            "daily; reboot",
            "$(reboot)",
            "hourly%n",
            "daily # comment",
            "\"daily\"",
            "daily\\",
            "täglich",
            &"x".repeat(MAX_SCHEDULE + 1),
        ] {
            assert!(check_calendar(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn snapshot_dirs() {
        for good in [
            "/var/lib/etcd-snapshots",
            "/srv/backup/etcd",
            "/x",
            "/a.b/c_d-e",
        ] {
            assert_eq!(check_snapshot_dir(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/",
            "var/lib/x",
            "./x",
            "/var/lib/../etc",
            "/var/..",
            "/var//lib",
            "/var/lib/",
            "/var/./lib",
            "/var/lib/x y",
            "/var/lib/x\ny",
            "/var/lib/x\ty",
            "/var/lib/'x'",
            "/var/lib/\"x\"",
            "/var/lib/`x`",
            "/var/lib/x\\y",
        ] {
            assert!(check_snapshot_dir(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn image_repositories() {
        for good in [
            "registry.k8s.io",
            "registry.aliyuncs.com/google_containers",
            "localhost:5000",
            "mirror.example.internal:5000/k8s/images",
            "10.0.0.5:443/kube-system",
            "harbor.corp/library/a__b.c-d---e",
            "myregistry",
            &format!("r.io/{}", "a".repeat(MAX_IMAGE_REPOSITORY - 5)),
        ] {
            assert_eq!(check_image_repository(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "https://registry.k8s.io",
            "registry.k8s.io/",
            "Registry.k8s.io",
            "registry.k8s.io/Google",
            "registry.k8s.io/x y",
            "registry.k8s.io\n",
            "registry.k8s.io\tx",
            "registry.k8s.io/a:b",
            "registry:5000:6000",
            "registry:http/x",
            "registry:0",
            "registry:99999",
            ":5000/x",
            "/x",
            "registry..k8s.io",
            ".registry.k8s.io",
            "reg_istry.io/x",
            "-registry.io",
            "registry.io//x",
            "registry.io/-x",
            "registry.io/x-",
            "registry.io/a._b",
            "registry.io/a___b",
            "registry.io/$(reboot)",
            "registry.io/x\"",
            "registry.io/ä",
            &format!("r.io/{}", "a".repeat(MAX_IMAGE_REPOSITORY - 4)),
        ] {
            assert!(check_image_repository(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn snapshots_of(etcd: &str) -> (Option<EtcdSnapshots>, Vec<ConfigProblem>) {
        let text = format!(
            "apiVersion: kinit.io/v1alpha1\nkind: Cluster\nmetadata: {{name: demo}}\nspec:\n  \
             kubernetesVersion: v1.31.4\n  controlPlaneEndpoint: {{address: 192.168.9.100}}\n  \
             etcd: {etcd}\n  hosts:\n    - {{name: cp1, address: 192.168.9.11, roles: [control-plane, etcd]}}\n"
        );
        let (cfg, report) = crate::config::check(std::path::Path::new("c.yaml"), text);
        let problems = report
            .problems
            .into_iter()
            .filter(|p| p.code != "config::single-control-plane")
            .collect();
        (cfg.unwrap().spec.etcd.snapshots, problems)
    }

    #[test]
    fn snapshots_are_off_unless_set_and_default_field_by_field() {
        assert_eq!(snapshots_of("{mode: systemd}"), (None, vec![]));
        assert_eq!(snapshots_of("{snapshots: null}"), (None, vec![]));
        assert_eq!(
            snapshots_of("{snapshots: {}}"),
            (Some(EtcdSnapshots::default()), vec![])
        );
        assert_eq!(
            snapshots_of("{snapshots: {keep: 7}}"),
            (
                Some(EtcdSnapshots {
                    keep: 7,
                    ..EtcdSnapshots::default()
                }),
                vec![]
            )
        );
        let (s, problems) = snapshots_of(
            "{dataDir: /data/etcd, snapshots: {schedule: \"*-*-* 00/6:00:00\", keep: 1000, dir: /data/etcd-snapshots}}",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            s,
            Some(EtcdSnapshots {
                schedule: "*-*-* 00/6:00:00".into(),
                keep: 1000,
                dir: "/data/etcd-snapshots".into(),
            })
        );
        // A sibling of the data dir whose name merely starts with it is not inside it.
        let (_, problems) =
            snapshots_of("{dataDir: /var/lib/etcd, snapshots: {dir: /var/lib/etcd-snapshots}}");
        assert!(problems.is_empty(), "{problems:?}");
        // The data dir itself, and with the data dir written with a trailing slash.
        for etcd in [
            "{dataDir: /var/lib/etcd, snapshots: {dir: /var/lib/etcd}}",
            "{dataDir: /var/lib/etcd/, snapshots: {dir: /var/lib/etcd/snap}}",
        ] {
            let (_, problems) = snapshots_of(etcd);
            assert_eq!(problems.len(), 1, "{etcd}: {problems:?}");
            assert_eq!(problems[0].code, "config::etcd-snapshot-dir");
            assert_eq!(problems[0].path, "spec.etcd.snapshots.dir");
        }
        let (_, problems) = snapshots_of("{snapshots: {keep: -1}}");
        assert_eq!(problems[0].path, "spec.etcd.snapshots.keep");
        let (_, problems) = snapshots_of("{snapshots: yes}");
        assert_eq!(problems[0].code, "config::wrong-type");
    }
}
