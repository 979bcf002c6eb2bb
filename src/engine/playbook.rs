//! The playbook: the order in which `kinit up` converges the components of the component table
//! (`src/components/table.rs`), as data a reviewer can read. A phase either runs on the operator
//! machine (`run`), hands every host its certificates (`certificates`), or converges components
//! (`converge`) on the hosts the table places them on; then its `wait` checks run from the
//! operator machine. What a component's files, binaries, units and restart rules are is the
//! table's business, not the playbook's. `playbooks/up.yaml` is embedded in the binary;
//! `--playbooks DIR` reads `DIR/up.yaml` instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::components::ComponentId;
use crate::config::duration::ConfigDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub phases: Vec<Phase>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Stable name: `--skip-phases`, `--only-phase` and `--from-phase` take it.
    pub name: String,
    pub title: String,
    /// A step the operator machine runs itself.
    #[serde(default)]
    pub run: Option<OperatorStep>,
    /// Every host receives its tree of the PKI dir (certificates, keys, kubeconfigs).
    #[serde(default)]
    pub certificates: bool,
    /// Components brought to their state on every host the component table places them on.
    #[serde(default)]
    pub converge: Vec<ComponentId>,
    /// Hosts one at a time (each finished, its reloads and restarts done, before the next
    /// starts): for what holds the VIP and serves clients during a change.
    #[serde(default)]
    pub serial: bool,
    /// Checked from the operator after every host finished.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub wait: Vec<Wait>,
    /// Runs only when the run moves the control plane to another Kubernetes release; its
    /// components then leave the phases before it, so they move after what comes between
    /// (the kubelets after every apiserver: a kubelet is never newer than its apiserver). In
    /// any other run it is skipped, and they converge where they first appear.
    #[serde(default, rename = "upgrade-only")]
    pub upgrade_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorStep {
    /// Every preflight check; failures stop the run (see --ignore-preflight-errors).
    Preflight,
    /// `kinit certs generate` and the etcd cluster token.
    Pki,
    /// The RBAC kinit's certificates rely on (admin.conf's group bound to cluster-admin),
    /// created through the API with super-admin.conf once an apiserver serves.
    ClusterAdmins,
    /// Every host that runs a kubelet registered as a Node and `Ready` (its runtime and pod
    /// network up), through the endpoint with admin.conf.
    NodesReady,
    /// CoreDNS (kubeadm's objects, applied server-side) serving at the kubelets' clusterDNS,
    /// its Deployment rolled out, when the bundle carries its image.
    ClusterDns,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Every etcd member healthy over mTLS from the operator, and the member list is the
    /// inventory's etcd hosts.
    EtcdHealthy(Timeout),
    /// Each host of the phase accepts TCP connections on the port.
    Tcp(TcpWait),
    /// Exactly one host holds the VIP, and VIP:port accepts connections.
    Vip(Timeout),
    /// Each host of the phase answers HTTPS on the port and path (verified against the CA).
    Https(HttpsWait),
    /// The control-plane endpoint (what kubeconfigs point at: the VIP through haproxy, or the
    /// external load balancer) answers HTTPS on the path, verified against the CA. A host's
    /// own apiserver being ready is not enough: haproxy takes it into rotation only after its
    /// health checks pass, and a client of the endpoint gets a closed connection until then.
    Endpoint(EndpointWait),
    /// No apiserver of the phase's hosts is left drained in some haproxy by an interrupted run:
    /// each one shown `DRAIN` is put back once its `/readyz` passes.
    ApiserversInRotation(Timeout),
    /// Every unit the table starts for the phase's components is `active` on each host of the
    /// phase: one that exited since it started (a controller-manager that lost its lease while
    /// its apiserver restarted) is waited for until systemd has it running again.
    UnitsActive(Timeout),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpWait {
    pub port: u16,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsWait {
    pub port: u16,
    pub path: String,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointWait {
    pub path: String,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<ConfigDuration>()
        .map(|c| c.as_duration())
        .map_err(serde::de::Error::custom)
}

/// Where a playbook came from, for messages.
#[derive(Debug, Clone)]
pub enum PlaybookSource {
    Embedded(&'static str),
    File(PathBuf),
}

impl std::fmt::Display for PlaybookSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaybookSource::Embedded(name) => write!(f, "playbooks/{name} (built in)"),
            PlaybookSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

const UP: &str = include_str!("../../playbooks/up.yaml");
const FILE: &str = "up.yaml";

/// The playbook: `<dir>/up.yaml` when a directory is given, else the built-in one.
pub fn load(dir: Option<&Path>) -> Result<Playbook, PlaybookError> {
    match dir {
        Some(dir) => {
            let path = dir.join(FILE);
            let text = std::fs::read_to_string(&path).map_err(|source| PlaybookError::Read {
                path: path.clone(),
                source,
            })?;
            parse(&text, &PlaybookSource::File(path))
        }
        None => parse(UP, &PlaybookSource::Embedded(FILE)),
    }
}

/// Parse and check a playbook: names unique, each phase does exactly one kind of work.
pub fn parse(text: &str, source: &PlaybookSource) -> Result<Playbook, PlaybookError> {
    let invalid = |message: String| PlaybookError::Invalid {
        source_name: source.to_string(),
        message,
    };
    let book: Playbook = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut seen = Vec::new();
    for (i, phase) in book.phases.iter().enumerate() {
        let at = format!("phases[{i}] ({})", phase.name);
        if seen.contains(&phase.name.as_str()) {
            return Err(invalid(format!("{at}: the phase name is used twice")));
        }
        seen.push(phase.name.as_str());
        let kinds = usize::from(phase.run.is_some())
            + usize::from(phase.certificates)
            + usize::from(!phase.converge.is_empty());
        if kinds != 1 {
            return Err(invalid(format!(
                "{at}: a phase does exactly one of `run`, `certificates: true` or `converge: [components]`"
            )));
        }
        if phase.upgrade_only {
            // Else a run that upgrades nothing would converge them nowhere.
            let earlier = &book.phases[..i];
            if let Some(c) = phase.converge.iter().find(|c| {
                !earlier
                    .iter()
                    .any(|p| !p.upgrade_only && p.converge.contains(c))
            }) {
                return Err(invalid(format!(
                    "{at}: `upgrade-only: true` moves components out of the phases before it, \
                     but no phase before it converges {}",
                    crate::components::component(*c).name
                )));
            }
        }
    }
    Ok(book)
}

/// The phases of one run: whether it upgrades Kubernetes decides where the components of an
/// `upgrade-only` phase converge. Upgrading: they leave every phase before it (which says so in
/// the returned notes: phase, message). Not upgrading: the phase stays, to be skipped.
pub fn for_run(mut phases: Vec<Phase>, upgrading: bool) -> (Vec<Phase>, Vec<(String, String)>) {
    let mut notes = Vec::new();
    if !upgrading {
        return (phases, notes);
    }
    for i in 0..phases.len() {
        if !phases[i].upgrade_only {
            continue;
        }
        let (before, rest) = phases.split_at_mut(i);
        let later = &rest[0];
        for p in before.iter_mut() {
            let moved: Vec<&str> = p
                .converge
                .iter()
                .filter(|c| later.converge.contains(c))
                .map(|c| crate::components::component(*c).name)
                .collect();
            if moved.is_empty() {
                continue;
            }
            notes.push((
                p.name.clone(),
                format!(
                    "{} move to the new Kubernetes release in phase {}, once every apiserver \
                     runs it (a kubelet is never newer than its apiserver)",
                    moved.join(", "),
                    later.name
                ),
            ));
            p.converge.retain(|c| !later.converge.contains(c));
        }
    }
    (phases, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_playbook_parses() {
        let book = load(None).unwrap();
        assert_eq!(book.name, "up");
        let names: Vec<&str> = book.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "preflight",
                "pki",
                "time-sync",
                "certificates",
                "node",
                "etcd",
                "etcd-static-pod",
                "etcd-snapshots",
                "load-balancer",
                "control-plane",
                "control-plane-units",
                "kubelets",
                "cluster-admins",
                "nodes-ready",
                "cluster-dns"
            ]
        );
    }

    fn converged(phases: &[Phase], name: &str) -> Vec<ComponentId> {
        phases
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.converge.clone())
            .unwrap()
    }

    #[test]
    fn in_an_upgrade_the_kubelets_move_after_every_apiserver() {
        let book = load(None).unwrap();
        let kubelet_side = [ComponentId::Kubelet, ComponentId::KubeProxy];
        // No upgrade: the node phase converges them, the upgrade-only phase is left to skip.
        let (same, notes) = for_run(book.phases.clone(), false);
        assert!(notes.is_empty(), "{notes:?}");
        assert!(
            kubelet_side
                .iter()
                .all(|c| converged(&same, "node").contains(c))
        );
        // An upgrade: they leave the node phase, which still lands the runtime and the
        // control plane's images, and come after both control-plane phases.
        let (upgrade, notes) = for_run(book.phases.clone(), true);
        let node = converged(&upgrade, "node");
        assert!(kubelet_side.iter().all(|c| !node.contains(c)), "{node:?}");
        assert!(node.contains(&ComponentId::Containerd), "{node:?}");
        assert!(node.contains(&ComponentId::ControlPlaneImages), "{node:?}");
        assert_eq!(converged(&upgrade, "kubelets"), kubelet_side);
        let at = |n: &str| upgrade.iter().position(|p| p.name == n).unwrap();
        assert!(at("kubelets") > at("control-plane"));
        assert!(at("kubelets") > at("control-plane-units"));
        assert!(at("kubelets") < at("nodes-ready"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].0, "node");
        assert!(
            notes[0].1.starts_with(
                "kubelet, kube-proxy move to the new Kubernetes release in phase kubelets"
            ),
            "{notes:?}"
        );
    }

    #[test]
    fn an_upgrade_only_phase_moves_only_what_an_earlier_phase_converges() {
        let text = "name: x\nphases:\n  - name: a\n    title: A\n    converge: [etcd]\n  - name: b\n    title: B\n    converge: [etcd, haproxy]\n    upgrade-only: true\n";
        let err = parse(text, &PlaybookSource::Embedded("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("phases[1] (b): `upgrade-only: true` moves components out of the phases before it, but no phase before it converges haproxy"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_component_names_the_place() {
        let text = "name: x\nphases:\n  - name: a\n    title: A\n    converge: [etcd, nginx]\n";
        let err = parse(text, &PlaybookSource::Embedded("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `nginx`"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn a_phase_does_one_kind_of_work() {
        let text =
            "name: x\nphases:\n  - name: a\n    title: A\n    run: pki\n    converge: [etcd]\n";
        let err = parse(text, &PlaybookSource::Embedded("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("phases[0] (a): a phase does exactly one of"),
            "{err}"
        );
        let text = "name: x\nphases:\n  - name: a\n    title: A\n";
        assert!(parse(text, &PlaybookSource::Embedded("x.yaml")).is_err());
    }

    #[test]
    fn durations_are_read() {
        let text = "name: x\nphases:\n  - name: a\n    title: A\n    converge: [etcd]\n    wait:\n      - etcd-healthy: {timeout: 2m}\n";
        let book = parse(text, &PlaybookSource::Embedded("x.yaml")).unwrap();
        assert_eq!(
            book.phases[0].wait[0],
            Wait::EtcdHealthy(Timeout {
                timeout: Duration::from_secs(120),
            })
        );
    }
}
