//! What templates see: the cluster and the host being rendered, with every derived value
//! (URLs, flags joined as etcd and the apiserver want them, VRRP priorities) computed here, so the
//! templates stay plain text with a few loops.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use serde::Serialize;

use super::error::RenderError;
use super::vrrp;
use crate::config::{EtcdMode, LoadBalancerKind, Role, Topology};
use crate::host_paths;
use crate::inventory::{Host, Inventory, first_address, ports};

/// The etcd release kubeadm pairs with a Kubernetes minor (kubeadm's SupportedEtcdVersion), and
/// whether it is etcd 3.6, whose flags differ (`experimental-*` flags became feature gates).
pub fn etcd_version_for(kubernetes_minor: u32) -> (&'static str, bool) {
    if kubernetes_minor >= 34 {
        ("3.6.6-0", true)
    } else {
        ("3.5.24-0", false)
    }
}

#[derive(Debug, Serialize)]
pub struct Cluster {
    pub name: String,
    pub topology: Topology,
    pub kubernetes_version: String,
    /// `spec.imageRepository` (validated: registry host, optional port and path, no trailing `/`).
    pub image_repository: String,
    pub etcd_image: String,
    pub etcd_v36: bool,
    /// The sandbox image containerd runs every pod with: the bundle's pause archive, imported
    /// under kubeadm's name whatever `image_repository` says (it is never pulled, so its name
    /// need not point at a registry).
    pub pause_image: String,
    pub endpoint: Endpoint,
    pub networking: Networking,
    pub control_plane: Vec<ControlPlaneHost>,
    pub etcd: Etcd,
    pub time_servers: Vec<String>,
    /// spec.registries, each with its CA's text.
    pub registries: Vec<Registry>,
    pub ports: Ports,
    #[serde(skip)]
    pub paths: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    pub url: String,
    pub load_balancer: LoadBalancerKind,
    pub interface: String,
    pub vrrp_unicast: bool,
    /// `192.168.9.100/24` (empty unless haproxy-keepalived).
    pub vip_cidr: String,
    pub virtual_router_id: u8,
    pub check_weight: i32,
    /// keepalived's advert interval and haproxy's check timing ([`super::failover`]).
    pub advert_int: u64,
    pub check_inter: u64,
    pub check_fall: u64,
    pub check_rise: u64,
    /// haproxy's frontend `bind`: `*:8443` (IPv4 only in haproxy), or `:::8443 v4v6` when the
    /// endpoint is IPv6.
    pub haproxy_bind: String,
}

#[derive(Debug, Serialize)]
pub struct Networking {
    pub pod_subnet: String,
    pub service_subnet: String,
    pub dns_domain: String,
    /// The cluster DNS service: the 10th address of the service subnet (kubeadm).
    pub cluster_dns: String,
    /// The pods' default route: `0.0.0.0/0`, or `::/0` for an IPv6 pod subnet.
    pub pod_default_route: &'static str,
    /// `ip`'s family flag for the pod subnet (`-4` or `-6`) and the matching iptables.
    pub pod_ip_family: &'static str,
    pub pod_iptables: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ControlPlaneHost {
    pub name: String,
    pub address: String,
    /// `10.0.0.11:6443` (`[fd00::11]:6443` for IPv6).
    pub apiserver: String,
    pub priority: u8,
}

#[derive(Debug, Serialize)]
pub struct Etcd {
    pub mode: EtcdMode,
    pub data_dir: String,
    pub initial_cluster: String,
    pub cluster_token: String,
    pub client_urls: String,
    pub members: Vec<EtcdMember>,
    /// spec.etcd.snapshots (validated: see config::validate), or None when off.
    pub snapshots: Option<EtcdSnapshots>,
}

#[derive(Debug, Serialize)]
pub struct EtcdSnapshots {
    pub schedule: String,
    pub keep: u32,
    pub dir: String,
}

#[derive(Debug, Serialize)]
pub struct EtcdMember {
    pub name: String,
    pub address: String,
    pub peer_url: String,
    pub client_url: String,
}

#[derive(Debug, Serialize)]
pub struct Ports {
    pub apiserver: u16,
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub etcd_metrics: u16,
    pub kubelet: u16,
    pub kubelet_healthz: u16,
    pub kube_proxy_healthz: u16,
    pub kube_proxy_metrics: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
    pub haproxy_stats: u16,
}

#[derive(Debug, Serialize)]
pub struct HostView {
    pub name: String,
    pub address: String,
    /// The address as it appears in a URL (`[fd00::1]` for IPv6).
    pub url_address: String,
    /// `127.0.0.1`, or `::1` when the host's address is IPv6 (kubeadm does the same).
    pub loopback: String,
    /// The loopback address as it appears in a URL (`[::1]`).
    pub url_loopback: String,
    pub control_plane: bool,
    pub etcd: bool,
    pub worker: bool,
    pub vrrp: Option<Vrrp>,
    /// etcd's `listen-client-urls`: loopback (for the local apiserver and health checks) and the
    /// host's address, once each.
    pub etcd_listen_client_urls: String,
    /// The apiserver's `--etcd-servers`: the local member when stacked (kubeadm's choice: an
    /// apiserver fails together with its own etcd member), every member when external.
    pub apiserver_etcd_servers: String,
    /// etcd's `initial-cluster` and `initial-cluster-state` for this host's member: every
    /// member and `new` when the cluster starts; the members so far plus this one and
    /// `existing` when it joins a running cluster; what it started with once it runs.
    pub etcd_initial_cluster: String,
    pub etcd_initial_cluster_state: String,
    /// This host's slice of the pod subnet (its CNI bridge's addresses), when it runs a kubelet.
    pub pod_cidr: Option<String>,
    /// The other kubelet hosts' slices, each through that host's address.
    pub pod_routes: Vec<PodRoute>,
}

/// One of `spec.registries`, as its `hosts.toml` and `ca.crt` are written.
#[derive(Debug, Clone, Serialize)]
pub struct Registry {
    pub name: String,
    /// containerd's `server`: the registry itself, over HTTPS.
    pub server: String,
    pub mirrors: Vec<String>,
    /// The CA bundle's PEM text, read from the operator machine.
    pub ca: Option<String>,
    /// Where `ca` lands on the host (its row's path with the registry's name).
    pub ca_path: String,
    /// TLS certificates go unverified (`insecure: true`).
    pub skip_verify: bool,
}

/// The registry's own endpoint: `https://<name>`, but Docker Hub's images are served by
/// `registry-1.docker.io` (containerd's default for `docker.io`).
fn registry_server(name: &str) -> String {
    match name {
        "docker.io" => "https://registry-1.docker.io".into(),
        _ => format!("https://{name}"),
    }
}

fn registries(inv: &Inventory) -> Result<Vec<Registry>, RenderError> {
    inv.registries
        .iter()
        .map(|r| {
            // The name becomes a directory under certs.d: validation holds it to a registry
            // host; this holds for an inventory built some other way.
            let n = &r.name;
            if n.is_empty()
                || n.starts_with('.')
                || n.chars()
                    .any(|c| c == '/' || c == '\\' || c.is_whitespace() || c.is_control())
            {
                return Err(RenderError::Unsupported(format!(
                    "spec.registries: `{}` cannot name a directory of {}",
                    n.escape_debug(),
                    host_paths::CONTAINERD_CERTS_DIR
                )));
            }
            let ca = match &r.ca_file {
                None => None,
                Some(path) => {
                    let bad = |reason: String| RenderError::RegistryCa {
                        registry: r.name.clone(),
                        path: path.clone(),
                        reason,
                    };
                    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
                    if !text.contains("-----BEGIN CERTIFICATE-----") {
                        return Err(bad("it holds no PEM certificate".into()));
                    }
                    Some(text)
                }
            };
            Ok(Registry {
                name: r.name.clone(),
                server: registry_server(&r.name),
                mirrors: r.mirrors.clone(),
                ca,
                ca_path: host_paths::CONTAINERD_REGISTRY_CA.replace("{registry}", &r.name),
                skip_verify: r.insecure,
            })
        })
        .collect()
}

/// A route to another node's pods.
#[derive(Debug, Serialize)]
pub struct PodRoute {
    pub dst: String,
    pub via: String,
}

#[derive(Debug, Serialize)]
pub struct Vrrp {
    /// MASTER for the first control-plane host, BACKUP for the others.
    pub state: &'static str,
    pub priority: u8,
    /// The other control-plane hosts, used only with `vrrpUnicast`.
    pub unicast_peers: Vec<String>,
}

/// The tag of the etcd image the configured bundle carries (`images/etcd.tar`, built by kinit
/// from the bundle's etcd: `3.6.16-0`), so that etcd as a static pod runs the bundle's etcd as
/// etcd under systemd does, and etcd's flags are those of that release. None without one.
fn bundle_etcd_tag(inv: &Inventory) -> Result<Option<String>, RenderError> {
    let Some(dir) = &inv.bundle else {
        return Ok(None);
    };
    let archive = dir.join(crate::bundle::image::ETCD_ARCHIVE);
    if !archive.is_file() {
        return Ok(None);
    }
    let reference = crate::bundle::image::reference_in_archive(&archive).map_err(|source| {
        RenderError::ReadBundle {
            path: archive.clone(),
            source,
        }
    })?;
    let tag = reference
        .as_deref()
        .and_then(|r| r.rsplit_once(':'))
        .map(|(_, tag)| tag.to_string());
    // An image tag's grammar (OCI distribution): nothing else reaches the manifest.
    let valid = |t: &str| {
        (1..=128).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !t.starts_with(['.', '-'])
    };
    match tag {
        Some(t) if !valid(&t) => Err(RenderError::ReadBundle {
            path: archive,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("its image is tagged {t:?}, which is no image tag"),
            ),
        }),
        tag => Ok(tag),
    }
}

/// The cluster-wide part, computed once for all hosts.
pub fn cluster(inv: &Inventory) -> Result<Cluster, RenderError> {
    pod_cidrs(inv)?;
    let (etcd_tag, etcd_v36) = match bundle_etcd_tag(inv)? {
        Some(tag) => {
            let v36 = tag
                .split('-')
                .next()
                .and_then(|v| crate::etcd::version::EtcdVersion::parse(v).ok())
                .is_some_and(|v| (v.major, v.minor) >= (3, 6));
            (tag, v36)
        }
        None => {
            let (tag, v36) = etcd_version_for(inv.kubernetes_version.minor);
            (tag.to_string(), v36)
        }
    };
    let cps: Vec<&Host> = inv.control_plane().collect();
    Ok(Cluster {
        name: inv.name.clone(),
        topology: inv.topology,
        kubernetes_version: inv.kubernetes_version.to_string(),
        image_repository: inv.image_repository.clone(),
        etcd_image: format!("{}/etcd:{etcd_tag}", inv.image_repository),
        etcd_v36,
        pause_image: crate::bundle::image::pause_reference(
            crate::config::model::DEFAULT_IMAGE_REPOSITORY,
        ),
        endpoint: endpoint(inv, cps.len())?,
        networking: networking(inv),
        control_plane: cps
            .iter()
            .enumerate()
            .map(|(i, h)| ControlPlaneHost {
                name: h.name.clone(),
                address: h.address.to_string(),
                apiserver: SocketAddr::new(h.address, ports::APISERVER).to_string(),
                priority: vrrp::priority(i),
            })
            .collect(),
        etcd: etcd(inv),
        time_servers: inv.time_servers.clone(),
        registries: registries(inv)?,
        ports: ports(),
        paths: host_paths::ALL.iter().copied().collect(),
    })
}

/// Where clients reach the apiservers, and the VRRP and haproxy settings that keep it there.
fn endpoint(inv: &Inventory, control_planes: usize) -> Result<Endpoint, RenderError> {
    let lb = inv.endpoint.load_balancer == LoadBalancerKind::HaproxyKeepalived;
    let vip_cidr = if lb {
        let vip: IpAddr = inv.endpoint.address.parse().map_err(|_| {
            RenderError::Unsupported(format!(
                "controlPlaneEndpoint.address `{}` is not an IP address, but keepalived needs one \
                 for the VIP; use an IP, or loadBalancer: external",
                inv.endpoint.address
            ))
        })?;
        vrrp::vip_cidr(vip, inv.networking.node_subnet)
    } else {
        String::new()
    };
    Ok(Endpoint {
        address: inv.endpoint.address.clone(),
        port: inv.endpoint.port,
        url: inv.endpoint.url(),
        load_balancer: inv.endpoint.load_balancer,
        interface: inv.endpoint.interface.clone(),
        vrrp_unicast: inv.endpoint.vrrp_unicast,
        vip_cidr,
        virtual_router_id: vrrp::virtual_router_id(&inv.name, &inv.endpoint.address),
        check_weight: vrrp::check_weight(control_planes),
        advert_int: super::failover::VRRP_ADVERT_INT_SECS,
        check_inter: super::failover::HAPROXY_CHECK_INTER_SECS,
        check_fall: super::failover::HAPROXY_CHECK_FALL,
        check_rise: super::failover::HAPROXY_CHECK_RISE,
        haproxy_bind: match inv.endpoint.address.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!(":::{} v4v6", inv.endpoint.port),
            _ => format!("*:{}", inv.endpoint.port),
        },
    })
}

fn networking(inv: &Inventory) -> Networking {
    Networking {
        pod_subnet: inv.networking.pod_subnet.to_string(),
        service_subnet: inv.networking.service_subnet.to_string(),
        dns_domain: inv.networking.dns_domain.clone(),
        cluster_dns: cluster_dns(inv).to_string(),
        pod_default_route: match inv.networking.pod_subnet {
            ipnet::IpNet::V4(_) => "0.0.0.0/0",
            ipnet::IpNet::V6(_) => "::/0",
        },
        pod_ip_family: match inv.networking.pod_subnet {
            ipnet::IpNet::V4(_) => "-4",
            ipnet::IpNet::V6(_) => "-6",
        },
        pod_iptables: match inv.networking.pod_subnet {
            ipnet::IpNet::V4(_) => "iptables",
            ipnet::IpNet::V6(_) => "ip6tables",
        },
    }
}

fn etcd(inv: &Inventory) -> Etcd {
    let members = inv.etcd_members();
    let client_urls = members
        .iter()
        .map(|m| m.client_url())
        .collect::<Vec<_>>()
        .join(",");
    Etcd {
        mode: inv.etcd.mode,
        data_dir: inv.etcd.data_dir.clone(),
        initial_cluster: inv.etcd_initial_cluster(),
        cluster_token: inv
            .etcd_cluster_token
            .clone()
            .unwrap_or_else(|| inv.name.clone()),
        client_urls,
        members: members
            .iter()
            .map(|m| EtcdMember {
                name: m.name.clone(),
                address: m.address.to_string(),
                peer_url: m.peer_url(),
                client_url: m.client_url(),
            })
            .collect(),
        snapshots: inv.etcd.snapshots.as_ref().map(|s| EtcdSnapshots {
            schedule: s.schedule.clone(),
            keep: s.keep,
            dir: s.dir.clone(),
        }),
    }
}

fn ports() -> Ports {
    Ports {
        apiserver: ports::APISERVER,
        etcd_client: ports::ETCD_CLIENT,
        etcd_peer: ports::ETCD_PEER,
        etcd_metrics: ports::ETCD_METRICS,
        kubelet: ports::KUBELET,
        kubelet_healthz: ports::KUBELET_HEALTHZ,
        kube_proxy_healthz: ports::KUBE_PROXY_HEALTHZ,
        kube_proxy_metrics: ports::KUBE_PROXY_METRICS,
        controller_manager: ports::CONTROLLER_MANAGER,
        scheduler: ports::SCHEDULER,
        haproxy_stats: ports::HAPROXY_STATS,
    }
}

/// The per-host part.
pub fn host(inv: &Inventory, host: &Host) -> HostView {
    let url_address = match host.address {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let url_loopback = match host.address {
        IpAddr::V4(_) => "127.0.0.1".to_string(),
        IpAddr::V6(_) => "[::1]".to_string(),
    };
    let cps: Vec<&Host> = inv.control_plane().collect();
    let bootstrap = inv.etcd_bootstrap_of(&host.name);
    let vrrp = cps
        .iter()
        .position(|h| h.name == host.name)
        .map(|index| Vrrp {
            state: if index == 0 { "MASTER" } else { "BACKUP" },
            priority: vrrp::priority(index),
            unicast_peers: cps
                .iter()
                .filter(|h| h.name != host.name)
                .map(|h| h.address.to_string())
                .collect(),
        });
    let kubelet = crate::components::component(crate::components::ComponentId::Kubelet);
    HostView {
        name: host.name.clone(),
        address: host.address.to_string(),
        url_address: url_address.clone(),
        loopback: match host.address {
            IpAddr::V4(_) => "127.0.0.1".to_string(),
            IpAddr::V6(_) => "::1".to_string(),
        },
        url_loopback: url_loopback.clone(),
        control_plane: host.has(Role::ControlPlane),
        etcd: host.has(Role::Etcd),
        worker: host.has(Role::Worker),
        vrrp,
        etcd_listen_client_urls: {
            let mut urls = vec![format!("https://{url_loopback}:{}", ports::ETCD_CLIENT)];
            if !host.address.is_loopback() {
                urls.push(format!("https://{url_address}:{}", ports::ETCD_CLIENT));
            }
            urls.join(",")
        },
        etcd_initial_cluster: bootstrap.initial_cluster,
        etcd_initial_cluster_state: bootstrap.state,
        pod_cidr: kubelet
            .runs_on(inv, host)
            .then(|| pod_cidr(inv, host).ok())
            .flatten()
            .map(|c| c.to_string()),
        pod_routes: if kubelet.runs_on(inv, host) {
            kubelet
                .hosts(inv)
                .into_iter()
                .filter(|h| h.name != host.name)
                .filter_map(|h| {
                    Some(PodRoute {
                        dst: pod_cidr(inv, h).ok()?.to_string(),
                        via: h.address.to_string(),
                    })
                })
                .collect()
        } else {
            Vec::new()
        },
        apiserver_etcd_servers: match inv.topology {
            Topology::Stacked => format!("https://{url_loopback}:{}", ports::ETCD_CLIENT),
            Topology::External => inv
                .etcd_members()
                .iter()
                .map(|m| m.client_url())
                .collect::<Vec<_>>()
                .join(","),
        },
    }
}

/// Each node's pod addresses: a /24 (IPv4) or /64 (IPv6) of the pod subnet, the same as the
/// controller-manager's default node mask.
const NODE_POD_PREFIX_V4: u8 = 24;
const NODE_POD_PREFIX_V6: u8 = 64;

/// `host`'s slice of the pod subnet: the slice numbered by the low bits of its address (with
/// a /16 pod subnet, `10.0.0.11` gets `10.244.11.0/24`). It depends on the host alone, so
/// adding or removing another host never moves a running node's pods.
pub fn pod_cidr(inv: &Inventory, host: &Host) -> Result<IpNet, String> {
    let pods = inv.networking.pod_subnet;
    let node_prefix = match pods {
        IpNet::V4(_) => NODE_POD_PREFIX_V4,
        IpNet::V6(_) => NODE_POD_PREFIX_V6,
    };
    if pods.prefix_len() > node_prefix {
        return Err(format!(
            "networking.podSubnet {pods} is smaller than one node's /{node_prefix}"
        ));
    }
    let bits = u32::from(node_prefix - pods.prefix_len()).min(32);
    let slices: u128 = 1u128 << bits;
    let index = match host.address {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    } % slices;
    let mut it = pods
        .subnets(node_prefix)
        .map_err(|e| format!("networking.podSubnet {pods}: {e}"))?;
    it.nth(index as usize)
        .ok_or_else(|| format!("networking.podSubnet {pods} has no slice {index}"))
}

/// Every kubelet host's pod slice, refusing two hosts that would share one.
fn pod_cidrs(inv: &Inventory) -> Result<BTreeMap<String, IpNet>, RenderError> {
    let mut out: BTreeMap<String, IpNet> = BTreeMap::new();
    for h in crate::components::component(crate::components::ComponentId::Kubelet).hosts(inv) {
        let cidr = pod_cidr(inv, h).map_err(RenderError::Unsupported)?;
        // The routes between nodes' pods go through the nodes' own addresses.
        if cidr.addr().is_ipv4() != h.address.is_ipv4() {
            return Err(RenderError::Unsupported(format!(
                "host {} has address {} but networking.podSubnet is {}: the routes to each \
                 node's pods go through its address, so both must be the same IP family",
                h.name, h.address, inv.networking.pod_subnet
            )));
        }
        if let Some((other, _)) = out.iter().find(|(_, c)| **c == cidr) {
            return Err(RenderError::Unsupported(format!(
                "hosts {other} and {} would share the pod addresses {cidr}: each node's slice of \
                 networking.podSubnet is numbered by the low bits of its address; give the \
                 hosts addresses that differ there, or a larger podSubnet",
                h.name
            )));
        }
        out.insert(h.name.clone(), cidr);
    }
    Ok(out)
}

/// The n-th address of the service subnet (1 = the kubernetes service, 10 = cluster DNS).
/// The cluster DNS Service's address (the kubelets' clusterDNS): the service subnet's 10th.
pub fn cluster_dns(inv: &Inventory) -> IpAddr {
    nth_address(inv, 10)
}

fn nth_address(inv: &Inventory, n: u32) -> IpAddr {
    match first_address(inv.networking.service_subnet) {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) + n - 1).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) + u128::from(n) - 1).into()),
    }
}
