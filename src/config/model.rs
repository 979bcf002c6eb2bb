//! What cluster.yaml says, field by field, with defaults applied.
//!
//! Fields the file must provide are `Option`s here: a missing or malformed one is reported and left
//! `None`, so that every other rule can still run and report its own problems. The validated view
//! that the rest of kinit consumes is [`crate::inventory::Inventory`].

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use super::choice::choice_enum;
use super::duration::ConfigDuration;

pub const API_VERSION: &str = "kinit.io/v1alpha1";
pub const KIND: &str = "Cluster";

choice_enum!(
    /// Where etcd runs relative to the control plane.
    Topology, "topology" {
        /// etcd members on the control-plane hosts.
        Stacked => "stacked",
        /// etcd on hosts of its own.
        External => "external",
    }
);

choice_enum!(
    /// How the control-plane endpoint is served.
    LoadBalancerKind, "load balancer" {
        /// haproxy on every control-plane host, keepalived moving a VIP between them.
        HaproxyKeepalived => "haproxy-keepalived",
        /// The operator provides the load balancer; kinit only uses its address.
        External => "external",
    }
);

choice_enum!(
    /// How etcd is run on its hosts.
    EtcdMode, "etcd mode" {
        Systemd => "systemd",
        StaticPod => "static-pod",
    }
);

choice_enum!(
    /// How kube-apiserver, kube-controller-manager and kube-scheduler run on control-plane hosts.
    ControlPlaneMode, "control-plane mode" {
        /// Static pods the kubelet runs (kubeadm's way).
        StaticPod => "static-pod",
        /// systemd units running the bundle's binaries (kubeasz's "binary" way).
        Systemd => "systemd",
    }
);

choice_enum!(
    KeyAlgorithm, "key algorithm" {
        EcdsaP256 => "ecdsa-p256",
        EcdsaP384 => "ecdsa-p384",
        Rsa2048 => "rsa-2048",
        Rsa3072 => "rsa-3072",
        Rsa4096 => "rsa-4096",
    }
);

choice_enum!(
    /// What a host does in the cluster.
    Role, "role" {
        ControlPlane => "control-plane",
        Etcd => "etcd",
        Worker => "worker",
    }
);

/// The whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `metadata.name`: names the cluster (also seeds the keepalived router id).
    pub name: Option<String>,
    pub spec: ClusterSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub topology: Topology,
    pub kubernetes_version: Option<KubernetesVersion>,
    /// `spec.imageRepository` (kubeadm's name and meaning): the registry, and path in it, that
    /// the control-plane and etcd static pods' images come from.
    pub image_repository: String,
    pub control_plane_endpoint: ControlPlaneEndpoint,
    /// `spec.controlPlane`.
    pub control_plane: ControlPlaneSpec,
    pub etcd: EtcdSpec,
    pub networking: Networking,
    pub pki: PkiSpec,
    pub ssh: SshSpec,
    pub artifacts: Artifacts,
    pub time_sync: TimeSync,
    /// `spec.registries`: how containerd reaches registries (mirrors, CA, insecure opt-in).
    pub registries: Vec<RegistrySpec>,
    /// `spec.rollout`: how many hosts a roll takes out at once.
    pub rollout: Rollout,
    pub hosts: Vec<HostSpec>,
}

/// `spec.rollout`: how kinit's rolls pace themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollout {
    /// `maxUnavailableWorkers`: how many workers' kubelets restart together in a roll (each
    /// node drained first on an upgrade). Control planes and etcd hosts always go one at a time.
    pub max_unavailable_workers: MaxUnavailable,
}

/// A number of hosts, or a share of them, as Kubernetes' own `maxUnavailable` is written:
/// `2` or `"25%"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(u32),
    /// 1 to 100: that share of the hosts, rounded down, at least one.
    Percent(u8),
}

/// One at a time, kubeadm's way, unless the operator asks for more.
impl Default for MaxUnavailable {
    fn default() -> Self {
        MaxUnavailable::Count(1)
    }
}

impl MaxUnavailable {
    /// How many of `hosts` may be out at once: at least one (a roll must make progress), at
    /// most all of them.
    pub fn of(self, hosts: usize) -> usize {
        let n = match self {
            MaxUnavailable::Count(n) => n as usize,
            MaxUnavailable::Percent(p) => hosts * usize::from(p) / 100,
        };
        n.clamp(1, hosts.max(1))
    }
}

impl fmt::Display for MaxUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxUnavailable::Count(n) => write!(f, "{n}"),
            MaxUnavailable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for MaxUnavailable {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(share) = text.strip_suffix('%') {
            return match share.parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Ok(MaxUnavailable::Percent(p)),
                _ => Err("a share must be a whole percentage from 1% to 100%".to_string()),
            };
        }
        match text.parse::<u32>() {
            Ok(0) => Err("0 would never restart a worker".to_string()),
            Ok(n) => Ok(MaxUnavailable::Count(n)),
            Err(_) => Err("not a number of hosts nor a percentage".to_string()),
        }
    }
}

/// One registry as containerd's `certs.d/<name>/hosts.toml` describes it: mirrors tried in
/// order before the registry itself, the CA that signs their certificates, and whether plain
/// HTTP or an unverified certificate is allowed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistrySpec {
    /// The registry as image references name it: `host[:port]` (`registry.k8s.io`).
    pub name: Option<String>,
    /// `http(s)://host[:port][/path]` endpoints that serve the registry's images.
    pub mirrors: Vec<String>,
    /// A PEM CA bundle on the operator machine (relative to the config file).
    pub ca_file: Option<String>,
    /// Allows `http://` mirrors and skips TLS verification of `https://` ones.
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlPlaneEndpoint {
    pub address: Option<EndpointAddress>,
    pub port: u16,
    pub load_balancer: LoadBalancerKind,
    /// The network interface keepalived announces the VIP on (haproxy-keepalived only).
    pub interface: String,
    /// VRRP adverts go to each other control-plane host instead of the multicast group, for
    /// networks that drop multicast.
    pub vrrp_unicast: bool,
}

/// The endpoint clients use: a VIP, or the DNS name of an external load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddress {
    Ip(IpAddr),
    Dns(String),
}

impl fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddress::Ip(ip) => ip.fmt(f),
            EndpointAddress::Dns(name) => f.write_str(name),
        }
    }
}

/// `spec.controlPlane`: how the control-plane components run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ControlPlaneSpec {
    pub mode: ControlPlaneMode,
}

// choice_enum! defines the enum, so `#[default]` cannot be put on its variant.
#[allow(clippy::derivable_impls)]
impl Default for ControlPlaneMode {
    fn default() -> Self {
        ControlPlaneMode::StaticPod
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EtcdSpec {
    pub mode: EtcdMode,
    pub data_dir: String,
    /// Scheduled snapshots on every etcd host; None (the block absent) takes none.
    pub snapshots: Option<EtcdSnapshots>,
}

/// `spec.etcd.snapshots`: a systemd timer on each etcd host saves its member's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdSnapshots {
    /// A systemd `OnCalendar=` expression.
    pub schedule: String,
    /// How many snapshots each host keeps (the oldest beyond this are removed).
    pub keep: u32,
    /// Where they are kept on the host (absolute; never inside etcd's data directory).
    pub dir: String,
}

/// Defaults for a `snapshots` block that leaves a field out. Hourly: an hour bounds what a
/// restore loses, for one copy of the database per hour (a snapshot is about the size of the
/// member's db file). 24 kept: a day of hourly history, at 24 times the database's size on
/// disk. `/var/lib/etcd-snapshots`: next to etcd's default data dir but outside it, so a data
/// dir that is wiped or replaced by a restore (`etcdutl snapshot restore` wants a fresh one)
/// does not take the snapshots with it.
impl Default for EtcdSnapshots {
    fn default() -> Self {
        EtcdSnapshots {
            schedule: "hourly".into(),
            keep: 24,
            dir: "/var/lib/etcd-snapshots".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Networking {
    pub pod_subnet: IpNet,
    pub service_subnet: IpNet,
    pub dns_domain: String,
    /// The subnet the hosts share, when known: the VIP and every host address must be inside it.
    pub node_subnet: Option<IpNet>,
    /// Where CoreDNS forwards names outside the cluster: `None` is the nodes' /etc/resolv.conf
    /// (kubeadm's Corefile), an empty list forwards nothing (an air-gapped cluster answers its
    /// own names only).
    pub dns_upstreams: Option<Vec<std::net::IpAddr>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PkiSpec {
    /// Where the PKI is kept on the operator machine (relative to the config file).
    pub dir: String,
    pub key_algorithm: KeyAlgorithm,
    pub ca_validity: ConfigDuration,
    pub cert_validity: ConfigDuration,
    /// More names and addresses for the apiserver certificate.
    pub extra_sans: Vec<String>,
}

/// SSH defaults for every host; a host may override user, port and identity file.
#[derive(Debug, Clone, PartialEq)]
pub struct SshSpec {
    pub user: String,
    pub port: u16,
    pub identity_file: Option<String>,
    pub known_hosts: String,
    /// Reach every host through this jump host.
    pub bastion: Option<Bastion>,
}

/// A jump host (OpenSSH's ProxyJump): its own user, port and key; its host key is checked too.
#[derive(Debug, Clone, PartialEq)]
pub struct Bastion {
    pub address: Option<String>,
    pub port: u16,
    /// Defaults to spec.ssh.user.
    pub user: Option<String>,
    /// Defaults to spec.ssh.identityFile.
    pub identity_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Artifacts {
    /// A directory of binaries plus SHA256SUMS, uploaded to the hosts.
    pub bundle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeSync {
    /// NTP servers for chrony; empty leaves time configuration alone.
    pub servers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    pub name: Option<String>,
    pub address: Option<IpAddr>,
    pub roles: Vec<Role>,
    pub ssh: HostSsh,
}

impl HostSpec {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostSsh {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<String>,
}

/// `v1.31.4` (a pre-release suffix such as `-rc.1` is allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub pre: Option<String>,
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl FromStr for KubernetesVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a Kubernetes version (expected the form v1.31.4)");
        let rest = text.strip_prefix('v').ok_or_else(bad)?;
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => {
                let ok = !pre.is_empty()
                    && pre
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
                if !ok {
                    return Err(bad());
                }
                (core, Some(pre.to_string()))
            }
            None => (rest, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else {
            return Err(bad());
        };
        let num = |s: &str| -> Result<u32, String> {
            if s.is_empty()
                || !s.chars().all(|c| c.is_ascii_digit())
                || (s.len() > 1 && s.starts_with('0'))
            {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let v = KubernetesVersion {
            major: num(major)?,
            minor: num(minor)?,
            patch: num(patch)?,
            pre,
        };
        if v.major != 1 {
            return Err(format!("`{text}`: kinit deploys Kubernetes 1.x"));
        }
        Ok(v)
    }
}

impl<'de> serde::Deserialize<'de> for KubernetesVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Where kubeadm takes the control-plane images from unless told otherwise.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";

/// The apiservers' own port on every control-plane host.
pub const APISERVER_PORT: u16 = 6443;

impl Default for ControlPlaneEndpoint {
    fn default() -> Self {
        ControlPlaneEndpoint {
            address: None,
            port: 8443,
            load_balancer: LoadBalancerKind::HaproxyKeepalived,
            interface: "eth0".into(),
            vrrp_unicast: false,
        }
    }
}

impl Default for EtcdSpec {
    fn default() -> Self {
        EtcdSpec {
            mode: EtcdMode::Systemd,
            data_dir: "/var/lib/etcd".into(),
            snapshots: None,
        }
    }
}

impl Default for Networking {
    fn default() -> Self {
        Networking {
            pod_subnet: "10.244.0.0/16".parse().expect("valid default"),
            service_subnet: "10.96.0.0/12".parse().expect("valid default"),
            dns_domain: "cluster.local".into(),
            node_subnet: None,
            dns_upstreams: None,
        }
    }
}

impl Default for PkiSpec {
    fn default() -> Self {
        PkiSpec {
            dir: "./pki".into(),
            key_algorithm: KeyAlgorithm::EcdsaP256,
            ca_validity: ConfigDuration::hours(87600),
            cert_validity: ConfigDuration::hours(8760),
            extra_sans: Vec::new(),
        }
    }
}

impl Default for SshSpec {
    fn default() -> Self {
        SshSpec {
            user: "root".into(),
            port: 22,
            identity_file: None,
            known_hosts: "~/.ssh/known_hosts".into(),
            bastion: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_versions() {
        let v: KubernetesVersion = "v1.31.4".parse().unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 31, 4));
        assert_eq!(
            "v1.32.0-rc.1"
                .parse::<KubernetesVersion>()
                .unwrap()
                .to_string(),
            "v1.32.0-rc.1"
        );
        for bad in [
            "1.31.4",
            "v1.31",
            "v1.31.4.1",
            "v1.031.4",
            "vx.y.z",
            "v1.31.4-",
            "v2.0.0",
            "latest",
        ] {
            assert!(bad.parse::<KubernetesVersion>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn max_unavailable_is_a_count_or_a_share_and_always_at_least_one() {
        let count: MaxUnavailable = "2".parse().unwrap();
        assert_eq!((count.of(5), count.of(1), count.of(0)), (2, 1, 1));
        let share: MaxUnavailable = "25%".parse().unwrap();
        assert_eq!((share.of(8), share.of(3), share.of(10)), (2, 1, 2));
        assert_eq!("100%".parse::<MaxUnavailable>().unwrap().of(7), 7);
        assert_eq!(MaxUnavailable::default().of(9), 1);
        assert_eq!(share.to_string(), "25%");
        for bad in ["0", "0%", "101%", "-1", "two", "2.5", "%"] {
            assert!(bad.parse::<MaxUnavailable>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rollout_reads_a_count_or_a_share_and_defaults_to_one() {
        let text = |rollout: &str| {
            format!(
                "apiVersion: kinit.io/v1alpha1\nkind: Cluster\nmetadata: {{name: demo}}\nspec:\n  \
                 kubernetesVersion: v1.31.4\n  controlPlaneEndpoint: {{address: 192.168.9.100}}\n{rollout}  \
                 hosts:\n    - {{name: cp1, address: 192.168.9.11, roles: [control-plane, etcd]}}\n"
            )
        };
        let read = |rollout: &str| {
            let (cfg, report) = crate::config::check(std::path::Path::new("c.yaml"), text(rollout));
            cfg.unwrap_or_else(|| panic!("{report:?}"))
                .spec
                .rollout
                .max_unavailable_workers
        };
        assert_eq!(
            read("  rollout: {maxUnavailableWorkers: 3}\n"),
            MaxUnavailable::Count(3)
        );
        assert_eq!(
            read("  rollout: {maxUnavailableWorkers: \"25%\"}\n"),
            MaxUnavailable::Percent(25)
        );
        assert_eq!(read(""), MaxUnavailable::Count(1));
    }
}
