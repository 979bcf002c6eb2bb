//! The one certificate table: every certificate kinit issues for a cluster, with its subject,
//! SANs, signing CA and profile, and where it lands on which host. Generation, renewal, expiry
//! checks (and later render and status) all read this table. Which hosts run a kubelet, and so
//! get its kubeconfig and the cluster CA, is the component table's to say.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::PkiError;
use super::profiles::Profiles;
use crate::components::{self, ComponentId};
use crate::config::Role;
use crate::inventory::{Host, Inventory, ports};

/// The three certificate authorities of a kubeadm cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum CaId {
    Kubernetes,
    FrontProxy,
    Etcd,
}

impl CaId {
    pub const ALL: [CaId; 3] = [CaId::Kubernetes, CaId::FrontProxy, CaId::Etcd];

    /// kubeadm's name for it (`check-expiration` shows this).
    pub fn name(self) -> &'static str {
        match self {
            CaId::Kubernetes => "ca",
            CaId::FrontProxy => "front-proxy-ca",
            CaId::Etcd => "etcd-ca",
        }
    }

    /// Its CSR template under `certs/`.
    pub fn csr(self) -> &'static str {
        self.name()
    }

    /// Path under `pki/` without extension: `ca`, `front-proxy-ca`, `etcd/ca`.
    pub fn stem(self) -> &'static str {
        match self {
            CaId::Kubernetes => "ca",
            CaId::FrontProxy => "front-proxy-ca",
            CaId::Etcd => "etcd/ca",
        }
    }
}

impl fmt::Display for CaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl San {
    pub fn parse(text: &str) -> San {
        match text.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip),
            Err(_) => San::Dns(text.to_string()),
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => f.write_str(d),
            San::Ip(ip) => ip.fmt(f),
        }
    }
}

/// How a certificate is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `pki/<stem>.crt` and `pki/<stem>.key`.
    Pair { stem: &'static str },
    /// `/etc/kubernetes/<file>`: a kubeconfig with the CA, the certificate and key embedded.
    Kubeconfig { file: &'static str, server: String },
}

/// One certificate kinit issues.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// kubeadm's name: `apiserver`, `etcd-server`, `admin.conf`, ...
    pub name: &'static str,
    /// The host this instance is for, when each host has its own (SANs or server differ).
    pub host: Option<String>,
    pub ca: CaId,
    /// Signing profile in `certs/ca-config.json`.
    pub profile: &'static str,
    /// CSR template `certs/<csr>-csr.json`.
    pub csr: &'static str,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub sans: Vec<San>,
    pub output: Output,
    /// Hosts whose `/etc/kubernetes` receives it.
    pub recipients: Vec<String>,
}

/// Root of a host's tree, relative to the PKI dir: what is copied to `/etc/kubernetes/`.
pub fn host_root(host: &str) -> String {
    format!("hosts/{host}/etc/kubernetes")
}

impl CertSpec {
    /// `apiserver (cp1)` or `admin.conf`.
    pub fn label(&self) -> String {
        match &self.host {
            Some(h) => format!("{} ({h})", self.name),
            None => self.name.to_string(),
        }
    }

    /// Path of a file relative to `/etc/kubernetes/`: `pki/apiserver.crt`, `admin.conf`.
    fn on_host(&self, ext: &str) -> String {
        match &self.output {
            Output::Pair { stem } => format!("pki/{stem}.{ext}"),
            Output::Kubeconfig { file, .. } => file.to_string(),
        }
    }

    /// Where kinit keeps the authoritative copy, relative to the PKI dir. Shared certificates
    /// live beside the CAs; per-host ones directly in that host's tree.
    pub fn stored(&self, ext: &str) -> String {
        match (&self.host, &self.output) {
            (Some(h), _) => format!("{}/{}", host_root(h), self.on_host(ext)),
            (None, Output::Pair { stem }) => format!("{stem}.{ext}"),
            (None, Output::Kubeconfig { file, .. }) => file.to_string(),
        }
    }

    /// The files this certificate consists of (relative to `/etc/kubernetes/`) with their modes.
    pub fn files(&self) -> Vec<(String, u32)> {
        match &self.output {
            Output::Pair { .. } => vec![
                (self.on_host("crt"), CERT_MODE),
                (self.on_host("key"), KEY_MODE),
            ],
            Output::Kubeconfig { .. } => vec![(self.on_host(""), KEY_MODE)],
        }
    }

    pub fn is_kubeconfig(&self) -> bool {
        matches!(self.output, Output::Kubeconfig { .. })
    }
}

pub const CERT_MODE: u32 = 0o644;
pub const KEY_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// A file copied from the PKI dir into a host's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub host: String,
    /// Relative to the PKI dir.
    pub from: String,
    /// Relative to `/etc/kubernetes/`.
    pub to: String,
    pub mode: u32,
}

/// Values the `${...}` placeholders in CSR templates take for one host.
struct Placeholders<'a> {
    inv: &'a Inventory,
    host: Option<&'a Host>,
}

impl Placeholders<'_> {
    fn scalar(&self, name: &str) -> Option<String> {
        Some(match name {
            "NODE_NAME" => self.host?.name.clone(),
            "NODE_IP" => self.host?.address.to_string(),
            "SERVICE_IP" => self.inv.first_service_ip().to_string(),
            "DNS_DOMAIN" => self.inv.networking.dns_domain.clone(),
            "ENDPOINT" => self.inv.endpoint.address.clone(),
            _ => return None,
        })
    }

    /// Fill in one template string; `${EXTRA_SANS}` (alone) expands to the list.
    fn expand(&self, csr: &str, text: &str) -> Result<Vec<String>, PkiError> {
        if text == "${EXTRA_SANS}" {
            return Ok(self.inv.pki.extra_sans.clone());
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').map(|e| start + e);
            let Some(end) = end else { break };
            let name = &rest[start + 2..end];
            let value = self.scalar(name).ok_or_else(|| PkiError::Profile {
                file: format!("certs/{csr}-csr.json"),
                message: format!("placeholder `${{{name}}}` has no value here"),
            })?;
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(vec![out])
    }
}

fn local_apiserver(host: &Host) -> String {
    format!(
        "https://{}",
        std::net::SocketAddr::new(host.address, ports::APISERVER)
    )
}

struct Builder<'a> {
    inv: &'a Inventory,
    profiles: &'a Profiles,
    specs: Vec<CertSpec>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        name: &'static str,
        csr: &'static str,
        profile: &'static str,
        ca: CaId,
        host: Option<&Host>,
        output: Output,
        recipients: Vec<String>,
    ) -> Result<(), PkiError> {
        let template = self.profiles.csr(csr)?;
        let ph = Placeholders {
            inv: self.inv,
            host,
        };
        let common_name = ph.expand(csr, &template.cn)?.concat();
        let mut sans: Vec<San> = Vec::new();
        for entry in &template.hosts {
            for value in ph.expand(csr, entry)? {
                let san = San::parse(&value);
                if !sans.contains(&san) {
                    sans.push(san);
                }
            }
        }
        self.specs.push(CertSpec {
            name,
            host: host.map(|h| h.name.clone()),
            ca,
            profile,
            csr,
            common_name,
            organizations: template.organizations(),
            sans,
            output,
            recipients,
        });
        Ok(())
    }
}

/// Every certificate of the cluster, in kubeadm's order.
pub fn certificates(inv: &Inventory, profiles: &Profiles) -> Result<Vec<CertSpec>, PkiError> {
    let cps: Vec<&Host> = inv.control_plane().collect();
    let etcd: Vec<&Host> = inv.with_role(Role::Etcd).collect();
    let mut b = Builder {
        inv,
        profiles,
        specs: Vec::new(),
    };
    apiserver_certificates(&mut b, &cps)?;
    etcd_certificates(&mut b, &etcd)?;
    control_plane_kubeconfigs(&mut b, &cps)?;
    node_kubeconfigs(&mut b)?;
    Ok(b.specs)
}

fn names(hosts: &[&Host]) -> Vec<String> {
    hosts.iter().map(|h| h.name.clone()).collect()
}

fn pair(stem: &'static str) -> Output {
    Output::Pair { stem }
}

fn kubeconfig(file: &'static str, server: &str) -> Output {
    Output::Kubeconfig {
        file,
        server: server.to_string(),
    }
}

/// Each apiserver's serving certificate, and the client certificates the apiservers use
/// towards kubelets, the front proxy's backends and etcd.
fn apiserver_certificates(b: &mut Builder<'_>, cps: &[&Host]) -> Result<(), PkiError> {
    for h in cps {
        b.add(
            "apiserver",
            "apiserver",
            "server",
            CaId::Kubernetes,
            Some(h),
            pair("apiserver"),
            vec![h.name.clone()],
        )?;
    }
    b.add(
        "apiserver-kubelet-client",
        "apiserver-kubelet-client",
        "client",
        CaId::Kubernetes,
        None,
        pair("apiserver-kubelet-client"),
        names(cps),
    )?;
    b.add(
        "front-proxy-client",
        "front-proxy-client",
        "client",
        CaId::FrontProxy,
        None,
        pair("front-proxy-client"),
        names(cps),
    )?;
    b.add(
        "apiserver-etcd-client",
        "apiserver-etcd-client",
        "client",
        CaId::Etcd,
        None,
        pair("apiserver-etcd-client"),
        names(cps),
    )?;
    Ok(())
}

/// Each etcd member's server and peer certificates, and the health-check client.
fn etcd_certificates(b: &mut Builder<'_>, etcd: &[&Host]) -> Result<(), PkiError> {
    for h in etcd {
        b.add(
            "etcd-server",
            "etcd-server",
            "peer",
            CaId::Etcd,
            Some(h),
            pair("etcd/server"),
            vec![h.name.clone()],
        )?;
        b.add(
            "etcd-peer",
            "etcd-peer",
            "peer",
            CaId::Etcd,
            Some(h),
            pair("etcd/peer"),
            vec![h.name.clone()],
        )?;
    }
    b.add(
        "etcd-healthcheck-client",
        "etcd-healthcheck-client",
        "client",
        CaId::Etcd,
        None,
        pair("etcd/healthcheck-client"),
        names(etcd),
    )?;
    Ok(())
}

/// admin.conf and super-admin.conf through the endpoint; each control plane's
/// controller-manager and scheduler kubeconfigs to its local apiserver.
fn control_plane_kubeconfigs(b: &mut Builder<'_>, cps: &[&Host]) -> Result<(), PkiError> {
    let endpoint = b.inv.endpoint.url();
    b.add(
        "admin.conf",
        "admin",
        "client",
        CaId::Kubernetes,
        None,
        kubeconfig("admin.conf", &endpoint),
        names(cps),
    )?;
    // kubeadm writes super-admin.conf on the first control-plane host only.
    b.add(
        "super-admin.conf",
        "super-admin",
        "client",
        CaId::Kubernetes,
        None,
        kubeconfig("super-admin.conf", &endpoint),
        names(&cps[..cps.len().min(1)]),
    )?;
    for h in cps {
        let local = local_apiserver(h);
        b.add(
            "controller-manager.conf",
            "controller-manager",
            "client",
            CaId::Kubernetes,
            Some(h),
            kubeconfig("controller-manager.conf", &local),
            vec![h.name.clone()],
        )?;
        b.add(
            "scheduler.conf",
            "scheduler",
            "client",
            CaId::Kubernetes,
            Some(h),
            kubeconfig("scheduler.conf", &local),
            vec![h.name.clone()],
        )?;
    }
    Ok(())
}

/// Every host the component table gives a kubelet: on a control-plane host it talks to the
/// local apiserver (kubeadm's ControlPlaneKubeletLocalMode), elsewhere to the endpoint.
fn node_kubeconfigs(b: &mut Builder<'_>) -> Result<(), PkiError> {
    let (inv, endpoint) = (b.inv, b.inv.endpoint.url());
    for h in components::component(ComponentId::Kubelet).hosts(inv) {
        let server = if h.has(Role::ControlPlane) {
            local_apiserver(h)
        } else {
            endpoint.clone()
        };
        b.add(
            "kubelet.conf",
            "kubelet",
            "client",
            CaId::Kubernetes,
            Some(h),
            kubeconfig("kubelet.conf", &server),
            vec![h.name.clone()],
        )?;
        // kube-proxy beside it, as the user `system:kube-proxy` the built-in binding
        // `system:node-proxier` authorizes (kubeadm gives its DaemonSet a service account).
        b.add(
            "kube-proxy.conf",
            "kube-proxy",
            "client",
            CaId::Kubernetes,
            Some(h),
            kubeconfig("kube-proxy.conf", &server),
            vec![h.name.clone()],
        )?;
    }
    Ok(())
}

/// Shared files each host's tree gets as copies: the CA certificates it trusts, the keys its
/// components need (`ca.key` for the controller-manager's CSR signer, `sa.*`), and the shared
/// certificates it is a recipient of. The front-proxy and etcd CA keys never leave the PKI dir:
/// kinit issues every certificate here, so no host needs them.
pub fn placements(inv: &Inventory, specs: &[CertSpec]) -> Vec<Placement> {
    let kubelet = components::component(ComponentId::Kubelet);
    let mut out = Vec::new();
    for h in &inv.hosts {
        let cp = h.has(Role::ControlPlane);
        let etcd = h.has(Role::Etcd);
        let mut put = |from: &str, mode| {
            out.push(Placement {
                host: h.name.clone(),
                from: from.to_string(),
                to: format!("pki/{from}"),
                mode,
            })
        };
        // The control plane verifies its clients with it, a kubelet its callers (clientCAFile).
        if cp || kubelet.runs_on(inv, h) {
            put("ca.crt", CERT_MODE);
        }
        if cp {
            put("ca.key", KEY_MODE);
            put("front-proxy-ca.crt", CERT_MODE);
            put("sa.key", KEY_MODE);
            put("sa.pub", CERT_MODE);
        }
        if cp || etcd {
            put("etcd/ca.crt", CERT_MODE);
        }
    }
    for spec in specs.iter().filter(|s| s.host.is_none()) {
        for host in &spec.recipients {
            for ((to, mode), ext) in spec.files().into_iter().zip(["crt", "key"]) {
                out.push(Placement {
                    host: host.clone(),
                    from: spec.stored(ext),
                    to,
                    mode,
                });
            }
        }
    }
    out
}
