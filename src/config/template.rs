//! The commented cluster.yaml that `kinit init` writes. It must validate exactly as written.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::model::Topology;

/// What `kinit init` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitShape {
    pub topology: Topology,
    pub control_planes: u32,
    pub workers: u32,
    /// Dedicated etcd hosts (external topology only).
    pub etcd_hosts: u32,
}

/// Hosts are numbered from .11 in the example /24, skipping the VIP.
const FIRST_HOST: u8 = 11;
const VIP: u8 = 100;
/// .11 to .254, less the VIP.
pub const MAX_HOSTS: u32 = (254 - FIRST_HOST as u32 + 1) - 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InitError {
    #[error("--control-planes must be at least 1")]
    NoControlPlane,
    #[error("an external topology needs at least one etcd host (--etcd-hosts)")]
    NoEtcd,
    #[error(
        "{0} hosts do not fit the example subnet (at most {MAX_HOSTS}); generate fewer and add the rest by hand"
    )]
    TooManyHosts(u32),
}

impl InitShape {
    pub fn total_hosts(&self) -> u32 {
        let etcd = if self.topology == Topology::External {
            self.etcd_hosts
        } else {
            0
        };
        self.control_planes + etcd + self.workers
    }
}

/// The `hosts:` entries of `shape`: control planes, then etcd hosts (external), then workers,
/// numbered from [`FIRST_HOST`] on and stepping over the VIP.
fn hosts_block(shape: &InitShape) -> String {
    let stacked = shape.topology == Topology::Stacked;
    let mut next = FIRST_HOST;
    let mut address = || {
        if next == VIP {
            next += 1;
        }
        let a = Ipv4Addr::new(192, 168, 9, next);
        next += 1;
        a
    };

    let mut hosts = String::new();
    let cp_roles = if stacked {
        "[control-plane, etcd]"
    } else {
        "[control-plane]"
    };
    for i in 1..=shape.control_planes {
        writeln!(
            hosts,
            "    - {{name: cp{i}, address: {}, roles: {cp_roles}}}",
            address()
        )
        .unwrap();
    }
    if !stacked {
        for i in 1..=shape.etcd_hosts {
            writeln!(
                hosts,
                "    - {{name: etcd{i}, address: {}, roles: [etcd]}}",
                address()
            )
            .unwrap();
        }
    }
    for i in 1..=shape.workers {
        writeln!(
            hosts,
            "    - {{name: worker{i}, address: {}, roles: [worker]}}",
            address()
        )
        .unwrap();
    }
    hosts
}

/// Render the example config for `shape`.
pub fn render(shape: InitShape) -> Result<String, InitError> {
    if shape.control_planes == 0 {
        return Err(InitError::NoControlPlane);
    }
    if shape.topology == Topology::External && shape.etcd_hosts == 0 {
        return Err(InitError::NoEtcd);
    }
    let total = shape.total_hosts();
    if total > MAX_HOSTS {
        return Err(InitError::TooManyHosts(total));
    }
    let stacked = shape.topology == Topology::Stacked;
    let hosts = hosts_block(&shape);

    let topology_comment = if stacked {
        "# stacked: an etcd member on every control-plane host (fewer machines).\n  # external: etcd on hosts of its own (control-plane and etcd fail independently)."
    } else {
        "# external: etcd on hosts of its own (control-plane and etcd fail independently).\n  # stacked: an etcd member on every control-plane host (fewer machines)."
    };

    Ok(format!(
        r#"# kinit cluster definition. Check it with `kinit config validate`.
# Every field below is shown with its default unless marked otherwise; delete what you don't change.
apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata:
  name: demo                        # lowercase letters, digits and '-'
spec:
  {topology_comment}
  topology: {topology}
  kubernetesVersion: v1.31.4        # required
  imageRepository: registry.k8s.io  # control-plane and etcd images; a mirror, e.g. registry.aliyuncs.com/google_containers

  # What clients (kubectl, kubelets) connect to. With haproxy-keepalived, the address is a virtual
  # IP that keepalived moves between control-plane hosts, and haproxy listens on the port there,
  # spreading connections over every kube-apiserver (which listen on 6443 on each host).
  controlPlaneEndpoint:
    address: 192.168.9.100          # required: an unused address on the hosts' network
    port: 8443
    loadBalancer: haproxy-keepalived   # or: external (you provide the load balancer)
    interface: eth0                 # where keepalived announces the VIP
    vrrpUnicast: false              # true: VRRP to each control-plane host, for networks that drop multicast

  etcd:
    mode: systemd                   # or: static-pod (the kubelet runs etcd)
    dataDir: /var/lib/etcd
    # snapshots: {{schedule: hourly, keep: 24, dir: /var/lib/etcd-snapshots}}   # off unless set: a systemd timer on each etcd host saves a verified snapshot

  networking:
    podSubnet: 10.244.0.0/16
    serviceSubnet: 10.96.0.0/12     # the first address (10.96.0.1) becomes the kubernetes service
    dnsDomain: cluster.local
    nodeSubnet: 192.168.9.0/24      # optional: the hosts' subnet; the VIP and host addresses must lie in it
    # dnsUpstreams: [192.168.9.1]   # optional: where CoreDNS forwards other names (default: the nodes' /etc/resolv.conf; [] forwards nothing)

  pki:
    dir: ./pki                      # on this machine, relative to this file
    keyAlgorithm: ecdsa-p256        # or: ecdsa-p384, rsa-2048, rsa-3072, rsa-4096
    caValidity: 87600h              # 10 years
    certValidity: 8760h             # 1 year
    extraSANs: []                   # more names/addresses for the apiserver certificate

  ssh:
    user: root                      # non-root users need passwordless sudo
    port: 22
    identityFile: ~/.ssh/id_ed25519
    knownHosts: ~/.ssh/known_hosts  # host keys are verified against this file
    # bastion: {{address: 203.0.113.10, port: 22, user: ops}}   # jump host, when hosts are not directly reachable

  artifacts:
    bundle: ./bundle                # binaries + SHA256SUMS to upload to the hosts

  timeSync:
    servers: []                     # NTP servers for chrony, e.g. [0.pool.ntp.org]; empty leaves time alone

  # How containerd reaches registries (none by default): mirrors tried in order before the
  # registry itself, a CA for their certificates, and plain HTTP only with insecure: true.
  # registries:
  #   - {{name: registry.k8s.io, mirrors: [https://mirror.internal:5000], caFile: ./registry-ca.pem}}

  # How many workers' kubelets restart together in a roll (an upgrade drains each node first);
  # control planes and etcd hosts always go one at a time. A number, or a share such as "25%".
  # rollout:
  #   maxUnavailableWorkers: 1

  # Each host: a name (becomes the node name), the address kinit reaches it on over SSH, and its
  # roles (control-plane, etcd, worker). A host may override ssh.user, ssh.port and ssh.identityFile.
  hosts:
{hosts}"#,
        topology = shape.topology,
    ))
}
