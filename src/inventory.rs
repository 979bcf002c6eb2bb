//! The validated, typed cluster that every later step consumes: hosts by role, etcd members,
//! the endpoint, and paths resolved against the config file's directory.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Serialize;

use crate::config::{
    APISERVER_PORT, ClusterSpec, Config, ControlPlaneMode, EndpointAddress, EtcdSpec,
    KubernetesVersion, LoadBalancerKind, Networking, PkiSpec, Role, Rollout, Topology,
};

/// Ports kinit's components listen on. One table, read by preflight, render and status.
pub mod ports {
    pub const APISERVER: u16 = super::APISERVER_PORT;
    pub const ETCD_CLIENT: u16 = 2379;
    pub const ETCD_PEER: u16 = 2380;
    pub const ETCD_METRICS: u16 = 2381;
    pub const KUBELET: u16 = 10250;
    pub const KUBELET_HEALTHZ: u16 = 10248;
    pub const KUBE_PROXY_HEALTHZ: u16 = 10256;
    pub const KUBE_PROXY_METRICS: u16 = 10249;
    pub const CONTROLLER_MANAGER: u16 = 10257;
    pub const SCHEDULER: u16 = 10259;
    /// haproxy's stats socket, on 127.0.0.1 only: `kinit status` reads `show stat` from it
    /// (the nodes have no socat to reach a unix socket; bash's /dev/tcp reaches this one).
    pub const HAPROXY_STATS: u16 = 8404;
}

#[derive(Debug, Clone, Serialize)]
pub struct SshTarget {
    pub user: String,
    pub port: u16,
    pub identity_file: Option<PathBuf>,
}

/// The jump host every SSH connection goes through, when the config names one.
#[derive(Debug, Clone, Serialize)]
pub struct SshBastion {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub name: String,
    pub address: IpAddr,
    pub roles: Vec<Role>,
    pub ssh: SshTarget,
}

impl Host {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// One member of the etcd cluster, as the initial-cluster flag names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdMember {
    pub name: String,
    pub address: IpAddr,
}

impl EtcdMember {
    pub fn peer_url(&self) -> String {
        format!("https://{}", socket(self.address, ports::ETCD_PEER))
    }

    pub fn client_url(&self) -> String {
        format!("https://{}", socket(self.address, ports::ETCD_CLIENT))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    pub load_balancer: LoadBalancerKind,
    /// Where keepalived announces the VIP.
    pub interface: String,
    /// VRRP to each control-plane peer instead of multicast.
    pub vrrp_unicast: bool,
}

impl Endpoint {
    /// `https://192.168.9.100:8443`, what kubeconfigs point at.
    pub fn url(&self) -> String {
        match self.address.parse::<IpAddr>() {
            Ok(ip) => format!("https://{}", socket(ip, self.port)),
            Err(_) => format!("https://{}:{}", self.address, self.port),
        }
    }
}

fn socket(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub name: String,
    pub topology: Topology,
    pub kubernetes_version: KubernetesVersion,
    /// Where the control-plane and etcd images come from (`spec.imageRepository`).
    pub image_repository: String,
    pub endpoint: Endpoint,
    /// How the control-plane components run (`spec.controlPlane.mode`).
    pub control_plane_mode: ControlPlaneMode,
    pub hosts: Vec<Host>,
    pub etcd: EtcdSpec,
    pub networking: Networking,
    pub pki: PkiSpec,
    /// Operator-side paths, resolved against the config file's directory.
    pub pki_dir: PathBuf,
    pub known_hosts: PathBuf,
    pub bastion: Option<SshBastion>,
    pub bundle: Option<PathBuf>,
    pub time_servers: Vec<String>,
    /// `spec.registries`, each CA file resolved on the operator machine.
    pub registries: Vec<Registry>,
    /// `spec.rollout`: how many workers a roll takes out at once.
    pub rollout: Rollout,
    /// etcd's initial-cluster-token: random, made once per cluster and kept in the PKI dir
    /// (`etcd/cluster-token`). None until loaded; templates then fall back to the cluster name.
    pub etcd_cluster_token: Option<String>,
    /// How each etcd host's member starts when it has no data yet, where that is not a member
    /// of a new cluster made of every etcd host: a member joining a running cluster, or one
    /// already running (kept as it started: etcd reads these settings only on its first start,
    /// and a changed file would restart it). Filled by `kinit up` from the live cluster.
    pub etcd_bootstrap: BTreeMap<String, EtcdBootstrap>,
}

/// A registry containerd reaches through mirrors, or with a CA of its own, or without TLS
/// (`spec.registries[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    pub name: String,
    pub mirrors: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
}

/// etcd's `initial-cluster` and `initial-cluster-state` for one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdBootstrap {
    pub initial_cluster: String,
    /// `new` or `existing`.
    pub state: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the config is incomplete: {0} (validate it first)")]
pub struct IncompleteConfig(&'static str);

impl Inventory {
    /// Build from a config that passed validation. `config_dir` anchors relative paths; `home`
    /// expands `~/`.
    pub fn from_config(
        cfg: &Config,
        config_dir: &Path,
        home: Option<&Path>,
    ) -> Result<Self, IncompleteConfig> {
        let spec = &cfg.spec;
        let resolve = |p: &str| resolve_path(p, config_dir, home);
        let hosts = hosts_from(spec, &resolve)?;
        let address = spec
            .control_plane_endpoint
            .address
            .as_ref()
            .ok_or(IncompleteConfig("no controlPlaneEndpoint.address"))?;
        Ok(Inventory {
            name: cfg
                .name
                .clone()
                .ok_or(IncompleteConfig("no metadata.name"))?,
            topology: spec.topology,
            kubernetes_version: spec
                .kubernetes_version
                .clone()
                .ok_or(IncompleteConfig("no kubernetesVersion"))?,
            image_repository: spec.image_repository.clone(),
            endpoint: Endpoint {
                address: match address {
                    EndpointAddress::Ip(ip) => ip.to_string(),
                    EndpointAddress::Dns(name) => name.clone(),
                },
                port: spec.control_plane_endpoint.port,
                load_balancer: spec.control_plane_endpoint.load_balancer,
                interface: spec.control_plane_endpoint.interface.clone(),
                vrrp_unicast: spec.control_plane_endpoint.vrrp_unicast,
            },
            hosts,
            control_plane_mode: spec.control_plane.mode,
            etcd: spec.etcd.clone(),
            networking: spec.networking.clone(),
            pki: spec.pki.clone(),
            pki_dir: resolve(&spec.pki.dir),
            known_hosts: resolve(&spec.ssh.known_hosts),
            bastion: bastion_from(spec, &resolve)?,
            bundle: spec.artifacts.bundle.as_deref().map(resolve),
            time_servers: spec.time_sync.servers.clone(),
            registries: registries_from(spec, &resolve)?,
            rollout: spec.rollout,
            etcd_cluster_token: None,
            etcd_bootstrap: BTreeMap::new(),
        })
    }

    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.has(role))
    }

    pub fn control_plane(&self) -> impl Iterator<Item = &Host> {
        self.with_role(Role::ControlPlane)
    }

    pub fn workers(&self) -> impl Iterator<Item = &Host> {
        self.with_role(Role::Worker)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn etcd_members(&self) -> Vec<EtcdMember> {
        self.with_role(Role::Etcd)
            .map(|h| EtcdMember {
                name: h.name.clone(),
                address: h.address,
            })
            .collect()
    }

    /// `cp1=https://10.0.0.11:2380,...`, etcd's --initial-cluster.
    pub fn etcd_initial_cluster(&self) -> String {
        self.etcd_members()
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How `host`'s etcd member starts: as [`Inventory::etcd_bootstrap`] says, else as one of
    /// a new cluster of every etcd host.
    pub fn etcd_bootstrap_of(&self, host: &str) -> EtcdBootstrap {
        self.etcd_bootstrap
            .get(host)
            .cloned()
            .unwrap_or_else(|| EtcdBootstrap {
                initial_cluster: self.etcd_initial_cluster(),
                state: "new".into(),
            })
    }

    /// The `kubernetes` service address: the service subnet's first address.
    pub fn first_service_ip(&self) -> IpAddr {
        first_address(self.networking.service_subnet)
    }
}

pub fn first_address(net: IpNet) -> IpAddr {
    match net.trunc() {
        IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + 1).into()),
        IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + 1).into()),
    }
}

/// The hosts of a validated spec, each with its own SSH settings over the spec's.
fn hosts_from(
    spec: &ClusterSpec,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<Host>, IncompleteConfig> {
    let mut hosts = Vec::with_capacity(spec.hosts.len());
    for h in &spec.hosts {
        let identity = h
            .ssh
            .identity_file
            .as_deref()
            .or(spec.ssh.identity_file.as_deref());
        hosts.push(Host {
            name: h
                .name
                .clone()
                .ok_or(IncompleteConfig("a host without a name"))?,
            address: h
                .address
                .ok_or(IncompleteConfig("a host without an address"))?,
            roles: h.roles.clone(),
            ssh: SshTarget {
                user: h.ssh.user.clone().unwrap_or_else(|| spec.ssh.user.clone()),
                port: h.ssh.port.unwrap_or(spec.ssh.port),
                identity_file: identity.map(resolve),
            },
        });
    }
    Ok(hosts)
}

fn bastion_from(
    spec: &ClusterSpec,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Option<SshBastion>, IncompleteConfig> {
    let Some(b) = &spec.ssh.bastion else {
        return Ok(None);
    };
    Ok(Some(SshBastion {
        address: b
            .address
            .clone()
            .ok_or(IncompleteConfig("a bastion without an address"))?,
        port: b.port,
        user: b.user.clone().unwrap_or_else(|| spec.ssh.user.clone()),
        identity_file: b
            .identity_file
            .as_deref()
            .or(spec.ssh.identity_file.as_deref())
            .map(resolve),
    }))
}

fn registries_from(
    spec: &ClusterSpec,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<Registry>, IncompleteConfig> {
    spec.registries
        .iter()
        .map(|r| {
            Ok(Registry {
                name: r
                    .name
                    .clone()
                    .ok_or(IncompleteConfig("a registry without a name"))?,
                mirrors: r.mirrors.clone(),
                ca_file: r.ca_file.as_deref().map(resolve),
                insecure: r.insecure,
            })
        })
        .collect()
}

/// `~/x` against `home`, relative paths against `base`, absolute paths as written.
pub fn resolve_path(p: &str, base: &Path, home: Option<&Path>) -> PathBuf {
    if let (Some(rest), Some(home)) = (p.strip_prefix("~/"), home) {
        return home.join(rest);
    }
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path.strip_prefix("./").unwrap_or(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::{InitShape, render};

    fn inventory(topology: Topology) -> Inventory {
        let text = render(InitShape {
            topology,
            control_planes: 3,
            workers: 2,
            etcd_hosts: 3,
        })
        .unwrap();
        let (cfg, report) = crate::config::check(Path::new("c.yaml"), text);
        assert!(!report.has_errors());
        Inventory::from_config(
            &cfg.unwrap(),
            Path::new("/srv/cluster"),
            Some(Path::new("/home/op")),
        )
        .unwrap()
    }

    #[test]
    fn stacked_etcd_members_are_the_control_plane() {
        let inv = inventory(Topology::Stacked);
        let names: Vec<_> = inv.etcd_members().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["cp1", "cp2", "cp3"]);
        assert_eq!(
            inv.etcd_initial_cluster(),
            "cp1=https://192.168.9.11:2380,cp2=https://192.168.9.12:2380,cp3=https://192.168.9.13:2380"
        );
        assert_eq!(inv.endpoint.url(), "https://192.168.9.100:8443");
        assert_eq!(inv.first_service_ip().to_string(), "10.96.0.1");
    }

    #[test]
    fn external_etcd_members_are_their_own_hosts() {
        let inv = inventory(Topology::External);
        let names: Vec<_> = inv.etcd_members().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["etcd1", "etcd2", "etcd3"]);
        assert!(inv.control_plane().all(|h| !h.has(Role::Etcd)));
    }

    #[test]
    fn operator_paths_resolve_against_the_config_dir_and_home() {
        let inv = inventory(Topology::Stacked);
        assert_eq!(inv.pki_dir, Path::new("/srv/cluster/pki"));
        assert_eq!(inv.known_hosts, Path::new("/home/op/.ssh/known_hosts"));
        assert_eq!(
            inv.hosts[0].ssh.identity_file.as_deref(),
            Some(Path::new("/home/op/.ssh/id_ed25519"))
        );
        assert_eq!(
            resolve_path("/etc/x", Path::new("/a"), None),
            Path::new("/etc/x")
        );
    }

    #[test]
    fn ipv6_urls_are_bracketed() {
        let m = EtcdMember {
            name: "e".into(),
            address: "fd00::1".parse().unwrap(),
        };
        assert_eq!(m.client_url(), "https://[fd00::1]:2379");
        assert_eq!(
            first_address("fd00:10::/108".parse().unwrap()).to_string(),
            "fd00:10::1"
        );
    }
}
