//! What runs where: one row per component kinit puts on a host ([`table::TABLE`]), and the
//! questions everyone else asks of it. Render (which files a host gets), preflight (which ports
//! must be free, and which holder is our own), status (which units must be active) and the
//! deploy plan (what a phase converges on a host, what a change restarts) all read these rows;
//! none keeps a list of its own.

pub mod table;

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::config::{ControlPlaneMode, EtcdMode, LoadBalancerKind, Role};
use crate::inventory::{Host, Inventory};

pub use table::TABLE;

/// A component's stable name: playbooks name components by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentId {
    /// sysctl and kernel modules a Kubernetes node needs.
    KernelSettings,
    Chrony,
    /// etcd as a systemd unit (etcd.mode: systemd).
    Etcd,
    /// etcd as a static pod the kubelet runs (etcd.mode: static-pod).
    EtcdStaticPod,
    /// etcd's image, built from the bundle's etcd, imported by the kubelet (etcd.mode: static-pod).
    EtcdImage,
    /// A systemd timer saving a snapshot of each etcd member (spec.etcd.snapshots).
    EtcdSnapshots,
    Haproxy,
    Keepalived,
    /// containerd, runc, the CNI plugins and the pod network, and the sandbox image.
    Containerd,
    /// The kubelet.
    Kubelet,
    /// kube-proxy as a systemd unit on every node.
    KubeProxy,
    /// kube-apiserver, kube-controller-manager and kube-scheduler as static pods.
    ControlPlane,
    /// The static pods' images, imported by the kubelet (controlPlane.mode: static-pod).
    ControlPlaneImages,
    /// kube-apiserver as a systemd unit (controlPlane.mode: systemd).
    KubeApiserver,
    /// kube-controller-manager as a systemd unit (controlPlane.mode: systemd).
    KubeControllerManager,
    /// kube-scheduler as a systemd unit (controlPlane.mode: systemd).
    KubeScheduler,
}

/// A cluster-wide setting a component depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// spec.timeSync.servers is not empty.
    TimeServers,
    /// controlPlaneEndpoint.loadBalancer is haproxy-keepalived.
    HaproxyKeepalived,
    /// etcd.mode is systemd.
    EtcdSystemd,
    /// etcd.mode is static-pod.
    EtcdStaticPod,
    /// spec.etcd.snapshots is set.
    EtcdSnapshots,
    /// controlPlane.mode is static-pod.
    ControlPlaneStaticPod,
    /// controlPlane.mode is systemd.
    ControlPlaneSystemd,
    /// topology is external (etcd on hosts of its own).
    ExternalTopology,
}

impl Condition {
    pub fn holds(self, inv: &Inventory) -> bool {
        match self {
            Condition::TimeServers => !inv.time_servers.is_empty(),
            Condition::HaproxyKeepalived => {
                inv.endpoint.load_balancer == LoadBalancerKind::HaproxyKeepalived
            }
            Condition::EtcdSystemd => inv.etcd.mode == EtcdMode::Systemd,
            Condition::EtcdStaticPod => inv.etcd.mode == EtcdMode::StaticPod,
            Condition::EtcdSnapshots => inv.etcd.snapshots.is_some(),
            Condition::ControlPlaneStaticPod => {
                inv.control_plane_mode == ControlPlaneMode::StaticPod
            }
            Condition::ControlPlaneSystemd => inv.control_plane_mode == ControlPlaneMode::Systemd,
            Condition::ExternalTopology => inv.topology == crate::config::Topology::External,
        }
    }

    /// Why a component with this condition runs nowhere, in the config's words.
    pub fn unmet(self) -> &'static str {
        match self {
            Condition::TimeServers => "spec.timeSync.servers is empty",
            Condition::HaproxyKeepalived => {
                "controlPlaneEndpoint.loadBalancer is not haproxy-keepalived"
            }
            Condition::EtcdSystemd => "etcd.mode is not systemd",
            Condition::EtcdStaticPod => "etcd.mode is not static-pod",
            Condition::EtcdSnapshots => "spec.etcd.snapshots is not set",
            Condition::ControlPlaneStaticPod => "controlPlane.mode is not static-pod",
            Condition::ControlPlaneSystemd => "controlPlane.mode is not systemd",
            Condition::ExternalTopology => "topology is not external",
        }
    }
}

/// What a changed input asks of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "unit")]
pub enum OnChange {
    /// Read anew by its consumer (static pod manifests: the kubelet re-creates the pod; scripts
    /// run afresh each time).
    Nothing,
    Restart(&'static str),
    /// The daemon re-reads its configuration without dropping what it serves (haproxy keeps
    /// open connections; keepalived keeps the VIP where it is).
    Reload(&'static str),
}

/// What `kinit reset` does with a component's files and units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReset {
    /// Units stopped and disabled, files and binaries removed.
    Remove,
    /// Left as it is, for this reason (said in reset's output).
    Keep(&'static str),
}

/// A rendered file.
#[derive(Debug, Clone, Copy)]
pub struct FileRow {
    pub template: &'static str,
    /// Absolute path on the host.
    pub path: &'static str,
    pub mode: u32,
    pub on_change: OnChange,
    /// Written only when the component's bundle items are there (a unit file for a binary the
    /// bundle lacks would only fail).
    pub gated: bool,
    /// The certificates, keys and kubeconfigs (host paths under `/etc/kubernetes/`) the pod of
    /// a static-pod manifest reads. The kubelet re-creates a static pod only when its manifest
    /// changes, so the manifest carries a hash of these files' content on its host (render's
    /// [`crate::render::certificates::ANNOTATION`]): a renewed certificate changes exactly the
    /// manifests of the pods that read it. Empty for every other file.
    pub certificates: &'static [&'static str],
    /// One file on the host, or one per registry (`{registry}` in `path` is its name).
    pub per: FilesPer,
    /// Whether its content names other hosts of the cluster: `remove` renders it again, without
    /// the host removed, on the hosts that stay.
    pub names_hosts: NamesHosts,
}

/// Whether a file names other hosts (a control plane's peers, etcd's members, other nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamesHosts {
    /// Its own host at most.
    No,
    /// Always.
    Yes,
    /// Where the condition holds.
    When(Condition),
}

impl NamesHosts {
    pub fn holds(self, inv: &Inventory) -> bool {
        match self {
            NamesHosts::No => false,
            NamesHosts::Yes => true,
            NamesHosts::When(c) => c.holds(inv),
        }
    }
}

/// How many files a [`FileRow`] gives a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesPer {
    /// One, at `path`.
    Host,
    /// One for each of `spec.registries` (the template sees it as `registry`).
    Registry,
    /// One for each registry with a `caFile` (the template sees the CA's PEM as `registry.ca`).
    RegistryWithCa,
}

/// A binary from the artifacts bundle.
#[derive(Debug, Clone, Copy)]
pub struct BinaryRow {
    /// Name in the bundle and in SHA256SUMS.
    pub file: &'static str,
    pub path: &'static str,
    pub mode: u32,
    pub on_change: OnChange,
    /// Uploaded when the bundle has it, left out otherwise (a tool that only some versions
    /// ship).
    pub optional: bool,
}

/// When a unit is (re)started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartPolicy {
    /// Running after every run; restarted or reloaded when an input changed.
    Always,
    /// Only run when an input changed (one-shot units such as systemd-sysctl).
    OnChange,
}

#[derive(Debug, Clone, Copy)]
pub struct UnitRow {
    pub name: &'static str,
    pub enable: bool,
    pub start: StartPolicy,
    /// Do not wait for the unit to report ready: etcd members must start together, and the
    /// first reports ready only once a quorum is up.
    pub no_block: bool,
}

/// Where a port number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortNumber {
    Fixed(u16),
    /// controlPlaneEndpoint.port (haproxy's frontend).
    Frontend,
}

impl PortNumber {
    /// The number in this cluster.
    pub fn number(self, inv: &Inventory) -> u16 {
        match self {
            PortNumber::Fixed(n) => n,
            PortNumber::Frontend => inv.endpoint.port,
        }
    }
}

/// Which other hosts connect to a port once the cluster runs: preflight checks the path from
/// each of them before anything listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReachedFrom {
    /// Only the host itself (the port is bound to 127.0.0.1).
    Local,
    /// Hosts with any of these roles.
    Roles(&'static [Role]),
}

#[derive(Debug, Clone, Copy)]
pub struct PortRow {
    pub port: PortNumber,
    /// What holds it, as operators call it (`kube-apiserver`, `haproxy stats`).
    pub label: &'static str,
    /// The process name `ss` shows (the kernel's 15-character comm).
    pub process: &'static str,
    pub reached_from: ReachedFrom,
}

/// Certificates under a prefix of the host's PKI tree (relative to /etc/kubernetes) that a
/// component reads, and what a change to them asks.
#[derive(Debug, Clone, Copy)]
pub struct CertificateInput {
    pub under: &'static str,
    pub on_change: OnChange,
}

/// One row of the table.
#[derive(Debug)]
pub struct Component {
    pub id: ComponentId,
    pub name: &'static str,
    /// Hosts with any of these roles run it...
    pub roles: &'static [Role],
    /// ...and also every host where a component that runs under the kubelet runs (the kubelet
    /// itself and the node settings it needs).
    pub with_static_pods: bool,
    /// It runs under the kubelet (static pods): hosts running it need the kubelet.
    pub static_pod: bool,
    /// Runs nowhere unless this holds.
    pub when: Option<Condition>,
    /// Distribution packages, installed when missing.
    pub packages: &'static [&'static str],
    pub binaries: &'static [BinaryRow],
    pub files: &'static [FileRow],
    pub certificates: &'static [CertificateInput],
    pub units: &'static [UnitRow],
    pub ports: &'static [PortRow],
    /// Started only when the artifacts bundle holds all of these; otherwise its binaries,
    /// gated files and units are left out and the run says so.
    pub bundle_gate: &'static [&'static str],
    pub on_reset: OnReset,
    /// It acts on the cluster's state in etcd (the apiserver serves it, the controllers and
    /// the scheduler act on what it serves): a snapshot restore stops it on every host before
    /// etcd's data is replaced and starts it again once the restored cluster is healthy.
    pub stopped_for_restore: bool,
    /// What the running program makes on the host and `reset` takes off after its units
    /// stopped: directories (`/var/lib/containerd`; a mount point keeps itself, its contents
    /// go, mounts below it are unmounted) and network links (`link:cni0`).
    pub runtime_state: &'static [&'static str],
    /// How its restarts and reloads go when it already serves the cluster (`None`: on every
    /// host at once, which costs nothing).
    pub rolling: Option<Rolling>,
}

/// A component other hosts depend on is restarted (or reloaded, or, for a static pod, given a
/// new manifest) one host at a time, the next only once the last is healthy again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    /// What shows that a host serves again.
    pub healthy: Healthy,
    /// Which host goes last.
    pub last: GoesLast,
}

/// How kinit tells that a restarted host serves again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Healthy {
    /// Its etcd member answers healthy and has caught up with the leader's revision, and every
    /// member is healthy.
    EtcdMember,
    /// It accepts TCP connections on the port (from this machine).
    Port(PortNumber),
    /// Exactly one host holds the VIP, and VIP:frontend answers.
    Vip,
    /// The phase's own `wait` checks, on that host (static pods: the kubelet re-creates them).
    PhaseWaits,
    /// Its apiserver answers `/readyz` (verified against the cluster CA), and every haproxy
    /// sends it requests again.
    ApiserverReady,
    /// Its Node is Ready with a status the restarted kubelet posted (the API through the VIP);
    /// a kubelet moving to another release has its node cordoned and drained first, and
    /// uncordoned once back (`engine::rolling::node`).
    NodeReady,
}

/// The host whose restart would disturb clients most, restarted after all others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GoesLast {
    /// No host is special: config order.
    None,
    /// The etcd leader (which hands leadership to a restarted member first).
    EtcdLeader,
    /// The etcd leader's host when etcd runs there as a static pod: a kubelet of another
    /// release re-creates its static pods, etcd's too, so the leader's kubelet goes last, after
    /// handing leadership to a member already done and behind the quorum guard. Else no host.
    StaticPodEtcdLeader,
    /// The host holding the VIP.
    VipHolder,
}

/// The row of `id`.
pub fn component(id: ComponentId) -> &'static Component {
    TABLE
        .iter()
        .find(|c| c.id == id)
        .expect("every ComponentId has a row")
}

impl Component {
    /// Whether `host` runs this component in this cluster.
    pub fn runs_on(&self, inv: &Inventory, host: &Host) -> bool {
        if self.when.is_some_and(|c| !c.holds(inv)) {
            return false;
        }
        self.roles.iter().any(|r| host.has(*r))
            || (self.with_static_pods
                && TABLE
                    .iter()
                    .any(|c| c.static_pod && !c.with_static_pods && c.runs_on(inv, host)))
    }

    /// The hosts that run it, in config order.
    pub fn hosts<'a>(&self, inv: &'a Inventory) -> Vec<&'a Host> {
        inv.hosts.iter().filter(|h| self.runs_on(inv, h)).collect()
    }

    /// The bundle items its gate lacks (empty: it may start).
    pub fn lacking(&self, bundle: &Bundle) -> Vec<&'static str> {
        self.bundle_gate
            .iter()
            .copied()
            .filter(|f| !bundle.has(f))
            .collect()
    }

    /// Ports it holds in this cluster.
    pub fn ports(&self, inv: &Inventory) -> impl Iterator<Item = ComponentPort> + '_ {
        let frontend = PortNumber::Frontend.number(inv);
        let holder = self.holder();
        self.ports.iter().map(move |p| ComponentPort {
            port: match p.port {
                PortNumber::Fixed(n) => n,
                PortNumber::Frontend => frontend,
            },
            component: p.label,
            process: p.process,
            holder,
            reached_from: p.reached_from,
        })
    }

    /// What its listening process looks like when kinit deployed it: in a pod the kubelet
    /// runs, or in its systemd unit, running the binary kinit installs (when kinit installs
    /// one; a distribution package's daemon is known by its unit alone).
    pub fn holder(&self) -> Holder {
        if self.static_pod {
            return Holder::Pod;
        }
        match self.units.first() {
            Some(unit) => Holder::Unit {
                unit: unit.name,
                exe: self
                    .binaries
                    .iter()
                    .find(|b| matches!(b.on_change, OnChange::Restart(u) if u == unit.name))
                    .map(|b| b.path),
            },
            None => Holder::Pod,
        }
    }

    /// Why it runs on no host of this cluster (for a skipped phase).
    pub fn absent_because(&self, inv: &Inventory) -> String {
        match self.when {
            Some(c) if !c.holds(inv) => c.unmet().to_string(),
            _ => {
                let roles: Vec<String> = self.roles.iter().map(|r| r.to_string()).collect();
                format!("no host has the role {}", roles.join(" or "))
            }
        }
    }
}

/// How to tell the process kinit deployed from another install of the same program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Holder {
    /// Runs in this systemd unit (`etcd` for `etcd.service`), from this binary when kinit
    /// installs it.
    Unit {
        unit: &'static str,
        exe: Option<&'static str>,
    },
    /// A container of a pod the kubelet runs (its cgroup is under `kubepods`).
    Pod,
}

/// A port a component of kinit's listens on, the process name `ss` shows for it, and what the
/// component's own process looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ComponentPort {
    pub port: u16,
    pub component: &'static str,
    pub process: &'static str,
    pub holder: Holder,
    #[serde(skip)]
    pub reached_from: ReachedFrom,
}

/// The components `host` runs, in table order.
pub fn on_host<'a>(
    inv: &'a Inventory,
    host: &'a Host,
) -> impl Iterator<Item = &'static Component> + 'a {
    TABLE.iter().filter(move |c| c.runs_on(inv, host))
}

/// The ports `host` must have free (or held by the component itself).
pub fn ports_on(inv: &Inventory, host: &Host) -> Vec<ComponentPort> {
    let mut out: Vec<ComponentPort> = Vec::new();
    for p in on_host(inv, host).flat_map(|c| c.ports(inv)) {
        if !out.iter().any(|o| o.port == p.port) {
            out.push(p);
        }
    }
    out
}

/// The ports of other hosts `source` will connect to once the cluster runs, with the host that
/// holds each (in config order, each (host, port) once).
pub fn connects_from<'a>(inv: &'a Inventory, source: &Host) -> Vec<(&'a Host, ComponentPort)> {
    let mut out: Vec<(&'a Host, ComponentPort)> = Vec::new();
    for target in inv.hosts.iter().filter(|t| t.name != source.name) {
        for p in on_host(inv, target).flat_map(|c| c.ports(inv)) {
            let reaches = match p.reached_from {
                ReachedFrom::Local => false,
                ReachedFrom::Roles(roles) => roles.iter().any(|r| source.has(*r)),
            };
            if reaches
                && !out
                    .iter()
                    .any(|(h, o)| h.name == target.name && o.port == p.port)
            {
                out.push((target, p));
            }
        }
    }
    out
}

/// The units that must be active on `host` once `kinit up` ran with `bundle`.
pub fn units_running_on(inv: &Inventory, host: &Host, bundle: &Bundle) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for c in on_host(inv, host).filter(|c| c.lacking(bundle).is_empty()) {
        for u in c.units.iter().filter(|u| u.start == StartPolicy::Always) {
            if !out.contains(&u.name) {
                out.push(u.name);
            }
        }
    }
    out
}

/// The units on `host` that run a binary kinit installs from the bundle, with that binary's
/// path and bundle file name (`status` asks each for its release), in table order.
pub fn binaries_running_on(
    inv: &Inventory,
    host: &Host,
    bundle: &Bundle,
) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    for c in on_host(inv, host).filter(|c| c.lacking(bundle).is_empty()) {
        for b in c.binaries {
            if let OnChange::Restart(unit) = b.on_change
                && c.units
                    .iter()
                    .any(|u| u.name == unit && u.start == StartPolicy::Always)
                && bundle.has(b.file)
            {
                out.push((unit, b.path, b.file));
            }
        }
    }
    out
}

/// What a snapshot restore stops on `host` before etcd's data is replaced (and starts after):
/// the units, and the static pod manifests moved out of the kubelet's sight, in table order.
pub fn stopped_for_restore(inv: &Inventory, host: &Host) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut units = Vec::new();
    let mut manifests = Vec::new();
    for c in on_host(inv, host).filter(|c| c.stopped_for_restore) {
        if c.static_pod {
            manifests.extend(c.files.iter().map(|f| f.path));
        } else {
            units.extend(c.units.iter().map(|u| u.name));
        }
    }
    (units, manifests)
}

/// The units that run `host`'s etcd member: etcd's own unit in systemd mode, none where etcd is
/// a static pod (the kubelet runs it) or the host has no member.
pub fn etcd_units(inv: &Inventory, host: &Host) -> Vec<&'static str> {
    etcd_unit_rows(inv, host).map(|u| u.name).collect()
}

/// The rows of the units that run the host's etcd member (none where etcd is a static pod).
pub fn etcd_unit_rows<'a>(
    inv: &'a Inventory,
    host: &'a Host,
) -> impl Iterator<Item = UnitRow> + 'a {
    on_host(inv, host)
        .filter(|c| c.id == ComponentId::Etcd)
        .flat_map(|c| c.units.iter().copied())
}

/// The unit that runs a host's static pods (the kubelet's).
pub fn static_pod_runner() -> &'static str {
    component(ComponentId::Kubelet).units[0].name
}

/// The file etcd starts from in the inventory's etcd mode: its config as a unit, its manifest
/// as a static pod (both hold the member's flags and bootstrap settings).
pub fn etcd_start_file(inv: &Inventory) -> &'static FileRow {
    match inv.etcd.mode {
        crate::config::EtcdMode::Systemd => &table::ETCD_CONFIG_FILE,
        crate::config::EtcdMode::StaticPod => &table::ETCD_MANIFEST_FILE,
    }
}

/// The files `host` receives (gated ones included: `kinit render` shows what a full bundle
/// brings), in table order.
pub fn files_on(inv: &Inventory, host: &Host) -> Vec<&'static FileRow> {
    on_host(inv, host).flat_map(|c| c.files.iter()).collect()
}

#[cfg(test)]
mod tests;
